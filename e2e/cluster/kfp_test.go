package cluster

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	batchv1 "k8s.io/api/batch/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/sluice-dev/sluice/annotations"
	"github.com/sluice-dev/sluice/e2e/framework"
	"github.com/sluice-dev/sluice/kfp"
)

// The tests in this file run pipelines compiled by the Kubeflow Pipelines
// SDK, imported with kubectl sluice import kfp: simulated on kwok nodes
// for their control flow, and for real on the real node for their
// artifacts and parameters.

const (
	launcherImage = "localhost/sluice/kfp-launcher:dev"
	python        = "localhost/sluice/python:dev"
)

// kfpCorpus is the folder of compiled KFP pipelines (../shared/kfp-ir/ir
// beside the repository, or $SLUICE_KFP_IR/ir); the test skips without it.
func kfpCorpus(t *testing.T, name string) string {
	t.Helper()
	dir := os.Getenv("SLUICE_KFP_IR")
	if dir == "" {
		dir = filepath.Join(framework.RepoRoot(), "..", "shared", "kfp-ir")
	}
	file := filepath.Join(dir, "ir", name)
	if _, err := os.Stat(file); err != nil {
		t.Skipf("no compiled KFP pipeline %s (set SLUICE_KFP_IR to the folder that holds ir/)", file)
	}
	return file
}

// importKFP runs kubectl sluice import kfp on file for run r in ns, and
// reads the Jobs it writes.
func importKFP(t *testing.T, ns, file string, args ...string) []*batchv1.Job {
	t.Helper()
	out, code := plugin(t, append([]string{"import", "kfp", file, "--run", "r", "-n", ns, "--launcher-image", launcherImage}, args...)...)
	if code != 0 {
		t.Fatalf("kubectl sluice import kfp %s: exit %d", file, code)
	}
	var jobs []*batchv1.Job
	for _, doc := range strings.Split(out, "\n---\n") {
		j := &batchv1.Job{}
		if err := yaml.UnmarshalStrict([]byte(doc), j); err != nil {
			t.Fatalf("import kfp %s: %v", file, err)
		}
		jobs = append(jobs, j)
	}
	return jobs
}

// byTask indexes Jobs by their sluice task.
func byTask(jobs []*batchv1.Job) map[string]*batchv1.Job {
	out := map[string]*batchv1.Job{}
	for _, j := range jobs {
		out[j.Labels[annotations.TaskLabel]] = j
	}
	return out
}

// taskResults reads the results the controller recorded on a task's Job.
func taskResults(t *testing.T, ns, task string) map[string]any {
	t.Helper()
	var jobs batchv1.JobList
	if err := cluster.Client.List(context.Background(), &jobs, client.InNamespace(ns), client.MatchingLabels{annotations.TaskLabel: task}); err != nil || len(jobs.Items) != 1 {
		t.Fatalf("task %s: %d Jobs, %v", task, len(jobs.Items), err)
	}
	got, err := annotations.UnmarshalResults(jobs.Items[0].Annotations[annotations.ResultsAnnotation])
	if err != nil {
		t.Fatalf("results of %s: %v", task, err)
	}
	return got
}

