package webhook

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	jsonpatchapply "github.com/evanphx/json-patch/v5"
	"github.com/google/go-cmp/cmp"
	admissionv1 "k8s.io/api/admission/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/sluice-dev/sluice/annotations"
	utiltesting "github.com/sluice-dev/sluice/annotations/testing"
)

// applied is the object JSON after the response's patch.
func applied(t *testing.T, raw []byte, resp admission.Response) map[string]any {
	t.Helper()
	if !resp.Allowed {
		t.Fatalf("denied: %+v", resp.Result)
	}
	out := raw
	if len(resp.Patches) > 0 {
		ops, err := json.Marshal(resp.Patches)
		if err != nil {
			t.Fatal(err)
		}
		p, err := jsonpatchapply.DecodePatch(ops)
		if err != nil {
			t.Fatal(err)
		}
		if out, err = p.Apply(raw); err != nil {
			t.Fatalf("applying %s: %v", ops, err)
		}
	}
	var m map[string]any
	if err := json.Unmarshal(out, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func createReq(t *testing.T, raw []byte) admission.Request {
	return admission.Request{AdmissionRequest: admissionv1.AdmissionRequest{
		UID: "u", Operation: admissionv1.Create, Namespace: "ml", Object: runtime.RawExtension{Raw: raw},
	}}
}

// TestMutatingPatchMatchesControllerRuntime: for Jobs and Pods that use
// every key the mutation acts on, sluice's patch gives the object that
// controller-runtime's defaulting handler (marshal and diff) gives.
func TestMutatingPatchMatchesControllerRuntime(t *testing.T) {
	withResources := utiltesting.MakeJob("train", "ml").After("prep").Annotation(annotations.GPUAnnotation, "2").Obj()
	withResources.Spec.Template.Spec.Containers[0].Resources.Requests = corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("500m")}
	withResources.Spec.Template.Spec.Tolerations = []corev1.Toleration{{Key: "team", Operator: corev1.TolerationOpExists}}
	withResources.Spec.Template.Spec.Containers[0].Env = []corev1.EnvVar{{Name: "EPOCHS", Value: "3"}}
	withResources.Spec.Template.Spec.Volumes = []corev1.Volume{{Name: "scratch", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}}
	jobs := map[string]*batchv1.Job{
		"root":                  utiltesting.MakeJob("prep", "ml").Obj(),
		"artifacts":             utiltesting.MakeJob("train", "ml").Run("r1").Inputs("dataset=prep.processed_data").Outputs("model:Model").Obj(),
		"accelerator and cpu":   utiltesting.MakeJob("train", "ml").After("prep").Annotation(annotations.AcceleratorAnnotation, "nvidia-tesla-t4").Annotation(annotations.CPUAnnotation, "4").Annotation(annotations.MemoryAnnotation, "8Gi").Obj(),
		"user resources kept":   withResources,
		"group and after-group": utiltesting.MakeJob("merge", "ml").Group("reports").AfterGroup("shards=10").Obj(),
		"not a sluice object":   func() *batchv1.Job { j := utiltesting.MakeJob("x", "ml").Obj(); j.Labels = nil; return j }(),
	}
	pods := map[string]*corev1.Pod{
		"gated, foreign gate kept": utiltesting.MakePod("eval", "ml").After("train").Gate("example.com/quota").Obj(),
		"root pod":                 utiltesting.MakePod("prep", "ml").Annotation(annotations.GPUAnnotation, "1").Obj(),
	}
	opts := Options{SchedulerName: "sluice-scheduler"}
	job, pod := NewJobWebhook(opts, nil), NewPodWebhook(opts, nil)
	check := func(t *testing.T, obj runtime.Object, ours, theirs admission.Handler) {
		raw, err := json.Marshal(obj)
		if err != nil {
			t.Fatal(err)
		}
		req := createReq(t, raw)
		got, want := applied(t, raw, ours.Handle(context.Background(), req)), applied(t, raw, theirs.Handle(context.Background(), req))
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("patched object (-controller-runtime,+sluice):\n%s", diff)
		}
	}
	for name, j := range jobs {
		t.Run("Job "+name, func(t *testing.T) { check(t, j, job.Mutating(), admission.WithDefaulter(scheme.Scheme, job)) })
	}
	for name, p := range pods {
		t.Run("Pod "+name, func(t *testing.T) { check(t, p, pod.Mutating(), admission.WithDefaulter(scheme.Scheme, pod)) })
	}
}

// TestMutatingPatchKeepsUnknownFields: fields this build's API types do not
// know (a newer API server's) survive the patch, in the pod spec and in
// the containers sluice adds env and mounts to.
func TestMutatingPatchKeepsUnknownFields(t *testing.T) {
	raw := []byte(`{"apiVersion":"batch/v1","kind":"Job","metadata":{"name":"train","namespace":"ml","labels":{"sluice.dev/pipeline":"p"},
		"annotations":{"sluice.dev/inputs":"d=prep.data","sluice.dev/gpu":"1"}},
		"spec":{"futureJobField":true,"template":{"spec":{"futurePodField":{"a":1},"restartPolicy":"Never",
		"containers":[{"name":"main","image":"busybox","futureContainerField":"x","env":[{"name":"A","value":"1","futureEnvField":2}]}]}}}}`)
	resp := NewJobWebhook(Options{}, nil).Mutating().Handle(context.Background(), createReq(t, raw))
	got := applied(t, raw, resp)
	spec := got["spec"].(map[string]any)
	podSpec := spec["template"].(map[string]any)["spec"].(map[string]any)
	container := podSpec["containers"].([]any)[0].(map[string]any)
	env := container["env"].([]any)
	for what, ok := range map[string]bool{
		"spec.futureJobField":                 spec["futureJobField"] == true,
		"pod spec futurePodField":             podSpec["futurePodField"] != nil,
		"container futureContainerField":      container["futureContainerField"] == "x",
		"the user's env var's futureEnvField": env[0].(map[string]any)["futureEnvField"] != nil,
		"the mutation itself (suspended, env added, volume mounted, GPU limit)": spec["suspend"] == true && len(env) > 1 &&
			len(container["volumeMounts"].([]any)) == 1 && container["resources"].(map[string]any)["limits"].(map[string]any)["nvidia.com/gpu"] == "1",
	} {
		if !ok {
			t.Errorf("%s: lost; patched object %v", what, got)
		}
	}
	for _, op := range resp.Patches {
		if op.Operation == "remove" {
			t.Errorf("the patch removes %s", op.Path)
		}
	}
}

func TestJSONPatchEscapesKeys(t *testing.T) {
	before := &corev1.Pod{}
	after := before.DeepCopy()
	after.Labels = map[string]string{"sluice.dev/phase": "Waiting"}
	before.Annotations = map[string]string{"a~b/c": "1"}
	after.Annotations = map[string]string{"a~b/c": "2"}
	var paths []string
	for _, op := range jsonPatch(before, after) {
		paths = append(paths, op.Operation+" "+op.Path)
	}
	want := []string{"add /metadata/labels", "add /metadata/annotations/a~0b~1c"}
	if strings.Join(paths, ",") != strings.Join(want, ",") {
		t.Errorf("ops = %v, want %v", paths, want)
	}
}
