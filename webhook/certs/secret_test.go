package certs

import (
	"bytes"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/open-policy-agent/cert-controller/pkg/rotator"
)

var testIssuer = newIssuer(testDNSNames)

// testCA is one valid CA for all tests: RSA keys are slow to make.
var testCA = sync.OnceValues(func() (*rotator.KeyPairArtifacts, error) {
	now := time.Now()
	return testIssuer.CreateCACert(now.Add(-time.Hour), now.Add(CAValidity))
})

func makeCA(t *testing.T, notAfter time.Time) *rotator.KeyPairArtifacts {
	t.Helper()
	ca, err := testIssuer.CreateCACert(time.Now().Add(-time.Hour), notAfter)
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

// makeCert returns tls.crt and tls.key of a serving certificate for names,
// signed by ca.
func makeCert(t *testing.T, ca *rotator.KeyPairArtifacts, names []string, notAfter time.Time) (certPEM, keyPEM []byte) {
	t.Helper()
	issuer := newIssuer(names)
	certPEM, keyPEM, err := issuer.CreateCertPEM(ca, time.Now().Add(-time.Hour), notAfter)
	if err != nil {
		t.Fatal(err)
	}
	return certPEM, keyPEM
}

// secretData returns the Secret's data holding ca and a serving
// certificate for names until notAfter.
func secretData(t *testing.T, ca *rotator.KeyPairArtifacts, names []string, notAfter time.Time) map[string][]byte {
	t.Helper()
	certPEM, keyPEM := makeCert(t, ca, names, notAfter)
	return map[string][]byte{CACertKey: ca.CertPEM, CAKeyKey: ca.KeyPEM, CertKey: certPEM, KeyKey: keyPEM}
}

// freshData returns a new CA and serving certificate, as another replica
// would issue them.
func freshData(t *testing.T) map[string][]byte {
	t.Helper()
	return secretData(t, makeCA(t, time.Now().Add(CAValidity)), testDNSNames, time.Now().Add(CertValidity))
}

// TestCheck runs one check on a Secret and configurations in various
// states. Whatever the state, the Secret must end up holding a CA and a
// serving certificate valid for every DNS name, the rotator must serve that
// certificate, both configurations must carry that CA, and a second check
// must write nothing.
func TestCheck(t *testing.T) {
	ca, err := testCA()
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	valid := secretData(t, ca, testDNSNames, now.Add(CertValidity))
	with := func(data map[string][]byte, kv ...string) map[string][]byte {
		out := map[string][]byte{}
		for k, v := range data {
			out[k] = v
		}
		for i := 0; i < len(kv); i += 2 {
			out[kv[i]] = []byte(kv[i+1])
		}
		return out
	}
	otherCA := makeCA(t, now.Add(CAValidity))
	expiringCA := makeCA(t, now.Add(RenewBefore-24*time.Hour))
	expiredCA := makeCA(t, now.Add(-time.Minute))
	_, otherKey := makeCert(t, ca, testDNSNames, now.Add(CertValidity))

	cases := map[string]struct {
		data        map[string][]byte
		caBundle    []byte // of every webhook before the check
		wantNewCA   bool
		wantNewCert bool
		// wantPrevious is the replaced CA the caBundle must still trust.
		wantPrevious []byte
		wantWrites   map[string]int
	}{
		"empty secret: new CA and certificate": {
			wantNewCA:   true,
			wantNewCert: true,
			wantWrites:  map[string]int{"Secret": 1, "MutatingWebhookConfiguration": 1, "ValidatingWebhookConfiguration": 1},
		},
		"filled by another replica: nothing issued or written": {
			data:       valid,
			caBundle:   ca.CertPEM,
			wantWrites: map[string]int{},
		},
		"filled, caBundles reset by helm upgrade: only the CA injected": {
			data:       valid,
			wantWrites: map[string]int{"MutatingWebhookConfiguration": 1, "ValidatingWebhookConfiguration": 1},
		},
		"certificate expires within the renewal window: new certificate, same CA": {
			data:        secretData(t, ca, testDNSNames, now.Add(RenewBefore-24*time.Hour)),
			caBundle:    ca.CertPEM,
			wantNewCert: true,
			wantWrites:  map[string]int{"Secret": 1},
		},
		"certificate lacks a DNS name: new certificate, same CA": {
			data:        secretData(t, ca, testDNSNames[:1], now.Add(CertValidity)),
			caBundle:    ca.CertPEM,
			wantNewCert: true,
			wantWrites:  map[string]int{"Secret": 1},
		},
		"certificate signed by another CA: new certificate, same CA": {
			data:        with(secretData(t, otherCA, testDNSNames, now.Add(CertValidity)), CACertKey, string(ca.CertPEM), CAKeyKey, string(ca.KeyPEM)),
			caBundle:    ca.CertPEM,
			wantNewCert: true,
			wantWrites:  map[string]int{"Secret": 1},
		},
		"key does not match the certificate: new certificate, same CA": {
			data:        with(valid, KeyKey, string(otherKey)),
			caBundle:    ca.CertPEM,
			wantNewCert: true,
			wantWrites:  map[string]int{"Secret": 1},
		},
		"garbage CA: new CA and certificate, caBundles updated, other keys kept": {
			data:        with(valid, CACertKey, "garbage", CAKeyKey, "garbage", "note", "kept"),
			caBundle:    []byte("garbage"),
			wantNewCA:   true,
			wantNewCert: true,
			wantWrites:  map[string]int{"Secret": 1, "MutatingWebhookConfiguration": 1, "ValidatingWebhookConfiguration": 1},
		},
		"CA key missing: new CA and certificate, the old CA certificate still trusted": {
			data:         with(valid, CAKeyKey, ""),
			caBundle:     ca.CertPEM,
			wantNewCA:    true,
			wantNewCert:  true,
			wantPrevious: ca.CertPEM,
			wantWrites:   map[string]int{"Secret": 1, "MutatingWebhookConfiguration": 1, "ValidatingWebhookConfiguration": 1},
		},
		"CA expires within the renewal window: new CA and certificate, the old CA still trusted": {
			data:         secretData(t, expiringCA, testDNSNames, expiringCA.Cert.NotAfter),
			caBundle:     expiringCA.CertPEM,
			wantNewCA:    true,
			wantNewCert:  true,
			wantPrevious: expiringCA.CertPEM,
			wantWrites:   map[string]int{"Secret": 1, "MutatingWebhookConfiguration": 1, "ValidatingWebhookConfiguration": 1},
		},
		"replaced CA still valid: kept in the caBundles": {
			data:         with(valid, PreviousCACertKey, string(otherCA.CertPEM)),
			caBundle:     ca.CertPEM,
			wantPrevious: otherCA.CertPEM,
			wantWrites:   map[string]int{"MutatingWebhookConfiguration": 1, "ValidatingWebhookConfiguration": 1},
		},
		"replaced CA expired: left out of the caBundles": {
			data:       with(valid, PreviousCACertKey, string(expiredCA.CertPEM)),
			caBundle:   ca.CertPEM,
			wantWrites: map[string]int{},
		},
		"ca.crt is not a CA certificate: new CA and certificate": {
			data:        with(valid, CACertKey, string(valid[CertKey]), CAKeyKey, string(valid[KeyKey])),
			caBundle:    ca.CertPEM,
			wantNewCA:   true,
			wantNewCert: true,
			wantWrites:  map[string]int{"Secret": 1, "MutatingWebhookConfiguration": 1, "ValidatingWebhookConfiguration": 1},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			ctx := testContext(t)
			w := &writes{}
			c := newClient(t, w, nil, makeSecret(tc.data), makeMutating(tc.caBundle), makeValidating(tc.caBundle))
			r := newRotator(t, c)
			if err := r.check(ctx); err != nil {
				t.Fatalf("check: %v", err)
			}

			secret := getSecret(t, c)
			for _, k := range []string{CACertKey, CAKeyKey, CertKey, KeyKey} {
				if len(secret.Data[k]) == 0 {
					t.Errorf("The Secret lacks %s", k)
				}
			}
			for k, v := range tc.data {
				if k != CACertKey && k != CAKeyKey && k != CertKey && k != KeyKey && !bytes.Equal(secret.Data[k], v) {
					t.Errorf("Key %s of the Secret changed from %q to %q", k, v, secret.Data[k])
				}
			}
			if newCA := !bytes.Equal(secret.Data[CACertKey], tc.data[CACertKey]) || !bytes.Equal(secret.Data[CAKeyKey], tc.data[CAKeyKey]); newCA != tc.wantNewCA {
				t.Errorf("New CA: %t, want %t", newCA, tc.wantNewCA)
			}
			if newCert := !bytes.Equal(secret.Data[CertKey], tc.data[CertKey]); newCert != tc.wantNewCert {
				t.Errorf("New serving certificate: %t, want %t", newCert, tc.wantNewCert)
			}
			bundle := secret.Data[CACertKey]
			if tc.wantPrevious != nil {
				bundle = append(append(bytes.Clone(bundle), '\n'), tc.wantPrevious...)
			}
			verifyServing(t, r, secret, bundle)
			verifyInjected(t, c, bundle)
			if tc.wantPrevious != nil && tc.wantNewCA {
				// Another replica still serving the old certificate is trusted.
				verifyCert(t, tc.data[CertKey], bundle)
			}
			if err := r.ReadyCheck(nil); err != nil {
				t.Errorf("ReadyCheck: %v", err)
			}
			if diff := cmp.Diff(tc.wantWrites, w.get()); diff != "" {
				t.Errorf("Unexpected writes (-want,+got):\n%s", diff)
			}

			if err := r.check(ctx); err != nil {
				t.Fatalf("Second check: %v", err)
			}
			if diff := cmp.Diff(tc.wantWrites, w.get()); diff != "" {
				t.Errorf("The second check wrote (-want,+got):\n%s", diff)
			}
		})
	}
}

// TestSecondReplica starts a second rotator on the Secret the first one
// filled: it must serve the same certificate and issue nothing.
func TestSecondReplica(t *testing.T) {
	ctx := testContext(t)
	w := &writes{}
	c := newClient(t, w, nil, makeSecret(nil), makeMutating(nil), makeValidating(nil))
	first := newRotator(t, c)
	if err := first.check(ctx); err != nil {
		t.Fatalf("First replica: %v", err)
	}
	filled := getSecret(t, c)
	before := w.get()

	second := newRotator(t, c)
	if err := second.check(ctx); err != nil {
		t.Fatalf("Second replica: %v", err)
	}
	if diff := cmp.Diff(filled.Data, getSecret(t, c).Data); diff != "" {
		t.Errorf("The second replica changed the Secret (-want,+got):\n%s", diff)
	}
	if diff := cmp.Diff(before, w.get()); diff != "" {
		t.Errorf("The second replica wrote (-want,+got):\n%s", diff)
	}
	a, _ := first.GetCertificate(nil)
	b, err := second.GetCertificate(nil)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.Certificate[0], b.Certificate[0]) {
		t.Error("The replicas serve different certificates")
	}
	verifyServing(t, second, filled, filled.Data[CACertKey])
}
