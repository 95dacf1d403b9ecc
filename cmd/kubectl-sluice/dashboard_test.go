package main

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
	"sigs.k8s.io/controller-runtime/pkg/client"
	crfake "sigs.k8s.io/controller-runtime/pkg/client/fake"

	"github.com/sluice-dev/sluice/annotations"
	utiltesting "github.com/sluice-dev/sluice/annotations/testing"
	"github.com/sluice-dev/sluice/dashboard"
)

// TestDashboardSource: what the dashboard reads of a namespace: its runs,
// a run's graph, and a step's details with its events (its own and its
// pods'), oldest first, and its log's last lines.
func TestDashboardSource(t *testing.T) {
	ctx := context.Background()
	objs := statusObjects()
	pod := stepPod("train-abc", "train", 0)
	pod.Labels[annotations.RunLabel] = "r1"
	pod.OwnerReferences = utiltesting.MakePod("x", "ml").OwnedByJob("train", "u-train").Obj().OwnerReferences
	event := func(name, object, reason string, at time.Duration) *corev1.Event {
		return &corev1.Event{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ml"}, Type: corev1.EventTypeNormal, Reason: reason,
			Message: reason + " of " + object, InvolvedObject: corev1.ObjectReference{Kind: "Job", Name: object},
			LastTimestamp: metav1.NewTime(t0.Add(at))}
	}
	events := []client.Object{event("e1", "train", "Released", time.Minute), event("e2", "train-abc", "Scheduled", 2*time.Minute), event("e3", "evaluate", "Released", 0)}
	c := crfake.NewClientBuilder().WithObjects(append(objs, pod)...).WithObjects(events...).
		WithIndex(&corev1.Event{}, "involvedObject.name", func(o client.Object) []string { return []string{o.(*corev1.Event).InvolvedObject.Name} }).Build()
	src := &clusterSource{cache: c, direct: c, cs: fake.NewClientset(pod), ns: "ml"}

	runs, err := src.Runs(ctx)
	if err != nil || len(runs.([]*runStatus)) == 0 {
		t.Fatalf("Runs: %v, %v", runs, err)
	}
	var svg strings.Builder
	if err := src.Graph(ctx, "r1", &svg); err != nil || !strings.Contains(svg.String(), `data-task="train"`) {
		t.Errorf("Graph: %v:\n%.300s", err, svg.String())
	}
	if err := src.Graph(ctx, "nope", &svg); !errors.Is(err, dashboard.ErrNotFound) {
		t.Errorf("Graph of an unknown run: %v, want ErrNotFound", err)
	}
	v, err := src.Task(ctx, "r1", "train")
	if err != nil {
		t.Fatal(err)
	}
	d := v.(taskDetails)
	var got []string
	for _, e := range d.Events {
		got = append(got, e.Reason+"@"+e.Object)
	}
	if d.Task.Task != "train" || strings.Join(got, " ") != "Released@Job/train Scheduled@Job/train-abc" {
		t.Errorf("train's details: task %q, events %v", d.Task.Task, got)
	}
	if d.Log != "fake logs" || d.LogError != "" {
		t.Errorf("train's log %q (error %q), want the fake clientset's", d.Log, d.LogError)
	}
	if _, err := src.Task(ctx, "r1", "nope"); !errors.Is(err, dashboard.ErrNotFound) {
		t.Errorf("an unknown task: %v, want ErrNotFound", err)
	}
}
