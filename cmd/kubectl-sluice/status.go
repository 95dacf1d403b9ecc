package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/sluice-dev/sluice/annotations"
)

// statusOptions are status's flags.
type statusOptions struct {
	allNamespaces bool
	output        string
	watch         bool
	timeout       time.Duration
}

func newStatusCommand(kube *genericclioptions.ConfigFlags) *cobra.Command {
	var o statusOptions
	cmd := &cobra.Command{
		Use:   "status [RUN]",
		Short: "Show the runs of a namespace, or the tasks of one run",
		Long: `With no RUN, status lists the runs of the namespace (-A: of every namespace):
pipeline, run, its tasks by phase, when it started, how long it took, and
its outcome.

With a RUN, it prints each of the run's tasks in the order the run's graph
gives: phase, node, start, duration, results and reason, and the run's
outcome once every task has finished.

With --watch it prints again on every change; for one run it stops when
the run ends and exits 1 if the run failed. Phases are in color on a
terminal (NO_COLOR turns that off).`,
		Example: `  kubectl sluice status
  kubectl sluice status -A
  kubectl sluice status churn-demo
  kubectl sluice status churn-demo -n ml --watch --timeout 30m
  kubectl sluice status churn-demo -o json`,
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) > 1 {
				return fmt.Errorf("status: name at most one run (kubectl sluice status [RUN]); got %d arguments", len(args))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if !slices.Contains([]string{"table", "json", "yaml"}, o.output) {
				return fmt.Errorf("status: -o %s: the formats are table, json and yaml", o.output)
			}
			c, ns, err := clusterClient(kube)
			if err != nil {
				return err
			}
			if o.allNamespaces {
				ns = ""
			}
			run := ""
			if len(args) == 1 {
				run = args[0]
			}
			out := cmd.OutOrStdout()
			ok, err := status(cmd.Context(), c, out, colorful(out), ns, run, o)
			if err != nil {
				return err
			}
			if !ok {
				return exitError{1}
			}
			return nil
		},
	}
	cmd.Flags().BoolVarP(&o.allNamespaces, "all-namespaces", "A", false, "the runs of every namespace")
	cmd.Flags().StringVarP(&o.output, "output", "o", "table", "table, json or yaml")
	cmd.Flags().BoolVarP(&o.watch, "watch", "w", false, "print again on every change (for one run: until it ends)")
	cmd.Flags().BoolVar(&o.watch, "wait", false, "the same as --watch")
	cmd.Flags().DurationVar(&o.timeout, "timeout", 10*time.Minute, "with --watch, give up after this long")
	cmd.ValidArgsFunction = completeRunArgs(kube, false)
	return cmd
}

// colorful reports whether w is a terminal that takes colors.
func colorful(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && os.Getenv("NO_COLOR") == "" && os.Getenv("TERM") != "dumb" && term.IsTerminal(int(f.Fd()))
}

// taskStatus is one task as status shows it.
type taskStatus struct {
	Task     string          `json:"task"`
	Kind     string          `json:"kind"`
	Phase    string          `json:"phase"`
	Node     string          `json:"node,omitempty"`
	Started  *metav1.Time    `json:"started,omitempty"`
	Duration string          `json:"duration,omitempty"`
	Reason   string          `json:"reason,omitempty"`
	Results  json.RawMessage `json:"results,omitempty"`
	// Attempt is the generation of the task's object, from 2 on (retries).
	Attempt int       `json:"attempt,omitempty"`
	end     time.Time // when it finished, if it did
	object  string    // the task's Job or Pod
	// ups are the tasks it waits for (named, and its groups' members);
	// when is its condition.
	ups  []string
	when string
}

// runStatus is one run as status shows it.
type runStatus struct {
	Namespace string         `json:"namespace"`
	Run       string         `json:"run"`
	Pipeline  string         `json:"pipeline"`
	Outcome   string         `json:"outcome"` // Succeeded, Failed, or Running while a task has not finished
	Started   *metav1.Time   `json:"started,omitempty"`
	Duration  string         `json:"duration,omitempty"`
	Phases    map[string]int `json:"phases"`
	Tasks     []taskStatus   `json:"tasks,omitempty"`
}

