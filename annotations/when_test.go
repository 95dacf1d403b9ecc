package annotations

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestCompileWhen(t *testing.T) {
	cases := map[string]struct {
		expr      string
		upstreams []string
		wantErr   string // substring; empty means it compiles
	}{
		"result comparison": {
			expr:      "tasks.evaluate.results.accuracy >= 0.9",
			upstreams: []string{"evaluate"},
		},
		"phase comparison": {
			expr:      "tasks.train.phase == 'Succeeded'",
			upstreams: []string{"train"},
		},
		"index form for names that are not identifiers": {
			expr:      `tasks["pre-process"].phase == "Succeeded" && has(tasks.evaluate.results.accuracy)`,
			upstreams: []string{"pre-process", "evaluate"},
		},
		"macros over all upstreams": {
			expr:      `tasks.all(n, tasks[n].phase == 'Succeeded') && tasks.exists(n, n == 'train')`,
			upstreams: []string{"train"},
		},
		"a result of unknown type is accepted and checked at evaluation": {
			expr:      "tasks.check.results.passed",
			upstreams: []string{"check"},
		},
		"a comprehension variable named tasks shadows the upstreams": {
			expr:      "[{'deploy': 1}].all(tasks, tasks.deploy == 1)",
			upstreams: nil,
		},
		"a task that is not an upstream": {
			expr:      "tasks.evaluate.results.accuracy >= 0.9 && tasks.deploy.phase == 'Succeeded'",
			upstreams: []string{"train", "evaluate"},
			wantErr:   `sluice.dev/when: the condition refers to task "deploy", which is not an upstream of this task (its upstreams are evaluate, train); a condition can only read tasks listed in sluice.dev/after or sluice.dev/inputs`,
		},
		"a task that is not an upstream, index form": {
			expr:      `tasks["deploy"].phase == 'Succeeded'`,
			upstreams: []string{"train"},
			wantErr:   `task "deploy", which is not an upstream of this task (its upstreams are train)`,
		},
		"a task that is not an upstream, in has()": {
			expr:      `has(tasks.deploy)`,
			upstreams: []string{"train"},
			wantErr:   `task "deploy", which is not an upstream`,
		},
		"several tasks that are not upstreams": {
			expr:      `tasks.a.phase == tasks.b.phase`,
			wantErr:   `tasks "a", "b", which are not upstreams of this task (this task has no upstreams)`,
			upstreams: nil,
		},
		"misspelt field": {
			expr:      "tasks.train.phse == 'Succeeded'",
			upstreams: []string{"train"},
			wantErr:   "sluice.dev/when: 1:12: undefined field 'phse'",
		},
		"not a bool": {
			expr:      "tasks.train.phase",
			upstreams: []string{"train"},
			wantErr:   "sluice.dev/when: the condition has type string; expected a bool, e.g. tasks.evaluate.results.accuracy >= 0.9",
		},
		"not a bool: a number": {
			expr:    "1 + 2",
			wantErr: "the condition has type int; expected a bool",
		},
		"syntax error": {
			expr:      "tasks.train.phase == ",
			upstreams: []string{"train"},
			wantErr:   "sluice.dev/when: 1:22: Syntax error: mismatched input '<EOF>' expecting",
		},
		"unknown variable": {
			expr:    "accuracy > 0.9",
			wantErr: "sluice.dev/when: 1:1: undeclared reference to 'accuracy'",
		},
		"multi-line condition reports lines": {
			expr:      "tasks.train.phase == 'Succeeded' &&\n  tasks.train.results.x >",
			upstreams: []string{"train"},
			wantErr:   "sluice.dev/when: 2:26: Syntax error:",
		},
		"empty": {
			expr:    "  ",
			wantErr: "sluice.dev/when: the condition is empty; expected a CEL expression",
		},
		"too long": {
			expr:    strings.Repeat("true && ", 600) + "true",
			wantErr: "sluice.dev/when: the condition is 4804 characters; at most 4096 are allowed",
		},
		"nested too deeply": {
			expr:    strings.Repeat("[", 40) + strings.Repeat("]", 40) + " == []",
			wantErr: "sluice.dev/when: expression recursion limit exceeded: 32",
		},
		"type mismatch": {
			expr:      "tasks.train.phase > 3",
			upstreams: []string{"train"},
			wantErr:   "sluice.dev/when: 1:19: found no matching overload for '_>_' applied to '(string, int)'",
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			w, err := CompileWhen(tc.expr, tc.upstreams)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("CompileWhen(%q) error = %v, want it to contain %q", tc.expr, err, tc.wantErr)
				}
				if strings.Contains(err.Error(), "\n") {
					t.Errorf("CompileWhen(%q) error spans lines: %q", tc.expr, err)
				}
				if !strings.HasPrefix(err.Error(), "sluice.dev/when: ") {
					t.Errorf("CompileWhen(%q) error does not start with the key: %q", tc.expr, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("CompileWhen(%q) unexpected error: %v", tc.expr, err)
			}
			if w.String() != tc.expr {
				t.Errorf("String() = %q, want %q", w.String(), tc.expr)
			}
		})
	}
}

