package integration

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/sluice-dev/sluice/e2e/framework"
	"github.com/sluice-dev/sluice/kfp"
	"github.com/sluice-dev/sluice/kfp/task"
)

// TestKFPAdmitted: every compiled KFP pipeline the importer converts (the
// README's example, and the corpus beside the repository when it is
// there) is admitted as it is written: the API server's validation and
// sluice's webhooks accept every Job.
func TestKFPAdmitted(t *testing.T) {
	files := []string{filepath.Join(framework.RepoRoot(), "examples", "kfp", "two_step_pipeline.yaml")}
	dir := os.Getenv("SLUICE_KFP_IR")
	if dir == "" {
		dir = filepath.Join(framework.RepoRoot(), "..", "shared", "kfp-ir")
	}
	corpus, _ := filepath.Glob(filepath.Join(dir, "ir", "*.yaml"))
	if len(corpus) == 0 {
		t.Logf("no compiled KFP pipelines in %s/ir: checking the example only", dir)
	}
	admitted := 0
	for _, file := range append(files, corpus...) {
		t.Run(filepath.Base(file), func(t *testing.T) {
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			p, err := kfp.Decode(data)
			if err != nil {
				t.Fatal(err)
			}
			var defs map[string]kfp.ParameterSpec
			if in := p.Spec.Root.InputDefinitions; in != nil {
				defs = in.Parameters
			}
			params, err := kfp.ResolveParams(defs, nil, requiredParams(defs))
			if err != nil {
				t.Fatal(err)
			}
			ns := namespace(t)
			res, err := kfp.Convert(p, kfp.Options{Run: "r", Namespace: ns, Params: params, LauncherImage: "localhost/sluice/kfp-launcher:dev"})
			if err != nil {
				t.Skipf("refused (kfp's TestConvertCorpus says why): %v", err)
			}
			for _, j := range res.Jobs {
				if err := env.Client.Create(context.Background(), j); err != nil {
					t.Errorf("job %s (KFP task %s): %v", j.Name, j.Annotations[kfp.TaskAnnotation], err)
				}
			}
			admitted++
		})
	}
	if len(corpus) > 0 && admitted < 100 {
		t.Errorf("%d pipelines admitted, want at least 100 of the corpus' %d", admitted, len(corpus))
	}
}

// requiredParams gives each required parameter without a default a value of its type.
func requiredParams(defs map[string]kfp.ParameterSpec) map[string]any {
	out := map[string]any{}
	for name, def := range defs {
		if def.DefaultValue != nil || def.IsOptional {
			continue
		}
		out[name] = map[string]any{
			task.TypeString: "x", task.TypeInteger: int64(1), task.TypeDouble: 1.5, task.TypeBoolean: true,
			task.TypeList: []any{"a"}, task.TypeStruct: map[string]any{"a": "b"},
		}[def.ParameterType]
	}
	return out
}
