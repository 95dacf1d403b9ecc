package controller

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/sluice-dev/sluice/annotations"
)

var (
	releaseLatency = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "sluice_release_latency_seconds",
		Help: "Time from the last upstream task finishing to the release of its downstream task. " +
			"Finish times come from Kubernetes timestamps, which have one-second resolution.",
		Buckets: []float64{0.05, 0.1, 0.25, 0.5, 1, 1.5, 2, 3, 5, 10, 30},
	})
	releases = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "sluice_task_releases_total",
		Help: "Tasks released by the controller.",
	})
	retakes = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "sluice_task_retakes_total",
		Help: "Tasks decided without running (skipped, upstream failed) taken back to Waiting because an upstream runs again (a retry).",
	})
	runs = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sluice_runs_total",
		Help: "Runs that ended, by outcome (Succeeded: no task failed; skipped branches do not fail a run).",
	}, []string{"outcome"})
	decisions = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sluice_task_transitions_total",
		Help: "Phase changes recorded by the controller, by new phase.",
	}, []string{"phase"})
)

// taskCollector reports the number of tasks in each phase, read from the
// informer cache at scrape time so that no count can drift from the objects.
type taskCollector struct {
	reader client.Reader
	desc   *prometheus.Desc
}

func newTaskCollector(reader client.Reader) *taskCollector {
	return &taskCollector{reader: reader, desc: prometheus.NewDesc("sluice_tasks",
		"Sluice tasks (Jobs and bare Pods) by the phase the controller recorded.", []string{"phase"}, nil)}
}

func (c *taskCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *taskCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	counts := map[annotations.Phase]int{}
	for _, p := range []annotations.Phase{annotations.PhaseWaiting, annotations.PhaseRunning, annotations.PhaseSucceeded,
		annotations.PhaseFailed, annotations.PhaseSkipped, annotations.PhaseUpstreamFailed} {
		counts[p] = 0
	}
	var jobs batchv1.JobList
	if err := c.reader.List(ctx, &jobs, client.HasLabels{annotations.PipelineLabel}); err == nil {
		for i := range jobs.Items {
			if p := recordedPhase(&jobs.Items[i]); p != "" {
				counts[p]++
			}
		}
	}
	var pods corev1.PodList
	if err := c.reader.List(ctx, &pods, client.HasLabels{annotations.PipelineLabel}); err == nil {
		for i := range pods.Items {
			if p := recordedPhase(&pods.Items[i]); p != "" && !annotations.ControlledByJob(&pods.Items[i]) {
				counts[p]++
			}
		}
	}
	for p, n := range counts {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(n), string(p))
	}
}

var registered bool

// registerMetrics adds sluice's metrics to controller-runtime's registry,
// which the manager serves on its metrics endpoint.
func registerMetrics(reader client.Reader) {
	if registered {
		return
	}
	registered = true
	ctrlmetrics.Registry.MustRegister(releaseLatency, releases, retakes, runs, decisions, newTaskCollector(reader))
}
