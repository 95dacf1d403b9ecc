package controller

import (
	"slices"
	"strings"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/sluice-dev/sluice/annotations"
)

// taskState is what the controller sees of one task: its object, the phase
// its status shows, and the phase and reason last recorded on it.
type taskState struct {
	task *annotations.Task
	job  *batchv1.Job // exactly one of job and pod is set
	pod  *corev1.Pod

	pods []*corev1.Pod // the Job's pods, or the bare Pod itself

	phase      annotations.Phase
	reason     string
	finishedAt time.Time

	// results are the task's output parameters once it finished;
	// resultsJSON is set when they were read now and must be recorded.
	results     map[string]any
	resultsJSON string
	// resultsErr says why the termination message could not be read; an
	// Event reports it once the task's outcome is recorded.
	resultsErr error
	// early is set when a Job's outcome is known from its pod before the
	// Job's status shows it. Its downstream is decided at once, but the
	// outcome is recorded once the Job controller caught up: it writes the
	// Job's status at that very moment, and a write of ours in between
	// would make its update conflict and back off.
	early bool

	// blockedSince is when the released task's pod was first seen unable
	// to start (zero while nothing blocks it); it is recorded with the
	// reason that says why.
	blockedSince time.Time
	// deadline is when the blocked task is looked at again though nothing
	// about it changed: when it fails its start deadline unless it starts
	// first, or sooner, when its reason may change (zero: never).
	deadline time.Time
	// stop is set on a task that failed its start deadline: recording its
	// phase also stops its step, so that it cannot start later.
	stop bool
}

func (s *taskState) object() client.Object {
	if s.job != nil {
		return s.job
	}
	return s.pod
}

func recordedPhase(obj client.Object) annotations.Phase {
	return annotations.Phase(obj.GetLabels()[annotations.PhaseLabel])
}

// released reports whether the controller already let the task start; a
// task is never released twice, even if someone suspends it again.
func released(p annotations.Phase) bool {
	return p == annotations.PhaseRunning || p == annotations.PhaseSucceeded || p == annotations.PhaseFailed
}

// observeJob derives a Job task's phase from the Job and its pods.
func observeJob(task *annotations.Task, job *batchv1.Job, pods []*corev1.Pod) *taskState {
	s := &taskState{task: task, job: job, pods: pods}
	// Complete and Failed are the Job's last word. SuccessCriteriaMet and
	// FailureTarget come first, while the Job controller still has status
	// updates to make: the outcome is known, but recording it waits (early).
	for _, final := range []bool{true, false} {
		for _, c := range job.Status.Conditions {
			if c.Status != corev1.ConditionTrue {
				continue
			}
			switch {
			case c.Type == batchv1.JobComplete && final, c.Type == batchv1.JobSuccessCriteriaMet && !final:
				s.phase, s.reason, s.finishedAt, s.early = annotations.PhaseSucceeded, "Job completed", c.LastTransitionTime.Time, !final
				return s
			case c.Type == batchv1.JobFailed && final, c.Type == batchv1.JobFailureTarget && !final:
				s.phase, s.reason, s.finishedAt, s.early = annotations.PhaseFailed, "Job failed: "+oneLine(c.Reason+": "+c.Message), c.LastTransitionTime.Time, !final
				return s
			}
		}
	}
	// The Job controller reports a pod's success up to a second late (it
	// batches pod-driven syncs). When the Job's outcome is already decided
	// by that pod, the task has succeeded now.
	if decidedByOnePod(job) {
		for _, p := range pods {
			if p.Status.Phase == corev1.PodSucceeded {
				s.phase, s.reason, s.finishedAt = annotations.PhaseSucceeded, "pod "+p.Name+" succeeded", podFinishedAt(p)
				s.early = true
				return s
			}
		}
	}
	s.phase, s.reason = unfinishedPhase(job, pods, annotations.IsHeld(task, job))
	return s
}

// unfinishedPhase is the phase of a task whose object shows no outcome:
// decided without running (sticky), waiting while held and never released,
// or running — with what blocks its pods, if anything does.
func unfinishedPhase(obj client.Object, pods []*corev1.Pod, held bool) (annotations.Phase, string) {
	recorded := recordedPhase(obj)
	switch {
	case decidedWithoutRunning(recorded):
		return recorded, obj.GetAnnotations()[annotations.ReasonAnnotation]
	case held && !released(recorded):
		return annotations.PhaseWaiting, ""
	default:
		if blocked := blockedReason(pods); blocked != "" {
			return annotations.PhaseRunning, blocked
		}
		return annotations.PhaseRunning, runningReason(obj, recorded)
	}
}

// runningReason keeps the reason recorded at release ("released: upstreams
// succeeded (...)") while the task runs; a task that was never held has
// nothing to say (it runs because it was created).
func runningReason(obj client.Object, recorded annotations.Phase) string {
	if recorded == annotations.PhaseRunning {
		if r := obj.GetAnnotations()[annotations.ReasonAnnotation]; r != "" && !isBlockedReason(r) {
			return r
		}
	}
	return ""
}

