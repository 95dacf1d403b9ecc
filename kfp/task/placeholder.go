package task

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
)

// Kinds of placeholder a component's command may hold.
const (
	RefExecutorInput   = "executor-input"   // {{$}}
	RefInputParameter  = "input-parameter"  // {{$.inputs.parameters['x']}}
	RefInputArtifact   = "input-artifact"   // {{$.inputs.artifacts['x'].path}}, .uri, .metadata; no field: a list
	RefOutputParameter = "output-parameter" // {{$.outputs.parameters['x'].output_file}}
	RefOutputArtifact  = "output-artifact"  // {{$.outputs.artifacts['x'].path}}, .uri, .metadata
	RefSystem          = "system"           // {{$.pipeline_job_name}} and the like
	RefPresence        = "presence"         // an IfPresent's InputName: whether the input has a value
)

// Ref is one placeholder, parsed.
type Ref struct {
	Kind  string
	Name  string // the input or output; for RefSystem the placeholder's name
	Field string // path, uri, metadata or output_file
	Text  string // as written
}

// Resolver gives placeholders their values.
type Resolver interface {
	// Resolve gives a placeholder's value.
	Resolve(Ref) (string, error)
	// Present reports whether an optional input has a value (IfPresent).
	Present(input string) bool
}

var (
	tokenRE = regexp.MustCompile(`\{\{\$[^{}]*\}\}`)
	refRE   = regexp.MustCompile(`^\{\{\$\.(inputs|outputs)\.(parameters|artifacts)\['([^']+)'\](?:\.([a-z_]+))?\}\}$`)
	sysRE   = regexp.MustCompile(`^\{\{\$\.([a-z_]+)\}\}$`)
)

// systemRefs are the {{$.name}} placeholders KFP's launcher fills from the run.
var systemRefs = []string{
	"pipeline_job_name", "pipeline_job_uuid", "pipeline_task_name", "pipeline_task_uuid",
	"pipeline_job_resource_name", "pipeline_job_create_time_utc", "pipeline_job_schedule_time_utc",
	"pipeline_root", "workspace_path", "pipeline_google_cloud_project_id",
	"pipeline_google_cloud_location", "pipeline_persistent_resource_id",
}

// ParseRef parses one {{$...}} token.
func ParseRef(tok string) (Ref, error) {
	if tok == "{{$}}" {
		return Ref{Kind: RefExecutorInput, Text: tok}, nil
	}
	if m := refRE.FindStringSubmatch(tok); m != nil {
		r := Ref{Name: m[3], Field: m[4], Text: tok}
		switch m[1] + "." + m[2] {
		case "inputs.parameters":
			r.Kind = RefInputParameter
			if r.Field != "" {
				return Ref{}, fmt.Errorf("placeholder %s: an input parameter has no field %q", tok, r.Field)
			}
		case "inputs.artifacts":
			r.Kind = RefInputArtifact
			if r.Field != "" && r.Field != "path" && r.Field != "uri" && r.Field != "metadata" {
				return Ref{}, fmt.Errorf("placeholder %s: expected .path, .uri or .metadata", tok)
			}
		case "outputs.parameters":
			r.Kind = RefOutputParameter
			if r.Field != "output_file" {
				return Ref{}, fmt.Errorf("placeholder %s: expected .output_file", tok)
			}
		case "outputs.artifacts":
			r.Kind = RefOutputArtifact
			if r.Field != "path" && r.Field != "uri" && r.Field != "metadata" {
				return Ref{}, fmt.Errorf("placeholder %s: expected .path, .uri or .metadata", tok)
			}
		}
		return r, nil
	}
	if m := sysRE.FindStringSubmatch(tok); m != nil {
		for _, s := range systemRefs {
			if m[1] == s {
				return Ref{Kind: RefSystem, Name: s, Text: tok}, nil
			}
		}
	}
	return Ref{}, fmt.Errorf("placeholder %s is not one the importer knows", tok)
}

