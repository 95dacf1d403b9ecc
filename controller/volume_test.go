package controller

import (
	"context"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/events"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	"github.com/sluice-dev/sluice/annotations"
)

func class(name, provisioner string, isDefault bool, age time.Duration, annots ...string) *storagev1.StorageClass {
	sc := &storagev1.StorageClass{
		ObjectMeta:  metav1.ObjectMeta{Name: name, Annotations: map[string]string{}, CreationTimestamp: metav1.NewTime(time.Now().Add(-age))},
		Provisioner: provisioner,
	}
	if isDefault {
		sc.Annotations[defaultClassAnnotation] = "true"
	}
	for i := 0; i+1 < len(annots); i += 2 {
		sc.Annotations[annots[i]] = annots[i+1]
	}
	return sc
}

func TestVolumeAccessMode(t *testing.T) {
	localPath := class("local-path", "rancher.io/local-path", true, time.Hour)
	nfs := class("nfs", "nfs.csi.k8s.io", false, time.Hour)
	cases := map[string]struct {
		classes []client.Object
		task    annotations.Task
		opts    Options
		want    corev1.PersistentVolumeAccessMode
	}{
		"default class serves only ReadWriteOnce": {classes: []client.Object{localPath, nfs}, want: corev1.ReadWriteOnce},
		"a shared file system gets ReadWriteMany": {classes: []client.Object{localPath, nfs}, task: annotations.Task{StorageClass: "nfs"}, want: corev1.ReadWriteMany},
		"the newest default class wins": {
			classes: []client.Object{localPath, class("newer", "efs.csi.aws.com", true, time.Minute)}, want: corev1.ReadWriteMany,
		},
		"the class says what it serves": {
			classes: []client.Object{class("netapp", "csi.trident.netapp.io", true, time.Hour, AccessModeAnnotation, "ReadWriteMany")}, want: corev1.ReadWriteMany,
		},
		"the class annotation overrides a known provisioner": {
			classes: []client.Object{class("nfs", "nfs.csi.k8s.io", true, time.Hour, AccessModeAnnotation, "ReadWriteOnce")}, want: corev1.ReadWriteOnce,
		},
		"no class at all":          {want: corev1.ReadWriteOnce},
		"an unknown class":         {classes: []client.Object{nfs}, task: annotations.Task{StorageClass: "typo"}, want: corev1.ReadWriteOnce},
		"the flag forces a mode":   {classes: []client.Object{localPath}, opts: Options{AccessMode: AccessModeRWX}, want: corev1.ReadWriteMany},
		"the flag's class is read": {classes: []client.Object{localPath, nfs}, opts: Options{StorageClass: "nfs"}, want: corev1.ReadWriteMany},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			c := fake.NewClientBuilder().WithScheme(scheme.Scheme).WithObjects(tc.classes...).Build()
			r := NewRunReconciler(c, events.NewFakeRecorder(10), tc.opts)
			task := tc.task
			task.Name, task.Run, task.Pipeline = "train", "r", "p"
			task.Outputs = []annotations.Output{{Name: "model", Type: "Model"}}
			ctx := context.Background()
			if err := r.ensureVolume(ctx, "ml", "r", []*annotations.Task{&task}); err != nil {
				t.Fatal(err)
			}
			var pvc corev1.PersistentVolumeClaim
			if err := c.Get(ctx, client.ObjectKey{Namespace: "ml", Name: annotations.RunVolumeName("r")}, &pvc); err != nil {
				t.Fatal(err)
			}
			if len(pvc.Spec.AccessModes) != 1 || pvc.Spec.AccessModes[0] != tc.want {
				t.Errorf("access modes %v, want [%s]", pvc.Spec.AccessModes, tc.want)
			}
		})
	}
}

