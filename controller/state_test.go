package controller

import (
	"strings"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/sluice-dev/sluice/annotations"
	utiltesting "github.com/sluice-dev/sluice/annotations/testing"
)

func TestObserveJob(t *testing.T) {
	finished := metav1.NewTime(time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC))
	succeededPod := utiltesting.MakePod("train-x", "ml").OwnedByJob("train", "u1").Phase(corev1.PodSucceeded).Obj()
	succeededPod.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "main", State: corev1.ContainerState{
		Terminated: &corev1.ContainerStateTerminated{FinishedAt: finished}}}}
	held := &annotations.Task{Name: "train", After: []string{"prep"}}
	root := &annotations.Task{Name: "prep"}
	cases := map[string]struct {
		task      *annotations.Task
		job       *batchv1.Job
		pods      []*corev1.Pod
		want      annotations.Phase
		wantAt    time.Time
		wantInWhy string
	}{
		"suspended by sluice and never released": {
			task: held,
			job: func() *batchv1.Job {
				j := utiltesting.MakeJob("train", "ml").Obj()
				j.Spec.Suspend = ptr.To(true)
				return j
			}(),
			want: annotations.PhaseWaiting,
		},
		"suspended by someone else after release stays running": {
			task: held,
			job: func() *batchv1.Job {
				j := utiltesting.MakeJob("train", "ml").Label(annotations.PhaseLabel, "Running").Obj()
				j.Spec.Suspend = ptr.To(true)
				return j
			}(),
			want: annotations.PhaseRunning,
		},
		"complete condition": {
			task: root,
			job: func() *batchv1.Job {
				j := utiltesting.MakeJob("prep", "ml").Obj()
				j.Status.Conditions = []batchv1.JobCondition{{Type: batchv1.JobComplete, Status: corev1.ConditionTrue, LastTransitionTime: finished}}
				return j
			}(),
			want: annotations.PhaseSucceeded, wantAt: finished.Time, wantInWhy: "Job completed",
		},
		"failed condition with its reason": {
			task: root,
			job: func() *batchv1.Job {
				j := utiltesting.MakeJob("prep", "ml").Obj()
				j.Status.Conditions = []batchv1.JobCondition{{Type: batchv1.JobFailed, Status: corev1.ConditionTrue, Reason: "BackoffLimitExceeded", Message: "Job has reached the specified backoff limit"}}
				return j
			}(),
			want: annotations.PhaseFailed, wantInWhy: "BackoffLimitExceeded",
		},
		"one-pod job succeeds with its pod, before the Job syncs": {
			task: root,
			job:  utiltesting.MakeJob("train", "ml").Obj(),
			pods: []*corev1.Pod{succeededPod},
			want: annotations.PhaseSucceeded, wantAt: finished.Time, wantInWhy: "pod train-x succeeded",
		},
		"a pod of a multi-completion job decides nothing": {
			task: root,
			job: func() *batchv1.Job {
				j := utiltesting.MakeJob("train", "ml").Obj()
				j.Spec.Completions = ptr.To[int32](3)
				return j
			}(),
			pods: []*corev1.Pod{succeededPod},
			want: annotations.PhaseRunning,
		},
		"a deadline could still fail the job": {
			task: root,
			job: func() *batchv1.Job {
				j := utiltesting.MakeJob("train", "ml").Obj()
				j.Spec.ActiveDeadlineSeconds = ptr.To[int64](60)
				return j
			}(),
			pods: []*corev1.Pod{succeededPod},
			want: annotations.PhaseRunning,
		},
		"upstream-failed is sticky": {
			task: held,
			job: func() *batchv1.Job {
				j := utiltesting.MakeJob("train", "ml").Label(annotations.PhaseLabel, "UpstreamFailed").Obj()
				j.Spec.Suspend = ptr.To(true)
				return j
			}(),
			want: annotations.PhaseUpstreamFailed,
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			s := observeJob(tc.task, tc.job, tc.pods)
			if s.phase != tc.want {
				t.Errorf("phase = %s, want %s", s.phase, tc.want)
			}
			if !s.finishedAt.Equal(tc.wantAt) {
				t.Errorf("finishedAt = %v, want %v", s.finishedAt, tc.wantAt)
			}
			if tc.wantInWhy != "" && !strings.Contains(s.reason, tc.wantInWhy) {
				t.Errorf("reason = %q, want it to contain %q", s.reason, tc.wantInWhy)
			}
		})
	}
}

