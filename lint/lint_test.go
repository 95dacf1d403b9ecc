package lint

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzCheck: whatever a file holds, Check reports problems or none, each
// at a line, and never crashes.
func FuzzCheck(f *testing.F) {
	for _, name := range []string{"pipeline.yaml", "good.yaml", "broken.yaml"} {
		data, err := os.ReadFile(filepath.Join("../cmd/kubectl-sluice/testdata/lint", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte("kind: List\nitems: [1, [2], {kind: List, items: {a: b}}]"))
	f.Add([]byte("metadata: {labels: [x], annotations: {a: [1]}}"))
	f.Fuzz(func(t *testing.T, data []byte) {
		res := Check([]Source{{Name: "fuzz.yaml", Data: data}}, "default")
		for _, p := range res.Problems {
			if p.Line < 1 {
				t.Errorf("problem without a line: %s", p)
			}
		}
	})
}
