package annotations

import (
	"fmt"
	"slices"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// Problem is one thing wrong with an object of a pipeline, as Check finds it.
type Problem struct {
	// Object is the object it is in.
	Object metav1.Object
	// Field is the key that states it, as a path
	// (metadata.annotations[sluice.dev/after]); "" for the object itself.
	Field string
	// Message says what is wrong.
	Message string
}

func (p Problem) Error() string {
	if p.Field == "" {
		return describe(p.Object) + ": " + p.Message
	}
	return describe(p.Object) + ": " + p.Field + ": " + p.Message
}

// Check is the offline graph check: given a set of objects (the documents of
// a pipeline file, or the objects of a namespace), it returns every problem
// at once, each in the object and key that states it. Objects without
// sluice's labels are ignored. Upstreams missing from the set are reported
// too: applied alone, such a set would wait for them forever.
func Check(objs []metav1.Object) []Problem {
	var problems []Problem
	runs := map[string][]*Task{}
	var runKeys []string
	objOf := map[*Task]metav1.Object{}
	for _, obj := range objs {
		if !IsSluiceObject(obj) {
			continue
		}
		task, ferrs := Parse(obj)
		// A condition or resources that do not parse leave the task's
		// place in the graph as it is: it is checked too.
		var others field.ErrorList
		if task.When != "" && len(ferrs) == 0 {
			if _, err := CompileWhen(task.When, task.Upstreams()); err != nil {
				others = append(others, field.Invalid(annotationsPath.Key(WhenAnnotation), task.When, strings.TrimPrefix(err.Error(), whenErrPrefix)))
			}
		}
		_, rerrs := ParseResources(obj)
		for _, e := range slices.Concat(ferrs, others, rerrs) {
			problems = append(problems, Problem{Object: obj, Field: e.Field, Message: e.ErrorBody()})
		}
		if len(ferrs) > 0 {
			continue
		}
		objOf[task] = obj
		if _, seen := runs[task.RunKey()]; !seen {
			runKeys = append(runKeys, task.RunKey())
		}
		runs[task.RunKey()] = append(runs[task.RunKey()], task)
	}
	at := func(t *Task, key, format string, args ...any) {
		p := Problem{Object: objOf[t], Message: fmt.Sprintf(format, args...)}
		if key != "" {
			p.Field = keyPath(key).String()
		}
		problems = append(problems, p)
	}
	for _, key := range runKeys {
		tasks := runs[key]
		g, gerrs := NewGraph(tasks)
		for _, e := range gerrs {
			at(e.Task, e.Key, "%s", e.Error())
		}
		for _, name := range g.Names() {
			t := g.Task(name)
			for _, in := range t.Inputs {
				up := g.Task(in.Task)
				if up != nil && !up.HasOutput(in.Output) {
					declares := "none"
					if len(up.Outputs) > 0 {
						var outs []string
						for _, o := range up.Outputs {
							outs = append(outs, o.Name)
						}
						declares = strings.Join(outs, ", ")
					}
					at(t, InputsAnnotation, "input %s=%s.%s names an output %s does not declare (it declares: %s)",
						in.Name, in.Task, in.Output, in.Task, declares)
				}
			}
		}
		for _, missing := range g.Missing() {
			for _, name := range g.Downstream(missing) {
				t := g.Task(name)
				at(t, t.KeyNaming(missing), "upstream task %q is not in the set: applied alone, %s would wait for it forever", missing, name)
			}
		}
		reported := map[string]bool{}
		for _, name := range g.Names() {
			for _, w := range g.Task(name).AfterGroups {
				if n := len(g.Members(w.Group)); n < w.Size && !reported[w.Group] {
					reported[w.Group] = true
					at(g.Task(name), AfterGroupAnnotation, "waits for group %q of %d tasks, but the set has %d labelled %s=%s",
						w.Group, w.Size, n, GroupLabel, w.Group)
				}
			}
		}
	}
	return problems
}

// IsLabelKey reports whether a sluice key is a label (else an annotation).
func IsLabelKey(key string) bool {
	return slices.Contains(userLabels, key) || slices.Contains(ControllerLabels, key)
}

// keyPath is the field path of a sluice key: a label or an annotation.
func keyPath(key string) *field.Path {
	if IsLabelKey(key) {
		return labelsPath.Key(key)
	}
	return annotationsPath.Key(key)
}

func describe(obj metav1.Object) string {
	return obj.GetNamespace() + "/" + obj.GetName()
}
