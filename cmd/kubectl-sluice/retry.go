package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/sluice-dev/sluice/annotations"
	"github.com/sluice-dev/sluice/retry"
)

type retryOptions struct {
	dryRun bool
	apply  retry.Options
}

func newRetryCommand(kube *genericclioptions.ConfigFlags) *cobra.Command {
	o := retryOptions{apply: retry.Options{Dir: os.TempDir()}}
	cmd := &cobra.Command{
		Use:   "retry RUN",
		Short: "Run a run's failed tasks again, and the tasks that never ran because of them",
		Long: `retry runs the run's Failed tasks again, keeping every Succeeded task with
its results and artifacts. Fix what made them fail first (a ConfigMap, a
Secret, a node pool, a quota): retry creates each failed Job or Pod anew
with the same spec, as attempt 2, 3, ... (sluice.dev/attempt).

The tasks downstream of them that never ran (UpstreamFailed, Skipped) wait
again: the controller takes them back once the new attempt runs, releases
them when it succeeds, and records the run's outcome again at its end.
Tasks still running are left alone, and a second retry while the first is
going finds nothing new to do.

The failed attempt's pods are deleted with it: read their logs first
(kubectl sluice logs RUN TASK) if you need them. Each new object is saved
to a file before the failed one is deleted, and named in the error if it
cannot be created.`,
		Example: `  # what a retry would do, changing nothing
  kubectl sluice retry churn-demo --dry-run
  # after fixing the cause
  kubectl sluice retry churn-demo
  kubectl sluice status churn-demo --watch`,
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) != 1 {
				return fmt.Errorf("retry: name one run (kubectl sluice retry RUN); got %d arguments", len(args))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			c, ns, err := clusterClient(kube)
			if err != nil {
				return err
			}
			return retryRun(cmd.Context(), c, cmd.OutOrStdout(), ns, args[0], o)
		},
	}
	cmd.Flags().BoolVar(&o.dryRun, "dry-run", false, "print what a retry would do, and change nothing")
	cmd.Flags().DurationVar(&o.apply.Timeout, "timeout", time.Minute, "how long to wait for a failed object to be gone before creating its new attempt")
	cmd.ValidArgsFunction = completeRunArgs(kube, false)
	return cmd
}

// readSteps reads the tasks of one run: its Jobs and bare Pods.
func readSteps(ctx context.Context, c client.Client, ns, run string) ([]retry.Step, error) {
	jobs, pods, err := listSteps(ctx, c, client.InNamespace(ns), client.MatchingLabels{annotations.RunLabel: run})
	if err != nil {
		return nil, err
	}
	var steps []retry.Step
	add := func(obj client.Object) {
		if t, errs := annotations.Parse(obj); len(errs) == 0 && !annotations.ControlledByJob(obj) {
			steps = append(steps, retry.Step{Task: t, Object: obj})
		}
	}
	for i := range jobs.Items {
		add(&jobs.Items[i])
	}
	for i := range pods.Items {
		add(&pods.Items[i])
	}
	return steps, nil
}

// retryRun plans the retry of a run, prints the plan, and carries it out.
func retryRun(ctx context.Context, c client.Client, w io.Writer, ns, run string, o retryOptions) error {
	steps, err := readSteps(ctx, c, ns, run)
	if err != nil {
		return err
	}
	if len(steps) == 0 {
		return noRun(run, ns)
	}
	plan := retry.Plan(steps)
	var rerun, again, stuck []string
	tw := newTable(w)
	fmt.Fprintln(tw, "TASK\tPHASE\tRETRY")
	for _, d := range plan {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", d.Task, dash(string(d.Phase)), d.Why)
		switch d.Action {
		case retry.Rerun:
			rerun = append(rerun, d.Task)
		case retry.Again:
			again = append(again, d.Task)
		case retry.Stuck:
			stuck = append(stuck, d.Task)
		}
	}
	_ = tw.Flush()
	where := ns + "/" + run
	switch {
	case len(rerun) == 0 && len(stuck) > 0:
		fmt.Fprintf(w, "run %s: nothing can be retried: %s never ran, and no task they wait for failed\n", where, strings.Join(stuck, ", "))
		return exitError{1}
	case len(rerun) == 0:
		fmt.Fprintf(w, "run %s: nothing to retry: no task failed\n", where)
		return nil
	}
	summary := "retrying " + strings.Join(rerun, ", ")
	if len(again) > 0 {
		summary += "; waiting again, once they run: " + strings.Join(again, ", ")
	}
	if o.dryRun {
		fmt.Fprintf(w, "run %s: %s (dry run: nothing changed)\n", where, summary)
		return nil
	}
	if err := retry.CheckAccess(ctx, c, ns, plan); err != nil {
		return err
	}
	failed := false
	for _, r := range retry.Apply(ctx, c, plan, o.apply) {
		switch {
		case r.Err != nil:
			failed = true
			msg := fmt.Sprintf("%s %s: %v", r.Kind, r.Name, r.Err)
			if r.Manifest != "" {
				msg += fmt.Sprintf("; its new attempt is saved in %s: kubectl create -f %s", r.Manifest, r.Manifest)
			}
			fmt.Fprintln(w, msg)
		case r.Already:
			fmt.Fprintf(w, "%s %s: a new attempt was created by another retry\n", r.Kind, r.Name)
		default:
			fmt.Fprintf(w, "%s %s: attempt %d created\n", r.Kind, r.Name, r.Attempt)
		}
	}
	if failed {
		return exitError{1}
	}
	fmt.Fprintf(w, "run %s: %s (kubectl sluice status %s -n %s --watch)\n", where, summary, run, ns)
	return nil
}
