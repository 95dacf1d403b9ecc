package webhook

import (
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/sluice-dev/sluice/annotations"
	"github.com/sluice-dev/sluice/index"
)

// graphErrors says what keeps a new task out of its run, key by key.
func graphErrors(task *annotations.Task, c index.Conflicts) field.ErrorList {
	var errs field.ErrorList
	if dup := c.Duplicate; dup != nil {
		errs = append(errs, field.Duplicate(labelsPath.Key(annotations.TaskLabel),
			fmt.Sprintf("%s: run %q already has this task (%s); task names are unique within a run", task.Name, task.Run, dup.Ref)))
	}
	for _, bad := range c.Inputs {
		in, up := bad.Input, bad.Producer
		var declared []string
		for _, o := range up.Task.Outputs {
			declared = append(declared, o.Name)
		}
		decl := "no outputs"
		if len(declared) > 0 {
			decl = "outputs " + strings.Join(declared, ", ")
		}
		errs = append(errs, field.Invalid(annotationsPath.Key(annotations.InputsAnnotation), in.Name+"="+in.Task+"."+in.Output,
			fmt.Sprintf("task %s (%s) declares %s, not %q", in.Task, up.Ref, decl, in.Output)))
	}
	for _, gc := range c.Groups {
		switch {
		case gc.Group == task.Group:
			errs = append(errs, field.Invalid(labelsPath.Key(annotations.GroupLabel), gc.Group,
				fmt.Sprintf("group %s of run %q is full: task %s waits for %d tasks of it (%s) and it has %d", gc.Group, task.Run, gc.Join, gc.Size, annotations.AfterGroupAnnotation, gc.Members)))
		case gc.Join != "":
			errs = append(errs, field.Invalid(annotationsPath.Key(annotations.AfterGroupAnnotation), annotations.GroupWait{Group: gc.Group, Size: task.WaitsForGroup(gc.Group)}.String(),
				fmt.Sprintf("task %s of run %q waits for group %s of %d tasks; a group has one size", gc.Join, task.Run, gc.Group, gc.Size)))
		default:
			errs = append(errs, field.Invalid(annotationsPath.Key(annotations.AfterGroupAnnotation), annotations.GroupWait{Group: gc.Group, Size: gc.Size}.String(),
				fmt.Sprintf("group %s of run %q already has %d tasks", gc.Group, task.Run, gc.Members)))
		}
	}
	if c.Cycle != nil {
		key, value := annotations.AfterAnnotation, strings.Join(task.Upstreams(), ",")
		if len(task.Upstreams()) == 0 {
			var groups []string
			for _, w := range task.AfterGroups {
				groups = append(groups, w.String())
			}
			key, value = annotations.AfterGroupAnnotation, strings.Join(groups, ",")
		}
		errs = append(errs, field.Invalid(annotationsPath.Key(key), value,
			fmt.Sprintf("this task would close a dependency cycle in run %q: %s", task.Run, strings.Join(c.Cycle, " -> "))))
	}
	return errs
}