// readRuns reads the sluice Jobs and bare Pods of ns (every namespace when
// ""), of one run or of all, and returns the runs sorted by namespace and
// start, their tasks in graph order.
func readRuns(ctx context.Context, c client.Reader, ns, run string, now time.Time) ([]*runStatus, error) {
	opts := []client.ListOption{client.HasLabels{annotations.RunLabel}}
	if run != "" {
		opts = []client.ListOption{client.MatchingLabels{annotations.RunLabel: run}}
	}
	if ns != "" {
		opts = append(opts, client.InNamespace(ns))
	}
	jobs, pods, err := listSteps(ctx, c, opts...)
	if err != nil {
		return nil, err
	}
	type member struct {
		task *annotations.Task
		obj  client.Object
		ts   taskStatus
	}
	runs := map[string][]member{}
	podsOf := map[string][]*corev1.Pod{} // by namespace/job
	for i := range pods.Items {
		p := &pods.Items[i]
		if job := annotations.JobOf(p); job != "" {
			if ref := metav1.GetControllerOf(p); ref != nil {
				podsOf[p.Namespace+"/"+ref.Name] = append(podsOf[p.Namespace+"/"+ref.Name], p)
			}
			continue
		}
		if t, errs := annotations.Parse(p); len(errs) == 0 {
			ts := taskStatus{Task: t.Name, Kind: "Pod", Node: p.Spec.NodeName, Started: p.Status.StartTime}
			if p.Status.StartTime != nil {
				ts.end = latestFinish([]*corev1.Pod{p}, time.Time{})
			}
			runs[t.RunKey()] = append(runs[t.RunKey()], member{t, p, ts})
		}
	}
	for i := range jobs.Items {
		j := &jobs.Items[i]
		t, errs := annotations.Parse(j)
		if len(errs) > 0 {
			continue
		}
		ts := taskStatus{Task: t.Name, Kind: "Job", Started: j.Status.StartTime}
		var nodes []string
		for _, p := range podsOf[j.Namespace+"/"+j.Name] {
			if p.Spec.NodeName != "" && !slices.Contains(nodes, p.Spec.NodeName) {
				nodes = append(nodes, p.Spec.NodeName)
			}
		}
		ts.Node = strings.Join(nodes, ",")
		switch {
		case j.Status.CompletionTime != nil:
			ts.end = j.Status.CompletionTime.Time
		case annotations.Phase(j.Labels[annotations.PhaseLabel]).Finished():
			ts.end = latestFinish(podsOf[j.Namespace+"/"+j.Name], time.Time{})
		}
		runs[t.RunKey()] = append(runs[t.RunKey()], member{t, j, ts})
	}
	var out []*runStatus
	for _, key := range slices.Sorted(maps.Keys(runs)) {
		members := runs[key]
		first := members[0]
		rs := &runStatus{Namespace: first.obj.GetNamespace(), Run: first.task.Run, Pipeline: first.task.Pipeline, Phases: map[string]int{}}
		tasks := make([]*annotations.Task, len(members))
		for i, m := range members {
			tasks[i] = m.task
		}
		// By depth in the graph (upstreams first), then by name.
		g, _ := annotations.NewGraph(tasks)
		depth := g.Depths()
		slices.SortFunc(members, func(a, b member) int {
			if da, db := depth[a.task.Name], depth[b.task.Name]; da != db {
				return da - db
			}
			return strings.Compare(a.task.Name, b.task.Name)
		})
		finished, failed := true, false
		var end time.Time
		for _, m := range members {
			ts := m.ts
			ts.ups, ts.when, ts.Attempt, ts.object = m.task.Upstreams(), m.task.When, m.task.Attempt, m.obj.GetName()
			for _, w := range m.task.AfterGroups {
				ts.ups = append(ts.ups, g.Members(w.Group)...)
			}
			phase := annotations.Phase(m.obj.GetLabels()[annotations.PhaseLabel])
			ts.Phase = string(phase)
			ts.Reason = m.obj.GetAnnotations()[annotations.ReasonAnnotation]
			if r := m.obj.GetAnnotations()[annotations.ResultsAnnotation]; r != "" && r != "{}" && json.Valid([]byte(r)) {
				ts.Results = json.RawMessage(r)
			}
			if ts.Started != nil {
				stop := now
				if phase.Finished() && !ts.end.IsZero() {
					stop = ts.end
				}
				ts.Duration = stop.Sub(ts.Started.Time).Round(100 * time.Millisecond).String()
			}
			if o := m.obj.GetAnnotations()[annotations.RunOutcomeAnnotation]; o != "" {
				rs.Outcome = o
			}
			created := m.obj.GetCreationTimestamp()
			if rs.Started == nil || created.Before(rs.Started) {
				rs.Started = &created
			}
			end = later(end, ts.end)
			finished = finished && phase.Finished()
			failed = failed || phase == annotations.PhaseFailed || phase == annotations.PhaseUpstreamFailed
			rs.Phases[ts.Phase]++
			rs.Tasks = append(rs.Tasks, ts)
		}
		switch {
		case !finished: // a retried run, whose old outcome may not be withdrawn yet
			rs.Outcome = "Running"
		case rs.Outcome != "":
		case failed:
			rs.Outcome = string(annotations.PhaseFailed)
		default:
			rs.Outcome = string(annotations.PhaseSucceeded)
		}
		if rs.Started != nil {
			stop := now
			if finished && !end.IsZero() {
				stop = end
			}
			rs.Duration = stop.Sub(rs.Started.Time).Round(time.Second).String()
		}
		out = append(out, rs)
	}
	slices.SortStableFunc(out, func(a, b *runStatus) int {
		if a.Namespace != b.Namespace {
			return strings.Compare(a.Namespace, b.Namespace)
		}
		return a.Started.Compare(b.Started.Time)
	})
	return out, nil
}

