package task

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// ExecutorOutputFile is where {{$}} tells a component to write its executor
// output (KFP's ExecutorOutput as JSON), in the launcher's directory.
const ExecutorOutputFile = LauncherDir + "/outputs/executor_output.json"

// RunFiles is what a resolver reads of the run volume, by the absolute paths
// an Executor gives. OSFiles is the real one.
type RunFiles interface {
	ReadFile(path string) ([]byte, error)
	Stat(path string) (fs.FileInfo, error)
}

// OSFiles reads the file system the launcher runs on.
type OSFiles struct{}

// ReadFile is os.ReadFile.
func (OSFiles) ReadFile(path string) ([]byte, error) { return os.ReadFile(path) }

// Stat is os.Stat.
func (OSFiles) Stat(path string) (fs.FileInfo, error) { return os.Stat(path) }

// TaskValues gives one task's placeholders their values: a Resolver.
type TaskValues struct {
	// OutputFile is the executor output file {{$}} names; NewResolver sets
	// ExecutorOutputFile, a launcher kept elsewhere sets its own.
	OutputFile string

	exec  *Executor
	files RunFiles
	// params and arts hold the inputs that have a value: a parameter's typed
	// value, an artifact's existing paths (one, or any number for a List).
	params map[string]any
	arts   map[string][]string
}

var _ Resolver = &TaskValues{}

// NewResolver resolves every input of e. files reads the run volume; it may
// be nil when no input comes from a file (the converter's case, for a task
// whose inputs are all known at conversion): then every artifact path counts
// as existing and an artifact's metadata cannot be read.
//
// An input parameter's value is its Value, or read from its Files: without
// Collect the first file that exists, made the input's type (a STRING input
// gets the value as text, as a command line would: 3, [1,2]; a string file
// feeding a typed input is parsed as -p would parse it); with Collect the
// list of the values of every file that exists, as their producers typed
// them, possibly empty. An input artifact is its first existing path, or
// with List all of them, possibly none. A file that does not exist is
// skipped; an input none of whose files exists has no value, which is an
// error only when a placeholder outside an IfPresent's check needs it.
func NewResolver(e *Executor, files RunFiles) (*TaskValues, error) {
	v := &TaskValues{
		OutputFile: ExecutorOutputFile,
		exec:       e,
		files:      files,
		params:     map[string]any{},
		arts:       map[string][]string{},
	}
	for _, name := range slices.Sorted(maps.Keys(e.Inputs.Parameters)) {
		val, ok, err := v.inputParameter(e.Inputs.Parameters[name])
		if err != nil {
			return nil, fmt.Errorf("input parameter %s: %w", name, err)
		}
		if ok {
			v.params[name] = val
		}
	}
	for _, name := range slices.Sorted(maps.Keys(e.Inputs.Artifacts)) {
		a := e.Inputs.Artifacts[name]
		paths, err := v.existing(a.Paths, !a.List)
		if err != nil {
			return nil, fmt.Errorf("input artifact %s: %w", name, err)
		}
		if a.List || len(paths) > 0 {
			v.arts[name] = paths
		}
	}
	return v, nil
}

func (v *TaskValues) inputParameter(p InputParameter) (any, bool, error) {
	if len(p.Files) == 0 {
		if p.Value == nil {
			if p.Collect {
				return []any{}, true, nil
			}
			return nil, false, nil
		}
		val, err := Coerce(p.Type, p.Value)
		if err != nil {
			return nil, false, fmt.Errorf("its value: %w", err)
		}
		return val, true, nil
	}
	if p.Value != nil {
		return nil, false, errors.New("has both a value and files; expected one or the other")
	}
	if v.files == nil {
		return nil, false, errors.New("its value is in files, which only the launcher reads")
	}
	list := []any{}
	var at []int // the index in Files of each value in list
	for i, f := range p.Files {
		data, err := v.files.ReadFile(f.Path)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, false, err
		}
		val, err := ReadParameter(f.Type, data)
		if err != nil {
			return nil, false, fmt.Errorf("file %s: %w", f.Path, err)
		}
		if p.Collect {
			list = append(list, val)
			at = append(at, i)
			continue
		}
		if val, err = convertParameter(p.Type, val); err != nil {
			return nil, false, fmt.Errorf("file %s (%s) does not fit the input's type %s: %w", f.Path, f.Type, p.Type, err)
		}
		return val, true, nil
	}
	if p.Collect && len(p.Groups) > 0 {
		return groups(list, at, p.Groups)
	}
	if p.Collect {
		return list, true, nil
	}
	return nil, false, nil
}

