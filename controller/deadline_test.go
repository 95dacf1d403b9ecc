package controller

import (
	"context"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/sluice-dev/sluice/annotations"
	utiltesting "github.com/sluice-dev/sluice/annotations/testing"
)

// clock is a reconciler's fake time.
type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func deadlineReconciler(c client.Client, clk *clock, deadline time.Duration) *RunReconciler {
	r := NewRunReconciler(c, events.NewFakeRecorder(100), Options{StartDeadline: deadline})
	r.now = clk.now
	return r
}

// reconcileAt reconciles run ml/p and returns when it asked to be looked at
// again.
func reconcileAt(t *testing.T, r *RunReconciler) time.Duration {
	t.Helper()
	res, err := r.Reconcile(context.Background(), reconcile.Request{NamespacedName: types.NamespacedName{Namespace: "ml", Name: "p"}})
	if err != nil {
		t.Fatal(err)
	}
	return res.RequeueAfter
}

func getJob(t *testing.T, c client.Client, name string) *batchv1.Job {
	t.Helper()
	var j batchv1.Job
	if err := c.Get(context.Background(), types.NamespacedName{Namespace: "ml", Name: name}, &j); err != nil {
		t.Fatal(err)
	}
	return &j
}

func getPod(t *testing.T, c client.Client, name string) *corev1.Pod {
	t.Helper()
	var p corev1.Pod
	if err := c.Get(context.Background(), types.NamespacedName{Namespace: "ml", Name: name}, &p); err != nil {
		t.Fatal(err)
	}
	return &p
}

// A released Job whose pod cannot pull its image fails when the start
// deadline passes, with that reason, even across a restart of the
// controller; the Job is stopped and its downstream fails.
func TestStartDeadlineFailsAJob(t *testing.T) {
	t0 := time.Date(2026, 12, 2, 6, 0, 0, 0, time.UTC)
	train := utiltesting.MakeJob("train", "ml").After("prep").Label(annotations.PhaseLabel, "Running").
		Annotation(annotations.ReasonAnnotation, "released: upstreams succeeded (prep)").UID("u-train").Obj()
	train.Status.StartTime = &metav1.Time{Time: t0.Add(-time.Minute)}
	stuck := utiltesting.MakePod("train-x", "ml").Label(annotations.TaskLabel, "train").OwnedByJob("train", "u-train").Phase(corev1.PodPending).Obj()
	stuck.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "main", State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{
		Reason: "ImagePullBackOff", Message: `Back-off pulling image "localhost/train:1"`}}}}
	c := newClient(
		completed(utiltesting.MakeJob("prep", "ml").Label(annotations.PhaseLabel, "Succeeded").Obj()),
		train, stuck,
		suspended(utiltesting.MakeJob("eval", "ml").After("train").Label(annotations.PhaseLabel, "Waiting").Obj()),
	)
	clk := &clock{t0}
	r := deadlineReconciler(c, clk, 10*time.Minute)

	if got := reconcileAt(t, r); got != 10*time.Minute {
		t.Errorf("first look: requeue after %s, want the deadline, 10m", got)
	}
	j := getJob(t, c, "train")
	if got, want := j.Annotations[annotations.ReasonAnnotation], `ImagePullBackOff: container main: Back-off pulling image "localhost/train:1"`; got != want {
		t.Errorf("reason = %q, want %q", got, want)
	}
	if got := j.Annotations[annotations.BlockedSinceAnnotation]; got != t0.Format(time.RFC3339) {
		t.Errorf("blocked-since = %q, want %s", got, t0.Format(time.RFC3339))
	}

	clk.t = t0.Add(4 * time.Minute)
	if got := reconcileAt(t, r); got != 6*time.Minute {
		t.Errorf("4 minutes later: requeue after %s, want 6m", got)
	}
	if phase := phaseOfJob(t, c, "train"); phase != annotations.PhaseRunning {
		t.Errorf("before the deadline: phase %s, want Running", phase)
	}

	// A new controller (a restart) keeps counting from what is recorded.
	clk.t = t0.Add(10*time.Minute + 30*time.Second)
	r = deadlineReconciler(c, clk, 10*time.Minute)
	if got := reconcileAt(t, r); got != 0 {
		t.Errorf("after the deadline: requeue after %s, want none", got)
	}
	j = getJob(t, c, "train")
	if got, want := j.Annotations[annotations.ReasonAnnotation], `did not start within 10m0s: ImagePullBackOff: container main: Back-off pulling image "localhost/train:1"`; got != want {
		t.Errorf("reason = %q, want %q", got, want)
	}
	if phase := phaseOfJob(t, c, "train"); phase != annotations.PhaseFailed {
		t.Errorf("phase = %s, want Failed", phase)
	}
	// Active since t0-1m: the deadline that ends the Job is 11m30s.
	if got := ptr.Deref(j.Spec.ActiveDeadlineSeconds, 0); got != 690 {
		t.Errorf("activeDeadlineSeconds = %d, want 690 (the time the Job has been active)", got)
	}
	if own, ok := j.Annotations[annotations.ActiveDeadlineAnnotation]; !ok || own != "" {
		t.Errorf("%s = %q (set: %v), want \"\": the Job had no deadline of its own, for a retry to restore", annotations.ActiveDeadlineAnnotation, own, ok)
	}
	if _, had := j.Annotations[annotations.BlockedSinceAnnotation]; had {
		t.Error("blocked-since kept on a failed task")
	}
	if phase := phaseOfJob(t, c, "eval"); phase != annotations.PhaseUpstreamFailed {
		t.Errorf("downstream phase = %s, want UpstreamFailed", phase)
	}

	// The Job controller fails the Job for its deadline: the reason stays.
	j.Status.Conditions = []batchv1.JobCondition{{Type: batchv1.JobFailed, Status: corev1.ConditionTrue, Reason: "DeadlineExceeded", Message: "Job was active longer than specified deadline"}}
	if err := c.Status().Update(context.Background(), j); err != nil {
		t.Fatal(err)
	}
	r = deadlineReconciler(c, clk, 10*time.Minute)
	reconcileAt(t, r)
	if got := getJob(t, c, "train").Annotations[annotations.ReasonAnnotation]; got[:len(startDeadlinePrefix)] != startDeadlinePrefix {
		t.Errorf("after the Job failed, reason = %q, want the start deadline's", got)
	}
}

