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
	if c.Cycle != nil {
		errs = append(errs, field.Invalid(annotationsPath.Key(annotations.AfterAnnotation), strings.Join(task.Upstreams(), ","),
			fmt.Sprintf("this task would close a dependency cycle in run %q: %s", task.Run, strings.Join(c.Cycle, " -> "))))
	}
	return errs
}
