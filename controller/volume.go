package controller

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
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
	if msg := r.provisioningFailure(ctx, &pvc); msg != "" {
		return provisionerSays(&pvc, sc.Provisioner, msg)
	}
	return fmt.Sprintf("volume %s: the claim is Pending (StorageClass %q, provisioner %s, access mode %v): `kubectl describe pvc %s` shows why",
		pvc.Name, sc.Name, sc.Provisioner, pvc.Spec.AccessModes, pvc.Name)
}

// accessModes lists the claim's access modes, comma-separated.
func accessModes(pvc *corev1.PersistentVolumeClaim) string {
	modes := make([]string, len(pvc.Spec.AccessModes))
	for i, m := range pvc.Spec.AccessModes {
		modes[i] = string(m)
	}
	return strings.Join(modes, ",")
}

// selectedNodeAnnotation is set on a claim by the scheduler when it has
// chosen a node for a pod whose claim waits for its first consumer: the
// claim is then provisioned for that node.
const selectedNodeAnnotation = "volume.kubernetes.io/selected-node"

// awaitingBinding reports whether the newest unfinished pod of pods is held
// by the scheduler without a word: not bound to a node, not reported
// unschedulable. The scheduler holds a pod so while the volume it waits for
// is provisioned on the node it chose, and reports nothing (for up to its
// bind timeout, 10 minutes by default) when the provisioner fails.
func awaitingBinding(pods []*corev1.Pod) bool {
	newest := newestPending(pods)
	if newest == nil || newest.Spec.NodeName != "" {
		return false
	}
	return !slices.ContainsFunc(newest.Status.Conditions, func(c corev1.PodCondition) bool {
		return c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse
	})
}

// bindingReason says why a released task's pod that the scheduler holds
// waits for the run's artifact volume: provisioning is under way for the
// node the scheduler chose (the claim is Pending with a selected node), and
// the provisioner has reported a failure. provisioning says that the claim
// is still Pending, so that this may change without the pod changing (the
// scheduler chooses the node on the claim, the provisioner answers in an
// Event): look again later.
func (r *RunReconciler) bindingReason(ctx context.Context, ns, run string) (reason string, provisioning bool) {
	var pvc corev1.PersistentVolumeClaim
	if err := r.client.Get(ctx, client.ObjectKey{Namespace: ns, Name: annotations.RunVolumeName(run)}, &pvc); err != nil ||
		pvc.Status.Phase != corev1.ClaimPending {
		return "", false
	}
	if pvc.Annotations[selectedNodeAnnotation] == "" {
		return "", true // no node chosen yet: nothing to provision
	}
	msg := r.provisioningFailure(ctx, &pvc)
	if msg == "" {
		return "", true
	}
	provisioner := "of the claim"
	if sc, err := r.storageClass(ctx, pvc.Spec.StorageClassName); err == nil && sc != nil {
		provisioner = sc.Provisioner
	}
	return provisionerSays(&pvc, provisioner, msg), true
}

// provisionerSays is the reason of a task whose run volume its provisioner
// failed to provision: short around the provisioner's words, which name the
// class, so that the whole reason, with a start deadline's prefix, fits in
// 256 bytes.
func provisionerSays(pvc *corev1.PersistentVolumeClaim, provisioner, msg string) string {
	return fmt.Sprintf("volume %s (%s): provisioner %s: %s", pvc.Name, accessModes(pvc), provisioner, msg)
}

// provisioningFailedReason is the reason of the Warning event a provisioner
// (external or in-tree) writes on a claim it failed to provision.
const provisioningFailedReason = "ProvisioningFailed"

// provisioningTTL is how long a claim's provisioning failure, once read, is
// reused: many tasks of a run wait for one claim, and each observation of
// one would otherwise list the claim's events again.
const provisioningTTL = 10 * time.Second

// provisioningFailures remembers, per claim UID, the newest provisioning
// failure read from the API server and when it was read.
type provisioningFailures struct {
	mu   sync.Mutex
	read map[types.UID]provisioningFailure
}

type provisioningFailure struct {
	msg string
	at  time.Time
}

// provisioningFailure returns the message of the newest ProvisioningFailed
// event on pvc, in the provisioner's own words, or "" when there is none or
// the events cannot be read. Events are read from the API server (sluice
// keeps no cache of them), at most once per claim per provisioningTTL.
func (r *RunReconciler) provisioningFailure(ctx context.Context, pvc *corev1.PersistentVolumeClaim) string {
	if r.events == nil {
		return ""
	}
	now := r.now()
	f := &r.provisioning
	f.mu.Lock()
	if got, ok := f.read[pvc.UID]; ok && now.Sub(got.at) < provisioningTTL {
		f.mu.Unlock()
		return got.msg
	}
	f.mu.Unlock()
	var list corev1.EventList
	if err := r.events.List(ctx, &list, client.InNamespace(pvc.Namespace),
		client.MatchingFields{"involvedObject.uid": string(pvc.UID)}); err != nil {
		ctrl.LoggerFrom(ctx).V(1).Info("reading the events of an artifact volume", "claim", pvc.Name, "error", err)
		return ""
	}
	var newest *corev1.Event
	for i := range list.Items {
		e := &list.Items[i]
		if e.Reason != provisioningFailedReason || e.InvolvedObject.Kind != "PersistentVolumeClaim" {
			continue
		}
		if newest == nil || eventTime(newest).Before(eventTime(e)) {
			newest = e
		}
	}
	msg := ""
	if newest != nil {
		msg = newest.Message
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.read == nil {
		f.read = map[types.UID]provisioningFailure{}
	}
	for uid, got := range f.read {
		if now.Sub(got.at) >= provisioningTTL {
			delete(f.read, uid)
		}
	}
	f.read[pvc.UID] = provisioningFailure{msg: msg, at: now}
	return msg
}

// eventTime is when an event last happened, by whichever of its times its
// writer set (core/v1 recorders set lastTimestamp, events.k8s.io ones
// eventTime or a series).
func eventTime(e *corev1.Event) time.Time {
	switch {
	case e.Series != nil && !e.Series.LastObservedTime.IsZero():
		return e.Series.LastObservedTime.Time
	case !e.LastTimestamp.IsZero():
		return e.LastTimestamp.Time
	case !e.EventTime.IsZero():
		return e.EventTime.Time
	}
	return e.CreationTimestamp.Time
}
