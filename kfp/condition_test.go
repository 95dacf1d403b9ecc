package kfp

import (
	"strings"
	"testing"

	"github.com/sluice-dev/sluice/annotations"
	"github.com/sluice-dev/sluice/kfp/task"
)

// TestRewriteCondition: a KFP condition over the task's inputs becomes a
// sluice.dev/when over the upstreams' results that sluice's admission
// compiles: inputs known at import as literals, upstream outputs as
// results, text inside string literals left alone.
func TestRewriteCondition(t *testing.T) {
	flip := &step{name: "flip-coin"}
	params := map[string]*param{
		"pipelinechannel--flip-coin-Output": {typ: task.TypeString, refs: []outRef{{step: flip, key: "Output", typ: task.TypeString}}},
		"pipelinechannel--threshold":        {typ: task.TypeInteger, static: true, value: int64(2)},
		"pipelinechannel--pick":             {typ: task.TypeBoolean, static: true, value: true},
		"pipelinechannel--name":             {typ: task.TypeString, static: true, value: `it's "x"`},
		"pipelinechannel--many":             {typ: task.TypeList, refs: []outRef{{step: flip, key: "a"}, {step: &step{name: "b"}, key: "a"}}},
	}
	for name, tc := range map[string]struct {
		expr, want, err string
	}{
		"upstream output": {
			expr: "inputs.parameter_values['pipelinechannel--flip-coin-Output'] == 'heads'",
			want: `tasks["flip-coin"].results["Output"] == 'heads'`,
		},
		"int of an integer parameter": {
			expr: "int(inputs.parameter_values['pipelinechannel--threshold']) == 2",
			want: "int(2) == 2",
		},
		"negated, spaced as the SDK writes it": {
			expr: "!(inputs.parameter_values['pipelinechannel--pick'] ==  true)",
			want: "!(true ==  true)",
		},
		"string parameter quoted": {
			expr: "inputs.parameter_values['pipelinechannel--name'] == 'y'",
			want: `"it's \"x\"" == 'y'`,
		},
		"the pattern inside a string literal": {
			expr: `inputs.parameter_values['pipelinechannel--flip-coin-Output'] != "inputs.parameter_values['pipelinechannel--pick']"`,
			want: `tasks["flip-coin"].results["Output"] != "inputs.parameter_values['pipelinechannel--pick']"`,
		},
		"an input without a value": {
			expr: "inputs.parameter_values['pipelinechannel--nope'] == 1",
			err:  "reads input pipelinechannel--nope, which has no value",
		},
		"a OneOf value": {
			expr: "inputs.parameter_values['pipelinechannel--many'] == []",
			err:  "dsl.OneOf or dsl.Collected",
		},
		"not CEL": {
			expr: "inputs.parameter_values['x'] ==",
			err:  "not CEL",
		},
	} {
		t.Run(name, func(t *testing.T) {
			c, err := rewriteCondition("condition-1", tc.expr, params)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) || !strings.Contains(err.Error(), "task condition-1") {
					t.Fatalf("error %v, want one naming the task and %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := (&step{conds: []*condition{c}}).when()
			if got != tc.want {
				t.Errorf("when = %s, want %s", got, tc.want)
			}
			var ups []string
			for _, p := range c.producers {
				ups = append(ups, p.name)
			}
			if _, err := annotations.CompileWhen(got, ups); err != nil {
				t.Errorf("sluice does not compile it: %v", err)
			}
		})
	}
}

func TestCELLiteral(t *testing.T) {
	for in, want := range map[string]struct {
		v    any
		want string
	}{
		"string": {"a\nb", `"a\nb"`},
		"int":    {int64(-3), "-3"},
		"double": {2.0, "2.0"},
		"list":   {[]any{"a", 1.5, true}, `["a", 1.5, true]`},
		"struct": {map[string]any{"b": int64(1), "a": nil}, `{"a": null, "b": 1}`},
	} {
		got, err := celLiteral(want.v)
		if err != nil || got != want.want {
			t.Errorf("%s: celLiteral(%v) = %s, %v; want %s", in, want.v, got, err, want.want)
		}
	}
}
