package webhook

import (
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/sluice-dev/sluice/annotations"
)

// mainContainer returns the index of the step's main container: the one
// sluice.dev/container names, or the first.
func mainContainer(spec *corev1.PodSpec, res annotations.Resources) (int, *field.Error) {
	if len(spec.Containers) == 0 {
		return 0, field.Required(field.NewPath("spec", "containers"), "the step has no container to give its sluice resources to")
	}
	if res.Container == "" {
		return 0, nil
	}
	var names []string
	for i, c := range spec.Containers {
		if c.Name == res.Container {
			return i, nil
		}
		names = append(names, c.Name)
	}
	return 0, field.Invalid(annotationsPath.Key(annotations.ContainerAnnotation), res.Container,
		"no container of that name; the containers are "+strings.Join(names, ", "))
}

// setScheduler gives every step the sluice scheduler (when configured), GPU
// or not: it also keeps CPU steps off GPU nodes. A scheduler the user chose
// is left alone.
func setScheduler(spec *corev1.PodSpec, schedulerName string) {
	if schedulerName != "" && (spec.SchedulerName == "" || spec.SchedulerName == corev1.DefaultSchedulerName) {
		spec.SchedulerName = schedulerName
	}
}

// injectResources applies the resource annotations to the main container:
// GPU limits, cpu/memory requests=limits. Values the spec sets explicitly
// win (resourceWarnings says so). GPU steps tolerate the GPU taint; an
// accelerator becomes required node affinity on the accelerator labels, so
// that even the default scheduler places the step on the right node type.
func injectResources(spec *corev1.PodSpec, res annotations.Resources) *field.Error {
	if res.Empty() {
		return nil
	}
	i, err := mainContainer(spec, res)
	if err != nil {
		return err
	}
	c := &spec.Containers[i]
	setLimit := func(name corev1.ResourceName, q *resource.Quantity, requestsToo bool) {
		if q == nil {
			return
		}
		if _, set := c.Resources.Limits[name]; set {
			return
		}
		if _, set := c.Resources.Requests[name]; set {
			return
		}
		if c.Resources.Limits == nil {
			c.Resources.Limits = corev1.ResourceList{}
		}
		c.Resources.Limits[name] = *q
		if requestsToo {
			if c.Resources.Requests == nil {
				c.Resources.Requests = corev1.ResourceList{}
			}
			c.Resources.Requests[name] = *q
		}
	}
	if res.GPUs > 0 {
		setLimit(annotations.GPUResource, resource.NewQuantity(res.GPUs, resource.DecimalSI), false)
		toleration := corev1.Toleration{Key: annotations.GPUResource, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule}
		if !slices.Contains(spec.Tolerations, toleration) {
			spec.Tolerations = append(spec.Tolerations, toleration)
		}
	}
	setLimit(corev1.ResourceCPU, res.CPU, true)
	setLimit(corev1.ResourceMemory, res.Memory, true)
	if res.Accelerator != "" && !hasRequiredNodeAffinity(spec) {
		if spec.Affinity == nil {
			spec.Affinity = &corev1.Affinity{}
		}
		if spec.Affinity.NodeAffinity == nil {
			spec.Affinity.NodeAffinity = &corev1.NodeAffinity{}
		}
		spec.Affinity.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution = annotations.MatchAccelerator(res.Accelerator).NodeSelector()
	}
	return nil
}

func hasRequiredNodeAffinity(spec *corev1.PodSpec) bool {
	return spec.Affinity != nil && spec.Affinity.NodeAffinity != nil && spec.Affinity.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution != nil
}

// resourceWarnings says where the spec's own values win over annotations.
func resourceWarnings(spec *corev1.PodSpec, res annotations.Resources) []string {
	i, err := mainContainer(spec, res)
	if err != nil || res.Empty() {
		return nil
	}
	c := spec.Containers[i]
	var warnings []string
	check := func(key string, name corev1.ResourceName, want *resource.Quantity) {
		if want == nil {
			return
		}
		got, ok := c.Resources.Limits[name]
		if !ok {
			got, ok = c.Resources.Requests[name]
		}
		if ok && got.Cmp(*want) != 0 {
			warnings = append(warnings, fmt.Sprintf("%s=%s is ignored: container %q sets %s to %s explicitly", key, want.String(), c.Name, name, got.String()))
		}
	}
	if res.GPUs > 0 {
		check(annotations.GPUAnnotation, annotations.GPUResource, resource.NewQuantity(res.GPUs, resource.DecimalSI))
	}
	check(annotations.CPUAnnotation, corev1.ResourceCPU, res.CPU)
	check(annotations.MemoryAnnotation, corev1.ResourceMemory, res.Memory)
	if res.Accelerator != "" && hasRequiredNodeAffinity(spec) {
		sel := spec.Affinity.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution
		if !equality.Semantic.DeepEqual(sel, annotations.MatchAccelerator(res.Accelerator).NodeSelector()) {
			warnings = append(warnings, fmt.Sprintf("%s=%s adds no node affinity: the pod sets required node affinity of its own; make sure it selects %s nodes",
				annotations.AcceleratorAnnotation, res.Accelerator, res.Accelerator))
		}
	}
	return warnings
}

// setAccelerator copies the step's accelerator onto the metadata of the pod
// it runs (a Job's pod template), so that the scheduler can name it when no
// node offers it.
func setAccelerator(meta *metav1.ObjectMeta, res annotations.Resources) {
	if res.Accelerator == "" {
		return
	}
	if meta.Annotations == nil {
		meta.Annotations = map[string]string{}
	}
	meta.Annotations[annotations.AcceleratorAnnotation] = res.Accelerator
}

// mutateStep applies everything the webhook injects into a step's pod spec.
func mutateStep(spec *corev1.PodSpec, task *annotations.Task, res annotations.Resources, schedulerName string) field.ErrorList {
	injectPodSpec(spec, task)
	setScheduler(spec, schedulerName)
	if err := injectResources(spec, res); err != nil {
		return field.ErrorList{err}
	}
	return nil
}