func phaseOfJob(t *testing.T, c client.Client, name string) annotations.Phase {
	t.Helper()
	return recordedPhase(getJob(t, c, name))
}

// A released bare Pod that no node takes fails through its status when its
// own deadline passes; one that starts in time is left alone.
func TestStartDeadlineFailsAnUnscheduledPod(t *testing.T) {
	t0 := time.Date(2026, 12, 2, 6, 0, 0, 0, time.UTC)
	pod := func(name, deadline string) *corev1.Pod {
		p := utiltesting.MakePod(name, "ml").Label(annotations.PhaseLabel, "Running").Annotation(annotations.StartDeadlineAnnotation, deadline).Phase(corev1.PodPending).Obj()
		p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodScheduled, Status: corev1.ConditionFalse, Reason: corev1.PodReasonUnschedulable,
			Message: "0/6 nodes are available: no node offers accelerator h100; the nodes offer Tesla-T4 (SluiceGPU)."}}
		return p
	}
	c := newClient(pod("train", "30s"), pod("never", "0"), pod("starts", "30s"))
	clk := &clock{t0}
	r := deadlineReconciler(c, clk, time.Hour)
	if got := reconcileAt(t, r); got != 30*time.Second {
		t.Errorf("requeue after %s, want 30s", got)
	}
	// "starts" is bound and runs before its deadline.
	starts := getPod(t, c, "starts")
	starts.Spec.NodeName = "n1"
	if err := c.Update(context.Background(), starts); err != nil {
		t.Fatal(err)
	}
	starts.Status.Phase = corev1.PodRunning
	starts.Status.Conditions = nil
	if err := c.Status().Update(context.Background(), starts); err != nil {
		t.Fatal(err)
	}
	r.inbox.touch(starts)
	clk.t = t0.Add(31 * time.Second)
	if got := reconcileAt(t, r); got != 0 {
		t.Errorf("requeue after %s, want none: the deadline passed and the others have none", got)
	}
	failed := getPod(t, c, "train")
	if failed.Status.Phase != corev1.PodFailed || failed.Status.Reason != "DeadlineExceeded" {
		t.Errorf("pod status %s/%s, want Failed/DeadlineExceeded", failed.Status.Phase, failed.Status.Reason)
	}
	if got, want := failed.Annotations[annotations.ReasonAnnotation], "did not start within 30s: Pending: 0/6 nodes are available: no node offers accelerator h100; the nodes offer Tesla-T4 (SluiceGPU)."; got != want {
		t.Errorf("reason = %q, want %q", got, want)
	}
	if got := recordedPhase(getPod(t, c, "never")); got != annotations.PhaseRunning {
		t.Errorf("a task without a deadline: phase %s, want Running", got)
	}
	s := getPod(t, c, "starts")
	if recordedPhase(s) != annotations.PhaseRunning || s.Annotations[annotations.BlockedSinceAnnotation] != "" || s.Status.Phase != corev1.PodRunning {
		t.Errorf("a pod that started: phase %s, blocked-since %q, status %s; want Running, none, Running",
			recordedPhase(s), s.Annotations[annotations.BlockedSinceAnnotation], s.Status.Phase)
	}
}

