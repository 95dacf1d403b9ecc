// Command scheduler-bench compares kube-scheduler's default profile with
// sluice-scheduler (the SluiceGPU plugin) on a kwokctl cluster of its own,
// started with --disable-qps-limits: N simulated nodes of mixed GPU sizes,
// M pods (half GPU steps of 1/2/4/8 GPUs, half CPU steps that tolerate the
// GPU taint), once per profile. It prints each profile's throughput, the
// ratio, how many GPU steps were placed before the first unschedulable one
// (in creation order), and how many CPU steps landed on GPU nodes.
//
//	go run ./bench/scheduler -nodes 100 -pods 1000
//
// Needs bin/ as hack/dev-up.sh does, and bin/sluice-scheduler
// (hack/build-scheduler.sh).
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/utils/ptr"

	"github.com/sluice-dev/sluice/annotations"
)

const (
	cluster   = "sluice-bench"
	namespace = "default"
	gpu       = corev1.ResourceName(annotations.GPUResource)
)

func main() {
	nodes := flag.Int("nodes", 100, "simulated nodes (40% CPU-only, the rest with 1, 2, 4 or 8 GPUs)")
	pods := flag.Int("pods", 1000, "pods per profile (half GPU steps of 1/2/4/8 GPUs)")
	root := flag.String("root", ".", "sluice checkout (bin/, manifests/)")
	timeout := flag.Duration("timeout", 5*time.Minute, "per profile")
	keep := flag.Bool("keep", false, "keep the cluster afterwards")
	flag.Parse()
	if err := run(*root, *nodes, *pods, *timeout, *keep); err != nil {
		fmt.Fprintln(os.Stderr, "scheduler-bench:", err)
		os.Exit(1)
	}
}

func run(root string, nodes, pods int, timeout time.Duration, keep bool) error {
	root, err := filepath.Abs(root)
	if err != nil {
		return err
	}
	bin := filepath.Join(root, "bin")
	workdir := filepath.Join(root, ".kwok-bench")
	kubeconfig := filepath.Join(workdir, "kubeconfig")
	kwokctl := func(args ...string) error {
		cmd := exec.Command(filepath.Join(bin, "kwokctl"), append([]string{"--name", cluster}, args...)...)
		cmd.Env = append(os.Environ(), "KWOK_WORKDIR="+workdir, "KWOK_KUBECTL_BINARY="+filepath.Join(bin, "kubectl"))
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		return cmd.Run()
	}
	_ = kwokctl("delete", "cluster")
	if err := kwokctl("create", "cluster", "--runtime", "binary",
		"--etcd-binary", filepath.Join(bin, "etcd"),
		"--kube-apiserver-binary", filepath.Join(bin, "kube-apiserver"),
		"--kube-controller-manager-binary", filepath.Join(bin, "kube-controller-manager"),
		"--kube-scheduler-binary", filepath.Join(bin, "sluice-scheduler"),
		"--kube-scheduler-config", filepath.Join(root, "manifests", "scheduler-config.yaml"),
		"--kwok-controller-binary", filepath.Join(bin, "kwok"),
		"--kubeconfig", kubeconfig,
		"--disable-qps-limits", "--wait", "2m"); err != nil {
		return fmt.Errorf("creating cluster %s: %w", cluster, err)
	}
	if !keep {
		defer func() { _ = kwokctl("delete", "cluster"); _ = os.RemoveAll(workdir) }()
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return err
	}
	cfg.QPS, cfg.Burst = 5000, 5000
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	ctx := context.Background()
	gpuNodes, gpuTotal, err := createNodes(ctx, cs, nodes)
	if err != nil {
		return err
	}
	if err := waitFor(ctx, 2*time.Minute, "the default ServiceAccount", func() (bool, error) {
		_, err := cs.CoreV1().ServiceAccounts(namespace).Get(ctx, "default", metav1.GetOptions{})
		return err == nil, nil
	}); err != nil {
		return err
	}
	fmt.Printf("cluster: %d nodes (%d with GPUs, %d GPUs), %d pods per profile, apiserver and scheduler with --disable-qps-limits\n\n", nodes, len(gpuNodes), gpuTotal, pods)
	var results []result
	for _, profile := range []string{corev1.DefaultSchedulerName, "sluice-scheduler"} {
		r, err := runProfile(ctx, cs, profile, pods, gpuNodes, timeout)
		if err != nil {
			return fmt.Errorf("profile %s: %w", profile, err)
		}
		results = append(results, r)
		fmt.Printf("%-18s %6.1f pods/s  scheduled %4d/%d in %6.2fs  GPU steps placed %3d/%d (before the first unschedulable: %3d)  GPUs allocated %4d/%d  CPU steps on GPU nodes %3d/%d\n",
			r.profile, r.throughput(), r.scheduled, pods, r.elapsed.Seconds(), r.gpuPlaced, r.gpuPods, r.gpuBeforeFirstFail, r.gpusAllocated, gpuTotal, r.cpuOnGPU, r.cpuPods)
	}
	fmt.Printf("\nthroughput sluice-scheduler / default-scheduler: %.2f\n", results[1].throughput()/results[0].throughput())
	return nil
}

