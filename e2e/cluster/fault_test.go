package cluster

import (
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/sluice-dev/sluice/annotations"
	utiltesting "github.com/sluice-dev/sluice/annotations/testing"
	"github.com/sluice-dev/sluice/e2e/framework"
)

// envInt reads a knob of the fault tests from the environment (make
// test-soak turns them up), with its default.
func envInt(t *testing.T, name string, def int) int {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		t.Fatalf("%s=%q: want a whole number", name, v)
	}
	return n
}

// faultRun creates one run of a 10-step DAG and returns the phases it must
// end in: s0 -> s1,s2,s3 -> s4 -> s5 -> s6,s7 -> s8 (all-done) -> s9. When
// failing, s5 fails: s6 and s7 never run, s8 and s9 run anyway.
func faultRun(ns, run string, failing bool) ([]client.Object, map[string]annotations.Phase) {
	name := func(i int) string { return fmt.Sprintf("%s-s%d", run, i) }
	step := func(i int, after ...int) *utiltesting.JobWrapper {
		j := job(name(i), ns).Run(run)
		for _, a := range after {
			j.After(name(a))
		}
		return j
	}
	s5 := step(5, 4)
	if failing {
		s5.Sim("exit-code", "1")
	}
	objs := []client.Object{
		step(0).Obj(), step(1, 0).Obj(), step(2, 0).Obj(), step(3, 0).Obj(), step(4, 1, 2, 3).Obj(), s5.Obj(),
		step(6, 5).Obj(), step(7, 5).Obj(), step(8, 6, 7).Annotation(annotations.TriggerAnnotation, annotations.TriggerAllDone).Obj(), step(9, 8).Obj(),
	}
	want := map[string]annotations.Phase{}
	for i := range 10 {
		want[name(i)] = annotations.PhaseSucceeded
	}
	if failing {
		want[name(5)], want[name(6)], want[name(7)] = annotations.PhaseFailed, annotations.PhaseUpstreamFailed, annotations.PhaseUpstreamFailed
	}
	return objs, want
}

// TestManagerKilledAtRandom: the manager is SIGKILLed at seeded random
// moments while 20 runs of a 10-step DAG execute, and restarted each time.
// Every run finishes in the phases its graph and outcomes imply, with its
// outcome recorded once; the invariant checker sees every release.
// SLUICE_FAULT_SEED, SLUICE_FAULT_RUNS and SLUICE_FAULT_KILLS change the
// defaults (1, 20, 5); make test-soak runs more of them.
func TestManagerKilledAtRandom(t *testing.T) {
	seed := uint64(envInt(t, "SLUICE_FAULT_SEED", 1))
	runs, kills := envInt(t, "SLUICE_FAULT_RUNS", 20), envInt(t, "SLUICE_FAULT_KILLS", 5)
	rng := rand.New(rand.NewPCG(seed, seed))
	t.Logf("seed %d: %d runs of 10 steps, %d kills", seed, runs, kills)
	ns, _ := setup(t)
	want, outcomes := map[string]annotations.Phase{}, map[string]string{}
	applyFaultRuns(t, ns, 0, runs, want, outcomes)
	start := time.Now()
	for k := range kills {
		up := time.Duration(500+rng.IntN(2500)) * time.Millisecond
		down := time.Duration(rng.IntN(2000)) * time.Millisecond
		time.Sleep(up)
		cluster.Manager.Kill()
		t.Logf("kill %d at %s, down for %s", k+1, time.Since(start).Round(time.Millisecond), down)
		time.Sleep(down)
		if err := cluster.Manager.Start(); err != nil {
			t.Fatal(err)
		}
	}
	waitPhases(t, ns, want)
	t.Logf("%d runs finished %s after the first apply, through %d kills", runs, time.Since(start).Round(time.Millisecond), kills)
	assertOutcomesOnce(t, ns, outcomes)
}

// applyFaultRuns creates runs r<from>..r<to-1> of faultRun (every fourth
// failing), adding the phases they must end in to want and their outcomes
// to outcomes.
func applyFaultRuns(t *testing.T, ns string, from, to int, want map[string]annotations.Phase, outcomes map[string]string) {
	t.Helper()
	applyFaultRunsWith(t, ns, from, to, want, outcomes, func(objs ...client.Object) { create(t, objs...) })
}

func applyFaultRunsWith(t *testing.T, ns string, from, to int, want map[string]annotations.Phase, outcomes map[string]string, create func(...client.Object)) {
	t.Helper()
	for i := from; i < to; i++ {
		run := fmt.Sprintf("r%02d", i)
		objs, phases := faultRun(ns, run, i%4 == 3)
		create(objs...)
		maps.Copy(want, phases)
		outcomes[run] = "Succeeded"
		if i%4 == 3 {
			outcomes[run] = "Failed"
		}
	}
}

