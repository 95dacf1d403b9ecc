package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	toolscache "k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/yaml"

	"github.com/sluice-dev/sluice/annotations"
	"github.com/sluice-dev/sluice/e2e/framework"
)

// cluster is the local cluster the pipeline benchmarks run on.
type cluster struct {
	cs            kubernetes.Interface
	dyn           dynamic.Interface // Argo's Workflows
	kubeconfig    string
	stateDir      string
	schedulerName string
	argo          *argoPeer // the peer's binary and module; checked when an Argo contender runs
}

func connect(kubeconfig, stateDir string) (*cluster, error) {
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return nil, fmt.Errorf("reading %s (start the local cluster with `make dev-up`): %w", kubeconfig, err)
	}
	cfg.QPS = -1 // the drivers must not be throttled on our side
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	return &cluster{cs: cs, dyn: dyn, kubeconfig: kubeconfig, stateDir: stateDir, schedulerName: "sluice-scheduler"}, nil
}

// contender is one way to run a workload.
type contender struct {
	name   string
	jobs   bool // Jobs, else bare Pods
	sluice bool // sluice holds and releases; else the bench creates each step when its upstreams finish
	// jobComplete: an upstream is finished when its Job is Complete, not when its pod succeeded.
	jobComplete bool
	// argo: Argo Workflows' workflow-controller runs the workload as one DAG
	// Workflow (argo.go), with Argo's defaults or at its best.
	argo argoSettings
}

var contenders = []contender{
	{name: "sluice-jobs", jobs: true, sluice: true},
	{name: "sluice-pods", sluice: true},
	{name: "ideal-pod-success", jobs: true},
	{name: "ideal-job-complete", jobs: true, jobComplete: true},
	{name: "ideal-pods"},
	{name: "argo-default", argo: argoDefault},
	{name: "argo-best", argo: argoBest},
}

// peers run only when -contenders names them (make bench-peers): they need
// bin/argo-workflow-controller, and Argo at its defaults takes minutes.
var peers = []string{"argo-default", "argo-best"}

// creators is how many objects the bench creates at once, as a CI tool would.
const creators = 32

