package annotations

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestCheck(t *testing.T) {
	p := map[string]string{PipelineLabel: "churn"}
	objs := []metav1.Object{
		object("prep", p, map[string]string{OutputsAnnotation: "data"}),
		object("train", p, map[string]string{InputsAnnotation: "d=prep.dataset", AfterAnnotation: "validate"}),
		object("eval", p, map[string]string{AfterAnnotation: "train", WhenAnnotation: "tasks.prep.phase == 'Succeeded'"}),
		object("a", p, map[string]string{AfterAnnotation: "b"}),
		object("b", p, map[string]string{AfterAnnotation: "a"}),
		object("bad", p, map[string]string{"sluice.dev/ouputs": "x"}),
		object("plain", nil, map[string]string{AfterAnnotation: "x"}),
		object("shard-1", map[string]string{PipelineLabel: "churn", GroupLabel: "shards"}, nil),
		object("merge", p, map[string]string{AfterGroupAnnotation: "shards=1000"}),
	}
	var got []string
	for _, e := range Check(objs) {
		got = append(got, e.Error())
	}
	want := []string{
		`ml/bad: metadata.annotations[sluice.dev/ouputs]: Invalid value: "x": unknown sluice key; did you mean sluice.dev/outputs?`,
		`run "churn" has a dependency cycle: a -> b -> a`,
		`task "eval" of run "churn": sluice.dev/when: ...`,
		`task "train" of run "churn": input d=prep.dataset names an output prep does not declare (it declares: data)`,
		`run "churn": task "validate" is named as an upstream (by train) but is not in the set`,
		`run "churn": task "merge" waits for group "shards" of 1000 tasks, but the set has 1 labelled sluice.dev/group=shards`,
	}
	// The condition's message is CEL's own; its head is ours.
	const whenHead = `task "eval" of run "churn": sluice.dev/when: `
	for i, g := range got {
		if strings.HasPrefix(g, whenHead) && strings.Contains(g, `"prep"`) {
			got[i] = whenHead + "..."
		}
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Check() (-want,+got):\n%s", diff)
	}
}
