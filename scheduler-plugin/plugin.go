// Package plugin is SluiceGPU, a kube-scheduler framework plugin for sluice
// pipelines: GPU steps go only to nodes with the accelerator they name and
// enough free GPUs, and are bin-packed; CPU-only steps prefer nodes without
// GPUs.
package plugin

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/sets"
	fwk "k8s.io/kube-scheduler/framework"

	"github.com/sluice-dev/sluice/annotations"
)

// Name is the plugin's name in a KubeSchedulerConfiguration.
const Name = "SluiceGPU"

// stateKey holds the pod's podRequest in the CycleState.
const stateKey fwk.StateKey = Name + "/request"

// Plugin is the SluiceGPU scheduler plugin.
type Plugin struct {
	handle fwk.Handle
	args   *SluiceGPUArgs
}

var (
	_ fwk.PreFilterPlugin   = &Plugin{}
	_ fwk.FilterPlugin      = &Plugin{}
	_ fwk.ScorePlugin       = &Plugin{}
	_ fwk.ScoreExtensions   = &Plugin{}
	_ fwk.EnqueueExtensions = &Plugin{}
)

// New is the plugin's factory for app.WithPlugin.
func New(_ context.Context, obj runtime.Object, h fwk.Handle) (fwk.Plugin, error) {
	args, err := DecodeArgs(obj)
	if err != nil {
		return nil, err
	}
	return &Plugin{handle: h, args: args}, nil
}

// Name returns the plugin's name.
func (p *Plugin) Name() string { return Name }

// podRequest is what a pod asks of the plugin.
type podRequest struct {
	// gpus is the number of GPUs the pod requests; 0 for a CPU-only pod.
	gpus int64
	// accelerator is what the pod names, for messages ("" for any GPU).
	accelerator string
	// accepted are the accelerator label values that satisfy the pod;
	// empty means any GPU node.
	accepted sets.Set[string]
}

// Clone implements fwk.StateData; podRequest is never changed once made.
func (r *podRequest) Clone() fwk.StateData { return r }

// request reads what pod asks for: its GPU limits (or requests), and the
// accelerator it names by the sluice.dev/accelerator annotation or, since
// the webhook annotates the Job and not its pod template, by required node
// affinity on the accelerator labels.
func (p *Plugin) request(pod *corev1.Pod) *podRequest {
	r := &podRequest{gpus: podGPUs(pod, p.args.gpuResource())}
	if r.gpus == 0 {
		return r
	}
	if acc := pod.Annotations[annotations.AcceleratorAnnotation]; acc != "" {
		r.accelerator = acc
		r.accepted = sets.New(acc).Insert(annotations.AcceleratorProducts(acc)...)
		return r
	}
	values := affinityValues(pod, sets.New(p.args.AcceleratorLabels...))
	if len(values) == 0 {
		return r
	}
	r.accepted = sets.New[string]()
	for _, v := range values {
		r.accepted.Insert(v)
		r.accepted.Insert(annotations.AcceleratorProducts(v)...)
	}
	r.accelerator = values[0]
	if len(values) > 1 {
		r.accelerator = fmt.Sprintf("%s (or %d more)", values[0], len(values)-1)
	}
	return r
}

// podGPUs is the number of GPUs the pod holds: the sum over its containers
// (limits, or requests where no limit is set), or the largest init
// container's, whichever is more.
func podGPUs(pod *corev1.Pod, name corev1.ResourceName) int64 {
	one := func(c *corev1.Container) int64 {
		if q, ok := c.Resources.Limits[name]; ok {
			return q.Value()
		}
		if q, ok := c.Resources.Requests[name]; ok {
			return q.Value()
		}
		return 0
	}
	var sum, initMax int64
	for i := range pod.Spec.Containers {
		sum += one(&pod.Spec.Containers[i])
	}
	for i := range pod.Spec.InitContainers {
		initMax = max(initMax, one(&pod.Spec.InitContainers[i]))
	}
	return max(sum, initMax, 0)
}

// affinityValues returns the values that the pod's required node affinity
// accepts for any of the accelerator labels (operator In), in order.
func affinityValues(pod *corev1.Pod, labels sets.Set[string]) []string {
	a := pod.Spec.Affinity
	if a == nil || a.NodeAffinity == nil || a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution == nil {
		return nil
	}
	var values []string
	seen := sets.New[string]()
	for _, term := range a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms {
		for _, req := range term.MatchExpressions {
			if req.Operator != corev1.NodeSelectorOpIn || !labels.Has(req.Key) {
				continue
			}
			for _, v := range req.Values {
				if !seen.Has(v) {
					seen.Insert(v)
					values = append(values, v)
				}
			}
		}
	}
	return values
}

// nodeGPUs returns the node's allocatable GPUs and how many of them are
// free. A node without the resource has none.
func (p *Plugin) nodeGPUs(nodeInfo fwk.NodeInfo) (allocatable, free int64) {
	if alloc := nodeInfo.GetAllocatable(); alloc != nil {
		allocatable = alloc.GetScalarResources()[p.args.gpuResource()]
	}
	var used int64
	if req := nodeInfo.GetRequested(); req != nil {
		used = req.GetScalarResources()[p.args.gpuResource()]
	}
	return allocatable, max(allocatable-used, 0)
}

// hasAccelerator reports whether one of the node's accelerator labels holds
// an accepted value.
func (p *Plugin) hasAccelerator(node *corev1.Node, accepted sets.Set[string]) bool {
	if node == nil {
		return false
	}
	for _, l := range p.args.AcceleratorLabels {
		if v, ok := node.Labels[l]; ok && accepted.Has(v) {
			return true
		}
	}
	return false
}

// state returns the pod's request PreFilter stored, or works it out.
func (p *Plugin) state(cs fwk.CycleState, pod *corev1.Pod) *podRequest {
	if cs != nil {
		if d, err := cs.Read(stateKey); err == nil {
			if r, ok := d.(*podRequest); ok {
				return r
			}
		}
	}
	return p.request(pod)
}
