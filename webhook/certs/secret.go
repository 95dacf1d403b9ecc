package certs

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/open-policy-agent/cert-controller/pkg/rotator"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	ctrl "sigs.k8s.io/controller-runtime"
)

const (
	caName         = "sluice-webhook-ca"
	caOrganization = "sluice.dev"
	// backdate makes new certificates valid from a little before now, for
	// an API server whose clock is behind ours.
	backdate = time.Hour
	// maxConflicts bounds how often one check re-reads the Secret after
	// another writer changed it first.
	maxConflicts = 5
)

// serverAuth is what a serving certificate is for.
var serverAuth = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}

// newIssuer returns a CertRotator configured only for its crypto
// (CreateCACert, CreateCertPEM); it is never added to a manager.
func newIssuer(dnsNames []string) rotator.CertRotator {
	return rotator.CertRotator{
		CAName:         caName,
		CAOrganization: caOrganization,
		DNSName:        dnsNames[0],
		ExtraDNSNames:  dnsNames[1:],
		ExtKeyUsages:   &serverAuth,
	}
}

// ensureSecret returns the Secret once it holds a CA and a serving
// certificate valid beyond the renewal window, issuing what it lacks. The
// Update carries the resourceVersion read, so that when another replica
// wrote first, the Update fails with a Conflict and the Secret is read
// again: what the other replica wrote is then adopted, not overwritten.
func (r *Rotator) ensureSecret(ctx context.Context) (*corev1.Secret, error) {
	log := ctrl.LoggerFrom(ctx)
	key := r.opts.Secret
	for attempt := 1; ; attempt++ {
		secret := &corev1.Secret{}
		if err := r.reader.Get(ctx, key, secret); err != nil {
			if apierrors.IsNotFound(err) {
				return nil, fmt.Errorf("secret %s not found: the sluice Helm chart creates it and the manager fills it; helm upgrade restores it", key)
			}
			return nil, fmt.Errorf("getting secret %s: %w", key, err)
		}
		now := time.Now()
		ca, renewCert, reason := r.plan(secret.Data, now)
		if !renewCert {
			log.V(4).Info("Webhook certificate up to date")
			return secret, nil
		}
		newCA := ca == nil
		if err := r.issue(secret, ca, now); err != nil {
			return nil, fmt.Errorf("issuing a certificate for secret %s: %w", key, err)
		}
		err := r.writer.Update(ctx, secret)
		switch {
		case err == nil:
			log.Info("Issued webhook certificate", "newCA", newCA, "reason", reason, "dnsNames", r.opts.DNSNames, "notAfter", now.Add(CertValidity))
			return secret, nil
		case apierrors.IsConflict(err) && attempt < maxConflicts:
			log.V(2).Info("Secret changed while issuing a certificate; reading it again", "attempt", attempt)
		default:
			return nil, fmt.Errorf("writing the certificate to secret %s: %w", key, err)
		}
	}
}

// plan decides what the Secret's data lacks at time now. It returns the CA
// to keep (nil when a new one is needed), whether a new serving certificate
// is needed (always, with a new CA), and why.
func (r *Rotator) plan(data map[string][]byte, now time.Time) (ca *rotator.KeyPairArtifacts, renewCert bool, reason string) {
	horizon := now.Add(RenewBefore)
	caPEM := data[CACertKey]
	ca, err := parseCA(caPEM, data[CAKeyKey])
	if err == nil {
		// The CA signs itself and carries its name, so it verifies as its
		// own chain; this also checks that ca.key belongs to ca.crt.
		_, err = rotator.ValidCert(caPEM, caPEM, data[CAKeyKey], caName, nil, horizon)
	}
	if err != nil {
		return nil, true, fmt.Sprintf("CA unusable or expiring before %s: %v", horizon.Format(time.DateOnly), err)
	}
	for _, name := range r.opts.DNSNames {
		if _, err := rotator.ValidCert(caPEM, data[CertKey], data[KeyKey], name, &serverAuth, horizon); err != nil {
			return ca, true, fmt.Sprintf("serving certificate unusable for %s or expiring before %s: %v", name, horizon.Format(time.DateOnly), err)
		}
	}
	return ca, false, ""
}

// issue writes into the Secret a new serving certificate signed by ca, and
// a new CA first when ca is nil. Other keys of the Secret are kept.
func (r *Rotator) issue(secret *corev1.Secret, ca *rotator.KeyPairArtifacts, now time.Time) error {
	begin := now.Add(-backdate)
	if ca == nil {
		var err error
		if ca, err = r.issuer.CreateCACert(begin, now.Add(CAValidity)); err != nil {
			return fmt.Errorf("creating a CA: %w", err)
		}
		// The CA being replaced stays in the caBundle while it is valid:
		// other replicas serve a certificate it signed until their next
		// check, and calls to them must not fail meanwhile.
		if old := secret.Data[CACertKey]; validCAPEM(old, now) {
			setKey(secret, PreviousCACertKey, old)
		} else {
			delete(secret.Data, PreviousCACertKey)
		}
	}
	certPEM, keyPEM, err := r.issuer.CreateCertPEM(ca, begin, now.Add(CertValidity))
	if err != nil {
		return fmt.Errorf("creating a serving certificate: %w", err)
	}
	setKey(secret, CACertKey, ca.CertPEM)
	setKey(secret, CAKeyKey, ca.KeyPEM)
	setKey(secret, CertKey, certPEM)
	setKey(secret, KeyKey, keyPEM)
	return nil
}

func setKey(secret *corev1.Secret, key string, value []byte) {
	if secret.Data == nil {
		secret.Data = map[string][]byte{}
	}
	secret.Data[key] = value
}

// validCAPEM reports whether pemData is a CA certificate still valid at now.
func validCAPEM(pemData []byte, now time.Time) bool {
	block, _ := pem.Decode(pemData)
	if block == nil || block.Type != "CERTIFICATE" {
		return false
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	return err == nil && cert.IsCA && now.Before(cert.NotAfter)
}

// caBundle is what the webhook configurations must trust at time now: the
// Secret's CA and, while it is valid, the CA it replaced.
func caBundle(data map[string][]byte, now time.Time) []byte {
	bundle := data[CACertKey]
	if prev := data[PreviousCACertKey]; validCAPEM(prev, now) && !bytes.Equal(prev, bundle) {
		bundle = append(append(slices.Clip(bundle), '\n'), prev...)
	}
	return bundle
}

// parseCA reads a CA as CreateCACert writes it: a PEM certificate and a
// PKCS#1 RSA key, which CreateCertPEM needs to sign.
func parseCA(certPEM, keyPEM []byte) (*rotator.KeyPairArtifacts, error) {
	if len(certPEM) == 0 || len(keyPEM) == 0 {
		return nil, errors.New(CACertKey + " or " + CAKeyKey + " is empty")
	}
	block, _ := pem.Decode(certPEM)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, errors.New(CACertKey + " holds no PEM certificate")
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parsing %s: %w", CACertKey, err)
	}
	if !cert.IsCA {
		return nil, errors.New(CACertKey + " is not a CA certificate")
	}
	block, _ = pem.Decode(keyPEM)
	if block == nil {
		return nil, errors.New(CAKeyKey + " holds no PEM key")
	}
	key, err := x509.ParsePKCS1PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parsing %s as a PKCS#1 RSA key: %w", CAKeyKey, err)
	}
	return &rotator.KeyPairArtifacts{Cert: cert, Key: key, CertPEM: certPEM, KeyPEM: keyPEM}, nil
}
