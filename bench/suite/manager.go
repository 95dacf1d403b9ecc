package main

import (
	"context"
	"fmt"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/sluice-dev/sluice/e2e/framework"
)

// The manager runs as the Helm release's pods on the local cluster's real
// node (make dev-up): its leader is the holder of the controller's Lease,
// and its process is a container's, on this machine.
const (
	managerNamespace = "sluice-system"
	managerLease     = "sluice-controller.sluice.dev"
	managerBinary    = "/usr/local/bin/sluice-webhook"
	schedulerBinary  = "/usr/local/bin/sluice-scheduler"
)

// managerLeader is the name of the manager's pod that leads.
func (cl *cluster) managerLeader(ctx context.Context) (string, error) {
	lease, err := cl.cs.CoordinationV1().Leases(managerNamespace).Get(ctx, managerLease, metav1.GetOptions{})
	if err != nil {
		return "", fmt.Errorf("the manager's Lease (is sluice installed? make dev-up): %w", err)
	}
	if lease.Spec.HolderIdentity == nil || *lease.Spec.HolderIdentity == "" {
		return "", fmt.Errorf("no manager replica holds Lease %s/%s", managerNamespace, managerLease)
	}
	// controller-runtime's identity is <hostname>_<uuid>; a pod's hostname is its name.
	pod, _, _ := strings.Cut(*lease.Spec.HolderIdentity, "_")
	return pod, nil
}

// managerMetrics is the leading manager's /metrics, through the API
// server's proxy to its pod.
func (cl *cluster) managerMetrics(ctx context.Context) ([]byte, error) {
	pod, err := cl.managerLeader(ctx)
	if err != nil {
		return nil, err
	}
	return cl.cs.CoreV1().Pods(managerNamespace).ProxyGet("http", pod, "8080", "/metrics", nil).DoRaw(ctx)
}

// managerPID is the process of the leading manager's container on this
// machine.
func (cl *cluster) managerPID(ctx context.Context) (string, error) {
	pod, err := cl.managerLeader(ctx)
	if err != nil {
		return "", err
	}
	return framework.PodProcess(managerBinary, pod)
}

// schedulerPID is the process of the sluice-scheduler pod's container on
// this machine (one replica: the chart's default).
func (cl *cluster) schedulerPID(ctx context.Context) (string, error) {
	pods, err := cl.cs.CoreV1().Pods(managerNamespace).List(ctx, metav1.ListOptions{
		LabelSelector: "app.kubernetes.io/instance=sluice,app.kubernetes.io/component=scheduler"})
	if err != nil {
		return "", err
	}
	for _, p := range pods.Items {
		if pid, err := framework.PodProcess(schedulerBinary, p.Name); err == nil {
			return pid, nil
		}
	}
	return "", fmt.Errorf("no process of %s runs here for the scheduler's pods", schedulerBinary)
}
