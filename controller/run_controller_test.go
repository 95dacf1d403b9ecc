package controller

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
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

// indexedClient is a fake client builder with the controller's indexes
// (SetupIndexes).
func indexedClient() *fake.ClientBuilder {
	return fake.NewClientBuilder().WithScheme(scheme.Scheme).
		WithIndex(&batchv1.Job{}, RunIndex, IndexByRun).
		WithIndex(&corev1.Pod{}, RunIndex, IndexByRun).
		WithIndex(&corev1.Pod{}, JobIndex, IndexByJob)
}

func newClient(objs ...client.Object) client.Client {
	return indexedClient().WithObjects(objs...).Build()
}

func completed(j *batchv1.Job) *batchv1.Job {
	j.Status.Conditions = []batchv1.JobCondition{{Type: batchv1.JobComplete, Status: corev1.ConditionTrue, LastTransitionTime: metav1.Now()}}
	return j
}

func failedJob(j *batchv1.Job) *batchv1.Job {
	j.Status.Conditions = []batchv1.JobCondition{{Type: batchv1.JobFailed, Status: corev1.ConditionTrue, Reason: "BackoffLimitExceeded"}}
	return j
}

// finishedPod is a succeeded pod of a Job, with a termination message.
func finishedPod(name, job, uid, msg string) *corev1.Pod {
	p := utiltesting.MakePod(name, "ml").Label(annotations.TaskLabel, job).OwnedByJob(job, uid).Phase(corev1.PodSucceeded).Obj()
	p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "main", State: corev1.ContainerState{
		Terminated: &corev1.ContainerStateTerminated{Message: msg, FinishedAt: metav1.Now()}}}}
	return p
}

func suspended(j *batchv1.Job) *batchv1.Job { j.Spec.Suspend = ptr.To(true); return j }

