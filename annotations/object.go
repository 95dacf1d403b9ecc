package annotations

import (
	"slices"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// Facts about a Job or Pod that the webhook, the controller and the kubectl
// plugin all need, written once.

// RunOf returns the run an object belongs to, or "" when it is not a sluice
// object. Objects the webhook mutated carry the run label; others default to
// the pipeline name, as Parse does.
func RunOf(obj metav1.Object) string {
	labels := obj.GetLabels()
	if run := labels[RunLabel]; run != "" {
		return run
	}
	return labels[PipelineLabel]
}

// TaskOf returns the task an object is, as Parse defaults it: its task
// label, else its name.
func TaskOf(obj metav1.Object) string {
	if task := obj.GetLabels()[TaskLabel]; task != "" {
		return task
	}
	return obj.GetName()
}

// JobRef returns the reference to the Job that controls obj (a pod of that
// Job, whose task is the Job), or nil.
func JobRef(obj metav1.Object) *metav1.OwnerReference {
	ref := metav1.GetControllerOfNoCopy(obj)
	if ref != nil && ref.Kind == "Job" && ref.APIVersion == "batch/v1" {
		return ref
	}
	return nil
}

// JobOf returns the UID of the Job that controls obj, or "".
func JobOf(obj metav1.Object) types.UID {
	if ref := JobRef(obj); ref != nil {
		return ref.UID
	}
	return ""
}

// ControlledByJob reports whether a Job controls obj: a pod of a Job is not
// a task of its own.
func ControlledByJob(obj metav1.Object) bool { return JobOf(obj) != "" }

// IsHeld reports whether a task's object is still held by sluice: a Job
// suspended (sluice suspends only tasks it holds), a Pod gated.
func IsHeld(t *Task, obj metav1.Object) bool {
	switch o := obj.(type) {
	case *batchv1.Job:
		return o.Spec.Suspend != nil && *o.Spec.Suspend && t.Held()
	case *corev1.Pod:
		return HasGate(&o.Spec)
	}
	return false
}

// HasGate reports whether a pod is held by sluice's scheduling gate.
func HasGate(spec *corev1.PodSpec) bool {
	return slices.ContainsFunc(spec.SchedulingGates, func(g corev1.PodSchedulingGate) bool { return g.Name == UpstreamGate })
}

// AddGate adds sluice's scheduling gate unless the pod already has it.
func AddGate(spec *corev1.PodSpec) {
	if !HasGate(spec) {
		spec.SchedulingGates = append(spec.SchedulingGates, corev1.PodSchedulingGate{Name: UpstreamGate})
	}
}

// RemoveGate removes sluice's scheduling gate, keeping every other gate.
func RemoveGate(spec *corev1.PodSpec) {
	spec.SchedulingGates = slices.DeleteFunc(slices.Clone(spec.SchedulingGates),
		func(g corev1.PodSchedulingGate) bool { return g.Name == UpstreamGate })
}
