package cluster

import (
	"encoding/json"
	"errors"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluice-dev/sluice/annotations"
	utiltesting "github.com/sluice-dev/sluice/annotations/testing"
	"github.com/sluice-dev/sluice/e2e/framework"
)

// plugin runs bin/kubectl-sluice against the e2e cluster and returns its
// standard output and exit code.
func plugin(t *testing.T, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(filepath.Join(framework.RepoRoot(), "bin", "kubectl-sluice"), append(args, "--kubeconfig", cluster.Kubeconfig)...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		t.Logf("kubectl sluice %s: exit %d: %s", strings.Join(args, " "), exit.ExitCode(), stderr.String())
		return string(out), exit.ExitCode()
	case err != nil:
		t.Fatalf("kubectl sluice %s: %v (run make build)", strings.Join(args, " "), err)
	}
	return string(out), 0
}

// TestPlugin: the seed pipeline (its condition false: deploy skipped)
// through kubectl sluice: lint passes the example pipeline, status lists
// the run and shows each task, graph draws it as SVG with one node per
// task and as text.
func TestPlugin(t *testing.T) {
	ns, _ := setup(t)
	if out, code := plugin(t, "lint", "-f", filepath.Join(framework.RepoRoot(), "examples", "ml-pipeline.yaml")); code != 0 || !strings.Contains(out, "no problems") {
		t.Errorf("lint of the example pipeline: exit %d:\n%s", code, out)
	}
	create(t, seedPipeline(ns, "0.80")...)
	want := map[string]annotations.Phase{
		"preprocess": annotations.PhaseSucceeded, "train": annotations.PhaseSucceeded,
		"evaluate": annotations.PhaseSucceeded, "deploy": annotations.PhaseSkipped,
	}
	waitPhases(t, ns, want)
	eventually(t, "the run's outcome", func() (bool, string) {
		out, code := plugin(t, "status", "r", "-n", ns)
		return code == 0 && strings.Contains(out, "run "+ns+"/r: Succeeded"), out
	})

	out, code := plugin(t, "status", "-n", ns)
	if code != 0 || !strings.Contains(out, "4 (3 Succeeded, 1 Skipped)") {
		t.Errorf("status of the namespace: exit %d:\n%s", code, out)
	}
	out, code = plugin(t, "status", "r", "-n", ns, "-o", "json")
	var run struct {
		Outcome string
		Tasks   []struct {
			Task, Phase string
			Results     map[string]any
		}
	}
	if err := json.Unmarshal([]byte(out), &run); err != nil || code != 0 {
		t.Fatalf("status -o json: exit %d, %v:\n%s", code, err, out)
	}
	order := []string{}
	for _, task := range run.Tasks {
		order = append(order, task.Task)
		if want[task.Task] != annotations.Phase(task.Phase) {
			t.Errorf("status -o json: %s is %s, want %s", task.Task, task.Phase, want[task.Task])
		}
		if task.Task == "evaluate" && task.Results["accuracy"] != 0.8 {
			t.Errorf("status -o json: evaluate's results %v, want accuracy 0.8", task.Results)
		}
	}
	if strings.Join(order, ",") != "preprocess,train,evaluate,deploy" {
		t.Errorf("status -o json: tasks in the order %v, want upstreams first", order)
	}

	out, code = plugin(t, "graph", "r", "-n", ns, "-o", "svg")
	if code != 0 {
		t.Fatalf("graph -o svg: exit %d", code)
	}
	nodes, err := utiltesting.SVGTasks(strings.NewReader(out))
	if err != nil {
		t.Fatalf("graph -o svg is not valid XML: %v", err)
	}
	if len(nodes) != len(want) {
		t.Errorf("graph -o svg has nodes %v, want one per task of %v", nodes, want)
	}
	for task, p := range want {
		if nodes[task] != string(p) {
			t.Errorf("graph -o svg: %s drawn %q, want %s", task, nodes[task], p)
		}
	}
	if out, _ := plugin(t, "graph", "r", "-n", ns); !strings.Contains(out, "after evaluate, train; when tasks.evaluate.") {
		t.Errorf("graph (ascii) lacks deploy's condition:\n%s", out)
	}
	if _, code := plugin(t, "status", "nope", "-n", ns); code != 1 {
		t.Errorf("status of an unknown run: exit %d, want 1", code)
	}
}

// TestPluginLogs: kubectl sluice logs prints what a task's container wrote
// on the real node, by task name, and --all every task's, upstreams first.
func TestPluginLogs(t *testing.T) {
	ns, _ := setup(t)
	create(t,
		realJob("greet", ns, `echo "hello from greet"`).Obj(),
		realJob("answer", ns, `echo "answer to greet: 42"`).After("greet").Obj(),
	)
	waitPhases(t, ns, map[string]annotations.Phase{"greet": annotations.PhaseSucceeded, "answer": annotations.PhaseSucceeded})
	if out, code := plugin(t, "logs", "r", "answer", "-n", ns); code != 0 || out != "answer to greet: 42\n" {
		t.Errorf("logs r answer: exit %d, %q", code, out)
	}
	out, code := plugin(t, "logs", "r", "--all", "-n", ns)
	greet, answer := strings.Index(out, "==> greet (pod greet-"), strings.Index(out, "==> answer (pod answer-")
	if code != 0 || greet < 0 || answer < greet || !strings.Contains(out, "hello from greet\n") {
		t.Errorf("logs r --all: exit %d:\n%s", code, out)
	}
	if _, code := plugin(t, "logs", "r", "nope", "-n", ns); code != 1 {
		t.Errorf("logs of an unknown task: exit %d, want 1", code)
	}
}