func TestReconcile(t *testing.T) {
	const ns = "ml"
	type want struct {
		phase        annotations.Phase
		suspend      bool
		gates        []string
		reason       string
		reasonPrefix string // instead of reason, when the tail is a library's message
		results      string
	}
	cases := map[string]struct {
		objs       []client.Object
		wantJobs   map[string]want
		wantPods   map[string]want
		taskEvents string // Options.TaskEvents
		wantEvents []string
		wantPVC    bool
	}{
		"chain: released after its upstream completes": {
			objs: []client.Object{
				completed(utiltesting.MakeJob("prep", ns).Outputs("data").Obj()),
				suspended(utiltesting.MakeJob("train", ns).Inputs("d=prep.data").Obj()),
				suspended(utiltesting.MakeJob("eval", ns).After("train").Obj()),
			},
			wantJobs: map[string]want{
				"prep":  {phase: annotations.PhaseSucceeded, reason: "Job completed"},
				"train": {phase: annotations.PhaseRunning, reason: "released: upstreams succeeded (prep)"},
				"eval":  {phase: annotations.PhaseWaiting, suspend: true},
			},
			wantEvents: []string{"Normal Released", "Normal TaskSucceeded"},
			wantPVC:    true,
		},
		"diamond: join waits for both branches": {
			objs: []client.Object{
				completed(utiltesting.MakeJob("a", ns).Obj()),
				completed(utiltesting.MakeJob("b", ns).After("a").Label(annotations.PhaseLabel, "Running").Obj()),
				utiltesting.MakeJob("c", ns).After("a").Label(annotations.PhaseLabel, "Running").Obj(),
				suspended(utiltesting.MakeJob("d", ns).After("b", "c").Obj()),
			},
			wantJobs: map[string]want{
				"d": {phase: annotations.PhaseWaiting, suspend: true},
			},
		},
		"failure propagates down the whole chain in one pass": {
			objs: []client.Object{
				failedJob(utiltesting.MakeJob("prep", ns).Obj()),
				suspended(utiltesting.MakeJob("train", ns).After("prep").Obj()),
				suspended(utiltesting.MakeJob("eval", ns).After("train").Obj()),
			},
			wantJobs: map[string]want{
				"prep":  {phase: annotations.PhaseFailed, reason: "Job failed: BackoffLimitExceeded"},
				"train": {phase: annotations.PhaseUpstreamFailed, suspend: true, reason: "upstream prep failed"},
				"eval":  {phase: annotations.PhaseUpstreamFailed, suspend: true, reason: "upstream train failed"},
			},
			wantEvents: []string{"Warning UpstreamFailed", "Warning UpstreamFailed", "Warning TaskFailed", "Warning RunFailed"},
		},
		"downstream applied before its upstream waits": {
			objs: []client.Object{suspended(utiltesting.MakeJob("train", ns).After("prep").Obj())},
			wantJobs: map[string]want{
				"train": {phase: annotations.PhaseWaiting, suspend: true, reason: "waiting for prep to be created"},
			},
		},
		"gated pod: only sluice's gate is removed": {
			objs: []client.Object{
				completed(utiltesting.MakeJob("prep", ns).Obj()),
				utiltesting.MakePod("eval", ns).After("prep").Gate("example.com/quota").Gate(annotations.UpstreamGate).Obj(),
			},
			wantPods: map[string]want{
				"eval": {phase: annotations.PhaseRunning, gates: []string{"example.com/quota"}, reason: "released: upstreams succeeded (prep)"},
			},
		},
		"results recorded from the termination message; a true condition releases": {
			objs: []client.Object{
				completed(utiltesting.MakeJob("evaluate", ns).UID("u-eval").Obj()),
				finishedPod("evaluate-x", "evaluate", "u-eval", "accuracy=0.95\nmodel=v3"),
				suspended(utiltesting.MakeJob("deploy", ns).After("evaluate").When("tasks.evaluate.results.accuracy >= 0.9").Obj()),
			},
			wantJobs: map[string]want{
				"evaluate": {phase: annotations.PhaseSucceeded, reason: "Job completed", results: `{"accuracy":0.95,"model":"v3"}`},
				"deploy":   {phase: annotations.PhaseRunning, reason: `released: upstreams succeeded (evaluate); when "tasks.evaluate.results.accuracy >= 0.9" is true`},
			},
		},
		"a false condition skips the task and its downstream; the run does not fail": {
			objs: []client.Object{
				completed(utiltesting.MakeJob("evaluate", ns).UID("u-eval").Obj()),
				finishedPod("evaluate-x", "evaluate", "u-eval", `{"accuracy": 0.80}`),
				suspended(utiltesting.MakeJob("deploy", ns).After("evaluate").When("tasks.evaluate.results.accuracy >= 0.9").Obj()),
				suspended(utiltesting.MakeJob("announce", ns).After("deploy").Obj()),
			},
			wantJobs: map[string]want{
				"deploy":   {phase: annotations.PhaseSkipped, suspend: true, reason: `sluice.dev/when "tasks.evaluate.results.accuracy >= 0.9" is false`},
				"announce": {phase: annotations.PhaseSkipped, suspend: true, reason: "upstream deploy skipped"},
			},
			wantEvents: []string{"Normal Skipped", "Normal Skipped", "Normal TaskSucceeded", "Normal RunSucceeded"},
		},
		"with --task-events=failures, a run that went well says so once": {
			objs: []client.Object{
				completed(utiltesting.MakeJob("evaluate", ns).UID("u-eval").Obj()),
				finishedPod("evaluate-x", "evaluate", "u-eval", `{"accuracy": 0.80}`),
				suspended(utiltesting.MakeJob("deploy", ns).After("evaluate").When("tasks.evaluate.results.accuracy >= 0.9").Obj()),
			},
			taskEvents: TaskEventsFailures,
			wantEvents: []string{"Normal RunSucceeded"},
		},
		"with --task-events=failures, failures are still reported": {
			objs: []client.Object{
				failedJob(utiltesting.MakeJob("prep", ns).Obj()),
				suspended(utiltesting.MakeJob("train", ns).After("prep").Obj()),
			},
			taskEvents: TaskEventsFailures,
			wantEvents: []string{"Warning UpstreamFailed", "Warning TaskFailed", "Warning RunFailed"},
		},
		"a condition that cannot be evaluated fails the task, which stays held": {
			objs: []client.Object{
				utiltesting.MakeJob("evaluate", ns).UID("u-eval").Obj(),
				finishedPod("evaluate-x", "evaluate", "u-eval", "loss=0.1"),
				suspended(utiltesting.MakeJob("deploy", ns).After("evaluate").When("tasks.evaluate.results.accuracy >= 0.9").Obj()),
			},
			wantJobs: map[string]want{
				"deploy": {phase: annotations.PhaseFailed, suspend: true, reasonPrefix: `sluice.dev/when "tasks.evaluate.results.accuracy >= 0.9" could not be evaluated:`},
			},
		},
		"a pod's success decides the downstream before its Job reports it; the outcome is recorded once it does": {
			objs: []client.Object{
				utiltesting.MakeJob("evaluate", ns).UID("u-eval").Obj(),
				finishedPod("evaluate-x", "evaluate", "u-eval", "accuracy=0.95"),
				suspended(utiltesting.MakeJob("deploy", ns).After("evaluate").When("tasks.evaluate.results.accuracy >= 0.9").Obj()),
			},
			wantJobs: map[string]want{
				"evaluate": {},
				"deploy":   {phase: annotations.PhaseRunning, reason: `released: upstreams succeeded (evaluate); when "tasks.evaluate.results.accuracy >= 0.9" is true`},
			},
			wantEvents: []string{"Normal Released"},
		},
		"a malformed termination message is reported, not dropped": {
			objs: []client.Object{
				completed(utiltesting.MakeJob("evaluate", ns).UID("u-eval").Obj()),
				finishedPod("evaluate-x", "evaluate", "u-eval", "accuracy 0.9"),
			},
			wantJobs: map[string]want{
				"evaluate": {phase: annotations.PhaseSucceeded, results: "{}",
					reasonPrefix: "Job completed; no results can be read from the termination message of pod evaluate-x:"},
			},
			wantEvents: []string{"Normal TaskSucceeded", "Warning BadResults", "Normal RunSucceeded"},
		},
		"a cycle that slipped past admission fails its tasks; the rest of the run goes on": {
			objs: []client.Object{
				completed(utiltesting.MakeJob("prep", ns).Obj()),
				suspended(utiltesting.MakeJob("a", ns).After("prep", "b").Obj()),
				suspended(utiltesting.MakeJob("b", ns).After("a").Obj()),
				suspended(utiltesting.MakeJob("report", ns).After("b").Obj()),
				suspended(utiltesting.MakeJob("train", ns).After("prep").Obj()),
			},
			wantJobs: map[string]want{
				"a":      {phase: annotations.PhaseFailed, suspend: true, reason: "on a dependency cycle: a -> b -> a"},
				"b":      {phase: annotations.PhaseFailed, suspend: true, reason: "on a dependency cycle: b -> a -> b"},
				"report": {phase: annotations.PhaseUpstreamFailed, suspend: true, reason: "upstream b failed"},
				"train":  {phase: annotations.PhaseRunning, reason: "released: upstreams succeeded (prep)"},
			},
		},
		"released job suspended again by someone else is not released twice": {
			objs: []client.Object{
				completed(utiltesting.MakeJob("prep", ns).Obj()),
				suspended(utiltesting.MakeJob("train", ns).After("prep").Label(annotations.PhaseLabel, "Running").
					Annotation(annotations.ReasonAnnotation, "Job running").Obj()),
			},
			wantJobs: map[string]want{
				"train": {phase: annotations.PhaseRunning, suspend: true, reason: "Job running"},
			},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			c := newClient(tc.objs...)
			rec := events.NewFakeRecorder(20)
			r := NewRunReconciler(c, rec, Options{TaskEvents: tc.taskEvents})
			if _, err := r.Reconcile(ctx, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: ns, Name: "p"}}); err != nil {
				t.Fatal(err)
			}
			for name, w := range tc.wantJobs {
				var j batchv1.Job
				if err := c.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, &j); err != nil {
					t.Fatal(err)
				}
				got := want{phase: recordedPhase(&j), suspend: ptr.Deref(j.Spec.Suspend, false), reason: j.Annotations[annotations.ReasonAnnotation],
					results: j.Annotations[annotations.ResultsAnnotation]}
				if w.reasonPrefix != "" && strings.HasPrefix(got.reason, w.reasonPrefix) {
					got.reason, got.reasonPrefix = "", w.reasonPrefix
				}
				if diff := cmp.Diff(w, got, cmp.AllowUnexported(want{})); diff != "" {
					t.Errorf("job %s (-want,+got):\n%s", name, diff)
				}
			}
			for name, w := range tc.wantPods {
				var p corev1.Pod
				if err := c.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, &p); err != nil {
					t.Fatal(err)
				}
				got := want{phase: recordedPhase(&p), reason: p.Annotations[annotations.ReasonAnnotation]}
				for _, g := range p.Spec.SchedulingGates {
					got.gates = append(got.gates, g.Name)
				}
				if diff := cmp.Diff(w, got, cmp.AllowUnexported(want{})); diff != "" {
					t.Errorf("pod %s (-want,+got):\n%s", name, diff)
				}
			}
			var gotEvents []string
			for len(rec.Events) > 0 {
				e := <-rec.Events
				f := strings.Fields(e)
				gotEvents = append(gotEvents, f[0]+" "+f[1])
			}
			if tc.wantEvents != nil {
				if diff := cmp.Diff(tc.wantEvents, gotEvents); diff != "" {
					t.Errorf("events (-want,+got):\n%s", diff)
				}
			}
			var pvc corev1.PersistentVolumeClaim
			err := c.Get(ctx, types.NamespacedName{Namespace: ns, Name: "sluice-p"}, &pvc)
			if gotPVC := err == nil; gotPVC != tc.wantPVC {
				t.Errorf("artifact volume exists = %v, want %v (err %v)", gotPVC, tc.wantPVC, err)
			}
		})
	}
}

