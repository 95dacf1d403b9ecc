package plugin

import (
	"context"
	"fmt"
	"strings"
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

func TestPreFilter(t *testing.T) {
	t4 := nodeInfo(gpuNode("t4", "Tesla-T4", "4").Obj())
	a100 := nodeInfo(gpuNode("a100", "NVIDIA-A100-SXM4-40GB", "8").Obj())
	gke := nodeInfo(st.MakeNode().Name("gke").Label(annotations.GKEAcceleratorLabel, "nvidia-l4").
		Capacity(map[corev1.ResourceName]string{gpu: "2"}).Obj())
	cpu := nodeInfo(cpuNode("cpu").Obj())
	bare := nodeInfo(&corev1.Node{}) // no labels, no capacity
	named := func(accelerator string) *corev1.Pod {
		return gpuPod("p", "1").Annotation(annotations.AcceleratorAnnotation, accelerator).Obj()
	}
	cases := map[string]struct {
		pod   *corev1.Pod
		nodes []fwk.NodeInfo
		want  *fwk.Status
	}{
		"cpu pod":                       {pod: cpuPod("p").Obj(), nodes: []fwk.NodeInfo{cpu}},
		"gpu pod naming no accelerator": {pod: gpuPod("p", "2").Obj(), nodes: []fwk.NodeInfo{cpu}},
		"gke name, product label":       {pod: named("nvidia-tesla-t4"), nodes: []fwk.NodeInfo{cpu, a100, t4}},
		"product name":                  {pod: named("Tesla-T4"), nodes: []fwk.NodeInfo{t4}},
		"kubeflow name":                 {pod: named("NVIDIA_TESLA_A100"), nodes: []fwk.NodeInfo{a100}},
		"short form, any case":          {pod: named("T4"), nodes: []fwk.NodeInfo{t4}},
		"short form of a family":        {pod: named("a100"), nodes: []fwk.NodeInfo{a100}},
		"gke label only":                {pod: named("l4"), nodes: []fwk.NodeInfo{gke}},
		"no node offers it": {
			pod: named("nvidia-h100-80gb"), nodes: []fwk.NodeInfo{cpu, t4, a100, gke},
			want: fwk.NewStatus(fwk.UnschedulableAndUnresolvable, ReasonNoNodeOffers("nvidia-h100-80gb", []string{"NVIDIA-A100-SXM4-40GB", "Tesla-T4", "nvidia-l4"})),
		},
		"an unknown name is matched as written": {
			pod: named("tesla-t4x"), nodes: []fwk.NodeInfo{t4},
			want: fwk.NewStatus(fwk.UnschedulableAndUnresolvable, ReasonNoNodeOffers("tesla-t4x", []string{"Tesla-T4"})),
		},
		"no accelerator labels at all": {
			pod: named("t4"), nodes: []fwk.NodeInfo{cpu, bare},
			want: fwk.NewStatus(fwk.UnschedulableAndUnresolvable, ReasonNoNodeOffers("t4", nil)),
		},
		"gpus in an init container count": {
			pod: func() *corev1.Pod {
				p := cpuPod("p").Annotation(annotations.AcceleratorAnnotation, "h100").Obj()
				p.Spec.InitContainers = []corev1.Container{{Name: "init", Resources: corev1.ResourceRequirements{Limits: corev1.ResourceList{gpu: resource.MustParse("1")}}}}
				return p
			}(),
			nodes: []fwk.NodeInfo{t4},
			want:  fwk.NewStatus(fwk.UnschedulableAndUnresolvable, ReasonNoNodeOffers("h100", []string{"Tesla-T4"})),
		},
		"a cpu pod's annotation is ignored": {
			pod: cpuPod("p").Annotation(annotations.AcceleratorAnnotation, "t4").Obj(), nodes: []fwk.NodeInfo{cpu},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			_, got := newPlugin(t, nil).PreFilter(context.Background(), framework.NewCycleState(), tc.pod, tc.nodes)
			if !tc.want.Equal(got) {
				t.Errorf("PreFilter = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestReasonNoNodeOffers(t *testing.T) {
	got := ReasonNoNodeOffers("h100", []string{"Tesla-T4", "NVIDIA-L4", "Tesla-T4"})
	want := "no node offers accelerator h100; the nodes offer NVIDIA-L4, Tesla-T4 (SluiceGPU)"
	if got != want {
		t.Errorf("ReasonNoNodeOffers = %q, want %q", got, want)
	}
	var many []string
	for i := range 25 {
		many = append(many, fmt.Sprintf("gpu-%02d", i))
	}
	if got := ReasonNoNodeOffers("h100", many); !strings.Contains(got, "gpu-19 and 5 more") || strings.Contains(got, "gpu-20") {
		t.Errorf("ReasonNoNodeOffers of 25 = %q, want 20 named and 5 more", got)
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
	defaults := &SluiceGPUArgs{GPUResourceName: annotations.GPUResource}
	cases := map[string]struct {
		raw     string
		want    *SluiceGPUArgs
		wantErr string
	}{
		"defaults":         {raw: `{}`, want: defaults},
		"set":              {raw: `{"gpuResourceName":"amd.com/gpu"}`, want: &SluiceGPUArgs{GPUResourceName: "amd.com/gpu"}},
		"explicit default": {raw: `{"gpuResourceName":"nvidia.com/gpu"}`, want: defaults},
		"yaml":             {raw: "gpuResourceName: amd.com/gpu\n", want: &SluiceGPUArgs{GPUResourceName: "amd.com/gpu"}},
		"bad resource":     {raw: `{"gpuResourceName":"not a name"}`, wantErr: "args.gpuResourceName"},
		"removed field":    {raw: `{"acceleratorLabels":["nvidia.com/gpu.product"]}`, wantErr: `unknown field "acceleratorLabels"`},
		"not json":         {raw: `[`, wantErr: "decoding SluiceGPU args"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got, err := DecodeArgs(&runtime.Unknown{Raw: []byte(tc.raw), ContentType: runtime.ContentTypeJSON})
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("DecodeArgs error = %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
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
		want     fwk.QueueingHint
	}{
		"t4 node added":             {pod: t4Pod, new: gpuNode("n", "Tesla-T4", "4").Obj(), want: fwk.Queue},
		"node relabelled to t4":     {pod: t4Pod, old: gpuNode("n", "", "4").Obj(), new: gpuNode("n", "Tesla-T4", "4").Obj(), want: fwk.Queue},
		"a100 node added":           {pod: t4Pod, new: gpuNode("n", "NVIDIA-A100-SXM4-40GB", "8").Obj(), want: fwk.QueueSkip},
		"cpu node added":            {pod: t4Pod, new: cpuNode("n").Obj(), want: fwk.QueueSkip},
		"any-gpu pod is never ours": {pod: gpuPod("p", "1").Obj(), new: gpuNode("n", "Tesla-T4", "4").Obj(), want: fwk.QueueSkip},
		"cpu pod waits on no node":  {pod: cpuPod("p").Obj(), new: gpuNode("n", "Tesla-T4", "4").Obj(), want: fwk.QueueSkip},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got, err := p.isSchedulableAfterNodeChange(klog.Background(), tc.pod, tc.old, tc.new)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("hint = %v, want %v", got, tc.want)
			}
		})
	}
	events, err := p.EventsToRegister(context.Background())
	if err != nil || len(events) != 1 {
		t.Errorf("EventsToRegister = %v, %v; want one event", events, err)
	}
}
