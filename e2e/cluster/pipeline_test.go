// Package cluster runs sluice end to end on the full local cluster: the real
// kube-apiserver, kube-controller-manager and kube-scheduler, kwok nodes that
// run simulated steps, a storage provisioner, and sluice's manager.
package cluster

import (
	"context"
	"fmt"
	"os"
	"sort"
	"strings"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/sluice-dev/sluice/annotations"
	utiltesting "github.com/sluice-dev/sluice/annotations/testing"
	"github.com/sluice-dev/sluice/e2e/framework"
)

// runTimeout bounds one pipeline run; steps take about a second each.
const runTimeout = 2 * time.Minute

// sharedClass is the local cluster's ReadWriteMany class (hack/provisioner):
// runs whose steps share artifacts across kwok nodes use it. The default
// class, local-path, ties a run's volume to one node.
const sharedClass = "sluice-local"

var cluster *framework.Cluster

func TestMain(m *testing.M) {
	framework.SetupLogging()
	var err error
	cluster, err = framework.StartCluster()
	if err != nil {
		fmt.Fprintln(os.Stderr, "starting the e2e cluster:", err)
		os.Exit(1)
	}
	code := m.Run()
	fmt.Fprintln(os.Stderr, framework.InvariantTotals())
	// The manager and scheduler ran with only the chart's RBAC: a single
	// refused request in their logs means the chart grants too little.
	for _, p := range []*framework.Process{cluster.Manager.Process, cluster.Scheduler} {
		if rss, err := p.PeakRSS(); err == nil {
			fmt.Fprintf(os.Stderr, "%s peak RSS during the e2e run: %s\n", p.Binary, rss)
		}
		refused, err := cluster.RefusalsOf(p)
		if err != nil || len(refused) > 0 {
			fmt.Fprintf(os.Stderr, "FAIL: %s (as its chart ServiceAccount) was refused requests (%v):\n%s\n", p.Binary, err, strings.Join(refused, "\n"))
			code = 1
		}
	}
	if err := cluster.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, "stopping the e2e cluster:", err)
	}
	os.Exit(code)
}

// setup makes a namespace and a timeline watching it. Everything sluice
// does in the namespace is held to its invariants (framework.Rule) when the
// test ends; opts may exempt a task from a rule its scenario breaks on purpose.
func setup(t *testing.T, opts ...framework.InvariantOption) (string, *framework.Timeline) {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "e2e-"}}
	if err := cluster.Client.Create(context.Background(), ns); err != nil {
		t.Fatal(err)
	}
	framework.CheckInvariants(t, cluster.Config, ns.Name, opts...)
	tl, err := framework.WatchNamespace(cluster.Config, ns.Name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tl.Stop)
	return ns.Name, tl
}

// job is a one-second simulated step of run r.
func job(name, ns string) *utiltesting.JobWrapper {
	return utiltesting.MakeJob(name, ns).Run("r").Sim("duration", "1s")
}

func create(t *testing.T, objs ...client.Object) {
	t.Helper()
	for _, o := range objs {
		if err := cluster.Client.Create(context.Background(), o); err != nil {
			t.Fatalf("creating %s: %v", o.GetName(), err)
		}
	}
}

