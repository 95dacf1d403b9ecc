package kfp

import (
	"fmt"
	"strconv"
	"strings"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/sluice-dev/sluice/annotations"
	"github.com/sluice-dev/sluice/kfp/task"
)

// staticValue resolves a setting that may be a placeholder over the task's
// input parameters ({{$.inputs.parameters['x']}}); one that an upstream
// task's output would decide is refused, naming what.
func staticValue(s *step, exe *task.Executor, what, v string) (string, error) {
	refs, err := task.Refs([]string{v})
	if err != nil {
		return "", fmt.Errorf("%s: %w", what, err)
	}
	for _, r := range refs {
		if p, ok := exe.Inputs.Parameters[r.Name]; ok && r.Kind == task.RefInputParameter && len(p.Files) > 0 {
			return "", fmt.Errorf("%s comes from an upstream task's output (%s); sluice sets it at import, so it must be a constant or a pipeline parameter", what, r.Name)
		}
	}
	res, err := task.NewResolver(staticOnly(exe), nil)
	if err != nil {
		return "", fmt.Errorf("%s: %w", what, err)
	}
	out, err := task.Expand(v, res)
	if err != nil {
		return "", fmt.Errorf("%s: %w", what, err)
	}
	return strings.Join(out, ""), nil
}

// staticOnly is exe without the inputs only known at run time.
func staticOnly(exe *task.Executor) *task.Executor {
	cp := *exe
	cp.Inputs.Parameters = map[string]task.InputParameter{}
	for k, p := range exe.Inputs.Parameters {
		if len(p.Files) == 0 {
			cp.Inputs.Parameters[k] = p
		}
	}
	cp.Inputs.Artifacts = nil
	return &cp
}

// resources applies the container's cpu, memory and accelerator settings:
// a limit alone (requests then equal it, as Kubernetes defaults them) as
// sluice.dev/cpu and sluice.dev/memory; a request besides, on the container
// itself; accelerators as sluice.dev/gpu and sluice.dev/accelerator.
func (c *converter) resources(s *step, job *batchv1.Job, exe *task.Executor) error {
	r := s.exec.Resources
	if r == nil {
		return nil
	}
	annots := job.Annotations
	ctr := &job.Spec.Template.Spec.Containers[0]
	quantity := func(what, str string, num float64, memory bool) (*resource.Quantity, error) {
		if str == "" && num == 0 {
			return nil, nil
		}
		if str == "" {
			if memory {
				str = strconv.FormatFloat(num*1e9, 'f', 0, 64) // the SDK's older field is in GB
			} else {
				str = strconv.FormatFloat(num, 'f', -1, 64)
			}
		}
		v, err := staticValue(s, exe, what, str)
		if err != nil {
			return nil, err
		}
		q, err := resource.ParseQuantity(strings.TrimSpace(v))
		if err != nil {
			return nil, fmt.Errorf("%s %q is not a Kubernetes quantity (e.g. 500m, 2, 4Gi)", what, v)
		}
		return &q, nil
	}
	type pair struct {
		name           corev1.ResourceName
		key            string
		limit, request *resource.Quantity
	}
	cpuLimit, err := quantity("cpu limit", r.ResourceCPULimit, r.CPULimit, false)
	if err != nil {
		return err
	}
	cpuReq, err := quantity("cpu request", r.ResourceCPURequest, r.CPURequest, false)
	if err != nil {
		return err
	}
	memLimit, err := quantity("memory limit", r.ResourceMemoryLimit, r.MemoryLimit, true)
	if err != nil {
		return err
	}
	memReq, err := quantity("memory request", r.ResourceMemoryRequest, r.MemoryRequest, true)
	if err != nil {
		return err
	}
	for _, p := range []pair{
		{corev1.ResourceCPU, annotations.CPUAnnotation, cpuLimit, cpuReq},
		{corev1.ResourceMemory, annotations.MemoryAnnotation, memLimit, memReq},
	} {
		switch {
		case p.limit != nil && (p.request == nil || p.request.Cmp(*p.limit) == 0):
			annots[p.key] = p.limit.String()
		case p.limit != nil || p.request != nil:
			if p.limit != nil {
				setResource(&ctr.Resources.Limits, p.name, *p.limit)
			}
			if p.request != nil {
				setResource(&ctr.Resources.Requests, p.name, *p.request)
			}
		}
	}
	if a := r.Accelerator; a != nil {
		typ := a.ResourceType
		if typ == "" {
			typ = a.Type
		}
		count := a.ResourceCount
		if count == "" && a.Count != nil {
			count = task.Format(a.Count)
		}
		if typ, err = staticValue(s, exe, "accelerator type", typ); err != nil {
			return err
		}
		if count, err = staticValue(s, exe, "accelerator count", count); err != nil {
			return err
		}
		n := int64(1)
		if strings.TrimSpace(count) != "" {
			if n, err = strconv.ParseInt(strings.TrimSpace(count), 10, 64); err != nil || n < 0 {
				return fmt.Errorf("accelerator count %q is not a whole number", count)
			}
		}
		switch {
		case n == 0:
		case typ == "" || typ == annotations.GPUResource:
			annots[annotations.GPUAnnotation] = strconv.FormatInt(n, 10)
		case strings.Contains(typ, "/"):
			// Another vendor's device plugin resource (amd.com/gpu, ...): as KFP does, a limit.
			q := *resource.NewQuantity(n, resource.DecimalSI)
			setResource(&ctr.Resources.Limits, corev1.ResourceName(typ), q)
		default:
			annots[annotations.GPUAnnotation] = strconv.FormatInt(n, 10)
			annots[annotations.AcceleratorAnnotation] = typ
		}
	}
	return nil
}

func setResource(list *corev1.ResourceList, name corev1.ResourceName, q resource.Quantity) {
	if *list == nil {
		*list = corev1.ResourceList{}
	}
	(*list)[name] = q
}
