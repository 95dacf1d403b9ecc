package main

// The Argo Workflows peer: Argo's own workflow-controller (bench/peers
// builds it, `make bench-peers`) runs as a child process of the bench
// against the local cluster, namespaced to the contender's namespace, and
// runs the workload as one DAG Workflow whose steps are the same simulated
// pods on the kwok nodes as sluice's. See bench/README.md.

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/informers"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/yaml"
)

// argoSettings is how an Argo contender configures the controller.
type argoSettings int

const (
	argoNone    argoSettings = iota
	argoDefault              // Argo's defaults: nothing beyond what it needs to run
	argoBest                 // the settings Argo's docs give for speed
)

const (
	// argoModule is the peer's module; its version is bench/peers/go.mod's.
	argoModule = "github.com/argoproj/argo-workflows/v4"
	// argoExecutorImage is never pulled: the steps are kwok's simulated
	// pods, whose containers do not run.
	argoExecutorImage = "localhost/sluice/argoexec:v4.0.5"
	// argoHealthAddr is the health (and, with ARGO_PPROF, pprof) server
	// that Argo's main opens on every interface, ":6060", with no flag to
	// change it. The bench holds this port on loopback while the controller
	// runs, so that Argo's listen fails (which it logs and goes on from).
	argoHealthAddr = "127.0.0.1:6060"
	argoPeersDir   = "bench/peers"
)

var workflowsGVR = schema.GroupVersionResource{Group: "argoproj.io", Version: "v1alpha1", Resource: "workflows"}

// argoPeer is the controller's binary and the module it was built from,
// whose manifests give the CRDs.
type argoPeer struct {
	binary string

	once      sync.Once
	err       error
	moduleDir string
	version   string
}

// prepare checks the binary and installs Argo's CRDs, once per bench run.
func (p *argoPeer) prepare(ctx context.Context, kubeconfig string) error {
	p.once.Do(func() { p.err = p.install(ctx, kubeconfig) })
	return p.err
}

func (p *argoPeer) install(ctx context.Context, kubeconfig string) error {
	if _, err := os.Stat(p.binary); err != nil {
		return fmt.Errorf("%s: %w (build it with `make bench-peers`)", p.binary, err)
	}
	// The module as bench/peers/go.mod pins it, from the module cache.
	goCmd := envOr("GO", "go")
	cmd := exec.CommandContext(ctx, goCmd, "mod", "download", "-json", argoModule)
	cmd.Dir = argoPeersDir
	out, err := cmd.Output()
	if err != nil {
		return fmt.Errorf("go mod download %s in %s: %w", argoModule, argoPeersDir, err)
	}
	var mod struct{ Dir, Version string }
	if err := json.Unmarshal(out, &mod); err != nil || mod.Dir == "" {
		return fmt.Errorf("go mod download %s: no module directory in %q", argoModule, out)
	}
	p.moduleDir, p.version = mod.Dir, mod.Version
	// The full CRDs, which Argo's cluster and namespace installs use; too
	// large for a client-side apply's last-applied annotation.
	crds := filepath.Join(p.moduleDir, "manifests", "base", "crds", "full")
	kubectl := filepath.Join("bin", "kubectl")
	if out, err := exec.CommandContext(ctx, kubectl, "--kubeconfig", kubeconfig, "apply", "--server-side", "--force-conflicts", "-k", crds).CombinedOutput(); err != nil {
		return fmt.Errorf("kubectl apply -k %s: %w: %.1000s", crds, err, out)
	}
	names := []string{"workflows", "workflowtaskresults", "workflowtasksets", "workflowtemplates", "clusterworkflowtemplates",
		"cronworkflows", "workflowartifactgctasks", "workfloweventbindings"}
	args := []string{"--kubeconfig", kubeconfig, "wait", "--for", "condition=Established", "--timeout", "60s"}
	for _, n := range names {
		args = append(args, "crd/"+n+".argoproj.io")
	}
	if out, err := exec.CommandContext(ctx, kubectl, args...).CombinedOutput(); err != nil {
		return fmt.Errorf("waiting for Argo's CRDs: %w: %.1000s", err, out)
	}
	return nil
}

// argoController is a running workflow-controller.
type argoController struct {
	cmd     *exec.Cmd
	hold    net.Listener
	logPath string
	exited  chan struct{}
	waitErr error
}

