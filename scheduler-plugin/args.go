package plugin

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/yaml"

	"github.com/sluice-dev/sluice/annotations"
)

// SluiceGPUArgs configures the SluiceGPU plugin (pluginConfig args of a
// KubeSchedulerConfiguration profile).
type SluiceGPUArgs struct {
	// GPUResourceName is the extended resource that counts GPUs.
	// Default: nvidia.com/gpu.
	GPUResourceName string `json:"gpuResourceName,omitempty"`
}

var argsPath = field.NewPath("args")

// DecodeArgs decodes, defaults and validates the plugin's args. A nil obj
// gives the defaults.
func DecodeArgs(obj runtime.Object) (*SluiceGPUArgs, error) {
	args := &SluiceGPUArgs{}
	if obj != nil {
		if typed, ok := obj.(*SluiceGPUArgs); ok {
			args = typed.DeepCopy()
		} else if err := decodeStrict(obj, args); err != nil {
			return nil, fmt.Errorf("decoding %s args: %w", Name, err)
		}
	}
	SetDefaults(args)
	if errs := Validate(args); len(errs) > 0 {
		return nil, fmt.Errorf("invalid %s args: %w", Name, errs.ToAggregate())
	}
	return args, nil
}

// decodeStrict decodes raw args, refusing fields the plugin does not know
// (such as acceleratorLabels and localityWeight, which it no longer has)
// instead of ignoring them.
func decodeStrict(obj runtime.Object, into *SluiceGPUArgs) error {
	raw, ok := obj.(*runtime.Unknown)
	if !ok {
		return fmt.Errorf("want args of type runtime.Unknown, got %T", obj)
	}
	if raw.Raw == nil {
		return nil
	}
	return yaml.UnmarshalStrict(raw.Raw, into)
}

// SetDefaults fills in what args leaves unset.
func SetDefaults(args *SluiceGPUArgs) {
	if args.GPUResourceName == "" {
		args.GPUResourceName = annotations.GPUResource
	}
}

// Validate checks defaulted args.
func Validate(args *SluiceGPUArgs) field.ErrorList {
	var errs field.ErrorList
	for _, msg := range validation.IsQualifiedName(args.GPUResourceName) {
		errs = append(errs, field.Invalid(argsPath.Child("gpuResourceName"), args.GPUResourceName, msg))
	}
	return errs
}

// DeepCopy returns a copy of args.
func (in *SluiceGPUArgs) DeepCopy() *SluiceGPUArgs {
	out := *in
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
