package plugin

import (
	"context"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/klog/v2"
	fwk "k8s.io/kube-scheduler/framework"
	"k8s.io/kubernetes/pkg/scheduler/framework"
	st "k8s.io/kubernetes/pkg/scheduler/testing"

	"github.com/sluice-dev/sluice/annotations"
)

const gpu = corev1.ResourceName(annotations.GPUResource)

// gpuPod is a pod asking for n GPUs (limit and request, as API defaulting
// would leave them).
func gpuPod(name string, n string) *st.PodWrapper {
	return st.MakePod().Name(name).Namespace("ns").Res(map[corev1.ResourceName]string{gpu: n}).Toleration(annotations.GPUResource)
}

func cpuPod(name string) *st.PodWrapper {
	return st.MakePod().Name(name).Namespace("ns").Req(map[corev1.ResourceName]string{corev1.ResourceCPU: "1"})
}

func gpuNode(name, product string, gpus string) *st.NodeWrapper {
	n := st.MakeNode().Name(name).Capacity(map[corev1.ResourceName]string{corev1.ResourceCPU: "96", gpu: gpus})
	if product != "" {
		n = n.Label(annotations.GPUProductLabel, product)
	}
	return n
}

func cpuNode(name string) *st.NodeWrapper {
	return st.MakeNode().Name(name).Capacity(map[corev1.ResourceName]string{corev1.ResourceCPU: "16"})
}

// nodeInfo is a node with pods running on it.
func nodeInfo(node *corev1.Node, pods ...*corev1.Pod) fwk.NodeInfo {
	ni := framework.NewNodeInfo(pods...)
	ni.SetNode(node)
	return ni
}

func newPlugin(t *testing.T, args runtime.Object) *Plugin {
	t.Helper()
	p, err := New(context.Background(), args, nil)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return p.(*Plugin)
}

func TestFilter(t *testing.T) {
	t4 := gpuNode("t4", "Tesla-T4", "4").Obj()
	a100 := gpuNode("a100", "NVIDIA-A100-SXM4-40GB", "8").Obj()
	gke := st.MakeNode().Name("gke").Label(annotations.GKEAcceleratorLabel, "nvidia-tesla-t4").
		Capacity(map[corev1.ResourceName]string{gpu: "2"}).Obj()
	cpu := cpuNode("cpu").Obj()
	bare := &corev1.Node{} // no labels, no capacity
	cases := map[string]struct {
		pod  *corev1.Pod
		node fwk.NodeInfo
		want *fwk.Status
	}{
		"cpu pod fits a gpu node": {
			pod: cpuPod("p").Obj(), node: nodeInfo(t4),
		},
		"gpu pod without accelerator fits any gpu node": {
			pod: gpuPod("p", "2").Obj(), node: nodeInfo(a100),
		},
		"gpu pod without accelerator does not fit a cpu node": {
			pod: gpuPod("p", "1").Obj(), node: nodeInfo(cpu),
			want: fwk.NewStatus(fwk.UnschedulableAndUnresolvable, ReasonNoGPUs),
		},
		"annotation names the node's accelerator": {
			pod: gpuPod("p", "1").Annotation(annotations.AcceleratorAnnotation, "nvidia-tesla-t4").Obj(), node: nodeInfo(t4),
		},
		"annotation names another accelerator": {
			pod: gpuPod("p", "1").Annotation(annotations.AcceleratorAnnotation, "nvidia-tesla-t4").Obj(), node: nodeInfo(a100),
			want: fwk.NewStatus(fwk.UnschedulableAndUnresolvable, ReasonNoAccelerator("nvidia-tesla-t4")),
		},
		"annotation matches the gke label": {
			pod: gpuPod("p", "1").Annotation(annotations.AcceleratorAnnotation, "nvidia-tesla-t4").Obj(), node: nodeInfo(gke),
		},
		"product name in the annotation": {
			pod: gpuPod("p", "1").Annotation(annotations.AcceleratorAnnotation, "Tesla-T4").Obj(), node: nodeInfo(t4),
		},
		"affinity on the product label": {
			pod:  gpuPod("p", "1").NodeAffinityIn(annotations.GPUProductLabel, []string{"Tesla-T4"}, st.NodeSelectorTypeMatchExpressions).Obj(),
			node: nodeInfo(a100),
			want: fwk.NewStatus(fwk.UnschedulableAndUnresolvable, ReasonNoAccelerator("Tesla-T4")),
		},
		"affinity on the gke label matches the product label": {
			pod:  gpuPod("p", "1").NodeAffinityIn(annotations.GKEAcceleratorLabel, []string{"nvidia-tesla-t4"}, st.NodeSelectorTypeMatchExpressions).Obj(),
			node: nodeInfo(t4),
		},
		"affinity on another label is not an accelerator": {
			pod:  gpuPod("p", "1").NodeAffinityIn("zone", []string{"a"}, st.NodeSelectorTypeMatchExpressions).Obj(),
			node: nodeInfo(a100),
		},
		"enough free gpus": {
			pod: gpuPod("p", "2").Obj(), node: nodeInfo(t4, gpuPod("a", "2").Node("t4").Obj()),
		},
		"too few free gpus": {
			pod: gpuPod("p", "2").Obj(), node: nodeInfo(t4, gpuPod("a", "3").Node("t4").Obj()),
			want: fwk.NewStatus(fwk.Unschedulable, ReasonTooFewGPUs),
		},
		"more gpus than the node has": {
			pod: gpuPod("p", "16").Obj(), node: nodeInfo(a100),
			want: fwk.NewStatus(fwk.Unschedulable, ReasonTooFewGPUs),
		},
		"node without labels or capacity": {
			pod: gpuPod("p", "1").Annotation(annotations.AcceleratorAnnotation, "nvidia-l4").Obj(), node: nodeInfo(bare),
			want: fwk.NewStatus(fwk.UnschedulableAndUnresolvable, ReasonNoAccelerator("nvidia-l4")),
		},
		"gpus in an init container": {
			pod: func() *corev1.Pod {
				p := cpuPod("p").Obj()
				p.Spec.InitContainers = []corev1.Container{{Name: "init", Resources: corev1.ResourceRequirements{Limits: corev1.ResourceList{gpu: resource.MustParse("1")}}}}
				return p
			}(),
			node: nodeInfo(cpu),
			want: fwk.NewStatus(fwk.UnschedulableAndUnresolvable, ReasonNoGPUs),
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			p := newPlugin(t, nil)
			cs := framework.NewCycleState()
			_, pre := p.PreFilter(context.Background(), cs, tc.pod, nil)
			got := p.Filter(context.Background(), cs, tc.pod, tc.node)
			if pre.IsSkip() && got != nil {
				t.Errorf("PreFilter skipped Filter, but Filter says %v", got)
			}
			if !tc.want.Equal(got) {
				t.Errorf("Filter = %v, want %v", got, tc.want)
			}
		})
	}
}

