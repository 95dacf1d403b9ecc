package controller

import (
	"context"
	"strings"
	"testing"

	batchv1 "k8s.io/api/batch/v1"
	"k8s.io/client-go/tools/events"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/sluice-dev/sluice/annotations"
	utiltesting "github.com/sluice-dev/sluice/annotations/testing"
)

// decided is a held Job the controller decided without running.
func decided(w *utiltesting.JobWrapper, p annotations.Phase, reason string) *batchv1.Job {
	return suspended(w.Label(annotations.PhaseLabel, string(p)).Annotation(annotations.ReasonAnnotation, reason).Obj())
}

// retried is the new generation of a failed root task, as kubectl sluice
// retry creates it: no phase yet, running.
func retried(name string) *batchv1.Job {
	return utiltesting.MakeJob(name, "ml").UID("u-"+name+"-2").Annotation(annotations.AttemptAnnotation, "2").Obj()
}

// TestTakeBack: a task decided without running waits again once an
// upstream it was decided on runs again, and only then.
func TestTakeBack(t *testing.T) {
	const ns = "ml"
	cases := map[string]struct {
		objs []client.Object
		want map[string]annotations.Phase
	}{
		"a retried upstream takes its downstream back, down the chain": {
			objs: []client.Object{
				retried("prep"),
				decided(utiltesting.MakeJob("train", ns).After("prep"), annotations.PhaseUpstreamFailed, "upstream prep failed"),
				decided(utiltesting.MakeJob("eval", ns).After("train"), annotations.PhaseUpstreamFailed, "upstream train failed"),
				decided(utiltesting.MakeJob("deploy", ns).After("eval").When("tasks.eval.results.ok == 1"), annotations.PhaseSkipped, "upstream eval skipped"),
			},
			want: map[string]annotations.Phase{"train": annotations.PhaseWaiting, "eval": annotations.PhaseWaiting, "deploy": annotations.PhaseWaiting},
		},
		"a join another failed upstream still fails stays UpstreamFailed": {
			objs: []client.Object{
				retried("a"),
				failedJob(utiltesting.MakeJob("b", ns).Label(annotations.PhaseLabel, "Failed").Obj()),
				decided(utiltesting.MakeJob("join", ns).After("a", "b"), annotations.PhaseUpstreamFailed, "upstream a, b failed"),
			},
			want: map[string]annotations.Phase{"join": annotations.PhaseUpstreamFailed},
		},
		"an upstream that does not exist keeps the decision": {
			objs: []client.Object{
				retried("a"),
				decided(utiltesting.MakeJob("join", ns).After("a", "gone"), annotations.PhaseUpstreamFailed, "upstream gone (deleted before it finished) failed"),
			},
			want: map[string]annotations.Phase{"join": annotations.PhaseUpstreamFailed},
		},
		"a task that ran and failed is not taken back": {
			objs: []client.Object{
				retried("a"),
				failedJob(utiltesting.MakeJob("b", ns).After("a").Label(annotations.PhaseLabel, "Failed").Obj()),
			},
			want: map[string]annotations.Phase{"b": annotations.PhaseFailed},
		},
		"any-failed cleanup that was skipped waits again": {
			objs: []client.Object{
				retried("a"),
				decided(utiltesting.MakeJob("cleanup", ns).After("a").Annotation(annotations.TriggerAnnotation, annotations.TriggerAnyFailed),
					annotations.PhaseSkipped, "no upstream failed (trigger any-failed)"),
			},
			want: map[string]annotations.Phase{"cleanup": annotations.PhaseWaiting},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			c := newClient(tc.objs...)
			r := NewRunReconciler(c, events.NewFakeRecorder(50), Options{})
			reconcileAt(t, r)
			for task, want := range tc.want {
				j := getJob(t, c, task)
				if got := recordedPhase(j); got != want {
					t.Errorf("%s: phase %s, want %s (reason %q)", task, got, want, j.Annotations[annotations.ReasonAnnotation])
				}
				if want == annotations.PhaseWaiting && (!ptrTrue(j.Spec.Suspend) || j.Annotations[annotations.ReasonAnnotation] != "") {
					t.Errorf("%s taken back: suspend %v, reason %q; want held, no reason", task, ptrTrue(j.Spec.Suspend), j.Annotations[annotations.ReasonAnnotation])
				}
			}
		})
	}
}

// TestRetriedRunEndsAgain: a run that ended Failed runs again when its
// failed task is created anew: the outcome is withdrawn from the task that
// carried it, the downstream waits, is released once the new generation
// succeeds, and the run ends Succeeded, recorded on one task.
func TestRetriedRunEndsAgain(t *testing.T) {
	const ns = "ml"
	c := newClient(
		completed(utiltesting.MakeJob("side", ns).Label(annotations.PhaseLabel, "Succeeded").Annotation(annotations.ReasonAnnotation, "Job completed").Obj()),
		retried("prep"),
		func() *batchv1.Job {
			j := decided(utiltesting.MakeJob("train", ns).After("prep", "side"), annotations.PhaseUpstreamFailed, "upstream prep failed")
			j.Annotations[annotations.RunOutcomeAnnotation] = "Failed"
			return j
		}(),
	)
	rec := events.NewFakeRecorder(50)
	r := NewRunReconciler(c, rec, Options{})
	reconcileAt(t, r)
	train := getJob(t, c, "train")
	if recordedPhase(train) != annotations.PhaseWaiting {
		t.Fatalf("train: phase %s, want Waiting", recordedPhase(train))
	}
	if o, ok := train.Annotations[annotations.RunOutcomeAnnotation]; ok {
		t.Errorf("train still carries the run outcome %q while prep runs again", o)
	}

	prep := completed(getJob(t, c, "prep"))
	if err := c.Status().Update(context.Background(), prep); err != nil {
		t.Fatal(err)
	}
	r.inbox.touch(prep)
	reconcileAt(t, r)
	train = getJob(t, c, "train")
	if recordedPhase(train) != annotations.PhaseRunning || ptrTrue(train.Spec.Suspend) {
		t.Fatalf("train after prep's new generation succeeded: phase %s, suspend %v; want released", recordedPhase(train), ptrTrue(train.Spec.Suspend))
	}

	train = completed(train)
	if err := c.Status().Update(context.Background(), train); err != nil {
		t.Fatal(err)
	}
	r.inbox.touch(train)
	reconcileAt(t, r)
	var jobs batchv1.JobList
	if err := c.List(context.Background(), &jobs); err != nil {
		t.Fatal(err)
	}
	var marks []string
	for _, j := range jobs.Items {
		if o, ok := j.Annotations[annotations.RunOutcomeAnnotation]; ok {
			marks = append(marks, j.Name+"="+o)
		}
	}
	if strings.Join(marks, ",") != "train=Succeeded" {
		t.Errorf("run outcome marks %v, want train=Succeeded only", marks)
	}
	var got []string
	for len(rec.Events) > 0 {
		e := <-rec.Events
		for _, reason := range []string{"TakenBack", "RunReopened", "Released", "RunSucceeded", "RunFailed"} {
			if strings.Contains(e, " "+reason+" ") {
				got = append(got, reason)
			}
		}
	}
	if want := "TakenBack,RunReopened,Released,RunSucceeded"; strings.Join(got, ",") != want {
		t.Errorf("events %v, want %s", got, want)
	}
}
