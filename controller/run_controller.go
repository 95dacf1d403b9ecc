package controller

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/client-go/tools/events"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/klog/v2"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
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
	// TaskEvents is TaskEventsAll (the default when empty) or
	// TaskEventsFailures.
	TaskEvents string
	// StartDeadline is how long a released task's pod may be unable to
	// start before the task fails; sluice.dev/start-deadline overrides it.
	// 0: no deadline.
	StartDeadline time.Duration
}

// The values of Options.TaskEvents.
const (
	// TaskEventsAll emits an Event for every task's release and outcome.
	TaskEventsAll = "all"
	// TaskEventsFailures emits only the Warning events (UpstreamFailed,
	// TaskFailed, BadResults, RunFailed) and RunSucceeded: a run of 10,000
	// steps then writes no 20,000 Events about steps that went well (their
	// phase and reason say it).
	TaskEventsFailures = "failures"
)

// normalEvent emits a task's Normal event unless only failures are reported.
func (r *RunReconciler) normalEvent(obj client.Object, reason, action, note string) {
	if r.opts.TaskEvents != TaskEventsFailures {
		r.recorder.Eventf(obj, nil, corev1.EventTypeNormal, reason, action, "%s", note)
	}
}

// RunReconciler reconciles one run at a time: the request's name is the run
// id, its namespace the run's namespace.
type RunReconciler struct {
	client   client.Client
	recorder events.EventRecorder
	opts     Options
	now      func() time.Time
	deleted  *deletedTasks
	inbox    *inbox
	// events reads Events from the API server, uncached (SetupWithManager
	// sets it): a pending artifact volume's reason quotes its provisioner.
	events       client.Reader
	provisioning provisioningFailures

	mu     sync.Mutex
	models map[types.NamespacedName]*runModel
	// ended are the runs whose end this process recorded or saw: deleting
	// their objects later does not end them again.
	ended map[types.NamespacedName]bool
}

// NewRunReconciler returns a reconciler using the given client and recorder.
func NewRunReconciler(c client.Client, recorder events.EventRecorder, opts Options) *RunReconciler {
	if opts.ArtifactSize.IsZero() {
		opts.ArtifactSize = resource.MustParse("1Gi")
	}
	return &RunReconciler{client: c, recorder: recorder, opts: opts, now: time.Now, deleted: newDeletedTasks(), inbox: newInbox(),
		models: map[types.NamespacedName]*runModel{}, ended: map[types.NamespacedName]bool{}}
}

// SetupWithManager registers the indexes, metrics and the controller.
func (r *RunReconciler) SetupWithManager(ctx context.Context, mgr ctrl.Manager) error {
	if err := SetupIndexes(ctx, mgr.GetFieldIndexer()); err != nil {
		return err
	}
	if r.events == nil {
		r.events = mgr.GetAPIReader()
	}
	registerMetrics(mgr.GetCache())
	sluiceOnly := builder.WithPredicates(predicate.NewPredicateFuncs(func(obj client.Object) bool { return annotations.RunOf(obj) != "" }))
	toRun := r.touching(handler.EnqueueRequestsFromMapFunc(func(_ context.Context, obj client.Object) []reconcile.Request {
		return []reconcile.Request{{NamespacedName: types.NamespacedName{Namespace: obj.GetNamespace(), Name: annotations.RunOf(obj)}}}
	}))
	return ctrl.NewControllerManagedBy(mgr).
		Named("sluice-run").
		Watches(&batchv1.Job{}, toRun, sluiceOnly).
		Watches(&corev1.Pod{}, toRun, sluiceOnly).
		WithOptions(controller.Options{MaxConcurrentReconciles: max(1, r.opts.MaxConcurrentReconciles)}).
		Complete(r)
}

