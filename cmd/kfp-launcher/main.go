// Command kfp-launcher runs a Kubeflow Pipelines container task inside a
// sluice step (package kfp/launcher). Its image's init container installs
// it into the step: kfp-launcher install /sluice/kfp/launcher.
package main

import (
	"os"
	"os/signal"

	"github.com/sluice-dev/sluice/kfp/launcher"
)

func main() {
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, launcher.Signals...)
	l := &launcher.Launcher{
		Signals: sigs,
		Stdin:   os.Stdin,
		Stdout:  os.Stdout,
		Stderr:  os.Stderr,
		Getenv:  os.Getenv,
	}
	os.Exit(l.Main(os.Args[1:]))
}