// scoreNodes runs Score and NormalizeScore over nodes and returns the scores.
func scoreNodes(t *testing.T, p *Plugin, pod *corev1.Pod, nodes []fwk.NodeInfo) map[string]int64 {
	t.Helper()
	ctx := context.Background()
	cs := framework.NewCycleState()
	p.PreFilter(ctx, cs, pod, nodes)
	var list fwk.NodeScoreList
	for _, ni := range nodes {
		s, st := p.Score(ctx, cs, pod, ni)
		if !st.IsSuccess() {
			t.Fatalf("Score(%s): %v", ni.Node().Name, st)
		}
		list = append(list, fwk.NodeScore{Name: ni.Node().Name, Score: s})
	}
	if st := p.ScoreExtensions().NormalizeScore(ctx, cs, pod, list); !st.IsSuccess() {
		t.Fatalf("NormalizeScore: %v", st)
	}
	got := map[string]int64{}
	for _, s := range list {
		if s.Score < fwk.MinNodeScore || s.Score > fwk.MaxNodeScore {
			t.Errorf("score of %s out of range: %d", s.Name, s.Score)
		}
		got[s.Name] = s.Score
	}
	return got
}

func TestScore(t *testing.T) {
	nodes := []fwk.NodeInfo{
		nodeInfo(cpuNode("cpu").Obj()),
		nodeInfo(gpuNode("t4-busy", "Tesla-T4", "4").Obj(), gpuPod("a", "2").Node("t4-busy").Obj()),
		nodeInfo(gpuNode("t4-idle", "Tesla-T4", "4").Obj()),
		nodeInfo(gpuNode("a100", "NVIDIA-A100-SXM4-40GB", "8").Obj()),
		nodeInfo(&corev1.Node{}),
	}
	nodes[4].Node().Name = "odd"
	cases := map[string]struct {
		pod   *corev1.Pod
		nodes []fwk.NodeInfo
		want  map[string]int64
	}{
		"gpu pod goes where fewest gpus stay free": {
			pod:   gpuPod("p", "1").Obj(),
			nodes: nodes[1:4],
			// free after placement: t4-busy 1, t4-idle 3, a100 7.
			want: map[string]int64{"t4-busy": 100, "t4-idle": 66, "a100": 0},
		},
		"gpu pod: nodes without room score lowest": {
			pod:   gpuPod("p", "4").Obj(),
			nodes: nodes,
			// free after placement: t4-idle 0, a100 4; the rest cannot hold it.
			want: map[string]int64{"cpu": 0, "t4-busy": 0, "t4-idle": 100, "a100": 96, "odd": 0},
		},
		"cpu pod prefers nodes without gpus": {
			pod:   cpuPod("p").Obj(),
			nodes: nodes,
			want:  map[string]int64{"cpu": 100, "t4-busy": 0, "t4-idle": 0, "a100": 0, "odd": 100},
		},
		"no nodes": {pod: cpuPod("p").Obj(), want: map[string]int64{}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got := scoreNodes(t, newPlugin(t, nil), tc.pod, tc.nodes)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("scores (-want,+got):\n%s", diff)
			}
		})
	}
}

