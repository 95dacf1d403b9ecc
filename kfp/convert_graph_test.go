package kfp

import (
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/sluice-dev/sluice/annotations"
)

// TestConvertMatchesArgo compares the dependency graph of the Jobs of every
// pipeline that converts with KFP's own compilation of it to Argo: the same
// container tasks, and each runs after the same others (transitively, so
// that flattened sub-DAGs compare equal), with the same exit handlers.
func TestConvertMatchesArgo(t *testing.T) {
	files := corpus(t)
	dir := corpusDir()
	compared := 0
	for _, name := range slices.Sorted(maps.Keys(files)) {
		argo, err := os.ReadFile(filepath.Join(dir, "argo", name))
		if err != nil {
			continue // KFP has no Argo compilation of this one
		}
		t.Run(name, func(t *testing.T) {
			res, err := convertSample(t, files[name])
			if err != nil {
				t.Skipf("refused: %v", err) // TestConvertCorpus says why each refusal is right
			}
			want, err := argoGraph(argo)
			if err != nil {
				t.Fatal(err)
			}
			got := convertedGraph(res)
			if diff := cmp.Diff(want.Steps, got.Steps); diff != "" {
				t.Fatalf("steps (-argo,+sluice):\n%s", diff)
			}
			if diff := cmp.Diff(want.After, got.After); diff != "" {
				t.Errorf("runs after (-argo,+sluice):\n%s", diff)
			}
			wantExit := map[string]bool{}
			for e := range want.Exit {
				wantExit[e] = true
			}
			if diff := cmp.Diff(wantExit, got.Exit); diff != "" {
				t.Errorf("exit handlers (-argo,+sluice):\n%s", diff)
			}
			compared++
		})
	}
	if compared < 80 {
		t.Errorf("compared %d pipelines with their Argo compilation; expected at least 80", compared)
	}
}

// convertSample converts a pipeline with its defaults, and a value of its
// type for each required parameter.
func convertSample(t *testing.T, data []byte) (*Result, error) {
	t.Helper()
	p, err := Decode(data)
	if err != nil {
		t.Fatal(err)
	}
	params, err := ResolveParams(rootParams(p), nil, sampleParams(p))
	if err != nil {
		t.Fatal(err)
	}
	return Convert(p, Options{Run: "r", Params: params, LauncherImage: "localhost/sluice/kfp-launcher:dev"})
}

var loopIndex = regexp.MustCompile(`\[\d+\]`)

type convertedSteps struct {
	Steps map[string]bool
	After map[string]map[string]bool
	Exit  map[string]bool
}

// convertedGraph is the graph of a conversion's tasks by KFP task path,
// loops folded: an edge between two iterations of one loop (its lanes)
// has no counterpart in Argo and is left out.
func convertedGraph(res *Result) convertedSteps {
	byName := map[string]Explained{}
	for _, s := range res.Steps {
		byName[s.Task] = s
	}
	g := convertedSteps{Steps: map[string]bool{}, After: map[string]map[string]bool{}, Exit: map[string]bool{}}
	var ancestors func(name string, seen map[string]bool)
	ancestors = func(name string, seen map[string]bool) {
		for _, u := range byName[name].Upstreams {
			if !seen[u] {
				seen[u] = true
				ancestors(u, seen)
			}
		}
	}
	for _, s := range res.Steps {
		path := loopIndex.ReplaceAllString(s.KFPTask, "")
		g.Steps[path] = true
		if s.Trigger == annotations.TriggerAllDone {
			g.Exit[path] = true
		}
		seen := map[string]bool{}
		ancestors(s.Task, seen)
		for u := range seen {
			up := byName[u].KFPTask
			if otherIteration(s.KFPTask, up) {
				continue
			}
			if g.After[path] == nil {
				g.After[path] = map[string]bool{}
			}
			g.After[path][loopIndex.ReplaceAllString(up, "")] = true
		}
	}
	return g
}

// otherIteration reports whether two task paths lie in different
// iterations of one loop.
func otherIteration(a, b string) bool {
	as, bs := strings.Split(a, "/"), strings.Split(b, "/")
	for i := 0; i < len(as) && i < len(bs); i++ {
		if as[i] == bs[i] {
			continue
		}
		return loopIndex.ReplaceAllString(as[i], "") == loopIndex.ReplaceAllString(bs[i], "")
	}
	return false
}