// start starts the controller on namespace ns, logging to logPath.
func (p *argoPeer) start(kubeconfig, ns string, settings argoSettings, logPath string) (*argoController, error) {
	hold, err := net.Listen("tcp", argoHealthAddr)
	if err != nil {
		return nil, fmt.Errorf("holding %s, so that Argo's health server cannot listen on every interface: %w", argoHealthAddr, err)
	}
	logFile, err := os.Create(logPath)
	if err != nil {
		hold.Close()
		return nil, err
	}
	args := []string{"--kubeconfig", kubeconfig, "--namespace", ns, "--namespaced", "--managed-namespace", ns,
		"--executor-image", argoExecutorImage}
	// Argo reads much of its configuration from the environment (ARGO_*
	// for every flag): it gets none of the bench's. Leader election stays
	// on, as in Argo's installs, where the identity is the pod's name.
	env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"), "LEADER_ELECTION_IDENTITY=sluice-bench"}
	if settings == argoBest {
		env = append(env, "DEFAULT_REQUEUE_TIME=100ms", "INFORMER_WRITE_BACK=true")
		args = append(args, "--qps", "5000", "--burst", "10000")
	}
	cmd := exec.Command(p.binary, args...)
	cmd.Env, cmd.Stdout, cmd.Stderr = env, logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		hold.Close()
		return nil, err
	}
	a := &argoController{cmd: cmd, hold: hold, logPath: logPath, exited: make(chan struct{})}
	go func() {
		a.waitErr = cmd.Wait()
		logFile.Close()
		close(a.exited)
	}()
	return a, nil
}

// stop kills the controller by its pid and waits for it.
func (a *argoController) stop() {
	if err := a.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		fmt.Fprintf(os.Stderr, "bench: killing argo workflow-controller (pid %d): %v\n", a.cmd.Process.Pid, err)
	}
	<-a.exited
	a.hold.Close()
}

// died says how the controller ended, with the end of its log.
func (a *argoController) died() error {
	log, _ := os.ReadFile(a.logPath)
	if len(log) > 2000 {
		log = log[len(log)-2000:]
	}
	return fmt.Errorf("argo workflow-controller exited (%v); the end of %s:\n%s", a.waitErr, a.logPath, log)
}

// loopbackOnly fails unless every TCP socket the controller listens on is
// bound to a loopback address.
func (a *argoController) loopbackOnly() error {
	addrs, err := listening(a.cmd.Process.Pid)
	if err != nil {
		return err
	}
	for _, addr := range addrs {
		if !addr.IP.IsLoopback() {
			return fmt.Errorf("argo workflow-controller listens on %s, beyond loopback", addr)
		}
	}
	return nil
}

// listening lists the TCP addresses process pid listens on, from /proc.
func listening(pid int) ([]*net.TCPAddr, error) {
	fdDir := fmt.Sprintf("/proc/%d/fd", pid)
	fds, err := os.ReadDir(fdDir)
	if err != nil {
		return nil, err
	}
	inodes := map[string]bool{}
	for _, fd := range fds {
		link, err := os.Readlink(filepath.Join(fdDir, fd.Name()))
		if inode, ok := strings.CutPrefix(link, "socket:["); err == nil && ok {
			inodes[strings.TrimSuffix(inode, "]")] = true
		}
	}
	var addrs []*net.TCPAddr
	for _, table := range []string{"tcp", "tcp6"} {
		data, err := os.ReadFile(fmt.Sprintf("/proc/%d/net/%s", pid, table))
		if err != nil {
			return nil, err
		}
		for line := range strings.SplitSeq(string(data), "\n") {
			f := strings.Fields(line)
			const listen = "0A"
			if len(f) < 10 || f[3] != listen || !inodes[f[9]] {
				continue
			}
			addr, err := procAddr(f[1])
			if err != nil {
				return nil, err
			}
			addrs = append(addrs, addr)
		}
	}
	return addrs, nil
}

