package controller

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/sluice-dev/sluice/annotations"
)

func withResults(s *taskState, accuracy float64) *taskState {
	s.results = map[string]any{"accuracy": accuracy}
	return s
}

func TestDecide(t *testing.T) {
	st := func(p annotations.Phase) *taskState { return &taskState{phase: p} }
	const (
		W  = annotations.PhaseWaiting
		R  = annotations.PhaseRunning
		S  = annotations.PhaseSucceeded
		F  = annotations.PhaseFailed
		K  = annotations.PhaseSkipped
		UF = annotations.PhaseUpstreamFailed
	)
	cases := map[string]struct {
		trigger string
		when    string
		deleted string                // an upstream deleted before it finished
		ups     map[string]*taskState // upstreams a and b are declared; absent => not created
		group   *groupWait            // a group the task waits for too; its members' states are in ups
		want    decision
	}{
		"all succeeded releases": {
			ups:  map[string]*taskState{"a": st(S), "b": st(S)},
			want: decision{phase: R, release: true, reason: "released: upstreams succeeded (a, b)"},
		},
		"one running waits": {
			ups:  map[string]*taskState{"a": st(S), "b": st(R)},
			want: decision{phase: W},
		},
		"not yet created waits": {
			ups:  map[string]*taskState{"a": st(W)},
			want: decision{phase: W, reason: "waiting for b to be created"},
		},
		"an upstream deleted before it finished counts as failed": {
			deleted: "b",
			ups:     map[string]*taskState{"a": st(S)},
			want:    decision{phase: UF, reason: "upstream b (deleted before it finished) failed"},
		},
		"failed upstream fails downstream at once": {
			ups:  map[string]*taskState{"a": st(F), "b": st(R)},
			want: decision{phase: UF, reason: "upstream a failed"},
		},
		"upstream-failed propagates": {
			ups:  map[string]*taskState{"a": st(S), "b": st(UF)},
			want: decision{phase: UF, reason: "upstream b failed"},
		},
		"skipped upstream skips": {
			ups:  map[string]*taskState{"a": st(S), "b": st(K)},
			want: decision{phase: K, reason: "upstream b skipped"},
		},
		"all-done waits for every upstream": {
			trigger: annotations.TriggerAllDone,
			ups:     map[string]*taskState{"a": st(F), "b": st(R)},
			want:    decision{phase: W},
		},
		"all-done runs after a failure": {
			trigger: annotations.TriggerAllDone,
			ups:     map[string]*taskState{"a": st(F), "b": st(K)},
			want:    decision{phase: R, release: true, reason: "released: upstreams done (a, b)"},
		},
		"any-failed runs on the first failure": {
			trigger: annotations.TriggerAnyFailed,
			ups:     map[string]*taskState{"a": st(R), "b": st(F)},
			want:    decision{phase: R, release: true, reason: "released: upstream b failed"},
		},
		"any-failed skips when all succeeded": {
			trigger: annotations.TriggerAnyFailed,
			ups:     map[string]*taskState{"a": st(S), "b": st(S)},
			want:    decision{phase: K, reason: "no upstream failed (trigger any-failed)"},
		},
		"none-failed waits past a skipped upstream": {
			trigger: annotations.TriggerNoneFailed,
			ups:     map[string]*taskState{"a": st(K), "b": st(R)},
			want:    decision{phase: W},
		},
		"none-failed runs after a skipped and a succeeded upstream": {
			trigger: annotations.TriggerNoneFailed,
			ups:     map[string]*taskState{"a": st(K), "b": st(S)},
			want:    decision{phase: R, release: true, reason: "released: upstreams done, none failed (a, b)"},
		},
		"none-failed fails on the first failure": {
			trigger: annotations.TriggerNoneFailed,
			ups:     map[string]*taskState{"a": st(R), "b": st(F)},
			want:    decision{phase: UF, reason: "upstream b failed"},
		},
		"a group not complete yet waits": {
			group: &groupWait{GroupWait: annotations.GroupWait{Group: "g", Size: 3}, members: []string{"m1", "m2"}},
			ups:   map[string]*taskState{"a": st(S), "b": st(S), "m1": st(S), "m2": st(S)},
			want:  decision{phase: W, reason: "waiting for group g to have its 3 tasks"},
		},
		"an upstream and a group both missing": {
			group: &groupWait{GroupWait: annotations.GroupWait{Group: "g", Size: 3}, members: []string{"m1"}},
			ups:   map[string]*taskState{"a": st(S), "m1": st(R)},
			want:  decision{phase: W, reason: "waiting for b to be created and for group g to have its 3 tasks"},
		},
		"a complete group that succeeded releases": {
			group: &groupWait{GroupWait: annotations.GroupWait{Group: "g", Size: 3}, members: []string{"m1", "m2", "m3"}},
			ups:   map[string]*taskState{"a": st(S), "b": st(S), "m1": st(S), "m2": st(S), "m3": st(S)},
			want:  decision{phase: R, release: true, reason: "released: upstreams succeeded (a, b, m1, m2, m3)"},
		},
		"a failed member fails the task before the group is complete": {
			group: &groupWait{GroupWait: annotations.GroupWait{Group: "g", Size: 3}, members: []string{"m1"}},
			ups:   map[string]*taskState{"a": st(S), "b": st(R), "m1": st(F)},
			want:  decision{phase: UF, reason: "upstream m1 failed"},
		},
		"a member deleted before it finished counts as failed": {
			deleted: "m3",
			group:   &groupWait{GroupWait: annotations.GroupWait{Group: "g", Size: 3}, members: []string{"m1", "m2"}, lost: []string{"m3"}},
			ups:     map[string]*taskState{"a": st(S), "b": st(S), "m1": st(S), "m2": st(S)},
			want:    decision{phase: UF, reason: "upstream m3 (deleted before it finished) failed"},
		},
		"all-done over a group with failures": {
			trigger: annotations.TriggerAllDone,
			group:   &groupWait{GroupWait: annotations.GroupWait{Group: "g", Size: 2}, members: []string{"m1", "m2"}},
			ups:     map[string]*taskState{"a": st(S), "b": st(S), "m1": st(F), "m2": st(S)},
			want:    decision{phase: R, release: true, reason: "released: upstreams done (a, b, m1, m2)"},
		},
		"when true releases": {
			when: "tasks.a.results.accuracy >= 0.9 && tasks.b.phase == 'Succeeded'",
			ups:  map[string]*taskState{"a": withResults(st(S), 0.95), "b": st(S)},
			want: decision{phase: R, release: true, reason: `released: upstreams succeeded (a, b); when "tasks.a.results.accuracy >= 0.9 && tasks.b.phase == 'Succeeded'" is true`},
		},
		"when false skips": {
			when: "tasks.a.results.accuracy >= 0.9",
			ups:  map[string]*taskState{"a": withResults(st(S), 0.8), "b": st(S)},
			want: decision{phase: K, reason: `sluice.dev/when "tasks.a.results.accuracy >= 0.9" is false`},
		},
		"when is not evaluated while upstreams run": {
			when: "tasks.a.results.accuracy >= 0.9",
			ups:  map[string]*taskState{"a": st(S), "b": st(R)},
			want: decision{phase: W},
		},
		"when over a failed upstream with all-done": {
			trigger: annotations.TriggerAllDone,
			when:    "tasks.a.phase == 'Failed'",
			ups:     map[string]*taskState{"a": st(F), "b": st(S)},
			want:    decision{phase: R, release: true, reason: `released: upstreams done (a, b); when "tasks.a.phase == 'Failed'" is true`},
		},
		"when that cannot be evaluated fails": {
			when: "tasks.a.results.accuracy >= 0.9",
			ups:  map[string]*taskState{"a": st(S), "b": st(S)},
			want: decision{phase: F},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			trigger := tc.trigger
			if trigger == "" {
				trigger = annotations.TriggerAllSucceeded
			}
			task := &annotations.Task{Name: "d", After: []string{"a", "b"}, Trigger: trigger, When: tc.when}
			var when *annotations.When
			var whenErr error
			if tc.when != "" {
				when, whenErr = annotations.CompileWhen(tc.when, task.Upstreams())
			}
			var groups []groupWait
			if tc.group != nil {
				task.AfterGroups = []annotations.GroupWait{tc.group.GroupWait}
				groups = []groupWait{*tc.group}
			}
			got := decide(task, tc.ups, groups, func(up string) bool { return tc.deleted == up }, when, whenErr)
			if tc.want.reason == "" && got.phase == F {
				const prefix = `sluice.dev/when "tasks.a.results.accuracy >= 0.9" could not be evaluated: `
				if !strings.HasPrefix(got.reason, prefix) {
					t.Errorf("reason = %q, want it to start with %q", got.reason, prefix)
				}
				got.reason = "" // the rest is CEL's own message
			}
			if diff := cmp.Diff(tc.want, got, cmp.AllowUnexported(decision{})); diff != "" {
				t.Errorf("decide() (-want,+got):\n%s", diff)
			}
		})
	}
}

// TestWakesNoneFailed: a skipped upstream that is not the last to finish
// decides nothing for a none-failed task; a failed one decides it at once.
func TestWakesNoneFailed(t *testing.T) {
	n := &node{task: &annotations.Task{Trigger: annotations.TriggerNoneFailed}, pendingUps: 2}
	for phase, want := range map[annotations.Phase]bool{
		annotations.PhaseSkipped:        false,
		annotations.PhaseSucceeded:      false,
		annotations.PhaseRunning:        false,
		annotations.PhaseFailed:         true,
		annotations.PhaseUpstreamFailed: true,
	} {
		if got := wakes(n, &taskState{phase: phase}); got != want {
			t.Errorf("wakes(none-failed, upstream %s) = %v, want %v", phase, got, want)
		}
	}
	n.pendingUps = 0
	if !wakes(n, &taskState{phase: annotations.PhaseSkipped}) {
		t.Error("the last upstream to finish, skipped, does not wake a none-failed task")
	}
}
