package plugin

import (
	"context"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/klog/v2"
	fwk "k8s.io/kube-scheduler/framework"
)

// Score bin-packs GPU pods (the fewer GPUs a node has free after placing the
// pod, the higher) and sends CPU-only pods to nodes without GPUs.
func (p *Plugin) Score(ctx context.Context, cs fwk.CycleState, pod *corev1.Pod, nodeInfo fwk.NodeInfo) (int64, *fwk.Status) {
	r := p.state(cs, pod)
	allocatable, free := p.nodeGPUs(nodeInfo)
	var score int64
	switch {
	case r.gpus == 0 && allocatable == 0:
		score = fwk.MaxNodeScore
	case r.gpus == 0, free < r.gpus:
		// NodeResourcesFit keeps GPU pods off nodes without room; score
		// them last should a profile disable it.
		score = fwk.MinNodeScore
	default:
		// NormalizeScore stretches these to the full range.
		score = max(fwk.MaxNodeScore-(free-r.gpus), fwk.MinNodeScore)
	}
	klog.FromContext(ctx).V(4).Info("Scored node", "plugin", Name, "pod", klog.KObj(pod), "node", klog.KObj(nodeInfo.Node()),
		"gpus", r.gpus, "allocatableGPUs", allocatable, "freeGPUs", free, "score", score)
	return score, nil
}

// ScoreExtensions returns the plugin: it normalizes its scores.
func (p *Plugin) ScoreExtensions() fwk.ScoreExtensions { return p }

// NormalizeScore stretches scores linearly onto [MinNodeScore,
// MaxNodeScore], so a one-GPU difference in what is left free decides
// between otherwise equal nodes. Equal scores are left as they are.
func (p *Plugin) NormalizeScore(_ context.Context, _ fwk.CycleState, _ *corev1.Pod, scores fwk.NodeScoreList) *fwk.Status {
	if len(scores) == 0 {
		return nil
	}
	lo, hi := scores[0].Score, scores[0].Score
	for _, s := range scores[1:] {
		lo, hi = min(lo, s.Score), max(hi, s.Score)
	}
	if lo == hi {
		return nil
	}
	for i := range scores {
		scores[i].Score = fwk.MinNodeScore + (scores[i].Score-lo)*(fwk.MaxNodeScore-fwk.MinNodeScore)/(hi-lo)
	}
	return nil
}