// phases returns the recorded phase of every sluice Job and bare Pod in ns.
func phases(t *testing.T, ns string) map[string]annotations.Phase {
	t.Helper()
	got := map[string]annotations.Phase{}
	var jobs batchv1.JobList
	if err := cluster.Client.List(context.Background(), &jobs, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	for _, j := range jobs.Items {
		got[j.Labels[annotations.TaskLabel]] = annotations.Phase(j.Labels[annotations.PhaseLabel])
	}
	var pods corev1.PodList
	if err := cluster.Client.List(context.Background(), &pods, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	for _, p := range pods.Items {
		if len(p.OwnerReferences) == 0 {
			got[p.Labels[annotations.TaskLabel]] = annotations.Phase(p.Labels[annotations.PhaseLabel])
		}
	}
	return got
}

// waitPhases waits until every named task has the wanted phase.
func waitPhases(t *testing.T, ns string, want map[string]annotations.Phase) {
	t.Helper()
	deadline := time.Now().Add(runTimeout)
	var got map[string]annotations.Phase
	for time.Now().Before(deadline) {
		got = phases(t, ns)
		ok := true
		for task, p := range want {
			ok = ok && got[task] == p
		}
		if ok {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("after %s, phases are %v, want %v", runTimeout, got, want)
}

// assertOrder checks that each downstream task started only after all of
// its upstreams succeeded, and returns each release latency (from the last
// upstream's success to the release, as the test observed them).
func assertOrder(t *testing.T, tl *framework.Timeline, edges map[string][]string) []time.Duration {
	t.Helper()
	var latencies []time.Duration
	for down, ups := range edges {
		rel, ok := tl.At(down, framework.Released)
		if !ok {
			t.Errorf("%s was never released", down)
			continue
		}
		start, _ := tl.At(down, framework.Started)
		var last time.Time
		for _, up := range ups {
			done, ok := tl.At(up, framework.Succeeded)
			if !ok {
				t.Errorf("%s released but its upstream %s never succeeded", down, up)
				continue
			}
			// Only what one watch saw is compared by arrival: the pods'
			// watch delivers in order, but a Job's release comes through
			// the Jobs' watch and may arrive before the upstream pod's
			// success that caused it. The invariant checker orders the
			// release itself by resourceVersion (RuleReleasedEarly).
			if !start.IsZero() && start.Before(done) {
				t.Errorf("%s started at %s, before its upstream %s succeeded at %s",
					down, start.Format(time.StampMicro), up, done.Format(time.StampMicro))
			}
			if done.After(last) {
				last = done
			}
		}
		latencies = append(latencies, rel.Sub(last))
	}
	return latencies
}

func logLatencies(t *testing.T, name string, l []time.Duration) {
	sort.Slice(l, func(i, j int) bool { return l[i] < l[j] })
	var s []string
	for _, d := range l {
		s = append(s, d.Round(time.Millisecond).String())
	}
	t.Logf("%s: release latency (upstream pod seen Succeeded -> downstream seen released): %s", name, strings.Join(s, " "))
}

func TestLinearChain(t *testing.T) {
	ns, tl := setup(t)
	create(t,
		job("ingest", ns).Outputs("raw:Dataset").Obj(),
		job("preprocess", ns).Inputs("raw=ingest.raw").Outputs("data:Dataset").Obj(),
		job("train", ns).Inputs("data=preprocess.data").Outputs("model:Model").Obj(),
		job("evaluate", ns).Inputs("model=train.model").Obj(),
	)
	waitPhases(t, ns, map[string]annotations.Phase{
		"ingest": annotations.PhaseSucceeded, "preprocess": annotations.PhaseSucceeded,
		"train": annotations.PhaseSucceeded, "evaluate": annotations.PhaseSucceeded,
	})
	logLatencies(t, "chain", assertOrder(t, tl, map[string][]string{
		"preprocess": {"ingest"}, "train": {"preprocess"}, "evaluate": {"train"},
	}))
	var pvc corev1.PersistentVolumeClaim
	if err := cluster.Client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "sluice-r"}, &pvc); err != nil {
		t.Fatalf("the run's artifact volume: %v", err)
	}
	if pvc.Status.Phase != corev1.ClaimBound {
		t.Errorf("artifact volume phase = %s, want Bound", pvc.Status.Phase)
	}
}

func TestDiamond(t *testing.T) {
	ns, tl := setup(t)
	// c is a bare Pod and runs longer than b: d must wait for the slower one.
	c := utiltesting.MakePod("c", ns).Label(annotations.RunLabel, "r").After("a").
		Annotation("sim.sluice.dev/duration", "3s").Obj()
	create(t,
		job("a", ns).Obj(),
		job("b", ns).After("a").Obj(),
		c,
		job("d", ns).After("b", "c").Obj(),
	)
	waitPhases(t, ns, map[string]annotations.Phase{
		"a": annotations.PhaseSucceeded, "b": annotations.PhaseSucceeded,
		"c": annotations.PhaseSucceeded, "d": annotations.PhaseSucceeded,
	})
	logLatencies(t, "diamond", assertOrder(t, tl, map[string][]string{
		"b": {"a"}, "c": {"a"}, "d": {"b", "c"},
	}))
}

// TestGroupFanIn: 1 -> 30 -> 1 where the join waits for the group of
// workers, applied join first: it is released only after every worker
// succeeded.
func TestGroupFanIn(t *testing.T) {
	ns, tl := setup(t)
	const width = 30
	objs := []client.Object{job("merge", ns).AfterGroup(fmt.Sprintf("shards=%d", width)).Obj(), job("split", ns).Obj()}
	want := map[string]annotations.Phase{"split": annotations.PhaseSucceeded, "merge": annotations.PhaseSucceeded}
	var shards []string
	for i := range width {
		name := fmt.Sprintf("shard-%d", i)
		shards = append(shards, name)
		objs = append(objs, job(name, ns).After("split").Group("shards").Sim("duration", "0s").Obj())
		want[name] = annotations.PhaseSucceeded
	}
	create(t, objs...)
	waitPhases(t, ns, want)
	edges := map[string][]string{"merge": shards}
	for _, s := range shards {
		edges[s] = []string{"split"}
	}
	logLatencies(t, "group fan-in", assertOrder(t, tl, edges))
}

func TestUpstreamFailure(t *testing.T) {
	ns, tl := setup(t)
	create(t,
		job("prep", ns).Sim("exit-code", "3").Sim("message", "bad input").Obj(),
		job("train", ns).After("prep").Obj(),
		job("evaluate", ns).After("train").Obj(),
	)
	waitPhases(t, ns, map[string]annotations.Phase{
		"prep": annotations.PhaseFailed, "train": annotations.PhaseUpstreamFailed, "evaluate": annotations.PhaseUpstreamFailed,
	})
	// Give a wrongly released task time to show up before checking it never ran.
	time.Sleep(2 * time.Second)
	for _, task := range []string{"train", "evaluate"} {
		if _, ok := tl.At(task, framework.Started); ok {
			t.Errorf("%s got a pod although its upstream failed", task)
		}
		var j batchv1.Job
		if err := cluster.Client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: task}, &j); err != nil {
			t.Fatal(err)
		}
		if j.Spec.Suspend == nil || !*j.Spec.Suspend {
			t.Errorf("%s was unsuspended", task)
		}
		if want := "upstream"; !strings.Contains(j.Annotations[annotations.ReasonAnnotation], want) {
			t.Errorf("%s reason = %q", task, j.Annotations[annotations.ReasonAnnotation])
		}
	}
}

