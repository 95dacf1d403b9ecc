package cluster

import (
	"context"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/sluice-dev/sluice/annotations"
	utiltesting "github.com/sluice-dev/sluice/annotations/testing"
)

// nodeOf waits until the task's pod is bound and returns the node.
func nodeOf(t *testing.T, ns, task string) string {
	t.Helper()
	deadline := time.Now().Add(runTimeout)
	for time.Now().Before(deadline) {
		var pods corev1.PodList
		if err := cluster.Client.List(context.Background(), &pods, client.InNamespace(ns), client.MatchingLabels{annotations.TaskLabel: task}); err != nil {
			t.Fatal(err)
		}
		for _, p := range pods.Items {
			if p.Spec.NodeName != "" {
				return p.Spec.NodeName
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("no pod of %s was scheduled within %s", task, runTimeout)
	return ""
}

func TestGPUPlacement(t *testing.T) {
	ns, _ := setup(t)
	gpu := func(name, accel string) client.Object {
		return job(name, ns).Annotation(annotations.GPUAnnotation, "1").Annotation(annotations.AcceleratorAnnotation, accel).Obj()
	}
	create(t,
		gpu("t4", "nvidia-tesla-t4"),
		gpu("a100", "NVIDIA_TESLA_A100"), // the Kubeflow SDK's name
		gpu("h100", "H100"),
		job("cpu-a", ns).Obj(), job("cpu-b", ns).Obj(),
	)
	for task, wantPrefix := range map[string]string{
		"t4": "sluice-t4-", "a100": "sluice-a100-", "cpu-a": "sluice-cpu-", "cpu-b": "sluice-cpu-",
	} {
		if node := nodeOf(t, ns, task); !strings.HasPrefix(node, wantPrefix) {
			t.Errorf("%s ran on %s, want a %s* node", task, node, wantPrefix)
		}
	}
	for _, task := range []string{"t4", "a100", "cpu-a"} {
		var pods corev1.PodList
		if err := cluster.Client.List(context.Background(), &pods, client.InNamespace(ns), client.MatchingLabels{annotations.TaskLabel: task}); err != nil {
			t.Fatal(err)
		}
		for _, p := range pods.Items {
			if p.Spec.SchedulerName != "sluice-scheduler" {
				t.Errorf("pod of %s has schedulerName %q, want sluice-scheduler", task, p.Spec.SchedulerName)
			}
		}
	}
	// No node has an H100: the step stays Pending and the scheduler says why,
	// naming what the nodes offer.
	deadline := time.Now().Add(runTimeout)
	for {
		var evs eventsv1.EventList
		if err := cluster.Client.List(context.Background(), &evs, client.InNamespace(ns)); err != nil {
			t.Fatal(err)
		}
		for _, e := range evs.Items {
			if e.Reason == "FailedScheduling" && strings.HasPrefix(e.Regarding.Name, "h100-") {
				if want := "no node offers accelerator H100; the nodes offer NVIDIA-A100-SXM4-40GB, Tesla-T4, nvidia-tesla-a100, nvidia-tesla-t4 (SluiceGPU)"; !strings.Contains(e.Note, want) {
					t.Errorf("FailedScheduling note = %q, want it to contain %q", e.Note, want)
				}
				t.Logf("h100 step: %s", e.Note)
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("no FailedScheduling event for the h100 step")
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestStartDeadlineOfAnUnschedulablePod: a bare Pod that no node can take
// (its accelerator is nowhere) fails at its start deadline with the
// scheduler's words, through its status since no kubelet has it, and its
// downstream fails.
func TestStartDeadlineOfAnUnschedulablePod(t *testing.T) {
	ns, _ := setup(t)
	create(t,
		utiltesting.MakePod("h100", ns).Label(annotations.RunLabel, "r").Annotation(annotations.AcceleratorAnnotation, "h100").
			Annotation(annotations.StartDeadlineAnnotation, "5s").Obj(),
		job("report", ns).After("h100").Obj(),
	)
	waitPhases(t, ns, map[string]annotations.Phase{"h100": annotations.PhaseFailed, "report": annotations.PhaseUpstreamFailed})
	var p corev1.Pod
	if err := cluster.Client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "h100"}, &p); err != nil {
		t.Fatal(err)
	}
	reason := p.Annotations[annotations.ReasonAnnotation]
	t.Logf("h100: reason %q", reason)
	if want := "did not start within 5s: Pending: "; !strings.HasPrefix(reason, want) || !strings.Contains(reason, "no node offers accelerator h100") {
		t.Errorf("reason = %q, want it to start with %q and name the accelerator", reason, want)
	}
	if p.Status.Phase != corev1.PodFailed || p.Spec.NodeName != "" {
		t.Errorf("pod phase %s on node %q, want Failed on none", p.Status.Phase, p.Spec.NodeName)
	}
}