func runPipelines(ctx context.Context, cl *cluster, res results, bench, scale, only string) (string, error) {
	var w workload
	names := []string{"sluice-jobs", "sluice-pods", "ideal-pod-success", "ideal-job-complete", "ideal-pods"}
	applies := peers // the peers: chain50 and fan1000
	timeout := 10 * time.Minute
	switch bench {
	case "chain50":
		w = chain(50)
	case "fan1000":
		width := 1000
		if scale == "large" {
			width, timeout = 10_000, 40*time.Minute
		}
		w = fan("r0", width)
	case "runs100":
		// Bare Pods: 2,000 Jobs take kube-controller-manager's Job
		// controller longer than the run itself (about 3 Jobs a second on
		// 2 cores), which chain50 and fan1000 measure already.
		w = runs(100, 20)
		names = []string{"sluice-pods", "ideal-pods"}
		applies = nil
	}
	if only != "" {
		names = slices.DeleteFunc(append(names, applies...), func(n string) bool { return !slices.Contains(strings.Split(only, ","), n) })
	}
	var argoRows, measured []string
	cpuBy := map[string]map[string]float64{}
	var sb strings.Builder
	fmt.Fprintf(&sb, "### %s: %d steps, zero-duration simulated\n\n", bench, len(w))
	sb.WriteString("| contender | makespan s | created in s | release p50 ms | release p99 ms | manager writes/step | manager peak RSS MB | largest object KB |\n|---|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, name := range names {
		c := contenders[slices.IndexFunc(contenders, func(c contender) bool { return c.name == name })]
		fmt.Fprintf(os.Stderr, "bench: %s %s\n", bench, c.name)
		res.clear(bench, c.name) // with -merge, an earlier run's figures of this contender
		var m measurement
		var err error
		if c.argo != argoNone {
			m, err = cl.measureArgo(ctx, bench, c, w, max(timeout, 30*time.Minute))
		} else {
			m, err = cl.measure(ctx, bench, c, w, timeout)
		}
		if err != nil {
			// One contender's failure is a result too: the others still run.
			fmt.Fprintf(os.Stderr, "bench: %s %s: %v\n", bench, c.name, err)
			fmt.Fprintf(&sb, "| %s | did not finish: %s | | | | | | |\n", c.name, oneLine(err.Error()))
			res.set(bench, c.name+"/did-not-finish", 1)
			if ctx.Err() != nil {
				return sb.String(), ctx.Err()
			}
			continue
		}
		res.set(bench, c.name, round(m.makespan.Seconds()))
		measured, cpuBy[c.name] = append(measured, c.name), m.cpu
		for proc, v := range m.cpu {
			res.set(bench, c.name+"/cpu-s/"+proc, round(v))
		}
		row := fmt.Sprintf("| %s | %.2f | %.2f |", c.name, m.makespan.Seconds(), m.created.Seconds())
		switch {
		case c.argo != argoNone:
			res.set(bench, c.name+"/last-step-s", round(m.lastStep.Seconds()))
			res.set(bench, c.name+"/release-p50-ms", m.releaseP50)
			res.set(bench, c.name+"/release-p99-ms", m.releaseP99)
			res.set(bench, c.name+"/peak-rss-mb", m.peakRSSMB)
			res.set(bench, c.name+"/largest-object-kb", m.largestKB)
			row += fmt.Sprintf(" %.1f | %.1f | | %.0f | %.1f |", m.releaseP50, m.releaseP99, m.peakRSSMB, m.largestKB)
			argoRows = append(argoRows, fmt.Sprintf("%s %.2f s", c.name, m.lastStep.Seconds()))
		case c.sluice:
			res.set(bench, c.name+"/release-p50-ms", m.releaseP50)
			res.set(bench, c.name+"/release-p99-ms", m.releaseP99)
			res.set(bench, c.name+"/writes-per-step", m.writesPerStep)
			res.set(bench, c.name+"/peak-rss-mb", m.peakRSSMB)
			res.set(bench, c.name+"/largest-object-kb", m.largestKB)
			row += fmt.Sprintf(" %.1f | %.1f | %.2f | %.0f | %.1f |", m.releaseP50, m.releaseP99, m.writesPerStep, m.peakRSSMB, m.largestKB)
		default:
			row += " | | | | |"
		}
		sb.WriteString(row + "\n")
	}
	sb.WriteString(cpuTable(measured, cpuBy))
	if len(argoRows) > 0 {
		fmt.Fprintf(&sb, "\nargo-*: Argo Workflows %s's workflow-controller running the %d steps as one DAG Workflow "+
			"(a fan-out is one task over withSequence: Argo's CRDs allow 200 tasks in a DAG); \"created in\" is that one create. "+
			"Makespan ends when the bench sees the Workflow Succeeded; the last step's pod was seen succeeded at: %s. "+
			"Release: upstream pod seen succeeded -> downstream pod seen created. "+
			"The manager columns are Argo's controller; its largest object is the Workflow (bench/README.md).\n",
			cl.argo.version, len(w), strings.Join(argoRows, ", "))
	}
	if bench == "fan1000" && only == "" {
		plain, labelled, err := cl.kubectlApply(ctx, w)
		if err != nil {
			return "", err
		}
		res.set(bench, "kubectl-apply-plain", round(plain.Seconds()))
		res.set(bench, "kubectl-apply-sluice", round(labelled.Seconds()))
		fmt.Fprintf(&sb, "\n`kubectl apply -f` of the %d Jobs: %.2f s without sluice labels, %.2f s with them (%.2fx)\n",
			len(w), plain.Seconds(), labelled.Seconds(), labelled.Seconds()/plain.Seconds())
	}
	return sb.String(), nil
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

func round(v float64) float64 { return float64(int64(v*1000+0.5)) / 1000 }

// measurement is what one contender achieved on one workload.
type measurement struct {
	makespan, created      time.Duration
	releaseP50, releaseP99 float64 // ms
	writesPerStep          float64
	peakRSSMB, largestKB   float64
	// lastStep (Argo): the last step's pod seen succeeded, before the Workflow is.
	lastStep time.Duration
	// cpu is the CPU seconds each process of the cluster used.
	cpu map[string]float64
}

// tracker follows the workload's objects through the bench's own informers.
type tracker struct {
	mu        sync.Mutex
	finished  map[string]time.Time // step key -> when it was seen finished
	released  map[string]time.Time // sluice: when it was seen released
	failed    string
	done      chan struct{}
	total     int
	onFinish  func(key string) // the ideal driver's trigger
	jobBased  bool             // finished = Job Complete, not pod Succeeded
	closeOnce sync.Once
}

func keyOf(obj metav1.Object) string {
	return obj.GetLabels()[benchRunLabel] + "/" + obj.GetLabels()[benchTaskLabel]
}

func (t *tracker) finish(key string) {
	t.mu.Lock()
	if _, seen := t.finished[key]; seen {
		t.mu.Unlock()
		return
	}
	t.finished[key] = time.Now()
	n := len(t.finished)
	t.mu.Unlock()
	if t.onFinish != nil {
		t.onFinish(key)
	}
	if n == t.total {
		t.closeOnce.Do(func() { close(t.done) })
	}
}

func (t *tracker) release(key string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, seen := t.released[key]; !seen {
		t.released[key] = time.Now()
	}
}

func (t *tracker) fail(what string) {
	t.mu.Lock()
	if t.failed == "" {
		t.failed = what
	}
	t.mu.Unlock()
	t.closeOnce.Do(func() { close(t.done) })
}

func (t *tracker) pod(o any) {
	p, ok := o.(*corev1.Pod)
	if !ok || p.Labels[benchRunLabel] == "" {
		return
	}
	switch {
	case p.Status.Phase == corev1.PodFailed:
		t.fail("pod " + p.Name + " failed")
	case p.Status.Phase == corev1.PodSucceeded && !t.jobBased:
		t.finish(keyOf(p))
	}
	if !annotations.HasGate(&p.Spec) {
		t.release(keyOf(p))
	}
}

func (t *tracker) job(o any) {
	j, ok := o.(*batchv1.Job)
	if !ok || j.Labels[benchRunLabel] == "" {
		return
	}
	for _, c := range j.Status.Conditions {
		if c.Status != corev1.ConditionTrue {
			continue
		}
		switch c.Type {
		case batchv1.JobFailed:
			t.fail("job " + j.Name + " failed")
		case batchv1.JobComplete:
			if t.jobBased {
				t.finish(keyOf(j))
			}
		}
	}
	if j.Spec.Suspend == nil || !*j.Spec.Suspend {
		t.release(keyOf(j))
	}
}

// measure runs the workload once with the contender in a namespace of its
// own, and deletes the namespace afterwards.
func (cl *cluster) measure(ctx context.Context, bench string, c contender, w workload, timeout time.Duration) (measurement, error) {
	var m measurement
	ns := fmt.Sprintf("bench-%s-%s-%d", bench, c.name, time.Now().Unix())
	if _, err := cl.cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		return m, err
	}
	defer cl.deleteNamespace(ns)

	t := &tracker{finished: map[string]time.Time{}, released: map[string]time.Time{}, done: make(chan struct{}), total: len(w), jobBased: c.jobComplete}
	steps := map[string]step{}
	for _, s := range w {
		steps[s.key()] = s
	}
	create := func(ctx context.Context, s step) error {
		var err error
		if c.jobs {
			_, err = cl.cs.BatchV1().Jobs(ns).Create(ctx, s.job(ns, cl.schedulerName, c.sluice), metav1.CreateOptions{})
		} else {
			_, err = cl.cs.CoreV1().Pods(ns).Create(ctx, s.pod(ns, cl.schedulerName, c.sluice), metav1.CreateOptions{})
		}
		if err != nil {
			return fmt.Errorf("creating %s: %w", s.key(), err)
		}
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	queue := make(chan step, len(w))
	var createErr error
	var errOnce sync.Once
	var creating sync.WaitGroup
	for range creators {
		creating.Go(func() {
			for s := range queue {
				if err := create(ctx, s); err != nil {
					errOnce.Do(func() { createErr = err })
					t.fail(err.Error())
				}
			}
		})
	}
	if !c.sluice {
		// The ideal driver: a step is created the moment its last upstream finishes.
		remaining := map[string]int{}
		downstream := map[string][]string{}
		for _, s := range w {
			remaining[s.key()] = len(s.after)
			for _, up := range s.after {
				downstream[s.run+"/"+up] = append(downstream[s.run+"/"+up], s.key())
			}
		}
		var mu sync.Mutex
		t.onFinish = func(key string) {
			mu.Lock()
			defer mu.Unlock()
			for _, d := range downstream[key] {
				if remaining[d]--; remaining[d] == 0 {
					queue <- steps[d]
				}
			}
		}
	}

	factory := informers.NewSharedInformerFactoryWithOptions(cl.cs, 0, informers.WithNamespace(ns))
	handler := func(f func(any)) toolscache.ResourceEventHandlerFuncs {
		return toolscache.ResourceEventHandlerFuncs{AddFunc: f, UpdateFunc: func(_, o any) { f(o) }}
	}
	if _, err := factory.Core().V1().Pods().Informer().AddEventHandler(handler(t.pod)); err != nil {
		return m, err
	}
	if c.jobs {
		if _, err := factory.Batch().V1().Jobs().Informer().AddEventHandler(handler(t.job)); err != nil {
			return m, err
		}
	}
	informersCtx, stopInformers := context.WithCancel(ctx)
	factory.Start(informersCtx.Done())
	factory.WaitForCacheSync(informersCtx.Done())
	defer func() { stopInformers(); factory.Shutdown() }()

	writesBefore, _ := cl.managerWrites(ctx)
	rss := cl.sampleRSS(ctx)
	cpu := cpuMeter(cl.processes(ctx))
	start := time.Now()
	if c.sluice {
		for _, s := range w {
			queue <- s
		}
	} else {
		for _, s := range w {
			if len(s.after) == 0 {
				queue <- s
			}
		}
	}
	if c.sluice {
		close(queue)
		creating.Wait()
		m.created = time.Since(start)
	}
	select {
	case <-t.done:
	case <-ctx.Done():
		t.mu.Lock()
		n := len(t.finished)
		t.mu.Unlock()
		return m, fmt.Errorf("%d of %d steps finished within %s", n, len(w), timeout)
	}
	if !c.sluice {
		close(queue)
		creating.Wait()
	}
	if createErr != nil {
		return m, createErr
	}
	if t.failed != "" {
		return m, fmt.Errorf("a step failed: %s", t.failed)
	}
	var end time.Time
	for _, at := range t.finished {
		if at.After(end) {
			end = at
		}
	}
	m.makespan = end.Sub(start)
	m.cpu = cpu()
	if !c.sluice {
		m.created = m.makespan
		return m, nil
	}
	m.peakRSSMB = rss()
	if after, err := cl.managerWrites(ctx); err == nil {
		m.writesPerStep = float64(after-writesBefore) / float64(len(w))
	}
	m.releaseP50, m.releaseP99 = t.releaseLatency(w)
	m.largestKB = cl.largestObjectKB(context.Background(), ns, c.jobs)
	return m, nil
}

// releaseLatency is the p50 and p99, in ms, of the time from a step's last
// upstream seen finished to the step seen released.
func (t *tracker) releaseLatency(w workload) (p50, p99 float64) {
	var lat []time.Duration
	for _, s := range w {
		if len(s.after) == 0 {
			continue
		}
		var last time.Time
		for _, up := range s.after {
			if at := t.finished[s.run+"/"+up]; at.After(last) {
				last = at
			}
		}
		lat = append(lat, t.released[s.key()].Sub(last))
	}
	slices.Sort(lat)
	return ms(percentile(lat, 0.5)), ms(percentile(lat, 0.99))
}

// managerWrites is the leading manager's count of API requests that write
// (POST, PUT, PATCH, DELETE), from client-go's metrics.
func (cl *cluster) managerWrites(ctx context.Context) (int64, error) {
	metrics, err := cl.managerMetrics(ctx)
	if err != nil {
		return 0, err
	}
	var total int64
	sc := bufio.NewScanner(bytes.NewReader(metrics))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "rest_client_requests_total{") {
			continue
		}
		if !strings.Contains(line, `method="POST"`) && !strings.Contains(line, `method="PUT"`) &&
			!strings.Contains(line, `method="PATCH"`) && !strings.Contains(line, `method="DELETE"`) {
			continue
		}
		f := strings.Fields(line)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err == nil {
			total += int64(v)
		}
	}
	return total, sc.Err()
}

