package framework

import (
	"fmt"
	"slices"
	"strings"

	"github.com/sluice-dev/sluice/annotations"
)

// runView is one run's histories, by task name, for the rules.
type runView struct {
	key string // namespace/run
	// incarnations holds each task's histories, oldest first.
	incarnations map[string][]*taskHistory
}

func newRunView(key string, ths []*taskHistory) *runView {
	v := &runView{key: key, incarnations: map[string][]*taskHistory{}}
	for _, th := range ths { // sorted by first resourceVersion
		v.incarnations[th.task.Name] = append(v.incarnations[th.task.Name], th)
	}
	return v
}

func (v *runView) names() []string {
	names := make([]string, 0, len(v.incarnations))
	for n := range v.incarnations {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// cycles returns, for each task on a dependency cycle, the cycle through it.
func (v *runView) cycles() map[string][]string {
	var tasks []*annotations.Task
	for _, name := range v.names() {
		tasks = append(tasks, v.current(name).task)
	}
	g, _ := annotations.NewGraph(tasks) // its errors are admission's business; cycles are the controller's
	_, cycles := g.Schedule()
	return cycles
}

// at returns the incarnation of the task that existed at rv, or nil.
func (v *runView) at(name string, rv uint64) *taskHistory {
	var found *taskHistory
	for _, th := range v.incarnations[name] {
		if th.first().rv < rv {
			found = th
		}
	}
	return found
}

// current returns the task's latest incarnation, or nil.
func (v *runView) current(name string) *taskHistory {
	ths := v.incarnations[name]
	if len(ths) == 0 {
		return nil
	}
	return ths[len(ths)-1]
}

// members returns the names of the group's tasks created before rv (every
// one seen, with rv 0), sorted.
func (v *runView) members(group string, rv uint64) []string {
	var names []string
	for _, name := range v.names() {
		th := v.incarnations[name][0]
		if th.task.Group == group && (rv == 0 || th.first().rv < rv) {
			names = append(names, name)
		}
	}
	return names
}

// checkReleasedEarly is RuleReleasedEarly: a held task is released only
// after its upstreams were seen in phases its trigger accepts.
func (v *runView) checkReleasedEarly(th *taskHistory) *Violation {
	t := th.task
	rel := th.releasedAt()
	if !t.Held() || rel == 0 {
		return nil
	}
	before := func(at uint64) bool { return at != 0 && at < rel }
	var ups, problems, observed []string
	ups = append(ups, t.Upstreams()...)
	for _, w := range t.AfterGroups {
		members := v.members(w.Group, rel)
		ups = append(ups, members...)
		if len(members) < w.Size && t.Trigger != annotations.TriggerAnyFailed {
			problems = append(problems, fmt.Sprintf("group %s had %d of its %d tasks", w.Group, len(members), w.Size))
		}
	}
	slices.Sort(ups)
	ups = slices.Compact(ups)
	anyFailed := false
	for _, name := range ups {
		up := v.at(name, rel)
		if up == nil {
			if t.Trigger != annotations.TriggerAnyFailed {
				problems = append(problems, "upstream "+name+" did not exist")
			}
			continue
		}
		o := up.outcomes()
		switch t.Trigger {
		case annotations.TriggerAnyFailed:
			anyFailed = anyFailed || before(o.failed)
			continue
		case annotations.TriggerNoneFailed:
			if before(o.done) && !before(o.failed) {
				continue
			}
			problems = append(problems, "upstream "+name+" had not been seen finished without a failure")
		case annotations.TriggerAllDone:
			if before(o.done) {
				continue
			}
			problems = append(problems, "upstream "+name+" had not been seen finished")
		default:
			if before(o.succeeded) {
				continue
			}
			problems = append(problems, "upstream "+name+" had not been seen Succeeded")
		}
		observed = append(observed, up.sequence()...)
	}
	if t.Trigger == annotations.TriggerAnyFailed && !anyFailed {
		problems = append(problems, "no upstream ("+strings.Join(ups, ", ")+") had been seen Failed or UpstreamFailed")
		for _, name := range ups {
			if up := v.at(name, rel); up != nil {
				observed = append(observed, up.sequence()...)
			}
		}
	}
	if len(problems) == 0 {
		return nil
	}
	return &Violation{Rule: RuleReleasedEarly, Task: t.Name,
		Message:  fmt.Sprintf("released at rv=%d (trigger %s) while %s", rel, t.Trigger, strings.Join(problems, "; ")),
		Observed: append(th.sequence(), observed...)}
}

// checkReleasedTwice is RuleReleasedTwice: once released, a task is not
// released again after being held again (by anyone).
func checkReleasedTwice(th *taskHistory) *Violation {
	var released, heldAgain uint64
	for _, o := range th.versions {
		switch {
		case o.deleted:
		case !o.held && heldAgain != 0:
			return &Violation{Rule: RuleReleasedTwice, Task: th.task.Name,
				Message:  fmt.Sprintf("released at rv=%d, held again at rv=%d, released again at rv=%d", released, heldAgain, o.rv),
				Observed: th.sequence()}
		case !o.held && released == 0:
			released = o.rv
		case o.held && released != 0 && heldAgain == 0:
			heldAgain = o.rv
		}
	}
	return nil
}

// checkCompletions is RuleExtraSuccess: a Job has no more succeeded pods
// than completions; more means it ran twice.
func checkCompletions(th *taskHistory) *Violation {
	if th.kind != "Job" {
		return nil
	}
	var succeeded []string
	for _, pod := range th.pods {
		if slices.ContainsFunc(pod, func(p podObservation) bool { return p.phase == "Succeeded" }) {
			succeeded = append(succeeded, pod[0].name)
		}
	}
	if want := th.last().completions; len(succeeded) > want {
		slices.Sort(succeeded)
		return &Violation{Rule: RuleExtraSuccess, Task: th.task.Name,
			Message:  fmt.Sprintf("%d pods succeeded (%s), but the Job has %d completion(s)", len(succeeded), strings.Join(succeeded, ", "), want),
			Observed: th.sequence()}
	}
	return nil
}

// checkPhaseForward is RulePhaseBackwards: a finished phase is final, a
// running task does not wait again, and a recorded phase is not removed.
// One exception is a retry's: a task decided without running (it is still
// held) is taken back while a task it waits for runs again.
func (v *runView) checkPhaseForward(th *taskHistory) *Violation {
	var prev observation
	for i, o := range th.versions {
		if i > 0 && o.phase != prev.phase {
			backwards := prev.phase.Finished() ||
				(prev.phase == annotations.PhaseRunning && o.phase == annotations.PhaseWaiting) ||
				(prev.phase != "" && o.phase == "")
			if backwards && v.takenBack(th, prev, o) {
				backwards = false
			}
			if backwards {
				return &Violation{Rule: RulePhaseBackwards, Task: th.task.Name,
					Message:  fmt.Sprintf("phase %q at rv=%d became %q at rv=%d", prev.phase, prev.rv, o.phase, o.rv),
					Observed: th.sequence()}
			}
		}
		prev = o
	}
	return nil
}

// takenBack reports whether a change from prev to o is the controller
// taking back a decision made without running: the task was held and
// waits (or was released) again, while one of its upstreams ran again.
func (v *runView) takenBack(th *taskHistory, prev, o observation) bool {
	decided := prev.phase == annotations.PhaseSkipped || prev.phase == annotations.PhaseUpstreamFailed || prev.phase == annotations.PhaseFailed
	if !decided || !prev.held || (o.phase != annotations.PhaseWaiting && o.phase != annotations.PhaseRunning) {
		return false
	}
	ups := th.task.Upstreams()
	for _, w := range th.task.AfterGroups {
		ups = append(ups, v.members(w.Group, o.rv)...)
	}
	for _, name := range ups {
		up := v.at(name, o.rv)
		if up == nil {
			continue
		}
		if p, ok := up.phaseAt(o.rv); ok && !p.Finished() {
			return true
		}
	}
	return false
}

// upstreamState is what a task's decision reads of one upstream at the end.
type upstreamState struct {
	exists bool // created, and not deleted before it finished
	lost   bool // deleted before it finished: counts as failed
	phase  annotations.Phase
	result string
}

func (v *runView) finalState(name string) upstreamState {
	th := v.current(name)
	switch {
	case th == nil:
		return upstreamState{}
	case th.gone() && !th.finalPhase().Finished():
		return upstreamState{lost: true}
	}
	return upstreamState{exists: true, phase: th.finalPhase(), result: th.last().results}
}

// expectation is the phase a task must end in, and whether it must have
// been released to get there.
type expectation struct {
	phase   annotations.Phase
	release bool
	why     string
}

// ran is the expectation of a task that was let start: the outcome its
// objects show, or Running while they show none.
func ran(th *taskHistory, why string) expectation {
	if p := th.statusOutcome(); p != "" {
		return expectation{phase: p, release: true, why: why + ", and it ran to " + string(p)}
	}
	return expectation{phase: annotations.PhaseRunning, release: true, why: why + ", and it has no outcome yet"}
}

// expect restates the controller's decision rule (controller/decide.go is
// unexported; README.md documents it) over the upstreams' final states.
func (v *runView) expect(th *taskHistory, cycle []string) expectation {
	t := th.task
	switch {
	case cycle != nil:
		return expectation{phase: annotations.PhaseFailed, why: "it is on the dependency cycle " + strings.Join(cycle, " -> ")}
	case !t.Held():
		return ran(th, "it has no upstreams and no condition")
	}
	var missing, pending, succeeded, failed, skipped, incomplete []string
	ups := map[string]upstreamState{}
	classify := func(name string) {
		s := v.finalState(name)
		ups[name] = s
		switch {
		case s.lost:
			failed = append(failed, name+" (deleted before it finished)")
		case !s.exists:
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
	for _, name := range t.Upstreams() {
		classify(name)
	}
	for _, w := range t.AfterGroups {
		members := v.members(w.Group, 0)
		for _, name := range members {
			classify(name)
		}
		if len(members) < w.Size {
			incomplete = append(incomplete, fmt.Sprintf("group %s has %d of %d tasks", w.Group, len(members), w.Size))
		}
	}
	waiting := expectation{phase: annotations.PhaseWaiting, why: "upstreams are not all done (" +
		strings.Join(slices.Concat(missing, pending, incomplete), ", ") + ")"}
	allDone := len(missing) == 0 && len(pending) == 0 && len(incomplete) == 0
	switch t.Trigger {
	case annotations.TriggerAllDone:
		if !allDone {
			return waiting
		}
		return v.releaseOrSkip(th, ups, "trigger all-done and every upstream is done")
	case annotations.TriggerAnyFailed:
		if len(failed) > 0 {
			return v.releaseOrSkip(th, ups, "trigger any-failed and "+strings.Join(failed, ", ")+" failed")
		}
		if !allDone {
			return waiting
		}
		return expectation{phase: annotations.PhaseSkipped, why: "trigger any-failed and no upstream failed"}
	default: // all-succeeded, and none-failed: the same with Skipped upstreams as done
		noneFailed := t.Trigger == annotations.TriggerNoneFailed
		switch {
		case len(failed) > 0:
			return expectation{phase: annotations.PhaseUpstreamFailed, why: "upstream " + strings.Join(failed, ", ") + " failed"}
		case len(skipped) > 0 && !noneFailed:
			return expectation{phase: annotations.PhaseSkipped, why: "upstream " + strings.Join(skipped, ", ") + " was skipped"}
		case !allDone:
			return waiting
		case noneFailed:
			return v.releaseOrSkip(th, ups, "trigger none-failed and every upstream is done without a failure")
		}
		return v.releaseOrSkip(th, ups, "every upstream succeeded")
	}
}

// releaseOrSkip applies the task's `when` condition, if any, to upstreams
// that satisfy its trigger.
func (v *runView) releaseOrSkip(th *taskHistory, ups map[string]upstreamState, why string) expectation {
	t := th.task
	if t.When == "" {
		return ran(th, why)
	}
	w, err := annotations.CompileWhen(t.When, t.Upstreams())
	if err != nil {
		return expectation{phase: annotations.PhaseFailed, why: why + ", but its condition does not compile: " + err.Error()}
	}
	in := map[string]annotations.TaskResult{}
	for _, name := range t.Upstreams() {
		if s := ups[name]; s.exists {
			results, _ := annotations.UnmarshalResults(s.result)
			in[name] = annotations.TaskResult{Phase: string(s.phase), Results: results}
		}
	}
	switch ok, err := w.Eval(in); {
	case err != nil:
		return expectation{phase: annotations.PhaseFailed, why: why + ", but its condition cannot be evaluated: " + err.Error()}
	case !ok:
		return expectation{phase: annotations.PhaseSkipped, why: why + ", and its condition is false"}
	}
	return ran(th, why+", and its condition is true")
}

// checkFinalPhase is RuleFinalPhase: the task ends in the phase its graph
// and its upstreams' outcomes imply, and runs only if that says it runs.
func (v *runView) checkFinalPhase(th *taskHistory, cycle []string) *Violation {
	want := v.expect(th, cycle)
	got := th.last().phase
	var problems []string
	if got != want.phase {
		problems = append(problems, fmt.Sprintf("ends %s, want %s: %s", orNone(got), want.phase, want.why))
	}
	if rel := th.releasedAt(); rel != 0 && !want.release {
		problems = append(problems, fmt.Sprintf("was released at rv=%d, but must never run: %s", rel, want.why))
	}
	if len(problems) == 0 {
		return nil
	}
	observed := th.sequence()
	for _, name := range th.task.Upstreams() {
		if up := v.current(name); up != nil {
			observed = append(observed, up.sequence()...)
		}
	}
	return &Violation{Rule: RuleFinalPhase, Task: th.task.Name, Message: strings.Join(problems, "; "), Observed: observed}
}

func orNone(p annotations.Phase) string {
	if p == "" {
		return "with no phase"
	}
	return string(p)
}
