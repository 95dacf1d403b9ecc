package framework

import (
	"fmt"
	"strings"

	"github.com/sluice-dev/sluice/annotations"
)

// checkRunOutcome is RuleRunOutcome: a run's outcome is recorded on one
// task, after every task finished, and is Failed exactly when a task Failed
// or is UpstreamFailed (the controller's rule: a failure handled by an
// any-failed task still fails the run; a skipped branch does not). It is
// recorded once per end: only a run that runs again (a retry) has it
// withdrawn, and recorded anew when it ends again.
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
	var unfinished []*taskHistory
	want := "Succeeded"
	for _, th := range live {
		switch p := th.last().phase; {
		case !p.Finished():
			unfinished = append(unfinished, th)
		case p == annotations.PhaseFailed || p == annotations.PhaseUpstreamFailed:
			want = "Failed"
		}
	}
	var all, kept []mark
	for _, name := range v.names() {
		for _, th := range v.incarnations[name] {
			ms, msg := marksOf(th)
			if msg != "" {
				fail(msg, th)
			}
			all = append(all, ms...)
		}
	}
	for i, a := range all {
		for _, b := range all[i+1:] {
			if a.th != b.th && a.overlaps(b) {
				fail(fmt.Sprintf("run outcome recorded on %s (rv=%d) and on %s (rv=%d) at once, want one task", a.th.task.Name, a.set, b.th.task.Name, b.set), a.th, b.th)
			}
		}
		if early := v.unfinishedAt(a.set); len(early) > 0 {
			fail(fmt.Sprintf("run outcome recorded on %s at rv=%d while %s had not finished", a.th.task.Name, a.set, strings.Join(early, ", ")), live...)
		}
		if a.withdrawn && len(v.unfinishedAt(a.removed)) == 0 {
			fail(fmt.Sprintf("run outcome %s withdrawn from %s at rv=%d, but every task had finished: only a run that runs again loses it", a.value, a.th.task.Name, a.removed), live...)
		}
		if a.removed == 0 {
			kept = append(kept, a)
		}
	}
	switch {
	case len(kept) == 0 && len(unfinished) == 0:
		fail("every task finished, but no run outcome was recorded", live...)
	case len(kept) > 0 && len(unfinished) > 0:
		carriers := []*taskHistory{}
		for _, m := range kept {
			carriers = append(carriers, m.th)
		}
		fail(fmt.Sprintf("run outcome recorded, but %s not finished", names(unfinished)), append(carriers, unfinished...)...)
	}
	for _, m := range kept {
		if m.value != want && len(unfinished) == 0 {
			fail(fmt.Sprintf("run outcome %s on %s, want %s (%s)", m.value, m.th.task.Name, want, phaseCounts(live)), live...)
		}
	}
	return vs
}

// mark is one recording of a run's outcome on a task's object, from the
// version that set it until the one that removed it (0: it is still there).
type mark struct {
	th           *taskHistory
	value        string
	set, removed uint64
	// withdrawn: removed from the object, not with it.
	withdrawn bool
}

func (a mark) overlaps(b mark) bool {
	end := func(m mark) uint64 {
		if m.removed == 0 {
			return ^uint64(0)
		}
		return m.removed
	}
	return a.set < end(b) && b.set < end(a)
}

// marksOf returns the run outcomes a task's object carried, and says how
// one changed while set, if it did.
func marksOf(th *taskHistory) ([]mark, string) {
	var ms []mark
	var cur *mark
	msg := ""
	for _, o := range th.versions {
		switch {
		case cur == nil && o.outcome != nil && !o.deleted:
			ms = append(ms, mark{th: th, value: *o.outcome, set: o.rv})
			cur = &ms[len(ms)-1]
		case cur == nil:
		case o.deleted || o.outcome == nil:
			cur.removed, cur.withdrawn = o.rv, !o.deleted
			cur = nil
		case *o.outcome != cur.value && msg == "":
			msg = fmt.Sprintf("run outcome %s on %s at rv=%d became %s at rv=%d", cur.value, th.task.Name, cur.set, *o.outcome, o.rv)
		}
	}
	return ms, msg
}

// unfinishedAt lists the tasks (with their phase) that existed and had not
// recorded a final phase at rv.
func (v *runView) unfinishedAt(at uint64) []string {
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
