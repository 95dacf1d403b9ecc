package controller

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/sluice-dev/sluice/annotations"
)

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
		ups     map[string]*taskState // upstreams a and b are declared; absent => not created
		want    decision
	}{
		"all succeeded releases": {
			ups:  map[string]*taskState{"a": st(S), "b": st(S)},
			want: decision{phase: R, release: true, reason: "released: upstreams succeeded (a, b)"},
		},
		"one running waits": {
			ups:  map[string]*taskState{"a": st(S), "b": st(R)},
			want: decision{phase: W, reason: "waiting for b"},
		},
		"not yet created waits": {
			ups:  map[string]*taskState{"a": st(W)},
			want: decision{phase: W, reason: "waiting for a; waiting for b to be created"},
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
			want:    decision{phase: W, reason: "waiting for b"},
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
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			trigger := tc.trigger
			if trigger == "" {
				trigger = annotations.TriggerAllSucceeded
			}
			task := &annotations.Task{Name: "d", After: []string{"a", "b"}, Trigger: trigger}
			got := decide(task, tc.ups)
			if diff := cmp.Diff(tc.want, got, cmp.AllowUnexported(decision{})); diff != "" {
				t.Errorf("decide() (-want,+got):\n%s", diff)
			}
		})
	}
}
