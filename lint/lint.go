// Package lint checks pipeline manifests offline, as sluice's admission
// would on kubectl apply: every problem at once, each at the file and line
// of the key that states it.
package lint

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/sluice-dev/sluice/annotations"
	"github.com/sluice-dev/sluice/webhook"
)

// Source is one input: a file's name and contents.
type Source struct {
	Name string
	Data []byte
}

// document is one object read by lint, and where.
type document struct {
	file string
	node *yaml.Node // its mapping
	obj  client.Object
	Kind string // as the document gives it
	kind string // lower-case, as kubectl names objects (job/train)
}

func (d *document) ref() string { return d.kind + "/" + d.obj.GetName() }

// Problem is one line of lint's report.
type Problem struct {
	File    string
	Line    int
	Object  string // kind/name, or "" for a problem of the file
	Key     string // the sluice key, or a field path, or ""
	Message string

	order     int // of its source among the inputs
	reportSeq int
}

// String is the problem as lint prints it: FILE:LINE: KIND/NAME: KEY: MESSAGE.
func (p Problem) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s:%d: ", p.File, p.Line)
	if p.Object != "" {
		b.WriteString(p.Object + ": ")
	}
	if p.Key != "" {
		b.WriteString(p.Key + ": ")
	}
	b.WriteString(p.Message)
	return b.String()
}

// Result is what Check found, and in how much.
type Result struct {
	Problems              []Problem
	Files, Objects, Steps int
	runs                  map[string]bool
}

// String is the one line lint ends with: how many problems were found in
// what, or that there were none.
func (r Result) String() string {
	if len(r.Problems) == 0 {
		return r.Summary() + ": no problems"
	}
	return plural(len(r.Problems), "problem") + " in " + r.Summary()
}

// Summary says what was checked: files, objects, steps and runs.
func (r Result) Summary() string {
	return fmt.Sprintf("%s, %s, %s (%s in %s)", plural(r.Files, "file"), plural(r.Objects, "object"),
		plural(r.Steps, "sluice step"), plural(r.Steps, "task"), plural(len(r.runs), "run"))
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return strconv.Itoa(n) + " " + what + "s"
}

// Check checks the objects of sources: each document's own keys, then
// every run's graph across all of them, as admission would on kubectl
// apply. Objects without a namespace are checked in namespace.
func Check(sources []Source, namespace string) Result {
	res := Result{runs: map[string]bool{}, Files: len(sources)}
	var docs []*document
	report := func(p Problem) {
		p.reportSeq = len(res.Problems)
		res.Problems = append(res.Problems, p)
	}
	for i, src := range sources {
		found, probs := readDocuments(src, namespace)
		for _, p := range probs {
			p.order = i
			report(p)
		}
		docs = append(docs, found...)
	}
	res.Objects = len(docs)
	byObj := map[metav1.Object]*document{}
	orderOf := map[*document]int{}
	var steps []metav1.Object
	for _, d := range docs {
		orderOf[d] = slices.IndexFunc(sources, func(s Source) bool { return s.Name == d.file })
		if !annotations.IsSluiceObject(d.obj) {
			if key := firstSluiceKey(d.obj); key != "" {
				report(d.problem(key, "sluice ignores this object: it has sluice keys but no "+annotations.PipelineLabel+" label", orderOf[d]))
			}
			continue
		}
		if d.kind != "job" && d.kind != "pod" {
			report(d.problem("", "sluice runs Jobs and bare Pods as steps: the sluice keys of a "+d.Kind+" have no effect", orderOf[d]))
			continue
		}
		byObj[d.obj] = d
		steps = append(steps, d.obj)
		for _, e := range webhook.CreateErrors(d.obj) {
			report(d.problem(e.Field, e.ErrorBody(), orderOf[d]))
		}
	}
	res.Steps = len(steps)
	for _, p := range annotations.Check(steps) {
		d := byObj[p.Object]
		report(d.problem(p.Field, p.Message, orderOf[d]))
	}
	for _, obj := range steps {
		if t, errs := annotations.Parse(obj); len(errs) == 0 {
			res.runs[t.RunKey()] = true
		}
	}
	slices.SortStableFunc(res.Problems, func(a, b Problem) int {
		if a.order != b.order {
			return a.order - b.order
		}
		if a.Line != b.Line {
			return a.Line - b.Line
		}
		return a.reportSeq - b.reportSeq
	})
	return res
}

