package kfp

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluice-dev/sluice/kfp/task"
)

// corpus gives the compiled pipelines in ../shared/kfp-ir/ir (or
// $SLUICE_KFP_IR/ir), skipping the test when they are not there: they are
// KFP's files, kept beside the project, not in it.
func corpus(t testing.TB) map[string][]byte {
	t.Helper()
	dir := corpusDir()
	files, _ := filepath.Glob(filepath.Join(dir, "ir", "*.yaml"))
	if len(files) == 0 {
		t.Skipf("no compiled KFP pipelines in %s/ir (set SLUICE_KFP_IR to the folder that holds ir/)", dir)
	}
	out := map[string][]byte{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		out[filepath.Base(f)] = b
	}
	return out
}

// corpusDir is the folder that holds the corpus' ir/ (and argo/).
func corpusDir() string {
	if dir := os.Getenv("SLUICE_KFP_IR"); dir != "" {
		return dir
	}
	return filepath.Join("..", "..", "shared", "kfp-ir")
}

func TestDecodeCorpus(t *testing.T) {
	platforms := 0
	for name, data := range corpus(t) {
		p, err := Decode(data)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if p.Spec.PipelineInfo.Name == "" || len(p.Spec.Root.DAG.Tasks) == 0 {
			t.Errorf("%s: decoded without a name or root tasks", name)
		}
		if p.Platform != nil {
			platforms++
		}
	}
	if platforms == 0 {
		t.Error("no pipeline of the corpus had a platform document")
	}
}

func TestRefsOfCorpus(t *testing.T) {
	for name, data := range corpus(t) {
		p, err := Decode(data)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		for label, ex := range p.Spec.DeploymentSpec.Executors {
			if ex.Container == nil {
				continue
			}
			if _, err := task.Refs(append(ex.Container.Command, ex.Container.Args...)); err != nil {
				t.Errorf("%s: executor %s: %v", name, label, err)
			}
		}
	}
}

const minimal = `
pipelineInfo:
  name: p
schemaVersion: 2.1.0
sdkVersion: kfp-2.14.3
components:
  comp-a:
    executorLabel: exec-a
deploymentSpec:
  executors:
    exec-a:
      container:
        image: busybox
root:
  dag:
    tasks:
      a:
        componentRef: {name: comp-a}
        taskInfo: {name: a}
`

func TestDecode(t *testing.T) {
	cases := map[string]struct {
		data    string
		wantErr string
	}{
		"minimal pipeline":    {data: minimal},
		"with a platform doc": {data: minimal + "---\nplatforms:\n  kubernetes:\n    deploymentSpec:\n      executors:\n        exec-a:\n          nodeSelector:\n            labels: {disk: ssd}\n"},
		"unknown field in a task": {
			data:    strings.Replace(minimal, "taskInfo: {name: a}", "taskInfo: {name: a}\n        sparkle: true", 1),
			wantErr: `unknown field "sparkle": the importer does not know this KFP feature`,
		},
		"unknown platform field": {
			data:    minimal + "---\nplatforms:\n  kubernetes:\n    deploymentSpec:\n      executors:\n        exec-a:\n          hugePages: 2\n",
			wantErr: `platform document: unknown field "hugePages"`,
		},
		"another schema version": {
			data:    strings.Replace(minimal, "schemaVersion: 2.1.0", "schemaVersion: 2.0.0", 1),
			wantErr: `schemaVersion "2.0.0" is not supported; expected "2.1.0"`,
		},
		"malformed YAML":         {data: "pipelineInfo: [", wantErr: "not YAML"},
		"empty":                  {data: "", wantErr: "the file is empty"},
		"a Kubernetes object":    {data: "apiVersion: argoproj.io/v1alpha1\nkind: Workflow\n", wantErr: "it is a Kubernetes object, kind Workflow"},
		"a mapping, no pipeline": {data: "name: x\n", wantErr: "it has no pipelineInfo"},
		"three documents":        {data: minimal + "---\na: 1\n---\nb: 2\n", wantErr: "the file has 3 documents"},
		"wrong type of a field": {
			data:    strings.Replace(minimal, "componentRef: {name: comp-a}", "componentRef: [comp-a]", 1),
			wantErr: "not a KFP pipeline spec: cannot unmarshal array",
		},
		"no root dag": {
			data:    strings.Split(minimal, "root:")[0],
			wantErr: "root.dag is missing",
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := Decode([]byte(tc.data))
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("Decode: %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("Decode error = %v, want it to contain %q", err, tc.wantErr)
			case err != nil && strings.Contains(err.Error(), "\n"):
				t.Fatalf("error is not one line: %q", err)
			}
		})
	}
}

func FuzzDecode(f *testing.F) {
	f.Add([]byte(minimal))
	f.Add([]byte(minimal + "---\nplatforms: {}\n"))
	f.Add([]byte("pipelineInfo: {name: x}\nschemaVersion: 2.1.0\nroot: {dag: {tasks: {}}}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := Decode(data)
		if err != nil {
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("error is not one line: %q", err)
			}
			return
		}
		if p.Spec.Root == nil || p.Spec.Root.DAG == nil || p.Spec.SchemaVersion != SchemaVersion {
			t.Fatalf("decoded a pipeline without root.dag or schemaVersion %s", SchemaVersion)
		}
	})
}
