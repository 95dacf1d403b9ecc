package webhook

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	utiltesting "github.com/sluice-dev/sluice/annotations/testing"
	"github.com/sluice-dev/sluice/index"
)

// benchHandlers are the Job webhook's handlers as the manager serves them,
// over an index whose run already holds 10,000 tasks.
func benchHandlers(b *testing.B) (mutate, validate admission.Handler) {
	b.Helper()
	objs := make([]client.Object, 0, 10_000)
	for i := range 10_000 {
		objs = append(objs, utiltesting.MakeJob(fmt.Sprintf("s%d", i), "ml").Run("big").After("root").Outputs("out").UID(fmt.Sprint(i)).Obj())
	}
	job := NewJobWebhook(Options{ControllerUsername: "system:sluice", Tasks: index.Of(objs...)}, nil)
	return job.Mutating(), admission.WithValidator(scheme.Scheme, job)
}

// createRequest is what the API server sends to create obj.
func createRequest(b *testing.B, obj runtime.Object) admission.Request {
	b.Helper()
	raw, err := json.Marshal(obj)
	if err != nil {
		b.Fatal(err)
	}
	return admission.Request{AdmissionRequest: admissionv1.AdmissionRequest{
		UID: "bench", Operation: admissionv1.Create, Namespace: "ml", Name: "probe",
		Object: runtime.RawExtension{Raw: raw},
	}}
}

// BenchmarkMutateJob is the whole mutation path of one Job: decoding the
// request, parsing the keys, injecting artifacts, env and resources, and the
// JSON patch back; beside controller-runtime's defaulting handler on the same
// mutation (which marshals the object and diffs JSON documents).
func BenchmarkMutateJob(b *testing.B) {
	mutate, _ := benchHandlers(b)
	req := createRequest(b, utiltesting.MakeJob("probe", "ml").Run("big").After("s1").Inputs("a=s2.out").Outputs("model:Model").
		Annotation("sluice.dev/gpu", "1").Annotation("sluice.dev/cpu", "2").Obj())
	ctx := context.Background()
	for name, h := range map[string]admission.Handler{
		"sluice":             mutate,
		"controller-runtime": admission.WithDefaulter(scheme.Scheme, NewJobWebhook(Options{}, nil)),
	} {
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				if resp := h.Handle(ctx, req); !resp.Allowed || len(resp.Patches) == 0 {
					b.Fatalf("mutate: %+v", resp.Result)
				}
			}
		})
	}
}

// BenchmarkValidateJob is the validating path of one Job into a run of
// 10,000 tasks: decoding, parsing, and the graph checks against the index.
func BenchmarkValidateJob(b *testing.B) {
	_, validate := benchHandlers(b)
	req := createRequest(b, utiltesting.MakeJob("probe", "ml").Run("big").After("s1").Inputs("a=s2.out").Obj())
	ctx := context.Background()
	for b.Loop() {
		if resp := validate.Handle(ctx, req); !resp.Allowed {
			b.Fatalf("validate: %+v", resp.Result)
		}
	}
}
