package main

import (
	"testing"

	"github.com/sluice-dev/sluice/scheduler-plugin/schedulertest"
)

const configFile = "../../manifests/scheduler-config.yaml"

// TestSchedulerConfig loads manifests/scheduler-config.yaml the way
// kube-scheduler does, validates it, and builds every profile's framework
// with the in-tree plugins and SluiceGPU, so its args must decode too.
func TestSchedulerConfig(t *testing.T) {
	cfg := schedulertest.LoadConfig(t, configFile)
	if cfg.LeaderElection.LeaderElect {
		t.Errorf("%s: leader election should be off for the local cluster", configFile)
	}
	schedulertest.CheckProfiles(t, cfg, map[string]bool{"default-scheduler": false, "sluice-scheduler": true})
}
