package cluster

import (
	"context"
	"strings"
	"testing"

	batchv1 "k8s.io/api/batch/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/sluice-dev/sluice/annotations"
	utiltesting "github.com/sluice-dev/sluice/annotations/testing"
	"github.com/sluice-dev/sluice/e2e/framework"
)

// seedPipeline is preprocess -> train -> evaluate -> deploy, where evaluate
// publishes the given accuracy and deploy runs only when it is >= 0.9.
// seedPipeline mixes a CPU step and a GPU step that share artifacts on
// separate kwok nodes: its volume is of the shared (ReadWriteMany) class.
func seedPipeline(ns, accuracy string) []client.Object {
	return []client.Object{
		job("preprocess", ns).Outputs("data:Dataset").Annotation(annotations.StorageClassAnnotation, sharedClass).Obj(),
		job("train", ns).Inputs("data=preprocess.data").Outputs("model:Model").
			Annotation(annotations.GPUAnnotation, "1").Annotation(annotations.AcceleratorAnnotation, "nvidia-tesla-t4").Obj(),
		job("evaluate", ns).Inputs("model=train.model").Sim("message", "accuracy="+accuracy).Obj(),
		job("deploy", ns).Inputs("model=train.model").After("evaluate").When("tasks.evaluate.results.accuracy >= 0.9").Obj(),
	}
}

func reasonOf(t *testing.T, ns, name string) string {
	t.Helper()
	var j batchv1.Job
	if err := cluster.Client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, &j); err != nil {
		t.Fatal(err)
	}
	return j.Annotations[annotations.ReasonAnnotation]
}

func TestConditionalDeploy(t *testing.T) {
	t.Run("accuracy 0.95 deploys", func(t *testing.T) {
		ns, tl := setup(t)
		create(t, seedPipeline(ns, "0.95")...)
		waitPhases(t, ns, map[string]annotations.Phase{
			"preprocess": annotations.PhaseSucceeded, "train": annotations.PhaseSucceeded,
			"evaluate": annotations.PhaseSucceeded, "deploy": annotations.PhaseSucceeded,
		})
		assertOrder(t, tl, map[string][]string{"train": {"preprocess"}, "evaluate": {"train"}, "deploy": {"evaluate", "train"}})
		var ev batchv1.Job
		if err := cluster.Client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "evaluate"}, &ev); err != nil {
			t.Fatal(err)
		}
		if got := ev.Annotations[annotations.ResultsAnnotation]; got != `{"accuracy":0.95}` {
			t.Errorf("evaluate results = %q", got)
		}
	})
	t.Run("accuracy 0.80 skips deploy, run not failed", func(t *testing.T) {
		ns, tl := setup(t)
		create(t, seedPipeline(ns, "0.80")...)
		waitPhases(t, ns, map[string]annotations.Phase{
			"evaluate": annotations.PhaseSucceeded, "deploy": annotations.PhaseSkipped,
		})
		if _, ok := tl.At("deploy", framework.Started); ok {
			t.Error("deploy got a pod although it was skipped")
		}
		if got, want := reasonOf(t, ns, "deploy"), `sluice.dev/when "tasks.evaluate.results.accuracy >= 0.9" is false`; got != want {
			t.Errorf("deploy reason = %q, want %q", got, want)
		}
		waitEvent(t, ns, "RunSucceeded")
	})
}

func TestTriggers(t *testing.T) {
	ns, tl := setup(t)
	create(t,
		job("train", ns).Sim("exit-code", "1").Obj(),
		job("cleanup", ns).After("train").Annotation(annotations.TriggerAnnotation, "all-done").Obj(),
		job("alert", ns).After("train").Annotation(annotations.TriggerAnnotation, "any-failed").Obj(),
		job("report", ns).After("train").Obj(),
		// A healthy branch: its alert must not fire.
		job("lint", ns).Obj(),
		job("lint-alert", ns).After("lint").Annotation(annotations.TriggerAnnotation, "any-failed").Obj(),
	)
	waitPhases(t, ns, map[string]annotations.Phase{
		"train": annotations.PhaseFailed, "cleanup": annotations.PhaseSucceeded, "alert": annotations.PhaseSucceeded,
		"report": annotations.PhaseUpstreamFailed, "lint": annotations.PhaseSucceeded, "lint-alert": annotations.PhaseSkipped,
	})
	for _, task := range []string{"report", "lint-alert"} {
		if _, ok := tl.At(task, framework.Started); ok {
			t.Errorf("%s got a pod", task)
		}
	}
	waitEvent(t, ns, "RunFailed")
}

func TestAdmissionOnCluster(t *testing.T) {
	ctx := context.Background()
	ns, _ := setup(t)
	create(t, job("a", ns).After("c").Obj(), job("b", ns).After("a").Obj(), job("train", ns).After("prep").Obj())
	cases := map[string]struct {
		do   func() error
		want string
	}{
		"cycle": {
			do:   func() error { return cluster.Client.Create(ctx, job("c", ns).After("b").Obj()) },
			want: `this task would close a dependency cycle in run "r": c -> a -> b -> c`,
		},
		"typo of a key": {
			do:   func() error { return cluster.Client.Create(ctx, job("x", ns).Annotation("sluice.dev/afer", "a").Obj()) },
			want: `metadata.annotations[sluice.dev/afer]: Invalid value: "a": unknown sluice key; did you mean sluice.dev/after?`,
		},
		"forged phase": {
			do: func() error {
				j := &batchv1.Job{}
				if err := cluster.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "train"}, j); err != nil {
					return err
				}
				patch := client.MergeFrom(j.DeepCopy())
				j.Labels[annotations.PhaseLabel] = "Succeeded"
				return framework.AsUser(t, cluster.Config, "mallory").Patch(ctx, j, patch)
			},
			want: "metadata.labels[sluice.dev/phase]: Forbidden: is set by the sluice controller only (user mallory may not set or change it)",
		},
		"after edited after creation": {
			do: func() error {
				j := &batchv1.Job{}
				if err := cluster.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "train"}, j); err != nil {
					return err
				}
				patch := client.MergeFrom(j.DeepCopy())
				j.Annotations[annotations.AfterAnnotation] = "prep,validate"
				return cluster.Client.Patch(ctx, j, patch)
			},
			want: `metadata.annotations[sluice.dev/after]: Forbidden: is immutable after creation (was "prep", now "prep,validate")`,
		},
		"bad gpu count": {
			do: func() error {
				return cluster.Client.Create(ctx, job("g", ns).Annotation(annotations.GPUAnnotation, "0").Obj())
			},
			want: `metadata.annotations[sluice.dev/gpu]: Invalid value: "0": expected a positive whole number of GPUs`,
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			err := tc.do()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
	// Nothing else in the cluster is affected: a plain Job is admitted untouched.
	plain := utiltesting.MakeJob("plain", ns).Obj()
	plain.Labels = nil
	if err := cluster.Client.Create(ctx, plain); err != nil {
		t.Fatalf("a Job without sluice labels was refused: %v", err)
	}
}
