package controller

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/sluice-dev/sluice/annotations"
)

// DefaultStartDeadline is how long a released step's pod may be unable to
// start before its task fails: long enough for a cluster autoscaler to add
// a GPU node, or a large image to be pulled again after a hiccup.
const DefaultStartDeadline = 15 * time.Minute

// startDeadlinePrefix starts the reason of a task that failed its start
// deadline.
const startDeadlinePrefix = "did not start within "

// startDeadline is the task's own deadline, else the controller's.
func (r *RunReconciler) startDeadline(task *annotations.Task) time.Duration {
	if task.StartDeadline != nil {
		return *task.StartDeadline
	}
	return r.opts.StartDeadline
}

// applyStartDeadline watches a released task whose pod cannot start (its
// reason says why: unschedulable, its image not pulled, ...): the first time
// it is seen so, the moment is kept on the object with the reason; once it
// stays so for the start deadline, the task fails with that reason, and its
// step is stopped so that it cannot start later.
func (r *RunReconciler) applyStartDeadline(task *annotations.Task, obj client.Object, s *taskState) {
	if s.phase == annotations.PhaseFailed && strings.HasPrefix(s.reason, startDeadlinePrefix) {
		s.stop = !stopped(obj) // failed before; stopping it did not land yet
		return
	}
	if s.phase != annotations.PhaseRunning || !isBlockedReason(s.reason) {
		return
	}
	now := r.now()
	s.blockedSince = now
	if since, err := time.Parse(time.RFC3339, obj.GetAnnotations()[annotations.BlockedSinceAnnotation]); err == nil && since.Before(now) {
		s.blockedSince = since
	}
	// A task waiting for its run volume is looked at again every
	// provisioningTTL: what its provisioner says comes in Events, which
	// nothing here watches.
	var again time.Time
	if strings.HasPrefix(s.reason, volumePrefix) {
		again = now.Add(provisioningTTL)
	}
	limit := r.startDeadline(task)
	if limit <= 0 {
		s.deadline = again
		return
	}
	if at := s.blockedSince.Add(limit); now.Before(at) {
		s.deadline = at
		if !again.IsZero() && again.Before(at) {
			s.deadline = again
		}
		return
	}
	s.phase, s.finishedAt, s.stop = annotations.PhaseFailed, now, true
	s.reason = oneLine(startDeadlinePrefix + limit.String() + ": " + s.reason)
	s.blockedSince = time.Time{}
}

// blockedSinceValue is how since is recorded; "" for none.
func blockedSinceValue(since time.Time) string {
	if since.IsZero() {
		return ""
	}
	return since.UTC().Format(time.RFC3339)
}

// setBlockedSince keeps or clears the moment the task was first seen
// blocked.
func setBlockedSince(obj client.Object, since time.Time) {
	annots := obj.GetAnnotations()
	if v := blockedSinceValue(since); v != "" {
		if annots == nil {
			annots = map[string]string{}
		}
		annots[annotations.BlockedSinceAnnotation] = v
		obj.SetAnnotations(annots)
	} else {
		delete(annots, annotations.BlockedSinceAnnotation)
	}
}

// blockedSinceChanged reports whether setBlockedSince would change obj.
func blockedSinceChanged(obj client.Object, since time.Time) bool {
	return obj.GetAnnotations()[annotations.BlockedSinceAnnotation] != blockedSinceValue(since)
}

// stopSpec stops a step that failed its start deadline, in the patch that
// records the failure: a Job's activeDeadlineSeconds is cut to the time it
// has been active, so that the Job controller fails it and deletes its pods;
// a bare Pod on a node gets the same from the kubelet. A Pod that no node
// took is failed through its status (failUnscheduled). The deadline the
// step had is kept in sluice.dev/active-deadline, for a retry to restore.
func stopSpec(obj client.Object, now time.Time) {
	cut := func(deadline **int64, start *metav1.Time) {
		secs := int64(1)
		if start != nil {
			secs = max(secs, int64(now.Sub(start.Time).Seconds()))
		}
		if *deadline != nil && **deadline <= secs {
			return
		}
		annots := obj.GetAnnotations()
		if annots == nil {
			annots = map[string]string{}
		}
		if _, kept := annots[annotations.ActiveDeadlineAnnotation]; !kept {
			own := ""
			if *deadline != nil {
				own = strconv.FormatInt(**deadline, 10)
			}
			annots[annotations.ActiveDeadlineAnnotation] = own
			obj.SetAnnotations(annots)
		}
		*deadline = &secs
	}
	switch o := obj.(type) {
	case *batchv1.Job:
		cut(&o.Spec.ActiveDeadlineSeconds, o.Status.StartTime)
	case *corev1.Pod:
		if o.Spec.NodeName != "" {
			cut(&o.Spec.ActiveDeadlineSeconds, o.Status.StartTime)
		}
	}
}

// stopped reports whether a step that failed its start deadline can no
// longer start: it has finished, or the deadline that ends it is set.
func stopped(obj client.Object) bool {
	switch o := obj.(type) {
	case *batchv1.Job:
		return o.Spec.ActiveDeadlineSeconds != nil || jobFinished(o)
	case *corev1.Pod:
		if o.Status.Phase == corev1.PodSucceeded || o.Status.Phase == corev1.PodFailed {
			return true
		}
		return o.Spec.NodeName != "" && o.Spec.ActiveDeadlineSeconds != nil
	}
	return true
}

func jobFinished(job *batchv1.Job) bool {
	for _, c := range job.Status.Conditions {
		if (c.Type == batchv1.JobComplete || c.Type == batchv1.JobFailed) && c.Status == corev1.ConditionTrue {
			return true
		}
	}
	return false
}

// failUnscheduled fails a bare Pod that no node took, as the pod garbage
// collector fails pods that will never run: through its status, against the
// resourceVersion read, so that a pod bound meanwhile is left to the kubelet
// (the next reconcile gives it an active deadline instead).
func (r *RunReconciler) failUnscheduled(ctx context.Context, s *taskState) error {
	pod := s.pod
	if pod == nil || pod.Spec.NodeName != "" || pod.Status.Phase == corev1.PodFailed || pod.Status.Phase == corev1.PodSucceeded {
		return nil
	}
	failed := pod.DeepCopy()
	failed.Status.Phase = corev1.PodFailed
	failed.Status.Reason = "DeadlineExceeded"
	failed.Status.Message = s.reason
	if err := r.client.Status().Patch(ctx, failed, client.MergeFromWithOptions(pod, client.MergeFromWithOptimisticLock{})); err != nil {
		return fmt.Errorf("failing unscheduled pod %s/%s: %w", pod.Namespace, pod.Name, err)
	}
	s.pod = failed
	s.pods = []*corev1.Pod{failed}
	return nil
}
