package main

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	v1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/sig-storage-lib-external-provisioner/v13/controller"
)

func claim(modes []v1.PersistentVolumeAccessMode, size string) *v1.PersistentVolumeClaim {
	pvc := &v1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Name: "artifacts", Namespace: "ml", UID: "1234"},
		Spec: v1.PersistentVolumeClaimSpec{
			AccessModes:      modes,
			StorageClassName: new("sluice-local"),
		},
	}
	if size != "" {
		pvc.Spec.Resources.Requests = v1.ResourceList{v1.ResourceStorage: resource.MustParse(size)}
	}
	return pvc
}

func class(reclaim *v1.PersistentVolumeReclaimPolicy) *storagev1.StorageClass {
	return &storagev1.StorageClass{
		ObjectMeta:    metav1.ObjectMeta{Name: "sluice-local"},
		Provisioner:   ProvisionerName,
		ReclaimPolicy: reclaim,
	}
}

func TestNewVolume(t *testing.T) {
	root := "/var/lib/sluice"
	retain := v1.PersistentVolumeReclaimRetain

	tests := []struct {
		name        string
		opts        controller.ProvisionOptions
		wantModes   []v1.PersistentVolumeAccessMode
		wantSize    string
		wantReclaim v1.PersistentVolumeReclaimPolicy
	}{
		{
			name:        "rwo, default reclaim",
			opts:        controller.ProvisionOptions{PVName: "pvc-1", PVC: claim([]v1.PersistentVolumeAccessMode{v1.ReadWriteOnce}, "5Gi"), StorageClass: class(nil)},
			wantModes:   []v1.PersistentVolumeAccessMode{v1.ReadWriteOnce},
			wantSize:    "5Gi",
			wantReclaim: v1.PersistentVolumeReclaimDelete,
		},
		{
			name:        "rwx, retain",
			opts:        controller.ProvisionOptions{PVName: "pvc-2", PVC: claim([]v1.PersistentVolumeAccessMode{v1.ReadWriteMany, v1.ReadWriteOnce}, "100Mi"), StorageClass: class(&retain)},
			wantModes:   []v1.PersistentVolumeAccessMode{v1.ReadWriteMany, v1.ReadWriteOnce},
			wantSize:    "100Mi",
			wantReclaim: v1.PersistentVolumeReclaimRetain,
		},
		{
			name:        "no modes, no size",
			opts:        controller.ProvisionOptions{PVName: "pvc-3", PVC: claim(nil, ""), StorageClass: class(nil)},
			wantModes:   []v1.PersistentVolumeAccessMode{v1.ReadWriteOnce},
			wantSize:    "1Gi",
			wantReclaim: v1.PersistentVolumeReclaimDelete,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pv, err := newVolume(root, tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			if pv.Name != tt.opts.PVName {
				t.Errorf("name = %q, want %q", pv.Name, tt.opts.PVName)
			}
			wantPath := filepath.Join(root, tt.opts.PVName)
			if pv.Spec.HostPath == nil || pv.Spec.HostPath.Path != wantPath {
				t.Fatalf("hostPath = %+v, want %s", pv.Spec.HostPath, wantPath)
			}
			if pv.Spec.HostPath.Type == nil || *pv.Spec.HostPath.Type != v1.HostPathDirectoryOrCreate {
				t.Errorf("hostPath type = %v", pv.Spec.HostPath.Type)
			}
			if got := pv.Annotations[annPath]; got != wantPath {
				t.Errorf("annotation %s = %q, want %q", annPath, got, wantPath)
			}
			if len(pv.Spec.AccessModes) != len(tt.wantModes) {
				t.Fatalf("access modes = %v, want %v", pv.Spec.AccessModes, tt.wantModes)
			}
			for i := range tt.wantModes {
				if pv.Spec.AccessModes[i] != tt.wantModes[i] {
					t.Errorf("access modes = %v, want %v", pv.Spec.AccessModes, tt.wantModes)
				}
			}
			if got := pv.Spec.Capacity[v1.ResourceStorage]; got.Cmp(resource.MustParse(tt.wantSize)) != 0 {
				t.Errorf("capacity = %s, want %s", got.String(), tt.wantSize)
			}
			if pv.Spec.PersistentVolumeReclaimPolicy != tt.wantReclaim {
				t.Errorf("reclaim = %s, want %s", pv.Spec.PersistentVolumeReclaimPolicy, tt.wantReclaim)
			}
			if pv.Spec.VolumeMode == nil || *pv.Spec.VolumeMode != v1.PersistentVolumeFilesystem {
				t.Errorf("volumeMode = %v", pv.Spec.VolumeMode)
			}
			if pv.Spec.NodeAffinity != nil {
				t.Errorf("unexpected node affinity %+v", pv.Spec.NodeAffinity)
			}
		})
	}
}