// assertOutcomesOnce checks that each run's outcome was recorded once, on
// one of its Jobs, as outcomes says.
func assertOutcomesOnce(t *testing.T, ns string, outcomes map[string]string) {
	t.Helper()
	var jobs batchv1.JobList
	if err := cluster.Client.List(context.Background(), &jobs, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	got := map[string][]string{}
	for _, j := range jobs.Items {
		if o, ok := j.Annotations[annotations.RunOutcomeAnnotation]; ok {
			run := j.Labels[annotations.RunLabel]
			got[run] = append(got[run], o)
		}
	}
	for run, o := range outcomes {
		if len(got[run]) != 1 || got[run][0] != o {
			t.Errorf("run %s: outcomes recorded %v, want [%s] once", run, got[run], o)
		}
	}
}

// TestWebhookUnreachable: while the manager is down, a sluice Job is refused
// with a message that names sluice's webhook, a Job without sluice's label is
// admitted untouched, and once the manager is back sluice Jobs are admitted
// again.
func TestWebhookUnreachable(t *testing.T) {
	ns, _ := setup(t)
	ctx := context.Background()
	cluster.Manager.Kill()
	restarted := false
	t.Cleanup(func() {
		if !restarted {
			if err := cluster.Manager.Start(); err != nil {
				t.Error(err)
			}
		}
	})
	err := cluster.Client.Create(ctx, job("refused", ns).Obj())
	if err == nil || !strings.Contains(err.Error(), "sluice.dev") {
		t.Fatalf("creating a sluice Job while the webhook is down: %v, want a refusal naming sluice's webhook", err)
	}
	t.Logf("refused: %v", err)
	plain := utiltesting.MakeJob("plain", ns).Obj()
	plain.Labels = nil
	plain.Spec.Suspend = nil
	if err := cluster.Client.Create(ctx, plain); err != nil {
		t.Fatalf("creating a Job without sluice's label while the webhook is down: %v", err)
	}
	if plain.Spec.Suspend != nil && *plain.Spec.Suspend || len(plain.Spec.Template.Spec.Volumes) > 0 {
		t.Errorf("the plain Job was changed: suspend %v, volumes %v", plain.Spec.Suspend, plain.Spec.Template.Spec.Volumes)
	}
	if err := cluster.Manager.Start(); err != nil {
		t.Fatal(err)
	}
	restarted = true
	back := job("back", ns).Obj()
	if err := cluster.Client.Create(ctx, back); err != nil {
		t.Fatalf("creating a sluice Job once the webhook is back: %v", err)
	}
	if back.Labels[annotations.PhaseLabel] == "" {
		t.Errorf("the Job created once the webhook is back was not mutated: labels %v", back.Labels)
	}
	waitPhases(t, ns, map[string]annotations.Phase{"back": annotations.PhaseSucceeded})
}

// TestLoad200Runs: 200 runs of 10 steps (bare Pods, 1 -> 8 -> 1), applied
// at once from 8 clients, all finish Succeeded: conflicts between the
// controller's writes are retried, never surfaced as failures. The
// invariant checker sees all 2,000 tasks.
func TestLoad200Runs(t *testing.T) {
	runs := envInt(t, "SLUICE_LOAD_RUNS", 200)
	ns, _ := setup(t)
	want := map[string]annotations.Phase{}
	var objs []client.Object
	for i := range runs {
		run := fmt.Sprintf("l%03d", i)
		name := func(s int) string { return fmt.Sprintf("%s-s%d", run, s) }
		step := func(s int, after ...string) *corev1.Pod {
			return utiltesting.MakePod(name(s), ns).Label(annotations.RunLabel, run).After(after...).
				Annotation("sim.sluice.dev/duration", "0s").Obj()
		}
		objs = append(objs, step(0))
		var mids []string
		for s := 1; s <= 8; s++ {
			objs = append(objs, step(s, name(0)))
			mids = append(mids, name(s))
		}
		objs = append(objs, step(9, mids...))
		for s := range 10 {
			want[name(s)] = annotations.PhaseSucceeded
		}
	}
	start := time.Now()
	errs := make(chan error, 8)
	for w := range 8 {
		go func() {
			for i := w; i < len(objs); i += 8 {
				if err := cluster.Client.Create(context.Background(), objs[i]); err != nil {
					errs <- fmt.Errorf("creating %s: %w", objs[i].GetName(), err)
					return
				}
			}
			errs <- nil
		}()
	}
	for range 8 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("%d objects created in %s", len(objs), time.Since(start).Round(time.Millisecond))
	waitPhases(t, ns, want)
	t.Logf("%d runs of 10 steps finished %s after the first create", runs, time.Since(start).Round(time.Millisecond))
}

// TestLeaderKilled: two manager replicas behind one address, as the chart's
// two pods behind its Service. The leader is SIGKILLed while runs execute;
// the other replica takes the lease and finishes every run, and admission
// keeps working through the replica that is left, during the failover too.
func TestLeaderKilled(t *testing.T) {
	ns, _ := setup(t)
	replicas := make([]*framework.Manager, 2)
	for i := range replicas {
		m, err := cluster.NewManagerReplica(fmt.Sprintf("replica-%d", i))
		if err != nil {
			t.Fatal(err)
		}
		replicas[i] = m
	}
	cluster.Manager.Stop()
	balancer, err := framework.NewBalancer(cluster.Manager.WebhookAddr, replicas[0].WebhookAddr, replicas[1].WebhookAddr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, m := range replicas {
			if m.Running() {
				m.Stop()
			}
		}
		balancer.Close()
		if err := cluster.Manager.Start(); err != nil {
			t.Error(err)
		}
	})
	for _, m := range replicas {
		if err := m.Start(); err != nil {
			t.Fatal(err)
		}
	}
	var leader, follower *framework.Manager
	eventually(t, "one replica leads", func() (bool, string) {
		for i, m := range replicas {
			if m.Leader() {
				leader, follower = m, replicas[1-i]
				return true, ""
			}
		}
		return false, "no replica holds the lease"
	})

	want, outcomes := map[string]annotations.Phase{}, map[string]string{}
	applyFaultRuns(t, ns, 0, 6, want, outcomes)
	time.Sleep(2 * time.Second)
	held := balancer.Served()[leader.WebhookAddr]
	leader.Kill()
	killed := time.Now()
	t.Logf("leader on %s killed; admission connections per replica so far: %v", leader.WebhookAddr, balancer.Served())
	// Admitted by the follower while it waits for the lease. The API server
	// may have sent a request down a kept-alive connection to the leader at
	// the moment it died: that one call fails at the transport, as it would
	// behind a Service, and a client creates the object again; nothing else
	// may be refused.
	lost := 0
	applyFaultRunsWith(t, ns, 6, 12, want, outcomes, func(objs ...client.Object) {
		for _, o := range objs {
			err := cluster.Client.Create(context.Background(), o)
			if err != nil && brokenWebhookConnection(err) && lost < held {
				lost++
				t.Logf("creating %s: a connection to the killed leader broke, creating it again: %v", o.GetName(), err)
				err = cluster.Client.Create(context.Background(), o)
			}
			if err != nil {
				t.Fatalf("creating %s during the failover: %v", o.GetName(), err)
			}
		}
	})
	eventually(t, "the follower leads", func() (bool, string) { return follower.Leader(), "it does not hold the lease" })
	t.Logf("the follower took the lease %s after the kill", time.Since(killed).Round(time.Millisecond))
	waitPhases(t, ns, want)
	t.Logf("12 runs finished %s after the kill; connections per replica %v", time.Since(killed).Round(time.Millisecond), balancer.Served())
	if balancer.Served()[follower.WebhookAddr] == 0 {
		t.Errorf("the follower served no admission request: connections %v", balancer.Served())
	}
	assertOutcomesOnce(t, ns, outcomes)
}

