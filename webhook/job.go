package webhook

import (
	"context"
	"fmt"

	admissionv1 "k8s.io/api/admission/v1"
	batchv1 "k8s.io/api/batch/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/sluice-dev/sluice/annotations"
)

var jobKind = batchv1.SchemeGroupVersion.WithKind("Job").GroupKind()

// JobWebhook mutates and validates sluice Jobs.
type JobWebhook struct {
	validator
	// SchedulerName, when set, is given to steps that use the default scheduler.
	SchedulerName string
}

var (
	_ admission.Defaulter[*batchv1.Job] = &JobWebhook{}
	_ admission.Validator[*batchv1.Job] = &JobWebhook{}
)

// Default turns a labelled Job into a pipeline step on creation: it writes
// the task labels on the Job and its pod template, injects artifacts and
// env, and suspends the Job when it has to wait for upstream tasks.
func (w *JobWebhook) Default(ctx context.Context, job *batchv1.Job) error {
	if !annotations.IsSluiceObject(job) || !isCreate(ctx) {
		return nil
	}
	task, res, errs := parseStep(job)
	if len(errs) > 0 {
		return apierrors.NewInvalid(jobKind, job.Name, errs)
	}
	ctrl.LoggerFrom(ctx).V(4).Info("Mutating job", "task", task.Name, "run", task.Run)
	setTaskLabels(&job.ObjectMeta, task)
	setTaskLabels(&job.Spec.Template.ObjectMeta, task)
	if errs := mutateStep(&job.Spec.Template.Spec, task, res, w.SchedulerName); len(errs) > 0 {
		return apierrors.NewInvalid(jobKind, job.Name, errs)
	}
	if task.Held() {
		job.Spec.Suspend = ptr.To(true)
	}
	return nil
}

// ValidateCreate rejects a Job whose sluice keys do not parse.
func (w *JobWebhook) ValidateCreate(ctx context.Context, job *batchv1.Job) (admission.Warnings, error) {
	return w.validateCreate(ctx, jobKind, job, &job.Spec.Template.Spec)
}

// ValidateUpdate rejects changes to the keys that place a Job in its graph.
func (w *JobWebhook) ValidateUpdate(ctx context.Context, old, job *batchv1.Job) (admission.Warnings, error) {
	return w.validateUpdate(ctx, jobKind, old, job, &job.Spec.Template.Spec)
}

// ValidateDelete allows every deletion: the controller handles the downstream.
func (w *JobWebhook) ValidateDelete(context.Context, *batchv1.Job) (admission.Warnings, error) {
	return nil, nil
}

func isCreate(ctx context.Context) bool {
	req, err := admission.RequestFromContext(ctx)
	return err == nil && req.Operation == admissionv1.Create
}

// Options configure the webhooks.
type Options struct {
	// ControllerUsername is the identity allowed to write the
	// controller-owned keys (the manager's own, see WhoAmI).
	ControllerUsername string
	// SchedulerName is set on steps that would use the default scheduler
	// (empty: leave schedulerName alone).
	SchedulerName string
}

// SetupWebhooks registers the Job and Pod webhooks with the manager, at
// controller-runtime's default paths (/mutate-batch-v1-job, /mutate--v1-pod,
// /validate-batch-v1-job, /validate--v1-pod).
func SetupWebhooks(mgr ctrl.Manager, opts Options) error {
	v := validator{reader: mgr.GetAPIReader(), controllerUser: opts.ControllerUsername}
	if err := ctrl.NewWebhookManagedBy(mgr, &batchv1.Job{}).
		WithDefaulter(&JobWebhook{SchedulerName: opts.SchedulerName}).
		WithValidator(&JobWebhook{validator: v}).
		Complete(); err != nil {
		return fmt.Errorf("setting up the job webhook: %w", err)
	}
	if err := ctrl.NewWebhookManagedBy(mgr, podObject()).
		WithDefaulter(&PodWebhook{SchedulerName: opts.SchedulerName}).
		WithValidator(&PodWebhook{validator: v}).
		Complete(); err != nil {
		return fmt.Errorf("setting up the pod webhook: %w", err)
	}
	return nil
}
