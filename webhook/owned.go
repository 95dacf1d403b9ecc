package webhook

import (
	"context"

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
	check := func(path *field.Path, keys []string, old, cur map[string]string) {
		for _, k := range keys {
			ov, hadOld := old[k]
			nv, hasNew := cur[k]
			if ov == nv && hadOld == hasNew {
				continue
			}
			errs = append(errs, field.Forbidden(path.Key(k),
				"is set by the sluice controller only (user "+req.UserInfo.Username+" may not set or change it); remove it from the object"))
		}
	}
	check(labelsPath, annotations.ControllerLabels, oldLabels, labels)
	check(annotationsPath, annotations.ControllerAnnotations, oldAnnots, annots)
	return errs
}
