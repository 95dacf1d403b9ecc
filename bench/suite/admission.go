package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrlwebhook "sigs.k8s.io/controller-runtime/pkg/webhook"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/sluice-dev/sluice/annotations"
	utiltesting "github.com/sluice-dev/sluice/annotations/testing"
	"github.com/sluice-dev/sluice/index"
	"github.com/sluice-dev/sluice/webhook"
)

// admissionBench sends AdmissionReview requests for a sluice Job and a
// sluice Pod straight to sluice's webhook handlers, served by
// controller-runtime's webhook server over TLS on loopback, into a run that
// already holds runTasks tasks; next to a handler that allows everything on
// the same server (the floor). No cluster is involved: the index is filled
// directly, as its informers would fill it.
type admissionBench struct {
	runTasks    int
	concurrency []int
	duration    time.Duration
}

// admissionResult is one endpoint at one concurrency.
type admissionResult struct {
	Endpoint    string  `json:"endpoint"`
	Concurrency int     `json:"concurrency"`
	Requests    int     `json:"requests"`
	P50ms       float64 `json:"p50_ms"`
	P99ms       float64 `json:"p99_ms"`
	PerSecond   float64 `json:"per_second"`
}

const benchNS = "bench"

func (b admissionBench) run(ctx context.Context) ([]admissionResult, error) {
	objs := make([]client.Object, 0, b.runTasks)
	for i := range b.runTasks {
		objs = append(objs, utiltesting.MakeJob(fmt.Sprintf("s%d", i), benchNS).Run("big").After("root").Outputs("out").
			UID(fmt.Sprintf("uid-%d", i)).Obj())
	}
	tasks := index.Of(objs...)
	opts := webhook.Options{ControllerUsername: "system:sluice", Tasks: tasks}

	dir, err := os.MkdirTemp("", "sluice-bench-certs-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	pool, err := selfSigned(dir)
	if err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	srv := ctrlwebhook.NewServer(ctrlwebhook.Options{Host: "127.0.0.1", Port: port, CertDir: dir})
	job, pod := webhook.NewJobWebhook(opts, nil), webhook.NewPodWebhook(opts, nil)
	srv.Register("/noop", &admission.Webhook{Handler: admission.HandlerFunc(func(context.Context, admission.Request) admission.Response {
		return admission.Allowed("")
	})})
	srv.Register("/validate-batch-v1-job", admission.WithValidator(scheme.Scheme, job))
	srv.Register("/validate--v1-pod", admission.WithValidator(scheme.Scheme, pod))
	srv.Register(webhook.JobMutatePath, job.Mutating())
	srv.Register(webhook.PodMutatePath, pod.Mutating())
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, 1)
	go func() { errc <- srv.Start(ctx) }()
	base := "https://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	if err := waitServing(base, pool, errc); err != nil {
		return nil, err
	}

	jobObj := utiltesting.MakeJob("probe", benchNS).Run("big").After("s1").Inputs("a=s2.out").UID("uid-probe").Obj()
	podObj := utiltesting.MakePod("probe-pod", benchNS).Label(annotations.RunLabel, "big").After("s3").Obj()
	podObj.UID = "uid-probe-pod"
	reviews := map[string][]byte{}
	for path, obj := range map[string]runtime.Object{
		"/noop": jobObj, "/validate-batch-v1-job": jobObj, "/mutate-batch-v1-job": jobObj,
		"/validate--v1-pod": podObj, "/mutate--v1-pod": podObj,
	} {
		if reviews[path], err = reviewOf(obj); err != nil {
			return nil, err
		}
	}
	endpoints := []string{"/noop", "/validate-batch-v1-job", "/validate--v1-pod", "/mutate-batch-v1-job", "/mutate--v1-pod"}
	var out []admissionResult
	for _, c := range b.concurrency {
		for _, ep := range endpoints {
			r, err := load(ctx, base+ep, reviews[ep], pool, c, b.duration)
			if err != nil {
				return nil, fmt.Errorf("%s at concurrency %d: %w", ep, c, err)
			}
			r.Endpoint = ep
			out = append(out, r)
		}
	}
	return out, nil
}

