package certs

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr/testr"
	"github.com/google/go-cmp/cmp"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/apimachinery/pkg/watch"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
)

const (
	testNS     = "sluice-system"
	configName = "sluice"
)

var (
	secretKey    = types.NamespacedName{Namespace: testNS, Name: "sluice-webhook-cert"}
	testDNSNames = []string{"sluice-webhook.sluice-system.svc", "sluice-webhook.sluice-system.svc.cluster.local"}
)

func testOptions() Options {
	return Options{
		Secret:                         secretKey,
		DNSNames:                       testDNSNames,
		MutatingWebhookConfiguration:   configName,
		ValidatingWebhookConfiguration: configName,
	}
}

func testContext(t *testing.T) context.Context {
	return ctrl.LoggerInto(t.Context(), testr.New(t))
}

// makeSecret returns the Secret as the chart creates it, with data.
func makeSecret(data map[string][]byte) *corev1.Secret {
	return &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: secretKey.Name, Namespace: secretKey.Namespace}, Data: data}
}

// makeMutating returns a configuration with two webhooks carrying caBundle.
func makeMutating(caBundle []byte) *admissionregistrationv1.MutatingWebhookConfiguration {
	c := &admissionregistrationv1.MutatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: configName}}
	for _, name := range []string{"jobs.mutate.sluice.dev", "pods.mutate.sluice.dev"} {
		c.Webhooks = append(c.Webhooks, admissionregistrationv1.MutatingWebhook{Name: name, ClientConfig: admissionregistrationv1.WebhookClientConfig{CABundle: caBundle}})
	}
	return c
}

// makeValidating returns a configuration with two webhooks carrying caBundle.
func makeValidating(caBundle []byte) *admissionregistrationv1.ValidatingWebhookConfiguration {
	c := &admissionregistrationv1.ValidatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: configName}}
	for _, name := range []string{"jobs.validate.sluice.dev", "pods.validate.sluice.dev"} {
		c.Webhooks = append(c.Webhooks, admissionregistrationv1.ValidatingWebhook{Name: name, ClientConfig: admissionregistrationv1.WebhookClientConfig{CABundle: caBundle}})
	}
	return c
}

// writes counts the Updates that reached the fake API server, by kind.
type writes struct {
	mu     sync.Mutex
	counts map[string]int
}

func (w *writes) add(obj client.Object) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.counts == nil {
		w.counts = map[string]int{}
	}
	w.counts[kindOf(obj)]++
}

func (w *writes) get() map[string]int {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := map[string]int{}
	for k, v := range w.counts {
		out[k] = v
	}
	return out
}

func kindOf(obj client.Object) string {
	switch obj.(type) {
	case *corev1.Secret:
		return "Secret"
	case *admissionregistrationv1.MutatingWebhookConfiguration:
		return "MutatingWebhookConfiguration"
	case *admissionregistrationv1.ValidatingWebhookConfiguration:
		return "ValidatingWebhookConfiguration"
	}
	return "unexpected"
}

// getFunc intercepts the Gets of a fake client.
type getFunc = func(context.Context, client.WithWatch, client.ObjectKey, client.Object, ...client.GetOption) error

// newClient returns a fake client holding objs for the rotator. Its Updates
// are counted in w (if not nil) and its Gets go through get (if not nil).
// Every verb the rotator's RBAC does not grant fails the test: list, watch,
// create, patch, delete.
func newClient(t *testing.T, w *writes, get getFunc, objs ...client.Object) client.WithWatch {
	c, _ := newClients(t, w, get, objs...)
	return c
}

