// Command kubectl-sluice is the sluice kubectl plugin (`kubectl sluice`):
// it checks pipeline files offline and shows the runs of a cluster, with
// the user's own credentials and nothing installed in the cluster.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"

	"github.com/spf13/cobra"
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
		fmt.Fprintln(os.Stderr, "kubectl sluice:", err)
		os.Exit(1)
	}
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
	root.AddCommand(newLintCommand(kube), newStatusCommand(kube), newGraphCommand(kube), newLogsCommand(kube), newRetryCommand(kube), newDashboardCommand(kube))
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
