// Command podstart measures how fast the local cluster's real node starts
// and finishes pods: it creates N bare pods one after another (busybox
// running CMD, no ServiceAccount token), each after the previous one
// finished, and prints create -> Running and create -> Succeeded as seen
// by a watch (times from the API server's events, not from kubectl).
//
//	make dev-up && go run ./bench/podstart -n 10
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/utils/ptr"
)

func main() {
	n := flag.Int("n", 10, "pods to run, one after another")
	cmd := flag.String("cmd", "true", "shell command each pod runs")
	node := flag.String("node", "sluice-real-1", "node to run them on")
	kubeconfig := flag.String("kubeconfig", filepath.Join(".kwok", "kubeconfig"), "the local cluster's kubeconfig")
	flag.Parse()
	if err := run(*n, *cmd, *node, *kubeconfig); err != nil {
		fmt.Fprintln(os.Stderr, "podstart:", err)
		os.Exit(1)
	}
}

func run(n int, cmd, node, kubeconfig string) error {
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return err
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(n)*time.Minute)
	defer cancel()
	pods := cs.CoreV1().Pods("default")
	var running, done []time.Duration
	for i := range n {
		name := fmt.Sprintf("podstart-%d-%d", time.Now().Unix(), i)
		w, err := pods.Watch(ctx, metav1.ListOptions{FieldSelector: fields.OneTermEqualSelector("metadata.name", name).String()})
		if err != nil {
			return err
		}
		start := time.Now()
		if _, err := pods.Create(ctx, &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec: corev1.PodSpec{
				NodeName: node, RestartPolicy: corev1.RestartPolicyNever, AutomountServiceAccountToken: ptr.To(false),
				Containers: []corev1.Container{{Name: "main", Image: "localhost/sluice/busybox:dev", Command: []string{"sh", "-c", cmd}}},
			},
		}, metav1.CreateOptions{}); err != nil {
			w.Stop()
			return err
		}
		var sawRunning bool
		for ev := range w.ResultChan() {
			if ev.Type == watch.Error {
				return fmt.Errorf("watching %s: %v", name, ev.Object)
			}
			p, ok := ev.Object.(*corev1.Pod)
			if !ok {
				continue
			}
			if !sawRunning && (p.Status.Phase == corev1.PodRunning || p.Status.Phase == corev1.PodSucceeded) {
				sawRunning = true
				running = append(running, time.Since(start))
			}
			if p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
				if p.Status.Phase == corev1.PodFailed {
					return fmt.Errorf("pod %s failed: %+v", name, p.Status.ContainerStatuses)
				}
				done = append(done, time.Since(start))
				break
			}
		}
		w.Stop()
		_ = pods.Delete(ctx, name, metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](0)})
	}
	fmt.Printf("%d pods on %s, %q each, one after another:\n", n, node, cmd)
	fmt.Printf("  create -> Running:   %s\n", summary(running))
	fmt.Printf("  create -> Succeeded: %s\n", summary(done))
	return nil
}

func summary(d []time.Duration) string {
	if len(d) == 0 {
		return "none"
	}
	slices.Sort(d)
	var sum time.Duration
	for _, x := range d {
		sum += x
	}
	ms := func(x time.Duration) string { return fmt.Sprintf("%d ms", x.Milliseconds()) }
	return fmt.Sprintf("mean %s, p50 %s, max %s", ms(sum/time.Duration(len(d))), ms(d[len(d)/2]), ms(d[len(d)-1]))
}
