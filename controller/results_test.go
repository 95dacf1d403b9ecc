package controller

import (
	"context"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/sluice-dev/sluice/annotations"
	utiltesting "github.com/sluice-dev/sluice/annotations/testing"
)

// TestResultsWaitForThePods: the cache shows a Job Complete while its pod
// still runs there (the pods' informer lags, as after the API server
// restarted): the outcome waits for the pod, so that a downstream condition
// reads its results, for podsGrace at most.
func TestResultsWaitForThePods(t *testing.T) {
	t0 := time.Date(2026, 12, 2, 6, 0, 0, 0, time.UTC)
	train := completed(utiltesting.MakeJob("train", "ml").Label(annotations.PhaseLabel, "Running").UID("u-train").Obj())
	train.Status.Conditions[0].LastTransitionTime = metav1.NewTime(t0)
	stale := finishedPod("train-x", "train", "u-train", "")
	stale.Status.Phase, stale.Status.ContainerStatuses = corev1.PodRunning, nil
	deploy := suspended(utiltesting.MakeJob("deploy", "ml").After("train").When("tasks.train.results.accuracy >= 0.9").
		Label(annotations.PhaseLabel, "Waiting").Obj())
	train.Status.Succeeded = 1
	for name, tc := range map[string]struct {
		podMissing   bool // the cache never got the pod at all
		podCatchesUp bool
		wantTrain    annotations.Phase
		wantDeploy   annotations.Phase
		wantResults  string
	}{
		"the pod catches up: its results decide":   {podCatchesUp: true, wantTrain: annotations.PhaseSucceeded, wantDeploy: annotations.PhaseRunning, wantResults: `{"accuracy":0.93}`},
		"it does not within the grace: no results": {wantTrain: annotations.PhaseSucceeded, wantDeploy: annotations.PhaseFailed},
		"the cache has no pod yet, then it comes":  {podMissing: true, podCatchesUp: true, wantTrain: annotations.PhaseSucceeded, wantDeploy: annotations.PhaseRunning, wantResults: `{"accuracy":0.93}`},
	} {
		t.Run(name, func(t *testing.T) {
			objs := []client.Object{train.DeepCopy(), deploy.DeepCopy()}
			if !tc.podMissing {
				objs = append(objs, stale.DeepCopy())
			}
			c := newClient(objs...)
			clk := &clock{t0.Add(time.Second)}
			r := deadlineReconciler(c, clk, 0)
			if got := reconcileAt(t, r); got <= 0 || got > podsGrace {
				t.Errorf("requeue after %s, want within %s", got, podsGrace)
			}
			if p := phaseOfJob(t, c, "train"); p != annotations.PhaseRunning {
				t.Fatalf("train is %s while its pod runs in the cache, want Running", p)
			}
			if p := phaseOfJob(t, c, "deploy"); p != annotations.PhaseWaiting {
				t.Fatalf("deploy is %s before train's results are read, want Waiting", p)
			}
			switch {
			case tc.podMissing:
				pod := finishedPod("train-x", "train", "u-train", "accuracy=0.93")
				if err := c.Create(context.Background(), pod); err != nil {
					t.Fatal(err)
				}
				r.inbox.touch(pod)
			case tc.podCatchesUp:
				pod := getPod(t, c, "train-x")
				done := finishedPod("train-x", "train", "u-train", "accuracy=0.93")
				pod.Status = done.Status
				if err := c.Status().Update(context.Background(), pod); err != nil {
					t.Fatal(err)
				}
				r.inbox.touch(pod)
			default:
				clk.t = t0.Add(podsGrace)
			}
			reconcileAt(t, r)
			if p := phaseOfJob(t, c, "train"); p != tc.wantTrain {
				t.Errorf("train is %s, want %s", p, tc.wantTrain)
			}
			if got := getJob(t, c, "train").Annotations[annotations.ResultsAnnotation]; got != tc.wantResults {
				t.Errorf("train's results %q, want %q", got, tc.wantResults)
			}
			if p := phaseOfJob(t, c, "deploy"); p != tc.wantDeploy {
				t.Errorf("deploy is %s, want %s", p, tc.wantDeploy)
			}
		})
	}
}
