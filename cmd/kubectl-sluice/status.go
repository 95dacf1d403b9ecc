package main

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericclioptions"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/sluice-dev/sluice/annotations"
)

func newStatusCommand(kube *genericclioptions.ConfigFlags) *cobra.Command {
	var wait bool
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "status RUN",
		Short: "Show the tasks of a run",
		Long: `status prints each task of the run: phase, node, duration, results and
reason, in the order the run's graph gives. With --wait it prints again on
every change until every task has finished, and exits 1 if the run failed.`,
		Example: `  kubectl sluice status churn-demo
  kubectl sluice status churn-demo -n ml --wait --timeout 30m`,
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) != 1 {
				return fmt.Errorf("status: name one run (kubectl sluice status RUN); got %d arguments", len(args))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			c, ns, err := clusterClient(kube)
			if err != nil {
				return err
			}
			ok, err := status(cmd.Context(), c, cmd.OutOrStdout(), ns, args[0], wait, timeout)
			if err != nil {
				return err
			}
			if !ok {
				return exitError{1}
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&wait, "wait", false, "print on every change until the run ends")
	cmd.Flags().DurationVar(&timeout, "timeout", 10*time.Minute, "with --wait, give up after this long")
	return cmd
}

// row is one task as status prints it.
type row struct {
	task, kind, phase, node, duration, results, reason string
	order                                              int
}

// runRows reads the tasks of a run and returns them in graph order.
func runRows(ctx context.Context, c client.Client, ns, run string) ([]row, error) {
	sel := client.MatchingLabels{annotations.RunLabel: run}
	var jobs batchv1.JobList
	if err := c.List(ctx, &jobs, client.InNamespace(ns), sel); err != nil {
		return nil, fmt.Errorf("listing jobs of run %s/%s: %w", ns, run, err)
	}
	var pods corev1.PodList
	if err := c.List(ctx, &pods, client.InNamespace(ns), sel); err != nil {
		return nil, fmt.Errorf("listing pods of run %s/%s: %w", ns, run, err)
	}
	podsOf := map[string][]*corev1.Pod{}
	var rows []row
	var tasks []*annotations.Task
	for i := range pods.Items {
		p := &pods.Items[i]
		if ref := metav1.GetControllerOf(p); ref != nil && ref.Kind == "Job" {
			podsOf[ref.Name] = append(podsOf[ref.Name], p)
			continue
		}
		if t, errs := annotations.Parse(p); len(errs) == 0 {
			tasks = append(tasks, t)
			rows = append(rows, row{task: t.Name, kind: "Pod", node: p.Spec.NodeName, duration: podDuration(p)})
			fill(&rows[len(rows)-1], p)
		}
	}
	for i := range jobs.Items {
		j := &jobs.Items[i]
		t, errs := annotations.Parse(j)
		if len(errs) > 0 {
			continue
		}
		tasks = append(tasks, t)
		r := row{task: t.Name, kind: "Job"}
		var nodes []string
		for _, p := range podsOf[j.Name] {
			if p.Spec.NodeName != "" && !slices.Contains(nodes, p.Spec.NodeName) {
				nodes = append(nodes, p.Spec.NodeName)
			}
		}
		r.node = strings.Join(nodes, ",")
		if j.Status.StartTime != nil {
			end := time.Now()
			if j.Status.CompletionTime != nil {
				end = j.Status.CompletionTime.Time
			} else if ps := podsOf[j.Name]; len(ps) > 0 && annotations.Phase(j.Labels[annotations.PhaseLabel]).Finished() {
				end = latestFinish(ps, end)
			}
			r.duration = end.Sub(j.Status.StartTime.Time).Round(100 * time.Millisecond).String()
		}
		fill(&r, j)
		rows = append(rows, r)
	}
	g, _ := annotations.NewGraph(tasks)
	order, err := g.Order()
	if err == nil {
		for i := range rows {
			rows[i].order = slices.Index(order, rows[i].task)
		}
	}
	slices.SortFunc(rows, func(a, b row) int {
		if a.order != b.order {
			return a.order - b.order
		}
		return strings.Compare(a.task, b.task)
	})
	return rows, nil
}

func fill(r *row, obj client.Object) {
	r.phase = obj.GetLabels()[annotations.PhaseLabel]
	if r.phase == "" {
		r.phase = "-"
	}
	r.reason = obj.GetAnnotations()[annotations.ReasonAnnotation]
	r.results = obj.GetAnnotations()[annotations.ResultsAnnotation]
	if r.results == "" || r.results == "{}" {
		r.results = "-"
	}
	if r.node == "" {
		r.node = "-"
	}
	if r.duration == "" {
		r.duration = "-"
	}
}

func podDuration(p *corev1.Pod) string {
	if p.Status.StartTime == nil {
		return ""
	}
	return latestFinish([]*corev1.Pod{p}, time.Now()).Sub(p.Status.StartTime.Time).Round(100 * time.Millisecond).String()
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

func printRows(w io.Writer, rows []row) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TASK\tKIND\tPHASE\tNODE\tDURATION\tRESULTS\tREASON")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.task, r.kind, r.phase, r.node, r.duration, r.results, r.reason)
	}
	_ = tw.Flush()
}

// outcome says whether every task finished, and whether the run failed.
func outcome(rows []row) (done, failed bool) {
	done = len(rows) > 0
	for _, r := range rows {
		p := annotations.Phase(r.phase)
		done = done && p.Finished()
		failed = failed || p == annotations.PhaseFailed || p == annotations.PhaseUpstreamFailed
	}
	return done, failed
}

// status prints the run once, or on every change until it ends. It returns
// false when the run failed.
func status(ctx context.Context, c client.Client, w io.Writer, ns, run string, wait bool, timeout time.Duration) (bool, error) {
	deadline := time.Now().Add(timeout)
	var last string
	for {
		rows, err := runRows(ctx, c, ns, run)
		if err != nil {
			return false, err
		}
		done, failed := outcome(rows)
		var b strings.Builder
		printRows(&b, rows)
		// Durations of running tasks change every poll; print on phase changes.
		key := ""
		for _, r := range rows {
			key += r.task + r.phase + r.node + r.reason + ";"
		}
		if key != last || !wait || done {
			if wait {
				fmt.Fprintf(w, "\n%s  run %s/%s\n", time.Now().Format("15:04:05"), ns, run)
			}
			fmt.Fprint(w, b.String())
			last = key
		}
		if !wait || done {
			if done {
				verdict := "Succeeded"
				if failed {
					verdict = "Failed"
				}
				fmt.Fprintf(w, "run %s/%s: %s\n", ns, run, verdict)
			}
			return !failed, nil
		}
		if len(rows) == 0 && time.Now().After(deadline) {
			return false, fmt.Errorf("run %s/%s has no tasks", ns, run)
		}
		if time.Now().After(deadline) {
			return false, fmt.Errorf("run %s/%s did not finish within %s", ns, run, timeout)
		}
		select {
		case <-ctx.Done():
			return false, ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}
