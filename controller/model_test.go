package controller

import (
	"context"
	"fmt"
	"sync"
	"testing"

	batchv1 "k8s.io/api/batch/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/sluice-dev/sluice/annotations"
	utiltesting "github.com/sluice-dev/sluice/annotations/testing"
)

// calls counts the client calls a reconcile makes (releases are sent in
// parallel: counted under mu).
type calls struct{ get, list, patch int }

var callsMu sync.Mutex

func countingClient(counts *calls, objs ...client.Object) client.Client {
	return indexedClient().
		WithStatusSubresource(&batchv1.Job{}).
		WithObjects(objs...).
		WithInterceptorFuncs(interceptor.Funcs{
			Get: func(ctx context.Context, c client.WithWatch, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
				callsMu.Lock()
				counts.get++
				callsMu.Unlock()
				return c.Get(ctx, key, obj, opts...)
			},
			List: func(ctx context.Context, c client.WithWatch, list client.ObjectList, opts ...client.ListOption) error {
				callsMu.Lock()
				counts.list++
				callsMu.Unlock()
				return c.List(ctx, list, opts...)
			},
			Patch: func(ctx context.Context, c client.WithWatch, obj client.Object, patch client.Patch, opts ...client.PatchOption) error {
				callsMu.Lock()
				counts.patch++
				callsMu.Unlock()
				return c.Patch(ctx, obj, patch, opts...)
			},
		}).Build()
}

// reconcileCounted reconciles run ml/p once and returns the client calls
// it made.
func reconcileCounted(t *testing.T, r *RunReconciler, n *calls, what string) calls {
	t.Helper()
	*n = calls{}
	if _, err := r.Reconcile(context.Background(), reconcile.Request{NamespacedName: types.NamespacedName{Namespace: "ml", Name: "p"}}); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	return *n
}

// completeJob plays the Job controller: Job ml/name completes, and the
// reconciler hears of it.
func completeJob(t *testing.T, c client.Client, r *RunReconciler, name string) {
	t.Helper()
	var j batchv1.Job
	if err := c.Get(context.Background(), types.NamespacedName{Namespace: "ml", Name: name}, &j); err != nil {
		t.Fatal(err)
	}
	if err := c.Status().Update(context.Background(), completed(&j)); err != nil {
		t.Fatal(err)
	}
	r.inbox.touch(&j)
}

// TestEventCostsOnlyWhatItTouches runs 1 -> 200 -> 1 through the model: each
// event reads the one task it is about, writes what changed (one patch per
// task), and the join is decided once, when its last upstream finishes.
func TestEventCostsOnlyWhatItTouches(t *testing.T) {
	const width = 200
	ctx := context.Background()
	// As the mutating webhook creates them: labelled with their first phase.
	objs := []client.Object{utiltesting.MakeJob("root", "ml").UID("u-root").Label(annotations.PhaseLabel, "Running").Obj()}
	var workers []string
	for i := range width {
		name := fmt.Sprintf("w%d", i)
		workers = append(workers, name)
		objs = append(objs, suspended(utiltesting.MakeJob(name, "ml").UID("u-"+name).After("root").Label(annotations.PhaseLabel, "Waiting").Obj()))
	}
	objs = append(objs, suspended(utiltesting.MakeJob("join", "ml").After(workers...).Label(annotations.PhaseLabel, "Waiting").Obj()))
	var n calls
	c := countingClient(&n, objs...)
	r := NewRunReconciler(c, events.NewFakeRecorder(10*width), Options{})
	run := func(what string) calls { t.Helper(); return reconcileCounted(t, r, &n, what) }
	finish := func(name string) { t.Helper(); completeJob(t, c, r, name) }
	suspendedJob := func(name string) bool {
		var j batchv1.Job
		if err := c.Get(ctx, types.NamespacedName{Namespace: "ml", Name: name}, &j); err != nil {
			t.Fatal(err)
		}
		return ptr.Deref(j.Spec.Suspend, false)
	}

	if got := run("first look at the run"); got.patch != 0 {
		t.Errorf("first reconcile wrote %d times; a run as the webhook created it needs no write", got.patch)
	}
	finish("root")
	if got := run("root finished"); got != (calls{get: 1, list: 1, patch: 1 + width}) {
		t.Errorf("root finished: %+v; want 1 get, 1 list (its pods), %d patches (its outcome, each worker's release)", got, 1+width)
	}
	for i, w := range workers {
		finish(w)
		got := run(w + " finished")
		want := calls{get: 1, list: 1, patch: 1}
		if i == width-1 {
			want.patch = 2 // and the join's release
		}
		if got != want {
			t.Fatalf("%s finished: %+v, want %+v", w, got, want)
		}
		if last := i == width-1; suspendedJob("join") == last {
			t.Fatalf("after %s finished: join suspended = %v", w, !last)
		}
	}

	// A new controller (a restart) rebuilds the run from the cache, and
	// has nothing to write.
	r = NewRunReconciler(c, events.NewFakeRecorder(10), Options{})
	if got := run("after a restart"); got.patch != 0 {
		t.Errorf("after a restart: %d writes, want none", got.patch)
	}
	finish("join")
	if got := run("join finished"); got.get != 1 || got.patch != 2 {
		t.Errorf("join finished: %+v; want 1 get, 2 patches (its outcome, the run's)", got)
	}
	var jobs batchv1.JobList
	if err := c.List(ctx, &jobs); err != nil {
		t.Fatal(err)
	}
	var marked []string
	var join *batchv1.Job
	for i := range jobs.Items {
		j := &jobs.Items[i]
		if j.Annotations[annotations.RunOutcomeAnnotation] == "Succeeded" {
			marked = append(marked, j.Name)
		}
		if j.Name == "join" {
			join = j
		}
	}
	if len(marked) != 1 {
		t.Errorf("tasks marked with the run's outcome: %v, want one", marked)
	}
	if got := join.Annotations[annotations.ReasonAnnotation]; got != "Job completed" {
		t.Errorf("join's reason = %q", got)
	}
}

