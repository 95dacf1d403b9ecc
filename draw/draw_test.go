package draw

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	utiltesting "github.com/sluice-dev/sluice/annotations/testing"
)

var update = flag.Bool("update", false, "rewrite the golden files")

// seed is the example pipeline as it ends when the model is not good
// enough: deploy skipped by its condition, notify failed, report after it
// UpstreamFailed.
var seed = Run{Namespace: "ml", Name: "churn-demo", Outcome: "Failed", Tasks: []Task{
	{Name: "deploy", Phase: "Skipped", When: "tasks.evaluate.results.accuracy >= 0.9", Upstreams: []string{"evaluate"}},
	{Name: "evaluate", Phase: "Succeeded", Upstreams: []string{"train", "preprocess"}},
	{Name: "ingest", Phase: "Succeeded"},
	{Name: "notify", Phase: "Failed", Upstreams: []string{"evaluate"}},
	{Name: "preprocess", Phase: "Succeeded", Upstreams: []string{"ingest"}},
	{Name: "report", Phase: "UpstreamFailed", Upstreams: []string{"notify", "deploy"}},
	{Name: "train", Phase: "Succeeded", Upstreams: []string{"preprocess"}},
}}

func TestGolden(t *testing.T) {
	for format, draw := range map[string]func(io.Writer, Run) error{"txt": ASCII, "dot": DOT, "mmd": Mermaid, "svg": SVG} {
		t.Run(format, func(t *testing.T) {
			var b bytes.Buffer
			if err := draw(&b, seed); err != nil {
				t.Fatal(err)
			}
			utiltesting.Golden(t, "testdata/seed."+format, b.String(), *update)
		})
	}
}

// TestLayout: upstreams to the left, within a layer ordered after their
// upstreams' places; a cycle and an upstream not in the run do not hang or
// break the layout.
func TestLayout(t *testing.T) {
	l := newLayout(Run{Tasks: []Task{
		{Name: "a"}, {Name: "b"},
		{Name: "from-b", Upstreams: []string{"b"}}, {Name: "from-a", Upstreams: []string{"a"}},
		{Name: "x", Upstreams: []string{"y"}}, {Name: "y", Upstreams: []string{"x"}},
		{Name: "lost", Upstreams: []string{"not-in-the-run"}},
	}})
	var got []string
	for d, layer := range l.layers {
		for _, i := range layer {
			got = append(got, fmt.Sprintf("%d:%s", d, l.run.Tasks[i].Name))
		}
	}
	want := []string{"0:a", "0:b", "0:lost", "0:y", "1:from-a", "1:from-b", "1:x"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("layers (-want,+got):\n%s", diff)
	}
}

// TestASCIIWidth: long names and many upstreams still fit in 80 columns.
func TestASCIIWidth(t *testing.T) {
	r := Run{Namespace: "ml", Name: "wide", Outcome: "Running"}
	var ups []string
	for i := range 50 {
		name := fmt.Sprintf("shard-with-a-rather-long-name-%03d", i)
		r.Tasks = append(r.Tasks, Task{Name: name, Phase: "Succeeded"})
		ups = append(ups, name)
	}
	r.Tasks = append(r.Tasks, Task{Name: "merge", Phase: "Running", Upstreams: ups, When: strings.Repeat("true && ", 20) + "true"})
	var b strings.Builder
	if err := ASCII(&b, r); err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(b.String(), "\n") {
		if len(line) > 80 {
			t.Errorf("line of %d columns: %q", len(line), line)
		}
	}
}

// TestSVGValid: the SVG parses as XML and has one task group per task,
// with names that need escaping kept intact.
func TestSVGValid(t *testing.T) {
	r := seed
	r.Tasks = append(r.Tasks[:len(r.Tasks):len(r.Tasks)], Task{Name: `a<b>&"c"`, Phase: "Running", When: "x < 1 && y > 2"})
	var b bytes.Buffer
	if err := SVG(&b, r); err != nil {
		t.Fatal(err)
	}
	tasks, err := utiltesting.SVGTasks(&b)
	if err != nil {
		t.Fatalf("not valid XML: %v", err)
	}
	if _, ok := tasks[`a<b>&"c"`]; len(tasks) != len(r.Tasks) || !ok {
		t.Errorf("task groups %v, want one per task (%d)", tasks, len(r.Tasks))
	}
}

// BenchmarkLayout: a run of 1 -> 1,000 -> 1 laid out and drawn as SVG.
func BenchmarkLayout(b *testing.B) {
	r := Run{Namespace: "ml", Name: "fan", Tasks: []Task{{Name: "split", Phase: "Succeeded"}}}
	var ups []string
	for i := range 1000 {
		name := fmt.Sprintf("shard-%04d", i)
		r.Tasks = append(r.Tasks, Task{Name: name, Phase: "Running", Upstreams: []string{"split"}})
		ups = append(ups, name)
	}
	r.Tasks = append(r.Tasks, Task{Name: "merge", Phase: "Waiting", Upstreams: ups})
	for b.Loop() {
		if err := SVG(io.Discard, r); err != nil {
			b.Fatal(err)
		}
	}
}
