// Package testing has what tests share: builders of sluice Jobs and Pods,
// golden files, and reading back drawn SVGs.
package testing

import (
	"strings"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

	"github.com/sluice-dev/sluice/annotations"
)

// JobWrapper builds a sluice Job.
type JobWrapper struct{ batchv1.Job }

// MakeJob returns a one-container Job of pipeline "p" with restartPolicy Never.
func MakeJob(name, ns string) *JobWrapper {
	return &JobWrapper{batchv1.Job{
		TypeMeta:   metav1.TypeMeta{APIVersion: "batch/v1", Kind: "Job"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: map[string]string{annotations.PipelineLabel: "p"}},
		Spec: batchv1.JobSpec{
			BackoffLimit: ptr.To[int32](0),
			Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
				RestartPolicy: corev1.RestartPolicyNever,
				Containers:    []corev1.Container{{Name: "main", Image: "busybox"}},
			}},
		},
	}}
}

// Obj returns the built Job.
func (w *JobWrapper) Obj() *batchv1.Job { return &w.Job }

// Label sets a label on the Job.
func (w *JobWrapper) Label(k, v string) *JobWrapper { setMap(&w.Labels, k, v); return w }

// Annotation sets an annotation on the Job.
func (w *JobWrapper) Annotation(k, v string) *JobWrapper { setMap(&w.Annotations, k, v); return w }

// Pipeline sets the pipeline label.
func (w *JobWrapper) Pipeline(p string) *JobWrapper { return w.Label(annotations.PipelineLabel, p) }

// Run sets the run label.
func (w *JobWrapper) Run(r string) *JobWrapper { return w.Label(annotations.RunLabel, r) }

// After sets the after annotation.
func (w *JobWrapper) After(tasks ...string) *JobWrapper {
	return w.Annotation(annotations.AfterAnnotation, strings.Join(tasks, ","))
}

// Group puts the Job in a group.
func (w *JobWrapper) Group(g string) *JobWrapper { return w.Label(annotations.GroupLabel, g) }

// AfterGroup sets the after-group annotation.
func (w *JobWrapper) AfterGroup(v string) *JobWrapper {
	return w.Annotation(annotations.AfterGroupAnnotation, v)
}

// Inputs sets the inputs annotation.
func (w *JobWrapper) Inputs(v string) *JobWrapper {
	return w.Annotation(annotations.InputsAnnotation, v)
}

// Outputs sets the outputs annotation.
func (w *JobWrapper) Outputs(v string) *JobWrapper {
	return w.Annotation(annotations.OutputsAnnotation, v)
}

// When sets the when annotation.
func (w *JobWrapper) When(expr string) *JobWrapper {
	return w.Annotation(annotations.WhenAnnotation, expr)
}

// UID sets the Job's UID, for pods to refer to.
func (w *JobWrapper) UID(uid string) *JobWrapper { w.ObjectMeta.UID = types.UID(uid); return w }

// Sim sets a simulation annotation (sim.sluice.dev/<key>) on the pod template.
func (w *JobWrapper) Sim(key, v string) *JobWrapper {
	setMap(&w.Spec.Template.Annotations, "sim.sluice.dev/"+key, v)
	return w
}

// PodWrapper builds a sluice Pod.
type PodWrapper struct{ corev1.Pod }

// Command sets the main container's image and command (run by sh -c on
// the real node's images).
func (w *JobWrapper) Command(image, script string) *JobWrapper {
	c := &w.Spec.Template.Spec.Containers[0]
	c.Image, c.Command = image, []string{"sh", "-c", script}
	return w
}

// MakePod returns a one-container bare Pod of pipeline "p".
func MakePod(name, ns string) *PodWrapper {
	return &PodWrapper{corev1.Pod{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: map[string]string{annotations.PipelineLabel: "p"}},
		Spec: corev1.PodSpec{
			RestartPolicy: corev1.RestartPolicyNever,
			Containers:    []corev1.Container{{Name: "main", Image: "busybox"}},
		},
	}}
}

// Obj returns the built Pod.
func (w *PodWrapper) Obj() *corev1.Pod { return &w.Pod }

// Command sets the main container's image and command (run by sh -c).
func (w *PodWrapper) Command(image, script string) *PodWrapper {
	c := &w.Spec.Containers[0]
	c.Image, c.Command = image, []string{"sh", "-c", script}
	return w
}

// Label sets a label on the Pod.
func (w *PodWrapper) Label(k, v string) *PodWrapper { setMap(&w.Labels, k, v); return w }

// Annotation sets an annotation on the Pod.
func (w *PodWrapper) Annotation(k, v string) *PodWrapper { setMap(&w.Annotations, k, v); return w }

// After sets the after annotation.
func (w *PodWrapper) After(tasks ...string) *PodWrapper {
	return w.Annotation(annotations.AfterAnnotation, strings.Join(tasks, ","))
}

// Gate adds a scheduling gate.
func (w *PodWrapper) Gate(name string) *PodWrapper {
	w.Spec.SchedulingGates = append(w.Spec.SchedulingGates, corev1.PodSchedulingGate{Name: name})
	return w
}

// OwnedByJob makes the pod controlled by the named Job.
func (w *PodWrapper) OwnedByJob(name, uid string) *PodWrapper {
	w.OwnerReferences = append(w.OwnerReferences, metav1.OwnerReference{
		APIVersion: "batch/v1", Kind: "Job", Name: name, UID: types.UID(uid), Controller: ptr.To(true),
	})
	return w
}

// Phase sets the pod's status phase.
func (w *PodWrapper) Phase(p corev1.PodPhase) *PodWrapper { w.Status.Phase = p; return w }

func setMap(m *map[string]string, k, v string) {
	if *m == nil {
		*m = map[string]string{}
	}
	(*m)[k] = v
}