func TestReconcileIsIdempotent(t *testing.T) {
	ctx := context.Background()
	c := newClient(
		completed(utiltesting.MakeJob("prep", "ml").Obj()),
		suspended(utiltesting.MakeJob("train", "ml").After("prep").Obj()),
	)
	rec := events.NewFakeRecorder(20)
	r := NewRunReconciler(c, rec, Options{})
	r.now = func() time.Time { return time.Now() }
	req := reconcile.Request{NamespacedName: types.NamespacedName{Namespace: "ml", Name: "p"}}
	for range 3 {
		if _, err := r.Reconcile(ctx, req); err != nil {
			t.Fatal(err)
		}
	}
	var released int
	for len(rec.Events) > 0 {
		if strings.Contains(<-rec.Events, "Released") {
			released++
		}
	}
	if released != 1 {
		t.Errorf("Released events = %d over three reconciles, want 1", released)
	}
}

func TestBadResultsReasonSurvivesJobCompletion(t *testing.T) {
	ctx := context.Background()
	c := newClient(
		utiltesting.MakeJob("evaluate", "ml").UID("u-eval").Obj(),
		finishedPod("evaluate-x", "evaluate", "u-eval", "accuracy 0.9"),
	)
	r := NewRunReconciler(c, events.NewFakeRecorder(20), Options{})
	req := reconcile.Request{NamespacedName: types.NamespacedName{Namespace: "ml", Name: "p"}}
	if _, err := r.Reconcile(ctx, req); err != nil {
		t.Fatal(err)
	}
	// The Job controller catches up with its pod.
	var j batchv1.Job
	if err := c.Get(ctx, types.NamespacedName{Namespace: "ml", Name: "evaluate"}, &j); err != nil {
		t.Fatal(err)
	}
	j.Status.Conditions = []batchv1.JobCondition{{Type: batchv1.JobComplete, Status: corev1.ConditionTrue, LastTransitionTime: metav1.Now()}}
	if err := c.Status().Update(ctx, &j); err != nil {
		t.Fatal(err)
	}
	r.inbox.touch(&j)
	if _, err := r.Reconcile(ctx, req); err != nil {
		t.Fatal(err)
	}
	if err := c.Get(ctx, types.NamespacedName{Namespace: "ml", Name: "evaluate"}, &j); err != nil {
		t.Fatal(err)
	}
	if got := j.Annotations[annotations.ReasonAnnotation]; !strings.Contains(got, "no results can be read from the termination message") {
		t.Errorf("reason after the Job completed = %q, want it to still report the malformed message", got)
	}
}

