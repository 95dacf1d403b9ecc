package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/klog/v2"
	"sigs.k8s.io/sig-storage-lib-external-provisioner/v13/controller"
)

const (
	// ProvisionerName is the StorageClass provisioner this binary serves.
	ProvisionerName = "sluice.dev/local-path"

	// annPath records, on the PV, the directory backing it. Delete only
	// ever removes a directory recorded here that lies inside --root.
	annPath = "sluice.dev/local-path"
)

// localPath provisions PersistentVolumes as directories under root. Every
// simulated node of the dev cluster lives on this one machine, so a hostPath
// volume is equally valid on all of them: no node affinity, and both
// ReadWriteOnce and ReadWriteMany (and ReadOnlyMany) claims are served.
type localPath struct {
	root string // absolute
}

var _ controller.Provisioner = (*localPath)(nil)

var supportedModes = map[v1.PersistentVolumeAccessMode]bool{
	v1.ReadWriteOnce:    true,
	v1.ReadWriteOncePod: true,
	v1.ReadOnlyMany:     true,
	v1.ReadWriteMany:    true,
}

// volumeDir is the directory backing the PV named pvName.
func volumeDir(root, pvName string) (string, error) {
	if pvName == "" || pvName != filepath.Base(pvName) || pvName == "." || pvName == ".." {
		return "", fmt.Errorf("invalid volume name %q", pvName)
	}
	return filepath.Join(root, pvName), nil
}

// insideRoot reports whether path is a proper descendant of root.
func insideRoot(root, path string) bool {
	rel, err := filepath.Rel(root, filepath.Clean(path))
	if err != nil {
		return false
	}
	return rel != "." && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator)) && !filepath.IsAbs(rel)
}

// newVolume builds the PV for a claim; it touches neither the disk nor the
// API. Errors are final: the claim cannot be served by this provisioner.
func newVolume(root string, opts controller.ProvisionOptions) (*v1.PersistentVolume, error) {
	pvc := opts.PVC
	if pvc == nil {
		return nil, errors.New("no claim")
	}
	if opts.StorageClass == nil {
		return nil, errors.New("no storage class")
	}
	if pvc.Spec.Selector != nil {
		return nil, errors.New("claim selector is not supported")
	}
	if pvc.Spec.DataSource != nil || pvc.Spec.DataSourceRef != nil {
		return nil, errors.New("claim data sources are not supported")
	}
	if pvc.Spec.VolumeMode != nil && *pvc.Spec.VolumeMode == v1.PersistentVolumeBlock {
		return nil, errors.New("volumeMode Block is not supported, only Filesystem")
	}
	modes := pvc.Spec.AccessModes
	if len(modes) == 0 {
		modes = []v1.PersistentVolumeAccessMode{v1.ReadWriteOnce}
	}
	for _, m := range modes {
		if !supportedModes[m] {
			return nil, fmt.Errorf("access mode %q is not supported", m)
		}
	}
	for k := range opts.StorageClass.Parameters {
		return nil, fmt.Errorf("storage class parameter %q is not supported", k)
	}

	size, ok := pvc.Spec.Resources.Requests[v1.ResourceStorage]
	if !ok || size.IsZero() {
		// A claim without a request still gets a PV of a nominal size: the
		// directory is not quota limited anyway.
		size = resource.MustParse("1Gi")
	}
	dir, err := volumeDir(root, opts.PVName)
	if err != nil {
		return nil, err
	}

	reclaim := v1.PersistentVolumeReclaimDelete
	if opts.StorageClass.ReclaimPolicy != nil {
		reclaim = *opts.StorageClass.ReclaimPolicy
	}
	fs := v1.PersistentVolumeFilesystem
	hostPathType := v1.HostPathDirectoryOrCreate

	return &v1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{
			Name:        opts.PVName,
			Annotations: map[string]string{annPath: dir},
		},
		Spec: v1.PersistentVolumeSpec{
			AccessModes:                   append([]v1.PersistentVolumeAccessMode(nil), modes...),
			Capacity:                      v1.ResourceList{v1.ResourceStorage: size},
			PersistentVolumeReclaimPolicy: reclaim,
			MountOptions:                  opts.StorageClass.MountOptions,
			VolumeMode:                    &fs,
			PersistentVolumeSource: v1.PersistentVolumeSource{
				HostPath: &v1.HostPathVolumeSource{Path: dir, Type: &hostPathType},
			},
			// StorageClassName and ClaimRef are set by the library.
		},
	}, nil
}

// Provision implements controller.Provisioner.
func (p *localPath) Provision(ctx context.Context, opts controller.ProvisionOptions) (*v1.PersistentVolume, controller.ProvisioningState, error) {
	logger := klog.FromContext(ctx).WithValues("pvc", klog.KObj(opts.PVC), "pv", opts.PVName)
	pv, err := newVolume(p.root, opts)
	if err != nil {
		logger.Info("Refusing claim", "reason", err.Error())
		return nil, controller.ProvisioningFinished, err
	}
	dir := pv.Spec.HostPath.Path
	if err := os.MkdirAll(dir, 0o777); err != nil {
		return nil, controller.ProvisioningFinished, fmt.Errorf("create %s: %w", dir, err)
	}
	// Whatever the umask, steps running as any user may write there.
	if err := os.Chmod(dir, 0o777); err != nil {
		return nil, controller.ProvisioningFinished, fmt.Errorf("chmod %s: %w", dir, err)
	}
	logger.Info("Provisioned volume", "path", dir, "accessModes", pv.Spec.AccessModes,
		"capacity", pv.Spec.Capacity.Storage().String(), "reclaimPolicy", pv.Spec.PersistentVolumeReclaimPolicy)
	return pv, controller.ProvisioningFinished, nil
}

// Delete implements controller.Provisioner. The library calls it only for
// released PVs of this provisioner whose reclaim policy is Delete.
func (p *localPath) Delete(ctx context.Context, pv *v1.PersistentVolume) error {
	logger := klog.FromContext(ctx).WithValues("pv", pv.Name)
	dir := pv.Annotations[annPath]
	if dir == "" && pv.Spec.HostPath != nil {
		dir = pv.Spec.HostPath.Path
	}
	if dir == "" || !insideRoot(p.root, dir) {
		logger.Info("Not removing a directory outside the root", "path", dir, "root", p.root)
		return &controller.IgnoredError{Reason: fmt.Sprintf("path %q is not under %s", dir, p.root)}
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("remove %s: %w", dir, err)
	}
	logger.Info("Deleted volume", "path", dir)
	return nil
}