// sampleRSS samples the leading manager's resident memory until ctx ends or the
// returned function is called, which gives the peak in MB.
func (cl *cluster) sampleRSS(ctx context.Context) func() float64 {
	pid, err := cl.managerPID(ctx)
	if err != nil {
		return func() float64 { return 0 }
	}
	return sampleRSSOf(ctx, pid)
}

// sampleRSSOf samples the resident memory of process pid, as sampleRSS.
func sampleRSSOf(ctx context.Context, pid string) func() float64 {
	var mu sync.Mutex
	var peak float64
	stop := make(chan struct{})
	go func() {
		tick := time.NewTicker(200 * time.Millisecond)
		defer tick.Stop()
		for {
			if rss, _, err := framework.ProcessMemory(pid); err == nil && rss > 0 {
				mu.Lock()
				peak = max(peak, rss)
				mu.Unlock()
			}
			select {
			case <-stop:
				return
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	return func() float64 {
		close(stop)
		mu.Lock()
		defer mu.Unlock()
		return peak
	}
}

// largestObjectKB is the size of the largest step object as stored, after
// sluice wrote its phase, reason and outcome on it.
func (cl *cluster) largestObjectKB(ctx context.Context, ns string, jobs bool) float64 {
	var largest int
	size := func(o any) {
		if data, err := json.Marshal(o); err == nil {
			largest = max(largest, len(data))
		}
	}
	if jobs {
		if list, err := cl.cs.BatchV1().Jobs(ns).List(ctx, metav1.ListOptions{}); err == nil {
			for i := range list.Items {
				size(&list.Items[i])
			}
		}
	} else if list, err := cl.cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{}); err == nil {
		for i := range list.Items {
			size(&list.Items[i])
		}
	}
	return float64(largest) / 1024
}

// kubectlApply times `kubectl apply -f` of the workload's Jobs as one file,
// without and with sluice's labels, each into a namespace of its own.
func (cl *cluster) kubectlApply(ctx context.Context, w workload) (plain, labelled time.Duration, err error) {
	for _, sluice := range []bool{false, true} {
		ns := fmt.Sprintf("bench-apply-%v-%d", sluice, time.Now().Unix())
		if _, err := cl.cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
			return 0, 0, err
		}
		var buf strings.Builder
		for _, s := range w {
			data, err := yaml.Marshal(s.job(ns, cl.schedulerName, sluice))
			if err != nil {
				return 0, 0, err
			}
			buf.WriteString("---\n")
			buf.Write(data)
		}
		file := filepath.Join(os.TempDir(), ns+".yaml")
		if err := os.WriteFile(file, []byte(buf.String()), 0o644); err != nil {
			return 0, 0, err
		}
		start := time.Now()
		out, err := exec.CommandContext(ctx, filepath.Join("bin", "kubectl"), "--kubeconfig", cl.kubeconfig, "apply", "-f", file).CombinedOutput()
		took := time.Since(start)
		os.Remove(file)
		if err != nil {
			cl.deleteNamespace(ns)
			return 0, 0, fmt.Errorf("kubectl apply: %w: %.500s", err, out)
		}
		if sluice {
			labelled = took
		} else {
			plain = took
		}
		cl.deleteNamespace(ns)
	}
	return plain, labelled, nil
}

// deleteNamespace deletes a benchmark's namespace and waits until it is
// gone, so the next measurement starts on a quiet cluster.
func (cl *cluster) deleteNamespace(ns string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if err := cl.cs.CoreV1().Namespaces().Delete(ctx, ns, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
		fmt.Fprintf(os.Stderr, "bench: deleting namespace %s: %v\n", ns, err)
		return
	}
	err := wait.PollUntilContextCancel(ctx, time.Second, true, func(ctx context.Context) (bool, error) {
		_, err := cl.cs.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
		return apierrors.IsNotFound(err), nil
	})
	if err != nil {
		fmt.Fprintf(os.Stderr, "bench: namespace %s still there after 5m; going on\n", ns)
	}
}
