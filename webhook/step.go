package webhook

import (
	"context"
	"errors"
	"net/http"
	"slices"

	admissionv1 "k8s.io/api/admission/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/sluice-dev/sluice/annotations"
	"github.com/sluice-dev/sluice/index"
)

var (
	jobKind = batchv1.SchemeGroupVersion.WithKind("Job").GroupKind()
	podKind = corev1.SchemeGroupVersion.WithKind("Pod").GroupKind()
)

// step is a Job or a bare Pod as the webhooks see it: the object, the pod
// spec its step runs, where the task labels go, and how it is held.
type step struct {
	kind  schema.GroupKind
	obj   metav1.Object
	spec  *corev1.PodSpec
	metas []*metav1.ObjectMeta
	// pods is the metadata the step's pods get: a Job's template, or the
	// Pod itself.
	pods *metav1.ObjectMeta
	// hold holds the step; held reports whether it is held, by the field
	// at holdPath.
	hold     func()
	held     func() bool
	holdPath *field.Path
}

func jobStep(job *batchv1.Job) step {
	return step{
		kind: jobKind, obj: job, spec: &job.Spec.Template.Spec,
		metas:    []*metav1.ObjectMeta{&job.ObjectMeta, &job.Spec.Template.ObjectMeta},
		pods:     &job.Spec.Template.ObjectMeta,
		hold:     func() { job.Spec.Suspend = ptr.To(true) },
		held:     func() bool { return ptr.Deref(job.Spec.Suspend, false) },
		holdPath: field.NewPath("spec", "suspend"),
	}
}

// podStep holds a bare Pod with sluice's scheduling gate: gates can only be
// added at creation.
func podStep(pod *corev1.Pod) step {
	return step{
		kind: podKind, obj: pod, spec: &pod.Spec,
		metas:    []*metav1.ObjectMeta{&pod.ObjectMeta},
		pods:     &pod.ObjectMeta,
		hold:     func() { annotations.AddGate(&pod.Spec) },
		held:     func() bool { return annotations.HasGate(&pod.Spec) },
		holdPath: field.NewPath("spec", "schedulingGates"),
	}
}

func (s step) ref() index.Ref {
	return index.Ref{Kind: s.kind.Kind, Namespace: s.obj.GetNamespace(), Name: s.obj.GetName()}
}

// mutator is the mutating side, shared by Jobs and Pods.
type mutator struct {
	// schedulerName, when set, is given to steps that use the default scheduler.
	schedulerName string
}

// mutate turns a labelled object into a pipeline step on creation: it writes
// the task labels, injects artifacts, env and resources, and holds the step
// when it has to wait for upstream tasks.
func (m mutator) mutate(ctx context.Context, s step) error {
	if !annotations.IsSluiceObject(s.obj) || !isCreate(ctx) {
		return nil
	}
	task, res, errs := parseStep(s.obj)
	if len(errs) > 0 {
		return invalid(s.kind, s.obj.GetName(), errs)
	}
	ctrl.LoggerFrom(ctx).V(4).Info("Mutating step", "kind", s.kind.Kind, "task", task.Name, "run", task.Run)
	for _, meta := range s.metas {
		setTaskLabels(meta, task)
		setAccelerator(meta, res)
	}
	// The task starts in its first phase, so that the controller has
	// nothing to write until it releases or finishes it.
	s.metas[0].Labels[annotations.PhaseLabel] = string(task.InitialPhase())
	if errs := mutateStep(s.spec, task, res, m.schedulerName); len(errs) > 0 {
		return invalid(s.kind, s.obj.GetName(), errs)
	}
	if !slices.Contains(s.pods.Finalizers, annotations.ResultsFinalizer) {
		s.pods.Finalizers = append(s.pods.Finalizers, annotations.ResultsFinalizer)
	}
	if task.Held() {
		s.hold()
	}
	return nil
}

// mutatingHandler serves the mutating webhook of one kind: it decodes the
// object, mutates it and answers with the JSON patch of what changed
// (jsonPatch), as controller-runtime's defaulting handler would, without
// diffing whole documents.
type mutatingHandler[T client.Object] struct {
	decoder admission.Decoder
	newObj  func() T
	step    func(T) step
	mutator mutator
}

func newMutatingHandler[T client.Object](m mutator, newObj func() T, step func(T) step) *admission.Webhook {
	return &admission.Webhook{Handler: &mutatingHandler[T]{decoder: admission.NewDecoder(scheme.Scheme), newObj: newObj, step: step, mutator: m}}
}

func (h *mutatingHandler[T]) Handle(ctx context.Context, req admission.Request) admission.Response {
	if req.Operation != admissionv1.Create {
		return admission.Allowed("")
	}
	ctx = admission.NewContextWithRequest(ctx, req)
	obj := h.newObj()
	if err := h.decoder.DecodeRaw(req.Object, obj); err != nil {
		return admission.Errored(http.StatusBadRequest, err)
	}
	before := obj.DeepCopyObject()
	if err := h.mutator.mutate(ctx, h.step(obj)); err != nil {
		var status apierrors.APIStatus
		if errors.As(err, &status) {
			return admission.Response{AdmissionResponse: admissionv1.AdmissionResponse{Allowed: false, Result: ptr.To(status.Status())}}
		}
		return admission.Denied(err.Error())
	}
	return admission.Patched("", jsonPatch(before, obj)...)
}

func isCreate(ctx context.Context) bool {
	req, err := admission.RequestFromContext(ctx)
	return err == nil && req.Operation == admissionv1.Create
}

func isDryRun(ctx context.Context) bool {
	req, err := admission.RequestFromContext(ctx)
	return err == nil && ptr.Deref(req.DryRun, false)
}