func TestNewVolumeRejects(t *testing.T) {
	block := v1.PersistentVolumeBlock
	blockClaim := claim(nil, "1Gi")
	blockClaim.Spec.VolumeMode = &block
	selClaim := claim(nil, "1Gi")
	selClaim.Spec.Selector = &metav1.LabelSelector{MatchLabels: map[string]string{"a": "b"}}
	paramClass := class(nil)
	paramClass.Parameters = map[string]string{"nodePath": "/x"}

	for name, opts := range map[string]controller.ProvisionOptions{
		"block":         {PVName: "pvc-1", PVC: blockClaim, StorageClass: class(nil)},
		"selector":      {PVName: "pvc-1", PVC: selClaim, StorageClass: class(nil)},
		"parameters":    {PVName: "pvc-1", PVC: claim(nil, "1Gi"), StorageClass: paramClass},
		"no class":      {PVName: "pvc-1", PVC: claim(nil, "1Gi")},
		"escaping name": {PVName: "../etc", PVC: claim(nil, "1Gi"), StorageClass: class(nil)},
		"empty name":    {PVName: "", PVC: claim(nil, "1Gi"), StorageClass: class(nil)},
		"unknown mode":  {PVName: "pvc-1", PVC: claim([]v1.PersistentVolumeAccessMode{"WriteSometimes"}, "1Gi"), StorageClass: class(nil)},
	} {
		if _, err := newVolume("/root", opts); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestInsideRoot(t *testing.T) {
	for path, want := range map[string]bool{
		"/r/pvc-1":       true,
		"/r/a/b":         true,
		"/r":             false,
		"/r/":            false,
		"/r/..":          false,
		"/r/../x":        false,
		"/other":         false,
		"/r2/pvc-1":      false,
		"/r/pvc-1/../..": false,
	} {
		if got := insideRoot("/r", path); got != want {
			t.Errorf("insideRoot(/r, %q) = %v, want %v", path, got, want)
		}
	}
}

func TestProvisionAndDelete(t *testing.T) {
	root := t.TempDir()
	p := &localPath{root: root}
	ctx := context.Background()
	pv, state, err := p.Provision(ctx, controller.ProvisionOptions{
		PVName: "pvc-9", PVC: claim([]v1.PersistentVolumeAccessMode{v1.ReadWriteMany}, "1Gi"), StorageClass: class(nil),
	})
	if err != nil || state != controller.ProvisioningFinished {
		t.Fatalf("provision: %v %v", state, err)
	}
	dir := filepath.Join(root, "pvc-9")
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() || fi.Mode().Perm() != 0o777 {
		t.Fatalf("volume dir: %v %v", fi, err)
	}
	if err := os.WriteFile(filepath.Join(dir, "model.bin"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := p.Delete(ctx, pv); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("volume dir still there: %v", err)
	}

	// A PV pointing outside the root is never removed.
	outside := t.TempDir()
	foreign := pv.DeepCopy()
	foreign.Annotations[annPath] = outside
	var ignored *controller.IgnoredError
	if err := p.Delete(ctx, foreign); !errors.As(err, &ignored) {
		t.Fatalf("delete outside root: got %v, want IgnoredError", err)
	}
	if _, err := os.Stat(outside); err != nil {
		t.Fatalf("directory outside the root removed: %v", err)
	}
}