// touching notes, before the run is enqueued, which task an event is about;
// and the deletion of an unfinished task, which its downstream will not
// find in the cache any more (a task created again is forgotten).
func (r *RunReconciler) touching(inner handler.EventHandler) handler.EventHandler {
	return handler.Funcs{
		CreateFunc: func(ctx context.Context, e event.CreateEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			r.deleted.set(e.Object, false)
			r.inbox.touch(e.Object)
			inner.Create(ctx, e, q)
		},
		UpdateFunc: func(ctx context.Context, e event.UpdateEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			r.inbox.touch(e.ObjectNew)
			inner.Update(ctx, e, q)
		},
		DeleteFunc: func(ctx context.Context, e event.DeleteEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			if !finishedObject(e.Object) {
				r.deleted.set(e.Object, true)
			}
			r.inbox.touch(e.Object)
			inner.Delete(ctx, e, q)
		},
		GenericFunc: func(ctx context.Context, e event.GenericEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			r.inbox.touch(e.Object)
			inner.Generic(ctx, e, q)
		},
	}
}

// Reconcile brings a run up to date with what changed since its last
// reconcile: observe the touched tasks, decide the waiting tasks they can
// affect (themselves and their direct downstream, and further down only
// where a decision finished a task), act with one patch per task that
// changed, and record the run's end once every task finished.
func (r *RunReconciler) Reconcile(ctx context.Context, req reconcile.Request) (_ reconcile.Result, err error) {
	log := ctrl.LoggerFrom(ctx).WithValues("run", req.Name)
	ctx = ctrl.LoggerInto(ctx, log)
	key := req.NamespacedName
	defer func() {
		if err != nil {
			// What this reconcile drained from the inbox is not done: the
			// retry reads the run from the cache again.
			r.mu.Lock()
			delete(r.models, key)
			r.mu.Unlock()
		}
	}()

	m, touched, err := r.model(ctx, key)
	if err != nil {
		return reconcile.Result{}, err
	}
	// Tasks whose start deadline passed are looked at again, though
	// nothing about them changed.
	due, _ := m.due(r.now())
	for _, name := range due {
		if touched == nil {
			touched = map[string]taskRef{}
		}
		touched[name] = m.nodes[name].ref
	}
	changed, wake, err := r.observe(ctx, key, m, touched)
	if err != nil {
		return reconcile.Result{}, err
	}
	if len(m.nodes) == 0 {
		r.mu.Lock()
		delete(r.models, key)
		delete(r.ended, key) // its objects are gone: a new run of that name is a new run
		r.mu.Unlock()
		return reconcile.Result{}, nil
	}
	if err := r.ensureVolumeOf(ctx, key, m); err != nil {
		return reconcile.Result{}, err
	}
	// Decisions first: a release waits for no write of the upstream's own
	// outcome, which is recorded right after.
	conflicts, err := r.decideAll(ctx, key, m, wake, false)
	if err != nil {
		return reconcile.Result{}, err
	}
	for _, name := range slices.Sorted(maps.Keys(changed)) {
		if n := m.nodes[name]; n != nil && n.state.phase != annotations.PhaseWaiting {
			if conflicts, err = r.recordOrConflict(ctx, n.state, conflicts); err != nil {
				return reconcile.Result{}, err
			}
		}
	}
	if m.unfinished > 0 {
		// A run that ended has tasks to finish again (a retry): it will end
		// anew.
		r.mu.Lock()
		delete(r.ended, key)
		r.mu.Unlock()
		if !conflicts && m.outcome != "" {
			switch err := r.reopen(ctx, key, m); {
			case apierrors.IsConflict(err):
				conflicts = true
			case err != nil:
				return reconcile.Result{}, err
			}
		}
	}
	if !conflicts && m.unfinished == 0 {
		done, err := r.recordRunEnd(ctx, key.Namespace, key.Name, m)
		switch {
		case apierrors.IsConflict(err):
			conflicts = true
		case err != nil:
			return reconcile.Result{}, err
		case done:
			r.mu.Lock()
			r.ended[key] = true
			delete(r.models, key) // rebuilt from the cache if anything happens later
			r.mu.Unlock()
		}
	}
	if conflicts {
		// Someone changed a task while we decided; look at it again on a
		// fresh object.
		r.mu.Lock()
		delete(r.models, key)
		r.mu.Unlock()
		return reconcile.Result{RequeueAfter: 100 * time.Millisecond}, nil
	}
	if _, next := m.due(r.now()); next > 0 {
		return reconcile.Result{RequeueAfter: next}, nil
	}
	return reconcile.Result{}, nil
}

