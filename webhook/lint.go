package webhook

import (
	"strings"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/sluice-dev/sluice/annotations"
)

// CreateErrors returns, offline, what admission would refuse in a new Job or
// bare Pod step beyond the checks of annotations.Check: keys that only the
// controller writes, and what the mutation cannot inject (resources for a
// container the step does not have; judged only when its sluice keys parse,
// which annotations.Check reports). obj is not changed; other kinds have
// none.
func CreateErrors(obj client.Object) field.ErrorList {
	var s step
	switch o := obj.(type) {
	case *batchv1.Job:
		s = jobStep(o.DeepCopy())
	case *corev1.Pod:
		s = podStep(o.DeepCopy())
	default:
		return nil
	}
	if !annotations.IsSluiceObject(s.obj) {
		return nil
	}
	var errs field.ErrorList
	for _, path := range changedOwnedKeys(nil, nil, s.obj.GetLabels(), s.obj.GetAnnotations()) {
		msg := "is set by the sluice controller only; remove it from the object"
		if strings.HasPrefix(path.String(), labelsPath.String()+"[") { // the phase label
			msg = "is set by sluice (the webhook writes the task's first phase); remove it from the object"
		}
		errs = append(errs, field.Forbidden(path, msg))
	}
	if task, res, perrs := parseStep(s.obj); len(perrs) == 0 {
		errs = append(errs, mutateStep(s.spec, task, res, "")...)
	}
	return errs
}