// newClients is newClient that also returns the client without
// interceptors, for the test's own writes.
func newClients(t *testing.T, w *writes, get getFunc, objs ...client.Object) (rot, raw client.WithWatch) {
	t.Helper()
	forbidden := func(verb string) error {
		t.Errorf("The rotator used %s, which its RBAC does not allow", verb)
		return apierrors.NewForbidden(schema.GroupResource{}, "", errors.New(verb))
	}
	raw = fake.NewClientBuilder().WithObjects(objs...).Build()
	return interceptor.NewClient(raw, interceptor.Funcs{
		Get: get,
		Update: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.UpdateOption) error {
			err := c.Update(ctx, obj, opts...)
			if err == nil && w != nil {
				w.add(obj)
			}
			return err
		},
		List: func(context.Context, client.WithWatch, client.ObjectList, ...client.ListOption) error {
			return forbidden("list")
		},
		Watch: func(context.Context, client.WithWatch, client.ObjectList, ...client.ListOption) (watch.Interface, error) {
			return nil, forbidden("watch")
		},
		Create: func(context.Context, client.WithWatch, client.Object, ...client.CreateOption) error {
			return forbidden("create")
		},
		Patch: func(context.Context, client.WithWatch, client.Object, client.Patch, ...client.PatchOption) error {
			return forbidden("patch")
		},
		Delete: func(context.Context, client.WithWatch, client.Object, ...client.DeleteOption) error {
			return forbidden("delete")
		},
	}), raw
}

func newRotator(t *testing.T, c client.Client) *Rotator {
	t.Helper()
	r, err := New(c, c, testOptions())
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return r
}

// verifyServing fails the test unless r serves the certificate in secret,
// and that certificate verifies against caBundle for every DNS name.
func verifyServing(t *testing.T, r *Rotator, secret *corev1.Secret, caBundle []byte) {
	t.Helper()
	cert, err := r.GetCertificate(&tls.ClientHelloInfo{})
	if err != nil {
		t.Fatalf("GetCertificate: %v", err)
	}
	want, err := tls.X509KeyPair(secret.Data[CertKey], secret.Data[KeyKey])
	if err != nil {
		t.Fatalf("Secret's serving certificate: %v", err)
	}
	if !bytes.Equal(cert.Certificate[0], want.Certificate[0]) {
		t.Errorf("GetCertificate returned another certificate than the Secret's")
	}
	verifyCert(t, secret.Data[CertKey], caBundle)
	if got := cert.Leaf.Subject.CommonName; got != testDNSNames[0] {
		t.Errorf("Common name %q, want the first DNS name %q", got, testDNSNames[0])
	}
}

// verifyCert fails the test unless the serving certificate certPEM verifies
// against caBundle for every DNS name.
func verifyCert(t *testing.T, certPEM, caBundle []byte) {
	t.Helper()
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(caBundle) {
		t.Fatalf("caBundle holds no certificate: %q", caBundle)
	}
	block, _ := pem.Decode(certPEM)
	if block == nil {
		t.Fatalf("no PEM certificate in %q", certPEM)
	}
	leaf, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range testDNSNames {
		if _, err := leaf.Verify(x509.VerifyOptions{DNSName: name, Roots: roots, KeyUsages: serverAuth}); err != nil {
			t.Errorf("Certificate does not verify for %s against the caBundle: %v", name, err)
		}
	}
}

// verifyInjected fails the test unless every webhook of both
// configurations carries caPEM.
func verifyInjected(t *testing.T, c client.Client, caPEM []byte) {
	t.Helper()
	ctx := t.Context()
	m := &admissionregistrationv1.MutatingWebhookConfiguration{}
	if err := c.Get(ctx, client.ObjectKey{Name: configName}, m); err != nil {
		t.Fatal(err)
	}
	for _, w := range m.Webhooks {
		if !bytes.Equal(w.ClientConfig.CABundle, caPEM) {
			t.Errorf("Mutating webhook %s does not carry the CA", w.Name)
		}
	}
	v := &admissionregistrationv1.ValidatingWebhookConfiguration{}
	if err := c.Get(ctx, client.ObjectKey{Name: configName}, v); err != nil {
		t.Fatal(err)
	}
	for _, w := range v.Webhooks {
		if !bytes.Equal(w.ClientConfig.CABundle, caPEM) {
			t.Errorf("Validating webhook %s does not carry the CA", w.Name)
		}
	}
}

func getSecret(t *testing.T, c client.Client) *corev1.Secret {
	t.Helper()
	s := &corev1.Secret{}
	if err := c.Get(t.Context(), secretKey, s); err != nil {
		t.Fatal(err)
	}
	return s
}

