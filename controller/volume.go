package controller

import (
	"context"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
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
	mode, err := r.accessMode(ctx, pvc.Spec.StorageClassName)
	if err != nil {
		return fmt.Errorf("choosing the access mode of artifact volume %s/%s of run %s: %w", ns, pvc.Name, run, err)
	}
	pvc.Spec.AccessModes = []corev1.PersistentVolumeAccessMode{mode}
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
			Resources: corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{
				corev1.ResourceStorage: r.opts.ArtifactSize,
			}},
		},
	}
}

// AccessModeAnnotation on a StorageClass says which access mode sluice asks
// its run volumes for (ReadWriteOnce or ReadWriteMany), overriding what
// sluice knows of the class's provisioner.
const AccessModeAnnotation = annotations.Prefix + "access-mode"

// Access modes of --artifact-access-mode.
const (
	AccessModeAuto = "auto"
	AccessModeRWO  = string(corev1.ReadWriteOnce)
	AccessModeRWX  = string(corev1.ReadWriteMany)
)

// rwxProvisioners are provisioners known to serve ReadWriteMany: shared file
// systems. Any other class is asked for ReadWriteOnce, which every class
// serves (kind's local-path-provisioner, and most clouds' defaults, serve
// nothing else).
var rwxProvisioners = map[string]bool{
	"nfs.csi.k8s.io": true,
	"k8s-sigs.io/nfs-subdir-external-provisioner": true,
	"cephfs.csi.ceph.com":                         true,
	"efs.csi.aws.com":                             true,
	"filestore.csi.storage.gke.io":                true,
	"file.csi.azure.com":                          true,
	"kubernetes.io/azure-file":                    true,
	"sluice.dev/local-path":                       true, // the development provisioner (hack/provisioner)
}

// accessMode chooses how a run volume of the class is requested:
// ReadWriteMany where the class serves it, so that steps on any node share
// the volume; ReadWriteOnce otherwise, and the run's steps then share the
// volume's node. className nil means the cluster's default class.
func (r *RunReconciler) accessMode(ctx context.Context, className *string) (corev1.PersistentVolumeAccessMode, error) {
	if r.opts.AccessMode != "" && r.opts.AccessMode != AccessModeAuto {
		return corev1.PersistentVolumeAccessMode(r.opts.AccessMode), nil
	}
	sc, err := r.storageClass(ctx, className)
	if err != nil || sc == nil {
		return corev1.ReadWriteOnce, err
	}
	switch m := sc.Annotations[AccessModeAnnotation]; m {
	case AccessModeRWO, AccessModeRWX:
		return corev1.PersistentVolumeAccessMode(m), nil
	}
	if rwxProvisioners[sc.Provisioner] {
		return corev1.ReadWriteMany, nil
	}
	return corev1.ReadWriteOnce, nil
}

// storageClass returns the named class, or the default one (the newest of
// those marked default, as the API server picks it) when name is nil; nil
// when there is none.
func (r *RunReconciler) storageClass(ctx context.Context, name *string) (*storagev1.StorageClass, error) {
	if name != nil {
		var sc storagev1.StorageClass
		err := r.client.Get(ctx, client.ObjectKey{Name: *name}, &sc)
		if apierrors.IsNotFound(err) {
			return nil, nil
		}
		return &sc, err
	}
	var list storagev1.StorageClassList
	if err := r.client.List(ctx, &list); err != nil {
		return nil, err
	}
	var def *storagev1.StorageClass
	for i := range list.Items {
		sc := &list.Items[i]
		if sc.Annotations[defaultClassAnnotation] != "true" {
			continue
		}
		if def == nil || def.CreationTimestamp.Before(&sc.CreationTimestamp) {
			def = sc
		}
	}
	return def, nil
}

const defaultClassAnnotation = "storageclass.kubernetes.io/is-default-class"

// volumePrefix starts the reason of a task whose pod waits for its run's
// artifact volume.
var volumePrefix = "volume " + annotations.RunVolumeName("")

// volumeReason says why a released task's pod, unschedulable for a volume
// (pending is the scheduler's message), waits for the run's artifact
// volume: a claim whose StorageClass does not exist, or one still Pending,
// named with its class and provisioner. It is "" when the claim is not the
// cause, or cannot be read.
func (r *RunReconciler) volumeReason(ctx context.Context, ns, run, pending string) string {
	if !strings.Contains(strings.ToLower(pending), "volume") {
		return ""
	}
	var pvc corev1.PersistentVolumeClaim
	if err := r.client.Get(ctx, client.ObjectKey{Namespace: ns, Name: annotations.RunVolumeName(run)}, &pvc); err != nil || pvc.Status.Phase != corev1.ClaimPending {
		return ""
	}
	sc, err := r.storageClass(ctx, pvc.Spec.StorageClassName)
	switch {
	case err != nil:
		return ""
	case sc == nil && pvc.Spec.StorageClassName != nil:
		return fmt.Sprintf("volume %s: StorageClass %q does not exist, so the claim stays Pending and the pod unscheduled", pvc.Name, *pvc.Spec.StorageClassName)
	case sc == nil:
		return fmt.Sprintf("volume %s: the claim names no StorageClass and the cluster has no default one, so it stays Pending", pvc.Name)
	}
	return fmt.Sprintf("volume %s: the claim is Pending (StorageClass %q, provisioner %s, access mode %v): `kubectl describe pvc %s` shows why",
		pvc.Name, sc.Name, sc.Provisioner, pvc.Spec.AccessModes, pvc.Name)
}
