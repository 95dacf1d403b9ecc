package main

import (
	"fmt"
	"strings"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/sluice-dev/sluice/annotations"
)

// step is one step of a benchmark's workload.
type step struct {
	run, name string
	after     []string
	// group puts the step in a sluice group; a step with afterGroup waits
	// for that group (of len(after) steps) instead of naming each one.
	group, afterGroup string
}

func (s step) key() string { return s.run + "/" + s.name }

// workload is a set of runs, each step listed after its upstreams.
type workload []step

func chain(n int) workload {
	w := make(workload, 0, n)
	for i := range n {
		s := step{run: "r0", name: fmt.Sprintf("s%d", i)}
		if i > 0 {
			s.after = []string{fmt.Sprintf("s%d", i-1)}
		}
		w = append(w, s)
	}
	return w
}

// fan is 1 -> width -> 1 in run "r<id>"; for sluice, the join waits for
// the group of workers, as a user would write a wide fan-in.
func fan(run string, width int) workload {
	w := workload{{run: run, name: "root"}}
	join := step{run: run, name: "join", afterGroup: "workers"}
	for i := range width {
		name := fmt.Sprintf("w%d", i)
		w = append(w, step{run: run, name: name, after: []string{"root"}, group: "workers"})
		join.after = append(join.after, name)
	}
	return append(w, join)
}

// runs is n runs of 1 -> (steps-2) -> 1, all at once.
func runs(n, steps int) workload {
	var w workload
	for i := range n {
		w = append(w, fan(fmt.Sprintf("r%d", i), steps-2)...)
	}
	return w
}

// Labels the benchmark puts on every object and pod, sluice's or not.
const (
	benchRunLabel  = "bench.sluice.dev/run"
	benchTaskLabel = "bench.sluice.dev/task"
)

// objectMeta is a step's metadata: the bench's labels, and sluice's keys
// when sluice drives it.
func (s step) objectMeta(ns string, sluice bool) metav1.ObjectMeta {
	m := metav1.ObjectMeta{
		Name: objectName(s), Namespace: ns,
		Labels: map[string]string{benchRunLabel: s.run, benchTaskLabel: s.name},
	}
	if sluice {
		m.Labels[annotations.PipelineLabel] = "bench"
		m.Labels[annotations.RunLabel] = s.run
		m.Labels[annotations.TaskLabel] = s.name
		switch {
		case s.afterGroup != "":
			m.Annotations = map[string]string{annotations.AfterGroupAnnotation: annotations.GroupWait{Group: s.afterGroup, Size: len(s.after)}.String()}
		case len(s.after) > 0:
			m.Annotations = map[string]string{annotations.AfterAnnotation: strings.Join(s.after, ",")}
		}
		if s.group != "" {
			m.Labels[annotations.GroupLabel] = s.group
		}
	}
	return m
}

func objectName(s step) string { return s.run + "-" + s.name }

// podSpec runs a zero-duration simulated step on a kwok node, with the
// scheduler sluice gives its own steps.
func podSpec(schedulerName string) corev1.PodSpec {
	return corev1.PodSpec{
		RestartPolicy: corev1.RestartPolicyNever, SchedulerName: schedulerName,
		AutomountServiceAccountToken:  ptr.To(false),
		TerminationGracePeriodSeconds: ptr.To[int64](0),
		Containers:                    []corev1.Container{{Name: "main", Image: "localhost/sluice/busybox:dev"}},
	}
}

var simulated = map[string]string{"sim.sluice.dev/duration": "0s"}

func (s step) job(ns, schedulerName string, sluice bool) *batchv1.Job {
	return &batchv1.Job{
		TypeMeta:   metav1.TypeMeta{APIVersion: "batch/v1", Kind: "Job"},
		ObjectMeta: s.objectMeta(ns, sluice),
		Spec: batchv1.JobSpec{
			BackoffLimit: ptr.To[int32](0),
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{benchRunLabel: s.run, benchTaskLabel: s.name}, Annotations: simulated},
				Spec:       podSpec(schedulerName),
			},
		},
	}
}

func (s step) pod(ns, schedulerName string, sluice bool) *corev1.Pod {
	m := s.objectMeta(ns, sluice)
	if m.Annotations == nil {
		m.Annotations = map[string]string{}
	}
	for k, v := range simulated {
		m.Annotations[k] = v
	}
	return &corev1.Pod{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: m, Spec: podSpec(schedulerName),
	}
}