func TestNew(t *testing.T) {
	valid := testOptions
	cases := map[string]struct {
		opts    func(*Options)
		noIO    bool
		wantErr []string
	}{
		"valid, default interval": {},
		"no secret name": {
			opts:    func(o *Options) { o.Secret = types.NamespacedName{} },
			wantErr: []string{"secret: Required value"},
		},
		"secret without namespace": {
			opts:    func(o *Options) { o.Secret.Namespace = "" },
			wantErr: []string{"secret: Required value: the namespace of Secret sluice-webhook-cert"},
		},
		"secret name with a slash": {
			opts:    func(o *Options) { o.Secret.Name = "a/b" },
			wantErr: []string{`secret: Invalid value: "sluice-system/a/b": name:`},
		},
		"no DNS names": {
			opts:    func(o *Options) { o.DNSNames = nil },
			wantErr: []string{"dnsNames: Required value"},
		},
		"IP address, bad name and duplicate": {
			opts: func(o *Options) { o.DNSNames = []string{"a.svc", "10.0.0.1", "Not_A_Name", "a.svc"} },
			wantErr: []string{
				`dnsNames[1]: Invalid value: "10.0.0.1": must be a DNS name`,
				`dnsNames[2]: Invalid value: "Not_A_Name"`,
				`dnsNames[3]: Duplicate value: "a.svc"`,
			},
		},
		"no configuration names": {
			opts: func(o *Options) { o.MutatingWebhookConfiguration, o.ValidatingWebhookConfiguration = "", "" },
			wantErr: []string{
				"mutatingWebhookConfiguration: Required value",
				"validatingWebhookConfiguration: Required value",
			},
		},
		"negative interval": {
			opts:    func(o *Options) { o.CheckInterval = -time.Second },
			wantErr: []string{`checkInterval: Invalid value: "-1s"`},
		},
		"no reader or writer": {
			noIO:    true,
			wantErr: []string{"needs both a reader and a writer"},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			opts := valid()
			if tc.opts != nil {
				tc.opts(&opts)
			}
			var c client.Client = fake.NewClientBuilder().Build()
			if tc.noIO {
				c = nil
			}
			r, err := New(c, c, opts)
			if len(tc.wantErr) == 0 {
				if err != nil {
					t.Fatalf("New: %v", err)
				}
				if r.opts.CheckInterval != DefaultCheckInterval {
					t.Errorf("CheckInterval %v, want the default %v", r.opts.CheckInterval, DefaultCheckInterval)
				}
				if r.NeedLeaderElection() {
					t.Error("NeedLeaderElection is true: replicas that are not the leader would serve no certificate")
				}
				return
			}
			if err == nil {
				t.Fatal("New succeeded, want an error")
			}
			for _, want := range tc.wantErr {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("Error %q does not contain %q", err, want)
				}
			}
		})
	}
}

func TestNotReadyBeforeCheck(t *testing.T) {
	c := newClient(t, nil, nil, makeSecret(nil), makeMutating(nil), makeValidating(nil))
	r := newRotator(t, c)
	if _, err := r.GetCertificate(&tls.ClientHelloInfo{}); err == nil {
		t.Error("GetCertificate succeeded before any check")
	}
	if err := r.ReadyCheck(nil); err == nil || !strings.Contains(err.Error(), "not checked yet") {
		t.Errorf("ReadyCheck = %v, want not checked yet", err)
	}
}

func TestMissingSecret(t *testing.T) {
	w := &writes{}
	c := newClient(t, w, nil, makeMutating(nil), makeValidating(nil))
	r := newRotator(t, c)
	err := r.check(testContext(t))
	if err == nil {
		t.Fatal("check succeeded without the Secret")
	}
	for _, want := range []string{"sluice-system/sluice-webhook-cert", "not found", "helm upgrade"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Error %q does not contain %q", err, want)
		}
	}
	if err := r.ReadyCheck(nil); err == nil || !strings.Contains(err.Error(), "sluice-system/sluice-webhook-cert") {
		t.Errorf("ReadyCheck = %v, want an error naming the Secret", err)
	}
	if _, err := r.GetCertificate(&tls.ClientHelloInfo{}); err == nil {
		t.Error("GetCertificate succeeded without the Secret")
	}
	if diff := cmp.Diff(map[string]int{}, w.get()); diff != "" {
		t.Errorf("Unexpected writes (-want,+got):\n%s", diff)
	}
}

