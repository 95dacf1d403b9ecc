package retry

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	authorizationv1 "k8s.io/api/authorization/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
	"sigs.k8s.io/yaml"

	"github.com/sluice-dev/sluice/annotations"
	utiltesting "github.com/sluice-dev/sluice/annotations/testing"
)

// failedTrain is a failed Job as the cluster shows it: the API server's
// selector and template labels, the controller's keys, a deadline the
// controller cut.
func failedTrain() *batchv1.Job {
	j := utiltesting.MakeJob("train", "ml").UID("u-train-1").After("prep").
		Label(annotations.PhaseLabel, "Failed").
		Annotation(annotations.ReasonAnnotation, "did not start within 15m0s").
		Annotation(annotations.RunOutcomeAnnotation, "Failed").
		Annotation(annotations.ActiveDeadlineAnnotation, "3600").Obj()
	j.ResourceVersion = "41"
	j.Spec.ActiveDeadlineSeconds = ptr.To[int64](900)
	j.Spec.Suspend = ptr.To(false)
	j.Spec.Selector = &metav1.LabelSelector{MatchLabels: map[string]string{batchv1.ControllerUidLabel: "u-train-1"}}
	j.Spec.Template.Labels = map[string]string{batchv1.ControllerUidLabel: "u-train-1", batchv1.JobNameLabel: "train", "app": "train"}
	j.Status.Failed = 1
	return j
}

func TestRenewJob(t *testing.T) {
	obj, err := Renew(failedTrain(), 2)
	if err != nil {
		t.Fatal(err)
	}
	j := obj.(*batchv1.Job)
	if j.UID != "" || j.ResourceVersion != "" || j.Status.Failed != 0 {
		t.Errorf("identity or status kept: uid %q, rv %q, failed %d", j.UID, j.ResourceVersion, j.Status.Failed)
	}
	for _, k := range annotations.ControllerLabels {
		if _, ok := j.Labels[k]; ok {
			t.Errorf("controller label %s kept", k)
		}
	}
	for _, k := range annotations.ControllerAnnotations {
		if _, ok := j.Annotations[k]; ok {
			t.Errorf("controller annotation %s kept", k)
		}
	}
	if j.Annotations[annotations.AttemptAnnotation] != "2" || j.Annotations[annotations.AfterAnnotation] != "prep" {
		t.Errorf("annotations %v, want attempt 2 and the user's keys", j.Annotations)
	}
	if j.Spec.Selector != nil || j.Spec.Template.Labels[batchv1.ControllerUidLabel] != "" || j.Spec.Template.Labels["app"] != "train" {
		t.Errorf("selector %v, template labels %v: want the API server's removed, the user's kept", j.Spec.Selector, j.Spec.Template.Labels)
	}
	if ptr.Deref(j.Spec.ActiveDeadlineSeconds, 0) != 3600 || j.Spec.Suspend != nil {
		t.Errorf("activeDeadlineSeconds %v, suspend %v; want the Job's own 3600 back, suspend unset", j.Spec.ActiveDeadlineSeconds, j.Spec.Suspend)
	}

	noOwn := failedTrain()
	noOwn.Annotations[annotations.ActiveDeadlineAnnotation] = ""
	obj, _ = Renew(noOwn, 2)
	if d := obj.(*batchv1.Job).Spec.ActiveDeadlineSeconds; d != nil {
		t.Errorf("activeDeadlineSeconds %d, want none: the Job had none before the controller cut it", *d)
	}
	bad := failedTrain()
	bad.Annotations[annotations.ActiveDeadlineAnnotation] = "soon"
	if _, err := Renew(bad, 2); err == nil {
		t.Error("Renew took a malformed sluice.dev/active-deadline")
	}
}

func TestRenewPod(t *testing.T) {
	p := utiltesting.MakePod("probe", "ml").Gate("example.com/quota").Gate(annotations.UpstreamGate).Obj()
	p.Finalizers = []string{annotations.ResultsFinalizer, "example.com/keep"}
	p.Spec.NodeName = "node-1"
	p.Spec.Volumes = append(p.Spec.Volumes,
		corev1.Volume{Name: "kube-api-access-x7k2p", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{}}},
		corev1.Volume{Name: "data", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}})
	p.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "kube-api-access-x7k2p", MountPath: "/var/run/secrets/kubernetes.io/serviceaccount"}, {Name: "data", MountPath: "/data"}}
	obj, err := Renew(p, 3)
	if err != nil {
		t.Fatal(err)
	}
	got := obj.(*corev1.Pod)
	if got.Spec.NodeName != "" || len(got.Spec.Volumes) != 1 || len(got.Spec.Containers[0].VolumeMounts) != 1 || got.Spec.Volumes[0].Name != "data" {
		t.Errorf("node %q, volumes %v, mounts %v: want no node, the token volume removed, the user's kept", got.Spec.NodeName, got.Spec.Volumes, got.Spec.Containers[0].VolumeMounts)
	}
	if len(got.Spec.SchedulingGates) != 1 || got.Spec.SchedulingGates[0].Name != "example.com/quota" {
		t.Errorf("gates %v, want sluice's removed (the webhook adds it), others kept", got.Spec.SchedulingGates)
	}
	if len(got.Finalizers) != 1 || got.Finalizers[0] != "example.com/keep" {
		t.Errorf("finalizers %v, want the results finalizer removed (the webhook adds it)", got.Finalizers)
	}
}

