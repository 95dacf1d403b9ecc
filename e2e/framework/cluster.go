package framework

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"
)

// Cluster is the full local cluster (hack/dev-up.sh: real control plane,
// kwok nodes, storage) with sluice installed from its Helm chart, except
// that the chart's manager and scheduler run as processes of the test,
// authenticated as the chart's ServiceAccounts, so that tests can kill and
// restart them.
type Cluster struct {
	Config     *rest.Config
	Client     client.Client
	Kubeconfig string
	Manager    *Manager
	// ManagerConfig authenticates as the manager does: the chart's ServiceAccount.
	ManagerConfig *rest.Config
	// Scheduler is the chart's secondary scheduler (profile sluice-scheduler).
	Scheduler   *Process
	stateDir    string
	managerArgs []string // the chart's, without addresses

	mu       sync.Mutex
	restarts []window // when RestartAPIServer had the API server down
}

// Process is a binary from bin/ run by the tests; it is ready when its
// readiness URL answers 200.
type Process struct {
	Binary   string
	Log      string
	args     []string
	readyURL string
	client   *http.Client
	cmd      *exec.Cmd
	exited   chan struct{}
}

// Manager is the sluice manager process under test.
type Manager struct {
	*Process
	MetricsAddr, WebhookAddr string
}

// ClusterName is the e2e cluster's kwokctl name.
const ClusterName = "sluice-e2e"

// StartCluster brings up the e2e cluster (its own kwokctl cluster and state
// directory, so it never disturbs the demo cluster) and a sluice manager.
func StartCluster() (*Cluster, error) {
	root := RepoRoot()
	state := filepath.Join(root, ".kwok-e2e")
	env := append(os.Environ(), "SLUICE_CLUSTER="+ClusterName, "SLUICE_STATE_DIR="+state)
	// Always a fresh cluster: one kept from an earlier run (SLUICE_E2E_KEEP)
	// may run an older scheduler or configuration.
	down := exec.Command("bash", filepath.Join(root, "hack", "dev-down.sh"))
	down.Env, down.Stdout, down.Stderr = env, os.Stderr, os.Stderr
	if err := down.Run(); err != nil {
		return nil, fmt.Errorf("hack/dev-down.sh failed: %w", err)
	}
	cmd := exec.Command("bash", filepath.Join(root, "hack", "dev-up.sh"))
	// The cluster's own scheduler serves only default-scheduler
	// (hack/kwok/scheduler-config.yaml): the chart's scheduler, started
	// below, is the one sluice-scheduler.
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
	if err := c.installChart(); err != nil {
		return nil, err
	}
	return c, nil
}

