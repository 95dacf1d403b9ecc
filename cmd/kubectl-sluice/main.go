// Command kubectl-sluice is the sluice kubectl plugin: `kubectl sluice
// status` shows the tasks of a run and can wait for the run to end.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"time"

	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

const usage = `kubectl sluice: pipelines of plain Jobs and Pods

Usage:
  kubectl sluice status RUN [-n NAMESPACE] [--wait] [--timeout 10m]

status prints each task of the run: phase, node, duration and reason.
With --wait it prints again on every change until every task has finished,
and exits 1 if the run failed.
`

func main() {
	if len(os.Args) < 2 || os.Args[1] != "status" {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	fs := flag.NewFlagSet("status", flag.ExitOnError)
	ns := fs.String("n", "", "namespace (default: the kubeconfig context's)")
	kubeconfig := fs.String("kubeconfig", "", "path to the kubeconfig (default: $KUBECONFIG or ~/.kube/config)")
	wait := fs.Bool("wait", false, "print on every change until the run ends")
	timeout := fs.Duration("timeout", 10*time.Minute, "with --wait, give up after this long")
	args := os.Args[2:]
	var run string
	if len(args) > 0 && args[0] != "" && args[0][0] != '-' {
		run, args = args[0], args[1:]
	}
	_ = fs.Parse(args)
	if run == "" && fs.NArg() > 0 {
		run = fs.Arg(0)
	}
	if run == "" {
		fmt.Fprint(os.Stderr, "kubectl sluice status: name the run\n\n"+usage)
		os.Exit(2)
	}
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = *kubeconfig
	cc := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{})
	cfg, err := cc.ClientConfig()
	if err != nil {
		fmt.Fprintln(os.Stderr, "kubectl sluice: loading kubeconfig:", err)
		os.Exit(1)
	}
	if *ns == "" {
		if *ns, _, err = cc.Namespace(); err != nil {
			*ns = "default"
		}
	}
	c, err := client.New(cfg, client.Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, "kubectl sluice:", err)
		os.Exit(1)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	ok, err := status(ctx, c, os.Stdout, *ns, run, *wait, *timeout)
	if err != nil {
		fmt.Fprintln(os.Stderr, "kubectl sluice:", err)
		os.Exit(1)
	}
	if !ok {
		os.Exit(1)
	}
}