// listSteps lists the Jobs and Pods that opts select: sluice's steps, and
// the pods of its Jobs.
func listSteps(ctx context.Context, c client.Reader, opts ...client.ListOption) (*batchv1.JobList, *corev1.PodList, error) {
	var jobs batchv1.JobList
	if err := c.List(ctx, &jobs, opts...); err != nil {
		return nil, nil, fmt.Errorf("listing Jobs: %w", err)
	}
	var pods corev1.PodList
	if err := c.List(ctx, &pods, opts...); err != nil {
		return nil, nil, fmt.Errorf("listing Pods: %w", err)
	}
	return &jobs, &pods, nil
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// latestFinish is the last container termination among pods, or def.
func latestFinish(pods []*corev1.Pod, def time.Time) time.Time {
	var t time.Time
	for _, p := range pods {
		for _, cs := range p.Status.ContainerStatuses {
			if term := cs.State.Terminated; term != nil && term.FinishedAt.After(t) {
				t = term.FinishedAt.Time
			}
		}
	}
	if t.IsZero() {
		return def
	}
	return t
}

// phaseOrder is the order status counts phases in.
var phaseOrder = []annotations.Phase{
	annotations.PhaseSucceeded, annotations.PhaseRunning, annotations.PhaseWaiting, annotations.PhaseFailed,
	annotations.PhaseUpstreamFailed, annotations.PhaseSkipped,
}

// colors of the phases on a terminal (ANSI SGR).
var phaseColors = map[string]string{
	string(annotations.PhaseSucceeded): "32", string(annotations.PhaseRunning): "33", string(annotations.PhaseWaiting): "90",
	string(annotations.PhaseFailed): "31", string(annotations.PhaseUpstreamFailed): "31", string(annotations.PhaseSkipped): "90",
}

// paint colors a phase for a terminal. tabwriter counts escape codes as
// width, so on a terminal every cell of a column gets codes of the same
// length (the default color for what has none).
func paint(s string, color bool) string {
	if !color {
		return s
	}
	c, ok := phaseColors[s]
	if !ok {
		c = "39"
	}
	return "\x1b[" + c + "m" + s + "\x1b[0m"
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// printTasks prints one run's tasks as a table.
func printTasks(w io.Writer, rs *runStatus, color bool) {
	tw := newTable(w)
	fmt.Fprintf(tw, "TASK\tKIND\t%s\tNODE\tSTARTED\tDURATION\tRESULTS\tREASON\n", paint("PHASE", color))
	for _, t := range rs.Tasks {
		started := ""
		if t.Started != nil {
			started = t.Started.UTC().Format(time.TimeOnly)
		}
		task := t.Task
		if t.Attempt > 1 {
			task += fmt.Sprintf(" (attempt %d)", t.Attempt)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", task, t.Kind, paint(dash(t.Phase), color), dash(t.Node),
			dash(started), dash(t.Duration), dash(string(t.Results)), t.Reason)
	}
	_ = tw.Flush()
	if rs.Outcome != "Running" {
		fmt.Fprintf(w, "run %s/%s: %s\n", rs.Namespace, rs.Run, paint(rs.Outcome, color))
	}
}

// printRuns prints runs as a table, with their namespace when there are
// several namespaces to show.
func printRuns(w io.Writer, runs []*runStatus, allNamespaces, color bool, now time.Time) {
	if len(runs) == 0 {
		fmt.Fprintln(w, "No sluice runs found.")
		return
	}
	tw := newTable(w)
	if allNamespaces {
		fmt.Fprint(tw, "NAMESPACE\t")
	}
	fmt.Fprintf(tw, "PIPELINE\tRUN\tTASKS\tSTARTED\tDURATION\t%s\n", paint("OUTCOME", color))
	for _, r := range runs {
		if allNamespaces {
			fmt.Fprint(tw, r.Namespace+"\t")
		}
		var counts []string
		total := 0
		for _, p := range phaseOrder {
			if n := r.Phases[string(p)]; n > 0 {
				counts = append(counts, fmt.Sprintf("%d %s", n, p))
				total += n
			}
		}
		started := "-"
		if r.Started != nil {
			started = now.Sub(r.Started.Time).Round(time.Second).String() + " ago"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d (%s)\t%s\t%s\t%s\n", r.Pipeline, r.Run, total, strings.Join(counts, ", "), started, dash(r.Duration), paint(r.Outcome, color))
	}
	_ = tw.Flush()
}

// table aligns tab-separated cells, as kubectl's tables, without spaces at
// the ends of lines (an empty last cell leaves them).
type table struct {
	w   io.Writer
	buf strings.Builder
	tw  *tabwriter.Writer
}

func newTable(w io.Writer) *table {
	t := &table{w: w}
	t.tw = tabwriter.NewWriter(&t.buf, 0, 4, 2, ' ', 0)
	return t
}

func (t *table) Write(p []byte) (int, error) { return t.tw.Write(p) }

// Flush writes the table out.
func (t *table) Flush() error {
	if err := t.tw.Flush(); err != nil {
		return err
	}
	lines := strings.SplitAfter(t.buf.String(), "\n")
	for i, l := range lines {
		lines[i] = strings.TrimRight(strings.TrimSuffix(l, "\n"), " ")
		if strings.HasSuffix(l, "\n") {
			lines[i] += "\n"
		}
	}
	_, err := io.WriteString(t.w, strings.Join(lines, ""))
	return err
}

// printStructured prints one run, or a list of runs, as JSON or YAML.
func printStructured(w io.Writer, format string, v any) error {
	var buf strings.Builder
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // conditions hold >= and <
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return err
	}
	data := []byte(buf.String())
	var err error
	if format == "yaml" {
		if data, err = yaml.JSONToYAML(data); err != nil {
			return err
		}
	}
	_, err = fmt.Fprintln(w, strings.TrimSuffix(string(data), "\n"))
	return err
}

// status prints the runs of ns (run ""), or one run, once or on every
// change. It returns false when the run it shows failed.
func status(ctx context.Context, c client.Client, w io.Writer, color bool, ns, run string, o statusOptions) (bool, error) {
	deadline := time.Now().Add(o.timeout)
	var last string
	for {
		now := time.Now()
		runs, err := readRuns(ctx, c, ns, run, now)
		if err != nil {
			return false, err
		}
		var b strings.Builder
		var done, failed bool
		switch {
		case run != "" && len(runs) == 0:
			if !o.watch || now.After(deadline) {
				return false, noRun(run, ns)
			}
		case run != "":
			rs := runs[0]
			if len(runs) > 1 {
				return false, fmt.Errorf("run %q is in %d namespaces; name one with -n", run, len(runs))
			}
			done, failed = rs.Outcome != "Running", rs.Outcome == string(annotations.PhaseFailed)
			if o.output == "table" {
				printTasks(&b, rs, color)
			} else if err := printStructured(&b, o.output, rs); err != nil {
				return false, err
			}
		case o.output == "table":
			printRuns(&b, runs, ns == "", color, now)
		default:
			if err := printStructured(&b, o.output, map[string]any{"runs": runs}); err != nil {
				return false, err
			}
		}
		// Durations change on every read; print again when anything
		// else does.
		key := changeKey(runs)
		if !o.watch || key != last || done {
			if o.watch && o.output == "table" {
				fmt.Fprintf(w, "\n%s\n", now.Format(time.TimeOnly))
			}
			fmt.Fprint(w, b.String())
			last = key
		}
		if !o.watch || done {
			return !failed, nil
		}
		if now.After(deadline) {
			if run == "" {
				return true, nil // watching the list ends at --timeout
			}
			return false, fmt.Errorf("run %s did not finish within %s", run, o.timeout)
		}
		select {
		case <-ctx.Done():
			return false, ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// changeKey is what status --watch compares to decide to print again.
func changeKey(runs []*runStatus) string {
	var b strings.Builder
	for _, r := range runs {
		b.WriteString(r.Namespace + "/" + r.Run + "=" + r.Outcome + ";")
		for _, t := range r.Tasks {
			b.WriteString(t.Task + t.Phase + t.Node + t.Reason + string(t.Results) + ";")
		}
	}
	return b.String()
}
