package controller

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/sluice-dev/sluice/annotations"
)

// ensureVolume creates the run's artifact PersistentVolumeClaim when a task
// of the run passes artifacts and the claim does not exist yet. The claim is
// left behind when the run's objects are deleted: artifacts outlive steps.
func (r *RunReconciler) ensureVolume(ctx context.Context, ns, run string, tasks []*annotations.Task) error {
	var pvc *corev1.PersistentVolumeClaim
	sized := false
	for _, t := range tasks {
		if !t.NeedsVolume() {
			continue
		}
		if pvc == nil {
			pvc = r.volumeFor(ns, run, t.Pipeline)
		}
		// Overrides: the first task (by name) that sets one wins.
		if t.StorageClass != "" && pvc.Spec.StorageClassName == nil {
			pvc.Spec.StorageClassName = &t.StorageClass
		}
		if t.ArtifactSize != nil && !sized {
			pvc.Spec.Resources.Requests[corev1.ResourceStorage] = *t.ArtifactSize
			sized = true
		}
	}
	if pvc == nil {
		return nil
	}
	if pvc.Spec.StorageClassName == nil && r.opts.StorageClass != "" {
		pvc.Spec.StorageClassName = &r.opts.StorageClass
	}
	var existing corev1.PersistentVolumeClaim
	err := r.client.Get(ctx, client.ObjectKeyFromObject(pvc), &existing)
	if err == nil || !apierrors.IsNotFound(err) {
		return client.IgnoreNotFound(err)
	}
	if err := r.client.Create(ctx, pvc); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("creating artifact volume %s/%s of run %s: %w", ns, pvc.Name, run, err)
	}
	return nil
}

func (r *RunReconciler) volumeFor(ns, run, pipeline string) *corev1.PersistentVolumeClaim {
	return &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{
			Name: annotations.RunVolumeName(run), Namespace: ns,
			Labels: map[string]string{annotations.PipelineLabel: pipeline, annotations.RunLabel: run},
		},
		Spec: corev1.PersistentVolumeClaimSpec{
			AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteMany},
			Resources: corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{
				corev1.ResourceStorage: r.opts.ArtifactSize,
			}},
		},
	}
}
