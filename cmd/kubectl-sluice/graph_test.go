package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/sluice-dev/sluice/draw"
)

// TestGraphOfARun: a run read from the cluster becomes the drawing's tasks,
// with their phases, upstreams (groups' members included) and conditions.
func TestGraphOfARun(t *testing.T) {
	c := statusClient(statusObjects()...)
	runs, err := readRuns(context.Background(), c, "ml", "r1", t0.Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	got := drawing(runs[0])
	want := draw.Run{Namespace: "ml", Name: "r1", Outcome: "Succeeded", Tasks: []draw.Task{
		{Name: "prep", Phase: "Succeeded"},
		{Name: "train", Phase: "Succeeded", Upstreams: []string{"prep"}},
		{Name: "deploy", Phase: "Skipped", Upstreams: []string{"train"}},
	}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("drawing (-want,+got):\n%s", diff)
	}
	var b strings.Builder
	if err := draw.ASCII(&b, got); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "deploy  Skipped         after train") {
		t.Errorf("ascii lacks deploy's line:\n%s", b.String())
	}
}

func TestGraphCommand(t *testing.T) {
	for name, tc := range map[string]struct {
		args []string
		want string
	}{
		"no run":         {args: []string{"graph"}, want: "graph: name one run (kubectl sluice graph RUN); got 0 arguments"},
		"a wrong format": {args: []string{"graph", "r", "-o", "png"}, want: "graph: -o png: the formats are ascii, dot, mermaid and svg"},
	} {
		t.Run(name, func(t *testing.T) {
			_, errOut, code := runCLI(t, "", tc.args...)
			if code != 1 || !strings.Contains(errOut, tc.want) {
				t.Errorf("exit %d, stderr %q; want exit 1 and %q", code, errOut, tc.want)
			}
		})
	}
}
