package webhook

import (
	"context"
	"fmt"

	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/sluice-dev/sluice/annotations"
)

// validateOwnedKeys rejects a create or change of the controller-owned keys
// (phase, results, reason) by anyone but the controller's identity: they
// drive releases, so a forged phase could start a step early.
func (v *validator) validateOwnedKeys(ctx context.Context, oldLabels, oldAnnots, labels, annots map[string]string) field.ErrorList {
	req, err := admission.RequestFromContext(ctx)
	if err != nil || req.UserInfo.Username == v.controllerUser {
		return nil
	}
	var errs field.ErrorList
	for _, path := range changedOwnedKeys(oldLabels, oldAnnots, labels, annots) {
		errs = append(errs, field.Forbidden(path,
			"is set by the sluice controller only (user "+req.UserInfo.Username+" may not set or change it); remove it from the object"))
	}
	return errs
}

// changedOwnedKeys returns the paths of the controller-owned keys (labels,
// then annotations) that differ between the old maps and the new: set,
// changed or removed. With nil old maps, those set at all.
func changedOwnedKeys(oldLabels, oldAnnots, labels, annots map[string]string) []*field.Path {
	var paths []*field.Path
	check := func(path *field.Path, keys []string, old, cur map[string]string) {
		for _, k := range keys {
			ov, hadOld := old[k]
			nv, hasNew := cur[k]
			if ov != nv || hadOld != hasNew {
				paths = append(paths, path.Key(k))
			}
		}
	}
	check(labelsPath, annotations.ControllerLabels, oldLabels, labels)
	check(annotationsPath, annotations.ControllerAnnotations, oldAnnots, annots)
	return paths
}

// validateRelease refuses an update that releases a step sluice holds (a
// Job unsuspended, a Pod's sluice.dev/upstream gate removed) by anyone but
// the controller: another queueing controller (Kueue, say) or a user would
// start the step before its upstream tasks allow it. A Job sluice released
// is held no longer: others may suspend and resume it as they like.
func (v *validator) validateRelease(ctx context.Context, old, cur step) field.ErrorList {
	req, err := admission.RequestFromContext(ctx)
	if err != nil || req.UserInfo.Username == v.controllerUser || !annotations.IsSluiceObject(old.obj) {
		return nil
	}
	if !old.held() || cur.held() || !heldBySluice(old) {
		return nil
	}
	task := annotations.TaskOf(old.obj)
	phase := annotations.Phase(old.obj.GetLabels()[annotations.PhaseLabel])
	why := fmt.Sprintf("sluice holds task %q until its upstream tasks allow it to run", task)
	if phase.Finished() {
		why = fmt.Sprintf("task %q is %s and will not run", task, phase)
	}
	if reason := old.obj.GetAnnotations()[annotations.ReasonAnnotation]; reason != "" {
		why += " (" + reason + ")"
	}
	return field.ErrorList{field.Forbidden(cur.holdPath,
		why+"; only the sluice controller releases it (user "+req.UserInfo.Username+" may not)")}
}

// heldBySluice reports whether a held step is held by sluice: a bare Pod's
// gate is sluice's own; a Job is, while its task was never released
// (Waiting, or Skipped or UpstreamFailed without running).
func heldBySluice(s step) bool {
	if s.kind == podKind {
		return true
	}
	switch annotations.Phase(s.obj.GetLabels()[annotations.PhaseLabel]) {
	case annotations.PhaseWaiting, annotations.PhaseSkipped, annotations.PhaseUpstreamFailed:
		return true
	}
	return false
}
