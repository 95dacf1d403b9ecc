package plugin

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/klog/v2"
	fwk "k8s.io/kube-scheduler/framework"
)

// Reasons a node does not fit; they appear in FailedScheduling events.
const (
	ReasonNoGPUs          = "node(s) had no GPUs (SluiceGPU)"
	ReasonTooFewGPUs      = "node(s) had too few free GPUs (SluiceGPU)"
	reasonNoAcceleratorFm = "node(s) had no %s accelerator (SluiceGPU)"
)

// ReasonNoAccelerator is the reason for a node without the accelerator.
func ReasonNoAccelerator(accelerator string) string {
	return fmt.Sprintf(reasonNoAcceleratorFm, accelerator)
}

// PreFilter works out the pod's request once per cycle. CPU-only pods skip
// Filter: the plugin only scores them.
func (p *Plugin) PreFilter(_ context.Context, cs fwk.CycleState, pod *corev1.Pod, _ []fwk.NodeInfo) (*fwk.PreFilterResult, *fwk.Status) {
	r := p.request(pod)
	cs.Write(stateKey, r)
	if r.gpus == 0 {
		return nil, fwk.NewStatus(fwk.Skip)
	}
	return nil, nil
}

// PreFilterExtensions returns nil: Filter reads the NodeInfo it is given,
// so preemption's what-if pods are seen without extra state.
func (p *Plugin) PreFilterExtensions() fwk.PreFilterExtensions { return nil }

// Filter admits a GPU pod only to nodes carrying the accelerator it names
// (any GPU node when it names none) with enough free GPUs.
func (p *Plugin) Filter(ctx context.Context, cs fwk.CycleState, pod *corev1.Pod, nodeInfo fwk.NodeInfo) *fwk.Status {
	r := p.state(cs, pod)
	if r.gpus == 0 {
		return nil
	}
	node := nodeInfo.Node()
	if node == nil {
		return fwk.NewStatus(fwk.Error, "node not found")
	}
	logger := klog.FromContext(ctx)
	if r.accepted.Len() > 0 && !p.hasAccelerator(node, r.accepted) {
		logger.V(4).Info("Node lacks the accelerator", "plugin", Name, "pod", klog.KObj(pod), "node", klog.KObj(node), "accelerator", r.accelerator)
		return fwk.NewStatus(fwk.UnschedulableAndUnresolvable, ReasonNoAccelerator(r.accelerator))
	}
	allocatable, free := p.nodeGPUs(nodeInfo)
	if allocatable == 0 {
		logger.V(4).Info("Node has no GPUs", "plugin", Name, "pod", klog.KObj(pod), "node", klog.KObj(node))
		return fwk.NewStatus(fwk.UnschedulableAndUnresolvable, ReasonNoGPUs)
	}
	if free < r.gpus {
		logger.V(4).Info("Node has too few free GPUs", "plugin", Name, "pod", klog.KObj(pod), "node", klog.KObj(node), "free", free, "requested", r.gpus)
		// Unschedulable, not Unresolvable: preempting GPU pods can help.
		return fwk.NewStatus(fwk.Unschedulable, ReasonTooFewGPUs)
	}
	return nil
}