// createNodes makes n kwok nodes: 40% CPU-only, the rest cycling through
// 1, 2, 4 and 8 GPUs with the GPU labels and taint. It returns the GPU ones.
func createNodes(ctx context.Context, cs kubernetes.Interface, n int) (map[string]bool, int64, error) {
	gpuNodes := map[string]bool{}
	var gpuTotal int64
	sizes := []int64{1, 2, 4, 8}
	products := []string{"Tesla-T4", "Tesla-T4", "NVIDIA-A100-SXM4-40GB", "NVIDIA-A100-SXM4-40GB"}
	for i := range n {
		node := &corev1.Node{
			ObjectMeta: metav1.ObjectMeta{
				Name:        fmt.Sprintf("bench-%03d", i),
				Annotations: map[string]string{"kwok.x-k8s.io/node": "fake"},
				Labels:      map[string]string{"type": "kwok"},
			},
			Status: corev1.NodeStatus{Allocatable: corev1.ResourceList{
				corev1.ResourceCPU: resource.MustParse("32"), corev1.ResourceMemory: resource.MustParse("128Gi"), corev1.ResourcePods: resource.MustParse("110"),
			}},
		}
		if i%5 >= 2 { // 3 in 5 have GPUs
			k := (i / 5 * 3) + i%5 - 2
			node.Name = fmt.Sprintf("bench-gpu%d-%03d", sizes[k%4], i)
			node.Labels[annotations.GPUProductLabel] = products[k%4]
			node.Status.Allocatable[gpu] = *resource.NewQuantity(sizes[k%4], resource.DecimalSI)
			node.Spec.Taints = []corev1.Taint{{Key: annotations.GPUResource, Value: "present", Effect: corev1.TaintEffectNoSchedule}}
			gpuNodes[node.Name] = true
			gpuTotal += sizes[k%4]
		}
		node.Labels["kubernetes.io/hostname"] = node.Name
		node.Status.Capacity = node.Status.Allocatable
		if _, err := cs.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			return nil, 0, fmt.Errorf("creating node %s: %w", node.Name, err)
		}
	}
	err := waitFor(ctx, 2*time.Minute, "nodes to be Ready", func() (bool, error) {
		list, err := cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, nil
		}
		ready := 0
		for _, nd := range list.Items {
			for _, c := range nd.Status.Conditions {
				if c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue && len(nd.Spec.Taints) == len(taintsWanted(gpuNodes[nd.Name])) {
					ready++
				}
			}
		}
		return ready == n, nil
	})
	return gpuNodes, gpuTotal, err
}

func taintsWanted(isGPU bool) []struct{} {
	if isGPU {
		return make([]struct{}, 1)
	}
	return nil
}

type result struct {
	profile                                          string
	elapsed                                          time.Duration
	scheduled, gpuPods, gpuPlaced, cpuPods, cpuOnGPU int64
	gpuBeforeFirstFail, gpusAllocated                int64
}

