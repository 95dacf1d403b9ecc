package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const kfpExample = "../../examples/kfp/two_step_pipeline.yaml"

// TestImportKFP: the README's two-step pipeline becomes two Jobs that lint
// passes, with the GPU and resources of train_model and the launcher only
// where a value is collected at run time.
func TestImportKFP(t *testing.T) {
	out, errOut, code := runCLI(t, "", "import", "kfp", kfpExample, "--run", "churn-kfp-1",
		"--image-map", "python:3.11=localhost/sluice/python:dev", "--launcher-image", "localhost/sluice/kfp-launcher:dev")
	if code != 0 || errOut != "" {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
	for _, want := range []string{
		"name: churn-kfp-1-preprocess-data",
		"sluice.dev/inputs: dataset=preprocess-data.processed_data",
		"sluice.dev/gpu: \"1\"", "sluice.dev/cpu: \"1\"", "sluice.dev/memory: 512Mi",
		"sluice.dev/outputs: accuracy:Parameter,model:Model",
		"image: localhost/sluice/python:dev",
		"image: localhost/sluice/kfp-launcher:dev",
		"- /sluice/outputs/processed_data/processed_data",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	if n := strings.Count(out, "image: localhost/sluice/kfp-launcher:dev"); n != 1 {
		t.Errorf("%d launcher init containers, want 1 (train-model only)", n)
	}
	if strings.Contains(out, "creationTimestamp") || strings.Contains(out, "status:") {
		t.Error("output holds fields the API server fills in")
	}
	file := filepath.Join(t.TempDir(), "jobs.yaml")
	if err := os.WriteFile(file, []byte(out), 0o644); err != nil {
		t.Fatal(err)
	}
	lintOut, _, code := runCLI(t, "", "lint", "-f", file)
	if code != 0 || !strings.Contains(lintOut, "2 sluice steps (2 tasks in 1 run): no problems") {
		t.Errorf("lint: exit %d: %s", code, lintOut)
	}
}

func TestImportKFPExplain(t *testing.T) {
	out, _, code := runCLI(t, "", "import", "kfp", kfpExample, "--run", "r", "--explain")
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	want := "KFP TASK         SLUICE TASK      UPSTREAMS        TRIGGER        WHEN  LAUNCHER\n" +
		"preprocess-data  preprocess-data  -                all-succeeded  -     no\n" +
		"train-model      train-model      preprocess-data  all-succeeded  -     yes\n"
	if out != want {
		t.Errorf("explain:\n%s\nwant:\n%s", out, want)
	}
}

// TestImportKFPBadInput: one line naming the file and what is wrong, exit
// 1, nothing on standard output.
func TestImportKFPBadInput(t *testing.T) {
	notYAML := filepath.Join(t.TempDir(), "broken.yaml")
	if err := os.WriteFile(notYAML, []byte("components: [\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct {
		args []string
		want string
	}{
		"malformed YAML":      {[]string{notYAML}, "broken.yaml: not YAML"},
		"not a pipeline":      {[]string{"testdata/lint/good.yaml"}, "good.yaml: not a KFP pipeline spec (it is a Kubernetes object, kind Job)"},
		"wrong type":          {[]string{kfpExample, "-p", "rows=many"}, `two_step_pipeline.yaml: parameter rows: "many" is not an integer`},
		"unknown parameter":   {[]string{kfpExample, "-p", "row=5"}, "two_step_pipeline.yaml: parameter row: the pipeline has no such parameter (it has epochs, rows)"},
		"missing parameter":   {[]string{"testdata/kfp/collide.yaml"}, "collide.yaml: parameter who: required (a string) and not given; pass -p who=VALUE"},
		"names collide":       {[]string{"testdata/kfp/collide.yaml", "-p", "who=me"}, `collide.yaml: tasks say-hi and say_hi both become sluice task "say-hi" after DNS-1123 folding`},
		"bad image map":       {[]string{kfpExample, "--image-map", "python"}, `--image-map "python": expected FROM=TO`},
		"run not a DNS label": {[]string{kfpExample, "--run", "Churn_1"}, `run "Churn_1": expected a DNS-1123 label`},
	} {
		t.Run(name, func(t *testing.T) {
			out, errOut, code := runCLI(t, "", append([]string{"import", "kfp"}, tc.args...)...)
			if code != 1 || out != "" {
				t.Errorf("exit %d, stdout %q; want 1 and nothing", code, out)
			}
			if !strings.Contains(errOut, tc.want) || strings.Count(strings.TrimSpace(errOut), "\n") > 0 {
				t.Errorf("stderr %q: want one line holding %q", errOut, tc.want)
			}
		})
	}
}
