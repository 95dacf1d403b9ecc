// Package certs lets the sluice manager issue and rotate its own webhook
// serving certificate, for installations without cert-manager.
//
// A Rotator keeps a CA and a serving certificate in one Secret, under the
// keys cert-manager and cert-controller use (ca.crt, ca.key, tls.crt,
// tls.key). It serves the certificate from memory through GetCertificate and
// copies the CA into the caBundle of every webhook of one
// MutatingWebhookConfiguration and one ValidatingWebhookConfiguration.
//
// It addresses these three objects only by name, and only reads and updates
// them, so that the manager's RBAC can be limited to these rules (a Role
// in the Secret's namespace and a ClusterRole):
//
//	rules:
//	- apiGroups: [""]
//	  resources: ["secrets"]
//	  resourceNames: ["<secret>"]
//	  verbs: ["get", "update"]
//	- apiGroups: ["admissionregistration.k8s.io"]
//	  resources: ["mutatingwebhookconfigurations", "validatingwebhookconfigurations"]
//	  resourceNames: ["<configuration>"]
//	  verbs: ["get", "update"]
//
// Hence it never lists, watches or creates. Reads go straight to the API
// server through a non-caching reader (the manager's GetAPIReader), so no
// informer on Secrets or webhook configurations is started, and the
// configurations and the Secret must already exist: the Helm chart creates
// the Secret empty and the Rotator fills it. Instead of watching, the Rotator
// checks all three objects every CheckInterval, which also picks up another
// replica's rotation and a caBundle reset by helm upgrade.
//
// Every replica serves webhooks, so every replica runs a Rotator: it needs
// no leader election. When several replicas find the Secret lacking at once,
// the first Update wins on resourceVersion; the others get a Conflict,
// re-read the Secret and adopt what the winner wrote, so a CA that was just
// written is never replaced by another.
//
// When the CA is replaced (90 days before it expires, or when it is
// unusable), the other replicas keep serving a certificate of the old CA
// until their next check, for at most about CheckInterval. So that calls
// reaching them do not fail meanwhile, the replaced CA, while still valid,
// is kept in the Secret (ca-previous.crt) and in the caBundle next to the
// new one. An unusable CA (deleted, garbage) cannot be kept: then calls to
// the other replicas fail until their next check.
//
// Only the crypto comes from github.com/open-policy-agent/cert-controller:
// its AddRotator would start a cache of the namespace's Secrets, which needs
// list and watch.
package certs

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/open-policy-agent/cert-controller/pkg/rotator"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/manager"
)

// Keys of the Secret.
const (
	CACertKey = "ca.crt"
	CAKeyKey  = "ca.key"
	CertKey   = corev1.TLSCertKey
	KeyKey    = corev1.TLSPrivateKeyKey
	// PreviousCACertKey holds the CA a new one replaced, kept in the
	// caBundle until it expires.
	PreviousCACertKey = "ca-previous.crt"
)

const (
	// CAValidity is how long a new CA is valid.
	CAValidity = 10 * 365 * 24 * time.Hour
	// CertValidity is how long a new serving certificate is valid.
	CertValidity = 365 * 24 * time.Hour
	// RenewBefore is how long before it expires a CA or serving certificate
	// is replaced.
	RenewBefore = 90 * 24 * time.Hour
	// DefaultCheckInterval is how often the Secret and the webhook
	// configurations are checked when Options.CheckInterval is 0.
	DefaultCheckInterval = 30 * time.Second

	// firstRetry is the delay before the first retry of a failed check; it
	// doubles up to the check interval.
	firstRetry = time.Second
)

var (
	secretPath        = field.NewPath("secret")
	dnsNamesPath      = field.NewPath("dnsNames")
	mutatingPath      = field.NewPath("mutatingWebhookConfiguration")
	validatingPath    = field.NewPath("validatingWebhookConfiguration")
	checkIntervalPath = field.NewPath("checkInterval")
)

var (
	_ manager.Runnable               = &Rotator{}
	_ manager.LeaderElectionRunnable = &Rotator{}
	_ healthz.Checker                = (&Rotator{}).ReadyCheck
)