// TestCycleClosedByALaterTask: the task that closes a cycle arrives in an
// event of its own (two replicas admitted the tasks at the same moment).
func TestCycleClosedByALaterTask(t *testing.T) {
	ctx := context.Background()
	var n calls
	c := countingClient(&n,
		utiltesting.MakeJob("prep", "ml").Label(annotations.PhaseLabel, "Running").Obj(),
		suspended(utiltesting.MakeJob("a", "ml").After("prep", "b").Label(annotations.PhaseLabel, "Waiting").Obj()),
		suspended(utiltesting.MakeJob("report", "ml").After("b").Label(annotations.PhaseLabel, "Waiting").Obj()))
	r := NewRunReconciler(c, events.NewFakeRecorder(20), Options{})
	req := reconcile.Request{NamespacedName: types.NamespacedName{Namespace: "ml", Name: "p"}}
	if _, err := r.Reconcile(ctx, req); err != nil {
		t.Fatal(err)
	}
	b := suspended(utiltesting.MakeJob("b", "ml").After("a").Label(annotations.PhaseLabel, "Waiting").Obj())
	if err := c.Create(ctx, b); err != nil {
		t.Fatal(err)
	}
	r.inbox.touch(b)
	if _, err := r.Reconcile(ctx, req); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"a":      "Failed: on a dependency cycle: a -> b -> a",
		"b":      "Failed: on a dependency cycle: b -> a -> b",
		"report": "UpstreamFailed: upstream b failed",
		"prep":   "Running: ",
	}
	for name, w := range want {
		var j batchv1.Job
		if err := c.Get(ctx, types.NamespacedName{Namespace: "ml", Name: name}, &j); err != nil {
			t.Fatal(err)
		}
		if got := j.Labels[annotations.PhaseLabel] + ": " + j.Annotations[annotations.ReasonAnnotation]; got != w {
			t.Errorf("%s: %q, want %q", name, got, w)
		}
	}
}

