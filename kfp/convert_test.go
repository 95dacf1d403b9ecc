package kfp

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/utils/ptr"

	"github.com/sluice-dev/sluice/annotations"
)

// convertOne converts minimal with the container's extra YAML (indented
// under container:), the platform document's settings for exec-a, and the
// pipeline's inputs, and returns task a's Job.
func convertOne(t *testing.T, container, platform string, params map[string]any) (*batchv1.Job, *Result, error) {
	t.Helper()
	data := minimal
	if container != "" {
		data = strings.Replace(data, "        image: busybox\n", "        image: busybox\n"+container, 1)
	}
	if platform != "" {
		data += "---\nplatforms:\n  kubernetes:\n    deploymentSpec:\n      executors:\n        exec-a:\n" + platform
	}
	p, err := Decode([]byte(data))
	if err != nil {
		t.Fatal(err)
	}
	res, err := Convert(p, Options{Run: "r", Params: params, LauncherImage: "l"})
	if err != nil {
		return nil, nil, err
	}
	return res.Jobs[0], res, nil
}

// TestConvertResources: a limit alone as sluice's keys (requests follow
// it), a request besides as the container's own, accelerators as sluice's
// GPU keys, another vendor's device as a limit.
func TestConvertResources(t *testing.T) {
	for name, tc := range map[string]struct {
		container string
		annots    map[string]string
		res       corev1.ResourceRequirements
		err       string
	}{
		"limits": {
			container: "        resources: {resourceCpuLimit: '2', resourceMemoryLimit: 4Gi}\n",
			annots:    map[string]string{annotations.CPUAnnotation: "2", annotations.MemoryAnnotation: "4Gi"},
		},
		"request and limit": {
			container: "        resources: {resourceCpuRequest: 500m, resourceCpuLimit: '2'}\n",
			res: corev1.ResourceRequirements{
				Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("500m")},
				Limits:   corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("2")},
			},
		},
		"the SDK's older numbers": {
			container: "        resources: {cpuLimit: 1.5, memoryLimit: 0.5}\n",
			annots:    map[string]string{annotations.CPUAnnotation: "1500m", annotations.MemoryAnnotation: "500M"},
		},
		"nvidia GPUs": {
			container: "        resources: {accelerator: {resourceType: nvidia.com/gpu, resourceCount: '2'}}\n",
			annots:    map[string]string{annotations.GPUAnnotation: "2"},
		},
		"a GPU type": {
			container: "        resources: {accelerator: {type: NVIDIA_TESLA_T4, count: '1'}}\n",
			annots:    map[string]string{annotations.GPUAnnotation: "1", annotations.AcceleratorAnnotation: "NVIDIA_TESLA_T4"},
		},
		"another vendor's device": {
			container: "        resources: {accelerator: {resourceType: amd.com/gpu, resourceCount: '1'}}\n",
			res:       corev1.ResourceRequirements{Limits: corev1.ResourceList{"amd.com/gpu": resource.MustParse("1")}},
		},
		"not a quantity": {
			container: "        resources: {resourceMemoryLimit: lots}\n",
			err:       `memory limit "lots" is not a Kubernetes quantity`,
		},
	} {
		t.Run(name, func(t *testing.T) {
			job, _, err := convertOne(t, tc.container, "", nil)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) || !strings.HasPrefix(err.Error(), "task a: ") {
					t.Fatalf("error %v, want one naming task a and %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]string{}
			for _, k := range []string{annotations.CPUAnnotation, annotations.MemoryAnnotation, annotations.GPUAnnotation, annotations.AcceleratorAnnotation} {
				if v, ok := job.Annotations[k]; ok {
					got[k] = v
				}
			}
			if tc.annots == nil {
				tc.annots = map[string]string{}
			}
			if diff := cmp.Diff(tc.annots, got); diff != "" {
				t.Errorf("annotations (-want,+got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.res, job.Spec.Template.Spec.Containers[0].Resources); diff != "" {
				t.Errorf("resources (-want,+got):\n%s", diff)
			}
		})
	}
}

// TestConvertPlatform: kfp-kubernetes settings become the pod's fields;
// names read from pipeline parameters are resolved, a setting whose
// optional parameter is unset is left out, and one taken from a task's
// output is refused.
func TestConvertPlatform(t *testing.T) {
	for name, tc := range map[string]struct {
		platform string
		params   map[string]any
		check    func(t *testing.T, pod *corev1.PodSpec)
		err      string
	}{
		"secret as env, its name a parameter": {
			platform: "          secretAsEnv:\n          - secretNameParameter: {componentInputParameter: creds}\n            keyToEnv: [{secretKey: user, envVar: USER}]\n",
			params:   map[string]any{"creds": "db-creds"},
			check: func(t *testing.T, pod *corev1.PodSpec) {
				want := []corev1.EnvVar{{Name: "USER", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
					LocalObjectReference: corev1.LocalObjectReference{Name: "db-creds"}, Key: "user"}}}}
				if diff := cmp.Diff(want, pod.Containers[0].Env); diff != "" {
					t.Errorf("env (-want,+got):\n%s", diff)
				}
			},
		},
		"an optional parameter unset: that setting alone is left out": {
			platform: "          secretAsEnv:\n          - secretNameParameter: {componentInputParameter: creds}\n            keyToEnv: [{secretKey: user, envVar: USER}]\n" +
				"          - secretName: other\n            keyToEnv: [{secretKey: token, envVar: TOKEN}]\n",
			check: func(t *testing.T, pod *corev1.PodSpec) {
				if env := pod.Containers[0].Env; len(env) != 1 || env[0].Name != "TOKEN" {
					t.Errorf("env %v, want TOKEN alone", env)
				}
			},
		},
		"volumes, selector, tolerations, timeout": {
			platform: "          pvcMount: [{constant: data, mountPath: /data}]\n" +
				"          configMapAsVolume: [{configMapName: cfg, mountPath: /etc/cfg, optional: true}]\n" +
				"          nodeSelector: {labels: {disk: ssd}}\n" +
				"          tolerations: [{key: gpu, operator: Exists, effect: NoSchedule}]\n" +
				"          activeDeadlineSeconds: '20'\n",
			check: func(t *testing.T, pod *corev1.PodSpec) {
				wantVols := []corev1.Volume{
					{Name: "config-map-cfg", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "cfg"}, Optional: ptr.To(true)}}},
					{Name: "pvc-data", VolumeSource: corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: "data"}}},
				}
				if diff := cmp.Diff(wantVols, pod.Volumes); diff != "" {
					t.Errorf("volumes (-want,+got):\n%s", diff)
				}
				if diff := cmp.Diff(map[string]string{"disk": "ssd"}, pod.NodeSelector); diff != "" {
					t.Errorf("node selector (-want,+got):\n%s", diff)
				}
				if diff := cmp.Diff([]corev1.Toleration{{Key: "gpu", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule}}, pod.Tolerations); diff != "" {
					t.Errorf("tolerations (-want,+got):\n%s", diff)
				}
				if ptr.Deref(pod.ActiveDeadlineSeconds, 0) != 20 {
					t.Errorf("activeDeadlineSeconds %v, want 20", pod.ActiveDeadlineSeconds)
				}
			},
		},
		"a mount on sluice's own paths": {
			platform: "          pvcMount: [{constant: data, mountPath: /sluice/outputs}]\n",
			err:      "mount path /sluice/outputs is sluice's own",
		},
		"a claim name from a task's output": {
			platform: "          pvcMount: [{taskOutputParameter: {producerTask: make, outputParameterKey: name}, mountPath: /data}]\n",
			err:      "claim name comes from the output name of task make",
		},
	} {
		t.Run(name, func(t *testing.T) {
			if tc.params == nil {
				tc.params = map[string]any{}
			}
			job, _, err := convertOne(t, "", tc.platform, tc.params)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) || !strings.HasPrefix(err.Error(), "task a: ") {
					t.Fatalf("error %v, want one naming task a and %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, &job.Spec.Template.Spec)
		})
	}
}

