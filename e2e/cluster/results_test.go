package cluster

import (
	"context"
	"fmt"
	"slices"
	"testing"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/sluice-dev/sluice/annotations"
)

// The tests in this file take the manager down while real containers
// finish, and check that what their pods left is neither lost nor invented
// when it comes back.

// jobFinished waits until the Job has the condition (Complete or Failed).
func jobFinished(t *testing.T, ns, name string, cond batchv1.JobConditionType) {
	t.Helper()
	eventually(t, fmt.Sprintf("Job %s %s", name, cond), func() (bool, string) {
		var j batchv1.Job
		if err := cluster.Client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, &j); err != nil {
			return false, err.Error()
		}
		for _, c := range j.Status.Conditions {
			if c.Type == cond && c.Status == corev1.ConditionTrue {
				return true, ""
			}
		}
		return false, fmt.Sprintf("conditions %v", j.Status.Conditions)
	})
}

// podsGone waits until the task has no pods left.
func podsGone(t *testing.T, ns, task string) {
	t.Helper()
	eventually(t, "the pods of "+task+" gone", func() (bool, string) {
		pods := podsOf(t, ns, task)
		var left []string
		for _, p := range pods {
			left = append(left, fmt.Sprintf("%s (finalizers %v, deleted %v)", p.Name, p.Finalizers, p.DeletionTimestamp != nil))
		}
		return len(pods) == 0, fmt.Sprintf("pods %v", left)
	})
}

// killManager stops the manager abruptly and makes sure it runs again when
// the test ends, whatever happens in between.
func killManager(t *testing.T) (restart func()) {
	t.Helper()
	cluster.Manager.Kill()
	running := false
	restart = func() {
		t.Helper()
		if err := cluster.Manager.Start(); err != nil {
			t.Fatal(err)
		}
		running = true
	}
	t.Cleanup(func() {
		if !running {
			if err := cluster.Manager.Start(); err != nil {
				t.Error(err)
			}
		}
	})
	return restart
}

// TestRealResultsOfADeletedPod: a step's container finishes while the
// manager is down, and its pod is deleted (as pod garbage collection or a
// user would) before the manager could read its termination message. The
// results are still read when the manager is back, the downstream's `when`
// sees them, and the pod then goes away.
func TestRealResultsOfADeletedPod(t *testing.T) {
	ns, _ := setup(t)
	ctx := context.Background()
	create(t,
		realJob("train", ns, `sleep 3; echo accuracy=0.93 >/dev/termination-log`).Obj(),
		realJob("deploy", ns, `true`).After("train").When("tasks.train.results.accuracy >= 0.9").Obj(),
	)
	waitPhases(t, ns, map[string]annotations.Phase{"train": annotations.PhaseRunning})
	restart := killManager(t)
	jobFinished(t, ns, "train", batchv1.JobComplete)
	pods := podsOf(t, ns, "train")
	if len(pods) != 1 {
		t.Fatalf("train has %d pods, want 1", len(pods))
	}
	if !slices.Contains(pods[0].Finalizers, annotations.ResultsFinalizer) {
		t.Errorf("train's pod has finalizers %v, want %s", pods[0].Finalizers, annotations.ResultsFinalizer)
	}
	if err := cluster.Client.Delete(ctx, &pods[0], client.PropagationPolicy("Background")); err != nil {
		t.Fatal(err)
	}
	restart()
	waitPhases(t, ns, map[string]annotations.Phase{"train": annotations.PhaseSucceeded, "deploy": annotations.PhaseSucceeded})
	if got := results(t, ns, "train"); got["accuracy"] != 0.93 {
		t.Errorf("train's results are %v, want accuracy 0.93 from its deleted pod", got)
	}
	podsGone(t, ns, "train")
	err := cluster.Client.Get(ctx, client.ObjectKeyFromObject(&pods[0]), &corev1.Pod{})
	if !apierrors.IsNotFound(err) {
		t.Errorf("train's deleted pod: %v, want it gone once its results were recorded", err)
	}
}