// TestJoinOverAGroup runs 1 -> 200 -> 1 with the join waiting for a
// group, created before half of its tasks: it says what it waits for once,
// is decided once its last task finished, and nothing in between writes it.
// (The fake client's writes cost milliseconds each: TestModelJoinOf10000
// takes the model alone to 10,000.)
func TestJoinOverAGroup(t *testing.T) {
	const size, half = 200, 100
	ctx := context.Background()
	member := func(i int) *batchv1.Job {
		name := fmt.Sprintf("shard-%d", i)
		return suspended(utiltesting.MakeJob(name, "ml").UID("u-"+name).After("root").Group("shards").Label(annotations.PhaseLabel, "Waiting").Obj())
	}
	objs := []client.Object{
		utiltesting.MakeJob("root", "ml").UID("u-root").Label(annotations.PhaseLabel, "Running").Obj(),
		suspended(utiltesting.MakeJob("join", "ml").UID("u-join").AfterGroup(fmt.Sprintf("shards=%d", size)).Label(annotations.PhaseLabel, "Waiting").Obj()),
	}
	for i := range half {
		objs = append(objs, member(i))
	}
	var n calls
	c := countingClient(&n, objs...)
	r := NewRunReconciler(c, events.NewFakeRecorder(3*size), Options{})
	run := func(what string) calls { t.Helper(); return reconcileCounted(t, r, &n, what) }
	get := func(name string) *batchv1.Job {
		t.Helper()
		var j batchv1.Job
		if err := c.Get(ctx, types.NamespacedName{Namespace: "ml", Name: name}, &j); err != nil {
			t.Fatal(err)
		}
		return &j
	}
	joinSays := func(when, phase, reason string) {
		t.Helper()
		j := get("join")
		if got := j.Labels[annotations.PhaseLabel] + ": " + j.Annotations[annotations.ReasonAnnotation]; got != phase+": "+reason {
			t.Errorf("%s: join is %q, want %q", when, got, phase+": "+reason)
		}
	}
	finish := func(name string) { t.Helper(); completeJob(t, c, r, name) }

	if got := run("half the group exists"); got.patch != 1 {
		t.Errorf("half the group exists: %d writes, want 1 (the join says what it waits for)", got.patch)
	}
	joinSays("half the group exists", "Waiting", fmt.Sprintf("waiting for group shards to have its %d tasks", size))
	for i := half; i < size; i++ {
		m := member(i)
		if err := c.Create(ctx, m); err != nil {
			t.Fatal(err)
		}
		r.inbox.touch(m)
		if i == size-2 {
			if got := run("one task of the group missing"); got.patch != 0 {
				t.Errorf("one task of the group missing: %d writes, want none", got.patch)
			}
		}
	}
	if got := run("the group is complete"); got.patch != 1 {
		t.Errorf("the group is complete: %d writes, want 1 (the join's reason cleared)", got.patch)
	}
	joinSays("the group is complete", "Waiting", "")

	finish("root")
	if got := run("root finished"); got.patch != 1+size {
		t.Errorf("root finished: %d writes, want %d (its outcome, each member's release)", got.patch, 1+size)
	}
	for i := range size {
		finish(fmt.Sprintf("shard-%d", i))
		if i%50 == 49 {
			got := run(fmt.Sprintf("%d members finished", i+1))
			want := 50
			if i == size-1 {
				want++ // and the join's release
			}
			if got.patch != want {
				t.Errorf("%d members finished: %d writes, want %d", i+1, got.patch, want)
			}
		}
	}
	if ptr.Deref(get("join").Spec.Suspend, true) {
		t.Fatal("the join is still suspended after every member finished")
	}
	joinSays("every member finished", "Running", fmt.Sprintf("released: upstreams succeeded (shard-0, shard-1, shard-10, shard-100, shard-101, shard-102, shard-103, shard-104, shard-105, shard-106 and %d more)", size-10))
}