// Options configure a Rotator.
type Options struct {
	// Secret holds ca.crt, ca.key, tls.crt and tls.key. It must exist.
	Secret types.NamespacedName
	// DNSNames are the names the serving certificate is valid for, such as
	// those of the webhook Service; the first is its common name.
	DNSNames []string
	// MutatingWebhookConfiguration and ValidatingWebhookConfiguration name
	// the configurations whose webhooks get the CA as caBundle.
	MutatingWebhookConfiguration   string
	ValidatingWebhookConfiguration string
	// CheckInterval is how often the Secret and the configurations are
	// checked; 0 means DefaultCheckInterval.
	CheckInterval time.Duration
}

// Validate returns what is wrong with the options, with paths named after
// their fields (secret, dnsNames, ...).
func (o Options) Validate() field.ErrorList {
	var errs field.ErrorList
	switch {
	case o.Secret.Name == "":
		errs = append(errs, field.Required(secretPath, "the Secret holding the certificates, such as sluice-system/sluice-webhook-cert"))
	case o.Secret.Namespace == "":
		errs = append(errs, field.Required(secretPath, "the namespace of Secret "+o.Secret.Name))
	default:
		for _, msg := range validation.IsDNS1123Label(o.Secret.Namespace) {
			errs = append(errs, field.Invalid(secretPath, o.Secret.String(), "namespace: "+msg))
		}
		for _, msg := range validation.IsDNS1123Subdomain(o.Secret.Name) {
			errs = append(errs, field.Invalid(secretPath, o.Secret.String(), "name: "+msg))
		}
	}
	if len(o.DNSNames) == 0 {
		errs = append(errs, field.Required(dnsNamesPath, "the names the API server uses to reach the webhook, such as sluice-webhook.sluice-system.svc"))
	}
	for i, name := range o.DNSNames {
		path := dnsNamesPath.Index(i)
		switch {
		case net.ParseIP(name) != nil:
			errs = append(errs, field.Invalid(path, name, "must be a DNS name: IP addresses are not supported"))
		case slices.Index(o.DNSNames, name) < i:
			errs = append(errs, field.Duplicate(path, name))
		default:
			for _, msg := range validation.IsDNS1123Subdomain(name) {
				errs = append(errs, field.Invalid(path, name, msg))
			}
		}
	}
	for _, c := range []struct {
		path *field.Path
		name string
	}{{mutatingPath, o.MutatingWebhookConfiguration}, {validatingPath, o.ValidatingWebhookConfiguration}} {
		if c.name == "" {
			errs = append(errs, field.Required(c.path, "the name of a webhook configuration of sluice"))
			continue
		}
		for _, msg := range validation.IsDNS1123Subdomain(c.name) {
			errs = append(errs, field.Invalid(c.path, c.name, msg))
		}
	}
	if o.CheckInterval < 0 {
		errs = append(errs, field.Invalid(checkIntervalPath, o.CheckInterval.String(), "must not be negative (0 means 30s)"))
	}
	return errs
}

// Rotator issues, rotates and serves the webhook certificate, and injects
// its CA into the webhook configurations. It is a manager.Runnable.
type Rotator struct {
	reader client.Reader
	writer client.Writer
	opts   Options
	// issuer is used only for its crypto: CreateCACert and CreateCertPEM.
	issuer rotator.CertRotator

	serving atomic.Pointer[servingCert]
	// ready is set once a check loaded the certificate and injected its CA
	// into both configurations, and stays set: a later failure leaves the
	// replica serving, so that a configuration problem cannot take every
	// replica out of the Service at once.
	ready atomic.Bool

	mu      sync.Mutex
	lastErr error // of the last check, for ReadyCheck
}

// servingCert is the certificate served, with the PEM it was loaded from.
type servingCert struct {
	certPEM, keyPEM []byte
	cert            *tls.Certificate
}

// New returns a Rotator that reads with reader and writes with writer. The
// reader must not cache (a cache would need list and watch): use the
// manager's GetAPIReader, and its GetClient as writer.
func New(reader client.Reader, writer client.Writer, opts Options) (*Rotator, error) {
	if reader == nil || writer == nil {
		return nil, errors.New("certificate rotation needs both a reader and a writer")
	}
	if errs := opts.Validate(); len(errs) > 0 {
		return nil, fmt.Errorf("invalid certificate rotation options: %w", errs.ToAggregate())
	}
	if opts.CheckInterval == 0 {
		opts.CheckInterval = DefaultCheckInterval
	}
	opts.DNSNames = slices.Clone(opts.DNSNames)
	return &Rotator{reader: reader, writer: writer, opts: opts, issuer: newIssuer(opts.DNSNames)}, nil
}

