package kfp

import (
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/sluice-dev/sluice/kfp/task"
	"github.com/sluice-dev/sluice/lint"
)

// refused are the corpus pipelines sluice cannot run, each with the words
// its error must hold: the feature, named.
var refused = map[string]string{
	"collected_artifacts.yaml":                                         "dsl.ParallelFor over the output of task",
	"loop_consume_upstream.yaml":                                       "dsl.ParallelFor over the output of task",
	"pipeline_with_loops.yaml":                                         "dsl.ParallelFor over the output of task",
	"pipeline_with_loops_and_conditions.yaml":                          "dsl.ParallelFor over the output of task",
	"pipeline_with_parallelfor_parallelism.yaml":                       "dsl.ParallelFor over the output of task",
	"pipeline_with_parallelfor_list_artifacts_GH-12033.yaml":           "artifactIterator",
	"component_with_task_final_status_GH-12033.yaml":                   "dsl.PipelineTaskFinalStatus",
	"local_execution_pipeline_with_exit_handler.yaml":                  "dsl.PipelineTaskFinalStatus",
	"pipeline_as_exit_task.yaml":                                       "dsl.PipelineTaskFinalStatus",
	"pipeline_with_input_status_state.yaml":                            "dsl.PipelineTaskFinalStatus",
	"pipeline_with_task_final_status.yaml":                             "dsl.PipelineTaskFinalStatus",
	"pipeline_with_task_final_status_yaml.yaml":                        "dsl.PipelineTaskFinalStatus",
	"component_with_metadata_fields.yaml":                              "pipeline input artifact",
	"components_with_optional_artifacts.yaml":                          "pipeline input artifact",
	"input_artifact.yaml":                                              "pipeline input artifact",
	"pipeline_with_metadata_fields.yaml":                               "pipeline input artifact",
	"pipeline_with_various_io_types.yaml":                              "pipeline input artifact",
	"modelcar.yaml":                                                    "dsl.importer",
	"pipeline_with_dynamic_importer_metadata.yaml":                     "dsl.importer",
	"pipeline_with_google_artifact_type.yaml":                          "dsl.importer",
	"pipeline_with_importer.yaml":                                      "dsl.importer",
	"pipeline_with_importer_and_gcpc_types.yaml":                       "dsl.importer",
	"pythonic_artifact_with_single_return.yaml":                        "dsl.importer",
	"pipeline_with_importer_workspace.yaml":                            "workspace",
	"pipeline_with_workspace.yaml":                                     "workspace",
	"parallel_for_mount_pvc.yaml":                                      "CreatePVC",
	"pipeline_with_volume.yaml":                                        "CreatePVC",
	"pipeline_with_volume_long_name.yaml":                              "CreatePVC",
	"pipeline_with_volume_no_cache.yaml":                               "CreatePVC",
	"platform__create_mount_delete_dynamic_pvc.yaml":                   "CreatePVC",
	"platform__create_mount_delete_existing_pvc.yaml":                  "CreatePVC",
	"platform__create_mount_delete_existing_pvc_from_task_output.yaml": "CreatePVC",
	"nested_parallel_for_secret.yaml":                                  "secret name comes from an upstream task's output",
	"pipeline_with_secret_as_env.yaml":                                 "secret name comes from the output",
	"pipeline_with_string_machine_fields_task_output.yaml":             "cpu limit comes from an upstream task's output",
	"platform__general_ephemeral_volume.yaml":                          `mount path "path" is not absolute`,
}