// TestAPIServerRestarted: the API server is killed and started again while
// runs execute, among them a real container that runs through the outage.
// The manager, the scheduler, kube-controller-manager, kwok and the real
// node's kubelet reconnect, and every run finishes as its graph says, each
// outcome recorded once. A component that exits because it could not renew
// its lease in time is started again, as its Deployment would be.
func TestAPIServerRestarted(t *testing.T) {
	ns, _ := setup(t)
	want, outcomes := map[string]annotations.Phase{}, map[string]string{}
	applyFaultRuns(t, ns, 0, 6, want, outcomes)
	create(t,
		realJob("train", ns, `sleep 10; echo accuracy=0.93 >/dev/termination-log`).Obj(),
		realJob("deploy", ns, `true`).After("train").When("tasks.train.results.accuracy >= 0.9").Obj(),
	)
	want["train"], want["deploy"] = annotations.PhaseSucceeded, annotations.PhaseSucceeded
	outcomes["r"] = "Succeeded"
	eventually(t, "train runs", func() (bool, string) {
		p := phases(t, ns)["train"]
		return p == annotations.PhaseRunning, "train is " + string(p)
	})
	unavailable, err := cluster.RestartAPIServer(context.Background(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("the API server was unavailable for %s", unavailable.Round(time.Millisecond))
	for _, p := range []*framework.Process{cluster.Manager.Process, cluster.Scheduler} {
		if !p.Running() {
			t.Logf("%s exited while the API server was down; starting it again, as its Deployment would", p.Binary)
			if err := p.Start(); err != nil {
				t.Fatal(err)
			}
		}
	}
	waitPhases(t, ns, want)
	if got := results(t, ns, "train")["accuracy"]; got != 0.93 {
		t.Errorf("train's accuracy = %v, want 0.93", got)
	}
	assertOutcomesOnce(t, ns, outcomes)
}

// brokenWebhookConnection says whether err is the API server failing to
// reach a webhook on a connection that broke under it, as opposed to a
// webhook's answer or any other refusal.
func brokenWebhookConnection(err error) bool {
	msg := err.Error()
	if !strings.Contains(msg, "failed to call webhook") {
		return false
	}
	for _, s := range []string{"broken pipe", "connection reset by peer", ": EOF"} {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}
