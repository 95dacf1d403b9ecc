package webhook

import (
	"context"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/sluice-dev/sluice/annotations"
)

var podKind = corev1.SchemeGroupVersion.WithKind("Pod").GroupKind()

// PodWebhook mutates and validates bare sluice Pods. Pods created by a Job
// were mutated through the Job's template and are left alone.
type PodWebhook struct {
	validator
	// SchedulerName, when set, is given to steps that use the default scheduler.
	SchedulerName string
}

var (
	_ admission.Defaulter[*corev1.Pod] = &PodWebhook{}
	_ admission.Validator[*corev1.Pod] = &PodWebhook{}
)

func podObject() *corev1.Pod { return &corev1.Pod{} }

// Default turns a labelled bare Pod into a pipeline step on creation. A Pod
// that waits for upstream tasks is held with the sluice.dev/upstream
// scheduling gate: gates can only be added at creation.
func (w *PodWebhook) Default(ctx context.Context, pod *corev1.Pod) error {
	if !annotations.IsSluiceObject(pod) || ownedByJob(pod) || !isCreate(ctx) {
		return nil
	}
	task, res, errs := parseStep(pod)
	if len(errs) > 0 {
		return apierrors.NewInvalid(podKind, pod.Name, errs)
	}
	ctrl.LoggerFrom(ctx).V(4).Info("Mutating pod", "task", task.Name, "run", task.Run)
	setTaskLabels(&pod.ObjectMeta, task)
	if errs := mutateStep(&pod.Spec, task, res, w.SchedulerName); len(errs) > 0 {
		return apierrors.NewInvalid(podKind, pod.Name, errs)
	}
	if task.Held() {
		addGate(&pod.Spec)
	}
	return nil
}

// ValidateCreate rejects a bare Pod whose sluice keys do not parse.
func (w *PodWebhook) ValidateCreate(ctx context.Context, pod *corev1.Pod) (admission.Warnings, error) {
	if ownedByJob(pod) {
		return nil, nil
	}
	return w.validateCreate(ctx, podKind, pod, &pod.Spec)
}

// ValidateUpdate rejects changes to the keys that place a Pod in its graph.
func (w *PodWebhook) ValidateUpdate(ctx context.Context, old, pod *corev1.Pod) (admission.Warnings, error) {
	if ownedByJob(pod) {
		return nil, nil
	}
	return w.validateUpdate(ctx, podKind, old, pod, &pod.Spec)
}

// ValidateDelete allows every deletion: the controller handles the downstream.
func (w *PodWebhook) ValidateDelete(context.Context, *corev1.Pod) (admission.Warnings, error) {
	return nil, nil
}

// ownedByJob reports whether a Job controls the pod: its task is the Job.
func ownedByJob(pod *corev1.Pod) bool {
	ref := metav1.GetControllerOf(pod)
	return ref != nil && ref.Kind == "Job" && ref.APIVersion == "batch/v1"
}
