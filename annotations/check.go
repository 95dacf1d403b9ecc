package annotations

import (
	"fmt"
	"slices"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Check is the offline graph check: given a set of objects (the documents of
// a pipeline file, or the objects of a namespace), it returns every problem
// at once, each naming the object. Objects without the pipeline label are
// ignored. Upstreams missing from the set are reported too: applied alone,
// such a set would wait for them forever.
func Check(objs []metav1.Object) []error {
	var errs []error
	runs := map[string][]*Task{}
	var runKeys []string
	for _, obj := range objs {
		if !IsSluiceObject(obj) {
			continue
		}
		task, ferrs := Parse(obj)
		for _, e := range ferrs {
			errs = append(errs, fmt.Errorf("%s: %s", describe(obj), e.Error()))
		}
		if len(ferrs) > 0 {
			continue
		}
		if _, seen := runs[task.RunKey()]; !seen {
			runKeys = append(runKeys, task.RunKey())
		}
		runs[task.RunKey()] = append(runs[task.RunKey()], task)
	}
	for _, key := range runKeys {
		tasks := runs[key]
		g, gerrs := NewGraph(tasks)
		errs = append(errs, gerrs...)
		for _, name := range g.Names() {
			t := g.Task(name)
			for _, in := range t.Inputs {
				up := g.Task(in.Task)
				if up != nil && !up.HasOutput(in.Output) {
					var outs []string
					for _, o := range up.Outputs {
						outs = append(outs, o.Name)
					}
					errs = append(errs, fmt.Errorf("task %q of run %q: input %s=%s.%s names an output %s does not declare (it declares: %s)",
						t.Name, t.Run, in.Name, in.Task, in.Output, in.Task, strings.Join(outs, ", ")))
				}
			}
			if t.When != "" {
				if _, err := CompileWhen(t.When, t.Upstreams()); err != nil {
					errs = append(errs, fmt.Errorf("task %q of run %q: %w", t.Name, t.Run, err))
				}
			}
		}
		for _, missing := range g.Missing() {
			waiting := slices.Sorted(slices.Values(g.Downstream(missing)))
			errs = append(errs, fmt.Errorf("run %q: task %q is named as an upstream (by %s) but is not in the set",
				tasks[0].Run, missing, strings.Join(waiting, ", ")))
		}
		reported := map[string]bool{}
		for _, name := range g.Names() {
			for _, w := range g.Task(name).AfterGroups {
				if n := len(g.Members(w.Group)); n < w.Size && !reported[w.Group] {
					reported[w.Group] = true
					errs = append(errs, fmt.Errorf("run %q: task %q waits for group %q of %d tasks, but the set has %d labelled %s=%s",
						tasks[0].Run, name, w.Group, w.Size, n, GroupLabel, w.Group))
				}
			}
		}
	}
	return errs
}

func describe(obj metav1.Object) string {
	return obj.GetNamespace() + "/" + obj.GetName()
}