// decidedWithoutRunning reports whether the controller already gave a task
// whose object shows no outcome its final phase: Skipped, UpstreamFailed, or
// Failed because its condition could not be evaluated (the task is still
// held) or its pod did not start within the start deadline.
func decidedWithoutRunning(recorded annotations.Phase) bool {
	switch recorded {
	case annotations.PhaseSkipped, annotations.PhaseUpstreamFailed, annotations.PhaseFailed:
		return true
	}
	return false
}

// decidedByOnePod reports whether a single succeeded pod decides the Job's
// success: one completion, one pod at a time, and no deadline that could
// still fail the Job before it syncs.
func decidedByOnePod(job *batchv1.Job) bool {
	one := func(p *int32) bool { return p == nil || *p == 1 }
	return one(job.Spec.Completions) && one(job.Spec.Parallelism) && job.Spec.ActiveDeadlineSeconds == nil && !ptrTrue(job.Spec.Suspend)
}

// observePod derives a bare Pod task's phase.
func observePod(task *annotations.Task, pod *corev1.Pod) *taskState {
	s := &taskState{task: task, pod: pod, pods: []*corev1.Pod{pod}}
	switch {
	case pod.Status.Phase == corev1.PodSucceeded:
		s.phase, s.reason, s.finishedAt = annotations.PhaseSucceeded, "pod succeeded", podFinishedAt(pod)
	case pod.Status.Phase == corev1.PodFailed:
		s.phase, s.reason, s.finishedAt = annotations.PhaseFailed, "pod failed: "+podFailure(pod), podFinishedAt(pod)
	default:
		s.phase, s.reason = unfinishedPhase(pod, s.pods, annotations.IsHeld(task, pod))
	}
	return s
}

// stuckWaiting are the reasons a container waits for something that will
// not come by itself: its image, or a configuration it needs.
var stuckWaiting = []string{
	"ErrImagePull", "ImagePullBackOff", "ErrImageNeverPull", "InvalidImageName",
	"CreateContainerConfigError", "CreateContainerError", "RunContainerError",
}

// pendingPrefix starts the reason of a task whose pod no node can take (an
// unschedulable request, or a volume that cannot be bound).
const pendingPrefix = "Pending: "

// blockedReason says why a released task's newest unfinished pod does not
// run: no node can take it (a claim that cannot be served shows here too),
// or a container cannot start. It is "" while nothing blocks the pod.
func blockedReason(pods []*corev1.Pod) string {
	newest := newestPending(pods)
	if newest == nil {
		return ""
	}
	for _, c := range newest.Status.Conditions {
		if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse && c.Reason == corev1.PodReasonUnschedulable {
			return oneLine(pendingPrefix + c.Message)
		}
	}
	for _, statuses := range [][]corev1.ContainerStatus{newest.Status.InitContainerStatuses, newest.Status.ContainerStatuses} {
		for _, cs := range statuses {
			if w := cs.State.Waiting; w != nil && slices.Contains(stuckWaiting, w.Reason) {
				return oneLine(w.Reason + ": container " + cs.Name + ": " + w.Message)
			}
		}
	}
	return ""
}

// newestPending is the task's newest pod that is Pending and not being
// deleted (a Job's latest attempt), or nil.
func newestPending(pods []*corev1.Pod) *corev1.Pod {
	var newest *corev1.Pod
	for _, p := range pods {
		if p.Status.Phase == corev1.PodPending && p.DeletionTimestamp == nil &&
			(newest == nil || newest.CreationTimestamp.Before(&p.CreationTimestamp)) {
			newest = p
		}
	}
	return newest
}

// isBlockedReason reports whether reason was made by blockedReason (or
// volumeReason): it describes a moment of the pod, not the task's release.
func isBlockedReason(reason string) bool {
	if strings.HasPrefix(reason, pendingPrefix) || strings.HasPrefix(reason, volumePrefix) {
		return true
	}
	r, _, _ := strings.Cut(reason, ":")
	return slices.Contains(stuckWaiting, r)
}

// podFinishedAt is when the pod's last container terminated, or its
// deletion/creation time when no container reported.
func podFinishedAt(pod *corev1.Pod) time.Time {
	var t time.Time
	for _, cs := range pod.Status.ContainerStatuses {
		if term := cs.State.Terminated; term != nil && term.FinishedAt.After(t) {
			t = term.FinishedAt.Time
		}
	}
	if t.IsZero() {
		for _, c := range pod.Status.Conditions {
			if c.LastTransitionTime.After(t) {
				t = c.LastTransitionTime.Time
			}
		}
	}
	return t
}

func podFailure(pod *corev1.Pod) string {
	for _, cs := range pod.Status.ContainerStatuses {
		if term := cs.State.Terminated; term != nil && term.ExitCode != 0 {
			msg := "container " + cs.Name + " exited with code " + itoa(term.ExitCode)
			if term.Reason != "" {
				msg += " (" + term.Reason + ")"
			}
			return msg
		}
	}
	if pod.Status.Reason != "" {
		return oneLine(pod.Status.Reason + ": " + pod.Status.Message)
	}
	return "phase Failed"
}