// TestConvertRetries: set_retry(n) is backoffLimit n; without it 0, as KFP
// does not retry a task by default.
func TestConvertRetries(t *testing.T) {
	job, _, err := convertOne(t, "", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if *job.Spec.BackoffLimit != 0 {
		t.Errorf("backoffLimit %d without a retry policy, want 0", *job.Spec.BackoffLimit)
	}
	data := strings.Replace(minimal, "taskInfo: {name: a}", "taskInfo: {name: a}\n        retryPolicy: {maxRetryCount: 3, backoffDuration: 0s}", 1)
	p, err := Decode([]byte(data))
	if err != nil {
		t.Fatal(err)
	}
	res, err := Convert(p, Options{Run: "r", LauncherImage: "l"})
	if err != nil {
		t.Fatal(err)
	}
	if got := *res.Jobs[0].Spec.BackoffLimit; got != 3 {
		t.Errorf("backoffLimit %d, want 3", got)
	}
	if len(res.Warnings) != 1 || !strings.Contains(res.Warnings[0], "task a: retries 3 times") {
		t.Errorf("warnings %q, want one about the backoff", res.Warnings)
	}
}

const loopIR = `
pipelineInfo: {name: loop}
schemaVersion: 2.1.0
components:
  comp-work:
    executorLabel: exec-work
    inputDefinitions: {parameters: {item: {parameterType: STRING}}}
    outputDefinitions: {parameters: {Output: {parameterType: STRING}}}
  comp-join:
    executorLabel: exec-join
    inputDefinitions: {parameters: {all: {parameterType: LIST}}}
  comp-for-loop-1:
    dag:
      outputs:
        parameters:
          pipelinechannel--work-Output: {valueFromParameter: {producerSubtask: work, outputParameterKey: Output}}
      tasks:
        work:
          componentRef: {name: comp-work}
          inputs: {parameters: {item: {componentInputParameter: pipelinechannel--items-loop-item}}}
          taskInfo: {name: work}
    inputDefinitions:
      parameters:
        pipelinechannel--items: {parameterType: LIST}
        pipelinechannel--items-loop-item: {parameterType: STRING}
    outputDefinitions:
      parameters:
        pipelinechannel--work-Output: {parameterType: LIST}
deploymentSpec:
  executors:
    exec-work: {container: {image: busybox, command: [echo, "{{$.inputs.parameters['item']}}", "{{$.outputs.parameters['Output'].output_file}}"]}}
    exec-join: {container: {image: busybox, command: [echo, "{{$.inputs.parameters['all']}}"]}}
root:
  dag:
    tasks:
      for-loop-1:
        componentRef: {name: comp-for-loop-1}
        inputs: {parameters: {pipelinechannel--items: {componentInputParameter: items}}}
        iteratorPolicy: {parallelismLimit: 2}
        parameterIterator:
          itemInput: pipelinechannel--items-loop-item
          items: {inputParameter: pipelinechannel--items}
        taskInfo: {name: for-loop-1}
      join:
        componentRef: {name: comp-join}
        dependentTasks: [for-loop-1]
        inputs:
          parameters:
            all: {taskOutputParameter: {producerTask: for-loop-1, outputParameterKey: pipelinechannel--work-Output}}
        taskInfo: {name: join}
  inputDefinitions:
    parameters:
      items: {parameterType: LIST}
`

// TestConvertLoop: a loop over a pipeline parameter is unrolled, each
// iteration named by its index and given its item; parallelism 2 makes
// two lanes; a dsl.Collected consumer reads every iteration's output.
func TestConvertLoop(t *testing.T) {
	p, err := Decode([]byte(loopIR))
	if err != nil {
		t.Fatal(err)
	}
	params, err := ResolveParams(p.Spec.Root.InputDefinitions.Parameters, map[string]string{"items": `["a","b","c"]`}, nil)
	if err != nil {
		t.Fatal(err)
	}
	res, err := Convert(p, Options{Run: "r", Params: params, LauncherImage: "l"})
	if err != nil {
		t.Fatal(err)
	}
	var got []Explained
	for _, s := range res.Steps {
		s.When, s.Launcher = "", false
		got = append(got, s)
	}
	want := []Explained{
		{KFPTask: "for-loop-1[0]/work", Task: "work-0"},
		{KFPTask: "for-loop-1[1]/work", Task: "work-1"},
		{KFPTask: "for-loop-1[2]/work", Task: "work-2", Upstreams: []string{"work-0"}},
		{KFPTask: "join", Task: "join", Upstreams: []string{"work-0", "work-1", "work-2"}},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("steps (-want,+got):\n%s", diff)
	}
	if len(res.Warnings) != 1 || !strings.Contains(res.Warnings[0], "parallelism 2") {
		t.Errorf("warnings %q, want one about the lanes", res.Warnings)
	}
	if got := res.Jobs[1].Annotations[annotations.InputsAnnotation]; got != "" {
		t.Errorf("work-1 has inputs %q; its item is known at import", got)
	}
	if got := res.Jobs[1].Spec.Template.Spec.Containers[0].Env; len(got) != 1 || !strings.Contains(got[0].Value, `"value":"b"`) {
		t.Errorf("work-1's executor %v, want its item b", got)
	}
	if got, want := res.Jobs[3].Annotations[annotations.InputsAnnotation], "all-0=work-0.Output,all-1=work-1.Output,all-2=work-2.Output"; got != want {
		t.Errorf("join's inputs %q, want %q", got, want)
	}
	if env := res.Jobs[3].Spec.Template.Spec.Containers[0].Env[0].Value; !strings.Contains(env, `"collect":true`) || !strings.Contains(env, "/sluice/inputs/all-2/Output") {
		t.Errorf("join's executor %s, want the three files collected", env)
	}
}
