package controller

import (
	"fmt"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/sluice-dev/sluice/annotations"
)

// podsGrace is how long a Job's outcome waits for the cache to show its
// pods finished (podsBehind) before it is recorded without their results.
const podsGrace = 30 * time.Second

// podsBehind reports whether the cache's pods of a Job lag behind its final
// condition: a pod neither finished nor being deleted, or fewer succeeded
// or failed pods than the Job counts (a pod the cache never got). The Job
// controller set the condition after it saw the pods finish; the pods'
// informer has not caught up yet (after a broken watch it lists again,
// apart from the Jobs'), and the results in their termination messages
// cannot be read.
func podsBehind(job *batchv1.Job, pods []*corev1.Pod) bool {
	var succeeded, failed int32
	for _, p := range pods {
		switch p.Status.Phase {
		case corev1.PodSucceeded:
			succeeded++
		case corev1.PodFailed:
			failed++
		default:
			if p.DeletionTimestamp == nil {
				return true
			}
		}
	}
	return succeeded < job.Status.Succeeded || failed < job.Status.Failed
}

// waitForPods holds back the outcome of a Job whose final condition the
// cache shows before its pods' ends (podsBehind): recorded now, it would
// lose the results, and a downstream condition on them would be decided on
// nothing. The task stays Running until the pods catch up, or for
// podsGrace, and is looked at again then.
func (r *RunReconciler) waitForPods(job *batchv1.Job, s *taskState) {
	if !s.phase.Finished() || s.early || recordedPhase(job) == s.phase || !podsBehind(job, s.pods) {
		return
	}
	if until := s.finishedAt.Add(podsGrace); r.now().Before(until) {
		s.phase, s.reason = unfinishedPhase(job, s.pods, false)
		s.finishedAt, s.deadline = time.Time{}, until
	}
}

// terminationMessage returns the termination message of the task's main
// container (named by sluice.dev/container, else the first) in the pod that
// finished last, and that pod.
func terminationMessage(pods []*corev1.Pod, container string) (string, *corev1.Pod) {
	var best *corev1.Pod
	var msg string
	var bestAt int64 = -1
	for _, p := range pods {
		if p.Status.Phase != corev1.PodSucceeded && p.Status.Phase != corev1.PodFailed {
			continue
		}
		if len(p.Spec.Containers) == 0 {
			continue
		}
		main := container
		if main == "" {
			main = p.Spec.Containers[0].Name
		}
		for _, cs := range p.Status.ContainerStatuses {
			if cs.Name != main || cs.State.Terminated == nil {
				continue
			}
			if at := cs.State.Terminated.FinishedAt.UnixNano(); at > bestAt {
				best, bestAt, msg = p, at, cs.State.Terminated.Message
			}
		}
	}
	return msg, best
}

// collectResults fills s.results from the annotation already recorded, or,
// once the task finished, from its termination message. It returns the JSON
// to record when it read a new message, and an error describing a message
// that does not parse (recorded as an Event and in the reason).
func collectResults(s *taskState, pods []*corev1.Pod) (newJSON string, err error) {
	if recorded, ok := s.object().GetAnnotations()[annotations.ResultsAnnotation]; ok {
		s.results, err = annotations.UnmarshalResults(recorded)
		return "", err
	}
	if s.phase != annotations.PhaseSucceeded && s.phase != annotations.PhaseFailed {
		return "", nil
	}
	msg, pod := terminationMessage(pods, s.object().GetAnnotations()[annotations.ContainerAnnotation])
	if pod == nil {
		// The task never ran (decided without running), or its pod is gone:
		// there is nothing to read, and nothing is recorded.
		s.results = map[string]any{}
		return "", nil
	}
	results, perr := annotations.ParseResults(msg)
	if perr != nil {
		s.results = map[string]any{}
		return "{}", fmt.Errorf("no results can be read from the termination message of pod %s: %w", pod.Name, perr)
	}
	s.results = results
	out, merr := annotations.MarshalResults(results)
	if merr != nil {
		return "{}", fmt.Errorf("results of pod %s cannot be stored: %w", pod.Name, merr)
	}
	return out, nil
}