func freeAddrs(n int) ([]string, error) {
	addrs := make([]string, n)
	for i := range addrs {
		var err error
		if addrs[i], err = freeAddr(); err != nil {
			return nil, err
		}
	}
	return addrs, nil
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// RealNode is the local cluster's real node (hack/realnode.sh): pods
// without sim.sluice.dev/* annotations run there, in real containers.
const RealNode = "sluice-real-1"

// The chart's release in the e2e cluster; the manager runs as its ServiceAccount.
const (
	ChartRelease   = "sluice"
	ChartNamespace = "sluice-system"
	// ManagerServiceAccount and SchedulerServiceAccount are the chart's
	// ServiceAccounts; its Deployments and ConfigMap have the same names.
	ManagerServiceAccount   = ChartRelease + "-webhook"
	SchedulerServiceAccount = ChartRelease + "-scheduler"
)

// ChartE2EValues are the --set-string arguments the e2e installation adds:
// kwok would only simulate the chart's own pods, so a node selector that no
// node matches keeps them Pending; the tests run the binaries themselves.
var ChartE2EValues = []string{
	"--set-string", "webhook.nodeSelector.sluice-e2e/no-such-node=true",
	"--set-string", "scheduler.nodeSelector.sluice-e2e/no-such-node=true",
}

// installChart installs the Helm chart (with the webhook configurations
// calling this machine) and runs the chart's manager and scheduler as
// processes with the arguments and configuration of the installed
// Deployments and ConfigMap, authenticated as the chart's ServiceAccounts:
// every e2e test then exercises the chart's RBAC and the manager's built-in
// certificate rotation, not an admin's rights.
func (c *Cluster) installChart() error {
	addrs, err := freeAddrs(4)
	if err != nil {
		return err
	}
	_, port, _ := net.SplitHostPort(addrs[0])
	// helm install, as a cluster admin would. The manager's certificate
	// names a host, not an address: the API server resolves localhost to
	// the loopback listener below. The chart's pods would only be simulated
	// by kwok: a node selector no node matches keeps them Pending.
	if _, err := Helm(append([]string{"install", ChartRelease, ChartDir(), "--kubeconfig", c.Kubeconfig,
		"--namespace", ChartNamespace, "--create-namespace",
		"--set", "webhook.url=https://localhost:" + port}, ChartE2EValues...)...); err != nil {
		return err
	}
	ctx := context.Background()
	manager, scheduler := &appsv1.Deployment{}, &appsv1.Deployment{}
	schedulerConfig := &corev1.ConfigMap{}
	for name, obj := range map[string]client.Object{ManagerServiceAccount: manager, SchedulerServiceAccount: scheduler} {
		if err := c.Client.Get(ctx, client.ObjectKey{Namespace: ChartNamespace, Name: name}, obj); err != nil {
			return fmt.Errorf("the chart's Deployment %s: %w", name, err)
		}
	}
	if err := c.Client.Get(ctx, client.ObjectKey{Namespace: ChartNamespace, Name: SchedulerServiceAccount}, schedulerConfig); err != nil {
		return fmt.Errorf("the chart's scheduler configuration: %w", err)
	}

	if c.ManagerConfig, err = ServiceAccountConfig(ctx, c.Config, ChartNamespace, ManagerServiceAccount); err != nil {
		return err
	}
	kubeconfig := filepath.Join(c.stateDir, "e2e-manager.kubeconfig")
	if err := WriteKubeconfig(kubeconfig, c.ManagerConfig); err != nil {
		return err
	}
	// The chart's arguments, but listening on loopback ports of this machine.
	c.managerArgs = []string{"--kubeconfig", kubeconfig, "--webhook-host", "127.0.0.1", "--cert-dns-names=localhost", "--v=2"}
	for _, a := range manager.Spec.Template.Spec.Containers[0].Args {
		name, _, _ := strings.Cut(a, "=")
		switch name {
		case "--webhook-port", "--metrics-bind-address", "--health-probe-bind-address", "--cert-dns-names", "--v":
		default:
			c.managerArgs = append(c.managerArgs, a)
		}
	}
	c.Manager = c.newManager("e2e-manager.log", addrs[0], addrs[1], addrs[2])
	if err := c.Manager.Start(); err != nil {
		return err
	}
	c.Scheduler, err = c.startScheduler(ctx, scheduler, schedulerConfig.Data["config.yaml"], addrs[3])
	return err
}

// startScheduler runs bin/sluice-scheduler with the chart's configuration,
// as the chart's scheduler ServiceAccount, serving on addr.
func (c *Cluster) startScheduler(ctx context.Context, d *appsv1.Deployment, config, addr string) (*Process, error) {
	saConfig, err := ServiceAccountConfig(ctx, c.Config, ChartNamespace, SchedulerServiceAccount)
	if err != nil {
		return nil, err
	}
	kubeconfig := filepath.Join(c.stateDir, "e2e-scheduler.kubeconfig")
	if err := WriteKubeconfig(kubeconfig, saConfig); err != nil {
		return nil, err
	}
	// In the pod the scheduler uses its in-cluster ServiceAccount; here the
	// same identity comes from a kubeconfig.
	var cfg map[string]any
	if err := yaml.Unmarshal([]byte(config), &cfg); err != nil {
		return nil, fmt.Errorf("the chart's scheduler configuration: %w", err)
	}
	cfg["clientConnection"] = map[string]any{"kubeconfig": kubeconfig}
	data, err := yaml.Marshal(cfg)
	if err != nil {
		return nil, err
	}
	configFile := filepath.Join(c.stateDir, "e2e-scheduler.yaml")
	if err := os.WriteFile(configFile, data, 0o644); err != nil {
		return nil, err
	}
	host, port, _ := net.SplitHostPort(addr)
	args := []string{"--bind-address", host, "--secure-port", port}
	for _, a := range d.Spec.Template.Spec.Containers[0].Args {
		name, _, _ := strings.Cut(a, "=")
		if name != "--config" && name != "--v" {
			args = append(args, a)
		}
	}
	p := &Process{
		Binary: "sluice-scheduler", Log: filepath.Join(c.stateDir, "e2e-scheduler.log"),
		args:     append(args, "--config", configFile, "--v=2"),
		readyURL: "https://" + addr + "/readyz",
		// kube-scheduler serves a self-signed certificate it makes at start.
		client: &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}, //nolint:gosec // loopback readiness probe
	}
	return p, p.Start()
}

