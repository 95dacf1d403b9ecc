package webhook

import (
	"context"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/sluice-dev/sluice/annotations"
)

var (
	labelsPath      = field.NewPath("metadata", "labels")
	annotationsPath = field.NewPath("metadata", "annotations")
)

// validator holds what validation needs beyond the object itself.
type validator struct {
	// reader lists the other tasks of a run; nil skips the graph checks.
	reader client.Reader
	// controllerUser is the controller's username: the only one that may
	// write the controller-owned keys.
	controllerUser string
}

// validateCreate rejects a sluice object whose keys do not parse (the
// mutating webhook refused it already, unless it was bypassed), whose task
// does not fit its run, or that carries controller-owned keys.
func (v *validator) validateCreate(ctx context.Context, kind schema.GroupKind, obj metav1.Object, spec *corev1.PodSpec) (admission.Warnings, error) {
	if !annotations.IsSluiceObject(obj) {
		return nil, nil
	}
	task, res, errs := parseStep(obj)
	if len(errs) == 0 {
		if _, err := mainContainer(spec, res); err != nil {
			errs = append(errs, err)
		}
	}
	errs = append(errs, v.validateOwnedKeys(ctx, nil, nil, obj.GetLabels(), obj.GetAnnotations())...)
	if len(errs) == 0 && v.reader != nil {
		existing, err := runTasks(ctx, v.reader, task.Namespace, task.Run)
		if err != nil {
			return nil, apierrors.NewInternalError(err)
		}
		errs = validateGraph(task, kind.Kind+" "+obj.GetNamespace()+"/"+obj.GetName(), existing)
	}
	if len(errs) > 0 {
		return nil, apierrors.NewInvalid(kind, obj.GetName(), errs)
	}
	return resourceWarnings(spec, res), nil
}

// parseStep parses the object's sluice keys and resource annotations, and
// compiles its condition, so that a condition that can never be evaluated is
// refused at apply time.
func parseStep(obj metav1.Object) (*annotations.Task, annotations.Resources, field.ErrorList) {
	task, errs := annotations.Parse(obj)
	if task.When != "" {
		if _, err := annotations.CompileWhen(task.When, task.Upstreams()); err != nil {
			errs = append(errs, field.Invalid(annotationsPath.Key(annotations.WhenAnnotation), task.When, err.Error()))
		}
	}
	res, resErrs := annotations.ParseResources(obj)
	return task, res, append(errs, resErrs...)
}

// validateUpdate rejects an update that changes a graph key: the run's graph
// was checked and acted on with the old values, so changing them later would
// release or hold tasks against what was applied.
func (v *validator) validateUpdate(ctx context.Context, kind schema.GroupKind, old, obj metav1.Object, spec *corev1.PodSpec) (admission.Warnings, error) {
	name := obj.GetName()
	errs := v.validateOwnedKeys(ctx, old.GetLabels(), old.GetAnnotations(), obj.GetLabels(), obj.GetAnnotations())
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
		return nil, apierrors.NewInvalid(kind, name, errs)
	}
	if !annotations.IsSluiceObject(obj) {
		return nil, nil
	}
	if _, _, perrs := parseStep(obj); len(perrs) > 0 {
		return nil, apierrors.NewInvalid(kind, name, perrs)
	}
	return nil, nil
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
