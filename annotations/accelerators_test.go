package annotations

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestMatchAccelerator(t *testing.T) {
	t4 := AcceleratorMatch{Known: true, GKE: []string{"nvidia-tesla-t4"}, Products: []string{"Tesla-T4"}}
	a100 := AcceleratorMatch{Known: true,
		GKE:      []string{"nvidia-tesla-a100", "nvidia-a100-80gb"},
		Products: []string{"NVIDIA-A100-SXM4-40GB", "NVIDIA-A100-PCIE-40GB", "NVIDIA-A100-SXM4-80GB", "NVIDIA-A100-80GB-PCIe"}}
	a100x40 := AcceleratorMatch{Known: true, GKE: []string{"nvidia-tesla-a100"}, Products: []string{"NVIDIA-A100-SXM4-40GB", "NVIDIA-A100-PCIE-40GB"}}
	cases := map[string]AcceleratorMatch{
		"nvidia-tesla-t4":       t4, // GKE's
		"Tesla-T4":              t4, // GPU feature discovery's
		"tesla-t4":              t4,
		"NVIDIA_TESLA_T4":       t4, // the Kubeflow SDK's
		"t4":                    t4,
		" T4 ":                  t4,
		"a100":                  a100, // a family: both sizes
		"nvidia-a100":           a100,
		"NVIDIA_TESLA_A100":     a100x40,
		"NVIDIA-A100-SXM4-40GB": a100x40,
		"nvidia-a100-40gb":      a100x40,
		"NVIDIA_A100_80GB":      {Known: true, GKE: []string{"nvidia-a100-80gb"}, Products: []string{"NVIDIA-A100-SXM4-80GB", "NVIDIA-A100-80GB-PCIe"}},
		"h100":                  {Known: true, GKE: []string{"nvidia-h100-80gb"}, Products: []string{"NVIDIA-H100-80GB-HBM3", "NVIDIA-H100-PCIe"}},
		"my-gpu":                {GKE: []string{"my-gpu"}, Products: []string{"my-gpu"}},
		"MI300X":                {GKE: []string{"MI300X"}, Products: []string{"MI300X"}},
	}
	for name, want := range cases {
		want.Name = name
		if diff := cmp.Diff(want, MatchAccelerator(name)); diff != "" {
			t.Errorf("MatchAccelerator(%q) (-want,+got):\n%s", name, diff)
		}
	}
}

func TestAcceleratorAccepts(t *testing.T) {
	cases := []struct {
		name   string
		labels map[string]string
		want   bool
	}{
		{"t4", map[string]string{GPUProductLabel: "Tesla-T4"}, true},
		{"t4", map[string]string{GKEAcceleratorLabel: "nvidia-tesla-t4"}, true},
		{"t4", map[string]string{GPUProductLabel: "tesla-t4"}, false}, // node labels are exact
		{"t4", map[string]string{"other": "Tesla-T4"}, false},
		{"t4", nil, false},
		{"a100", map[string]string{GPUProductLabel: "NVIDIA-A100-80GB-PCIe"}, true},
		{"my-gpu", map[string]string{GKEAcceleratorLabel: "my-gpu"}, true},
	}
	for _, tc := range cases {
		if got := MatchAccelerator(tc.name).Accepts(tc.labels); got != tc.want {
			t.Errorf("MatchAccelerator(%q).Accepts(%v) = %v, want %v", tc.name, tc.labels, got, tc.want)
		}
	}
}

// Every name of the catalog must be a valid label value (node affinity
// values are), and the GKE and product names of two models never collide.
func TestAcceleratorCatalog(t *testing.T) {
	owner := map[string]string{}
	for _, a := range accelerators {
		for _, v := range append([]string{a.gke}, a.products...) {
			if _, errs := ParseResources(object("x", nil, map[string]string{AcceleratorAnnotation: v})); len(errs) > 0 {
				t.Errorf("%s: %v", v, errs)
			}
			if o, ok := owner[v]; ok {
				t.Errorf("%s names both %s and %s", v, o, a.gke)
			}
			owner[v] = a.gke
		}
	}
}
