package webhook

import (
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/sluice-dev/sluice/annotations"
)

var (
	labelsPath      = field.NewPath("metadata", "labels")
	annotationsPath = field.NewPath("metadata", "annotations")
)

// validateCreate rejects a sluice object whose keys do not parse. The
// mutating webhook already refused it; this catches objects that reached the
// apiserver without passing through it (another mutating webhook adding keys).
func validateCreate(kind schema.GroupKind, name string, obj metav1.Object) error {
	if !annotations.IsSluiceObject(obj) {
		return nil
	}
	if _, errs := parseTask(obj); len(errs) > 0 {
		return apierrors.NewInvalid(kind, name, errs)
	}
	return nil
}

// parseTask parses the object's sluice keys and compiles its condition, so
// that a condition that can never be evaluated is refused at apply time.
func parseTask(obj metav1.Object) (*annotations.Task, field.ErrorList) {
	task, errs := annotations.Parse(obj)
	if task.When != "" {
		if _, err := annotations.CompileWhen(task.When, task.Upstreams()); err != nil {
			errs = append(errs, field.Invalid(annotationsPath.Key(annotations.WhenAnnotation), task.When, err.Error()))
		}
	}
	return task, errs
}

// validateUpdate rejects an update that changes a graph key: the run's graph
// was checked and acted on with the old values, so changing them later would
// release or hold tasks against what was applied.
func validateUpdate(kind schema.GroupKind, name string, old, obj metav1.Object) error {
	var errs field.ErrorList
	for _, key := range annotations.GraphKeys {
		oldMap, newMap, path := old.GetAnnotations(), obj.GetAnnotations(), annotationsPath
		if isLabelKey(key) {
			oldMap, newMap, path = old.GetLabels(), obj.GetLabels(), labelsPath
		}
		oldV, hadOld := oldMap[key]
		newV, hasNew := newMap[key]
		if oldV == newV && hadOld == hasNew {
			continue
		}
		if !hadOld && !annotations.IsSluiceObject(old) {
			// Opting in an existing object is not a graph change, but it
			// cannot be held or mutated after creation: say so.
			errs = append(errs, field.Forbidden(path.Key(key), "sluice keys can only be set when the object is created; create a new object instead"))
			continue
		}
		errs = append(errs, field.Forbidden(path.Key(key),
			"is immutable after creation (was "+quoteOrUnset(oldV, hadOld)+", now "+quoteOrUnset(newV, hasNew)+"); delete and recreate the object to change its place in the pipeline"))
	}
	if len(errs) > 0 {
		return apierrors.NewInvalid(kind, name, errs)
	}
	if !annotations.IsSluiceObject(obj) {
		return nil
	}
	if _, perrs := parseTask(obj); len(perrs) > 0 {
		return apierrors.NewInvalid(kind, name, perrs)
	}
	return nil
}

func isLabelKey(key string) bool {
	switch key {
	case annotations.PipelineLabel, annotations.RunLabel, annotations.TaskLabel:
		return true
	}
	return false
}

func quoteOrUnset(v string, set bool) string {
	if !set {
		return "unset"
	}
	return `"` + v + `"`
}
