package controller

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/sluice-dev/sluice/annotations"
)

// decision is what a waiting task becomes.
type decision struct {
	phase   annotations.Phase
	reason  string
	release bool
}

// releaseOrSkip is the decision to start a task whose trigger is satisfied; a
// `when` condition, evaluated over the upstreams' phases and results, can
// still turn it into Skipped (false) or Failed (cannot be evaluated).
func releaseOrSkip(task *annotations.Task, ups map[string]*taskState, reason string, when *annotations.When, whenErr error) decision {
	if task.When == "" {
		return decision{phase: annotations.PhaseRunning, release: true, reason: reason}
	}
	if whenErr != nil {
		return decision{phase: annotations.PhaseFailed, reason: oneLine(whenErr.Error())}
	}
	in := map[string]annotations.TaskResult{}
	for _, name := range task.Upstreams() { // a condition names these only
		if s, ok := ups[name]; ok {
			in[name] = annotations.TaskResult{Phase: string(s.phase), Results: s.results}
		}
	}
	ok, err := when.Eval(in)
	switch {
	case err != nil:
		return decision{phase: annotations.PhaseFailed, reason: oneLine("sluice.dev/when " + strconv.Quote(task.When) + " could not be evaluated: " + err.Error())}
	case !ok:
		return decision{phase: annotations.PhaseSkipped, reason: oneLine("sluice.dev/when " + strconv.Quote(task.When) + " is false")}
	}
	return decision{phase: annotations.PhaseRunning, release: true, reason: oneLine(reason + "; when " + strconv.Quote(task.When) + " is true")}
}

// groupWait is a group a task waits for, as the controller sees it: the
// members that exist (their states are among the upstreams'), and those
// deleted before they finished.
type groupWait struct {
	annotations.GroupWait
	members, lost []string
}

// decide looks at the upstreams of a waiting task and says whether it stays
// waiting, is released, or will never run. ups holds the state of every
// upstream that exists, the members of the groups it waits for included; a
// missing one is waited for (tasks may be applied in any order), unless it
// is known to have been deleted before it finished: that counts as a
// failure. A group is complete once it has as many tasks as its size.
//
// when is the task's compiled condition (nil without one), whenErr why it
// does not compile.
func decide(task *annotations.Task, ups map[string]*taskState, groups []groupWait, deleted func(string) bool, when *annotations.When, whenErr error) decision {
	var all, missing, pending, succeeded, failed, skipped, incomplete []string
	classify := func(name string) {
		all = append(all, name)
		s, ok := ups[name]
		switch {
		case !ok && deleted(name):
			failed = append(failed, name+" (deleted before it finished)")
		case !ok:
			missing = append(missing, name)
		case s.phase == annotations.PhaseSucceeded:
			succeeded = append(succeeded, name)
		case s.phase == annotations.PhaseFailed || s.phase == annotations.PhaseUpstreamFailed:
			failed = append(failed, name)
		case s.phase == annotations.PhaseSkipped:
			skipped = append(skipped, name)
		default:
			pending = append(pending, name)
		}
	}
	for _, name := range task.Upstreams() {
		classify(name)
	}
	for _, g := range groups {
		for _, name := range g.members {
			classify(name)
		}
		for _, name := range g.lost {
			classify(name)
		}
		if len(g.members)+len(g.lost) < g.Size {
			incomplete = append(incomplete, fmt.Sprintf("group %s to have its %d tasks", g.Group, g.Size))
		}
	}
	// A task waiting for upstreams that run says nothing (their phases say
	// it, and a join would otherwise be rewritten as each one finishes); one
	// waiting for upstreams that do not exist says so: that wait may be
	// forever.
	waiting := func() decision {
		var what []string
		if len(missing) > 0 {
			what = append(what, list(missing)+" to be created")
		}
		what = append(what, incomplete...)
		if len(what) > 0 {
			return decision{phase: annotations.PhaseWaiting, reason: oneLine("waiting for " + strings.Join(what, " and for "))}
		}
		return decision{phase: annotations.PhaseWaiting}
	}
	allDone := len(missing) == 0 && len(pending) == 0 && len(incomplete) == 0

	switch task.Trigger {
	case annotations.TriggerAllDone:
		if !allDone {
			return waiting()
		}
		return releaseOrSkip(task, ups, "released: upstreams done ("+list(all)+")", when, whenErr)
	case annotations.TriggerAnyFailed:
		if len(failed) > 0 {
			return releaseOrSkip(task, ups, "released: upstream "+list(failed)+" failed", when, whenErr)
		}
		if !allDone {
			return waiting()
		}
		return decision{phase: annotations.PhaseSkipped, reason: "no upstream failed (trigger " + annotations.TriggerAnyFailed + ")"}
	default: // all-succeeded, and none-failed: the same with Skipped upstreams as done
		noneFailed := task.Trigger == annotations.TriggerNoneFailed
		if len(failed) > 0 {
			return decision{phase: annotations.PhaseUpstreamFailed, reason: "upstream " + list(failed) + " failed"}
		}
		if len(skipped) > 0 && !noneFailed {
			return decision{phase: annotations.PhaseSkipped, reason: "upstream " + list(skipped) + " skipped"}
		}
		if !allDone {
			return waiting()
		}
		if noneFailed {
			return releaseOrSkip(task, ups, "released: upstreams done, none failed ("+list(all)+")", when, whenErr)
		}
		return releaseOrSkip(task, ups, "released: upstreams succeeded ("+list(succeeded)+")", when, whenErr)
	}
}

// list names tasks in a reason: sorted, and the first ten of a long list
// with the count of the rest.
func list(names []string) string {
	const shown = 10
	names = slices.Clone(names)
	slices.Sort(names)
	if len(names) > shown {
		return strings.Join(names[:shown], ", ") + fmt.Sprintf(" and %d more", len(names)-shown)
	}
	return strings.Join(names, ", ")
}
