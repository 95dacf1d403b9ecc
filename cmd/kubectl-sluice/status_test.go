package main

import (
	"context"
	"strings"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	"k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"github.com/sluice-dev/sluice/annotations"
	utiltesting "github.com/sluice-dev/sluice/annotations/testing"
)

func TestStatus(t *testing.T) {
	phase := func(j *utiltesting.JobWrapper, p annotations.Phase, reason string) *batchv1.Job {
		return j.Run("r").Label(annotations.TaskLabel, j.Name).Label(annotations.PhaseLabel, string(p)).
			Annotation(annotations.ReasonAnnotation, reason).Obj()
	}
	cases := map[string]struct {
		objs     []client.Object
		wantOK   bool
		wantRows []string // task names in printed order
		wantLine string
	}{
		"succeeded run with a skipped branch": {
			objs: []client.Object{
				phase(utiltesting.MakeJob("deploy", "ml").After("evaluate"), annotations.PhaseSkipped, "when is false"),
				phase(utiltesting.MakeJob("evaluate", "ml").After("train"), annotations.PhaseSucceeded, "Job completed"),
				phase(utiltesting.MakeJob("train", "ml"), annotations.PhaseSucceeded, "Job completed"),
			},
			wantOK: true, wantRows: []string{"train", "evaluate", "deploy"}, wantLine: "run ml/r: Succeeded",
		},
		"failed run": {
			objs: []client.Object{
				phase(utiltesting.MakeJob("train", "ml"), annotations.PhaseFailed, "Job failed"),
				phase(utiltesting.MakeJob("evaluate", "ml").After("train"), annotations.PhaseUpstreamFailed, "upstream train failed"),
			},
			wantOK: false, wantRows: []string{"train", "evaluate"}, wantLine: "run ml/r: Failed",
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			c := fake.NewClientBuilder().WithScheme(scheme.Scheme).WithObjects(tc.objs...).Build()
			var out strings.Builder
			ok, err := status(context.Background(), c, &out, "ml", "r", true, time.Second)
			if err != nil {
				t.Fatal(err)
			}
			if ok != tc.wantOK {
				t.Errorf("ok = %v, want %v", ok, tc.wantOK)
			}
			text := out.String()
			last := -1
			for _, task := range tc.wantRows {
				i := strings.Index(text, "\n"+task+" ")
				if i < 0 || i < last {
					t.Errorf("task %s missing or out of order in:\n%s", task, text)
				}
				last = i
			}
			if !strings.Contains(text, tc.wantLine) {
				t.Errorf("output lacks %q:\n%s", tc.wantLine, text)
			}
		})
	}
}
