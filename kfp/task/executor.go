// Package task is what one KFP container task needs at run time: its typed
// parameter values, its command-line placeholders, and the Executor the
// importer hands the launcher.
//
// It imports only the standard library: the launcher, a static binary copied
// into every KFP step, is built from it, and package kfp, which converts
// pipelines and needs the Kubernetes API types, builds on it.
package task

// The contract between the converter and the launcher. A container task
// whose command needs values only known at run time (an upstream's output
// parameter, the executor input {{$}}, output parameters to collect) runs
// through the launcher: an init container copies the launcher binary into
// LauncherDir, the main container's command becomes LauncherPath, and the
// converter describes the task in ExecutorEnv as JSON (an Executor). Every
// path in an Executor is on the run volume as sluice's webhook mounts it
// (annotations.InputsDir, annotations.OutputsDir) or under LauncherDir.

const (
	// ExecutorEnv is the main container's variable holding the Executor, as JSON.
	ExecutorEnv = "SLUICE_KFP_EXECUTOR"
	// LauncherDir is the emptyDir the init container copies the launcher into;
	// the launcher also keeps the executor output file there.
	LauncherDir = "/sluice/kfp"
	// LauncherPath is the launcher binary inside the step.
	LauncherPath = LauncherDir + "/launcher"
	// LauncherVolume is the name of LauncherDir's volume.
	LauncherVolume = "sluice-kfp-launcher"
	// MetadataFile is the file, beside an artifact in its output directory,
	// holding the artifact's metadata as JSON (from the executor output).
	MetadataFile = ".kfp-metadata.json"
	// TerminationPath is where the launcher writes the task's results: the
	// output parameters as one JSON object, which sluice's controller copies
	// into sluice.dev/results.
	TerminationPath = "/dev/termination-log"
)

// Executor is what the launcher needs to run one KFP container task.
type Executor struct {
	// Command is the component's command followed by its args, with their
	// placeholders not yet resolved.
	Command []string `json:"command"`
	// Run and Task name the run and the task ({{$.pipeline_job_name}},
	// {{$.pipeline_task_name}}).
	Run  string `json:"run"`
	Task string `json:"task"`
	// Inputs are the task's inputs that have a value or may have one; an
	// optional input with none is absent (IfPresent takes its Else).
	Inputs ExecutorInputs `json:"inputs"`
	// Outputs are all of the component's outputs.
	Outputs ExecutorOutputs `json:"outputs"`
}

// ExecutorInputs are a task's inputs, by the component's input names.
type ExecutorInputs struct {
	Parameters map[string]InputParameter `json:"parameters,omitempty"`
	Artifacts  map[string]InputArtifact  `json:"artifacts,omitempty"`
}

// InputParameter is one input parameter: a value known at conversion
// (Files empty) or the files of upstream output parameters.
type InputParameter struct {
	// Type is the component's parameterType for the input (STRING, ...).
	Type string `json:"type"`
	// Value is the value, when it was known at conversion: a pipeline
	// parameter, a constant, a static loop's item. Typed as Coerce gives it.
	Value any `json:"value,omitempty"`
	// Files are upstream output parameters' files, when the value comes
	// from upstream tasks. Without Collect the first file that exists is the
	// value (one file, or a dsl.OneOf's branches in order); with Collect the
	// value is the list of the values of every file that exists, in order
	// (dsl.Collected over a loop's iterations). A file holds the value as the
	// producer wrote it: a STRING as its text, others as JSON.
	Files   []ParameterFile `json:"files,omitempty"`
	Collect bool            `json:"collect,omitempty"`
	// Groups, with Collect, split the files into consecutive groups of
	// these sizes, and the value is a list of lists, one per group: a
	// dsl.Collected over a loop inside a loop.
	Groups []int `json:"groups,omitempty"`
}

// ParameterFile is one upstream output parameter's file and its type.
type ParameterFile struct {
	Path string `json:"path"`
	Type string `json:"type"`
}

// InputArtifact is one input artifact: the paths where its upstream
// artifacts are mounted.
type InputArtifact struct {
	// Type is the artifact's schemaTitle, e.g. system.Dataset.
	Type string `json:"type"`
	// Paths: without List the first that exists is the artifact (one path,
	// or a dsl.OneOf's branches in order); with List every one that exists,
	// in order (an input of isArtifactList, e.g. dsl.Collected).
	Paths []string `json:"paths"`
	List  bool     `json:"list,omitempty"`
}

// ExecutorOutputs are a component's outputs.
type ExecutorOutputs struct {
	Parameters map[string]OutputParameter `json:"parameters,omitempty"`
	Artifacts  map[string]OutputArtifact  `json:"artifacts,omitempty"`
}

// OutputParameter is one output parameter and the file the component (or
// the launcher, from the executor output) writes its value to.
type OutputParameter struct {
	Type string `json:"type"`
	Path string `json:"path"`
}

// OutputArtifact is one output artifact and where it is written.
type OutputArtifact struct {
	Type string `json:"type"`
	Path string `json:"path"`
}
