package webhook

import (
	"context"
	"fmt"
	"slices"
	"strings"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/sluice-dev/sluice/annotations"
)

// runTask is a task of a run that already exists in the cluster.
type runTask struct {
	task *annotations.Task
	ref  string // Kind/namespace/name, for messages
}

// runTasks lists the tasks of a run from the apiserver (not a cache: two
// objects applied one after the other must see each other).
func runTasks(ctx context.Context, reader client.Reader, ns, run string) ([]runTask, error) {
	sel := client.MatchingLabels{annotations.RunLabel: run}
	var jobs batchv1.JobList
	if err := reader.List(ctx, &jobs, client.InNamespace(ns), sel); err != nil {
		return nil, fmt.Errorf("listing jobs of run %s/%s: %w", ns, run, err)
	}
	var pods corev1.PodList
	if err := reader.List(ctx, &pods, client.InNamespace(ns), sel); err != nil {
		return nil, fmt.Errorf("listing pods of run %s/%s: %w", ns, run, err)
	}
	var out []runTask
	add := func(kind string, obj metav1.Object) {
		if t, errs := annotations.Parse(obj); len(errs) == 0 {
			out = append(out, runTask{task: t, ref: kind + " " + obj.GetNamespace() + "/" + obj.GetName()})
		}
	}
	for i := range jobs.Items {
		add("Job", &jobs.Items[i])
	}
	for i := range pods.Items {
		if !ownedByJob(&pods.Items[i]) {
			add("Pod", &pods.Items[i])
		}
	}
	return out, nil
}

// validateGraph checks a new task against the tasks of its run that exist:
// its name is free, the outputs its inputs name are declared, and it closes
// no cycle. Upstreams that do not exist yet are fine: they are waited for.
func validateGraph(task *annotations.Task, self string, existing []runTask) field.ErrorList {
	var errs field.ErrorList
	byName := map[string]runTask{}
	all := []*annotations.Task{task}
	for _, rt := range existing {
		if rt.ref == self {
			continue
		}
		byName[rt.task.Name] = rt
		all = append(all, rt.task)
	}
	if rt, dup := byName[task.Name]; dup {
		errs = append(errs, field.Duplicate(labelsPath.Key(annotations.TaskLabel),
			fmt.Sprintf("%s: run %q already has this task (%s); task names are unique within a run", task.Name, task.Run, rt.ref)))
		return errs
	}
	for _, in := range task.Inputs {
		up, ok := byName[in.Task]
		if !ok || up.task.HasOutput(in.Output) {
			continue
		}
		var declared []string
		for _, o := range up.task.Outputs {
			declared = append(declared, o.Name)
		}
		decl := "no outputs"
		if len(declared) > 0 {
			decl = "outputs " + strings.Join(declared, ", ")
		}
		errs = append(errs, field.Invalid(annotationsPath.Key(annotations.InputsAnnotation), in.Name+"="+in.Task+"."+in.Output,
			fmt.Sprintf("task %s (%s) declares %s, not %q", in.Task, up.ref, decl, in.Output)))
	}
	g, _ := annotations.NewGraph(all)
	if cycle := g.Cycle(); cycle != nil && slices.Contains(cycle, task.Name) {
		// Say it from the new task's point of view: z -> x -> y -> z.
		ring := cycle[:len(cycle)-1]
		i := slices.Index(ring, task.Name)
		cycle = append(append(slices.Clone(ring[i:]), ring[:i]...), task.Name)
		errs = append(errs, field.Invalid(annotationsPath.Key(annotations.AfterAnnotation), strings.Join(task.Upstreams(), ","),
			fmt.Sprintf("this task would close a dependency cycle in run %q: %s", task.Run, strings.Join(cycle, " -> "))))
	}
	return errs
}
