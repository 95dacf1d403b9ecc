package webhook

import (
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
			warnings, err := (&JobWebhook{}).ValidateCreate(create, job)
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
