package controller

import (
	"context"
	"fmt"
	"slices"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/sluice-dev/sluice/annotations"
)

// podKept reports whether sluice still needs pod p, whose task's object is
// task (its Job, or p itself for a bare Pod; nil when the Job is gone), to
// read the task's results: until the outcome and results are recorded,
// unless the task will never read anything from p.
func podKept(p *corev1.Pod, task client.Object) bool {
	if task == nil || task.GetDeletionTimestamp() != nil && task != client.Object(p) {
		return false // the task is gone: nobody will read p
	}
	if _, ok := task.GetAnnotations()[annotations.ResultsAnnotation]; ok {
		return false // read and recorded
	}
	switch recordedPhase(task) {
	case annotations.PhaseSkipped, annotations.PhaseUpstreamFailed:
		return false // decided without running
	}
	return !nothingToRead(p)
}

// nothingToRead reports whether pod p will never leave a termination
// message: finished without any of its containers having run to an end
// (an image never pulled, a pod no node took by its deadline), or deleted
// before any node took it.
func nothingToRead(p *corev1.Pod) bool {
	switch {
	case p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed:
		return !slices.ContainsFunc(p.Status.ContainerStatuses, func(cs corev1.ContainerStatus) bool { return cs.State.Terminated != nil })
	case p.Spec.NodeName == "":
		return p.DeletionTimestamp != nil
	}
	return false
}

// releaseFinalizer removes sluice's results finalizer from pod p (in
// memory, for the caller's patch) when p carries it and is no longer kept.
// It reports whether it did.
func releaseFinalizer(p *corev1.Pod, task client.Object) bool {
	return controllerutil.ContainsFinalizer(p, annotations.ResultsFinalizer) && !podKept(p, task) &&
		controllerutil.RemoveFinalizer(p, annotations.ResultsFinalizer)
}

// FinalizerReconciler removes sluice.dev/results from a step's pods once
// their task no longer needs them: when the task's outcome and results are
// recorded, when the pod has nothing to read, or when its Job is gone. A
// bare Pod's finalizer goes in the patch that records its outcome (see
// RunReconciler.record); this reconciler covers the pods of Jobs and what
// that patch does not.
type FinalizerReconciler struct {
	client  client.Client
	workers int
}

// NewFinalizerReconciler returns the reconciler; workers is how many pods
// it handles at once.
func NewFinalizerReconciler(c client.Client, workers int) *FinalizerReconciler {
	return &FinalizerReconciler{client: c, workers: max(1, workers)}
}

// SetupWithManager watches the pods that carry the finalizer, and the Jobs
// whose outcome was just recorded (which releases their pods). It needs the
// pod index by Job (SetupIndexes).
func (r *FinalizerReconciler) SetupWithManager(mgr ctrl.Manager) error {
	carries := builder.WithPredicates(predicate.NewPredicateFuncs(func(obj client.Object) bool {
		return controllerutil.ContainsFinalizer(obj, annotations.ResultsFinalizer)
	}))
	recorded := builder.WithPredicates(predicate.NewPredicateFuncs(func(obj client.Object) bool {
		_, ok := obj.GetAnnotations()[annotations.ResultsAnnotation]
		return annotations.RunOf(obj) != "" && (ok || recordedPhase(obj).Finished() || obj.GetDeletionTimestamp() != nil)
	}))
	return ctrl.NewControllerManagedBy(mgr).
		Named("sluice-results-finalizer").
		For(&corev1.Pod{}, carries).
		Watches(&batchv1.Job{}, handler.EnqueueRequestsFromMapFunc(r.podsOfJob), recorded).
		WithOptions(controller.Options{MaxConcurrentReconciles: r.workers}).
		Complete(r)
}

func (r *FinalizerReconciler) podsOfJob(ctx context.Context, job client.Object) []reconcile.Request {
	var pods corev1.PodList
	if err := r.client.List(ctx, &pods, client.InNamespace(job.GetNamespace()), client.MatchingFields{JobIndex: string(job.GetUID())}); err != nil {
		ctrl.LoggerFrom(ctx).Error(err, "Listing the pods of a Job", "job", klog.KObj(job))
		return nil
	}
	var reqs []reconcile.Request
	for i := range pods.Items {
		if controllerutil.ContainsFinalizer(&pods.Items[i], annotations.ResultsFinalizer) {
			reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&pods.Items[i])})
		}
	}
	return reqs
}

// Reconcile removes the finalizer from one pod if its task no longer needs
// it. A conflict is not an error: the change that caused it brings the pod
// back.
func (r *FinalizerReconciler) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	var pod corev1.Pod
	if err := r.client.Get(ctx, req.NamespacedName, &pod); err != nil {
		return reconcile.Result{}, client.IgnoreNotFound(err)
	}
	if !controllerutil.ContainsFinalizer(&pod, annotations.ResultsFinalizer) {
		return reconcile.Result{}, nil
	}
	task, err := r.taskOf(ctx, &pod)
	if err != nil {
		return reconcile.Result{}, err
	}
	before := pod.DeepCopy()
	if !releaseFinalizer(&pod, task) {
		return reconcile.Result{}, nil
	}
	err = r.client.Patch(ctx, &pod, client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{}))
	switch {
	case apierrors.IsConflict(err), apierrors.IsNotFound(err):
		return reconcile.Result{}, nil
	case err != nil:
		return reconcile.Result{}, fmt.Errorf("removing finalizer %s from pod %s: %w", annotations.ResultsFinalizer, klog.KObj(&pod), err)
	}
	ctrl.LoggerFrom(ctx).V(4).Info("Released pod", "pod", klog.KObj(&pod))
	return reconcile.Result{}, nil
}

// taskOf returns the object of the pod's task: the pod itself when it is a
// bare Pod, else the Job that controls it, or nil when that Job is gone (or
// is another Job of the same name).
func (r *FinalizerReconciler) taskOf(ctx context.Context, pod *corev1.Pod) (client.Object, error) {
	ref := metav1.GetControllerOf(pod)
	if ref == nil || ref.Kind != "Job" {
		return pod, nil
	}
	var job batchv1.Job
	err := r.client.Get(ctx, types.NamespacedName{Namespace: pod.Namespace, Name: ref.Name}, &job)
	switch {
	case apierrors.IsNotFound(err):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("reading job %s of pod %s: %w", ref.Name, klog.KObj(pod), err)
	case job.UID != ref.UID:
		return nil, nil
	}
	return &job, nil
}
