package annotations

import (
	"fmt"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// GPUResource is the extended resource NVIDIA's device plugin advertises.
const GPUResource = "nvidia.com/gpu"

// Resources is what a step asks for through annotations.
type Resources struct {
	GPUs        int64
	Accelerator string
	Container   string
	CPU         *resource.Quantity
	Memory      *resource.Quantity
}

// Empty reports whether the step asks for nothing.
func (r Resources) Empty() bool {
	return r.GPUs == 0 && r.Accelerator == "" && r.CPU == nil && r.Memory == nil
}

// ParseResources reads the resource annotations of a step.
func ParseResources(obj metav1.Object) (Resources, field.ErrorList) {
	annots := obj.GetAnnotations()
	var r Resources
	var errs field.ErrorList
	if v, ok := annots[GPUAnnotation]; ok {
		n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 32)
		if err != nil || n <= 0 {
			errs = append(errs, field.Invalid(annotationsPath.Key(GPUAnnotation), v, "expected a positive whole number of GPUs, e.g. \"1\""))
		} else {
			r.GPUs = n
		}
	}
	if v, ok := annots[AcceleratorAnnotation]; ok {
		r.Accelerator = strings.TrimSpace(v)
		if msgs := validation.IsValidLabelValue(r.Accelerator); len(msgs) > 0 || r.Accelerator == "" {
			errs = append(errs, field.Invalid(annotationsPath.Key(AcceleratorAnnotation), v,
				"expected an accelerator name such as nvidia-tesla-t4 or nvidia-tesla-a100 (a label value)"))
		} else if _, hasGPU := annots[GPUAnnotation]; !hasGPU {
			r.GPUs = 1 // naming an accelerator asks for one of it
		}
	}
	if v, ok := annots[ContainerAnnotation]; ok {
		r.Container = v
		if msgs := validation.IsDNS1123Label(v); len(msgs) > 0 {
			errs = append(errs, field.Invalid(annotationsPath.Key(ContainerAnnotation), v, "expected a container name"))
		}
	}
	for _, q := range []struct {
		key  string
		dst  **resource.Quantity
		hint string
	}{{CPUAnnotation, &r.CPU, "e.g. 500m or 2"}, {MemoryAnnotation, &r.Memory, "e.g. 512Mi or 4Gi"}} {
		v, ok := annots[q.key]
		if !ok {
			continue
		}
		parsed, err := resource.ParseQuantity(strings.TrimSpace(v))
		if err != nil || parsed.Sign() <= 0 {
			errs = append(errs, field.Invalid(annotationsPath.Key(q.key), v, fmt.Sprintf("expected a positive quantity, %s", q.hint)))
			continue
		}
		*q.dst = &parsed
	}
	return r, errs
}
