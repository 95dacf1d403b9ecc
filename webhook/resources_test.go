package webhook

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/sluice-dev/sluice/annotations"
	utiltesting "github.com/sluice-dev/sluice/annotations/testing"
)

func TestGPUInjection(t *testing.T) {
	gpuToleration := corev1.Toleration{Key: "nvidia.com/gpu", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule}
	cases := map[string]struct {
		job          *utiltesting.JobWrapper
		scheduler    string
		wantLimits   corev1.ResourceList
		wantRequests corev1.ResourceList
		wantTol      []corev1.Toleration
		wantAffinity *corev1.NodeSelector
		wantSched    string
		wantWarnings []string
		wantErr      string
		// nodes are the cluster's nodes' labels (nil: the validator is not
		// told about nodes).
		nodes []map[string]string
	}{
		"gpu and accelerator": {
			job:        utiltesting.MakeJob("train", "ml").Annotation(annotations.GPUAnnotation, "2").Annotation(annotations.AcceleratorAnnotation, "nvidia-tesla-t4"),
			scheduler:  "sluice-scheduler",
			wantLimits: corev1.ResourceList{"nvidia.com/gpu": resource.MustParse("2")},
			wantTol:    []corev1.Toleration{gpuToleration},
			wantAffinity: &corev1.NodeSelector{NodeSelectorTerms: []corev1.NodeSelectorTerm{
				{MatchExpressions: []corev1.NodeSelectorRequirement{{Key: "nvidia.com/gpu.product", Operator: corev1.NodeSelectorOpIn, Values: []string{"Tesla-T4"}}}},
				{MatchExpressions: []corev1.NodeSelectorRequirement{{Key: "cloud.google.com/gke-accelerator", Operator: corev1.NodeSelectorOpIn, Values: []string{"nvidia-tesla-t4"}}}},
			}},
			wantSched: "sluice-scheduler",
			nodes:     []map[string]string{{annotations.GPUProductLabel: "Tesla-T4"}},
		},
		"the Kubeflow SDK's name; no node offers it": {
			job:        utiltesting.MakeJob("train", "ml").Annotation(annotations.AcceleratorAnnotation, "NVIDIA_TESLA_A100"),
			wantLimits: corev1.ResourceList{"nvidia.com/gpu": resource.MustParse("1")},
			wantTol:    []corev1.Toleration{gpuToleration},
			wantAffinity: &corev1.NodeSelector{NodeSelectorTerms: []corev1.NodeSelectorTerm{
				{MatchExpressions: []corev1.NodeSelectorRequirement{{Key: "nvidia.com/gpu.product", Operator: corev1.NodeSelectorOpIn, Values: []string{"NVIDIA-A100-SXM4-40GB", "NVIDIA-A100-PCIE-40GB"}}}},
				{MatchExpressions: []corev1.NodeSelectorRequirement{{Key: "cloud.google.com/gke-accelerator", Operator: corev1.NodeSelectorOpIn, Values: []string{"nvidia-tesla-a100"}}}},
			}},
			nodes: []map[string]string{
				{annotations.GPUProductLabel: "Tesla-T4", annotations.GKEAcceleratorLabel: "nvidia-tesla-t4"},
				{annotations.GPUProductLabel: "Tesla-T4"},
				{"kubernetes.io/os": "linux"},
			},
			wantWarnings: []string{"sluice.dev/accelerator=NVIDIA_TESLA_A100: no node offers accelerator NVIDIA_TESLA_A100; the nodes offer Tesla-T4, nvidia-tesla-t4; the step cannot start until a node that offers it joins"},
		},
		"a short form matches a node by its GKE label": {
			job:        utiltesting.MakeJob("train", "ml").Annotation(annotations.AcceleratorAnnotation, "L4"),
			wantLimits: corev1.ResourceList{"nvidia.com/gpu": resource.MustParse("1")},
			wantTol:    []corev1.Toleration{gpuToleration},
			wantAffinity: &corev1.NodeSelector{NodeSelectorTerms: []corev1.NodeSelectorTerm{
				{MatchExpressions: []corev1.NodeSelectorRequirement{{Key: "nvidia.com/gpu.product", Operator: corev1.NodeSelectorOpIn, Values: []string{"NVIDIA-L4"}}}},
				{MatchExpressions: []corev1.NodeSelectorRequirement{{Key: "cloud.google.com/gke-accelerator", Operator: corev1.NodeSelectorOpIn, Values: []string{"nvidia-l4"}}}},
			}},
			nodes: []map[string]string{{annotations.GKEAcceleratorLabel: "nvidia-l4"}},
		},
		"cpu and memory become requests=limits; a CPU step gets the sluice scheduler too": {
			job:          utiltesting.MakeJob("prep", "ml").Annotation(annotations.CPUAnnotation, "2").Annotation(annotations.MemoryAnnotation, "4Gi"),
			scheduler:    "sluice-scheduler",
			wantSched:    "sluice-scheduler",
			wantLimits:   corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("2"), corev1.ResourceMemory: resource.MustParse("4Gi")},
			wantRequests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("2"), corev1.ResourceMemory: resource.MustParse("4Gi")},
		},
		"explicit limits win, with a warning": {
			job: func() *utiltesting.JobWrapper {
				j := utiltesting.MakeJob("train", "ml").Annotation(annotations.GPUAnnotation, "1")
				j.Spec.Template.Spec.Containers[0].Resources.Limits = corev1.ResourceList{"nvidia.com/gpu": resource.MustParse("4")}
				return j
			}(),
			wantLimits:   corev1.ResourceList{"nvidia.com/gpu": resource.MustParse("4")},
			wantTol:      []corev1.Toleration{gpuToleration},
			wantWarnings: []string{`sluice.dev/gpu=1 is ignored: container "main" sets nvidia.com/gpu to 4 explicitly`},
		},
		"bad gpu count": {
			job:     utiltesting.MakeJob("train", "ml").Annotation(annotations.GPUAnnotation, "half"),
			wantErr: `metadata.annotations[sluice.dev/gpu]: Invalid value: "half": expected a positive whole number of GPUs`,
		},
		"unknown container": {
			job:     utiltesting.MakeJob("train", "ml").Annotation(annotations.GPUAnnotation, "1").Annotation(annotations.ContainerAnnotation, "trainer"),
			wantErr: `metadata.annotations[sluice.dev/container]: Invalid value: "trainer": no container of that name; the containers are main`,
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			job := tc.job.Obj()
			err := (&JobWebhook{mutator: mutator{schedulerName: tc.scheduler}}).Default(create, job)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Default() = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			spec := job.Spec.Template.Spec
			c := spec.Containers[0]
			if diff := cmp.Diff(tc.wantLimits, c.Resources.Limits); diff != "" {
				t.Errorf("limits (-want,+got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.wantRequests, c.Resources.Requests); diff != "" {
				t.Errorf("requests (-want,+got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.wantTol, spec.Tolerations); diff != "" {
				t.Errorf("tolerations (-want,+got):\n%s", diff)
			}
			var gotAff *corev1.NodeSelector
			if spec.Affinity != nil && spec.Affinity.NodeAffinity != nil {
				gotAff = spec.Affinity.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution
			}
			if diff := cmp.Diff(tc.wantAffinity, gotAff); diff != "" {
				t.Errorf("node affinity (-want,+got):\n%s", diff)
			}
			if spec.SchedulerName != tc.wantSched {
				t.Errorf("schedulerName = %q, want %q", spec.SchedulerName, tc.wantSched)
			}
			if acc := job.Annotations[annotations.AcceleratorAnnotation]; acc != "" {
				if got := job.Spec.Template.Annotations[annotations.AcceleratorAnnotation]; got != strings.TrimSpace(acc) {
					t.Errorf("pod template %s = %q, want %q", annotations.AcceleratorAnnotation, got, acc)
				}
			}
			v := validator{}
			if tc.nodes != nil {
				v.nodes = func(context.Context) ([]map[string]string, error) { return tc.nodes, nil }
			}
			warnings, err := (&JobWebhook{validator: v}).ValidateCreate(create, job)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.wantWarnings, []string(warnings)); diff != "" {
				t.Errorf("warnings (-want,+got):\n%s", diff)
			}
			again := job.DeepCopy()
			if err := (&JobWebhook{mutator: mutator{schedulerName: tc.scheduler}}).Default(create, again); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(job, again); diff != "" {
				t.Errorf("second Default() changed the job (-first,+second):\n%s", diff)
			}
		})
	}
}

func TestAcceleratorWarningWithoutNodes(t *testing.T) {
	v := validator{nodes: func(context.Context) ([]map[string]string, error) {
		return nil, errors.New("the node cache has not synced yet")
	}}
	if got := v.acceleratorWarnings(context.Background(), annotations.Resources{Accelerator: "h100"}); got != nil {
		t.Errorf("warnings while nodes are unknown = %q, want none", got)
	}
	v.nodes = func(context.Context) ([]map[string]string, error) { return nil, nil }
	want := []string{"sluice.dev/accelerator=h100: no node offers accelerator h100: no node is labelled nvidia.com/gpu.product or cloud.google.com/gke-accelerator; the step cannot start until a node that offers it joins"}
	if diff := cmp.Diff(want, v.acceleratorWarnings(context.Background(), annotations.Resources{Accelerator: "h100"})); diff != "" {
		t.Errorf("warnings in a cluster without GPU nodes (-want,+got):\n%s", diff)
	}
}