// firstSluiceKey returns the field path of the object's first sluice label
// or annotation, by name, or "".
func firstSluiceKey(obj metav1.Object) string {
	for _, section := range []struct {
		name string
		m    map[string]string
	}{{"labels", obj.GetLabels()}, {"annotations", obj.GetAnnotations()}} {
		for _, k := range slices.Sorted(maps.Keys(section.m)) {
			if strings.HasPrefix(k, annotations.Prefix) {
				return "metadata." + section.name + "[" + k + "]"
			}
		}
	}
	return ""
}

// problem is a problem of the document at the key the field path names.
func (d *document) problem(fieldPath, message string, order int) Problem {
	p := Problem{File: d.file, Line: lineOf(d.node, fieldPath), Object: d.ref(), Message: message, order: order}
	p.Key = fieldPath
	for _, prefix := range []string{"metadata.annotations[", "metadata.labels["} {
		if k, ok := strings.CutPrefix(fieldPath, prefix); ok {
			p.Key = strings.TrimSuffix(k, "]")
		}
	}
	return p
}

// readDocuments reads the objects of one source, each with its node for
// the lines of its keys. A List's items are objects of their own.
func readDocuments(src Source, namespace string) ([]*document, []Problem) {
	var docs []*document
	var problems []Problem
	dec := yaml.NewDecoder(bytes.NewReader(src.Data))
	for {
		var doc yaml.Node
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			problems = append(problems, Problem{File: src.Name, Line: yamlErrorLine(err), Message: "not YAML: " + strings.TrimPrefix(err.Error(), "yaml: ")})
			break // the decoder cannot go on past a syntax error
		}
		if len(doc.Content) == 0 || doc.Content[0].Tag == "!!null" {
			continue // an empty document (a lone ---, or only comments)
		}
		ds, ps := objectsOf(src.Name, doc.Content[0], namespace)
		docs, problems = append(docs, ds...), append(problems, ps...)
	}
	return docs, problems
}

// yamlErrorLine reads the line from a yaml error ("yaml: line 3: ..."), or 1.
func yamlErrorLine(err error) int {
	var n int
	if _, scanErr := fmt.Sscanf(strings.TrimPrefix(err.Error(), "yaml: "), "line %d:", &n); scanErr == nil && n > 0 {
		return n
	}
	return 1
}

func objectsOf(file string, node *yaml.Node, namespace string) ([]*document, []Problem) {
	if node.Kind != yaml.MappingNode {
		return nil, []Problem{{File: file, Line: node.Line, Message: "not a Kubernetes object: expected a mapping with apiVersion, kind and metadata"}}
	}
	kind := scalar(node, "kind")
	if kind == "List" || strings.HasSuffix(kind, "List") && child(node, "items") != nil {
		var docs []*document
		var problems []Problem
		if items := child(node, "items"); items != nil && items.Kind == yaml.SequenceNode {
			for _, item := range items.Content {
				ds, ps := objectsOf(file, item, namespace)
				docs, problems = append(docs, ds...), append(problems, ps...)
			}
		}
		return docs, problems
	}
	problems := stringValues(file, node, kind)
	var m map[string]any
	if err := node.Decode(&m); err != nil {
		return nil, append(problems, Problem{File: file, Line: node.Line, Message: "not a Kubernetes object: " + err.Error()})
	}
	data, err := json.Marshal(m)
	if err != nil {
		return nil, append(problems, Problem{File: file, Line: node.Line, Message: "not a Kubernetes object: " + err.Error()})
	}
	var obj client.Object
	switch apiVersion := scalar(node, "apiVersion"); {
	case apiVersion == "batch/v1" && kind == "Job":
		obj = &batchv1.Job{}
	case apiVersion == "v1" && kind == "Pod":
		obj = &corev1.Pod{}
	default:
		obj = &unstructured.Unstructured{}
	}
	if err := json.Unmarshal(data, obj); err != nil {
		return nil, append(problems, Problem{File: file, Line: node.Line, Object: strings.ToLower(kind) + "/" + scalar(child(node, "metadata"), "name"),
			Message: "not a valid " + kind + ": " + err.Error()})
	}
	if obj.GetNamespace() == "" {
		obj.SetNamespace(namespace)
	}
	return []*document{{file: file, node: node, obj: obj, Kind: kind, kind: strings.ToLower(kind)}}, problems
}

