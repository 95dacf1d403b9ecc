package task

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestExecutorInput(t *testing.T) {
	v, err := NewResolver(resolveExecutor(), resolveFiles())
	if err != nil {
		t.Fatal(err)
	}
	got, err := ExpandAll([]string{"--executor_input", "{{$}}"}, v)
	if err != nil {
		t.Fatal(err)
	}
	// As KFP's launcher gives it (protobuf JSON of ExecutorInput): typed
	// parameter values, artifact lists with uri and metadata, the outputs'
	// files and the executor output file. Absent inputs are left out.
	want := `{
	  "inputs": {
	    "parameterValues": {
	      "all": [1, 3], "as_text": "42", "branch": "from b\n", "conf": {"a": 1}, "count": 42,
	      "epochs": 3, "nested": [[1], [3]], "none": [], "rate": 0.5, "text": "hi there"
	    },
	    "artifacts": {
	      "data": {"artifacts": [{"name": "data", "type": {"schemaTitle": "system.Dataset"}, "uri": "/sluice/inputs/b-data/data", "metadata": {"rows": 10, "big": 12345678901234567890}}]},
	      "model": {"artifacts": [{"name": "model", "type": {"schemaTitle": "system.Model"}, "uri": "/sluice/inputs/fit-model/model", "metadata": {}}]},
	      "shards": {"artifacts": [
	        {"name": "shards", "type": {"schemaTitle": "system.Dataset"}, "uri": "/sluice/inputs/s-0/shard", "metadata": {"part": 0}},
	        {"name": "shards", "type": {"schemaTitle": "system.Dataset"}, "uri": "/sluice/inputs/s-2/shard", "metadata": {}}
	      ]}
	    }
	  },
	  "outputs": {
	    "parameters": {"n": {"outputFile": "/sluice/outputs/n/n"}},
	    "artifacts": {"out": {"artifacts": [{"name": "out", "type": {"schemaTitle": "system.Dataset"}, "uri": "/sluice/outputs/out/out", "metadata": {}}]}},
	    "outputFile": "/sluice/kfp/outputs/executor_output.json"
	  }
	}`
	if d := cmp.Diff(jsonValue(t, want), jsonValue(t, got[1])); d != "" {
		t.Errorf("(-want,+got):\n%s", d)
	}
	if got[0] != "--executor_input" {
		t.Errorf("first item = %q", got[0])
	}
}

func TestExecutorInputOutputFile(t *testing.T) {
	v, err := NewResolver(&Executor{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	v.OutputFile = "/tmp/x/executor_output.json"
	b, err := v.ExecutorInput()
	if err != nil {
		t.Fatal(err)
	}
	want := `{"inputs":{},"outputs":{"outputFile":"/tmp/x/executor_output.json"}}`
	if d := cmp.Diff(want, string(b)); d != "" {
		t.Errorf("(-want,+got):\n%s", d)
	}
}

// jsonValue decodes s keeping numbers as written, so that a large integer
// compares exactly.
func jsonValue(t *testing.T, s string) any {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(s))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("%v in %s", err, s)
	}
	return v
}
