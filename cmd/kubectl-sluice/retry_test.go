package main

import (
	"context"
	"errors"
	"strings"
	"testing"

	batchv1 "k8s.io/api/batch/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

	"github.com/sluice-dev/sluice/annotations"
	utiltesting "github.com/sluice-dev/sluice/annotations/testing"
	"github.com/sluice-dev/sluice/retry"
)

func TestRetryCommand(t *testing.T) {
	ctx := context.Background()
	mk := func(name string, p annotations.Phase, held bool) *utiltesting.JobWrapper {
		w := utiltesting.MakeJob(name, "ml").Run("r").Label(annotations.PhaseLabel, string(p))
		w.Obj().Spec.Suspend = ptr.To(held)
		return w
	}
	c := statusClient(
		mk("prep", annotations.PhaseSucceeded, false).Obj(),
		mk("train", annotations.PhaseFailed, false).After("prep").UID("u-train").Obj(),
		mk("eval", annotations.PhaseUpstreamFailed, true).After("train").Obj(),
	)
	run := func(o retryOptions) (string, error) {
		var out strings.Builder
		o.apply.Dir = t.TempDir()
		err := retryRun(ctx, c, &out, "ml", "r", o)
		return out.String(), err
	}

	out, err := run(retryOptions{dryRun: true})
	if err != nil || !strings.Contains(out, "run ml/r: retrying train; waiting again, once they run: eval (dry run: nothing changed)") {
		t.Errorf("retry --dry-run: %v:\n%s", err, out)
	}
	var train batchv1.Job
	if err := c.Get(ctx, types.NamespacedName{Namespace: "ml", Name: "train"}, &train); err != nil || train.UID != "u-train" {
		t.Fatalf("after a dry run, train is %q (%v), want the failed one", train.UID, err)
	}

	out, err = run(retryOptions{})
	for _, want := range []string{
		"prep   Succeeded       succeeded: kept, with its results and artifacts",
		"train  Failed          failed: attempt 2 replaces it",
		"eval   UpstreamFailed  never ran: waits for train again",
		"Job train: attempt 2 created",
	} {
		if err != nil || !strings.Contains(out, want) {
			t.Errorf("retry: %v: no line %q in:\n%s", err, want, out)
		}
	}
	if err := c.Get(ctx, types.NamespacedName{Namespace: "ml", Name: "train"}, &train); err != nil || train.Annotations[annotations.AttemptAnnotation] != "2" {
		t.Errorf("train after retry: attempt %q (%v), want 2", train.Annotations[annotations.AttemptAnnotation], err)
	}

	// The new attempt runs (the webhook labels it Running): a second retry
	// has nothing to do, and says so.
	train.Labels[annotations.PhaseLabel] = string(annotations.PhaseRunning)
	if err := c.Update(ctx, &train); err != nil {
		t.Fatal(err)
	}
	out, err = run(retryOptions{})
	if err != nil || !strings.Contains(out, "run ml/r: nothing to retry: no task failed") || !strings.Contains(out, "attempt 2 is running already") {
		t.Errorf("second retry: %v:\n%s", err, out)
	}

	var exit exitError
	if err := retryRun(ctx, c, &strings.Builder{}, "ml", "nope", retryOptions{}); err == nil || !strings.Contains(err.Error(), `no run "nope" in namespace ml`) {
		t.Errorf("retry of an unknown run: %v", err)
	}
	stuck := statusClient(
		mk("eval", annotations.PhaseSucceeded, false).Obj(),
		mk("deploy", annotations.PhaseFailed, true).After("eval").When("tasks.eval.results.accuracy > 0.9").Obj(),
	)
	var out2 strings.Builder
	err = retryRun(ctx, stuck, &out2, "ml", "r", retryOptions{apply: retry.Options{Dir: t.TempDir()}})
	if !errors.As(err, &exit) || exit.code != 1 || !strings.Contains(out2.String(), "nothing can be retried: deploy never ran") {
		t.Errorf("retry of a run with nothing to rerun but a stuck task: %v:\n%s", err, out2.String())
	}
}