// TestKFPSimulated: converted pipelines' control flow on simulated steps:
// a dsl.If taken and not taken, an if/elif/else whose dsl.OneOf consumer
// runs after the branch taken, and an exit handler that runs after a task
// of its body failed.
func TestKFPSimulated(t *testing.T) {
	S, K, F := annotations.PhaseSucceeded, annotations.PhaseSkipped, annotations.PhaseFailed
	corpus := func(name string) func(*testing.T) string {
		return func(t *testing.T) string { return kfpCorpus(t, name) }
	}
	for name, tc := range map[string]struct {
		file     func(*testing.T) string
		messages map[string]string // a task's results, as its termination message
		args     []string
		fail     string
		want     map[string]annotations.Phase
	}{
		"condition taken": {
			file:     corpus("pipeline_with_condition.yaml"),
			messages: map[string]string{"flip-coin-op": `{"Output": "heads"}`},
			want:     map[string]annotations.Phase{"flip-coin-op": S, "flip-coin-op-2": S, "print-op-2": S, "print-op-3": S, "print-op": S},
		},
		"condition not taken": {
			file:     corpus("pipeline_with_condition.yaml"),
			messages: map[string]string{"flip-coin-op": `{"Output": "tails"}`},
			want:     map[string]annotations.Phase{"flip-coin-op": S, "flip-coin-op-2": K, "print-op-2": K, "print-op-3": K, "print-op": S},
		},
		"elif taken, OneOf consumer after it": {
			file:     corpus("if_elif_else_with_oneof_parameters.yaml"),
			messages: map[string]string{"flip-three-sided-die": `{"Output": "tails"}`, "print-and-return-2": `{"Output": "Got tails!"}`},
			want: map[string]annotations.Phase{"flip-three-sided-die": S, "condition-2-print-and-return": K, "print-and-return-2": S,
				"special-print-and-return": K, "print-and-return": S},
		},
		"exit handler after a failure": {
			file: corpus("pipeline_with_exit_handler.yaml"),
			fail: "fail-op",
			want: map[string]annotations.Phase{"fail-op": F, "print-op-2": S, "print-op": S},
		},
		"a condition on an executor output, not taken": {
			file:     func(*testing.T) string { return filepath.Join("testdata", "kfp", "executor_input.yaml") },
			args:     []string{"-p", "a=1"},
			messages: map[string]string{"add": `{"Output": 4}`},
			want:     map[string]annotations.Phase{"add": S, "show": K},
		},
	} {
		t.Run(name, func(t *testing.T) {
			file := tc.file(t)
			ns, _ := setup(t)
			jobs := importKFP(t, ns, file, tc.args...)
			for task, j := range byTask(jobs) {
				sim := map[string]string{"sim.sluice.dev/duration": "500ms"}
				if m, ok := tc.messages[task]; ok {
					sim["sim.sluice.dev/message"] = m
				}
				if task == tc.fail {
					sim["sim.sluice.dev/exit-code"] = "1"
				}
				j.Spec.Template.Annotations = sim
				create(t, j)
			}
			if len(jobs) != len(tc.want) {
				t.Errorf("%d Jobs, want %d", len(jobs), len(tc.want))
			}
			waitPhases(t, ns, tc.want)
		})
	}
}

