package controller

import (
	"context"
	"fmt"
	"sync"
	"testing"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
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
	return fake.NewClientBuilder().WithScheme(scheme.Scheme).
		WithIndex(&batchv1.Job{}, RunIndex, IndexByRun).
		WithIndex(&corev1.Pod{}, RunIndex, IndexByRun).
		WithIndex(&corev1.Pod{}, JobIndex, IndexByJob).
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
	req := reconcile.Request{NamespacedName: types.NamespacedName{Namespace: "ml", Name: "p"}}
	run := func(what string) calls {
		t.Helper()
		n = calls{}
		if _, err := r.Reconcile(ctx, req); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		return n
	}
	finish := func(name string) {
		t.Helper()
		var j batchv1.Job
		if err := c.Get(ctx, types.NamespacedName{Namespace: "ml", Name: name}, &j); err != nil {
			t.Fatal(err)
		}
		completed(&j)
		if err := c.Status().Update(ctx, &j); err != nil {
			t.Fatal(err)
		}
		r.inbox.touch(&j)
	}
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
