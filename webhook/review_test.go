package webhook

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
	"k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/sluice-dev/sluice/annotations"
	utiltesting "github.com/sluice-dev/sluice/annotations/testing"
	"github.com/sluice-dev/sluice/index"
)

// reviewHandlers are the four admission endpoints as the manager serves
// them, over an empty index.
func reviewHandlers() map[string]http.Handler {
	opts := Options{ControllerUsername: "system:sluice", Tasks: index.Of()}
	job, pod := NewJobWebhook(opts, nil), NewPodWebhook(opts, nil)
	return map[string]http.Handler{
		JobMutatePath:   job.Mutating(),
		"validate-job":  admission.WithValidator(scheme.Scheme, job),
		PodMutatePath:   pod.Mutating(),
		"validate--pod": admission.WithValidator(scheme.Scheme, pod),
	}
}

// review wraps object and old (raw bytes, valid JSON or not: the body is
// written as the bytes say) into the AdmissionReview the API server sends.
func review(kind string, op admissionv1.Operation, object, old []byte) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u1","kind":{"group":"","version":"v1","kind":%q},`+
		`"operation":%q,"namespace":"ml","name":"x","userInfo":{"username":"alice"}`, kind, op)
	for _, f := range []struct {
		key string
		raw []byte
	}{{"object", object}, {"oldObject", old}} {
		if f.raw != nil {
			fmt.Fprintf(&b, `,%q:`, f.key)
			b.Write(f.raw)
		}
	}
	b.WriteString("}}")
	return b.Bytes()
}