// TestKFPReal runs KFP container components in real containers: an
// artifact and an output parameter passed between steps through the run
// volume, the launcher delivered by its init container, a GPU step, and a
// component that reads the executor input {{$}} and writes the executor
// output as lightweight Python components do (with an executor of this
// project's own in place of KFP's, which needs the kfp package at run
// time), followed by a condition over its output.
func TestKFPReal(t *testing.T) {
	for name, tc := range map[string]struct {
		file func(t *testing.T) string
		args []string
		want map[string]annotations.Phase
		// check looks at what the steps did, by their logs and results.
		check func(t *testing.T, ns string)
	}{
		"the README's two-step pipeline": {
			file: func(*testing.T) string {
				return filepath.Join(framework.RepoRoot(), "examples", "kfp", "two_step_pipeline.yaml")
			},
			args: []string{"-p", "rows=500", "--image-map", "python:3.11=" + python},
			want: map[string]annotations.Phase{"preprocess-data": annotations.PhaseSucceeded, "train-model": annotations.PhaseSucceeded},
			check: func(t *testing.T, ns string) {
				acc, ok := taskResults(t, ns, "train-model")["accuracy"].(float64)
				if !ok || acc <= 0.5 || acc > 1 {
					t.Errorf("train-model's accuracy %v, want a number in (0.5, 1]", acc)
				}
				logs, _ := plugin(t, "logs", "r", "preprocess-data", "-n", ns)
				if !strings.Contains(logs, "of 500 records") {
					t.Errorf("preprocess-data's log %q does not show its 500 rows", logs)
				}
				logs, _ = plugin(t, "logs", "r", "train-model", "-n", ns)
				if !strings.Contains(logs, "trained on") {
					t.Errorf("train-model's log %q does not show its training", logs)
				}
			},
		},
		"containerized two steps, an artifact": {
			file: func(t *testing.T) string { return kfpCorpus(t, "two_step_pipeline_containerized.yaml") },
			args: []string{"--image-map", "alpine=" + busybox},
			want: map[string]annotations.Phase{"component1": annotations.PhaseSucceeded, "component2": annotations.PhaseSucceeded},
			check: func(t *testing.T, ns string) {
				if logs, _ := plugin(t, "logs", "r", "component2", "-n", ns); !strings.Contains(logs, "Hello KFP Containerized!") {
					t.Errorf("component2 printed %q, want the text component1 wrote", logs)
				}
			},
		},
		"producer and consumer of a parameter": {
			file: func(t *testing.T) string { return kfpCorpus(t, "producer_consumer_param_pipeline.yaml") },
			args: []string{"-p", "text=Hello sluice", "--image-map", "registry.access.redhat.com/ubi9/python-311:latest=" + busybox},
			want: map[string]annotations.Phase{"producer": annotations.PhaseSucceeded, "consumer": annotations.PhaseSucceeded},
			check: func(t *testing.T, ns string) {
				want := "Hello sluice, this is an output parameter"
				if got, _ := taskResults(t, ns, "producer")["output_value"].(string); strings.TrimSpace(got) != want {
					t.Errorf("producer's result output_value = %q, want %q", got, want)
				}
				if logs, _ := plugin(t, "logs", "r", "consumer", "-n", ns); !strings.Contains(logs, want) {
					t.Errorf("consumer printed %q, want %q", logs, want)
				}
			},
		},
		"an exit handler after a real failure": {
			file: func(*testing.T) string { return filepath.Join("testdata", "kfp", "exit_handler.yaml") },
			args: []string{"--image-map", "alpine=" + busybox},
			want: map[string]annotations.Phase{"fail": annotations.PhaseFailed, "greet": annotations.PhaseSucceeded, "cleanup": annotations.PhaseSucceeded},
			check: func(t *testing.T, ns string) {
				if logs, _ := plugin(t, "logs", "r", "cleanup", "-n", ns); !strings.Contains(logs, "cleaning up") {
					t.Errorf("cleanup printed %q, want its message", logs)
				}
			},
		},
		"executor input, then a condition on its output": {
			file: func(*testing.T) string { return filepath.Join("testdata", "kfp", "executor_input.yaml") },
			args: []string{"-p", "a=2", "--image-map", "python:3.11=" + python},
			want: map[string]annotations.Phase{"add": annotations.PhaseSucceeded, "show": annotations.PhaseSucceeded},
			check: func(t *testing.T, ns string) {
				if got := taskResults(t, ns, "add")["Output"]; got != 5.0 {
					t.Errorf("add's result Output = %v, want 5", got)
				}
				logs, _ := plugin(t, "logs", "r", "show", "-n", ns)
				for _, want := range []string{"sum 5 of /sluice/inputs/report/report with {", `"terms"`, "2 + 3"} {
					if !strings.Contains(logs, want) {
						t.Errorf("show printed %q, want %q in it", logs, want)
					}
				}
			},
		},
	} {
		t.Run(name, func(t *testing.T) {
			file := tc.file(t)
			ns, _ := setup(t)
			jobs := importKFP(t, ns, file, tc.args...)
			for _, j := range jobs {
				create(t, j)
			}
			waitPhases(t, ns, tc.want)
			for task, j := range byTask(jobs) {
				assertRealRun(t, ns, task)
				if len(j.Spec.Template.Spec.InitContainers) > 0 && j.Spec.Template.Spec.InitContainers[0].Image != launcherImage {
					t.Errorf("task %s: init container %s, want the launcher", task, j.Spec.Template.Spec.InitContainers[0].Image)
				}
				if got := j.Annotations[kfp.TaskAnnotation]; got == "" {
					t.Errorf("task %s has no KFP task path", task)
				}
			}
			tc.check(t, ns)
		})
	}
}
