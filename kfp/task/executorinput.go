package task

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
)

// KFP's ExecutorInput (api/v2alpha1/pipeline_spec.proto) in its protobuf
// JSON form, the part of it sluice fills: what {{$}} stands for and what
// KFP's Python executor (kfp.dsl.executor) reads.
type pbExecutorInput struct {
	Inputs  pbInputs  `json:"inputs"`
	Outputs pbOutputs `json:"outputs"`
}

type pbInputs struct {
	ParameterValues map[string]any            `json:"parameterValues,omitempty"`
	Artifacts       map[string]pbArtifactList `json:"artifacts,omitempty"`
}

type pbOutputs struct {
	Parameters map[string]pbOutputParameter `json:"parameters,omitempty"`
	Artifacts  map[string]pbArtifactList    `json:"artifacts,omitempty"`
	OutputFile string                       `json:"outputFile"`
}

type pbOutputParameter struct {
	OutputFile string `json:"outputFile"`
}

type pbArtifactList struct {
	Artifacts []pbRuntimeArtifact `json:"artifacts"`
}

type pbRuntimeArtifact struct {
	Name     string         `json:"name"`
	Type     pbArtifactType `json:"type"`
	URI      string         `json:"uri"`
	Metadata map[string]any `json:"metadata"`
}

type pbArtifactType struct {
	SchemaTitle string `json:"schemaTitle"`
}

// ExecutorInput gives KFP's ExecutorInput for the task as JSON: the inputs
// that have a value (parameters typed, artifacts with their paths as uris and
// their metadata), every output with the path it is written to, and
// OutputFile for the executor output.
func (v *TaskValues) ExecutorInput() ([]byte, error) {
	in := pbExecutorInput{
		Inputs: pbInputs{
			ParameterValues: map[string]any{},
			Artifacts:       map[string]pbArtifactList{},
		},
		Outputs: pbOutputs{
			Parameters: map[string]pbOutputParameter{},
			Artifacts:  map[string]pbArtifactList{},
			OutputFile: v.OutputFile,
		},
	}
	for name, val := range v.params {
		in.Inputs.ParameterValues[name] = val
	}
	for _, name := range slices.Sorted(maps.Keys(v.arts)) {
		list, err := v.artifactList(name, v.exec.Inputs.Artifacts[name].Type, v.arts[name])
		if err != nil {
			return nil, fmt.Errorf("executor input: input artifact %s: %w", name, err)
		}
		in.Inputs.Artifacts[name] = list
	}
	for name, p := range v.exec.Outputs.Parameters {
		in.Outputs.Parameters[name] = pbOutputParameter{OutputFile: p.Path}
	}
	for name, a := range v.exec.Outputs.Artifacts {
		in.Outputs.Artifacts[name] = pbArtifactList{Artifacts: []pbRuntimeArtifact{{
			Name: name, Type: pbArtifactType{SchemaTitle: a.Type}, URI: a.Path, Metadata: map[string]any{},
		}}}
	}
	return json.Marshal(in)
}

// artifactList is an input artifact's list: its artifacts are named after
// the input, as sluice does not keep their producers' names.
func (v *TaskValues) artifactList(name, schema string, paths []string) (pbArtifactList, error) {
	list := pbArtifactList{Artifacts: []pbRuntimeArtifact{}}
	for _, p := range paths {
		md, err := v.metadata(p)
		if err != nil {
			return pbArtifactList{}, err
		}
		list.Artifacts = append(list.Artifacts, pbRuntimeArtifact{
			Name: name, Type: pbArtifactType{SchemaTitle: schema}, URI: p, Metadata: md,
		})
	}
	return list, nil
}