// stringValues reports labels and annotations whose values are not strings
// (sluice.dev/gpu: 1, unquoted), which the API server refuses, and makes
// them strings so that the rest of the checks read them.
func stringValues(file string, obj *yaml.Node, kind string) []Problem {
	var problems []Problem
	meta := child(obj, "metadata")
	for _, section := range []string{"labels", "annotations"} {
		m := child(meta, section)
		if m == nil || m.Kind != yaml.MappingNode {
			continue
		}
		for i := 0; i+1 < len(m.Content); i += 2 {
			k, v := m.Content[i], m.Content[i+1]
			if v.Kind == yaml.ScalarNode && v.Tag != "!!str" {
				problems = append(problems, Problem{File: file, Line: k.Line, Object: strings.ToLower(kind) + "/" + scalar(meta, "name"), Key: k.Value,
					Message: fmt.Sprintf("%s values must be strings: quote it (%s: %q)", strings.TrimSuffix(section, "s"), k.Value, v.Value)})
				v.Tag, v.Style = "!!str", yaml.DoubleQuotedStyle
			}
		}
	}
	return problems
}

// child returns the value of key in a mapping node, or nil.
func child(node *yaml.Node, key string) *yaml.Node {
	if node == nil || node.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(node.Content); i += 2 {
		if node.Content[i].Value == key {
			return node.Content[i+1]
		}
	}
	return nil
}

func scalar(node *yaml.Node, key string) string {
	if v := child(node, key); v != nil && v.Kind == yaml.ScalarNode {
		return v.Value
	}
	return ""
}

// lineOf returns the line of the key a field path names in an object's
// node (metadata.annotations[sluice.dev/after],
// spec.template.spec.containers[0].resources), or of the deepest part of it
// that is there; "" is the object's name.
func lineOf(obj *yaml.Node, fieldPath string) int {
	if fieldPath == "" {
		fieldPath = "metadata.name"
	}
	line, node := obj.Line, obj
	for _, part := range pathParts(fieldPath) {
		switch {
		case node.Kind == yaml.MappingNode:
			var next *yaml.Node
			for i := 0; i+1 < len(node.Content); i += 2 {
				if node.Content[i].Value == part {
					line, next = node.Content[i].Line, node.Content[i+1]
				}
			}
			if next == nil {
				return line
			}
			node = next
		case node.Kind == yaml.SequenceNode:
			i, err := strconv.Atoi(part)
			if err != nil || i < 0 || i >= len(node.Content) {
				return line
			}
			node = node.Content[i]
			line = node.Line
		default:
			return line
		}
	}
	return line
}

// pathParts splits a field path into its names, keys and indexes:
// metadata.annotations[sluice.dev/after] is metadata, annotations,
// sluice.dev/after.
func pathParts(p string) []string {
	var parts []string
	for p != "" {
		switch {
		case p[0] == '.':
			p = p[1:]
		case p[0] == '[':
			end := strings.IndexByte(p, ']')
			if end < 0 {
				return append(parts, p[1:])
			}
			parts = append(parts, p[1:end])
			p = p[end+1:]
		default:
			end := strings.IndexAny(p, ".[")
			if end < 0 {
				end = len(p)
			}
			parts = append(parts, p[:end])
			p = p[end:]
		}
	}
	return parts
}
