package cluster

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/sluice-dev/sluice/annotations"
	"github.com/sluice-dev/sluice/e2e/framework"
)

// startDashboard runs kubectl sluice dashboard on namespace ns, on a free
// loopback port, until the test ends, and returns its URL.
func startDashboard(t *testing.T, ns string) string {
	t.Helper()
	cmd := exec.Command(filepath.Join(framework.RepoRoot(), "bin", "kubectl-sluice"), "dashboard", "--port", "0", "-n", ns, "--kubeconfig", cluster.Kubeconfig)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting kubectl sluice dashboard: %v (run make build)", err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		_ = cmd.Wait()
	})
	line, err := bufio.NewReader(out).ReadString('\n')
	_, url, ok := strings.Cut(line, "http://")
	if err != nil || !ok {
		t.Fatalf("kubectl sluice dashboard printed %q (%v), want its URL", line, err)
	}
	url, _, _ = strings.Cut(url, " ")
	return "http://" + url
}

// asRun makes the seed pipeline's objects a run of their own, beside
// another one in the namespace: prefixed names, the same task names.
func asRun(run string, objs []client.Object) []client.Object {
	for _, o := range objs {
		labels := o.GetLabels()
		labels[annotations.TaskLabel] = o.GetName()
		labels[annotations.RunLabel] = run
		o.SetName(run + "-" + o.GetName())
	}
	return objs
}

// TestDashboard: the dashboard in headless Chromium draws the seed
// pipeline's run with one node per step, live: a step's color changes when
// it finishes, with nothing reloaded. A click on a step shows its phase
// and results. Two runs of the pipeline are compared: their accuracies
// plotted, one point per run. A screenshot goes to the test's artifacts
// (go test -artifacts).
func TestDashboard(t *testing.T) {
	ns, _ := setup(t)
	browser := framework.Browser(t)
	url := startDashboard(t, ns)
	step := func(what string, timeout time.Duration, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		ctx, cancel := context.WithTimeout(browser, timeout)
		defer cancel()
		if err := chromedp.Do(ctx, actions...); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	eval := func(expr string) string {
		t.Helper()
		v, err := chromedp.Run(browser, chromedp.Evaluate[string](expr))
		if err != nil {
			t.Fatalf("evaluating %s: %v", expr, err)
		}
		return v
	}
	step("opening the dashboard", 30*time.Second, chromedp.Navigate(url+"#run=r1"), chromedp.WaitVisible(chromedp.CSS("#runs")))
	eval(`window.sluiceMark = "this page"; ""`) // gone if the page were loaded again

	create(t, asRun("r1", seedPipeline(ns, "0.80"))...)
	step("the run's graph", runTimeout, chromedp.Poll[chromedp.Void](`document.querySelectorAll("#graph g.task").length === 4`, chromedp.WithPollingTimeout(runTimeout)))
	evaluate := `document.querySelector('#graph g.task[data-task="evaluate"]')`
	before := eval(evaluate + `.querySelector("rect").getAttribute("fill")`)
	if phase := eval(evaluate + `.dataset.phase`); phase == string(annotations.PhaseSucceeded) {
		t.Fatalf("evaluate had succeeded when the graph was first drawn (fill %s): nothing to see change", before)
	}
	step("evaluate's color when it finished", runTimeout, chromedp.Poll[chromedp.Void](evaluate+`.dataset.phase === "Succeeded"`, chromedp.WithPollingTimeout(runTimeout)))
	if after := eval(evaluate + `.querySelector("rect").getAttribute("fill")`); after == before || after != "#c8e6c9" {
		t.Errorf("evaluate's fill went from %s to %s, want Succeeded's #c8e6c9", before, after)
	}
	if got := eval(`String(window.sluiceMark)`); got != "this page" {
		t.Errorf("the page was loaded again (mark %q): updates must come without a reload", got)
	}

	step("evaluate's details", 30*time.Second, chromedp.Click(chromedp.CSS(`#graph g.task[data-task="evaluate"]`)),
		chromedp.Poll[chromedp.Void](`document.querySelector('#task-panel [data-fact="phase"]')?.textContent === "Succeeded"`, chromedp.WithPollingTimeout(30*time.Second)))
	if res := eval(`document.querySelector("#task-results").textContent`); !strings.Contains(res, "accuracy") || !strings.Contains(res, "0.8") {
		t.Errorf("evaluate's results in its details: %q, want accuracy 0.8", res)
	}

	create(t, asRun("r2", seedPipeline(ns, "0.95"))...)
	points := `[...document.querySelectorAll('svg.plot[data-key="evaluate.accuracy"] circle.point')].map(c => c.dataset.run + "=" + c.dataset.value).join(" ")`
	step("the runs compared", runTimeout, chromedp.Poll[chromedp.Void](points+` === "r1=0.8 r2=0.95"`, chromedp.WithPollingTimeout(runTimeout)))
	if table := eval(`document.querySelector("#compare").textContent`); !strings.Contains(table, "evaluate.accuracy") {
		t.Errorf("the comparison table has no evaluate.accuracy column: %q", table)
	}

	shot, err := chromedp.Run(browser, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.ArtifactDir(), "dashboard.png")
	if err := os.WriteFile(path, shot, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s (%d bytes); graph drawn in %s ms", path, len(shot), eval(`document.getElementById("graph").dataset.drawMs`))
}