// procAddr decodes /proc/net/tcp's "0100007F:1F90": the address as 32-bit
// words in host (little-endian) order, the port in hex.
func procAddr(s string) (*net.TCPAddr, error) {
	hexIP, hexPort, ok := strings.Cut(s, ":")
	raw, err := hex.DecodeString(hexIP)
	if !ok || err != nil || len(raw)%4 != 0 {
		return nil, fmt.Errorf("/proc/net/tcp: address %q", s)
	}
	for i := 0; i < len(raw); i += 4 {
		raw[i], raw[i+1], raw[i+2], raw[i+3] = raw[i+3], raw[i+2], raw[i+1], raw[i]
	}
	var port int
	if _, err := fmt.Sscanf(hexPort, "%x", &port); err != nil {
		return nil, fmt.Errorf("/proc/net/tcp: port %q", s)
	}
	return &net.TCPAddr{IP: net.IP(raw), Port: port}, nil
}

// argoWorkflow is the workload as one Workflow: a DAG of container tasks,
// each pod annotated for kwok and scheduled like sluice's steps. The
// tasks have no outputs, so the controller expects no WorkflowTaskResults
// of their (never running) wait containers.
func argoWorkflow(name, schedulerName string, w workload, labels map[string]string) *unstructured.Unstructured {
	tasks := argoTasks(w)
	podLabels := map[string]any{}
	for k, v := range labels {
		podLabels[k] = v
	}
	podAnnotations := map[string]any{}
	for k, v := range simulated {
		podAnnotations[k] = v
	}
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "argoproj.io/v1alpha1",
		"kind":       "Workflow",
		"metadata":   map[string]any{"name": name},
		"spec": map[string]any{
			"entrypoint":    "main",
			"schedulerName": schedulerName,
			"podMetadata":   map[string]any{"labels": podLabels, "annotations": podAnnotations},
			"templates": []any{
				map[string]any{"name": "main", "dag": map[string]any{"tasks": tasks}},
				map[string]any{"name": "step", "container": map[string]any{
					// A command, so that the controller need not look up the
					// image's entrypoint in a registry.
					"image": "localhost/sluice/busybox:dev", "command": []any{"true"},
				}},
			},
		},
	}}
}

// argoTasks is the workload as DAG tasks. Argo's CRDs (the full ones, of
// its installs since v4) allow at most 200 tasks in a DAG, so steps that
// differ only by an index from 0 up (w0, w1, ... after the same upstreams)
// are one task "w" over withSequence, Argo's loop, which runs one pod per
// item: its nodes are "w(0:0)", "w(1:1)", ... (argoStep). A step after any
// of them is after "w", which Argo holds until every item has succeeded.
func argoTasks(w workload) []any {
	type group struct {
		first, base string
		after       []string
		n           int
	}
	var groups []*group
	groupOf := map[string]*group{}
	for _, s := range w {
		base, i := splitIndex(s.name)
		if last := len(groups) - 1; last >= 0 && i > 0 && groups[last].base == base && groups[last].n == i && slices.Equal(groups[last].after, s.after) {
			groups[last].n++
			groupOf[s.name] = groups[last]
			continue
		}
		g := &group{first: s.name, after: s.after, n: 1}
		if i == 0 {
			g.base = base
		}
		groups = append(groups, g)
		groupOf[s.name] = g
	}
	taskName := func(g *group) string {
		if g.n > 1 {
			return g.base
		}
		return g.first
	}
	tasks := make([]any, 0, len(groups))
	for _, g := range groups {
		task := map[string]any{"name": taskName(g), "template": "step"}
		if g.n > 1 {
			task["withSequence"] = map[string]any{"count": strconv.Itoa(g.n)}
		}
		var deps []any
		seen := map[string]bool{}
		for _, up := range g.after {
			if d := taskName(groupOf[up]); !seen[d] {
				seen[d] = true
				deps = append(deps, d)
			}
		}
		if len(deps) > 0 {
			task["dependencies"] = deps
		}
		tasks = append(tasks, task)
	}
	return tasks
}

// splitIndex splits "w12" into "w" and 12; a name without a trailing
// number (or with a leading zero) has index -1.
func splitIndex(name string) (string, int) {
	base := strings.TrimRight(name, "0123456789")
	digits := name[len(base):]
	if base == "" || digits == "" || (len(digits) > 1 && digits[0] == '0') {
		return name, -1
	}
	i, err := strconv.Atoi(digits)
	if err != nil {
		return name, -1
	}
	return base, i
}