func TestVolumeReason(t *testing.T) {
	claim := func(class string) *corev1.PersistentVolumeClaim {
		pvc := (&RunReconciler{opts: Options{}}).volumeFor("ml", "r", "p")
		if class != "" {
			pvc.Spec.StorageClassName = &class
		}
		pvc.Spec.AccessModes = []corev1.PersistentVolumeAccessMode{corev1.ReadWriteMany}
		pvc.Status.Phase = corev1.ClaimPending
		pvc.UID = "claim-uid"
		return pvc
	}
	const rwxOnly = `failed to provision volume with StorageClass "local-path": NodePath only supports ReadWriteOnce and ReadWriteOncePod (1.22+) access modes`
	bound := claim("local-path")
	bound.Status.Phase = corev1.ClaimBound
	const unbound = "0/6 nodes are available: pod has unbound immediate PersistentVolumeClaims. preemption: ..."
	cases := map[string]struct {
		objs    []client.Object
		pending string
		want    string
	}{
		"class that does not exist": {
			objs: []client.Object{claim("no-such-class")}, pending: unbound,
			want: `volume sluice-r: StorageClass "no-such-class" does not exist, so the claim stays Pending and the pod unscheduled`,
		},
		"no class and no default": {
			objs: []client.Object{claim("")}, pending: unbound,
			want: "volume sluice-r: the claim names no StorageClass and the cluster has no default one, so it stays Pending",
		},
		"pending with a class": {
			objs: []client.Object{claim("local-path"), class("local-path", "rancher.io/local-path", true, time.Hour)}, pending: unbound,
			want: "volume sluice-r: the claim is Pending (StorageClass \"local-path\", provisioner rancher.io/local-path, access mode [ReadWriteMany]): `kubectl describe pvc sluice-r` shows why",
		},
		"pending with the provisioner's failure: the newest, in its words": {
			objs: []client.Object{claim("local-path"), class("local-path", "rancher.io/local-path", true, time.Hour),
				claimEvent("old", "claim-uid", provisioningFailedReason, "an older failure", 2*time.Minute),
				claimEvent("new", "claim-uid", provisioningFailedReason, rwxOnly, time.Minute),
				claimEvent("waiting", "claim-uid", "ExternalProvisioning", "Waiting for a volume to be created", 0),
				claimEvent("earlier-claim", "other-uid", provisioningFailedReason, "a claim of the same name, deleted", 0),
			},
			pending: unbound,
			want:    `volume sluice-r (ReadWriteMany): provisioner rancher.io/local-path: ` + rwxOnly,
		},
		"bound claim: the scheduler's words stay":  {objs: []client.Object{bound}, pending: unbound},
		"not about volumes":                        {objs: []client.Object{claim("no-such-class")}, pending: "0/6 nodes are available: 6 Insufficient cpu."},
		"no claim yet: the scheduler's words stay": {pending: unbound},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			c := eventsClient(tc.objs...).Build()
			r := NewRunReconciler(c, events.NewFakeRecorder(10), Options{})
			r.events = c
			if got := r.volumeReason(context.Background(), "ml", "r", tc.pending); got != tc.want {
				t.Errorf("volumeReason = %q, want %q", got, tc.want)
			}
		})
	}
}

// eventsClient is a fake client with the controller's indexes that also
// serves the field selector the controller lists a claim's events with.
func eventsClient(objs ...client.Object) *fake.ClientBuilder {
	return indexedClient().WithObjects(objs...).
		WithIndex(&corev1.Event{}, "involvedObject.uid", func(o client.Object) []string {
			return []string{string(o.(*corev1.Event).InvolvedObject.UID)}
		})
}

// claimEvent is an event on the claim of UID uid (named sluice-r; the
// controller finds a claim's events by UID) that last happened ago.
func claimEvent(name, uid, reason, msg string, ago time.Duration) *corev1.Event {
	return &corev1.Event{
		ObjectMeta:     metav1.ObjectMeta{Namespace: "ml", Name: name},
		InvolvedObject: corev1.ObjectReference{Kind: "PersistentVolumeClaim", Namespace: "ml", Name: annotations.RunVolumeName("r"), UID: types.UID(uid)},
		Reason:         reason, Message: msg, Type: corev1.EventTypeWarning,
		LastTimestamp: metav1.NewTime(time.Now().Add(-ago)),
	}
}

// TestProvisioningFailureReadOncePerTTL: many tasks waiting for one claim
// list its events once per provisioningTTL, and a failure written later is
// seen after it.
func TestProvisioningFailureReadOncePerTTL(t *testing.T) {
	ctx := context.Background()
	pvc := &corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Namespace: "ml", Name: annotations.RunVolumeName("r"), UID: "claim-uid"}}
	lists := 0
	c := eventsClient().WithInterceptorFuncs(interceptor.Funcs{
		List: func(ctx context.Context, c client.WithWatch, list client.ObjectList, opts ...client.ListOption) error {
			lists++
			return c.List(ctx, list, opts...)
		},
	}).Build()
	r := NewRunReconciler(c, events.NewFakeRecorder(10), Options{})
	r.events = c
	now := time.Now()
	r.now = func() time.Time { return now }
	for range 100 {
		if got := r.provisioningFailure(ctx, pvc); got != "" {
			t.Fatalf("provisioningFailure = %q before any event, want empty", got)
		}
	}
	if lists != 1 {
		t.Errorf("100 observations listed the claim's events %d times, want 1", lists)
	}
	if err := c.Create(ctx, claimEvent("failed", "claim-uid", provisioningFailedReason, "no space", 0)); err != nil {
		t.Fatal(err)
	}
	now = now.Add(provisioningTTL)
	if got := r.provisioningFailure(ctx, pvc); got != "no space" || lists != 2 {
		t.Errorf("after the TTL: provisioningFailure = %q with %d lists, want \"no space\" with 2", got, lists)
	}
}