// serve posts body to h and returns the HTTP status and the review's
// response (nil when there is none).
func serve(h http.Handler, body []byte) (int, *admissionv1.AdmissionResponse) {
	req := httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	var out admissionv1.AdmissionReview
	if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
		return rec.Code, nil
	}
	return rec.Code, out.Response
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// Bad input to the admission endpoints is answered with a denial or a 400,
// never a crash or a 500, and what follows is served as before.
func TestBadAdmissionReviews(t *testing.T) {
	job := func(annots map[string]string) []byte {
		w := utiltesting.MakeJob("x", "ml")
		for k, v := range annots {
			w.Annotation(k, v)
		}
		return mustJSON(w.Obj())
	}
	nested := strings.Repeat(`{"a":`, 20000) + "1" + strings.Repeat("}", 20000)
	garbage := []byte{0xff, 0xfe, 0x00, 0x01, '{', 0x80, '"'}
	cases := map[string][]byte{
		"empty body":                  {},
		"binary garbage":              garbage,
		"not a review":                []byte(`{"kind":"Pod"}`),
		"review without a request":    []byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}`),
		"object is binary garbage":    review("Job", admissionv1.Create, append([]byte(`"`), append(garbage, '"')...), nil),
		"object deeply nested":        review("Job", admissionv1.Create, []byte(nested), nil),
		"object is a list":            review("Job", admissionv1.Create, []byte(`[1,2,3]`), nil),
		"oversized annotation":        review("Job", admissionv1.Create, job(map[string]string{annotations.AfterAnnotation: strings.Repeat("a,", 300_000) + "a"}), nil),
		"oversized condition":         review("Job", admissionv1.Create, job(map[string]string{annotations.WhenAnnotation: strings.Repeat("true && ", 30_000) + "true"}), nil),
		"oversized input":             review("Job", admissionv1.Create, job(map[string]string{annotations.InputsAnnotation: strings.Repeat("x", 100_000) + "=prep.data"}), nil),
		"a step without containers":   review("Job", admissionv1.Create, bytes.Replace(job(map[string]string{annotations.GPUAnnotation: "1"}), []byte(`"containers":[`), []byte(`"initContainers":[`), 1), nil),
		"annotation of control bytes": review("Job", admissionv1.Create, job(map[string]string{annotations.WhenAnnotation: "\x00\x01\x02 tasks."}), nil),
		"invalid UTF-8 in a key":      review("Job", admissionv1.Create, bytes.ReplaceAll(job(map[string]string{annotations.AfterAnnotation: "prep"}), []byte("prep"), []byte("pr\xffep")), nil),
		"update with a garbage old":   review("Job", admissionv1.Update, job(nil), garbage),
		"body over the size limit":    bytes.Repeat([]byte(" "), 8<<20),
	}
	// What the Job endpoints answer: 400 for what does not decode, 413 for
	// a body over controller-runtime's limit, 422 for keys that do not parse.
	jobWant := map[string]int32{
		"binary garbage": 400, "object is binary garbage": 400, "object deeply nested": 400, "object is a list": 400,
		"update with a garbage old": 400, "body over the size limit": 413,
		"oversized annotation": 422, "oversized condition": 422, "oversized input": 422, "a step without containers": 422, "annotation of control bytes": 422, "invalid UTF-8 in a key": 422,
	}
	handlers := reviewHandlers()
	for name, body := range cases {
		for path, h := range handlers {
			t.Run(name+" "+path, func(t *testing.T) {
				code, resp := serve(h, body)
				if want, ok := jobWant[name]; ok && strings.Contains(path, "job") && (resp == nil || resp.Result == nil || resp.Result.Code != want || resp.Allowed) {
					t.Errorf("want a denial with code %d, got HTTP %d, %+v", want, code, resp)
				}
				switch {
				case code >= 500:
					t.Fatalf("HTTP %d", code)
				case resp == nil:
					if code != http.StatusBadRequest && code != http.StatusRequestEntityTooLarge {
						t.Fatalf("HTTP %d without a review", code)
					}
				case resp.Allowed && (resp.Result == nil || resp.Result.Code < 400):
					// Allowed is fine for what is no sluice object, or
					// an object a handler does not look at (a list
					// decodes to nothing sluice).
				case resp.Result == nil || resp.Result.Code >= 500:
					t.Fatalf("denied with %+v, want a 4xx", resp.Result)
				}
				// A denial quotes bad values in part, never echoes an
				// oversized annotation back.
				if resp != nil && resp.Result != nil && len(resp.Result.Message) > 2*maxShownDetail {
					t.Errorf("denial message of %d bytes: %.300s...", len(resp.Result.Message), resp.Result.Message)
				}
			})
		}
	}
	// And the endpoints still serve a good request.
	good := review("Job", admissionv1.Create, mustJSON(utiltesting.MakeJob("train", "ml").After("prep").Obj()), nil)
	if code, resp := serve(handlers[JobMutatePath], good); code != http.StatusOK || resp == nil || !resp.Allowed || len(resp.Patch) == 0 {
		t.Fatalf("a good request after the bad ones: HTTP %d, %+v", code, resp)
	}
}

// FuzzAdmissionReview feeds arbitrary bodies to every admission endpoint:
// each answer is a review or a 4xx, never a crash or a 5xx.
func FuzzAdmissionReview(f *testing.F) {
	f.Add(review("Job", admissionv1.Create, mustJSON(utiltesting.MakeJob("train", "ml").After("prep").Inputs("d=prep.data").Obj()), nil))
	f.Add(review("Pod", admissionv1.Create, mustJSON(utiltesting.MakePod("train", "ml").After("prep").Obj()), nil))
	f.Add(review("Job", admissionv1.Update, mustJSON(utiltesting.MakeJob("train", "ml").Obj()), mustJSON(utiltesting.MakeJob("train", "ml").After("x").Obj())))
	f.Add([]byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"1","operation":"CREATE","object":{"metadata":{"labels":{"sluice.dev/pipeline":"p"}}}}}`))
	f.Add([]byte{0xff, 0x00})
	handlers := reviewHandlers()
	f.Fuzz(func(t *testing.T, body []byte) {
		for path, h := range handlers {
			code, resp := serve(h, body)
			if code >= 500 || (resp != nil && resp.Result != nil && resp.Result.Code >= 500) {
				t.Fatalf("%s: HTTP %d, response %+v", path, code, resp)
			}
			if resp == nil && code != http.StatusBadRequest && code != http.StatusRequestEntityTooLarge {
				t.Fatalf("%s: HTTP %d without a review", path, code)
			}
		}
	})
}
