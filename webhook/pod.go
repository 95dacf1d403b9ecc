package webhook

import (
	"context"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/sluice-dev/sluice/annotations"
)

// PodWebhook mutates and validates bare sluice Pods. Pods created by a Job
// were mutated through the Job's template and are left alone.
type PodWebhook struct {
	mutator
	validator
}

var (
	_ admission.Defaulter[*corev1.Pod] = &PodWebhook{}
	_ admission.Validator[*corev1.Pod] = &PodWebhook{}
)

// Default turns a labelled bare Pod into a pipeline step on creation; a Pod
// that waits for upstream tasks is created with the sluice.dev/upstream
// scheduling gate.
func (w *PodWebhook) Default(ctx context.Context, pod *corev1.Pod) error {
	if annotations.ControlledByJob(pod) {
		return nil
	}
	return w.mutate(ctx, podStep(pod))
}

// ValidateCreate rejects a bare Pod whose sluice keys do not parse or that
// does not fit its run.
func (w *PodWebhook) ValidateCreate(ctx context.Context, pod *corev1.Pod) (admission.Warnings, error) {
	if annotations.ControlledByJob(pod) {
		return nil, nil
	}
	return w.validateCreate(ctx, podStep(pod))
}

// ValidateUpdate rejects changes to the keys that place a Pod in its graph,
// and its release by anyone but the controller.
func (w *PodWebhook) ValidateUpdate(ctx context.Context, old, pod *corev1.Pod) (admission.Warnings, error) {
	if annotations.ControlledByJob(pod) {
		return nil, nil
	}
	return w.validateUpdate(ctx, podStep(old), podStep(pod))
}

// ValidateDelete allows every deletion: the controller handles the downstream.
func (w *PodWebhook) ValidateDelete(context.Context, *corev1.Pod) (admission.Warnings, error) {
	return nil, nil
}