// argoStep is the workload step an Argo node name ("<workflow>.<task>")
// stands for: "r0.s3" is s3, and the withSequence item "r0.w(12:12)" is w12.
func argoStep(nodeName string) (string, bool) {
	_, task, ok := strings.Cut(nodeName, ".")
	if !ok {
		return "", false
	}
	if base, item, looped := strings.Cut(task, "("); looped {
		i, _, ok := strings.Cut(item, ":")
		return base + i, ok
	}
	return task, true
}

// argoPod follows an Argo step pod, which is released when it is created.
func (t *tracker) argoPod(o any) {
	p, ok := o.(*corev1.Pod)
	if !ok || p.Labels[benchRunLabel] == "" {
		return
	}
	step, ok := argoStep(p.Annotations["workflows.argoproj.io/node-name"])
	if !ok {
		return
	}
	key := p.Labels[benchRunLabel] + "/" + step
	t.release(key)
	switch p.Status.Phase {
	case corev1.PodFailed:
		t.fail("pod " + p.Name + " failed")
	case corev1.PodSucceeded:
		t.finish(key)
	}
}

func workflowPhase(u *unstructured.Unstructured) (phase, message string) {
	phase, _, _ = unstructured.NestedString(u.Object, "status", "phase")
	message, _, _ = unstructured.NestedString(u.Object, "status", "message")
	return phase, message
}