func (r result) throughput() float64 { return float64(r.scheduled) / r.elapsed.Seconds() }

// runProfile creates the pods for schedulerName, waits until every pod is
// bound or found unschedulable, measures, and deletes them again.
func runProfile(ctx context.Context, cs kubernetes.Interface, schedulerName string, n int, gpuNodes map[string]bool, timeout time.Duration) (result, error) {
	r := result{profile: schedulerName}
	sizes := []string{"1", "2", "4", "8"}
	specs := make([]*corev1.Pod, n)
	for i := range n {
		p := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("cpu-%04d", i), Namespace: namespace},
			Spec: corev1.PodSpec{
				SchedulerName: schedulerName,
				Tolerations:   []corev1.Toleration{{Key: annotations.GPUResource, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule}},
				Containers: []corev1.Container{{Name: "main", Image: "busybox", Resources: corev1.ResourceRequirements{
					Limits: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m")},
				}}},
			},
		}
		if i%2 == 0 {
			p.Name = fmt.Sprintf("gpu-%04d", i)
			p.Spec.Containers[0].Resources.Limits[gpu] = resource.MustParse(sizes[(i/2)%4])
			r.gpuPods++
		} else {
			r.cpuPods++
		}
		specs[i] = p
	}
	start := time.Now()
	work := make(chan *corev1.Pod)
	var wg sync.WaitGroup
	var createErr error
	var once sync.Once
	for range 32 {
		wg.Go(func() {
			for p := range work {
				if _, err := cs.CoreV1().Pods(namespace).Create(ctx, p, metav1.CreateOptions{}); err != nil {
					once.Do(func() { createErr = fmt.Errorf("creating pod %s: %w", p.Name, err) })
				}
			}
		})
	}
	for _, p := range specs {
		work <- p
	}
	close(work)
	wg.Wait()
	if createErr != nil {
		return r, createErr
	}
	var final map[string]*corev1.Pod
	err := waitFor(ctx, timeout, "every pod to be bound or unschedulable", func() (bool, error) {
		list, err := cs.CoreV1().Pods(namespace).List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, nil
		}
		settled := 0
		final = map[string]*corev1.Pod{}
		for i := range list.Items {
			p := &list.Items[i]
			final[p.Name] = p
			if p.Spec.NodeName != "" || unschedulable(p) {
				settled++
			}
		}
		return settled == n, nil
	})
	r.elapsed = time.Since(start)
	if err != nil {
		return r, err
	}
	failed := false
	for _, spec := range specs {
		p := final[spec.Name]
		if p.Spec.NodeName != "" {
			r.scheduled++
		}
		if _, isGPU := spec.Spec.Containers[0].Resources.Limits[gpu]; isGPU {
			if p.Spec.NodeName == "" {
				failed = true
				continue
			}
			r.gpuPlaced++
			q := spec.Spec.Containers[0].Resources.Limits[gpu]
			r.gpusAllocated += q.Value()
			if !failed {
				r.gpuBeforeFirstFail++
			}
		} else if gpuNodes[p.Spec.NodeName] {
			r.cpuOnGPU++
		}
	}
	// Clean up for the next profile.
	if err := cs.CoreV1().Pods(namespace).DeleteCollection(ctx, metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](0)}, metav1.ListOptions{}); err != nil {
		return r, fmt.Errorf("deleting pods: %w", err)
	}
	return r, waitFor(ctx, 2*time.Minute, "the pods to be gone", func() (bool, error) {
		list, err := cs.CoreV1().Pods(namespace).List(ctx, metav1.ListOptions{})
		return err == nil && len(list.Items) == 0, nil
	})
}

func unschedulable(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse && c.Reason == corev1.PodReasonUnschedulable {
			return true
		}
	}
	return false
}

// waitFor polls cond every 100 ms until it holds or timeout passes.
func waitFor(ctx context.Context, timeout time.Duration, what string, cond func() (bool, error)) error {
	deadline := time.Now().Add(timeout)
	for {
		ok, err := cond()
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("timed out after %s waiting for %s", timeout, what)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}
