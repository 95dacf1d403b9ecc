package main

import (
	"context"
	"testing"

	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/klog/v2"
	"k8s.io/kubernetes/cmd/kube-scheduler/app/options"
	"k8s.io/kubernetes/pkg/scheduler/apis/config"
	"k8s.io/kubernetes/pkg/scheduler/apis/config/validation"
	"k8s.io/kubernetes/pkg/scheduler/backend/cache"
	"k8s.io/kubernetes/pkg/scheduler/framework/plugins"
	frameworkruntime "k8s.io/kubernetes/pkg/scheduler/framework/runtime"
	"k8s.io/kubernetes/pkg/scheduler/metrics"

	plugin "github.com/sluice-dev/sluice/scheduler-plugin"
)

const configFile = "../../manifests/scheduler-config.yaml"

// TestSchedulerConfig loads manifests/scheduler-config.yaml the way
// kube-scheduler does, validates it, and builds every profile's framework
// with the in-tree plugins and SluiceGPU, so its args must decode too.
func TestSchedulerConfig(t *testing.T) {
	cfg, err := options.LoadConfigFromFile(klog.Background(), configFile)
	if err != nil {
		t.Fatalf("loading %s: %v", configFile, err)
	}
	if err := validation.ValidateKubeSchedulerConfiguration(cfg); err != nil {
		t.Fatalf("%s is invalid: %v", configFile, err)
	}
	if cfg.LeaderElection.LeaderElect {
		t.Errorf("%s: leader election should be off for the local cluster", configFile)
	}
	metrics.Register() // the framework records plugin metrics as it builds
	registry := plugins.NewInTreeRegistry()
	if err := registry.Merge(frameworkruntime.Registry{plugin.Name: plugin.New}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	informerFactory := informers.NewSharedInformerFactory(fake.NewClientset(), 0)

	want := map[string]bool{"default-scheduler": false, "sluice-scheduler": true}
	for i := range cfg.Profiles {
		prof := &cfg.Profiles[i]
		enabled, ok := want[prof.SchedulerName]
		if !ok {
			t.Errorf("unexpected profile %q", prof.SchedulerName)
			continue
		}
		delete(want, prof.SchedulerName)
		fw, err := frameworkruntime.NewFramework(ctx, registry, prof,
			frameworkruntime.WithInformerFactory(informerFactory),
			frameworkruntime.WithClientSet(fake.NewClientset()),
			frameworkruntime.WithSnapshotSharedLister(cache.NewEmptySnapshot()))
		if err != nil {
			t.Errorf("profile %s: %v", prof.SchedulerName, err)
			continue
		}
		listed := fw.ListPlugins()
		for ext, set := range map[string]config.PluginSet{"PreFilter": listed.PreFilter, "Filter": listed.Filter, "Score": listed.Score} {
			got := false
			for _, p := range set.Enabled {
				if p.Name != plugin.Name {
					continue
				}
				got = true
				if ext == "Score" && p.Weight < 2 {
					t.Errorf("profile %s: %s score weight %d, want it to outweigh the default plugins", prof.SchedulerName, plugin.Name, p.Weight)
				}
			}
			if got != enabled {
				t.Errorf("profile %s: %s enabled at %s = %v, want %v", prof.SchedulerName, plugin.Name, ext, got, enabled)
			}
		}
	}
	for name := range want {
		t.Errorf("%s has no profile %s", configFile, name)
	}
}
