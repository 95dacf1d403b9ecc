// Command kubectl-sluice is the sluice kubectl plugin (`kubectl sluice`):
// it checks pipeline files offline and shows the runs of a cluster, with
// the user's own credentials and nothing installed in the cluster.
package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"time"

	"github.com/spf13/cobra"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// version is set at build time (-X main.version=...).
var version = "dev"

// noRun is the error for a run that has no tasks in ns ("": any namespace).
func noRun(run, ns string) error {
	where := "namespace " + ns
	if ns == "" {
		where = "any namespace"
	}
	return fmt.Errorf("no run %q in %s (kubectl sluice status lists the runs)", run, where)
}

// exitError ends the command with a code and no message of its own: what
// went wrong was printed already (lint's problems, a run that failed).
type exitError struct{ code int }

func (e exitError) Error() string { return fmt.Sprintf("exit %d", e.code) }

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	err := newRootCommand().ExecuteContext(ctx)
	stop()
	var exit exitError
	switch {
	case errors.As(err, &exit):
		os.Exit(exit.code)
	case err != nil:
		fmt.Fprintln(os.Stderr, "kubectl sluice:", explain(err))
		os.Exit(1)
	}
}

// explain adds what to do to the errors a user can act on: a refusal by
// RBAC (the API server's message names the verb and the resource), and a
// cluster that cannot be reached.
func explain(err error) string {
	msg := err.Error()
	var netErr net.Error
	var urlErr *url.Error
	switch {
	case apierrors.IsForbidden(err):
		return msg + " (your credentials lack that permission: ask for it, or use another --context)"
	case apierrors.IsUnauthorized(err):
		return msg + " (your credentials were not accepted: log in again, or use another --context)"
	case errors.As(err, &urlErr), errors.As(err, &netErr), strings.Contains(msg, "connection refused"), strings.Contains(msg, "no such host"):
		return msg + " (the cluster cannot be reached: is it up, and is it your kubeconfig's current context? kubectl cluster-info checks)"
	}
	return msg
}

func newRootCommand() *cobra.Command {
	kube := genericclioptions.NewConfigFlags(true)
	root := &cobra.Command{
		Use:   "kubectl-sluice",
		Short: "Pipelines of plain Jobs and Pods",
		Long: `kubectl sluice checks sluice pipelines before they are applied and shows
the runs of a cluster, reading it with your own credentials.`,
		Version:       version,
		SilenceUsage:  true,
		SilenceErrors: true,
		Annotations:   map[string]string{cobra.CommandDisplayNameAnnotation: "kubectl sluice"},
	}
	kube.AddFlags(root.PersistentFlags())
	root.AddCommand(newLintCommand(kube), newStatusCommand(kube), newGraphCommand(kube), newLogsCommand(kube), newRetryCommand(kube), newDashboardCommand(kube), newImportCommand(kube))
	return root
}

// kubeconfig is the REST config of the cluster the kubeconfig flags name,
// and the namespace they give (the context's, else default).
func kubeconfig(kube *genericclioptions.ConfigFlags) (*rest.Config, string, error) {
	cfg, err := kube.ToRESTConfig()
	if err != nil {
		return nil, "", fmt.Errorf("loading kubeconfig: %w", err)
	}
	ns, _, err := kube.ToRawKubeConfigLoader().Namespace()
	if err != nil {
		return nil, "", fmt.Errorf("loading kubeconfig: %w", err)
	}
	return cfg, ns, nil
}

// clusterClient is a client of that cluster, and the namespace.
func clusterClient(kube *genericclioptions.ConfigFlags) (client.Client, string, error) {
	cfg, ns, err := kubeconfig(kube)
	if err != nil {
		return nil, "", err
	}
	c, err := client.New(cfg, client.Options{Scheme: scheme.Scheme})
	if err != nil {
		return nil, "", err
	}
	return c, ns, nil
}

// completeRunArgs completes a command's arguments: the namespace's runs
// first, then (for logs) the tasks of the run named.
func completeRunArgs(kube *genericclioptions.ConfigFlags, tasksToo bool) cobra.CompletionFunc {
	return func(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		if len(args) > 1 || (len(args) == 1 && !tasksToo) {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		c, ns, err := clusterClient(kube)
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		run := ""
		if len(args) == 1 {
			run = args[0]
		}
		runs, err := readRuns(cmd.Context(), c, ns, run, time.Now())
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		var out []cobra.Completion
		for _, rs := range runs {
			if run == "" {
				if strings.HasPrefix(rs.Run, toComplete) {
					out = append(out, cobra.CompletionWithDesc(rs.Run, rs.Pipeline+", "+rs.Outcome))
				}
				continue
			}
			for _, t := range rs.Tasks {
				if strings.HasPrefix(t.Task, toComplete) {
					out = append(out, cobra.CompletionWithDesc(t.Task, t.Phase))
				}
			}
		}
		return out, cobra.ShellCompDirectiveNoFileComp
	}
}