// model returns the run's model and the tasks touched since the last
// reconcile; a run seen for the first time (or again after its model was
// dropped) is read from the cache in full.
func (r *RunReconciler) model(ctx context.Context, key types.NamespacedName) (*runModel, map[string]taskRef, error) {
	touched := r.inbox.drain(key)
	r.mu.Lock()
	m := r.models[key]
	r.mu.Unlock()
	if m != nil {
		return m, touched, nil
	}
	var jobs batchv1.JobList
	if err := r.client.List(ctx, &jobs, client.InNamespace(key.Namespace), client.MatchingFields{RunIndex: key.Name}); err != nil {
		return nil, nil, fmt.Errorf("listing jobs of run %s: %w", key, err)
	}
	var pods corev1.PodList
	if err := r.client.List(ctx, &pods, client.InNamespace(key.Namespace), client.MatchingFields{RunIndex: key.Name}); err != nil {
		return nil, nil, fmt.Errorf("listing pods of run %s: %w", key, err)
	}
	all := map[string]taskRef{}
	for _, obj := range append(objects(pods.Items), objects(jobs.Items)...) {
		if annotations.ControlledByJob(obj) {
			continue
		}
		t, errs := annotations.Parse(obj)
		if len(errs) > 0 {
			continue
		}
		if _, dup := all[t.Name]; !dup {
			_, _, ref, _ := taskOf(obj)
			all[t.Name] = ref
		}
	}
	for name, ref := range touched {
		if _, ok := all[name]; !ok {
			all[name] = ref // deleted since: observe forgets it
		}
	}
	m = newRunModel()
	if gone := r.deleted.of(key.Namespace, key.Name); gone != nil {
		m.gone = gone
	}
	r.mu.Lock()
	r.models[key] = m
	r.mu.Unlock()
	return m, all, nil
}

func objects[T any, PT interface {
	*T
	client.Object
}](items []T) []client.Object {
	out := make([]client.Object, len(items))
	for i := range items {
		out[i] = PT(&items[i])
	}
	return out
}