func TestObservePod(t *testing.T) {
	held := &annotations.Task{Name: "eval", After: []string{"train"}}
	failed := utiltesting.MakePod("eval", "ml").Phase(corev1.PodFailed).Obj()
	failed.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "main", State: corev1.ContainerState{
		Terminated: &corev1.ContainerStateTerminated{ExitCode: 3, Reason: "Error"}}}}
	cases := map[string]struct {
		pod       *corev1.Pod
		want      annotations.Phase
		wantInWhy string
	}{
		"gated": {pod: utiltesting.MakePod("eval", "ml").Gate(annotations.UpstreamGate).Obj(), want: annotations.PhaseWaiting},
		"gate left after release (never)": {
			pod:  utiltesting.MakePod("eval", "ml").Gate(annotations.UpstreamGate).Label(annotations.PhaseLabel, "Running").Obj(),
			want: annotations.PhaseRunning,
		},
		"foreign gate only":          {pod: utiltesting.MakePod("eval", "ml").Gate("example.com/quota").Obj(), want: annotations.PhaseRunning},
		"failed names the exit code": {pod: failed, want: annotations.PhaseFailed, wantInWhy: "container main exited with code 3 (Error)"},
		"succeeded":                  {pod: utiltesting.MakePod("eval", "ml").Phase(corev1.PodSucceeded).Obj(), want: annotations.PhaseSucceeded},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			s := observePod(held, tc.pod)
			if s.phase != tc.want {
				t.Errorf("phase = %s, want %s", s.phase, tc.want)
			}
			if tc.wantInWhy != "" && !strings.Contains(s.reason, tc.wantInWhy) {
				t.Errorf("reason = %q, want it to contain %q", s.reason, tc.wantInWhy)
			}
		})
	}
}

func TestBlockedReason(t *testing.T) {
	now := metav1.Now()
	pending := func(mod func(*corev1.Pod)) *corev1.Pod {
		p := utiltesting.MakePod("train-x", "ml").OwnedByJob("train", "u1").Phase(corev1.PodPending).Obj()
		p.CreationTimestamp = now
		mod(p)
		return p
	}
	unschedulable := pending(func(p *corev1.Pod) {
		p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodScheduled, Status: corev1.ConditionFalse,
			Reason: corev1.PodReasonUnschedulable, Message: "0/6 nodes are available: pod has unbound immediate PersistentVolumeClaims."}}
	})
	pullFailing := pending(func(p *corev1.Pod) {
		p.Spec.NodeName = "sluice-real-1"
		p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "main", State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{
			Reason: "ImagePullBackOff", Message: `Back-off pulling image "localhost/x:1"`}}}}
	})
	creating := pending(func(p *corev1.Pod) {
		p.Spec.NodeName = "sluice-real-1"
		p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "main", State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "ContainerCreating"}}}}
	})
	older := unschedulable.DeepCopy()
	older.CreationTimestamp = metav1.NewTime(now.Add(-time.Minute))
	cases := map[string]struct {
		pods []*corev1.Pod
		want string
	}{
		"no pod yet":             {},
		"unschedulable":          {pods: []*corev1.Pod{unschedulable}, want: "Pending: 0/6 nodes are available: pod has unbound immediate PersistentVolumeClaims."},
		"image cannot be pulled": {pods: []*corev1.Pod{pullFailing}, want: `ImagePullBackOff: container main: Back-off pulling image "localhost/x:1"`},
		"container being made":   {pods: []*corev1.Pod{creating}},
		"the newest pod counts":  {pods: []*corev1.Pod{older, creating}},
		"finished pods do not count": {pods: []*corev1.Pod{
			utiltesting.MakePod("train-y", "ml").OwnedByJob("train", "u1").Phase(corev1.PodFailed).Obj()}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got := blockedReason(tc.pods)
			if got != tc.want {
				t.Errorf("blockedReason = %q, want %q", got, tc.want)
			}
			if got != "" && !isBlockedReason(got) {
				t.Errorf("isBlockedReason(%q) = false", got)
			}
		})
	}
}

func TestBlockedReasonShowsAndClears(t *testing.T) {
	task := &annotations.Task{Name: "train", After: []string{"prep"}}
	job := utiltesting.MakeJob("train", "ml").Label(annotations.PhaseLabel, "Running").
		Annotation(annotations.ReasonAnnotation, "released: upstreams succeeded (prep)").Obj()
	stuck := utiltesting.MakePod("train-x", "ml").OwnedByJob("train", "u1").Phase(corev1.PodPending).Obj()
	stuck.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "main", State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{
		Reason: "ErrImagePull", Message: "not found"}}}}
	s := observeJob(task, job, []*corev1.Pod{stuck})
	if s.phase != annotations.PhaseRunning || s.reason != "ErrImagePull: container main: not found" {
		t.Fatalf("stuck pod: phase %s, reason %q", s.phase, s.reason)
	}
	// Recorded, then the image arrives: the reason no longer claims it is stuck.
	job.Annotations[annotations.ReasonAnnotation] = s.reason
	stuck.Status.Phase = corev1.PodRunning
	stuck.Status.ContainerStatuses[0].State = corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}
	if s := observeJob(task, job, []*corev1.Pod{stuck}); s.reason != "" {
		t.Errorf("after the pod started the reason is %q, want none", s.reason)
	}
}
