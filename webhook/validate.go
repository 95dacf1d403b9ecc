package webhook

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/sluice-dev/sluice/annotations"
	"github.com/sluice-dev/sluice/index"
)

var (
	labelsPath      = field.NewPath("metadata", "labels")
	annotationsPath = field.NewPath("metadata", "annotations")
)

// validator holds what validation needs beyond the object itself.
type validator struct {
	// tasks is the index the graph checks run against; nil skips them.
	tasks *index.Runs
	// exists asks the API server whether an object the index holds only
	// from admission was really created.
	exists index.Exists
	// controllerUser is the controller's username: the only one that may
	// write the controller-owned keys.
	controllerUser string
	// nodes lists the nodes' labels for acceleratorWarnings; nil: none.
	nodes NodeLabels
}

// validateCreate rejects a sluice object whose keys do not parse (the
// mutating webhook refused it already, unless it was bypassed), that carries
// controller-owned keys, or whose task does not fit its run. An admitted task
// enters the index at once, unless the request is a dry run.
func (v *validator) validateCreate(ctx context.Context, s step) (admission.Warnings, error) {
	obj := s.obj
	if !annotations.IsSluiceObject(obj) {
		return nil, nil
	}
	task, res, errs := parseStep(obj)
	if len(errs) == 0 {
		if _, err := mainContainer(s.spec, res); err != nil {
			errs = append(errs, err)
		}
	}
	// The only phase an object may be created with is the one the mutating
	// webhook gives it.
	var created map[string]string
	if _, ok := obj.GetLabels()[annotations.PhaseLabel]; ok {
		created = map[string]string{annotations.PhaseLabel: string(task.InitialPhase())}
	}
	errs = append(errs, v.validateOwnedKeys(ctx, created, nil, obj.GetLabels(), obj.GetAnnotations())...)
	if len(errs) == 0 && v.tasks != nil {
		conflicts, err := v.tasks.Admit(ctx, s.ref(), obj.GetUID(), task, !isDryRun(ctx), v.exists)
		switch {
		case errors.Is(err, index.ErrNotSynced):
			return nil, apierrors.NewServiceUnavailable(err.Error())
		case err != nil:
			return nil, apierrors.NewInternalError(fmt.Errorf("checking task %q against run %s/%s: %w", task.Name, task.Namespace, task.Run, err))
		}
		errs = graphErrors(task, conflicts)
	}
	if len(errs) > 0 {
		return nil, invalid(s.kind, obj.GetName(), errs)
	}
	return append(resourceWarnings(s.spec, res), v.acceleratorWarnings(ctx, res)...), nil
}

// acceleratorWarnings warns when no node of the cluster offers the step's
// accelerator, and lists what they do offer. The step is admitted anyway: a
// node may join later. Without an answer about nodes, there is no warning.
func (v *validator) acceleratorWarnings(ctx context.Context, res annotations.Resources) []string {
	if res.Accelerator == "" || v.nodes == nil {
		return nil
	}
	nodes, err := v.nodes(ctx)
	if err != nil {
		ctrl.LoggerFrom(ctx).V(2).Info("Not checking the accelerator against the nodes", "accelerator", res.Accelerator, "err", err)
		return nil
	}
	match := annotations.MatchAccelerator(res.Accelerator)
	var offered []string
	for _, labels := range nodes {
		if match.Accepts(labels) {
			return nil
		}
		offered = append(offered, annotations.OfferedAccelerators(labels)...)
	}
	return []string{fmt.Sprintf("%s=%s: %s; the step cannot start until a node that offers it joins",
		annotations.AcceleratorAnnotation, res.Accelerator, annotations.NoNodeOffers(res.Accelerator, offered))}
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
// release or hold tasks against what was applied. Only the controller may
// release a step that sluice holds.
func (v *validator) validateUpdate(ctx context.Context, oldStep, s step) (admission.Warnings, error) {
	kind, old, obj := s.kind, oldStep.obj, s.obj
	name := obj.GetName()
	errs := v.validateOwnedKeys(ctx, old.GetLabels(), old.GetAnnotations(), obj.GetLabels(), obj.GetAnnotations())
	errs = append(errs, v.validateRelease(ctx, oldStep, s)...)
	for _, key := range annotations.GraphKeys {
		oldMap, newMap, path := old.GetAnnotations(), obj.GetAnnotations(), annotationsPath
		if annotations.IsLabelKey(key) {
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
		return nil, invalid(kind, name, errs)
	}
	if !annotations.IsSluiceObject(obj) {
		return nil, nil
	}
	if _, _, perrs := parseStep(obj); len(perrs) > 0 {
		return nil, invalid(kind, name, perrs)
	}
	return nil, nil
}

func quoteOrUnset(v string, set bool) string {
	if !set {
		return "unset"
	}
	return strconv.Quote(shorten(v, maxShownValue))
}
