package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"time"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/client-go/kubernetes"

	"github.com/sluice-dev/sluice/annotations"
)

// logsOptions are logs's flags.
type logsOptions struct {
	follow, previous, all bool
	tail                  int64 // the last lines only, when > 0
}

func newLogsCommand(kube *genericclioptions.ConfigFlags) *cobra.Command {
	var o logsOptions
	cmd := &cobra.Command{
		Use:   "logs RUN [TASK]",
		Short: "Print the logs of a task of a run, by task name",
		Long: `logs prints the logs of a task's step, as kubectl logs does for a pod: of
its main container (sluice.dev/container, else the first), from its newest
pod (a Job that retried has one per attempt; --previous is the container's
previous run in that pod). With --all it prints every task's logs, each
under a header, upstreams first.`,
		Example: `  kubectl sluice logs churn-demo train
  kubectl sluice logs churn-demo train -f
  kubectl sluice logs churn-demo --all`,
		Args: func(_ *cobra.Command, args []string) error {
			switch {
			case o.all && len(args) != 1:
				return fmt.Errorf("logs --all: name the run only (kubectl sluice logs RUN --all); got %d arguments", len(args))
			case !o.all && len(args) != 2:
				return fmt.Errorf("logs: name the run and the task (kubectl sluice logs RUN TASK, or RUN --all); got %d arguments", len(args))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if o.all && o.follow {
				return errors.New("logs: --all and -f do not go together: follow one task")
			}
			cfg, ns, err := kubeconfig(kube)
			if err != nil {
				return err
			}
			cs, err := kubernetes.NewForConfig(cfg)
			if err != nil {
				return err
			}
			task := ""
			if len(args) == 2 {
				task = args[1]
			}
			return logs(cmd.Context(), cs, cmd.OutOrStdout(), ns, args[0], task, o)
		},
	}
	cmd.Flags().BoolVarP(&o.follow, "follow", "f", false, "stream the logs as they come")
	cmd.Flags().BoolVarP(&o.previous, "previous", "p", false, "the container's previous run in its pod")
	cmd.Flags().BoolVar(&o.all, "all", false, "every task of the run, upstreams first")
	cmd.Flags().Int64Var(&o.tail, "tail", -1, "the last lines of each log only (-1: all of it)")
	cmd.ValidArgsFunction = completeRunArgs(kube, true)
	return cmd
}

// logs prints the logs of one task of the run, or of all of them.
func logs(ctx context.Context, cs kubernetes.Interface, w io.Writer, ns, run, task string, o logsOptions) error {
	sel := metav1.ListOptions{LabelSelector: labels.SelectorFromSet(labels.Set{annotations.RunLabel: run}).String()}
	pods, err := cs.CoreV1().Pods(ns).List(ctx, sel)
	if err != nil {
		return fmt.Errorf("listing the pods of run %s: %w", run, err)
	}
	// The graph comes from the tasks' objects: Jobs, and bare Pods (a
	// Job's pods carry its task labels, not its upstreams).
	byTask := map[string][]*corev1.Pod{}
	var tasks []*annotations.Task
	for i := range pods.Items {
		p := &pods.Items[i]
		name := p.Labels[annotations.TaskLabel]
		if name == "" {
			continue
		}
		if annotations.JobOf(p) == "" {
			if t, errs := annotations.Parse(p); len(errs) == 0 {
				tasks = append(tasks, t)
			}
		}
		byTask[name] = append(byTask[name], p)
	}
	if o.all {
		jobs, err := cs.BatchV1().Jobs(ns).List(ctx, sel)
		if err != nil {
			return fmt.Errorf("listing the Jobs of run %s: %w", run, err)
		}
		for i := range jobs.Items {
			if t, errs := annotations.Parse(&jobs.Items[i]); len(errs) == 0 {
				tasks = append(tasks, t)
			}
		}
	}
	if len(byTask) == 0 {
		return fmt.Errorf("run %q has no pods in namespace %s (kubectl sluice status lists the runs)", run, ns)
	}
	if !o.all {
		if _, ok := byTask[task]; !ok {
			return fmt.Errorf("task %q of run %s has no pod (yet): its tasks with pods are %v", task, run, slices.Sorted(maps.Keys(byTask)))
		}
		return podLogs(ctx, cs, w, newest(byTask[task]), o)
	}
	g, _ := annotations.NewGraph(tasks)
	depth := g.Depths()
	names := slices.Sorted(maps.Keys(byTask))
	slices.SortStableFunc(names, func(a, b string) int { return depth[a] - depth[b] })
	for i, name := range names {
		if i > 0 {
			fmt.Fprintln(w)
		}
		p := newest(byTask[name])
		fmt.Fprintf(w, "==> %s (pod %s) <==\n", name, p.Name)
		if err := podLogs(ctx, cs, w, p, o); err != nil {
			fmt.Fprintf(w, "(no logs: %v)\n", err)
		}
	}
	return nil
}

// newest is the pod created last: a Job's latest attempt.
func newest(pods []*corev1.Pod) *corev1.Pod {
	return slices.MaxFunc(pods, func(a, b *corev1.Pod) int {
		return a.CreationTimestamp.Compare(b.CreationTimestamp.Time)
	})
}

// mainContainerOf is the container whose logs are the step's: the one
// sluice.dev/container names, else the first.
func mainContainerOf(p *corev1.Pod) string {
	if c := p.Annotations[annotations.ContainerAnnotation]; c != "" {
		return c
	}
	if len(p.Spec.Containers) == 0 {
		return ""
	}
	return p.Spec.Containers[0].Name
}

func podLogs(ctx context.Context, cs kubernetes.Interface, w io.Writer, p *corev1.Pod, o logsOptions) error {
	if o.follow {
		// Following a pod that has not started yet: wait for it, as
		// kubectl logs -f does not.
		for p.Status.Phase == corev1.PodPending {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(time.Second):
			}
			latest, err := cs.CoreV1().Pods(p.Namespace).Get(ctx, p.Name, metav1.GetOptions{})
			if err != nil {
				return err
			}
			p = latest
		}
	}
	opts := &corev1.PodLogOptions{Container: mainContainerOf(p), Follow: o.follow, Previous: o.previous}
	if o.tail > 0 {
		opts.TailLines = &o.tail
	}
	req := cs.CoreV1().Pods(p.Namespace).GetLogs(p.Name, opts)
	stream, err := req.Stream(ctx)
	if err != nil {
		return fmt.Errorf("logs of pod %s: %w", p.Name, err)
	}
	defer stream.Close()
	_, err = io.Copy(w, stream)
	return err
}