// TestRunEndsOnceAcrossConflicts: a conflict while recording the last
// outcomes must neither lose the run's end nor report it twice.
func TestRunEndsOnceAcrossConflicts(t *testing.T) {
	ctx := context.Background()
	conflicted := false
	c := indexedClient().
		WithObjects(
			completed(utiltesting.MakeJob("a", "ml").Obj()),
			// b's outcome is recorded already; only its results are still to
			// be written, and that patch conflicts while a's outcome is recorded.
			completed(utiltesting.MakeJob("b", "ml").UID("u-b").Label(annotations.PhaseLabel, "Succeeded").
				Annotation(annotations.ReasonAnnotation, "Job completed").Obj()),
			finishedPod("b-x", "b", "u-b", "n=1"),
		).
		WithInterceptorFuncs(interceptor.Funcs{Patch: func(ctx context.Context, c client.WithWatch, obj client.Object, patch client.Patch, opts ...client.PatchOption) error {
			if obj.GetName() == "b" && !conflicted {
				conflicted = true
				return apierrors.NewConflict(schema.GroupResource{Group: "batch", Resource: "jobs"}, "b", errors.New("changed"))
			}
			return c.Patch(ctx, obj, patch, opts...)
		}}).Build()
	rec := events.NewFakeRecorder(20)
	r := NewRunReconciler(c, rec, Options{})
	req := reconcile.Request{NamespacedName: types.NamespacedName{Namespace: "ml", Name: "p"}}
	for range 3 {
		if _, err := r.Reconcile(ctx, req); err != nil {
			t.Fatal(err)
		}
	}
	ends := 0
	for len(rec.Events) > 0 {
		if strings.Contains(<-rec.Events, "RunSucceeded") {
			ends++
		}
	}
	if !conflicted || ends != 1 {
		t.Errorf("conflicted = %v, RunSucceeded events = %d; want a conflict and exactly one event", conflicted, ends)
	}
}