// observe reads the touched tasks from the cache into the model. It returns
// the tasks whose state must be recorded, and the waiting tasks that must be
// decided.
func (r *RunReconciler) observe(ctx context.Context, key types.NamespacedName, m *runModel, touched map[string]taskRef) (changed, wake map[string]bool, err error) {
	log := ctrl.LoggerFrom(ctx)
	changed, wake = map[string]bool{}, map[string]bool{}
	var added []*node
	for _, name := range slices.Sorted(maps.Keys(touched)) {
		ref := touched[name]
		n := m.nodes[name]
		if n != nil && n.ref != ref {
			log.Info("Ignoring object: its task name is taken in this run", "object", refString(key.Namespace, ref), "task", name, "holder", refString(key.Namespace, n.ref))
			continue
		}
		obj, err := r.get(ctx, key.Namespace, ref)
		if err != nil {
			return nil, nil, err
		}
		if obj == nil {
			if n != nil {
				joins := m.remove(name)
				r.wakeDownstream(m, name, wake)
				for _, j := range joins {
					if jn := m.nodes[j]; jn != nil && jn.state.phase == annotations.PhaseWaiting && wakes(jn, nil) {
						wake[j] = true
					}
				}
			}
			continue
		}
		if annotations.RunOf(obj) != key.Name {
			continue
		}
		if n != nil && n.uid != obj.GetUID() {
			m.remove(name) // created again under the same name
			n = nil
		}
		var task *annotations.Task
		if n != nil {
			task = n.task
		} else {
			var errs field.ErrorList
			if task, errs = annotations.Parse(obj); len(errs) > 0 {
				log.Info("Ignoring object with invalid sluice keys", "object", klog.KObj(obj), "errors", errs.ToAggregate().Error())
				continue
			}
			if task.Name != name {
				continue
			}
		}
		s, err := r.observeTask(ctx, task, obj)
		if err != nil {
			return nil, nil, err
		}
		if n == nil {
			n = &node{ref: ref, uid: obj.GetUID(), task: task, state: s}
			m.add(n)
			added = append(added, n)
		} else {
			before := n.state.phase
			m.observed(n, s)
			if before != s.phase {
				r.wakeDownstream(m, name, wake)
			}
			if before.Finished() && !s.phase.Finished() {
				m.rerunning(name, wake)
			}
		}
		if _, ok := obj.GetAnnotations()[annotations.RunOutcomeAnnotation]; ok {
			m.outcome = name
		} else if m.outcome == name {
			m.outcome = ""
		}
		changed[name] = true
		if s.phase == annotations.PhaseWaiting {
			wake[name] = true
		}
	}
	if len(added) > 1 && len(added) > len(m.nodes)/2 {
		m.markCycles() // most of the run is new (a start): one pass over the graph
	} else {
		for _, n := range added {
			m.markCycle(n)
		}
	}
	for _, n := range added {
		for _, name := range n.cycle {
			wake[name] = true
		}
		// Tasks applied before this one waited for it to be created, and
		// said so in their reason: by name, or for its group to be complete.
		for _, d := range m.down[n.task.Name] {
			dn := m.nodes[d]
			if dn == nil || dn.state.phase != annotations.PhaseWaiting {
				continue
			}
			said := dn.state.object().GetAnnotations()[annotations.ReasonAnnotation] != ""
			if g := n.task.Group; said && !slices.Contains(dn.task.Upstreams(), n.task.Name) {
				said = len(m.groups[g].members) >= dn.task.WaitsForGroup(g)
			}
			if said || finished(n.state) {
				wake[d] = true
			}
		}
		if finished(n.state) {
			r.wakeDownstream(m, n.task.Name, wake)
		} else {
			m.rerunning(n.task.Name, wake)
		}
	}
	return changed, wake, nil
}

// wakeDownstream adds the waiting tasks that name's new state can decide.
// A join over thousands of tasks is thus decided once, not once per
// upstream.
func (r *RunReconciler) wakeDownstream(m *runModel, name string, wake map[string]bool) {
	var up *taskState
	if n := m.nodes[name]; n != nil {
		up = n.state
	}
	for _, d := range m.down[name] {
		if dn := m.nodes[d]; dn != nil && dn.state.phase == annotations.PhaseWaiting && wakes(dn, up) {
			wake[d] = true
		}
	}
}

// wakes reports whether an upstream's new state (nil: deleted) can decide a
// waiting task: once it was the last upstream to finish, or at once for an
// outcome the trigger acts on (a failure or skip; a failure only, for
// any-failed). An upstream that did not finish decides nothing.
func wakes(n *node, up *taskState) bool {
	switch {
	case up != nil && !up.phase.Finished():
		return false
	case n.pendingUps <= 0:
		return true
	case n.task.Trigger == annotations.TriggerAllDone:
		return false
	case up == nil: // deleted: as a failure, or missing again
		return true
	case up.phase == annotations.PhaseSucceeded:
		return false
	case n.task.Trigger == annotations.TriggerAnyFailed, n.task.Trigger == annotations.TriggerNoneFailed:
		return up.phase == annotations.PhaseFailed || up.phase == annotations.PhaseUpstreamFailed
	}
	return true
}

// get reads a task's object from the cache; nil when it is gone.
func (r *RunReconciler) get(ctx context.Context, ns string, ref taskRef) (client.Object, error) {
	var obj client.Object = &corev1.Pod{}
	if ref.job {
		obj = &batchv1.Job{}
	}
	err := r.client.Get(ctx, types.NamespacedName{Namespace: ns, Name: ref.name}, obj)
	switch {
	case apierrors.IsNotFound(err):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("reading %s: %w", refString(ns, ref), err)
	}
	if p, ok := obj.(*corev1.Pod); ok && p.DeletionTimestamp != nil && p.Status.Phase != corev1.PodSucceeded && p.Status.Phase != corev1.PodFailed {
		return nil, nil // a bare Pod on its way out counts as gone
	}
	return obj, nil
}

