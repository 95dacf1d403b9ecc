package framework

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	admissionregv1 "k8s.io/api/admissionregistration/v1"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Cluster is the full local cluster (hack/dev-up.sh: real control plane,
// kwok nodes, storage) with sluice's manager run by the test as a process,
// so that tests can kill and restart it.
type Cluster struct {
	Config     *rest.Config
	Client     client.Client
	Kubeconfig string
	Manager    *Manager
	stateDir   string
}

// Manager is the sluice manager process under test.
type Manager struct {
	cmd                     *exec.Cmd
	args                    []string
	log                     string
	webhookAddr, healthAddr string
	MetricsAddr             string
	exited                  chan struct{}
}

// StartCluster brings up the e2e cluster (its own kwokctl cluster and state
// directory, so it never disturbs the demo cluster) and a sluice manager.
func StartCluster() (*Cluster, error) {
	root := RepoRoot()
	state := filepath.Join(root, ".kwok-e2e")
	env := append(os.Environ(), "SLUICE_CLUSTER=sluice-e2e", "SLUICE_STATE_DIR="+state)
	// Always a fresh cluster: one kept from an earlier run (SLUICE_E2E_KEEP)
	// may run an older scheduler or configuration.
	down := exec.Command("bash", filepath.Join(root, "hack", "dev-down.sh"))
	down.Env, down.Stdout, down.Stderr = env, os.Stderr, os.Stderr
	if err := down.Run(); err != nil {
		return nil, fmt.Errorf("hack/dev-down.sh failed: %w", err)
	}
	cmd := exec.Command("bash", filepath.Join(root, "hack", "dev-up.sh"))
	cmd.Env = append(env, "SKIP_MANAGER=1")
	cmd.Stderr = os.Stderr
	if out, err := cmd.Output(); err != nil {
		return nil, fmt.Errorf("hack/dev-up.sh failed: %w\n%s", err, out)
	}
	c := &Cluster{Kubeconfig: filepath.Join(state, "kubeconfig"), stateDir: state}
	cfg, err := clientcmd.BuildConfigFromFlags("", c.Kubeconfig)
	if err != nil {
		return nil, fmt.Errorf("loading %s: %w", c.Kubeconfig, err)
	}
	cfg.QPS, cfg.Burst = 200, 400
	c.Config = cfg
	if c.Client, err = client.New(cfg, client.Options{Scheme: scheme.Scheme}); err != nil {
		return nil, err
	}
	if err := c.startManager(); err != nil {
		return nil, err
	}
	return c, nil
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

func (c *Cluster) startManager() error {
	certDir := filepath.Join(c.stateDir, "e2e-certs")
	if err := os.MkdirAll(certDir, 0o755); err != nil {
		return err
	}
	ca, err := WriteServingCerts(certDir)
	if err != nil {
		return err
	}
	var addrs [3]string
	for i := range addrs {
		if addrs[i], err = freeAddr(); err != nil {
			return err
		}
	}
	_, port, _ := net.SplitHostPort(addrs[0])
	m := &Manager{
		webhookAddr: addrs[0], MetricsAddr: addrs[1], healthAddr: addrs[2],
		log: filepath.Join(c.stateDir, "e2e-manager.log"),
		args: []string{
			"--kubeconfig", c.Kubeconfig, "--cert-dir", certDir,
			"--webhook-host", "127.0.0.1", "--webhook-port", port,
			"--metrics-bind-address", addrs[1], "--health-probe-bind-address", addrs[2],
			"--leader-elect", "--v=2", "--scheduler-name", "sluice-scheduler",
		},
	}
	c.Manager = m
	if err := m.Start(); err != nil {
		return err
	}
	mutating, validating := WebhookConfigurations("sluice-e2e", func(path string) admissionregv1.WebhookClientConfig {
		url := "https://" + m.webhookAddr + path
		return admissionregv1.WebhookClientConfig{URL: &url, CABundle: ca}
	})
	ctx := context.Background()
	for _, obj := range []client.Object{mutating, validating} {
		_ = c.Client.Delete(ctx, obj)
		if err := c.Client.Create(ctx, obj); err != nil {
			return fmt.Errorf("registering webhook %s: %w", obj.GetName(), err)
		}
	}
	return nil
}

// Start starts the manager and waits until it is ready.
func (m *Manager) Start() error {
	logFile, err := os.OpenFile(m.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	m.cmd = exec.Command(filepath.Join(RepoRoot(), "bin", "sluice-webhook"), m.args...)
	m.cmd.Stdout, m.cmd.Stderr = logFile, logFile
	if err := m.cmd.Start(); err != nil {
		return fmt.Errorf("starting bin/sluice-webhook (run `make build`): %w", err)
	}
	m.exited = make(chan struct{})
	go func() { _ = m.cmd.Wait(); logFile.Close(); close(m.exited) }()
	deadline := time.Now().Add(Timeout)
	for {
		resp, err := http.Get("http://" + m.healthAddr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-m.exited:
			return fmt.Errorf("manager exited during start-up; see %s", m.log)
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("manager not ready after %s; see %s", Timeout, m.log)
		}
		time.Sleep(Interval)
	}
}

// Kill ends the manager abruptly (SIGKILL), as a crash or node loss would.
func (m *Manager) Kill() {
	_ = m.cmd.Process.Signal(syscall.SIGKILL)
	<-m.exited
}

// Stop ends the manager gracefully.
func (m *Manager) Stop() {
	_ = m.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-m.exited:
	case <-time.After(10 * time.Second):
		m.Kill()
	}
}

// Metric returns the value of an unlabelled sample from the manager's
// metrics endpoint, e.g. "sluice_task_releases_total".
func (m *Manager) Metric(name string) (float64, error) {
	resp, err := http.Get("http://" + m.MetricsAddr + "/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(body), "\n") {
		if rest, ok := strings.CutPrefix(line, name+" "); ok {
			return strconv.ParseFloat(strings.TrimSpace(rest), 64)
		}
	}
	return 0, fmt.Errorf("metric %s not found", name)
}

// Stop stops the manager and, unless SLUICE_E2E_KEEP is set, removes the
// cluster.
func (c *Cluster) Stop() error {
	c.Manager.Stop()
	if os.Getenv("SLUICE_E2E_KEEP") != "" {
		return nil
	}
	cmd := exec.Command("bash", filepath.Join(RepoRoot(), "hack", "dev-down.sh"))
	cmd.Env = append(os.Environ(), "SLUICE_CLUSTER=sluice-e2e", "SLUICE_STATE_DIR="+c.stateDir) // as in StartCluster
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	return cmd.Run()
}