// newManager makes (without starting it) a manager process with the chart's
// arguments, serving webhooks, metrics and probes on the given addresses.
func (c *Cluster) newManager(log, webhookAddr, metricsAddr, healthAddr string) *Manager {
	_, port, _ := net.SplitHostPort(webhookAddr)
	args := append(slices.Clone(c.managerArgs), "--webhook-port", port,
		"--metrics-bind-address", metricsAddr, "--health-probe-bind-address", healthAddr)
	return &Manager{MetricsAddr: metricsAddr, WebhookAddr: webhookAddr, Process: &Process{
		Binary: "sluice-webhook", Log: filepath.Join(c.stateDir, log),
		args: args, readyURL: "http://" + healthAddr + "/readyz", client: http.DefaultClient,
	}}
}

// NewManagerReplica makes (without starting it) one more replica of the
// manager, as another pod of the chart's Deployment, on ports of its own
// and logging to e2e-manager-<name>.log. The webhook configurations keep
// calling the first.
func (c *Cluster) NewManagerReplica(name string) (*Manager, error) {
	addrs, err := freeAddrs(3)
	if err != nil {
		return nil, err
	}
	return c.newManager("e2e-manager-"+name+".log", addrs[0], addrs[1], addrs[2]), nil
}

// ServiceAccountConfig returns a client configuration for the cluster in cfg
// that authenticates as a ServiceAccount, with a token from the TokenRequest
// API (as a pod of that ServiceAccount would have).
func ServiceAccountConfig(ctx context.Context, cfg *rest.Config, namespace, name string) (*rest.Config, error) {
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	tr, err := cs.CoreV1().ServiceAccounts(namespace).CreateToken(ctx, name, &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr.To[int64](4 * 3600)},
	}, metav1.CreateOptions{})
	if err != nil {
		return nil, fmt.Errorf("requesting a token of ServiceAccount %s/%s: %w", namespace, name, err)
	}
	sa := rest.AnonymousClientConfig(cfg)
	sa.BearerToken = tr.Status.Token
	return sa, nil
}

// WriteKubeconfig writes a kubeconfig file for a token-authenticated cfg.
func WriteKubeconfig(path string, cfg *rest.Config) error {
	ca := cfg.CAData
	if len(ca) == 0 && cfg.CAFile != "" {
		var err error
		if ca, err = os.ReadFile(cfg.CAFile); err != nil {
			return err
		}
	}
	kc := clientcmdapi.NewConfig()
	kc.Clusters["e2e"] = &clientcmdapi.Cluster{Server: cfg.Host, CertificateAuthorityData: ca}
	kc.AuthInfos["e2e"] = &clientcmdapi.AuthInfo{Token: cfg.BearerToken}
	kc.Contexts["e2e"] = &clientcmdapi.Context{Cluster: "e2e", AuthInfo: "e2e"}
	kc.CurrentContext = "e2e"
	return clientcmd.WriteToFile(*kc, path)
}

