package plugin

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
	frameworkruntime "k8s.io/kubernetes/pkg/scheduler/framework/runtime"

	"github.com/sluice-dev/sluice/annotations"
)

// SluiceGPUArgs configures the SluiceGPU plugin (pluginConfig args of a
// KubeSchedulerConfiguration profile).
type SluiceGPUArgs struct {
	// AcceleratorLabels are the node labels that name a node's accelerator,
	// tried in order. Default: nvidia.com/gpu.product,
	// cloud.google.com/gke-accelerator.
	AcceleratorLabels []string `json:"acceleratorLabels,omitempty"`
	// GPUResourceName is the extended resource that counts GPUs.
	// Default: nvidia.com/gpu.
	GPUResourceName string `json:"gpuResourceName,omitempty"`
	// LocalityWeight (0-100) weighs placing a step next to its run's
	// upstream steps. 0, the default, turns locality off.
	LocalityWeight int `json:"localityWeight,omitempty"`
}

var argsPath = field.NewPath("args")

// DecodeArgs decodes, defaults and validates the plugin's args. A nil obj
// gives the defaults.
func DecodeArgs(obj runtime.Object) (*SluiceGPUArgs, error) {
	args := &SluiceGPUArgs{}
	if obj != nil {
		if typed, ok := obj.(*SluiceGPUArgs); ok {
			args = typed.DeepCopy()
		} else if err := frameworkruntime.DecodeInto(obj, args); err != nil {
			return nil, fmt.Errorf("decoding %s args: %w", Name, err)
		}
	}
	SetDefaults(args)
	if errs := Validate(args); len(errs) > 0 {
		return nil, fmt.Errorf("invalid %s args: %w", Name, errs.ToAggregate())
	}
	return args, nil
}

// SetDefaults fills in what args leaves unset.
func SetDefaults(args *SluiceGPUArgs) {
	if len(args.AcceleratorLabels) == 0 {
		args.AcceleratorLabels = []string{annotations.GPUProductLabel, annotations.GKEAcceleratorLabel}
	}
	if args.GPUResourceName == "" {
		args.GPUResourceName = annotations.GPUResource
	}
}

// Validate checks defaulted args.
func Validate(args *SluiceGPUArgs) field.ErrorList {
	var errs field.ErrorList
	for i, l := range args.AcceleratorLabels {
		for _, msg := range validation.IsQualifiedName(l) {
			errs = append(errs, field.Invalid(argsPath.Child("acceleratorLabels").Index(i), l, msg))
		}
	}
	for _, msg := range validation.IsQualifiedName(args.GPUResourceName) {
		errs = append(errs, field.Invalid(argsPath.Child("gpuResourceName"), args.GPUResourceName, msg))
	}
	if args.LocalityWeight < 0 || args.LocalityWeight > 100 {
		errs = append(errs, field.Invalid(argsPath.Child("localityWeight"), args.LocalityWeight, "must be between 0 and 100"))
	}
	return errs
}

// DeepCopy returns a copy of args.
func (in *SluiceGPUArgs) DeepCopy() *SluiceGPUArgs {
	out := *in
	out.AcceleratorLabels = append([]string(nil), in.AcceleratorLabels...)
	return &out
}

// DeepCopyObject makes SluiceGPUArgs a runtime.Object, so tests and callers
// may pass typed args.
func (in *SluiceGPUArgs) DeepCopyObject() runtime.Object { return in.DeepCopy() }

// GetObjectKind implements runtime.Object; the args carry no type meta.
func (in *SluiceGPUArgs) GetObjectKind() schema.ObjectKind { return schema.EmptyObjectKind }

func (in *SluiceGPUArgs) gpuResource() corev1.ResourceName {
	return corev1.ResourceName(in.GPUResourceName)
}