// NeedLeaderElection returns false: every replica serves webhooks, so every
// replica needs the certificate.
func (r *Rotator) NeedLeaderElection() bool { return false }

// Start checks the Secret and the webhook configurations at once and then
// every CheckInterval, until ctx is done. A failed check is logged and
// retried after a delay that starts at one second and doubles up to
// CheckInterval. Start returns nil when ctx is done and never an error, not
// even when the Secret is missing: the replica then stays unready, says why
// in its logs and readiness check, and recovers without a restart once the
// Secret is restored (helm upgrade), instead of crash-looping and taking the
// controller down with it.
func (r *Rotator) Start(ctx context.Context) error {
	log := ctrl.LoggerFrom(ctx).WithName("cert-rotation").WithValues("secret", klog.KRef(r.opts.Secret.Namespace, r.opts.Secret.Name))
	ctx = ctrl.LoggerInto(ctx, log)
	log.Info("Starting webhook certificate rotation", "dnsNames", r.opts.DNSNames, "checkInterval", r.opts.CheckInterval)
	retry := min(firstRetry, r.opts.CheckInterval)
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			log.Info("Stopping webhook certificate rotation")
			return nil
		case <-timer.C:
		}
		next := r.opts.CheckInterval
		if err := r.check(ctx); err != nil {
			if ctx.Err() != nil {
				continue
			}
			log.Error(err, "Webhook certificate check failed", "retryAfter", retry)
			next, retry = retry, min(2*retry, r.opts.CheckInterval)
		} else {
			retry = min(firstRetry, r.opts.CheckInterval)
		}
		// Replicas started together spread their checks.
		timer.Reset(wait.Jitter(next, 0.1))
	}
}

// GetCertificate returns the serving certificate; it fits
// tls.Config.GetCertificate. It fails until a check has loaded one.
func (r *Rotator) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	if s := r.serving.Load(); s != nil {
		return s.cert, nil
	}
	return nil, fmt.Errorf("no webhook serving certificate yet: secret %s has not been loaded", r.opts.Secret)
}

// ReadyCheck is a healthz.Checker: it fails until a check has loaded the
// serving certificate and injected its CA into both webhook
// configurations, and then says why.
func (r *Rotator) ReadyCheck(*http.Request) error {
	if r.ready.Load() {
		return nil
	}
	r.mu.Lock()
	err := r.lastErr
	r.mu.Unlock()
	if err == nil {
		return fmt.Errorf("webhook certificate not ready: secret %s not checked yet", r.opts.Secret)
	}
	return fmt.Errorf("webhook certificate not ready: %w", err)
}

// check makes sure the Secret holds a valid CA and serving certificate,
// serves that certificate, and injects the CA into both configurations.
func (r *Rotator) check(ctx context.Context) error {
	err := r.sync(ctx)
	r.mu.Lock()
	r.lastErr = err
	r.mu.Unlock()
	return err
}

func (r *Rotator) sync(ctx context.Context) error {
	secret, err := r.ensureSecret(ctx)
	if err != nil {
		return err
	}
	if err := r.load(ctx, secret); err != nil {
		return err
	}
	if err := r.injectCABundles(ctx, caBundle(secret.Data, time.Now())); err != nil {
		return err
	}
	if !r.ready.Swap(true) {
		ctrl.LoggerFrom(ctx).Info("Webhook certificate ready")
	}
	return nil
}

// load serves the Secret's certificate, unless it is already served.
func (r *Rotator) load(ctx context.Context, secret *corev1.Secret) error {
	certPEM, keyPEM := secret.Data[CertKey], secret.Data[KeyKey]
	if cur := r.serving.Load(); cur != nil && bytes.Equal(cur.certPEM, certPEM) && bytes.Equal(cur.keyPEM, keyPEM) {
		return nil
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return fmt.Errorf("loading the serving certificate of secret %s: %w", r.opts.Secret, err)
	}
	if cert.Leaf == nil {
		if cert.Leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return fmt.Errorf("loading the serving certificate of secret %s: %w", r.opts.Secret, err)
		}
	}
	r.serving.Store(&servingCert{certPEM: certPEM, keyPEM: keyPEM, cert: &cert})
	ctrl.LoggerFrom(ctx).V(2).Info("Serving webhook certificate", "notBefore", cert.Leaf.NotBefore, "notAfter", cert.Leaf.NotAfter)
	return nil
}