// observeTask derives a task's state from its object (and a Job's pods),
// with the results it recorded or that its pod left.
func (r *RunReconciler) observeTask(ctx context.Context, task *annotations.Task, obj client.Object) (*taskState, error) {
	var s *taskState
	switch o := obj.(type) {
	case *batchv1.Job:
		var pods corev1.PodList
		if err := r.client.List(ctx, &pods, client.InNamespace(o.Namespace), client.MatchingFields{JobIndex: string(o.UID)}); err != nil {
			return nil, fmt.Errorf("listing pods of job %s: %w", klog.KObj(o), err)
		}
		list := make([]*corev1.Pod, len(pods.Items))
		for i := range pods.Items {
			list[i] = &pods.Items[i]
		}
		s = observeJob(task, o, list)
		r.waitForPods(o, s)
	case *corev1.Pod:
		s = observePod(task, o)
	}
	provisioning := false
	if task.NeedsVolume() && s.phase == annotations.PhaseRunning {
		switch {
		case strings.HasPrefix(s.reason, pendingPrefix):
			if v := r.volumeReason(ctx, obj.GetNamespace(), task.Run, s.reason); v != "" {
				s.reason = oneLine(v)
			}
		case !isBlockedReason(s.reason) && awaitingBinding(s.pods):
			var v string
			if v, provisioning = r.bindingReason(ctx, obj.GetNamespace(), task.Run); v != "" {
				s.reason = oneLine(v)
			}
		}
	}
	r.applyStartDeadline(task, obj, s)
	if provisioning && s.deadline.IsZero() {
		s.deadline = r.now().Add(provisioningTTL) // look for the provisioner's answer again
	}
	if recordedPhase(obj) == s.phase && s.phase.Finished() {
		// The outcome was recorded with its reason (which may say that the
		// results did not parse); later status changes, such as the Job's
		// own Complete condition after its pod succeeded, do not rewrite it.
		s.reason = obj.GetAnnotations()[annotations.ReasonAnnotation]
	}
	json, err := collectResults(s, s.pods)
	s.resultsJSON = json
	if err != nil {
		s.reason = oneLine(s.reason + "; " + err.Error())
		if json != "" {
			s.resultsErr = err // an Event says so once the results are recorded
		}
	}
	return s, nil
}

// recordOrConflict records a task's state; a conflict is not an error, it
// makes the run be looked at again.
func (r *RunReconciler) recordOrConflict(ctx context.Context, s *taskState, conflicts bool) (bool, error) {
	err := r.record(ctx, s)
	if apierrors.IsConflict(err) {
		return true, nil
	}
	return conflicts, err
}

// releasers is how many releases of one run are sent at once: a fan-out of
// a thousand tasks is released in parallel, not one patch after the other.
const releasers = 16

