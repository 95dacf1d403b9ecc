package install

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"strings"
	"testing"
	"time"

	admissionregv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/sluice-dev/sluice/e2e/framework"
)

// cert-manager's CRDs come from its Go module; its controller and CA
// injector cannot be built from the module proxy (their nested modules are
// not served), so this test plays their part, saying so: it issues the
// chart's Certificate into its Secret the way cert-manager's CA issuer
// writes one (tls.crt, tls.key, ca.crt, type kubernetes.io/tls) and fills
// the caBundles the way its CA injector does for the
// cert-manager.io/inject-ca-from annotation. Everything on sluice's side is
// real: the chart with certManager.enabled=true, the manager's pods
// mounting the Secret and serving what it holds.
const (
	// The ClusterIssuer the release is configured with; nothing serves it
	// but this test.
	issuerName = "sluice-e2e-ca"
)

// caIssuer plays cert-manager's CA issuer and CA injector.
type caIssuer struct {
	ca    *x509.Certificate
	caPEM []byte
	key   *ecdsa.PrivateKey
}

func newCAIssuer(t *testing.T) *caIssuer {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: issuerName},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(der)
	return &caIssuer{ca: ca, key: key, caPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// issue writes the chart's Certificate into its Secret, with a new key
// (rotationPolicy: Always) and serial, and returns the serial.
func (c *caIssuer) issue(ctx context.Context, serial int64) error {
	cert := &unstructured.Unstructured{}
	cert.SetAPIVersion("cert-manager.io/v1")
	cert.SetKind("Certificate")
	if err := kube.Get(ctx, client.ObjectKey{Namespace: releaseNS, Name: managerName}, cert); err != nil {
		return err
	}
	secretName, _, _ := unstructured.NestedString(cert.Object, "spec", "secretName")
	commonName, _, _ := unstructured.NestedString(cert.Object, "spec", "commonName")
	dnsNames, _, _ := unstructured.NestedStringSlice(cert.Object, "spec", "dnsNames")
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: commonName}, DNSNames: dnsNames,
		NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, c.ca, &key.PublicKey, c.key)
	if err != nil {
		return err
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return err
	}
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: secretName, Namespace: releaseNS}}
	data := map[string][]byte{
		"tls.crt": pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		"tls.key": pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}),
		"ca.crt":  c.caPEM,
	}
	annotations := map[string]string{"cert-manager.io/certificate-name": cert.GetName(), "cert-manager.io/issuer-name": issuerName, "cert-manager.io/issuer-kind": "ClusterIssuer"}
	err = kube.Get(ctx, client.ObjectKeyFromObject(secret), secret)
	switch {
	case apierrors.IsNotFound(err):
		secret.Type, secret.Data, secret.Annotations = corev1.SecretTypeTLS, data, annotations
		return kube.Create(ctx, secret)
	case err != nil:
		return err
	}
	secret.Data = data
	return kube.Update(ctx, secret)
}

// inject fills the caBundle of every webhook of the configurations that
// ask for the CA of the chart's Certificate.
func (c *caIssuer) inject(ctx context.Context) error {
	want := releaseNS + "/" + managerName
	m, v := &admissionregv1.MutatingWebhookConfiguration{}, &admissionregv1.ValidatingWebhookConfiguration{}
	for _, o := range []client.Object{m, v} {
		if err := kube.Get(ctx, client.ObjectKey{Name: release}, o); err != nil {
			return err
		}
		if o.GetAnnotations()["cert-manager.io/inject-ca-from"] != want {
			return fmt.Errorf("%T %s does not ask for the CA of %s", o, release, want)
		}
	}
	for i := range m.Webhooks {
		m.Webhooks[i].ClientConfig.CABundle = c.caPEM
	}
	for i := range v.Webhooks {
		v.Webhooks[i].ClientConfig.CABundle = c.caPEM
	}
	if err := kube.Update(ctx, m); err != nil {
		return err
	}
	return kube.Update(ctx, v)
}

// certMountFailed: the kubelet reported that it cannot mount the
// manager's certificate Secret.
func certMountFailed(ctx context.Context) bool {
	var events corev1.EventList
	if err := kube.List(ctx, &events, client.InNamespace(releaseNS)); err != nil {
		return false
	}
	for _, e := range events.Items {
		if e.Reason == "FailedMount" && strings.Contains(e.Message, `secret "`+certSecret+`" not found`) {
			return true
		}
	}
	return false
}

// servedSerials returns the serial of the certificate each manager pod
// serves, dialling the pods' addresses (the real node's bridge is this
// machine's).
func servedSerials(ctx context.Context) (map[string]int64, error) {
	pods, _, err := managerPods(ctx)
	if err != nil {
		return nil, err
	}
	out := map[string]int64{}
	for _, p := range pods {
		if p.Status.PodIP == "" {
			return nil, fmt.Errorf("pod %s has no address yet", p.Name)
		}
		conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 2 * time.Second}, "tcp", net.JoinHostPort(p.Status.PodIP, "9443"),
			&tls.Config{InsecureSkipVerify: true}) //nolint:gosec // reads the served certificate only
		if err != nil {
			return nil, fmt.Errorf("pod %s: %w", p.Name, err)
		}
		out[p.Name] = conn.ConnectionState().PeerCertificates[0].SerialNumber.Int64()
		conn.Close()
	}
	return out, nil
}

