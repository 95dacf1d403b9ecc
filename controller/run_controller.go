package controller

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/sluice-dev/sluice/annotations"
)

// Options configure the controller.
type Options struct {
	// StorageClass of the run artifact volumes; empty means the cluster default.
	StorageClass string
	// AccessMode of run artifact volumes: AccessModeAuto (or empty) chooses
	// by the StorageClass, AccessModeRWO or AccessModeRWX force one.
	AccessMode string
	// ArtifactSize is the requested size of a run's artifact volume.
	ArtifactSize resource.Quantity
	// MaxConcurrentReconciles bounds how many runs are reconciled at once.
	MaxConcurrentReconciles int
}

// RunReconciler reconciles one run at a time: the request's name is the run
// id, its namespace the run's namespace.
type RunReconciler struct {
	client   client.Client
	recorder events.EventRecorder
	opts     Options
	now      func() time.Time
	deleted  *deletedTasks
}

// NewRunReconciler returns a reconciler using the given client and recorder.
func NewRunReconciler(c client.Client, recorder events.EventRecorder, opts Options) *RunReconciler {
	if opts.ArtifactSize.IsZero() {
		opts.ArtifactSize = resource.MustParse("1Gi")
	}
	return &RunReconciler{client: c, recorder: recorder, opts: opts, now: time.Now, deleted: newDeletedTasks()}
}

// SetupWithManager registers the indexes, metrics and the controller.
func (r *RunReconciler) SetupWithManager(ctx context.Context, mgr ctrl.Manager) error {
	if err := SetupIndexes(ctx, mgr.GetFieldIndexer()); err != nil {
		return err
	}
	registerMetrics(mgr.GetCache())
	sluiceOnly := builder.WithPredicates(predicate.NewPredicateFuncs(func(obj client.Object) bool { return annotations.RunOf(obj) != "" }))
	toRun := r.deleted.handler(handler.EnqueueRequestsFromMapFunc(func(_ context.Context, obj client.Object) []reconcile.Request {
		return []reconcile.Request{{NamespacedName: types.NamespacedName{Namespace: obj.GetNamespace(), Name: annotations.RunOf(obj)}}}
	}))
	return ctrl.NewControllerManagedBy(mgr).
		Named("sluice-run").
		Watches(&batchv1.Job{}, toRun, sluiceOnly).
		Watches(&corev1.Pod{}, toRun, sluiceOnly).
		WithOptions(controller.Options{MaxConcurrentReconciles: max(1, r.opts.MaxConcurrentReconciles)}).
		Complete(r)
}

// Reconcile brings every task of one run up to date.
func (r *RunReconciler) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	log := ctrl.LoggerFrom(ctx).WithValues("run", req.Name)
	ctx = ctrl.LoggerInto(ctx, log)

	states, err := r.observe(ctx, req.Namespace, req.Name)
	if err != nil {
		return reconcile.Result{}, err
	}
	if len(states) == 0 {
		return reconcile.Result{}, nil
	}
	tasks := make([]*annotations.Task, 0, len(states))
	for _, name := range slices.Sorted(maps.Keys(states)) {
		tasks = append(tasks, states[name].task)
	}
	graph, problems := annotations.NewGraph(tasks)
	for _, p := range problems {
		log.Info("Run graph is broken; affected tasks wait until it is fixed", "problem", p.Error())
	}
	if err := r.ensureVolume(ctx, req.Namespace, req.Name, tasks); err != nil {
		return reconcile.Result{}, err
	}
	// A cycle slips past admission only when its tasks were admitted at the
	// same moment (or by two replicas): they can never run, so they fail,
	// and their downstream follows the failure rules.
	order, cycles := graph.Schedule()

	var conflicts bool
	for _, name := range order {
		s := states[name]
		before := recordedPhase(s.object())
		if cycle, onCycle := cycles[name]; onCycle && s.phase == annotations.PhaseWaiting {
			s.phase, s.reason = annotations.PhaseFailed, oneLine("on a dependency cycle: "+strings.Join(cycle, " -> "))
		}
		if s.phase == annotations.PhaseWaiting {
			ups := map[string]*taskState{}
			for _, up := range s.task.Upstreams() {
				if u, ok := states[up]; ok {
					ups[up] = u
				}
			}
			d := decide(s.task, ups, func(up string) bool { return r.deleted.has(req.Namespace, req.Name, up) })
			s.phase, s.reason = d.phase, d.reason
			if d.release {
				if err := r.release(ctx, s, ups); err != nil {
					if apierrors.IsConflict(err) {
						conflicts = true
						continue
					}
					return reconcile.Result{}, err
				}
				continue
			}
		}
		if before == s.phase && s.phase.Finished() {
			// The outcome was recorded with its reason (which may say that the
			// results did not parse); later status changes, such as the Job's
			// own Complete condition after its pod succeeded, do not rewrite it.
			s.reason = s.object().GetAnnotations()[annotations.ReasonAnnotation]
		}
		json, resultsErr := collectResults(s, s.pods)
		s.resultsJSON = json
		if resultsErr != nil {
			s.reason = oneLine(s.reason + "; " + resultsErr.Error())
		}
		if err := r.record(ctx, s); err != nil {
			if apierrors.IsConflict(err) {
				conflicts = true
				continue
			}
			return reconcile.Result{}, err
		}
		if resultsErr != nil && json != "" {
			r.recorder.Eventf(s.object(), nil, corev1.EventTypeWarning, "BadResults", "Observe", "%s", resultsErr.Error())
		}
	}
	if !conflicts {
		if err := r.recordRunEnd(ctx, req.Namespace, req.Name, states); err != nil {
			if !apierrors.IsConflict(err) {
				return reconcile.Result{}, err
			}
			conflicts = true
		}
	}
	if conflicts {
		// Someone changed a task while we decided; decide again on fresh objects.
		return reconcile.Result{RequeueAfter: 100 * time.Millisecond}, nil
	}
	return reconcile.Result{}, nil
}