// testClient is a fake cluster holding objs, whose access reviews allow
// everything but create unless allowed. The fake client ignores a delete's
// UID precondition; uidPrecondition does what the API server does.
func testClient(allowed bool, objs ...client.Object) client.Client {
	return fake.NewClientBuilder().WithScheme(scheme.Scheme).WithObjects(objs...).WithInterceptorFuncs(interceptor.Funcs{
		Create: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.CreateOption) error {
			if r, ok := obj.(*authorizationv1.SelfSubjectAccessReview); ok {
				r.Status.Allowed = allowed || r.Spec.ResourceAttributes.Verb != "create"
				return nil
			}
			return c.Create(ctx, obj, opts...)
		},
		Delete: uidPrecondition,
	}).Build()
}

func uidPrecondition(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.DeleteOption) error {
	var o client.DeleteOptions
	o.ApplyOptions(opts)
	cur := obj.DeepCopyObject().(client.Object)
	if err := c.Get(ctx, client.ObjectKeyFromObject(obj), cur); err == nil && o.Preconditions != nil && o.Preconditions.UID != nil && *o.Preconditions.UID != cur.GetUID() {
		return apierrors.NewConflict(schema.GroupResource{Group: "batch", Resource: "jobs"}, obj.GetName(), errors.New("precondition failed: UID"))
	}
	return c.Delete(ctx, obj, opts...)
}

func TestApply(t *testing.T) {
	ctx := context.Background()
	old := failedTrain()
	c := testClient(true, old, job(utiltesting.MakeJob("prep", "ml"), annotations.PhaseSucceeded, false))
	var cur batchv1.Job
	if err := c.Get(ctx, types.NamespacedName{Namespace: "ml", Name: "train"}, &cur); err != nil {
		t.Fatal(err)
	}
	s := steps(t, &cur)
	plan := Plan(s)
	if err := CheckAccess(ctx, c, "ml", plan); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	got := Apply(ctx, c, plan, Options{Dir: dir})
	if len(got) != 1 || got[0].Err != nil || got[0].Already || got[0].Attempt != 2 {
		t.Fatalf("Apply = %+v, want train's attempt 2 created", got)
	}
	var j batchv1.Job
	if err := c.Get(ctx, types.NamespacedName{Namespace: "ml", Name: "train"}, &j); err != nil {
		t.Fatal(err)
	}
	if j.Annotations[annotations.AttemptAnnotation] != "2" || j.Labels[annotations.PhaseLabel] != "" {
		t.Errorf("train after the retry: annotations %v, labels %v; want attempt 2 and no phase", j.Annotations, j.Labels)
	}
	if left, _ := os.ReadDir(dir); len(left) != 0 {
		t.Errorf("manifests left behind after a retry that worked: %v", left)
	}

	// A second retry from the same (stale) reading finds the new attempt.
	again := Apply(ctx, c, plan, Options{Dir: dir})
	if len(again) != 1 || !again[0].Already || again[0].Err != nil {
		t.Errorf("second Apply = %+v, want Already", again)
	}
}

func TestApplyKeepsTheManifestWhenCreateFails(t *testing.T) {
	ctx := context.Background()
	c := fake.NewClientBuilder().WithScheme(scheme.Scheme).WithObjects(failedTrain()).WithInterceptorFuncs(interceptor.Funcs{
		Create: func(context.Context, client.WithWatch, client.Object, ...client.CreateOption) error {
			return apierrors.NewInternalError(errors.New(`failed calling webhook "jobs.sluice.dev": connection refused`))
		},
	}).Build()
	var cur batchv1.Job
	if err := c.Get(ctx, types.NamespacedName{Namespace: "ml", Name: "train"}, &cur); err != nil {
		t.Fatal(err)
	}
	s := steps(t, &cur)
	dir := t.TempDir()
	got := Apply(ctx, c, Plan(s), Options{Dir: dir})
	if len(got) != 1 || got[0].Err == nil || got[0].Manifest == "" {
		t.Fatalf("Apply = %+v, want an error and the saved manifest", got)
	}
	data, err := os.ReadFile(got[0].Manifest)
	if err != nil || filepath.Dir(got[0].Manifest) != dir {
		t.Fatalf("manifest %s: %v", got[0].Manifest, err)
	}
	var saved batchv1.Job
	if err := yaml.Unmarshal(data, &saved); err != nil || saved.Name != "train" || saved.Annotations[annotations.AttemptAnnotation] != "2" {
		t.Errorf("saved manifest %s does not hold train's attempt 2 (%v):\n%s", got[0].Manifest, err, data)
	}
}

func TestCheckAccessNamesTheRefusedVerb(t *testing.T) {
	ctx := context.Background()
	c := testClient(false, failedTrain())
	var cur batchv1.Job
	if err := c.Get(ctx, types.NamespacedName{Namespace: "ml", Name: "train"}, &cur); err != nil {
		t.Fatal(err)
	}
	s := steps(t, &cur)
	err := CheckAccess(ctx, c, "ml", Plan(s))
	if err == nil || err.Error() != "you may not create jobs.batch in namespace ml: a retry deletes each failed task's object and creates it anew (ask for create and delete on them)" {
		t.Errorf("CheckAccess = %v", err)
	}
}
