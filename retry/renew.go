package retry

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/sluice-dev/sluice/annotations"
)

// The labels the API server puts on a Job's pod template (and selector),
// with their legacy names; the new generation gets its own.
var jobTemplateLabels = []string{batchv1.ControllerUidLabel, "controller-uid", batchv1.JobNameLabel, "job-name"}

// serviceAccountVolume starts the name of the token volume the API server
// adds to every Pod; the new Pod gets its own.
const serviceAccountVolume = "kube-api-access-"

// Renew returns the next generation of a failed task's object: the same
// name, labels, annotations and spec, without what the cluster added to it
// (its identity, status, the controller's keys and the API server's
// selector and token volume), with its own activeDeadlineSeconds again if
// the controller cut it, and sluice.dev/attempt set to attempt. The
// webhook holds and mutates it again on creation (its injections are
// idempotent).
func Renew(obj client.Object, attempt int) (client.Object, error) {
	meta := renewMeta(obj, attempt)
	deadline, err := ownDeadline(obj)
	if err != nil {
		return nil, err
	}
	switch o := obj.(type) {
	case *batchv1.Job:
		job := &batchv1.Job{TypeMeta: metav1.TypeMeta{APIVersion: "batch/v1", Kind: "Job"}, ObjectMeta: meta, Spec: *o.Spec.DeepCopy()}
		if deadline != nil {
			job.Spec.ActiveDeadlineSeconds = *deadline
		}
		job.Spec.Suspend = nil // the webhook suspends it if it must wait
		if job.Spec.ManualSelector == nil || !*job.Spec.ManualSelector {
			job.Spec.Selector = nil
			for _, l := range jobTemplateLabels {
				delete(job.Spec.Template.Labels, l)
			}
		}
		return job, nil
	case *corev1.Pod:
		pod := &corev1.Pod{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"}, ObjectMeta: meta, Spec: *o.Spec.DeepCopy()}
		if deadline != nil {
			pod.Spec.ActiveDeadlineSeconds = *deadline
		}
		pod.Spec.NodeName = ""
		pod.Spec.EphemeralContainers = nil
		pod.Spec.SchedulingGates = slices.DeleteFunc(pod.Spec.SchedulingGates, func(g corev1.PodSchedulingGate) bool {
			return g.Name == annotations.UpstreamGate // the webhook gates it again if it must wait
		})
		var tokens []string
		pod.Spec.Volumes = slices.DeleteFunc(pod.Spec.Volumes, func(v corev1.Volume) bool {
			if strings.HasPrefix(v.Name, serviceAccountVolume) && v.Projected != nil {
				tokens = append(tokens, v.Name)
				return true
			}
			return false
		})
		for _, containers := range [][]corev1.Container{pod.Spec.InitContainers, pod.Spec.Containers} {
			for i := range containers {
				c := &containers[i]
				c.VolumeMounts = slices.DeleteFunc(c.VolumeMounts, func(m corev1.VolumeMount) bool { return slices.Contains(tokens, m.Name) })
			}
		}
		return pod, nil
	}
	return nil, fmt.Errorf("%T is not a Job or Pod", obj)
}

// renewMeta is the metadata of the next generation.
func renewMeta(obj client.Object, attempt int) metav1.ObjectMeta {
	labels := maps.Clone(obj.GetLabels())
	for _, k := range annotations.ControllerLabels {
		delete(labels, k)
	}
	annots := maps.Clone(obj.GetAnnotations())
	if annots == nil {
		annots = map[string]string{}
	}
	for _, k := range annotations.ControllerAnnotations {
		delete(annots, k)
	}
	annots[annotations.AttemptAnnotation] = strconv.Itoa(attempt)
	finalizers := slices.DeleteFunc(slices.Clone(obj.GetFinalizers()), func(f string) bool { return f == annotations.ResultsFinalizer })
	return metav1.ObjectMeta{
		Name: obj.GetName(), Namespace: obj.GetNamespace(), Labels: labels, Annotations: annots,
		OwnerReferences: obj.GetOwnerReferences(), Finalizers: finalizers,
	}
}

// ownDeadline is the activeDeadlineSeconds the step had before the
// controller cut it (a nil inner pointer: none), or nil when it did not.
func ownDeadline(obj client.Object) (**int64, error) {
	v, ok := obj.GetAnnotations()[annotations.ActiveDeadlineAnnotation]
	if !ok {
		return nil, nil
	}
	var own *int64
	if v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("%s %s: %s=%q is not a number of seconds", kindOf(obj), obj.GetName(), annotations.ActiveDeadlineAnnotation, v)
		}
		own = &n
	}
	return &own, nil
}

// kindOf names a task's object kind: Job or Pod.
func kindOf(obj client.Object) string {
	if _, ok := obj.(*batchv1.Job); ok {
		return "Job"
	}
	return "Pod"
}
