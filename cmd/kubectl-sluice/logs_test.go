package main

import (
	"context"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/sluice-dev/sluice/annotations"
	utiltesting "github.com/sluice-dev/sluice/annotations/testing"
)

// stepPod is a pod of task in run r, as the webhook labels it, created at
// t0+at.
func stepPod(name, task string, at time.Duration, after ...string) *corev1.Pod {
	p := utiltesting.MakePod(name, "ml").Label(annotations.RunLabel, "r").Label(annotations.TaskLabel, task).After(after...).
		Phase(corev1.PodSucceeded).Obj()
	if len(after) == 0 {
		delete(p.Annotations, annotations.AfterAnnotation)
	}
	p.CreationTimestamp = metav1.NewTime(t0.Add(at))
	p.Spec.Containers = []corev1.Container{{Name: "main"}}
	return p
}

// TestLogs: the newest pod of a task, its main container; --all in graph
// order. The fake clientset answers every log request with "fake logs".
func TestLogs(t *testing.T) {
	// The fake clientset does not record which pod a log request is for:
	// the attempts' containers are told apart by name.
	first, second := stepPod("train-1", "train", time.Minute, "prep"), stepPod("train-2", "train", 2*time.Minute, "prep")
	first.Spec.Containers[0].Name, second.Spec.Containers[0].Name = "attempt-1", "attempt-2"
	// A Job's pods carry its task labels, not its upstreams: those come
	// from the Jobs (eval's) and the bare Pods (the rest, here).
	evalPod := stepPod("eval-1", "eval", 3*time.Minute)
	evalPod.OwnerReferences = utiltesting.MakePod("x", "ml").OwnedByJob("eval", "u-eval").Obj().OwnerReferences
	evalJob := utiltesting.MakeJob("eval", "ml").Run("r").After("train").Obj()
	cs := fake.NewClientset(
		first, second,
		stepPod("prep-1", "prep", 0),
		evalPod, evalJob,
	)
	var out strings.Builder
	if err := logs(context.Background(), cs, &out, "ml", "r", "train", logsOptions{}); err != nil {
		t.Fatal(err)
	}
	if out.String() != "fake logs" {
		t.Errorf("logs of train = %q", out.String())
	}
	var asked []string
	for _, a := range cs.Actions() {
		if a.GetSubresource() == "log" {
			asked = append(asked, a.(k8stesting.GenericAction).GetValue().(*corev1.PodLogOptions).Container)
		}
	}
	if strings.Join(asked, ",") != "attempt-2" {
		t.Errorf("logs asked of containers %v, want the newest pod's, attempt-2", asked)
	}

	out.Reset()
	if err := logs(context.Background(), cs, &out, "ml", "r", "", logsOptions{all: true}); err != nil {
		t.Fatal(err)
	}
	want := "==> prep (pod prep-1) <==\nfake logs\n==> train (pod train-2) <==\nfake logs\n==> eval (pod eval-1) <==\nfake logs"
	if out.String() != want {
		t.Errorf("logs --all =\n%s\nwant\n%s", out.String(), want)
	}

	for name, tc := range map[string]struct{ run, task, want string }{
		"an unknown run":  {run: "nope", task: "train", want: `run "nope" has no pods in namespace ml (kubectl sluice status lists the runs)`},
		"an unknown task": {run: "r", task: "deploy", want: `task "deploy" of run r has no pod (yet): its tasks with pods are [eval prep train]`},
	} {
		t.Run(name, func(t *testing.T) {
			err := logs(context.Background(), cs, &out, "ml", tc.run, tc.task, logsOptions{})
			if err == nil || err.Error() != tc.want {
				t.Errorf("err = %v, want %q", err, tc.want)
			}
		})
	}
}