// groups splits the values read from Files (at gives each one's index
// there) into one list per group of consecutive files.
func groups(list []any, at, sizes []int) (any, bool, error) {
	out := make([]any, 0, len(sizes))
	start, j := 0, 0
	for _, n := range sizes {
		group := []any{}
		for ; j < len(list) && at[j] < start+n; j++ {
			group = append(group, list[j])
		}
		out = append(out, group)
		start += n
	}
	if j != len(list) {
		return nil, false, fmt.Errorf("its groups (%v) hold fewer than its %d files", sizes, at[len(at)-1]+1)
	}
	return out, true, nil
}

// convertParameter makes a value read from a file the input's type.
func convertParameter(typ string, val any) (any, error) {
	if typ == TypeString {
		return Format(val), nil
	}
	if s, ok := val.(string); ok {
		return ParseParam(typ, s)
	}
	return Coerce(typ, val)
}

// existing gives the paths that exist, in order; only the first when first.
func (v *TaskValues) existing(paths []string, first bool) ([]string, error) {
	out := []string{}
	for _, p := range paths {
		if v.files != nil {
			_, err := v.files.Stat(p)
			if errors.Is(err, fs.ErrNotExist) {
				continue
			}
			if err != nil {
				return nil, err
			}
		}
		out = append(out, p)
		if first {
			break
		}
	}
	return out, nil
}

// Present reports whether an input has a value. Outputs are always present.
func (v *TaskValues) Present(name string) bool {
	_, param := v.params[name]
	_, art := v.arts[name]
	_, outParam := v.exec.Outputs.Parameters[name]
	_, outArt := v.exec.Outputs.Artifacts[name]
	return param || art || outParam || outArt
}

// Resolve gives a placeholder's value.
func (v *TaskValues) Resolve(r Ref) (string, error) {
	switch r.Kind {
	case RefExecutorInput:
		b, err := v.ExecutorInput()
		return string(b), err
	case RefInputParameter:
		val, ok := v.params[r.Name]
		if !ok {
			return "", v.absent(r)
		}
		return Format(val), nil
	case RefInputArtifact:
		return v.inputArtifact(r)
	case RefOutputParameter:
		p, ok := v.exec.Outputs.Parameters[r.Name]
		if !ok {
			return "", fmt.Errorf("placeholder %s: the component has no output parameter %s (it has %s)", r.Text, r.Name, listOrNone(slices.Sorted(maps.Keys(v.exec.Outputs.Parameters))))
		}
		return p.Path, nil
	case RefOutputArtifact:
		a, ok := v.exec.Outputs.Artifacts[r.Name]
		if !ok {
			return "", fmt.Errorf("placeholder %s: the component has no output artifact %s (it has %s)", r.Text, r.Name, listOrNone(slices.Sorted(maps.Keys(v.exec.Outputs.Artifacts))))
		}
		if r.Field == "metadata" {
			return "{}", nil
		}
		return a.Path, nil
	case RefSystem:
		return v.system(r)
	}
	return "", fmt.Errorf("placeholder %s: %s is not a value", r.Text, r.Kind)
}

func (v *TaskValues) inputArtifact(r Ref) (string, error) {
	paths, ok := v.arts[r.Name]
	if !ok {
		return "", v.absent(r)
	}
	a := v.exec.Inputs.Artifacts[r.Name]
	if r.Field == "" {
		// The placeholder is a JSON path into the executor input: the
		// artifact list itself, as KFP's {{$}} holds it.
		list, err := v.artifactList(r.Name, a.Type, paths)
		if err != nil {
			return "", fmt.Errorf("placeholder %s: %w", r.Text, err)
		}
		b, err := json.Marshal(list)
		return string(b), err
	}
	if a.List {
		return "", fmt.Errorf("placeholder %s: input artifact %s is a list of artifacts, which has no .%s; pass the whole list, {{$.inputs.artifacts['%s']}}", r.Text, r.Name, r.Field, r.Name)
	}
	switch r.Field {
	case "path", "uri":
		// KFP's SDK reads a uri without a gs://, s3:// or minio:// prefix as
		// a local path (Artifact._get_path): here the uri is the path.
		return paths[0], nil
	case "metadata":
		md, err := v.metadata(paths[0])
		if err != nil {
			return "", fmt.Errorf("placeholder %s: %w", r.Text, err)
		}
		b, err := json.Marshal(md)
		return string(b), err
	}
	return "", fmt.Errorf("placeholder %s: expected .path, .uri or .metadata", r.Text)
}