// TestConvertCorpus converts every compiled pipeline of the corpus: it
// either becomes Jobs that sluice's admission checks pass (kubectl sluice
// lint), or is refused with an error that names the KFP task and the
// feature.
func TestConvertCorpus(t *testing.T) {
	files := corpus(t)
	converted := 0
	for _, name := range slices.Sorted(maps.Keys(files)) {
		t.Run(name, func(t *testing.T) {
			res, err := convertSample(t, files[name])
			if want, ok := refused[name]; ok {
				if err == nil {
					t.Fatalf("converted; expected a refusal naming %q", want)
				}
				if !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "\n") {
					t.Fatalf("error %q: expected one line naming %q", err, want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var docs []string
			for _, j := range res.Jobs {
				b, err := yaml.Marshal(j)
				if err != nil {
					t.Fatal(err)
				}
				docs = append(docs, string(b))
			}
			r := lint.Check([]lint.Source{{Name: name, Data: []byte(strings.Join(docs, "---\n"))}}, "default")
			for _, p := range r.Problems {
				t.Error(p)
			}
			if r.Steps != len(res.Jobs) || r.Steps == 0 {
				t.Errorf("lint saw %d steps of %d Jobs", r.Steps, len(res.Jobs))
			}
			converted++
		})
	}
	if converted+len(refused) != len(files) {
		t.Errorf("%d converted and %d refused of %d pipelines", converted, len(refused), len(files))
	}
}

func rootParams(p *Pipeline) map[string]ParameterSpec {
	if p.Spec.Root.InputDefinitions == nil {
		return nil
	}
	return p.Spec.Root.InputDefinitions.Parameters
}

// sampleParams gives every required parameter without a default a value of its type.
func sampleParams(p *Pipeline) map[string]any {
	out := map[string]any{}
	for name, def := range rootParams(p) {
		if def.DefaultValue != nil || def.IsOptional {
			continue
		}
		switch def.ParameterType {
		case task.TypeString:
			out[name] = "x"
		case task.TypeInteger:
			out[name] = int64(1)
		case task.TypeDouble:
			out[name] = 1.5
		case task.TypeBoolean:
			out[name] = true
		case task.TypeList:
			out[name] = []any{"a", "b"}
		case task.TypeStruct:
			out[name] = map[string]any{"a": "b"}
		}
	}
	return out
}

// FuzzConvert: whatever a compiled pipeline holds, conversion ends with
// Jobs whose task names are unique DNS-1123 labels and whose upstreams are
// among them, or with a one-line error.
func FuzzConvert(f *testing.F) {
	f.Add([]byte(minimal))
	for _, file := range []string{"../examples/kfp/two_step_pipeline.yaml", "../e2e/cluster/testdata/kfp/executor_input.yaml"} {
		if data, err := os.ReadFile(file); err == nil {
			f.Add(data)
		}
	}
	{
		dir := corpusDir()
		for _, name := range []string{"pipeline_with_condition.yaml", "pipeline_with_exit_handler.yaml", "if_elif_else_with_oneof_parameters.yaml",
			"pipeline_with_parallelfor_parallelism.yaml", "nested_pipeline_opt_inputs_parent_level_compiled.yaml", "platform__secret_as_env.yaml"} {
			if data, err := os.ReadFile(filepath.Join(dir, "ir", name)); err == nil {
				f.Add(data)
			}
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := Decode(data)
		if err != nil {
			return
		}
		params, err := ResolveParams(rootParams(p), nil, sampleParams(p))
		if err != nil {
			return
		}
		res, err := Convert(p, Options{Run: "r", Params: params, LauncherImage: "l"})
		if err != nil {
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("error is not one line: %q", err)
			}
			return
		}
		tasks := map[string]bool{}
		for _, s := range res.Steps {
			if tasks[s.Task] || DNSName(s.Task) != s.Task {
				t.Fatalf("task name %q is repeated or not a DNS-1123 label", s.Task)
			}
			tasks[s.Task] = true
		}
		for _, s := range res.Steps {
			for _, u := range s.Upstreams {
				if !tasks[u] || u == s.Task {
					t.Fatalf("task %s waits for %q", s.Task, u)
				}
			}
		}
		for _, j := range res.Jobs {
			if DNSName(j.Name) != j.Name {
				t.Fatalf("Job name %q is not a DNS-1123 label", j.Name)
			}
		}
	})
}
