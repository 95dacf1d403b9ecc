// Package retry is `kubectl sluice retry`: it decides which tasks of a run
// run again, and creates a new generation of each failed one.
//
// A failed Job cannot run again, and a failed Pod neither: retry deletes the
// failed object and creates it anew under the same name, with the same spec
// (sluice.dev/attempt counts the generations). Every task that succeeded is
// kept, with its results and artifacts. The tasks downstream of a failed one
// that never ran (UpstreamFailed, Skipped, or Failed by a condition that
// could not be evaluated) are not touched: they are still held, and the
// controller takes them back to Waiting once an upstream they were decided
// on runs again, then decides them as any waiting task.
package retry

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/sluice-dev/sluice/annotations"
)

// Step is one task of a run: its parsed keys and its object (a Job or a
// bare Pod).
type Step struct {
	Task   *annotations.Task
	Object client.Object
}

// Action is what a retry does with a task.
type Action string

const (
	// Rerun: the task failed after it was let run; a new generation of its
	// object replaces it.
	Rerun Action = "rerun"
	// Again: the task never ran because of a task that reruns; the
	// controller takes it back, and it runs if its upstreams let it.
	Again Action = "again"
	// Keep: the task succeeded, or is still waiting or running.
	Keep Action = "keep"
	// Stuck: the task never ran, and no task it waits for reruns: a retry
	// does not change it.
	Stuck Action = "stuck"
)

// Decision is what a retry does with one task, and why.
type Decision struct {
	Task   string
	Phase  annotations.Phase
	Action Action
	Why    string
	// Attempt is the generation a rerun creates (2 for the first retry).
	Attempt int
	// Object is the task's object.
	Object client.Object
}

// Plan decides, for every task of a run, what a retry does with it; the
// decisions come in graph order (upstreams first). It reads the objects
// only.
func Plan(steps []Step) []Decision {
	tasks := make([]*annotations.Task, len(steps))
	byName := map[string]Step{}
	for i, s := range steps {
		tasks[i] = s.Task
		if _, dup := byName[s.Task.Name]; !dup { // the one the graph holds
			byName[s.Task.Name] = s
		}
	}
	g, _ := annotations.NewGraph(tasks)
	depth := g.Depths()
	names := g.Names()
	slices.SortStableFunc(names, func(a, b string) int { return depth[a] - depth[b] })

	actions := map[string]Action{}
	phases := map[string]annotations.Phase{}
	var out []Decision
	for _, name := range names {
		s := byName[name]
		d := decide(s, g, actions, phases)
		actions[name], phases[name] = d.Action, d.Phase
		out = append(out, d)
	}
	return out
}

// decide is one task's decision; actions and phases hold those of its
// upstreams.
func decide(s Step, g *annotations.Graph, actions map[string]Action, phases map[string]annotations.Phase) Decision {
	t, obj := s.Task, s.Object
	phase := annotations.Phase(obj.GetLabels()[annotations.PhaseLabel])
	reason := obj.GetAnnotations()[annotations.ReasonAnnotation]
	d := Decision{Task: t.Name, Phase: phase, Action: Keep, Object: obj}
	held := annotations.IsHeld(t, obj)
	switch {
	case phase == annotations.PhaseSucceeded:
		d.Why = "succeeded: kept, with its results and artifacts"
	case phase == annotations.PhaseFailed && !held:
		d.Action, d.Attempt = Rerun, max(t.Attempt, 1)+1
		d.Why = "failed: attempt " + strconv.Itoa(d.Attempt) + " replaces it"
	case phase.Finished() && held:
		var again, running []string
		for _, up := range g.Upstreams(t.Name) {
			switch a, p := actions[up], phases[up]; {
			case a == Rerun || a == Again:
				again = append(again, up)
			case a == Keep && p != "" && !p.Finished():
				running = append(running, up) // an earlier retry's new attempt
			}
		}
		switch {
		case len(again) > 0:
			d.Action = Again
			d.Why = "never ran: waits for " + strings.Join(again, ", ") + " again"
		case len(running) > 0:
			d.Why = "never ran: the controller takes it back, as " + strings.Join(running, ", ") + " runs again"
		default:
			d.Action = Stuck
			d.Why = "never ran (" + reason + "), and no task it waits for runs again"
		}
	case failing(obj):
		d.Why = "failing: the controller has not recorded it yet; retry again in a moment"
	case phase.Finished():
		d.Why = "finished: kept"
	case t.Attempt > 1:
		d.Why = fmt.Sprintf("attempt %d is %s already", t.Attempt, strings.ToLower(string(phase)))
	default:
		d.Why = "not finished: left alone"
	}
	return d
}

// failing reports whether an object's own status shows a failure the
// controller has not recorded as the task's phase.
func failing(obj client.Object) bool {
	if annotations.Phase(obj.GetLabels()[annotations.PhaseLabel]) == annotations.PhaseFailed {
		return false
	}
	switch o := obj.(type) {
	case *batchv1.Job:
		return slices.ContainsFunc(o.Status.Conditions, func(c batchv1.JobCondition) bool {
			return (c.Type == batchv1.JobFailed || c.Type == batchv1.JobFailureTarget) && c.Status == corev1.ConditionTrue
		})
	case *corev1.Pod:
		return o.Status.Phase == corev1.PodFailed
	}
	return false
}
