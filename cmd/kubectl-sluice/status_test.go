package main

import (
	"context"
	"strings"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"github.com/sluice-dev/sluice/annotations"
	utiltesting "github.com/sluice-dev/sluice/annotations/testing"
)

var t0 = time.Date(2026, 12, 2, 9, 0, 0, 0, time.UTC)

// task is a Job task of run r created at t0+created, started then and, if
// it ran for took, finished after it.
func task(w *utiltesting.JobWrapper, run string, p annotations.Phase, created, took time.Duration, reason string) *batchv1.Job {
	j := w.Run(run).Label(annotations.PhaseLabel, string(p)).Annotation(annotations.ReasonAnnotation, reason).Obj()
	j.CreationTimestamp = metav1.NewTime(t0.Add(created))
	if p != annotations.PhaseWaiting && p != annotations.PhaseSkipped && p != annotations.PhaseUpstreamFailed {
		j.Status.StartTime = &metav1.Time{Time: t0.Add(created)}
	}
	if took > 0 {
		j.Status.CompletionTime = &metav1.Time{Time: t0.Add(created + took)}
	}
	return j
}

// statusObjects: a finished run in ml (with a skipped branch and results),
// one still running in ml, and a failed one in ci.
func statusObjects() []client.Object {
	train := task(utiltesting.MakeJob("train", "ml").After("prep"), "r1", annotations.PhaseSucceeded, 2*time.Second, 40*time.Second, "Job completed")
	train.Annotations[annotations.ResultsAnnotation] = `{"accuracy":0.93}`
	last := task(utiltesting.MakeJob("deploy", "ml").After("train"), "r1", annotations.PhaseSkipped, 3*time.Second, 0, "when is false: tasks.train.results.accuracy >= 0.95")
	last.Annotations[annotations.RunOutcomeAnnotation] = "Succeeded"
	pod := utiltesting.MakePod("notify", "ml").Label(annotations.RunLabel, "r2").Label(annotations.PhaseLabel, "Running").Obj()
	pod.CreationTimestamp = metav1.NewTime(t0.Add(time.Minute))
	pod.Spec.NodeName = "node-1"
	pod.Status.StartTime = &metav1.Time{Time: t0.Add(time.Minute)}
	return []client.Object{
		task(utiltesting.MakeJob("prep", "ml"), "r1", annotations.PhaseSucceeded, 0, 2*time.Second, "Job completed"),
		train, last,
		task(utiltesting.MakeJob("r2-prep", "ml").Label(annotations.TaskLabel, "prep"), "r2", annotations.PhaseSucceeded, time.Minute, 2*time.Second, "Job completed"),
		pod,
		task(utiltesting.MakeJob("eval", "ml").After("notify"), "r2", annotations.PhaseWaiting, time.Minute, 0, ""),
		task(utiltesting.MakeJob("build", "ci"), "b7", annotations.PhaseFailed, 0, 5*time.Second, "Job failed: BackoffLimitExceeded"),
		task(utiltesting.MakeJob("test", "ci").After("build"), "b7", annotations.PhaseUpstreamFailed, 0, 0, "upstream build failed"),
	}
}

func statusClient(objs ...client.Object) client.Client {
	return fake.NewClientBuilder().WithScheme(scheme.Scheme).WithObjects(objs...).Build()
}

// TestStatusGolden: the run list of a namespace and of all of them, one
// run's tasks, as tables (with and without color) and as JSON and YAML.
func TestStatusGolden(t *testing.T) {
	c := statusClient(statusObjects()...)
	now := t0.Add(90 * time.Second)
	for name, tc := range map[string]struct {
		ns, run, format string
		color           bool
	}{
		"runs":             {ns: "ml", format: "table"},
		"runs-all":         {format: "table"},
		"runs-all-color":   {format: "table", color: true},
		"run-r1":           {ns: "ml", run: "r1", format: "table"},
		"run-r1-color":     {ns: "ml", run: "r1", format: "table", color: true},
		"run-r2":           {ns: "ml", run: "r2", format: "table"},
		"run-r1.json":      {ns: "ml", run: "r1", format: "json"},
		"runs-all.yaml":    {format: "yaml"},
		"run-b7-failed":    {ns: "ci", run: "b7", format: "table"},
		"runs-none":        {ns: "empty", format: "table"},
		"run-r2-elsewhere": {ns: "", run: "r2", format: "table"},
	} {
		t.Run(name, func(t *testing.T) {
			runs, err := readRuns(context.Background(), c, tc.ns, tc.run, now)
			if err != nil {
				t.Fatal(err)
			}
			var b strings.Builder
			switch {
			case tc.format != "table" && tc.run != "":
				err = printStructured(&b, tc.format, runs[0])
			case tc.format != "table":
				err = printStructured(&b, tc.format, map[string]any{"runs": runs})
			case tc.run != "":
				printTasks(&b, runs[0], tc.color)
			default:
				printRuns(&b, runs, tc.ns == "", tc.color, now)
			}
			if err != nil {
				t.Fatal(err)
			}
			utiltesting.Golden(t, "testdata/status/"+name+".golden", b.String(), *update)
		})
	}
}

// TestStatusWatch: --watch on one run prints until the run ends and says
// whether it failed; an unknown run is an error that says what to do.
func TestStatusWatch(t *testing.T) {
	c := statusClient(statusObjects()...)
	watch := statusOptions{watch: true, timeout: time.Second, output: "table"}
	for name, tc := range map[string]struct {
		ns, run string
		opts    statusOptions
		wantOK  bool
		wantErr string
		want    string
	}{
		"a run that succeeded": {ns: "ml", run: "r1", opts: watch, wantOK: true, want: "run ml/r1: Succeeded"},
		"a run that failed":    {ns: "ci", run: "b7", opts: watch, want: "run ci/b7: Failed"},
		"a run still going":    {ns: "ml", run: "r2", opts: watch, wantErr: "run r2 did not finish within 1s"},
		"no such run":          {ns: "ml", run: "nope", opts: statusOptions{output: "table"}, wantErr: `no run "nope" in namespace ml (kubectl sluice status lists the runs)`},
		"the list, watched":    {ns: "ml", opts: watch, wantOK: true, want: "r2"},
	} {
		t.Run(name, func(t *testing.T) {
			var out strings.Builder
			ok, err := status(context.Background(), c, &out, false, tc.ns, tc.run, tc.opts)
			if tc.wantErr != "" {
				if err == nil || err.Error() != tc.wantErr {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if ok != tc.wantOK || !strings.Contains(out.String(), tc.want) {
				t.Errorf("ok = %v, output:\n%s\nwant ok = %v and %q", ok, out.String(), tc.wantOK, tc.want)
			}
		})
	}
}

// TestStatusCommand: flags and arguments through the command.
func TestStatusCommand(t *testing.T) {
	for name, tc := range map[string]struct {
		args []string
		want string
	}{
		"two runs":       {args: []string{"status", "a", "b"}, want: "status: name at most one run (kubectl sluice status [RUN]); got 2 arguments"},
		"a wrong format": {args: []string{"status", "-o", "wide"}, want: "status: -o wide: the formats are table, json and yaml"},
		"no kubeconfig":  {args: []string{"status"}, want: "loading kubeconfig: "},
	} {
		t.Run(name, func(t *testing.T) {
			_, errOut, code := runCLI(t, "", tc.args...)
			if code != 1 || !strings.Contains(errOut, tc.want) {
				t.Errorf("exit %d, stderr %q; want exit 1 and %q", code, errOut, tc.want)
			}
		})
	}
}
