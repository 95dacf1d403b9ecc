// Package annotations is the sluice API: the sluice.dev/ labels and
// annotations a user puts on Jobs and Pods, their parsing and validation, and
// the task graph of a run. It is pure Go so the webhook, the controller and
// the kubectl plugin share one definition.
package annotations

// Prefix is the key prefix of every sluice label and annotation.
const Prefix = "sluice.dev/"

// Labels.
const (
	// PipelineLabel opts an object in; its value names the pipeline.
	PipelineLabel = Prefix + "pipeline"
	// RunLabel names one execution of a pipeline; defaults to the pipeline name.
	RunLabel = Prefix + "run"
	// TaskLabel names the task within its run; defaults to the object's name.
	TaskLabel = Prefix + "task"
	// GroupLabel puts the task in a named group of its run, which a task
	// can wait for as a whole with AfterGroupAnnotation.
	GroupLabel = Prefix + "group"
	// PhaseLabel is owned by the controller and holds the task's Phase.
	PhaseLabel = Prefix + "phase"
)

// Annotations.
const (
	// AfterAnnotation is a comma list of upstream tasks that must finish first.
	AfterAnnotation = Prefix + "after"
	// AfterGroupAnnotation is "group=size, ...": the task waits for every
	// task labelled with that group, and the size says how many there are.
	AfterGroupAnnotation = Prefix + "after-group"
	// InputsAnnotation is "name=task.output, ...". Each input implies after: task.
	InputsAnnotation = Prefix + "inputs"
	// OutputsAnnotation is "name[:Type], ...".
	OutputsAnnotation = Prefix + "outputs"
	// WhenAnnotation is a CEL condition over upstream results.
	WhenAnnotation = Prefix + "when"
	// TriggerAnnotation selects which upstream outcomes release the task.
	TriggerAnnotation = Prefix + "trigger"
	// GPUAnnotation is the number of GPUs the step needs.
	GPUAnnotation = Prefix + "gpu"
	// AcceleratorAnnotation is the GPU type the step needs.
	AcceleratorAnnotation = Prefix + "accelerator"
	// ContainerAnnotation names the step's main container (default: the first).
	ContainerAnnotation = Prefix + "container"
	// CPUAnnotation and MemoryAnnotation set the main container's requests and limits.
	CPUAnnotation    = Prefix + "cpu"
	MemoryAnnotation = Prefix + "memory"
	// StorageClassAnnotation overrides the storage class of the run's artifact volume.
	StorageClassAnnotation = Prefix + "storage-class"
	// ArtifactSizeAnnotation overrides the size of the run's artifact volume.
	ArtifactSizeAnnotation = Prefix + "artifact-size"
	// StartDeadlineAnnotation overrides how long a released step's pod may
	// be unable to start (unschedulable, its image not pulled, ...) before
	// the task fails; a Go duration, "0" for never.
	StartDeadlineAnnotation = Prefix + "start-deadline"
	// AttemptAnnotation counts the generations of a task's object: absent
	// on the first, 2 on the object `kubectl sluice retry` created in place
	// of a failed one, and so on.
	AttemptAnnotation = Prefix + "attempt"
	// ResultsAnnotation is owned by the controller: JSON of the task's output parameters.
	ResultsAnnotation = Prefix + "results"
	// ReasonAnnotation is owned by the controller: one line saying why the phase is what it is.
	ReasonAnnotation = Prefix + "reason"
	// RunOutcomeAnnotation is owned by the controller: set on the task that
	// finished last when the whole run ended (Succeeded or Failed).
	RunOutcomeAnnotation = Prefix + "run-outcome"
	// BlockedSinceAnnotation is owned by the controller: since when (RFC
	// 3339) the released task's pod has been unable to start, kept while it
	// is, so that the start deadline survives a restart of the controller.
	BlockedSinceAnnotation = Prefix + "blocked-since"
	// ActiveDeadlineAnnotation is owned by the controller: the step's own
	// activeDeadlineSeconds ("" when it had none) from before the
	// controller cut it to stop a step that failed its start deadline, so
	// that a retry restores it.
	ActiveDeadlineAnnotation = Prefix + "active-deadline"
)

// UpstreamGate is the scheduling gate that holds a bare Pod until its
// upstream tasks are done.
const UpstreamGate = Prefix + "upstream"

// ResultsFinalizer keeps a step's pod until the controller has read what it
// left (its termination message) and recorded the task's outcome: a pod
// deleted in the meantime, by a user or by pod garbage collection, would
// take the results with it. The webhook adds it to every step's pods; the
// controller removes it once the outcome and results are recorded.
const ResultsFinalizer = Prefix + "results"

// Paths and names the webhook injects into every step.
const (
	// ArtifactVolume is the name of the pod volume holding the run's artifacts.
	ArtifactVolume = "sluice-artifacts"
	// OutputsDir is where each declared output is mounted read-write.
	OutputsDir = "/sluice/outputs"
	// InputsDir is where each declared input is mounted read-only.
	InputsDir = "/sluice/inputs"
)

// Phase is the state of one task, kept in its PhaseLabel.
type Phase string

// The phases of a task.
const (
	PhaseWaiting        Phase = "Waiting"
	PhaseRunning        Phase = "Running"
	PhaseSucceeded      Phase = "Succeeded"
	PhaseFailed         Phase = "Failed"
	PhaseSkipped        Phase = "Skipped"
	PhaseUpstreamFailed Phase = "UpstreamFailed"
)

// Finished reports whether the phase is final: the task will never run (again).
func (p Phase) Finished() bool {
	switch p {
	case PhaseSucceeded, PhaseFailed, PhaseSkipped, PhaseUpstreamFailed:
		return true
	}
	return false
}

// Trigger values.
const (
	TriggerAllSucceeded = "all-succeeded"
	TriggerAllDone      = "all-done"
	TriggerAnyFailed    = "any-failed"
	// TriggerNoneFailed releases a task once every upstream finished
	// without a failure, Skipped ones included: what a step after an
	// optional branch needs (Airflow's none_failed; KFP's step after a
	// dsl.If that was not taken).
	TriggerNoneFailed = "none-failed"
)

// userKeys are the keys a user may set, labels and annotations alike; the
// controller-owned keys are listed apart so the validator can protect them.
var userLabels = []string{PipelineLabel, RunLabel, TaskLabel, GroupLabel}

var userAnnotations = []string{
	AfterAnnotation, AfterGroupAnnotation, InputsAnnotation, OutputsAnnotation, WhenAnnotation, TriggerAnnotation,
	GPUAnnotation, AcceleratorAnnotation, ContainerAnnotation, CPUAnnotation, MemoryAnnotation,
	StorageClassAnnotation, ArtifactSizeAnnotation, StartDeadlineAnnotation, AttemptAnnotation,
}

// ControllerLabels and ControllerAnnotations are written only by the controller.
var (
	ControllerLabels      = []string{PhaseLabel}
	ControllerAnnotations = []string{ResultsAnnotation, ReasonAnnotation, RunOutcomeAnnotation, BlockedSinceAnnotation, ActiveDeadlineAnnotation}
)

// GraphKeys are the keys that define a task's place in its run's graph; they
// are immutable once the object exists.
var GraphKeys = []string{
	PipelineLabel, RunLabel, TaskLabel, GroupLabel,
	AfterAnnotation, AfterGroupAnnotation, InputsAnnotation, OutputsAnnotation, WhenAnnotation, TriggerAnnotation,
}