func TestWhenEval(t *testing.T) {
	succeeded := func(results map[string]any) TaskResult {
		return TaskResult{Phase: string(PhaseSucceeded), Results: results}
	}
	cases := map[string]struct {
		expr      string
		upstreams map[string]TaskResult
		want      bool
		wantErr   string
	}{
		"accuracy above the bar": {
			expr:      "tasks.evaluate.results.accuracy >= 0.9",
			upstreams: map[string]TaskResult{"evaluate": succeeded(map[string]any{"accuracy": 0.95})},
			want:      true,
		},
		"accuracy below the bar": {
			expr:      "tasks.evaluate.results.accuracy >= 0.9",
			upstreams: map[string]TaskResult{"evaluate": succeeded(map[string]any{"accuracy": 0.80})},
			want:      false,
		},
		"double result against an int literal": {
			expr:      "tasks.evaluate.results.epochs >= 1 && tasks.evaluate.results.epochs == 10 && tasks.evaluate.results.epochs < 11",
			upstreams: map[string]TaskResult{"evaluate": succeeded(map[string]any{"epochs": 10.0})},
			want:      true,
		},
		"Go int results are numbers too": {
			expr:      "tasks.evaluate.results.epochs + 0.5 == 10.5 && tasks.evaluate.results.accuracy >= 0.9",
			upstreams: map[string]TaskResult{"evaluate": succeeded(map[string]any{"epochs": 10, "accuracy": int64(1)})},
			want:      true,
		},
		"results as ParseResults gives them": {
			expr:      "tasks.evaluate.results.accuracy > 0.9 && tasks.evaluate.results.converged && tasks.evaluate.results.model.startsWith('gs://')",
			upstreams: map[string]TaskResult{"evaluate": succeeded(mustParseResults(t, "accuracy=0.95\nconverged=true\nmodel=gs://b/m"))},
			want:      true,
		},
		"nested JSON results": {
			expr:      "tasks.evaluate.results.metrics.f1 > 0.5 && tasks.evaluate.results.tags[0] == 'best'",
			upstreams: map[string]TaskResult{"evaluate": succeeded(mustParseResults(t, `{"metrics": {"f1": 0.7}, "tags": ["best"]}`))},
			want:      true,
		},
		"phase": {
			expr:      "tasks.train.phase == 'Succeeded'",
			upstreams: map[string]TaskResult{"train": succeeded(nil)},
			want:      true,
		},
		"phase of a failed upstream": {
			expr:      "tasks.train.phase == 'Succeeded'",
			upstreams: map[string]TaskResult{"train": {Phase: string(PhaseFailed)}},
			want:      false,
		},
		"has() tests a missing result without an error": {
			expr:      "has(tasks.evaluate.results.accuracy) && tasks.evaluate.results.accuracy > 0.9",
			upstreams: map[string]TaskResult{"evaluate": succeeded(nil)},
			want:      false,
		},
		"a bool result is the condition": {
			expr:      "tasks.check.results.passed",
			upstreams: map[string]TaskResult{"check": succeeded(map[string]any{"passed": true})},
			want:      true,
		},
		"missing result key": {
			expr:      "tasks.evaluate.results.accuracy >= 0.9",
			upstreams: map[string]TaskResult{"evaluate": succeeded(map[string]any{"loss": 0.1})},
			wantErr:   "sluice.dev/when: no such key: accuracy",
		},
		"result of the wrong type": {
			expr:      "tasks.evaluate.results.accuracy >= 0.9",
			upstreams: map[string]TaskResult{"evaluate": succeeded(map[string]any{"accuracy": "high"})},
			wantErr:   "sluice.dev/when: no such overload",
		},
		"int arithmetic on a result gets a hint": {
			expr:      "tasks.evaluate.results.epochs + 1 > 2",
			upstreams: map[string]TaskResult{"evaluate": succeeded(map[string]any{"epochs": 10.0})},
			wantErr:   "sluice.dev/when: no such overload (an operator or function got operand types it does not take; numbers in results are doubles, so write 1.0, not 1",
		},
		"missing upstream": {
			expr:      "tasks.train.phase == 'Succeeded'",
			upstreams: map[string]TaskResult{},
			wantErr:   "sluice.dev/when: no such key: train",
		},
		"a result that is not a bool": {
			expr:      "tasks.check.results.passed",
			upstreams: map[string]TaskResult{"check": succeeded(map[string]any{"passed": "yes"})},
			wantErr:   `sluice.dev/when: the condition gave string yes, expected a bool`,
		},
		"runaway comprehension hits the cost limit": {
			expr:      "[1,2,3,4,5,6,7,8,9,10].all(a, [1,2,3,4,5,6,7,8,9,10].all(b, [1,2,3,4,5,6,7,8,9,10].all(c, [1,2,3,4,5,6,7,8,9,10].all(d, [1,2,3,4,5,6,7,8,9,10].all(e, [1,2,3,4,5,6,7,8,9,10].all(f, a+b+c+d+e+f > 0))))))",
			upstreams: map[string]TaskResult{},
			wantErr:   "sluice.dev/when: operation cancelled: actual cost limit exceeded",
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			names := make([]string, 0, len(tc.upstreams))
			for n := range tc.upstreams {
				names = append(names, n)
			}
			if tc.wantErr == "sluice.dev/when: no such key: train" {
				names = append(names, "train")
			}
			w, err := CompileWhen(tc.expr, names)
			if err != nil {
				t.Fatalf("CompileWhen(%q): %v", tc.expr, err)
			}
			got, err := w.Eval(tc.upstreams)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Eval() = %v, %v; want an error containing %q", got, err, tc.wantErr)
				}
				if strings.Contains(err.Error(), "\n") {
					t.Errorf("Eval() error spans lines: %q", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Eval() unexpected error: %v", err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("Eval() (-want,+got):\n%s", diff)
			}
		})
	}
}