// measureArgo runs the workload as one Workflow with Argo's controller in a
// namespace of its own: CRDs (once), the controller's ConfigMap, the
// controller, a one-step warm-up Workflow (the controller is ready and the
// path to kwok works), then the measured Workflow. The controller is killed
// and the namespace deleted afterwards.
func (cl *cluster) measureArgo(ctx context.Context, bench string, c contender, w workload, timeout time.Duration) (measurement, error) {
	var m measurement
	run := w[0].run
	for _, s := range w {
		if s.run != run {
			return m, fmt.Errorf("argo: one run per workload (one Workflow), got %s and %s", run, s.run)
		}
	}
	if err := cl.argo.prepare(ctx, cl.kubeconfig); err != nil {
		return m, err
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	ns := fmt.Sprintf("bench-%s-%s-%d", bench, c.name, time.Now().Unix())
	if _, err := cl.cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		return m, err
	}
	defer cl.deleteNamespace(ns)

	data, err := os.ReadFile(filepath.Join(argoPeersDir, "workflow-controller-configmap.yaml"))
	if err != nil {
		return m, err
	}
	var cm corev1.ConfigMap
	if err := yaml.UnmarshalStrict(data, &cm); err != nil {
		return m, fmt.Errorf("%s: %w", argoPeersDir, err)
	}
	cm.Namespace = ns
	if _, err := cl.cs.CoreV1().ConfigMaps(ns).Create(ctx, &cm, metav1.CreateOptions{}); err != nil {
		return m, err
	}
	// Argo's pods use the namespace's default ServiceAccount, which
	// kube-controller-manager creates moments after the namespace.
	if err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		_, err := cl.cs.CoreV1().ServiceAccounts(ns).Get(ctx, "default", metav1.GetOptions{})
		return err == nil, nil
	}); err != nil {
		return m, fmt.Errorf("no default ServiceAccount in %s: %w", ns, err)
	}

	logPath := filepath.Join("bench", "out", fmt.Sprintf("argo-%s-%s.log", bench, c.name))
	if err := os.MkdirAll(filepath.Dir(logPath), 0o755); err != nil {
		return m, err
	}
	ctl, err := cl.argo.start(cl.kubeconfig, ns, c.argo, logPath)
	if err != nil {
		return m, err
	}
	defer ctl.stop()
	workflows := cl.dyn.Resource(workflowsGVR).Namespace(ns)

	// Warm-up: one step, not measured.
	if _, err := workflows.Create(ctx, argoWorkflow("warmup", cl.schedulerName, workload{{run: "warmup", name: "s0"}}, nil), metav1.CreateOptions{}); err != nil {
		return m, err
	}
	err = wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 3*time.Minute, true, func(ctx context.Context) (bool, error) {
		select {
		case <-ctl.exited:
			return false, ctl.died()
		default:
		}
		u, err := workflows.Get(ctx, "warmup", metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		switch phase, msg := workflowPhase(u); phase {
		case "Succeeded":
			return true, nil
		case "Failed", "Error":
			return false, fmt.Errorf("warm-up Workflow %s: %s", phase, msg)
		}
		return false, nil
	})
	if err != nil {
		return m, fmt.Errorf("argo warm-up (log: %s): %w", logPath, err)
	}
	if err := ctl.loopbackOnly(); err != nil {
		return m, err
	}

	t := &tracker{finished: map[string]time.Time{}, released: map[string]time.Time{}, done: make(chan struct{}), total: len(w)}
	var (
		wfOnce  sync.Once
		wfDone  = make(chan struct{})
		wfEnd   time.Time
		wfError string
	)
	onWorkflow := func(o any) {
		u, ok := o.(*unstructured.Unstructured)
		if !ok || u.GetName() != run {
			return
		}
		switch phase, msg := workflowPhase(u); phase {
		case "Succeeded":
			wfOnce.Do(func() { wfEnd = time.Now(); close(wfDone) })
		case "Failed", "Error":
			wfOnce.Do(func() { wfError = phase + ": " + msg; close(wfDone) })
		}
	}
	handler := func(f func(any)) toolscache.ResourceEventHandlerFuncs {
		return toolscache.ResourceEventHandlerFuncs{AddFunc: f, UpdateFunc: func(_, o any) { f(o) }}
	}
	factory := informers.NewSharedInformerFactoryWithOptions(cl.cs, 0, informers.WithNamespace(ns))
	if _, err := factory.Core().V1().Pods().Informer().AddEventHandler(handler(t.argoPod)); err != nil {
		return m, err
	}
	dynFactory := dynamicinformer.NewFilteredDynamicSharedInformerFactory(cl.dyn, 0, ns, nil)
	if _, err := dynFactory.ForResource(workflowsGVR).Informer().AddEventHandler(handler(onWorkflow)); err != nil {
		return m, err
	}
	informersCtx, stopInformers := context.WithCancel(ctx)
	factory.Start(informersCtx.Done())
	dynFactory.Start(informersCtx.Done())
	factory.WaitForCacheSync(informersCtx.Done())
	dynFactory.WaitForCacheSync(informersCtx.Done())
	defer func() { stopInformers(); factory.Shutdown(); dynFactory.Shutdown() }()

	labels := map[string]string{benchRunLabel: run}
	rss := sampleRSSOf(ctx, strconv.Itoa(ctl.cmd.Process.Pid))
	procs := cl.processes(ctx)
	delete(procs, "sluice-manager") // idle here
	procs["argo-controller"] = strconv.Itoa(ctl.cmd.Process.Pid)
	cpu := cpuMeter(procs)
	start := time.Now()
	if _, err := workflows.Create(ctx, argoWorkflow(run, cl.schedulerName, w, labels), metav1.CreateOptions{}); err != nil {
		return m, err
	}
	m.created = time.Since(start)
	stepsDone := t.done
	for wfDone != nil {
		select {
		case <-wfDone:
			wfDone = nil
		case <-stepsDone:
			if t.failed != "" {
				return m, fmt.Errorf("a step failed: %s", t.failed)
			}
			stepsDone = nil // every step succeeded; the Workflow has yet to
		case <-ctl.exited:
			return m, ctl.died()
		case <-ctx.Done():
			t.mu.Lock()
			n := len(t.finished)
			t.mu.Unlock()
			return m, fmt.Errorf("%d of %d steps finished, the Workflow not, within %s (log: %s)", n, len(w), timeout, logPath)
		}
	}
	if wfError != "" {
		return m, fmt.Errorf("Workflow %s (log: %s)", wfError, logPath)
	}
	m.makespan = wfEnd.Sub(start)
	m.cpu = cpu()
	m.peakRSSMB = rss()
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.finished) != len(w) {
		return m, fmt.Errorf("Workflow Succeeded, but the bench saw %d of %d steps succeed", len(t.finished), len(w))
	}
	for _, at := range t.finished {
		m.lastStep = max(m.lastStep, at.Sub(start))
	}
	m.releaseP50, m.releaseP99 = t.releaseLatency(w)
	if u, err := workflows.Get(context.Background(), run, metav1.GetOptions{}); err == nil {
		if data, err := json.Marshal(u.Object); err == nil {
			m.largestKB = float64(len(data)) / 1024
		}
	} else if !apierrors.IsNotFound(err) {
		return m, err
	}
	return m, nil
}
