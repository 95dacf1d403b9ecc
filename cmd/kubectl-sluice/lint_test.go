package main

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	utiltesting "github.com/sluice-dev/sluice/annotations/testing"
)

var update = flag.Bool("update", false, "rewrite the golden files of the lint tests")

// runCLI runs kubectl sluice with args and stdin, and returns what it
// printed and its exit code.
func runCLI(t *testing.T, stdin string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := newRootCommand()
	var out, errOut bytes.Buffer
	cmd.SetIn(strings.NewReader(stdin))
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	cmd.SetArgs(append(args, "--kubeconfig", filepath.Join(t.TempDir(), "none")))
	err := cmd.Execute()
	var exit exitError
	switch {
	case errors.As(err, &exit):
		code = exit.code
	case err != nil:
		errOut.WriteString(err.Error())
		code = 1
	}
	return out.String(), errOut.String(), code
}

// TestLintGolden: every rule lint applies, each problem at the file and
// line of the key that states it (testdata/lint/pipeline.yaml has one of
// each), and a file that is not YAML.
func TestLintGolden(t *testing.T) {
	out, errOut, code := runCLI(t, "", "lint", "-f", "testdata/lint/pipeline.yaml", "-f", "testdata/lint/broken.yaml")
	if code != 1 {
		t.Errorf("exit code %d, want 1", code)
	}
	utiltesting.Golden(t, "testdata/lint/pipeline.golden", out, *update)
	if want := "kubectl sluice lint: 15 problems in 2 files, 7 objects, 6 sluice steps (6 tasks in 1 run)\n"; errOut != want {
		t.Errorf("stderr = %q, want %q", errOut, want)
	}
}

func TestLint(t *testing.T) {
	good, err := os.ReadFile("testdata/lint/good.yaml")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string][]byte{
		"good.yaml": good,
		"notes.txt": []byte("not a manifest, not read"),
		"sub/bad.yml": []byte("apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: lone\n  labels: {sluice.dev/run: r}\n  annotations: {sluice.dev/after: gone}\n---\n" +
			"apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: alone\n  labels: {sluice.dev/pipeline: p}\n  annotations:\n    sluice.dev/after: gone\n"),
		"sub/list.json": []byte(`{"apiVersion": "v1", "kind": "List", "items": []}`),
	} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cases := map[string]struct {
		stdin    string
		args     []string
		wantOut  string
		wantErr  string
		wantCode int
	}{
		"a good file": {
			args:    []string{"-f", "testdata/lint/good.yaml"},
			wantOut: "kubectl sluice lint: 1 file, 3 objects, 2 sluice steps (2 tasks in 1 run): no problems\n",
		},
		"standard input, as from helm template": {
			stdin: "# Source: chart/templates/job.yaml\n" + string(good), args: []string{"-f", "-"},
			wantOut: "kubectl sluice lint: 1 file, 3 objects, 2 sluice steps (2 tasks in 1 run): no problems\n",
		},
		"a directory: its manifests, not its subdirectories": {
			args:    []string{"-f", dir},
			wantOut: "kubectl sluice lint: 1 file, 3 objects, 2 sluice steps (2 tasks in 1 run): no problems\n",
		},
		"a directory, recursively": {
			args: []string{"-f", dir, "-R"},
			wantOut: filepath.Join(dir, "sub/bad.yml") + `:5: job/lone: sluice.dev/run: sluice ignores this object: it has sluice keys but no sluice.dev/pipeline label` + "\n" +
				filepath.Join(dir, "sub/bad.yml") + `:14: job/alone: sluice.dev/after: upstream task "gone" is not in the set: applied alone, alone would wait for it forever` + "\n",
			wantErr:  "kubectl sluice lint: 2 problems in 3 files, 5 objects, 3 sluice steps (3 tasks in 2 runs)\n",
			wantCode: 1,
		},
		"a run split across files is one run": {
			stdin:   "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: third\n  labels: {sluice.dev/pipeline: p, sluice.dev/run: ok}\n  annotations: {sluice.dev/after: second}\n",
			args:    []string{"-f", "testdata/lint/good.yaml", "-f", "-"},
			wantOut: "kubectl sluice lint: 2 files, 4 objects, 3 sluice steps (3 tasks in 1 run): no problems\n",
		},
		"nothing named":   {wantErr: "lint: name what to check with -f (a file, a directory, or - for standard input)", wantCode: 1},
		"a missing file":  {args: []string{"-f", "testdata/lint/nope.yaml"}, wantErr: "lint: stat testdata/lint/nope.yaml: no such file or directory", wantCode: 1},
		"an empty folder": {args: []string{"-f", t.TempDir()}, wantErr: "has no .yaml, .yml or .json files", wantCode: 1},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			out, errOut, code := runCLI(t, tc.stdin, append([]string{"lint"}, tc.args...)...)
			if out != tc.wantOut || !strings.Contains(errOut, tc.wantErr) || (tc.wantErr == "") != (errOut == "") || code != tc.wantCode {
				t.Errorf("got exit %d, stdout %q, stderr %q; want exit %d, stdout %q, stderr with %q", code, out, errOut, tc.wantCode, tc.wantOut, tc.wantErr)
			}
		})
	}
}
