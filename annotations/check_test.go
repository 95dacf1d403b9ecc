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
		object("prep-again", map[string]string{PipelineLabel: "churn", TaskLabel: "prep"}, nil),
		object("gpu", p, map[string]string{GPUAnnotation: "lots"}),
	}
	var got []string
	for _, p := range Check(objs) {
		got = append(got, p.Error())
	}
	// Each problem in the object and key that states it.
	want := []string{
		`ml/eval: metadata.annotations[sluice.dev/when]: Invalid value: "tasks.prep.phase == 'Succeeded'": ...`,
		`ml/bad: metadata.annotations[sluice.dev/ouputs]: Invalid value: "x": unknown sluice key; did you mean sluice.dev/outputs?`,
		`ml/gpu: metadata.annotations[sluice.dev/gpu]: Invalid value: "lots": expected a positive whole number of GPUs, e.g. "1"`,
		`ml/prep-again: task "prep" appears more than once in run "churn"`,
		`ml/b: metadata.annotations[sluice.dev/after]: run "churn" has a dependency cycle: a -> b -> a`,
		`ml/train: metadata.annotations[sluice.dev/inputs]: input d=prep.dataset names an output prep does not declare (it declares: data)`,
		`ml/train: metadata.annotations[sluice.dev/after]: upstream task "validate" is not in the set: applied alone, train would wait for it forever`,
		`ml/merge: metadata.annotations[sluice.dev/after-group]: waits for group "shards" of 1000 tasks, but the set has 1 labelled sluice.dev/group=shards`,
	}
	// The condition's message is CEL's own; its head is ours.
	const whenHead = `ml/eval: metadata.annotations[sluice.dev/when]: Invalid value: "tasks.prep.phase == 'Succeeded'": `
	for i, g := range got {
		if strings.HasPrefix(g, whenHead) && strings.Contains(g, `"prep"`) {
			got[i] = whenHead + "..."
		}
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Check() (-want,+got):\n%s", diff)
	}
}
