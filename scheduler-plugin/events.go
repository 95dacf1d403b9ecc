package plugin

import (
	"context"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/klog/v2"
	fwk "k8s.io/kube-scheduler/framework"
	"k8s.io/kubernetes/pkg/scheduler/util"
)

// EventsToRegister names the events that can make a pod this plugin
// rejected schedulable: a node that gains GPUs or accelerator labels, and
// a GPU-holding pod going away.
func (p *Plugin) EventsToRegister(_ context.Context) ([]fwk.ClusterEventWithHint, error) {
	return []fwk.ClusterEventWithHint{
		{Event: fwk.ClusterEvent{Resource: fwk.Node, ActionType: fwk.Add | fwk.UpdateNodeAllocatable | fwk.UpdateNodeLabel}, QueueingHintFn: p.isSchedulableAfterNodeChange},
		{Event: fwk.ClusterEvent{Resource: fwk.Pod, ActionType: fwk.Delete}, QueueingHintFn: p.isSchedulableAfterPodDeleted},
	}, nil
}

// isSchedulableAfterNodeChange queues the pod when the new or changed node
// carries its accelerator and at least as many GPUs as it asks for.
func (p *Plugin) isSchedulableAfterNodeChange(logger klog.Logger, pod *corev1.Pod, oldObj, newObj interface{}) (fwk.QueueingHint, error) {
	_, node, err := util.As[*corev1.Node](oldObj, newObj)
	if err != nil {
		return fwk.Queue, err
	}
	r := p.request(pod)
	if r.gpus == 0 || node == nil {
		return fwk.QueueSkip, nil
	}
	if r.accepted.Len() > 0 && !p.hasAccelerator(node, r.accepted) {
		return fwk.QueueSkip, nil
	}
	q, ok := node.Status.Allocatable[p.args.gpuResource()]
	if !ok || q.Value() < r.gpus {
		return fwk.QueueSkip, nil
	}
	logger.V(4).Info("Node may fit the pod now", "plugin", Name, "pod", klog.KObj(pod), "node", klog.KObj(node))
	return fwk.Queue, nil
}

// isSchedulableAfterPodDeleted queues a GPU pod when a pod that held GPUs
// on a node was deleted.
func (p *Plugin) isSchedulableAfterPodDeleted(logger klog.Logger, pod *corev1.Pod, oldObj, newObj interface{}) (fwk.QueueingHint, error) {
	deleted, _, err := util.As[*corev1.Pod](oldObj, newObj)
	if err != nil {
		return fwk.Queue, err
	}
	if deleted == nil || deleted.Spec.NodeName == "" || podGPUs(deleted, p.args.gpuResource()) == 0 {
		return fwk.QueueSkip, nil
	}
	if p.request(pod).gpus == 0 {
		return fwk.QueueSkip, nil
	}
	logger.V(4).Info("GPUs were freed", "plugin", Name, "pod", klog.KObj(pod), "deletedPod", klog.KObj(deleted), "node", deleted.Spec.NodeName)
	return fwk.Queue, nil
}