// Expand resolves one command-line item into the items it stands for: an
// item with {{$...}} placeholders inside becomes one item; a structured
// placeholder ({"Concat": [...]}, {"IfPresent": {...}}) may become none or
// several.
func Expand(item string, r Resolver) ([]string, error) {
	if v, ok := structured(item); ok {
		return expandValue(v, r)
	}
	s, err := substitute(item, r)
	if err != nil {
		return nil, err
	}
	return []string{s}, nil
}

// ExpandAll expands a whole command line.
func ExpandAll(items []string, r Resolver) ([]string, error) {
	var out []string
	for _, it := range items {
		got, err := Expand(it, r)
		if err != nil {
			return nil, err
		}
		out = append(out, got...)
	}
	return out, nil
}

// Refs lists every placeholder of a command line, both branches of an
// IfPresent included, without resolving any.
func Refs(items []string) ([]Ref, error) {
	var out []Ref
	var walk func(v any) error
	walk = func(v any) error {
		switch x := v.(type) {
		case string:
			if inner, ok := structured(x); ok {
				return walk(inner)
			}
			for _, tok := range tokenRE.FindAllString(x, -1) {
				ref, err := ParseRef(tok)
				if err != nil {
					return err
				}
				out = append(out, ref)
			}
		case []any:
			for _, e := range x {
				if err := walk(e); err != nil {
					return err
				}
			}
		case map[string]any:
			for _, k := range slices.Sorted(maps.Keys(x)) {
				if k == "InputName" {
					out = append(out, Ref{Kind: RefPresence, Name: fmt.Sprint(x[k]), Text: "IfPresent " + fmt.Sprint(x[k])})
					continue
				}
				if err := walk(x[k]); err != nil {
					return err
				}
			}
		}
		return nil
	}
	for _, it := range items {
		if err := walk(it); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// structured reports whether item is a structured placeholder and gives its JSON.
func structured(item string) (map[string]any, bool) {
	t := strings.TrimSpace(item)
	if !strings.HasPrefix(t, `{"Concat"`) && !strings.HasPrefix(t, `{"IfPresent"`) {
		return nil, false
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(t), &m); err != nil || len(m) != 1 {
		return nil, false
	}
	return m, true
}

func expandValue(v any, r Resolver) ([]string, error) {
	switch x := v.(type) {
	case string:
		return Expand(x, r)
	case []any:
		var out []string
		for _, e := range x {
			got, err := expandValue(e, r)
			if err != nil {
				return nil, err
			}
			out = append(out, got...)
		}
		return out, nil
	case map[string]any:
		if parts, ok := x["Concat"]; ok {
			list, isList := parts.([]any)
			if !isList {
				return nil, errors.New(`placeholder {"Concat": ...}: expected a list`)
			}
			got, err := expandValue(list, r)
			if err != nil {
				return nil, err
			}
			return []string{strings.Join(got, "")}, nil
		}
		if spec, ok := x["IfPresent"].(map[string]any); ok {
			name, _ := spec["InputName"].(string)
			if name == "" {
				return nil, errors.New(`placeholder {"IfPresent": ...}: InputName is missing`)
			}
			for k := range spec {
				if k != "InputName" && k != "Then" && k != "Else" {
					return nil, fmt.Errorf(`placeholder {"IfPresent": ...}: unknown field %q`, k)
				}
			}
			branch := spec["Else"]
			if r.Present(name) {
				branch = spec["Then"]
			}
			if branch == nil {
				return nil, nil
			}
			return expandValue(branch, r)
		}
	}
	return nil, fmt.Errorf("structured placeholder %s is not one the importer knows (Concat, IfPresent)", Describe(v))
}

func substitute(s string, r Resolver) (string, error) {
	var firstErr error
	out := tokenRE.ReplaceAllStringFunc(s, func(tok string) string {
		if firstErr != nil {
			return tok
		}
		ref, err := ParseRef(tok)
		if err == nil {
			var v string
			if v, err = r.Resolve(ref); err == nil {
				return v
			}
		}
		firstErr = err
		return tok
	})
	return out, firstErr
}