func TestWhenEvalContextInterrupted(t *testing.T) {
	const ten = "[0,1,2,3,4,5,6,7,8,9]"
	w, err := CompileWhen(ten+".all(a, "+ten+".all(b, "+ten+".all(c, a + b + c >= 0)))", nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Nanosecond)
	defer cancel()
	<-ctx.Done()
	if _, err := w.EvalContext(ctx, nil); err == nil || !strings.Contains(err.Error(), "operation interrupted") {
		t.Errorf("EvalContext() with a finished context = %v, want it interrupted", err)
	}
}

func TestWhenEvalNotCompiled(t *testing.T) {
	var w *When
	if _, err := w.Eval(nil); err == nil {
		t.Error("Eval() on a nil *When gave no error")
	}
}

func FuzzCompileWhen(f *testing.F) {
	for _, seed := range []string{
		"tasks.evaluate.results.accuracy >= 0.9",
		"tasks.train.phase == 'Succeeded'",
		`tasks["evaluate"].results.accuracy > 1 || has(tasks.train.results.x)`,
		"tasks.deploy.phase == 'Succeeded'",
		"tasks.all(n, tasks[n].phase == 'Succeeded')",
		"tasks.evaluate.results.accuracy",
		"[1,2,3].map(x, x * 2).exists(y, y > 4)",
		"'abc'.matches('^a.*') && size(tasks) == 2",
		"tasks.train.phase ==",
		"1 / 0 == 1",
		"tasks.evaluate.results.accuracy + 1 > 2.0",
		"string(tasks.evaluate.results.accuracy) == '0.5'",
		"int(tasks.evaluate.results.accuracy * 1e300 * 1e300) > 0",
		"duration('1h') > duration('1m') && timestamp('2020-01-01T00:00:00Z') < now",
	} {
		f.Add(seed)
	}
	upstreams := map[string]TaskResult{
		"evaluate": {Phase: string(PhaseSucceeded), Results: map[string]any{"accuracy": 0.5}},
		"train":    {Phase: string(PhaseSucceeded), Results: map[string]any{"accuracy": 0.5}},
	}
	f.Fuzz(func(t *testing.T, expr string) {
		w, err := CompileWhen(expr, []string{"evaluate", "train"})
		if err != nil {
			msg := err.Error()
			if strings.Contains(msg, "internal error") {
				t.Fatalf("CompileWhen(%q): %v", expr, err)
			}
			if !strings.HasPrefix(msg, "sluice.dev/when: ") || strings.Contains(msg, "\n") {
				t.Fatalf("CompileWhen(%q) error is not one sluice.dev/when line: %q", expr, msg)
			}
			return
		}
		if _, err := w.Eval(upstreams); err != nil && strings.Contains(err.Error(), "internal error") {
			t.Fatalf("Eval(%q): %v", expr, err)
		}
	})
}

func mustParseResults(t *testing.T, msg string) map[string]any {
	t.Helper()
	res, err := ParseResults(msg)
	if err != nil {
		t.Fatalf("ParseResults(%q): %v", msg, err)
	}
	return res
}