func TestArgs(t *testing.T) {
	cases := map[string]struct {
		raw     string
		want    *SluiceGPUArgs
		wantErr bool
	}{
		"defaults": {
			raw:  `{}`,
			want: &SluiceGPUArgs{AcceleratorLabels: []string{annotations.GPUProductLabel, annotations.GKEAcceleratorLabel}, GPUResourceName: annotations.GPUResource},
		},
		"set": {
			raw:  `{"acceleratorLabels":["example.com/gpu"],"gpuResourceName":"amd.com/gpu","localityWeight":5}`,
			want: &SluiceGPUArgs{AcceleratorLabels: []string{"example.com/gpu"}, GPUResourceName: "amd.com/gpu", LocalityWeight: 5},
		},
		"bad label":        {raw: `{"acceleratorLabels":["not a label"]}`, wantErr: true},
		"bad weight":       {raw: `{"localityWeight":101}`, wantErr: true},
		"explicit default": {raw: `{"gpuResourceName":"nvidia.com/gpu"}`, want: &SluiceGPUArgs{AcceleratorLabels: []string{annotations.GPUProductLabel, annotations.GKEAcceleratorLabel}, GPUResourceName: annotations.GPUResource}},
		"not json":         {raw: `[`, wantErr: true},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got, err := DecodeArgs(&runtime.Unknown{Raw: []byte(tc.raw), ContentType: runtime.ContentTypeJSON})
			if (err != nil) != tc.wantErr {
				t.Fatalf("DecodeArgs error = %v, wantErr %v", err, tc.wantErr)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("args (-want,+got):\n%s", diff)
			}
		})
	}
}

func TestQueueingHints(t *testing.T) {
	p := newPlugin(t, nil)
	t4Pod := gpuPod("p", "2").Annotation(annotations.AcceleratorAnnotation, "nvidia-tesla-t4").Obj()
	cases := map[string]struct {
		pod      *corev1.Pod
		old, new interface{}
		hint     func(klog.Logger, *corev1.Pod, interface{}, interface{}) (fwk.QueueingHint, error)
		want     fwk.QueueingHint
	}{
		"t4 node added":            {pod: t4Pod, new: gpuNode("n", "Tesla-T4", "4").Obj(), hint: p.isSchedulableAfterNodeChange, want: fwk.Queue},
		"a100 node added":          {pod: t4Pod, new: gpuNode("n", "NVIDIA-A100-SXM4-40GB", "8").Obj(), hint: p.isSchedulableAfterNodeChange, want: fwk.QueueSkip},
		"t4 node too small":        {pod: t4Pod, new: gpuNode("n", "Tesla-T4", "1").Obj(), hint: p.isSchedulableAfterNodeChange, want: fwk.QueueSkip},
		"cpu node added":           {pod: gpuPod("p", "1").Obj(), new: cpuNode("n").Obj(), hint: p.isSchedulableAfterNodeChange, want: fwk.QueueSkip},
		"gpu pod deleted":          {pod: t4Pod, old: gpuPod("a", "1").Node("n").Obj(), hint: p.isSchedulableAfterPodDeleted, want: fwk.Queue},
		"cpu pod deleted":          {pod: t4Pod, old: cpuPod("a").Node("n").Obj(), hint: p.isSchedulableAfterPodDeleted, want: fwk.QueueSkip},
		"unscheduled pod deleted":  {pod: t4Pod, old: gpuPod("a", "1").Obj(), hint: p.isSchedulableAfterPodDeleted, want: fwk.QueueSkip},
		"cpu pod waits on no node": {pod: cpuPod("p").Obj(), new: gpuNode("n", "Tesla-T4", "4").Obj(), hint: p.isSchedulableAfterNodeChange, want: fwk.QueueSkip},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got, err := tc.hint(klog.Background(), tc.pod, tc.old, tc.new)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("hint = %v, want %v", got, tc.want)
			}
		})
	}
	events, err := p.EventsToRegister(context.Background())
	if err != nil || len(events) != 2 {
		t.Errorf("EventsToRegister = %v, %v; want two events", events, err)
	}
}