// Start starts the process and waits until it is ready.
func (p *Process) Start() error {
	logFile, err := os.OpenFile(p.Log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	p.cmd = exec.Command(filepath.Join(RepoRoot(), "bin", p.Binary), p.args...)
	p.cmd.Stdout, p.cmd.Stderr = logFile, logFile
	if err := p.cmd.Start(); err != nil {
		return fmt.Errorf("starting bin/%s (run `make build`): %w", p.Binary, err)
	}
	p.exited = make(chan struct{})
	go func() { _ = p.cmd.Wait(); logFile.Close(); close(p.exited) }()
	deadline := time.Now().Add(Timeout)
	for {
		resp, err := p.client.Get(p.readyURL)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-p.exited:
			return fmt.Errorf("%s exited during start-up; see %s", p.Binary, p.Log)
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not ready after %s; see %s", p.Binary, Timeout, p.Log)
		}
		time.Sleep(Interval)
	}
}

// Running reports whether the process was started and has not exited.
func (p *Process) Running() bool {
	if p.cmd == nil {
		return false
	}
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// Kill ends the process abruptly (SIGKILL), as a crash or node loss would.
func (p *Process) Kill() {
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.exited
}

// Stop ends the process gracefully.
func (p *Process) Stop() {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(10 * time.Second):
		p.Kill()
	}
}

// Metric returns the value of a sample from the manager's metrics
// endpoint, named with its labels as the endpoint writes them, e.g.
// "sluice_task_releases_total" or `leader_election_master_status{name="x"}`.
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

// LeaderElectionID is the name of the manager's leader election Lease.
const LeaderElectionID = "sluice-controller.sluice.dev"

// Leader reports whether the manager holds the controller's lease, by its
// own account (controller-runtime's leader_election_master_status).
func (m *Manager) Leader() bool {
	v, err := m.Metric(`leader_election_master_status{name="` + LeaderElectionID + `"}`)
	return err == nil && v == 1
}

// Stop stops the manager and the scheduler and, unless SLUICE_E2E_KEEP is
// set, removes the cluster.
func (c *Cluster) Stop() error {
	c.Manager.Stop()
	if c.Scheduler != nil {
		c.Scheduler.Stop()
	}
	if os.Getenv("SLUICE_E2E_KEEP") != "" {
		return nil
	}
	cmd := exec.Command("bash", filepath.Join(RepoRoot(), "hack", "dev-down.sh"))
	cmd.Env = append(os.Environ(), "SLUICE_CLUSTER="+ClusterName, "SLUICE_STATE_DIR="+c.stateDir) // as in StartCluster
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	return cmd.Run()
}

// Refusals returns the lines of the process's log that report a request the
// API server refused for lack of permission.
func (p *Process) Refusals() ([]string, error) { return p.LogLines("forbidden") }

// LogLines returns the lines of the process's log that contain any of
// words, ignoring case.
func (p *Process) LogLines(words ...string) ([]string, error) {
	data, err := os.ReadFile(p.Log)
	if err != nil {
		return nil, err
	}
	var lines []string
	for _, line := range strings.Split(string(data), "\n") {
		if slices.ContainsFunc(words, func(w string) bool { return strings.Contains(strings.ToLower(line), strings.ToLower(w)) }) {
			lines = append(lines, line)
		}
	}
	return lines, nil
}

// PeakRSS returns the process's peak resident memory so far (VmHWM), for
// reports such as the e2e run's; it is not asserted anywhere.
func (p *Process) PeakRSS() (string, error) {
	_, peak, err := ProcessMemory(strconv.Itoa(p.cmd.Process.Pid))
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("%.0f MiB", peak), nil
}