// reviewOf is the AdmissionReview the API server would send to create obj.
func reviewOf(obj runtime.Object) ([]byte, error) {
	raw, err := json.Marshal(obj)
	if err != nil {
		return nil, err
	}
	gvk := obj.GetObjectKind().GroupVersionKind()
	resource := "jobs"
	if gvk.Kind == "Pod" {
		resource = "pods"
	}
	m := obj.(metav1.Object)
	return json.Marshal(admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Request: &admissionv1.AdmissionRequest{
			UID:       types.UID("review"),
			Kind:      metav1.GroupVersionKind{Group: gvk.Group, Version: gvk.Version, Kind: gvk.Kind},
			Resource:  metav1.GroupVersionResource{Group: gvk.Group, Version: gvk.Version, Resource: resource},
			Name:      m.GetName(),
			Namespace: m.GetNamespace(),
			Operation: admissionv1.Create,
			UserInfo:  authenticationv1.UserInfo{Username: "alice"},
			Object:    runtime.RawExtension{Raw: raw},
		},
	})
}

// load sends body to url from c workers, each with its own connection, for
// the given duration, and reports the latency percentiles and throughput.
func load(ctx context.Context, url string, body []byte, pool *x509.CertPool, c int, d time.Duration) (admissionResult, error) {
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, MaxIdleConnsPerHost: c, MaxConnsPerHost: c}
	defer tr.CloseIdleConnections()
	cl := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	// Warm up: connections, handshakes, the server's first allocations.
	for range c * 20 {
		if _, err := post(ctx, cl, url, body); err != nil {
			return admissionResult{}, err
		}
	}
	var mu sync.Mutex
	var lat []time.Duration
	var firstErr error
	start := time.Now()
	deadline := start.Add(d)
	var wg sync.WaitGroup
	for range c {
		wg.Go(func() {
			var mine []time.Duration
			for time.Now().Before(deadline) {
				took, err := post(ctx, cl, url, body)
				if err != nil {
					mu.Lock()
					firstErr = err
					mu.Unlock()
					return
				}
				mine = append(mine, took)
			}
			mu.Lock()
			lat = append(lat, mine...)
			mu.Unlock()
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	if firstErr != nil {
		return admissionResult{}, firstErr
	}
	slices.Sort(lat)
	return admissionResult{
		Concurrency: c, Requests: len(lat),
		P50ms: ms(percentile(lat, 0.50)), P99ms: ms(percentile(lat, 0.99)),
		PerSecond: float64(len(lat)) / elapsed.Seconds(),
	}, nil
}

// post sends one review and checks that it was allowed.
func post(ctx context.Context, cl *http.Client, url string, body []byte) (time.Duration, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	start := time.Now()
	resp, err := cl.Do(req)
	if err != nil {
		return 0, err
	}
	data, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	took := time.Since(start)
	if err != nil {
		return 0, err
	}
	var review admissionv1.AdmissionReview
	if err := json.Unmarshal(data, &review); err != nil || review.Response == nil {
		return 0, fmt.Errorf("HTTP %d, not an AdmissionReview: %.200s", resp.StatusCode, data)
	}
	if !review.Response.Allowed {
		return 0, fmt.Errorf("refused: %v", review.Response.Result)
	}
	return took, nil
}

func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(float64(len(sorted)-1) * p)
	return sorted[i]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// selfSigned writes a self-signed serving certificate for 127.0.0.1 as
// tls.crt and tls.key into dir, and returns a pool that trusts it.
func selfSigned(dir string) (*x509.CertPool, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "sluice-bench"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, IsCA: true, BasicConstraintsValid: true,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "tls.crt"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "tls.key"), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return pool, nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// waitServing waits until the server answers over TLS, or failed to start.
func waitServing(base string, pool *x509.CertPool, errc <-chan error) error {
	cl := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}, Timeout: time.Second}
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-errc:
			return fmt.Errorf("webhook server stopped: %w", err)
		default:
		}
		if resp, err := cl.Get(base + "/noop"); err == nil {
			resp.Body.Close()
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("webhook server at %s did not answer within 30s", base)
}
