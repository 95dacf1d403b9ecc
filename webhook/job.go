package webhook

import (
	"context"

	batchv1 "k8s.io/api/batch/v1"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
)

// JobWebhook mutates and validates sluice Jobs.
type JobWebhook struct {
	mutator
	validator
}

var (
	_ admission.Defaulter[*batchv1.Job] = &JobWebhook{}
	_ admission.Validator[*batchv1.Job] = &JobWebhook{}
)

// Default turns a labelled Job into a pipeline step on creation; a Job that
// waits for upstream tasks is created suspended.
func (w *JobWebhook) Default(ctx context.Context, job *batchv1.Job) error {
	return w.mutate(ctx, jobStep(job))
}

// ValidateCreate rejects a Job whose sluice keys do not parse or that does
// not fit its run.
func (w *JobWebhook) ValidateCreate(ctx context.Context, job *batchv1.Job) (admission.Warnings, error) {
	return w.validateCreate(ctx, jobStep(job))
}

// ValidateUpdate rejects changes to the keys that place a Job in its graph,
// and its release by anyone but the controller.
func (w *JobWebhook) ValidateUpdate(ctx context.Context, old, job *batchv1.Job) (admission.Warnings, error) {
	return w.validateUpdate(ctx, jobStep(old), jobStep(job))
}

// ValidateDelete allows every deletion: the controller handles the downstream.
func (w *JobWebhook) ValidateDelete(context.Context, *batchv1.Job) (admission.Warnings, error) {
	return nil, nil
}