// decideAll decides the woken waiting tasks, releasing those whose trigger
// and condition hold, and records each decision. A decision that finishes a
// task (skipped, upstream failed) wakes its own downstream, so a failure
// runs down the graph in one reconcile. Releases finish nothing, so they
// are sent last, in parallel.
func (r *RunReconciler) decideAll(ctx context.Context, key types.NamespacedName, m *runModel, wake map[string]bool, conflicts bool) (bool, error) {
	type release struct {
		n    *node
		next *taskState
		ups  map[string]*taskState
	}
	var releases []release
	queue := slices.Sorted(maps.Keys(wake))
	for len(queue) > 0 {
		name := queue[0]
		queue = queue[1:]
		n := m.nodes[name]
		if n == nil || (n.state.phase != annotations.PhaseWaiting && !decidedWithoutRunning(n.state.phase)) {
			continue
		}
		var d decision
		ups, groups := m.upstreams(n, func(g string) []string { return r.deleted.lost(key.Namespace, key.Name, g) })
		switch {
		case n.cycle != nil:
			d = decision{phase: annotations.PhaseFailed, reason: oneLine("on a dependency cycle: " + strings.Join(n.cycle, " -> "))}
		default:
			d = decide(n.task, ups, groups, func(up string) bool { return r.deleted.has(key.Namespace, key.Name, up) }, n.when, n.whenErr)
		}
		s := n.state
		if s.phase != annotations.PhaseWaiting {
			// Decided without running, and an upstream runs again: the
			// decision is taken back once it no longer holds. The task
			// waits again, and is decided as any waiting task.
			if d.phase.Finished() || !m.retakable(n, groups) {
				continue
			}
			back, err := r.takeBack(ctx, n, ups)
			if apierrors.IsConflict(err) {
				conflicts = true
				continue
			}
			if err != nil {
				return false, err
			}
			w := map[string]bool{name: true}
			m.rerunning(name, w)
			queue = append(queue, slices.Sorted(maps.Keys(w))...)
			m.observed(n, back)
			continue
		}
		if d.phase == annotations.PhaseWaiting {
			s.reason = d.reason
			var err error
			if conflicts, err = r.recordOrConflict(ctx, s, conflicts); err != nil {
				return false, err
			}
			continue
		}
		next := *s
		next.phase, next.reason = d.phase, d.reason
		if d.release {
			releases = append(releases, release{n: n, next: &next, ups: ups})
			continue
		}
		err := r.record(ctx, &next)
		if apierrors.IsConflict(err) {
			conflicts = true
			continue
		}
		if err != nil {
			return false, err
		}
		m.observed(n, &next)
		if next.phase.Finished() {
			before := len(queue)
			w := map[string]bool{}
			r.wakeDownstream(m, name, w)
			queue = append(queue, slices.Sorted(maps.Keys(w))...)
			slices.Sort(queue[before:])
		}
	}
	errs := make([]error, len(releases))
	var wg sync.WaitGroup
	sem := make(chan struct{}, releasers)
	for i, rel := range releases {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			errs[i] = r.release(ctx, rel.next, rel.ups)
		})
	}
	wg.Wait()
	var failed error
	for i, rel := range releases {
		switch err := errs[i]; {
		case err == nil:
			m.observed(rel.n, rel.next)
		case apierrors.IsConflict(err):
			conflicts = true
		case failed == nil:
			failed = err
		}
	}
	return conflicts, failed
}

// takeBack returns a task decided without running to Waiting, because an
// upstream it was decided on runs again (a retry): the decision is removed
// from its object, which is still held.
func (r *RunReconciler) takeBack(ctx context.Context, n *node, ups map[string]*taskState) (*taskState, error) {
	var again []string
	for name, u := range ups {
		if !finished(u) {
			again = append(again, name)
		}
	}
	back := *n.state
	back.phase, back.reason = annotations.PhaseWaiting, ""
	if err := r.patchTask(ctx, &back, func(obj client.Object) { setPhase(obj, back.phase, "") }); err != nil {
		return nil, fmt.Errorf("taking %s back to Waiting: %w", klog.KObj(n.state.object()), err)
	}
	retakes.Inc()
	msg := fmt.Sprintf("was %s (%s); upstream %s runs again: waiting for it", n.state.phase, n.state.reason, list(again))
	ctrl.LoggerFrom(ctx).V(2).Info("Took task back", "object", klog.KObj(back.object()), "task", n.task.Name, "was", n.state.phase, "upstreams", again)
	r.normalEvent(back.object(), "TakenBack", "Hold", oneLine(msg))
	return &back, nil
}

