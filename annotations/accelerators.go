package annotations

import (
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// Node labels that name a node's accelerator: GPU feature discovery's, and
// GKE's.
const (
	GPUProductLabel     = "nvidia.com/gpu.product"
	GKEAcceleratorLabel = "cloud.google.com/gke-accelerator"
)

// AcceleratorLabels are the node labels an accelerator name is matched
// against.
var AcceleratorLabels = []string{GPUProductLabel, GKEAcceleratorLabel}

// accelerator is one GPU model under the names nodes carry for it.
type accelerator struct {
	// gke is GKE's name, the value of cloud.google.com/gke-accelerator.
	gke string
	// products are the values GPU feature discovery puts in
	// nvidia.com/gpu.product for its variants.
	products []string
	// short are the short forms users write (t4, a100); a short form may
	// name several models (a100: 40GB and 80GB).
	short []string
}

// accelerators is what sluice knows of accelerator names. Every name is
// matched case-insensitively with '_' read as '-', so the Kubeflow SDK's
// names (NVIDIA_TESLA_T4) are GKE's.
var accelerators = []accelerator{
	{"nvidia-tesla-k80", []string{"Tesla-K80"}, []string{"k80"}},
	{"nvidia-tesla-p4", []string{"Tesla-P4"}, []string{"p4"}},
	{"nvidia-tesla-p100", []string{"Tesla-P100-PCIE-16GB", "Tesla-P100-SXM2-16GB"}, []string{"p100"}},
	{"nvidia-tesla-v100", []string{"Tesla-V100-SXM2-16GB", "Tesla-V100-SXM2-32GB", "Tesla-V100-PCIE-16GB", "Tesla-V100-PCIE-32GB"}, []string{"v100"}},
	{"nvidia-tesla-t4", []string{"Tesla-T4"}, []string{"t4"}},
	{"nvidia-tesla-a100", []string{"NVIDIA-A100-SXM4-40GB", "NVIDIA-A100-PCIE-40GB"}, []string{"a100", "a100-40gb", "nvidia-a100", "nvidia-a100-40gb"}},
	{"nvidia-a100-80gb", []string{"NVIDIA-A100-SXM4-80GB", "NVIDIA-A100-80GB-PCIe"}, []string{"a100", "a100-80gb", "nvidia-a100"}},
	{"nvidia-l4", []string{"NVIDIA-L4"}, []string{"l4"}},
	{"nvidia-h100-80gb", []string{"NVIDIA-H100-80GB-HBM3", "NVIDIA-H100-PCIe"}, []string{"h100", "h100-80gb", "nvidia-h100"}},
	{"nvidia-h200-141gb", []string{"NVIDIA-H200"}, []string{"h200", "nvidia-h200"}},
}

// acceleratorNames maps each normalized name to the models it names.
var acceleratorNames = func() map[string][]*accelerator {
	m := map[string][]*accelerator{}
	for i := range accelerators {
		a := &accelerators[i]
		for _, name := range append(append([]string{a.gke}, a.products...), a.short...) {
			key := normalizeAccelerator(name)
			if !slices.Contains(m[key], a) {
				m[key] = append(m[key], a)
			}
		}
	}
	return m
}()

func normalizeAccelerator(name string) string {
	return strings.ReplaceAll(strings.ToLower(strings.TrimSpace(name)), "_", "-")
}

// AcceleratorMatch is what a sluice.dev/accelerator name accepts: the
// values of each accelerator label that a node may carry.
type AcceleratorMatch struct {
	// Name is the name as the step gives it.
	Name string
	// Known reports whether sluice knows the name; an unknown name accepts
	// itself, exactly, on either label.
	Known bool
	// GKE are the accepted cloud.google.com/gke-accelerator values;
	// Products the accepted nvidia.com/gpu.product values.
	GKE, Products []string
}

// MatchAccelerator resolves an accelerator name as users write it: GKE's
// (nvidia-tesla-t4), GPU feature discovery's (Tesla-T4,
// NVIDIA-A100-SXM4-40GB), the Kubeflow SDK's (NVIDIA_TESLA_T4) or short
// (t4, a100, h100), in any case. A name sluice does not know matches itself.
func MatchAccelerator(name string) AcceleratorMatch {
	m := AcceleratorMatch{Name: name}
	models := acceleratorNames[normalizeAccelerator(name)]
	if len(models) == 0 {
		m.GKE, m.Products = []string{name}, []string{name}
		return m
	}
	m.Known = true
	for _, a := range models {
		m.GKE = append(m.GKE, a.gke)
		m.Products = append(m.Products, a.products...)
	}
	return m
}

// Accepts reports whether a node with these labels carries the accelerator.
func (m AcceleratorMatch) Accepts(nodeLabels map[string]string) bool {
	if v, ok := nodeLabels[GPUProductLabel]; ok && slices.Contains(m.Products, v) {
		return true
	}
	v, ok := nodeLabels[GKEAcceleratorLabel]
	return ok && slices.Contains(m.GKE, v)
}

// NodeSelector is the required node affinity that places a step on nodes
// carrying the accelerator (terms are ORed). It is the one place where
// sluice decides which nodes match: the webhook writes it into every step
// that names an accelerator, and the scheduler's NodeAffinity filter (any
// scheduler's) enforces it.
func (m AcceleratorMatch) NodeSelector() *corev1.NodeSelector {
	return &corev1.NodeSelector{NodeSelectorTerms: []corev1.NodeSelectorTerm{
		{MatchExpressions: []corev1.NodeSelectorRequirement{{Key: GPUProductLabel, Operator: corev1.NodeSelectorOpIn, Values: slices.Clone(m.Products)}}},
		{MatchExpressions: []corev1.NodeSelectorRequirement{{Key: GKEAcceleratorLabel, Operator: corev1.NodeSelectorOpIn, Values: slices.Clone(m.GKE)}}},
	}}
}

// OfferedAccelerators returns the accelerator label values a node carries.
func OfferedAccelerators(nodeLabels map[string]string) []string {
	var offered []string
	for _, l := range AcceleratorLabels {
		if v := nodeLabels[l]; v != "" {
			offered = append(offered, v)
		}
	}
	return offered
}

// NoNodeOffers says that no node carries the accelerator, and what the nodes
// do carry (sorted, deduplicated, at most 20 named).
func NoNodeOffers(name string, offered []string) string {
	offered = slices.Compact(slices.Sorted(slices.Values(offered)))
	if len(offered) == 0 {
		return fmt.Sprintf("no node offers accelerator %s: no node is labelled %s or %s", name, GPUProductLabel, GKEAcceleratorLabel)
	}
	const most = 20
	list := strings.Join(offered[:min(len(offered), most)], ", ")
	if len(offered) > most {
		list += fmt.Sprintf(" and %d more", len(offered)-most)
	}
	return fmt.Sprintf("no node offers accelerator %s; the nodes offer %s", name, list)
}