// TestConflict has another replica fill the Secret between the rotator's
// Get and its Update: the rotator must serve and inject what the other
// replica wrote, not overwrite it.
func TestConflict(t *testing.T) {
	ctx := testContext(t)
	winner := makeSecret(freshData(t))

	var raced, conflicts atomic.Int32
	get := func(ctx context.Context, c client.WithWatch, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
		if err := c.Get(ctx, key, obj, opts...); err != nil {
			return err
		}
		if _, ok := obj.(*corev1.Secret); ok && raced.Add(1) == 1 {
			s := &corev1.Secret{}
			if err := c.Get(ctx, key, s); err != nil {
				return err
			}
			s.Data = winner.Data
			return c.Update(ctx, s)
		}
		return nil
	}
	c := newClient(t, nil, get, makeSecret(nil), makeMutating(nil), makeValidating(nil))
	r := newRotator(t, interceptor.NewClient(c, interceptor.Funcs{
		Update: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.UpdateOption) error {
			err := c.Update(ctx, obj, opts...)
			if apierrors.IsConflict(err) {
				conflicts.Add(1)
			}
			return err
		},
	}))
	if err := r.check(ctx); err != nil {
		t.Fatalf("check: %v", err)
	}
	if conflicts.Load() != 1 {
		t.Fatalf("%d conflicts, want 1: the race did not happen", conflicts.Load())
	}
	secret := getSecret(t, c)
	if diff := cmp.Diff(winner.Data, secret.Data); diff != "" {
		t.Errorf("The Secret is not what the other replica wrote (-want,+got):\n%s", diff)
	}
	verifyServing(t, r, winner, winner.Data[CACertKey])
	verifyInjected(t, c, winner.Data[CACertKey])
}

// TestStart runs the loop: it retries a failed first check, becomes ready,
// and picks up another replica's rotation without a restart.
func TestStart(t *testing.T) {
	var failures atomic.Int32
	get := func(ctx context.Context, c client.WithWatch, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
		if _, ok := obj.(*corev1.Secret); ok && failures.Add(1) <= 2 {
			return apierrors.NewServiceUnavailable("apiserver restarting")
		}
		return c.Get(ctx, key, obj, opts...)
	}
	c := newClient(t, nil, get, makeSecret(nil), makeMutating(nil), makeValidating(nil))
	opts := testOptions()
	opts.CheckInterval = 20 * time.Millisecond
	r, err := New(c, c, opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(testContext(t))
	done := make(chan error)
	go func() { done <- r.Start(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Start returned %v, want nil once stopped", err)
		}
	}()

	poll := func(what string, cond func() bool) {
		t.Helper()
		if err := wait.PollUntilContextTimeout(ctx, 5*time.Millisecond, 10*time.Second, true, func(context.Context) (bool, error) {
			return cond(), nil
		}); err != nil {
			t.Fatalf("Waiting until %s: %v", what, err)
		}
	}
	poll("ready", func() bool { return r.ReadyCheck(nil) == nil })
	if failures.Load() < 3 {
		t.Errorf("Ready after %d Gets of the Secret, want the two failures retried", failures.Load())
	}
	verifyServing(t, r, getSecret(t, c), getSecret(t, c).Data[CACertKey])

	// Another replica rotates the CA.
	secret := getSecret(t, c)
	secret.Data = freshData(t)
	if err := c.Update(ctx, secret); err != nil {
		t.Fatal(err)
	}
	poll("the other replica's certificate is served", func() bool {
		cert, err := r.GetCertificate(&tls.ClientHelloInfo{})
		return err == nil && bytes.Equal(cert.Certificate[0], mustLeafDER(t, secret.Data[CertKey]))
	})
	poll("the other replica's CA is injected", func() bool {
		v := &admissionregistrationv1.ValidatingWebhookConfiguration{}
		return c.Get(ctx, client.ObjectKey{Name: configName}, v) == nil && bytes.Equal(v.Webhooks[1].ClientConfig.CABundle, secret.Data[CACertKey])
	})
	verifyInjected(t, c, secret.Data[CACertKey])
}

func mustLeafDER(t *testing.T, certPEM []byte) []byte {
	t.Helper()
	block, _ := pem.Decode(certPEM)
	if block == nil {
		t.Fatal("No PEM certificate")
	}
	return block.Bytes
}
