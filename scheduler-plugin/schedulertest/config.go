// Package schedulertest checks kube-scheduler configurations that use
// SluiceGPU the way kube-scheduler itself reads them. The tests of
// cmd/scheduler (manifests/scheduler-config.yaml) and of the Helm chart (its
// rendered ConfigMap) share it.
package schedulertest

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

// LoadConfig loads the configuration file at path as kube-scheduler does and
// validates it.
func LoadConfig(t testing.TB, path string) *config.KubeSchedulerConfiguration {
	t.Helper()
	cfg, err := options.LoadConfigFromFile(klog.Background(), path)
	if err != nil {
		t.Fatalf("loading %s: %v", path, err)
	}
	if err := validation.ValidateKubeSchedulerConfiguration(cfg); err != nil {
		t.Fatalf("%s is invalid: %v", path, err)
	}
	return cfg
}

// CheckProfiles builds every profile's framework with the in-tree plugins and
// SluiceGPU (so SluiceGPU's args must decode) and checks that cfg has exactly
// the profiles in want, SluiceGPU enabled at PreFilter and Score where want
// says so (never at Filter: the in-tree filters place GPU steps), with a score
// weight that outweighs the default plugins.
func CheckProfiles(t testing.TB, cfg *config.KubeSchedulerConfiguration, want map[string]bool) {
	t.Helper()
	metrics.Register() // the framework records plugin metrics as it builds
	registry := plugins.NewInTreeRegistry()
	if err := registry.Merge(frameworkruntime.Registry{plugin.Name: plugin.New}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	informerFactory := informers.NewSharedInformerFactory(fake.NewClientset(), 0)

	missing := make(map[string]bool, len(want))
	for name := range want {
		missing[name] = true
	}
	for i := range cfg.Profiles {
		prof := &cfg.Profiles[i]
		enabled, ok := want[prof.SchedulerName]
		if !ok {
			t.Errorf("unexpected profile %q", prof.SchedulerName)
			continue
		}
		delete(missing, prof.SchedulerName)
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
			if want := enabled && ext != "Filter"; got != want {
				t.Errorf("profile %s: %s enabled at %s = %v, want %v", prof.SchedulerName, plugin.Name, ext, got, want)
			}
		}
	}
	for name := range missing {
		t.Errorf("no profile %s", name)
	}
}