func TestOutOfOrderApply(t *testing.T) {
	ns, tl := setup(t)
	create(t,
		job("evaluate", ns).After("train").Obj(),
		job("train", ns).After("prep").Obj(),
	)
	time.Sleep(2 * time.Second)
	if got := phases(t, ns); got["train"] != annotations.PhaseWaiting || got["evaluate"] != annotations.PhaseWaiting {
		t.Fatalf("before prep exists, phases = %v, want train and evaluate Waiting", got)
	}
	create(t, job("prep", ns).Obj())
	waitPhases(t, ns, map[string]annotations.Phase{
		"prep": annotations.PhaseSucceeded, "train": annotations.PhaseSucceeded, "evaluate": annotations.PhaseSucceeded,
	})
	assertOrder(t, tl, map[string][]string{"train": {"prep"}, "evaluate": {"train"}})
}

// TestControllerRestart kills the manager while a run is in flight, keeps it
// down while an upstream finishes, and restarts it: the run completes,
// nothing was released while it was down, and nothing was released twice.
func TestControllerRestart(t *testing.T) {
	ns, tl := setup(t)
	create(t,
		job("s1", ns).Obj(),
		job("s2", ns).After("s1").Sim("duration", "2s").Obj(),
		job("s3", ns).After("s2").Obj(),
		job("s4", ns).After("s3").Obj(),
	)
	waitMoment(t, tl, "s2", framework.Released)
	cluster.Manager.Kill()
	killed := time.Now()
	// s2 finishes while the controller is down; s3 must not be released.
	time.Sleep(5 * time.Second)
	if _, ok := tl.At("s2", framework.Succeeded); !ok {
		t.Error("s2 should have succeeded while the controller was down")
	}
	if at, ok := tl.At("s3", framework.Released); ok {
		t.Fatalf("s3 released at %s while the controller was down (killed at %s)", at.Format(time.StampMicro), killed.Format(time.StampMicro))
	}
	if err := cluster.Manager.Start(); err != nil {
		t.Fatal(err)
	}
	waitPhases(t, ns, map[string]annotations.Phase{
		"s1": annotations.PhaseSucceeded, "s2": annotations.PhaseSucceeded,
		"s3": annotations.PhaseSucceeded, "s4": annotations.PhaseSucceeded,
	})
	assertOrder(t, tl, map[string][]string{"s2": {"s1"}, "s3": {"s2"}, "s4": {"s3"}})

	var evs eventsv1.EventList
	if err := cluster.Client.List(context.Background(), &evs, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	released := map[string]int{}
	for _, e := range evs.Items {
		if e.Reason == "Released" {
			released[e.Regarding.Name] += max(1, int(ptrCount(e.Series)))
		}
	}
	// Events are sent asynchronously: s2's may die with the killed manager.
	// None may be doubled, and the tasks released after the restart have theirs.
	for task, atLeast := range map[string]int{"s2": 0, "s3": 1, "s4": 1} {
		if n := released[task]; n < atLeast || n > 1 {
			t.Errorf("%s has %d Released events, want %d to 1", task, n, atLeast)
		}
	}
}

func ptrCount(s *eventsv1.EventSeries) int32 {
	if s == nil {
		return 1
	}
	return s.Count
}

// waitEvent waits for an event with the given reason in ns.
func waitEvent(t *testing.T, ns, reason string) {
	t.Helper()
	deadline := time.Now().Add(runTimeout)
	for time.Now().Before(deadline) {
		var evs eventsv1.EventList
		if err := cluster.Client.List(context.Background(), &evs, client.InNamespace(ns)); err != nil {
			t.Fatal(err)
		}
		for _, e := range evs.Items {
			if e.Reason == reason {
				return
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("no %s event in %s after %s", reason, ns, runTimeout)
}

func TestUpstreamDeletedWhileRunning(t *testing.T) {
	ns, tl := setup(t)
	prep := job("prep", ns).Sim("duration", "30s").Obj()
	create(t, prep, job("train", ns).After("prep").Obj())
	waitMoment(t, tl, "prep", framework.Started)
	if err := cluster.Client.Delete(context.Background(), prep, client.PropagationPolicy(metav1.DeletePropagationBackground)); err != nil {
		t.Fatal(err)
	}
	waitPhases(t, ns, map[string]annotations.Phase{"train": annotations.PhaseUpstreamFailed})
	if _, ok := tl.At("train", framework.Started); ok {
		t.Error("train got a pod after its upstream was deleted")
	}
}

// waitMoment waits until the timeline saw the task reach the moment.
func waitMoment(t *testing.T, tl *framework.Timeline, task, moment string) {
	t.Helper()
	deadline := time.Now().Add(runTimeout)
	for {
		if _, ok := tl.At(task, moment); ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never reached %q within %s", task, moment, runTimeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