// reopen withdraws the outcome of a run that has unfinished tasks again (a
// retry) from the task that carries it: the outcome is recorded anew once
// they finish.
func (r *RunReconciler) reopen(ctx context.Context, key types.NamespacedName, m *runModel) error {
	n := m.nodes[m.outcome]
	if n == nil {
		m.outcome = ""
		return nil
	}
	was := n.state.object().GetAnnotations()[annotations.RunOutcomeAnnotation]
	err := r.patchTask(ctx, n.state, func(obj client.Object) {
		delete(obj.GetAnnotations(), annotations.RunOutcomeAnnotation)
	})
	if err != nil {
		return fmt.Errorf("withdrawing the outcome of run %s from %s: %w", key, klog.KObj(n.state.object()), err)
	}
	m.outcome = ""
	ctrl.LoggerFrom(ctx).V(2).Info("Run runs again", "was", was, "unfinished", m.unfinished)
	r.normalEvent(n.state.object(), "RunReopened", "RunEnded", fmt.Sprintf("run %s runs again (%d tasks to finish); its outcome %s is withdrawn", key, m.unfinished, was))
	return nil
}

// ensureVolumeOf creates the run's artifact volume the first time a task
// that needs one is seen.
func (r *RunReconciler) ensureVolumeOf(ctx context.Context, key types.NamespacedName, m *runModel) error {
	if m.volume || !m.needsVolume {
		return nil
	}
	var tasks []*annotations.Task
	for _, name := range slices.Sorted(maps.Keys(m.nodes)) {
		tasks = append(tasks, m.nodes[name].task)
	}
	if err := r.ensureVolume(ctx, key.Namespace, key.Name, tasks); err != nil {
		return err
	}
	m.volume = true
	return nil
}

func refString(ns string, ref taskRef) string {
	kind := "Pod"
	if ref.job {
		kind = "Job"
	}
	return kind + " " + ns + "/" + ref.name
}