// observe reads every task of the run, keyed by task name.
func (r *RunReconciler) observe(ctx context.Context, ns, run string) (map[string]*taskState, error) {
	log := ctrl.LoggerFrom(ctx)
	var jobs batchv1.JobList
	if err := r.client.List(ctx, &jobs, client.InNamespace(ns), client.MatchingFields{RunIndex: run}); err != nil {
		return nil, fmt.Errorf("listing jobs of run %s/%s: %w", ns, run, err)
	}
	var pods corev1.PodList
	if err := r.client.List(ctx, &pods, client.InNamespace(ns), client.MatchingFields{RunIndex: run}); err != nil {
		return nil, fmt.Errorf("listing pods of run %s/%s: %w", ns, run, err)
	}
	podsOfJob := map[types.UID][]*corev1.Pod{}
	states := map[string]*taskState{}
	add := func(obj client.Object, observe func(*annotations.Task) *taskState) {
		task, errs := annotations.Parse(obj)
		if len(errs) > 0 {
			log.Info("Ignoring object with invalid sluice keys", "object", klogRef(obj), "errors", errs.ToAggregate().Error())
			return
		}
		if prev, dup := states[task.Name]; dup {
			log.Info("Ignoring object: its task name is taken in this run", "object", klogRef(obj), "task", task.Name, "holder", klogRef(prev.object()))
			return
		}
		states[task.Name] = observe(task)
	}
	for i := range pods.Items {
		p := &pods.Items[i]
		if uid := annotations.JobOf(p); uid != "" {
			podsOfJob[uid] = append(podsOfJob[uid], p)
			continue
		}
		if p.DeletionTimestamp == nil || p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
			add(p, func(t *annotations.Task) *taskState { return observePod(t, p) })
		}
	}
	for i := range jobs.Items {
		j := &jobs.Items[i]
		add(j, func(t *annotations.Task) *taskState { return observeJob(t, j, podsOfJob[j.UID]) })
	}
	return states, nil
}

// release starts a waiting task: it unsuspends the Job or removes sluice's
// scheduling gate from the Pod, and records the phase in the same patch, so
// that a restart can never release a task twice. The patch carries the
// resourceVersion the decision was made on.
func (r *RunReconciler) release(ctx context.Context, s *taskState, ups map[string]*taskState) error {
	obj := s.object()
	patchBase := obj.DeepCopyObject().(client.Object)
	setPhase(obj, s.phase, s.reason)
	if s.job != nil {
		s.job.Spec.Suspend = ptr.To(false)
	} else {
		annotations.RemoveGate(&s.pod.Spec)
	}
	if err := r.client.Patch(ctx, obj, client.MergeFromWithOptions(patchBase, client.MergeFromWithOptimisticLock{})); err != nil {
		return fmt.Errorf("releasing %s: %w", klogRef(obj), err)
	}
	var last time.Time
	for _, u := range ups {
		if u.finishedAt.After(last) {
			last = u.finishedAt
		}
	}
	if !last.IsZero() {
		releaseLatency.Observe(r.now().Sub(last).Seconds())
	}
	releases.Inc()
	decisions.WithLabelValues(string(s.phase)).Inc()
	ctrl.LoggerFrom(ctx).V(2).Info("Released task", "object", klogRef(obj), "task", s.task.Name, "reason", s.reason)
	r.recorder.Eventf(obj, nil, corev1.EventTypeNormal, "Released", "Release", "%s", s.reason)
	return nil
}

