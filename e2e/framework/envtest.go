package framework

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/go-logr/logr"
	admissionregv1 "k8s.io/api/admissionregistration/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/controller-runtime/pkg/webhook"

	"github.com/sluice-dev/sluice/controller"
	"github.com/sluice-dev/sluice/index"
	sluicewebhook "github.com/sluice-dev/sluice/webhook"
)

// Timeouts shared by the tests.
const (
	Timeout  = 30 * time.Second
	Interval = 50 * time.Millisecond
)

// EnvtestEnv is a real kube-apiserver and etcd (no controllers, no nodes)
// with sluice's webhooks and controller running in-process.
type EnvtestEnv struct {
	Config *rest.Config
	Client client.Client
	env    *envtest.Environment
	cancel context.CancelFunc
	done   chan struct{}
}

// RepoRoot is the module root.
//
// It is found from the working directory (go test runs a test in its
// package's directory), not from this file's compiled-in path, which
// -trimpath replaces with the module path.
func RepoRoot() string {
	dir, err := os.Getwd()
	if err != nil {
		panic(err)
	}
	for d := dir; ; d = filepath.Dir(d) {
		if data, err := os.ReadFile(filepath.Join(d, "go.mod")); err == nil && strings.HasPrefix(string(data), "module github.com/sluice-dev/sluice\n") {
			return d
		}
		if filepath.Dir(d) == d {
			panic("not inside the sluice repository: " + dir)
		}
	}
}

// BinDir is where `make tools` puts the control-plane binaries.
func BinDir() string {
	if dir := os.Getenv("KUBEBUILDER_ASSETS"); dir != "" {
		return dir
	}
	return filepath.Join(RepoRoot(), "bin")
}

// StartEnvtest starts the apiserver, registers the chart's webhook configurations against a
// local webhook server, starts the manager and waits until the webhook answers.
func StartEnvtest() (*EnvtestEnv, error) {
	for _, b := range []string{"etcd", "kube-apiserver"} {
		if _, err := os.Stat(filepath.Join(BinDir(), b)); err != nil {
			return nil, fmt.Errorf("%s not found in %s: run `make tools` first (it builds the pinned control plane)", b, BinDir())
		}
	}
	SetupLogging()
	mutating, validating, err := ChartWebhookConfigurations(ChartRelease, ChartNamespace)
	if err != nil {
		return nil, fmt.Errorf("the chart's webhook configurations: %w", err)
	}
	env := &envtest.Environment{
		BinaryAssetsDirectory: BinDir(),
		WebhookInstallOptions: envtest.WebhookInstallOptions{
			MutatingWebhooks:   []*admissionregv1.MutatingWebhookConfiguration{mutating},
			ValidatingWebhooks: []*admissionregv1.ValidatingWebhookConfiguration{validating},
			LocalServingHost:   "127.0.0.1",
		},
	}
	cfg, err := env.Start()
	if err != nil {
		return nil, fmt.Errorf("starting envtest: %w", err)
	}
	e := &EnvtestEnv{Config: cfg, env: env, done: make(chan struct{})}
	if err := e.startManager(); err != nil {
		_ = env.Stop()
		return nil, err
	}
	return e, nil
}

func (e *EnvtestEnv) startManager() error {
	wo := e.env.WebhookInstallOptions
	mgr, err := ctrl.NewManager(e.Config, ctrl.Options{
		Scheme:  scheme.Scheme,
		Metrics: metricsserver.Options{BindAddress: "0"},
		Cache: cache.Options{ByObject: map[client.Object]cache.ByObject{
			&batchv1.Job{}: {}, &corev1.Pod{}: {},
		}},
		WebhookServer: webhook.NewServer(webhook.Options{Host: wo.LocalServingHost, Port: wo.LocalServingPort, CertDir: wo.LocalServingCertDir}),
	})
	if err != nil {
		return fmt.Errorf("creating manager: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	who, err := sluicewebhook.WhoAmI(ctx, mgr.GetClient())
	if err != nil {
		cancel()
		return err
	}
	tasks, err := index.Setup(ctx, mgr)
	if err != nil {
		cancel()
		return err
	}
	if err := sluicewebhook.SetupWebhooks(mgr, sluicewebhook.Options{ControllerUsername: who, Tasks: tasks}); err != nil {
		cancel()
		return err
	}
	e.cancel = cancel
	r := controller.NewRunReconciler(mgr.GetClient(), mgr.GetEventRecorder("sluice-controller"), controller.Options{})
	if err := r.SetupWithManager(ctx, mgr); err != nil {
		cancel()
		return err
	}
	go func() {
		defer close(e.done)
		if err := mgr.Start(ctx); err != nil {
			ctrl.Log.Error(err, "Manager stopped")
		}
	}()
	c, err := client.New(e.Config, client.Options{Scheme: scheme.Scheme})
	if err != nil {
		cancel()
		return err
	}
	e.Client = c
	if err := WaitForTLS(net.JoinHostPort(wo.LocalServingHost, strconv.Itoa(wo.LocalServingPort)), Timeout); err != nil {
		return err
	}
	// As the manager's readyz does: admission waits for the task index.
	return wait.PollUntilContextTimeout(ctx, Interval, Timeout, true, func(context.Context) (bool, error) { return tasks.Synced(), nil })
}

// Stop stops the manager, then the apiserver.
func (e *EnvtestEnv) Stop() error {
	e.cancel()
	<-e.done
	return e.env.Stop()
}

// WaitForTLS waits until a TLS server answers a handshake at addr.
func WaitForTLS(addr string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		conn, err := tls.DialWithDialer(&net.Dialer{Timeout: time.Second}, "tcp", addr, &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // only checks that it serves
		if err == nil {
			return conn.Close()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("webhook server at %s did not answer within %s: %w", addr, timeout, err)
		}
		time.Sleep(Interval)
	}
}

// SetupLogging sends controller-runtime's logs to klog when
// SLUICE_TEST_VERBOSE is set, and discards them otherwise.
func SetupLogging() {
	if os.Getenv("SLUICE_TEST_VERBOSE") != "" {
		ctrl.SetLogger(klog.NewKlogr())
		return
	}
	ctrl.SetLogger(logr.Discard())
}

// AsUser returns a client that impersonates user (in system:masters, so
// only admission can refuse it): the webhook sees that user's name.
func AsUser(t interface{ Fatal(...any) }, cfg *rest.Config, user string) client.Client {
	cfg = rest.CopyConfig(cfg)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: user, Groups: []string{"system:masters", "system:authenticated"}}
	c, err := client.New(cfg, client.Options{Scheme: scheme.Scheme})
	if err != nil {
		t.Fatal(err)
	}
	return c
}