// TestRealRetriesUnderFaults: a Job whose first pod fails and whose retry
// succeeds, and an indexed Job of two pods, both finishing while the
// manager is down. Each task's results are those of the pod that finished last, the
// failed attempt's never; every pod's finalizer is removed once the
// outcome is recorded.
func TestRealRetriesUnderFaults(t *testing.T) {
	ns, _ := setup(t)
	retried := realJob("retried", ns, `if [ -e "$SLUICE_OUTPUT_DATA/tried" ]; then echo attempt=2 >/dev/termination-log
		else touch "$SLUICE_OUTPUT_DATA/tried"; echo attempt=1 >/dev/termination-log; exit 1; fi`).Outputs("data:Dataset").Obj()
	retried.Spec.BackoffLimit = ptr.To[int32](2)
	// pair writes to the run volume too, so that its pods start when
	// retried's first one does: after the volume is provisioned.
	pair := realJob("pair", ns, `sleep $((JOB_COMPLETION_INDEX + 8)); echo "index=$JOB_COMPLETION_INDEX" >/dev/termination-log`).
		Outputs("log:Dataset").Obj()
	pair.Spec.Completions, pair.Spec.Parallelism = ptr.To[int32](2), ptr.To[int32](2)
	pair.Spec.CompletionMode = ptr.To(batchv1.IndexedCompletion)
	create(t, retried, pair,
		realJob("after", ns, `true`).After("retried", "pair").
			When("tasks.retried.results.attempt == 2 && tasks.pair.results.index == 1").Obj(),
	)
	// The manager goes down once the first attempt failed (the Job
	// controller waits 10 s before the next), while pair's pods still run
	// (8 and 9 s).
	eventually(t, "retried's first attempt failed", func() (bool, string) {
		var phases []corev1.PodPhase
		for _, p := range podsOf(t, ns, "retried") {
			if p.Status.Phase == corev1.PodFailed {
				return true, ""
			}
			phases = append(phases, p.Status.Phase)
		}
		return false, fmt.Sprintf("pods in %v", phases)
	})
	restart := killManager(t)
	jobFinished(t, ns, "retried", batchv1.JobComplete)
	jobFinished(t, ns, "pair", batchv1.JobComplete)
	for task, want := range map[string]int{"retried": 2, "pair": 2} {
		pods := podsOf(t, ns, task)
		if len(pods) != want {
			t.Errorf("%s has %d pods, want %d", task, len(pods), want)
		}
		for _, p := range pods {
			if !slices.Contains(p.Finalizers, annotations.ResultsFinalizer) {
				t.Errorf("pod %s (%s) has finalizers %v while the manager is down, want %s", p.Name, p.Status.Phase, p.Finalizers, annotations.ResultsFinalizer)
			}
		}
	}
	restart()
	waitPhases(t, ns, map[string]annotations.Phase{"retried": annotations.PhaseSucceeded, "pair": annotations.PhaseSucceeded, "after": annotations.PhaseSucceeded})
	if got := results(t, ns, "retried"); got["attempt"] != float64(2) {
		t.Errorf("retried's results are %v, want attempt 2 (the pod that succeeded)", got)
	}
	if got := results(t, ns, "pair"); got["index"] != float64(1) {
		t.Errorf("pair's results are %v, want index 1 (the pod that finished last)", got)
	}
	for _, task := range []string{"retried", "pair", "after"} {
		eventually(t, "the finalizers of "+task+"'s pods removed", func() (bool, string) {
			for _, p := range podsOf(t, ns, task) {
				if slices.Contains(p.Finalizers, annotations.ResultsFinalizer) {
					return false, fmt.Sprintf("pod %s has finalizers %v", p.Name, p.Finalizers)
				}
			}
			return true, ""
		})
	}
}
