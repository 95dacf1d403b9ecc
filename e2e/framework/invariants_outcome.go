package framework

import (
	"fmt"
	"slices"
	"strings"

	"github.com/sluice-dev/sluice/annotations"
)

// checkRunOutcome is RuleRunOutcome: a run's outcome is recorded on one
// task, once, after every task finished, and is Failed exactly when a task
// Failed or is UpstreamFailed (the controller's rule: a failure handled by
// an any-failed task still fails the run; a skipped branch does not).
func (v *runView) checkRunOutcome() []Violation {
	var live []*taskHistory // the tasks the run has at the end
	for _, name := range v.names() {
		if th := v.current(name); !th.gone() {
			live = append(live, th)
		}
	}
	if len(live) == 0 {
		return nil
	}
	var vs []Violation
	fail := func(msg string, ths ...*taskHistory) {
		var observed []string
		for _, th := range ths {
			observed = append(observed, th.sequence()...)
		}
		vs = append(vs, Violation{Rule: RuleRunOutcome, Run: v.key, Message: msg, Observed: observed})
	}
	var unfinished, carriers []*taskHistory
	want := "Succeeded"
	for _, th := range live {
		switch p := th.last().phase; {
		case !p.Finished():
			unfinished = append(unfinished, th)
		case p == annotations.PhaseFailed || p == annotations.PhaseUpstreamFailed:
			want = "Failed"
		}
	}
	for _, name := range v.names() {
		for _, th := range v.incarnations[name] {
			if slices.ContainsFunc(th.versions, func(o observation) bool { return o.outcome != nil }) {
				carriers = append(carriers, th)
			}
		}
	}
	if len(carriers) > 1 {
		fail(fmt.Sprintf("run outcome recorded on %d tasks, want one", len(carriers)), carriers...)
	}
	if len(carriers) == 0 {
		if len(unfinished) == 0 {
			fail("every task finished, but no run outcome was recorded", live...)
		}
		return vs
	}
	if len(unfinished) > 0 {
		fail(fmt.Sprintf("run outcome recorded, but %s not finished", names(unfinished)), append(carriers, unfinished...)...)
	}
	for _, th := range carriers {
		if msg := outcomeChanges(th); msg != "" {
			fail(msg, th)
		}
		if got := lastOutcome(th); got != nil && *got != want && len(unfinished) == 0 {
			fail(fmt.Sprintf("run outcome %s on %s, want %s (%s)", *got, th.task.Name, want, phaseCounts(live)), live...)
		}
		if early := v.unfinishedAt(th); len(early) > 0 {
			fail(fmt.Sprintf("run outcome recorded on %s while %s had not finished", th.task.Name, strings.Join(early, ", ")), live...)
		}
	}
	return vs
}

// outcomeChanges says how a task's run outcome changed once set, or "".
func outcomeChanges(th *taskHistory) string {
	var first *observation
	for i, o := range th.versions {
		switch {
		case o.deleted:
		case first == nil && o.outcome != nil:
			first = &th.versions[i]
		case first != nil && (o.outcome == nil || *o.outcome != *first.outcome):
			now := "removed"
			if o.outcome != nil {
				now = *o.outcome
			}
			return fmt.Sprintf("run outcome %s on %s at rv=%d became %s at rv=%d", *first.outcome, th.task.Name, first.rv, now, o.rv)
		}
	}
	return ""
}

func lastOutcome(th *taskHistory) *string {
	for i := len(th.versions) - 1; i >= 0; i-- {
		if o := th.versions[i].outcome; o != nil {
			return o
		}
	}
	return nil
}

// unfinishedAt lists the tasks (with their phase) that existed and had not
// recorded a final phase when the carrier's run outcome was first seen.
func (v *runView) unfinishedAt(carrier *taskHistory) []string {
	var at uint64
	for _, o := range carrier.versions {
		if o.outcome != nil {
			at = o.rv
			break
		}
	}
	var early []string
	for _, name := range v.names() {
		th := v.at(name, at+1)
		if th == nil {
			continue
		}
		var phase annotations.Phase
		for _, o := range th.versions {
			if o.rv > at {
				break
			}
			phase = o.phase
			if o.deleted {
				phase = annotations.PhaseSucceeded // gone: not part of the run any more
			}
		}
		if !phase.Finished() {
			early = append(early, name+" ("+orNone(phase)+")")
		}
	}
	return early
}

func names(ths []*taskHistory) string {
	var n []string
	for _, th := range ths {
		n = append(n, th.task.Name+" ("+orNone(th.last().phase)+")")
	}
	return strings.Join(n, ", ")
}

func phaseCounts(ths []*taskHistory) string {
	counts := map[annotations.Phase]int{}
	for _, th := range ths {
		counts[th.last().phase]++
	}
	var parts []string
	for _, p := range []annotations.Phase{annotations.PhaseSucceeded, annotations.PhaseFailed, annotations.PhaseUpstreamFailed, annotations.PhaseSkipped} {
		parts = append(parts, fmt.Sprintf("%d %s", counts[p], p))
	}
	return strings.Join(parts, ", ")
}
