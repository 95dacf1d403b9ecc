// Package webhook holds sluice's admission webhooks: the mutating side turns
// a labelled Job or Pod into a pipeline step (labels, artifact mounts, env,
// hold until upstreams finish); the validating side rejects broken keys.
package webhook

import (
	"path"
	"slices"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/sluice-dev/sluice/annotations"
)

// setTaskLabels writes the defaulted run and task labels, so that the
// controller and kubectl can select by them without re-deriving defaults.
func setTaskLabels(meta *metav1.ObjectMeta, task *annotations.Task) {
	if meta.Labels == nil {
		meta.Labels = map[string]string{}
	}
	meta.Labels[annotations.PipelineLabel] = task.Pipeline
	meta.Labels[annotations.RunLabel] = task.Run
	meta.Labels[annotations.TaskLabel] = task.Name
	if task.Group != "" {
		meta.Labels[annotations.GroupLabel] = task.Group
	}
}

// injectPodSpec adds the run's artifact volume, one mount per declared input
// and output, and the SLUICE_* environment to every container. Entries are
// replaced by name or mount path, so injecting twice changes nothing.
func injectPodSpec(spec *corev1.PodSpec, task *annotations.Task) {
	env := []corev1.EnvVar{
		{Name: "SLUICE_PIPELINE", Value: task.Pipeline},
		{Name: "SLUICE_RUN", Value: task.Run},
		{Name: "SLUICE_TASK", Value: task.Name},
	}
	var mounts []corev1.VolumeMount
	for _, out := range task.Outputs {
		p := path.Join(annotations.OutputsDir, out.Name)
		mounts = append(mounts, corev1.VolumeMount{Name: annotations.ArtifactVolume, MountPath: p, SubPath: path.Join(task.Name, out.Name)})
		env = append(env, corev1.EnvVar{Name: annotations.OutputEnv(out.Name), Value: p})
	}
	for _, in := range task.Inputs {
		p := path.Join(annotations.InputsDir, in.Name)
		mounts = append(mounts, corev1.VolumeMount{Name: annotations.ArtifactVolume, MountPath: p, SubPath: path.Join(in.Task, in.Output), ReadOnly: true})
		env = append(env, corev1.EnvVar{Name: annotations.InputEnv(in.Name), Value: p})
	}
	if len(mounts) > 0 {
		upsert(&spec.Volumes, corev1.Volume{
			Name: annotations.ArtifactVolume,
			VolumeSource: corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{
				ClaimName: annotations.RunVolumeName(task.Run),
			}},
		}, func(v corev1.Volume) string { return v.Name })
	}
	for _, containers := range [][]corev1.Container{spec.InitContainers, spec.Containers} {
		for i := range containers {
			c := &containers[i]
			for _, e := range env {
				upsert(&c.Env, e, func(e corev1.EnvVar) string { return e.Name })
			}
			for _, m := range mounts {
				upsert(&c.VolumeMounts, m, func(m corev1.VolumeMount) string { return m.MountPath })
			}
		}
	}
}

// upsert replaces the element of *list whose key equals item's, or appends item.
func upsert[T any](list *[]T, item T, key func(T) string) {
	if i := slices.IndexFunc(*list, func(x T) bool { return key(x) == key(item) }); i >= 0 {
		(*list)[i] = item
		return
	}
	*list = append(*list, item)
}
