package plugin

import (
	"context"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/klog/v2"
	fwk "k8s.io/kube-scheduler/framework"
	"k8s.io/kubernetes/pkg/scheduler/util"
)

// EventsToRegister names the events that can make a pod this plugin
// rejected schedulable: a node that is added or relabelled.
func (p *Plugin) EventsToRegister(_ context.Context) ([]fwk.ClusterEventWithHint, error) {
	return []fwk.ClusterEventWithHint{
		{Event: fwk.ClusterEvent{Resource: fwk.Node, ActionType: fwk.Add | fwk.UpdateNodeLabel}, QueueingHintFn: p.isSchedulableAfterNodeChange},
	}, nil
}

// isSchedulableAfterNodeChange queues the pod when the new or changed node
// carries its accelerator.
func (p *Plugin) isSchedulableAfterNodeChange(logger klog.Logger, pod *corev1.Pod, oldObj, newObj interface{}) (fwk.QueueingHint, error) {
	_, node, err := util.As[*corev1.Node](oldObj, newObj)
	if err != nil {
		return fwk.Queue, err
	}
	r := p.request(pod)
	if r.accelerator == nil || node == nil || !r.accelerator.Accepts(node.Labels) {
		return fwk.QueueSkip, nil
	}
	logger.V(4).Info("Node offers the accelerator now", "plugin", Name, "pod", klog.KObj(pod), "node", klog.KObj(node))
	return fwk.Queue, nil
}