// record writes the task's phase and reason when they changed, and its
// results when they were just read.
func (r *RunReconciler) record(ctx context.Context, s *taskState) error {
	obj := s.object()
	if recordedPhase(obj) == s.phase && obj.GetAnnotations()[annotations.ReasonAnnotation] == s.reason && s.resultsJSON == "" {
		return nil
	}
	patchBase := obj.DeepCopyObject().(client.Object)
	changed := recordedPhase(obj) != s.phase
	setPhase(obj, s.phase, s.reason)
	if s.resultsJSON != "" {
		obj.GetAnnotations()[annotations.ResultsAnnotation] = s.resultsJSON
	}
	if err := r.client.Patch(ctx, obj, client.MergeFromWithOptions(patchBase, client.MergeFromWithOptimisticLock{})); err != nil {
		return fmt.Errorf("recording phase %s of %s: %w", s.phase, klogRef(obj), err)
	}
	if !changed {
		return nil
	}
	decisions.WithLabelValues(string(s.phase)).Inc()
	ctrl.LoggerFrom(ctx).V(2).Info("Task phase changed", "object", klogRef(obj), "task", s.task.Name, "phase", s.phase, "reason", s.reason)
	switch s.phase {
	case annotations.PhaseUpstreamFailed:
		r.recorder.Eventf(obj, nil, corev1.EventTypeWarning, "UpstreamFailed", "Hold", "%s; the task will not run", s.reason)
	case annotations.PhaseSkipped:
		r.recorder.Eventf(obj, nil, corev1.EventTypeNormal, "Skipped", "Hold", "%s; the task will not run", s.reason)
	case annotations.PhaseFailed:
		r.recorder.Eventf(obj, nil, corev1.EventTypeWarning, "TaskFailed", "Observe", "%s", s.reason)
	case annotations.PhaseSucceeded:
		r.recorder.Eventf(obj, nil, corev1.EventTypeNormal, "TaskSucceeded", "Observe", "%s", s.reason)
	}
	return nil
}

// recordRunEnd reports a run whose every task has a final phase: it marks
// the task that finished last with sluice.dev/run-outcome, and, when that
// patch lands, emits an Event on it and counts the run. The mark is the
// record that the run's end was reported, so it is reported exactly once,
// whatever the restarts, conflicts or stale caches.
func (r *RunReconciler) recordRunEnd(ctx context.Context, ns, run string, states map[string]*taskState) error {
	counts := map[annotations.Phase]int{}
	var last *taskState
	for _, name := range slices.Sorted(maps.Keys(states)) {
		s := states[name]
		if !s.phase.Finished() || recordedPhase(s.object()) != s.phase {
			return nil
		}
		if _, done := s.object().GetAnnotations()[annotations.RunOutcomeAnnotation]; done {
			return nil
		}
		counts[s.phase]++
		if last == nil || !s.finishedAt.Before(last.finishedAt) {
			last = s
		}
	}
	outcome, eventType := "Succeeded", corev1.EventTypeNormal
	if counts[annotations.PhaseFailed]+counts[annotations.PhaseUpstreamFailed] > 0 {
		outcome, eventType = "Failed", corev1.EventTypeWarning
	}
	obj := last.object()
	patchBase := obj.DeepCopyObject().(client.Object)
	obj.GetAnnotations()[annotations.RunOutcomeAnnotation] = outcome
	if err := r.client.Patch(ctx, obj, client.MergeFromWithOptions(patchBase, client.MergeFromWithOptimisticLock{})); err != nil {
		return fmt.Errorf("recording the end of run %s/%s on %s: %w", ns, run, klogRef(obj), err)
	}
	runs.WithLabelValues(outcome).Inc()
	msg := fmt.Sprintf("run %s/%s %s: %d succeeded, %d failed, %d upstream-failed, %d skipped", ns, run, strings.ToLower(outcome),
		counts[annotations.PhaseSucceeded], counts[annotations.PhaseFailed], counts[annotations.PhaseUpstreamFailed], counts[annotations.PhaseSkipped])
	ctrl.LoggerFrom(ctx).V(2).Info("Run ended", "outcome", outcome, "tasks", len(states))
	r.recorder.Eventf(obj, nil, eventType, "Run"+outcome, "RunEnded", "%s", msg)
	return nil
}

func setPhase(obj client.Object, phase annotations.Phase, reason string) {
	labels := obj.GetLabels()
	if labels == nil {
		labels = map[string]string{}
	}
	labels[annotations.PhaseLabel] = string(phase)
	obj.SetLabels(labels)
	annots := obj.GetAnnotations()
	if annots == nil {
		annots = map[string]string{}
	}
	if reason == "" {
		delete(annots, annotations.ReasonAnnotation)
	} else {
		annots[annotations.ReasonAnnotation] = reason
	}
	obj.SetAnnotations(annots)
}

func klogRef(obj client.Object) string { return obj.GetNamespace() + "/" + obj.GetName() }