// A released step whose pod waits for its run volume is looked at again
// every provisioningTTL, not only at its deadline: the provisioner's
// failure, which comes as an Event, shows in its reason within that time.
// Either the scheduler has said the pod is unschedulable for the claim, or
// it holds the pod without a word while the claim is provisioned for the
// node it chose (WaitForFirstConsumer): then nothing shows until the
// provisioner fails.
func TestVolumeReasonLookedAtAgain(t *testing.T) {
	const failed = "volume sluice-p (ReadWriteMany): provisioner rancher.io/local-path: NodePath only supports ReadWriteOnce"
	for name, tc := range map[string]struct {
		unschedulable bool
		before        string // the reason before the provisioner said anything
	}{
		"unschedulable for the claim":     {unschedulable: true, before: "volume sluice-p: the claim is Pending (StorageClass \"local-path\", provisioner rancher.io/local-path, access mode [ReadWriteMany]): `kubectl describe pvc sluice-p` shows why"},
		"held while the claim provisions": {},
	} {
		t.Run(name, func(t *testing.T) {
			t0 := time.Date(2026, 12, 2, 6, 0, 0, 0, time.UTC)
			p := utiltesting.MakePod("write", "ml").Label(annotations.RunLabel, "p").Label(annotations.PhaseLabel, "Running").
				Annotation(annotations.OutputsAnnotation, "data:Dataset").Phase(corev1.PodPending).Obj()
			pvc := (&RunReconciler{}).volumeFor("ml", "p", "p")
			pvc.UID, pvc.Spec.StorageClassName = "claim-uid", ptr.To("local-path")
			pvc.Spec.AccessModes = []corev1.PersistentVolumeAccessMode{corev1.ReadWriteMany}
			pvc.Status.Phase = corev1.ClaimPending
			if tc.unschedulable {
				p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodScheduled, Status: corev1.ConditionFalse, Reason: corev1.PodReasonUnschedulable,
					Message: "0/6 nodes are available: pod has unbound immediate PersistentVolumeClaims."}}
			} else {
				pvc.Annotations = map[string]string{selectedNodeAnnotation: "sluice-real-1"}
			}
			c := eventsClient(p, pvc, class("local-path", "rancher.io/local-path", true, time.Hour)).Build()
			clk := &clock{t0}
			r := deadlineReconciler(c, clk, time.Hour)
			r.events = c
			if !tc.unschedulable {
				// Before the scheduler chose a node: nothing to say yet,
				// but the claim is looked at again.
				pvc.Annotations = nil
				if err := c.Update(context.Background(), pvc); err != nil {
					t.Fatal(err)
				}
				if got := reconcileAt(t, r); got != provisioningTTL {
					t.Errorf("no node chosen: requeue after %s, want %s", got, provisioningTTL)
				}
				pvc.Annotations = map[string]string{selectedNodeAnnotation: "sluice-real-1"}
				if err := c.Update(context.Background(), pvc); err != nil {
					t.Fatal(err)
				}
			}
			if got := reconcileAt(t, r); got != provisioningTTL {
				t.Errorf("requeue after %s, want %s (not the hour of the deadline)", got, provisioningTTL)
			}
			if got := getPod(t, c, "write").Annotations[annotations.ReasonAnnotation]; got != tc.before {
				t.Errorf("reason before the provisioner said anything = %q, want %q", got, tc.before)
			}
			if err := c.Create(context.Background(), claimEvent("failed", "claim-uid", provisioningFailedReason, "NodePath only supports ReadWriteOnce", 0)); err != nil {
				t.Fatal(err)
			}
			clk.t = t0.Add(provisioningTTL)
			if got := reconcileAt(t, r); got != provisioningTTL {
				t.Errorf("requeue after %s, want %s", got, provisioningTTL)
			}
			if got := getPod(t, c, "write").Annotations[annotations.ReasonAnnotation]; got != failed {
				t.Errorf("reason = %q, want %q", got, failed)
			}
			// And it fails with those words at its deadline.
			clk.t = t0.Add(provisioningTTL + time.Hour) // blocked since the provisioner said no, at the latest
			reconcileAt(t, r)
			if got := getPod(t, c, "write").Annotations[annotations.ReasonAnnotation]; got != "did not start within 1h0m0s: "+failed {
				t.Errorf("at the deadline, reason = %q", got)
			}
		})
	}
}
