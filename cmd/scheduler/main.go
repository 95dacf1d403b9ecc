// Command sluice-scheduler is kube-scheduler with the SluiceGPU plugin
// registered; enable it in a profile of --config (manifests/scheduler-config.yaml).
package main

import (
	"os"

	"k8s.io/component-base/cli"
	"k8s.io/kubernetes/cmd/kube-scheduler/app"

	plugin "github.com/sluice-dev/sluice/scheduler-plugin"
)

func main() {
	cmd := app.NewSchedulerCommand(app.WithPlugin(plugin.Name, plugin.New))
	os.Exit(cli.Run(cmd))
}