// TestGroupMemberDeleted: a member deleted before it finished fails a join
// that needs every member to succeed at once, and an all-done join runs once
// the others finished; a restart in between changes neither.
func TestGroupMemberDeleted(t *testing.T) {
	ctx := context.Background()
	objs := []client.Object{
		suspended(utiltesting.MakeJob("join", "ml").AfterGroup("shards=3").Label(annotations.PhaseLabel, "Waiting").Obj()),
		suspended(utiltesting.MakeJob("report", "ml").AfterGroup("shards=3").Annotation(annotations.TriggerAnnotation, "all-done").Label(annotations.PhaseLabel, "Waiting").Obj()),
	}
	for i := range 3 {
		name := fmt.Sprintf("shard-%d", i)
		objs = append(objs, utiltesting.MakeJob(name, "ml").UID("u-"+name).Group("shards").Label(annotations.PhaseLabel, "Running").Obj())
	}
	var n calls
	c := countingClient(&n, objs...)
	r := NewRunReconciler(c, events.NewFakeRecorder(100), Options{})
	req := reconcile.Request{NamespacedName: types.NamespacedName{Namespace: "ml", Name: "p"}}
	reconcileOK := func() {
		t.Helper()
		if _, err := r.Reconcile(ctx, req); err != nil {
			t.Fatal(err)
		}
	}
	state := func(name string) string {
		t.Helper()
		var j batchv1.Job
		if err := c.Get(ctx, types.NamespacedName{Namespace: "ml", Name: name}, &j); err != nil {
			t.Fatal(err)
		}
		return j.Labels[annotations.PhaseLabel] + ": " + j.Annotations[annotations.ReasonAnnotation]
	}
	reconcileOK()

	var gone batchv1.Job
	if err := c.Get(ctx, types.NamespacedName{Namespace: "ml", Name: "shard-2"}, &gone); err != nil {
		t.Fatal(err)
	}
	if err := c.Delete(ctx, &gone); err != nil {
		t.Fatal(err)
	}
	r.deleted.set(&gone, true) // as the delete event handler does
	r.inbox.touch(&gone)
	reconcileOK()
	if got, want := state("join"), "UpstreamFailed: upstream shard-2 (deleted before it finished) failed"; got != want {
		t.Errorf("join: %q, want %q", got, want)
	}
	if got := state("report"); got != "Waiting: " {
		t.Errorf("report: %q; an all-done task waits for the other members", got)
	}

	// A restart: the model is rebuilt from the cache, which no longer
	// holds the deleted member.
	deleted := r.deleted
	r = NewRunReconciler(c, events.NewFakeRecorder(100), Options{})
	r.deleted = deleted
	reconcileOK()
	for _, name := range []string{"shard-0", "shard-1"} {
		completeJob(t, c, r, name)
		reconcileOK()
	}
	if got, want := state("report"), "Running: released: upstreams done (shard-0, shard-1, shard-2)"; got != want {
		t.Errorf("report: %q, want %q", got, want)
	}
}

// TestModelJoinOf10000 takes the model to a join over a group of 10,000:
// created in any order, the join is woken when the group is complete and
// when its last member finished, and decided then; never in between.
func TestModelJoinOf10000(t *testing.T) {
	const size = 10_000
	m := newRunModel()
	r := &RunReconciler{}
	st := func(task *annotations.Task, p annotations.Phase) *taskState { return &taskState{task: task, phase: p} }
	newNode := func(task *annotations.Task, p annotations.Phase) *node {
		return &node{ref: taskRef{job: true, name: task.Name}, task: task, state: st(task, p)}
	}
	join := newNode(&annotations.Task{Name: "join", Run: "p", Trigger: annotations.TriggerAllSucceeded,
		AfterGroups: []annotations.GroupWait{{Group: "shards", Size: size}}}, annotations.PhaseWaiting)
	members := make([]*node, size)
	for i := range members {
		members[i] = newNode(&annotations.Task{Name: fmt.Sprintf("shard-%d", i), Run: "p", Group: "shards", Trigger: annotations.TriggerAllSucceeded}, annotations.PhaseRunning)
	}
	for _, n := range members[:size/2] {
		m.add(n)
	}
	m.add(join) // half the group exists
	for _, n := range members[size/2:] {
		m.add(n)
	}
	if join.pendingUps != size {
		t.Fatalf("join pendingUps = %d, want %d", join.pendingUps, size)
	}
	for i, n := range members {
		wake := map[string]bool{}
		m.observed(n, st(n.task, annotations.PhaseSucceeded))
		r.wakeDownstream(m, n.task.Name, wake)
		if last := i == size-1; wake["join"] != last {
			t.Fatalf("member %d of %d finished: join woken = %v", i+1, size, wake["join"])
		}
	}
	ups, groups := m.upstreams(join, func(string) []string { return nil })
	d := decide(join.task, ups, groups, func(string) bool { return false }, nil, nil)
	if !d.release || len(ups) != size {
		t.Errorf("decide over %d upstreams = %+v, want a release", len(ups), d)
	}
	// A member fails afterwards (its Job is re-run by someone): the count
	// follows, and a failure wakes the join at once.
	wake := map[string]bool{}
	m.observed(members[0], st(members[0].task, annotations.PhaseRunning))
	m.observed(members[0], st(members[0].task, annotations.PhaseFailed))
	r.wakeDownstream(m, members[0].task.Name, wake)
	if !wake["join"] || join.pendingUps != 0 {
		t.Errorf("a member failed: join woken = %v, pendingUps = %d", wake["join"], join.pendingUps)
	}
	// Deleting the join unlinks it from every member.
	m.remove("join")
	for _, n := range members {
		if len(m.down[n.task.Name]) != 0 {
			t.Fatalf("after the join was deleted, %s still links to %v", n.task.Name, m.down[n.task.Name])
		}
	}
}
