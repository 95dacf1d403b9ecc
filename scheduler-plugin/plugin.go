// Package plugin is SluiceGPU, a kube-scheduler framework plugin for sluice
// pipelines: GPU steps are bin-packed and CPU-only steps prefer nodes without
// GPUs; a step whose accelerator no node offers is told so at once.
//
// Which nodes carry an accelerator is decided in one place: the webhook
// writes the step's required node affinity (annotations.AcceleratorMatch),
// and the in-tree NodeAffinity and NodeResourcesFit filters enforce it and
// the GPU count, in this scheduler or any other. The plugin does not filter
// nodes again.
package plugin

import (
	"context"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
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
	// accelerator is what the pod names by sluice.dev/accelerator (the
	// webhook copies it onto a Job's pods); nil for any GPU.
	accelerator *annotations.AcceleratorMatch
}

// Clone implements fwk.StateData; podRequest is never changed once made.
func (r *podRequest) Clone() fwk.StateData { return r }

// request reads what pod asks for: its GPU limits (or requests), and the
// accelerator it names.
func (p *Plugin) request(pod *corev1.Pod) *podRequest {
	r := &podRequest{gpus: podGPUs(pod, p.args.gpuResource())}
	if acc := pod.Annotations[annotations.AcceleratorAnnotation]; r.gpus > 0 && acc != "" {
		m := annotations.MatchAccelerator(acc)
		r.accelerator = &m
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
