package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/sluice-dev/sluice/annotations"
	utiltesting "github.com/sluice-dev/sluice/annotations/testing"
	"github.com/sluice-dev/sluice/e2e/framework"
)

// plugin runs bin/kubectl-sluice against the e2e cluster and returns its
// standard output and exit code.
func plugin(t *testing.T, args ...string) (string, int) {
	t.Helper()
	full := append(slices.Clone(args), "--kubeconfig", cluster.Kubeconfig)
	if len(args) > 0 && args[0] == "__complete" {
		// The last argument is the word being completed.
		last := len(args) - 1
		full = append(append(slices.Clone(args[:last]), "--kubeconfig", cluster.Kubeconfig), args[last])
	}
	cmd := exec.Command(filepath.Join(framework.RepoRoot(), "bin", "kubectl-sluice"), full...)
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
	// Shell completion (kubectl_complete-sluice runs this): runs, then a
	// run's tasks.
	if out, _ := plugin(t, "__complete", "status", "-n", ns, ""); !strings.Contains(out, "r\tp, Succeeded\n") {
		t.Errorf("completion of status RUN:\n%s", out)
	}
	if out, _ := plugin(t, "__complete", "logs", "-n", ns, "r", "ev"); !strings.HasPrefix(out, "evaluate\tSucceeded\n") {
		t.Errorf("completion of logs r ev:\n%s", out)
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

// TestPluginRetry: a step on the real node fails because of its ConfigMap;
// once the ConfigMap is fixed, kubectl sluice retry runs it again as attempt
// 2, reading the artifact its upstream wrote in the first attempt, the step
// that never ran because of it runs, and the run ends Succeeded. The tasks
// that had succeeded did not run again: same Jobs, same pods. A second
// retry right after the first changes nothing.
func TestPluginRetry(t *testing.T) {
	ns, _ := setup(t)
	ctx := context.Background()
	settings := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "settings", Namespace: ns}, Data: map[string]string{"mode": "broken"}}
	train := realJob("train", ns, `set -e
		echo "mode is $MODE"
		test "$MODE" = fixed
		echo "seen=$(cat "$SLUICE_INPUT_DATA/n")" >/dev/termination-log`).Inputs("data=prep.data").Obj()
	mode := corev1.EnvVar{Name: "MODE",
		ValueFrom: &corev1.EnvVarSource{ConfigMapKeyRef: &corev1.ConfigMapKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "settings"}, Key: "mode"}}}
	train.Spec.Template.Spec.Containers[0].Env = append(train.Spec.Template.Spec.Containers[0].Env, mode)
	// Bare Pods too: a failed one is created anew (its node, token volume
	// and gate left out), a gated one that never ran is taken back.
	probe := utiltesting.MakePod("probe", ns).Label(annotations.RunLabel, "r").Command(busybox, `test "$MODE" = fixed`).Obj()
	probe.Spec.Containers[0].Env = []corev1.EnvVar{mode}
	create(t, settings,
		realJob("prep", ns, `echo 7 >"$SLUICE_OUTPUT_DATA/n"`).Outputs("data:Dataset").Obj(),
		train,
		realJob("report", ns, `echo "train done"`).After("train").Obj(),
		realJob("side", ns, `true`).After("prep").Obj(),
		probe,
		utiltesting.MakePod("notify", ns).Label(annotations.RunLabel, "r").After("probe").Command(busybox, `echo "probe done"`).Obj(),
	)
	waitPhases(t, ns, map[string]annotations.Phase{
		"prep": annotations.PhaseSucceeded, "side": annotations.PhaseSucceeded,
		"train": annotations.PhaseFailed, "report": annotations.PhaseUpstreamFailed,
		"probe": annotations.PhaseFailed, "notify": annotations.PhaseUpstreamFailed,
	})
	eventually(t, "the run's first outcome", func() (bool, string) {
		out, _ := plugin(t, "status", "r", "-n", ns)
		return strings.Contains(out, "run "+ns+"/r: Failed"), out
	})
	// identity is a Job task's Job and pods, by UID: a task that ran again
	// has others.
	identity := func(task string) string {
		var j batchv1.Job
		if err := cluster.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: task}, &j); err != nil {
			t.Fatal(err)
		}
		var pods []string
		for _, p := range podsOf(t, ns, task) {
			pods = append(pods, string(p.UID))
		}
		slices.Sort(pods)
		return fmt.Sprintf("Job %s, pods %v", j.UID, pods)
	}
	kept := map[string]string{}
	for _, task := range []string{"prep", "side"} {
		kept[task] = identity(task)
	}

	if out, code := plugin(t, "retry", "r", "-n", ns, "--dry-run"); code != 0 || !strings.Contains(out, "failed: attempt 2 replaces it") ||
		!strings.Contains(out, "never ran: waits for train again") {
		t.Errorf("retry --dry-run: exit %d:\n%s", code, out)
	}
	settings.Data["mode"] = "fixed"
	if err := cluster.Client.Update(ctx, settings); err != nil {
		t.Fatal(err)
	}
	if out, code := plugin(t, "retry", "r", "-n", ns); code != 0 || !strings.Contains(out, "Job train: attempt 2 created") || !strings.Contains(out, "Pod probe: attempt 2 created") {
		t.Fatalf("retry: exit %d:\n%s", code, out)
	}
	if out, code := plugin(t, "retry", "r", "-n", ns); code != 0 || strings.Contains(out, "created") {
		t.Errorf("a second retry right after the first: exit %d:\n%s", code, out)
	}
	waitPhases(t, ns, map[string]annotations.Phase{
		"prep": annotations.PhaseSucceeded, "side": annotations.PhaseSucceeded,
		"train": annotations.PhaseSucceeded, "report": annotations.PhaseSucceeded,
		"probe": annotations.PhaseSucceeded, "notify": annotations.PhaseSucceeded,
	})
	eventually(t, "the run's outcome after the retry", func() (bool, string) {
		out, _ := plugin(t, "status", "r", "-n", ns)
		return strings.Contains(out, "run "+ns+"/r: Succeeded") && strings.Contains(out, "train (attempt 2)"), out
	})
	if got := results(t, ns, "train")["seen"]; got != float64(7) {
		t.Errorf("attempt 2 of train read seen=%v from prep's artifact, want 7", got)
	}
	for task, was := range kept {
		if now := identity(task); now != was {
			t.Errorf("%s ran again: %s, was %s", task, now, was)
		}
	}
}