// TestCertManagerMode: sluice installed with certManager.enabled=true and
// a ClusterIssuer, cert-manager's part played by this test (see above). The
// install waits for the certificate; once issued and injected, both
// replicas serve it and sluice Jobs are admitted; a renewed certificate (a
// new key, same CA) written into the Secret mid-run is picked up by both
// replicas while a client creates a sluice Job every 100 ms: none refused.
func TestCertManagerMode(t *testing.T) {
	ctx := context.Background()
	crds, err := framework.CertManagerCRDs()
	if err != nil {
		t.Fatal(err)
	}
	for _, crd := range crds {
		if err := kube.Create(ctx, crd); err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatalf("installing CRD %s: %v", crd.GetName(), err)
		}
	}
	issuer := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "cert-manager.io/v1", "kind": "ClusterIssuer",
		"metadata": map[string]any{"name": issuerName},
		"spec":     map[string]any{"ca": map[string]any{"secretName": issuerName}},
	}}
	eventually(t, "cert-manager's CRDs to serve a ClusterIssuer", func() (bool, error) {
		err := kube.Create(ctx, issuer)
		return err == nil || apierrors.IsAlreadyExists(err), err
	})

	// From built-in rotation to cert-manager: a new installation.
	helm(t, "uninstall", release, "-n", releaseNS, "--wait")
	ca := newCAIssuer(t)
	stopIssuer := make(chan struct{})
	issued := make(chan error, 1)
	go func() {
		// cert-manager issues some time after the install; meanwhile the
		// manager's pods cannot mount the Secret, and dev-up waits, saying
		// why. Issue a few seconds after the kubelet first says so.
		var err error
		for {
			select {
			case <-stopIssuer:
				issued <- fmt.Errorf("not issued: %v", err)
				return
			case <-time.After(time.Second):
			}
			if !certMountFailed(ctx) {
				err = fmt.Errorf("no FailedMount event for Secret %s yet", certSecret)
				continue
			}
			time.Sleep(3 * time.Second)
			if err = ca.issue(ctx, 2); err == nil {
				err = ca.inject(ctx)
			}
			if err == nil {
				issued <- nil
				return
			}
		}
	}()
	out, err := hackOutput("dev-up.sh", "SLUICE_HELM_ARGS=--set certManager.enabled=true --set certManager.issuerRef.kind=ClusterIssuer --set certManager.issuerRef.name="+issuerName)
	close(stopIssuer)
	if issueErr := <-issued; err != nil || issueErr != nil {
		t.Fatalf("dev-up with certManager.enabled=true: %v (the issuer: %v)", err, issueErr)
	}
	if !strings.Contains(out, "certificate") {
		t.Errorf("dev-up said nothing of the certificate it waited for:\n%s", out)
	}
	serials, err := servedSerials(ctx)
	if err != nil || len(serials) != 2 {
		t.Fatalf("served certificates %v (%v), want 2 replicas serving serial 2", serials, err)
	}
	for pod, s := range serials {
		if s != 2 {
			t.Errorf("pod %s serves serial %d, want the issued 2", pod, s)
		}
	}

	// Renewal mid-run.
	ns := namespace(t)
	applied := applyEvery100ms(ctx, ns)
	if err := ca.issue(ctx, 3); err != nil {
		t.Fatal(err)
	}
	renewed := time.Now()
	// The kubelet refreshes a mounted Secret at its next sync of the pod
	// (within about a minute and a half).
	framework.Eventually(t, 4*time.Minute, 100*time.Millisecond, "both replicas to serve the renewed certificate", func() (bool, error) {
		serials, err := servedSerials(ctx)
		if err != nil {
			return false, err
		}
		for _, s := range serials {
			if s != 3 {
				return false, fmt.Errorf("serving %v", serials)
			}
		}
		return len(serials) == 2, nil
	})
	took := time.Since(renewed)
	time.Sleep(2 * time.Second)
	n := applied()
	if len(n.refused) > 0 {
		t.Errorf("while the certificate was replaced, %d sluice Jobs were created and %d refused:\n%s", n.created, len(n.refused), strings.Join(n.refused, "\n"))
	}
	t.Logf("renewed certificate served by both replicas %s after it was written; %d sluice Jobs created meanwhile, none refused", took.Round(100*time.Millisecond), n.created)
	var secret corev1.Secret
	if err := kube.Get(ctx, client.ObjectKey{Namespace: releaseNS, Name: certSecret}, &secret); err != nil || !bytes.Equal(secret.Data["ca.crt"], ca.caPEM) {
		t.Errorf("Secret %s: %v; want the issuer's CA in ca.crt", certSecret, err)
	}
}