// absent explains why an input a placeholder needs has no value.
func (v *TaskValues) absent(r Ref) error {
	kind, what := "parameter", ""
	var names []string
	if r.Kind == RefInputParameter {
		names = slices.Sorted(maps.Keys(v.exec.Inputs.Parameters))
		if p, ok := v.exec.Inputs.Parameters[r.Name]; ok {
			what = "it was given no value"
			if len(p.Files) > 0 {
				what = "none of its files exists: " + strings.Join(filePaths(p.Files), ", ")
			}
		}
	} else {
		kind = "artifact"
		names = slices.Sorted(maps.Keys(v.exec.Inputs.Artifacts))
		if a, ok := v.exec.Inputs.Artifacts[r.Name]; ok {
			what = "none of its paths exists: " + strings.Join(a.Paths, ", ")
		}
	}
	if what == "" {
		return fmt.Errorf("placeholder %s: the task has no input %s %s (it has %s)", r.Text, kind, r.Name, listOrNone(names))
	}
	return fmt.Errorf("placeholder %s: input %s %s has no value (%s); an optional input belongs inside {\"IfPresent\": {\"InputName\": %q, ...}}",
		r.Text, kind, r.Name, what, r.Name)
}

func filePaths(files []ParameterFile) []string {
	out := make([]string, len(files))
	for i, f := range files {
		out[i] = f.Path
	}
	return out
}

// system gives the {{$.name}} placeholders sluice can answer.
func (v *TaskValues) system(r Ref) (string, error) {
	switch r.Name {
	case "pipeline_job_name":
		return v.exec.Run, nil
	case "pipeline_task_name":
		return v.exec.Task, nil
	case "pipeline_root":
		// Artifacts live on the run volume, under no storage root.
		return "", nil
	}
	return "", fmt.Errorf("placeholder %s: sluice does not provide it; it provides {{$.pipeline_job_name}} (the run), {{$.pipeline_task_name}} (the task) and {{$.pipeline_root}} (empty)", r.Text)
}

// metadata reads the metadata of the artifact at path, from MetadataFile in
// its directory: empty when there is none.
func (v *TaskValues) metadata(path string) (map[string]any, error) {
	if v.files == nil {
		return nil, fmt.Errorf("the metadata of %s is known only at run time, to the launcher", path)
	}
	file := filepath.Join(filepath.Dir(path), MetadataFile)
	data, err := v.files.ReadFile(file)
	if errors.Is(err, fs.ErrNotExist) {
		return map[string]any{}, nil
	}
	if err != nil {
		return nil, err
	}
	md, err := DecodeMetadata(data)
	if err != nil {
		return nil, fmt.Errorf("metadata file %s: %w", file, err)
	}
	return md, nil
}

// DecodeMetadata reads an artifact's metadata: a JSON object, whose numbers
// are kept as written.
func DecodeMetadata(data []byte) (map[string]any, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var md map[string]any
	if err := dec.Decode(&md); err != nil || dec.More() {
		return nil, errors.New("expected one JSON object")
	}
	if md == nil {
		md = map[string]any{}
	}
	return md, nil
}

// ReadParameter reads an output parameter's file, as its producer wrote it:
// a STRING is the text unchanged; a number or a boolean the trimmed text; a
// LIST or a STRUCT JSON.
func ReadParameter(typ string, data []byte) (any, error) {
	s := string(data)
	if typ == TypeString {
		return s, nil
	}
	if typ != TypeList && typ != TypeStruct {
		s = strings.TrimSpace(s)
	}
	v, err := ParseParam(typ, s)
	if err != nil && len(s) > 64 {
		// Keep the message short: the text of a large file is no help.
		return nil, fmt.Errorf("%s... (%d bytes) is not %s", strconv.Quote(s[:48]), len(s), DescribeType(typ))
	}
	return v, err
}

// ParameterFileContent is what an output parameter's file holds for a value
// from the executor output: a STRING as text, others as Format writes them
// (JSON for lists and structs), as ReadParameter reads them back.
func ParameterFileContent(typ string, v any) []byte {
	switch typ {
	case TypeString:
		if s, ok := v.(string); ok {
			return []byte(s)
		}
	case TypeInteger:
		// Exactly as written, when JSON was read keeping its numbers.
		if n, ok := v.(json.Number); ok {
			if i, err := strconv.ParseInt(n.String(), 10, 64); err == nil {
				return []byte(strconv.FormatInt(i, 10))
			}
		}
		// Format writes a whole double of 1e15 or more with an exponent,
		// which ParseParam does not read as an integer.
		if i, err := Coerce(TypeInteger, v); err == nil {
			return []byte(strconv.FormatInt(i.(int64), 10))
		}
	}
	return []byte(Format(v))
}