// TestRunEndReportedOnceAcrossRestarts: a new controller (restart, stale
// cache) reconciling a run that already ended reports nothing again.
func TestRunEndReportedOnceAcrossRestarts(t *testing.T) {
	ctx := context.Background()
	c := newClient(completed(utiltesting.MakeJob("a", "ml").Obj()), failedJob(utiltesting.MakeJob("b", "ml").Obj()))
	req := reconcile.Request{NamespacedName: types.NamespacedName{Namespace: "ml", Name: "p"}}
	ends := 0
	for range 2 { // two controller lifetimes
		rec := events.NewFakeRecorder(20)
		if _, err := NewRunReconciler(c, rec, Options{}).Reconcile(ctx, req); err != nil {
			t.Fatal(err)
		}
		for len(rec.Events) > 0 {
			if strings.Contains(<-rec.Events, "RunFailed") {
				ends++
			}
		}
	}
	if ends != 1 {
		t.Errorf("RunFailed events = %d over two controller lifetimes, want 1", ends)
	}
	var jobs batchv1.JobList
	if err := c.List(ctx, &jobs); err != nil {
		t.Fatal(err)
	}
	marked := 0
	for _, j := range jobs.Items {
		if j.Annotations[annotations.RunOutcomeAnnotation] == "Failed" {
			marked++
		}
	}
	if marked != 1 {
		t.Errorf("%d tasks carry %s=Failed, want 1", marked, annotations.RunOutcomeAnnotation)
	}
}

func TestResultsComeFromTheMainContainer(t *testing.T) {
	ctx := context.Background()
	pod := finishedPod("evaluate-x", "evaluate", "u-eval", "sidecar=1")
	pod.Spec.Containers = []corev1.Container{{Name: "proxy"}, {Name: "scorer"}}
	pod.Status.ContainerStatuses[0].Name = "proxy"
	pod.Status.ContainerStatuses = append(pod.Status.ContainerStatuses, corev1.ContainerStatus{Name: "scorer", State: corev1.ContainerState{
		Terminated: &corev1.ContainerStateTerminated{Message: "accuracy=0.9", FinishedAt: metav1.Now()}}})
	c := newClient(completed(utiltesting.MakeJob("evaluate", "ml").UID("u-eval").Annotation(annotations.ContainerAnnotation, "scorer").Obj()), pod)
	r := NewRunReconciler(c, events.NewFakeRecorder(20), Options{})
	if _, err := r.Reconcile(ctx, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: "ml", Name: "p"}}); err != nil {
		t.Fatal(err)
	}
	var j batchv1.Job
	if err := c.Get(ctx, types.NamespacedName{Namespace: "ml", Name: "evaluate"}, &j); err != nil {
		t.Fatal(err)
	}
	if got := j.Annotations[annotations.ResultsAnnotation]; got != `{"accuracy":0.9}` {
		t.Errorf("results = %q, want the scorer container's", got)
	}
}
