package plugin

import (
	"context"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/klog/v2"
	fwk "k8s.io/kube-scheduler/framework"

	"github.com/sluice-dev/sluice/annotations"
)

// ReasonNoNodeOffers is the reason a step waits when no node of the cluster
// carries its accelerator; it appears in FailedScheduling events
// ("0/5 nodes are available: no node offers accelerator ...").
func ReasonNoNodeOffers(accelerator string, offered []string) string {
	return annotations.NoNodeOffers(accelerator, offered) + " (SluiceGPU)"
}

// PreFilter works out the pod's request once per cycle. A GPU pod whose
// accelerator no node carries is unschedulable, with a reason that names the
// accelerator and what the nodes offer: NodeAffinity alone would say only
// that no node matched the pod's affinity.
func (p *Plugin) PreFilter(ctx context.Context, cs fwk.CycleState, pod *corev1.Pod, nodes []fwk.NodeInfo) (*fwk.PreFilterResult, *fwk.Status) {
	r := p.request(pod)
	cs.Write(stateKey, r)
	if r.accelerator == nil {
		return nil, nil
	}
	offered := sets.New[string]()
	for _, n := range nodes {
		node := n.Node()
		if node == nil {
			continue
		}
		if r.accelerator.Accepts(node.Labels) {
			return nil, nil
		}
		offered.Insert(annotations.OfferedAccelerators(node.Labels)...)
	}
	klog.FromContext(ctx).V(4).Info("No node offers the accelerator", "plugin", Name, "pod", klog.KObj(pod), "accelerator", r.accelerator.Name)
	return nil, fwk.NewStatus(fwk.UnschedulableAndUnresolvable, ReasonNoNodeOffers(r.accelerator.Name, offered.UnsortedList()))
}

// PreFilterExtensions returns nil: the plugin keeps no per-node state.
func (p *Plugin) PreFilterExtensions() fwk.PreFilterExtensions { return nil }