// release starts a waiting task: it unsuspends the Job or removes sluice's
// scheduling gate from the Pod, and records the phase in the same patch, so
// that a restart can never release a task twice. The patch carries the
// resourceVersion the decision was made on.
func (r *RunReconciler) release(ctx context.Context, s *taskState, ups map[string]*taskState) error {
	err := r.patchTask(ctx, s, func(obj client.Object) {
		setPhase(obj, s.phase, s.reason)
		switch o := obj.(type) {
		case *batchv1.Job:
			o.Spec.Suspend = ptr.To(false)
		case *corev1.Pod:
			annotations.RemoveGate(&o.Spec)
		}
	})
	obj := s.object()
	if err != nil {
		return fmt.Errorf("releasing %s: %w", klog.KObj(obj), err)
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
	ctrl.LoggerFrom(ctx).V(2).Info("Released task", "object", klog.KObj(obj), "task", s.task.Name, "reason", s.reason)
	r.normalEvent(obj, "Released", "Release", s.reason)
	return nil
}

// record writes the task's phase and reason when they changed, and its
// results when they were just read.
func (r *RunReconciler) record(ctx context.Context, s *taskState) error {
	obj := s.object()
	if recordedPhase(obj) == s.phase && obj.GetAnnotations()[annotations.ReasonAnnotation] == s.reason && s.resultsJSON == "" &&
		!blockedSinceChanged(obj, s.blockedSince) && !s.stop {
		return nil
	}
	if s.early {
		return nil
	}
	changed := recordedPhase(obj) != s.phase
	err := r.patchTask(ctx, s, func(obj client.Object) {
		setPhase(obj, s.phase, s.reason)
		setBlockedSince(obj, s.blockedSince)
		if s.resultsJSON != "" {
			obj.GetAnnotations()[annotations.ResultsAnnotation] = s.resultsJSON
		}
		if s.stop {
			stopSpec(obj, r.now())
		}
		if p, ok := obj.(*corev1.Pod); ok {
			releaseFinalizer(p, p) // once the outcome is recorded, in the same patch
		}
	})
	if err != nil {
		return fmt.Errorf("recording phase %s of %s: %w", s.phase, klog.KObj(obj), err)
	}
	if s.stop {
		if err := r.failUnscheduled(ctx, s); err != nil {
			return err
		}
		s.stop = false
	}
	obj = s.object()
	s.resultsJSON = "" // recorded
	defer func() {
		if s.resultsErr != nil {
			r.recorder.Eventf(obj, nil, corev1.EventTypeWarning, "BadResults", "Observe", "%s", s.resultsErr.Error())
			s.resultsErr = nil
		}
	}()
	if !changed {
		return nil
	}
	decisions.WithLabelValues(string(s.phase)).Inc()
	ctrl.LoggerFrom(ctx).V(2).Info("Task phase changed", "object", klog.KObj(obj), "task", s.task.Name, "phase", s.phase, "reason", s.reason)
	switch s.phase {
	case annotations.PhaseUpstreamFailed:
		r.recorder.Eventf(obj, nil, corev1.EventTypeWarning, "UpstreamFailed", "Hold", "%s; the task will not run", s.reason)
	case annotations.PhaseSkipped:
		r.normalEvent(obj, "Skipped", "Hold", s.reason+"; the task will not run")
	case annotations.PhaseFailed:
		r.recorder.Eventf(obj, nil, corev1.EventTypeWarning, "TaskFailed", "Observe", "%s", s.reason)
	case annotations.PhaseSucceeded:
		r.normalEvent(obj, "TaskSucceeded", "Observe", s.reason)
	}
	return nil
}

// recordRunEnd reports a run whose every task has a final phase: it marks
// the task that finished last with sluice.dev/run-outcome, and, when that
// patch lands, emits an Event on it and counts the run. The mark is the
// record that the run's end was reported, so it is reported exactly once,
// whatever the restarts, conflicts or stale caches. It returns true once
// the end is recorded (now or before).
func (r *RunReconciler) recordRunEnd(ctx context.Context, ns, run string, m *runModel) (bool, error) {
	r.mu.Lock()
	ended := r.ended[types.NamespacedName{Namespace: ns, Name: run}]
	r.mu.Unlock()
	if ended {
		return true, nil
	}
	counts := map[annotations.Phase]int{}
	var last *taskState
	for _, name := range slices.Sorted(maps.Keys(m.nodes)) {
		s := m.nodes[name].state
		if !s.phase.Finished() || recordedPhase(s.object()) != s.phase {
			return false, nil
		}
		if _, done := s.object().GetAnnotations()[annotations.RunOutcomeAnnotation]; done {
			return true, nil
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
	err := r.patchTask(ctx, last, func(obj client.Object) {
		annots := obj.GetAnnotations()
		if annots == nil {
			annots = map[string]string{}
		}
		annots[annotations.RunOutcomeAnnotation] = outcome
		obj.SetAnnotations(annots)
	})
	obj := last.object()
	if err != nil {
		return false, fmt.Errorf("recording the end of run %s/%s on %s: %w", ns, run, klog.KObj(obj), err)
	}
	m.outcome = last.task.Name
	runs.WithLabelValues(outcome).Inc()
	msg := fmt.Sprintf("run %s/%s %s: %d succeeded, %d failed, %d upstream-failed, %d skipped", ns, run, strings.ToLower(outcome),
		counts[annotations.PhaseSucceeded], counts[annotations.PhaseFailed], counts[annotations.PhaseUpstreamFailed], counts[annotations.PhaseSkipped])
	ctrl.LoggerFrom(ctx).V(2).Info("Run ended", "outcome", outcome, "tasks", len(m.nodes))
	r.recorder.Eventf(obj, nil, eventType, "Run"+outcome, "RunEnded", "%s", msg)
	return true, nil
}

// patchTask writes a change to a task's object: edit changes a copy (the
// object read is the cache's own, shared, never to be changed), which is
// patched against the resourceVersion read and, once written, becomes the
// state's object.
func (r *RunReconciler) patchTask(ctx context.Context, s *taskState, edit func(client.Object)) error {
	read := s.object()
	obj := read.DeepCopyObject().(client.Object)
	edit(obj)
	if err := r.client.Patch(ctx, obj, client.MergeFromWithOptions(read, client.MergeFromWithOptimisticLock{})); err != nil {
		return err
	}
	switch o := obj.(type) {
	case *batchv1.Job:
		s.job = o
	case *corev1.Pod:
		s.pod = o
		if len(s.pods) == 1 && s.pods[0] == read {
			s.pods = []*corev1.Pod{o}
		}
	}
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
