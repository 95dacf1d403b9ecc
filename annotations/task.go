package annotations

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/resource"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// Input is one declared input: the named output of an upstream task.
type Input struct {
	Name   string
	Task   string
	Output string
}

// Output is one declared output artifact.
type Output struct {
	Name string
	Type string
}

// GroupWait is one entry of sluice.dev/after-group: every task of the group,
// of which there are Size.
type GroupWait struct {
	Group string
	Size  int
}

// String is the entry as sluice.dev/after-group spells it: group=size.
func (w GroupWait) String() string { return w.Group + "=" + strconv.Itoa(w.Size) }

// MaxGroupSize is the largest group a task may wait for.
const MaxGroupSize = 100000

// Task is a Job or Pod's sluice keys, parsed and defaulted.
type Task struct {
	Namespace string
	Pipeline  string
	Run       string
	Name      string
	// Group is the group the task belongs to, if any.
	Group string
	// After holds the explicit sluice.dev/after entries, in the order given.
	After []string
	// AfterGroups are the groups the task waits for, in the order given.
	AfterGroups []GroupWait
	Inputs      []Input
	Outputs     []Output
	When        string
	Trigger     string
	// StorageClass and ArtifactSize override the run volume's defaults.
	StorageClass string
	ArtifactSize *resource.Quantity
	// StartDeadline overrides the controller's start deadline when set; 0
	// means never.
	StartDeadline *time.Duration
	// Attempt is the generation of the task's object sluice.dev/attempt
	// gives; 0 (unset) is the first.
	Attempt int
}

// Upstreams returns every task this one waits for by name: the after list
// and the producers of its inputs, sorted and without repeats. The members
// of the groups it waits for (AfterGroups) come on top.
func (t *Task) Upstreams() []string {
	ups := slices.Clone(t.After)
	for _, in := range t.Inputs {
		ups = append(ups, in.Task)
	}
	slices.Sort(ups)
	return slices.Compact(ups)
}

// KeyNaming returns the key by which the task names up as its upstream:
// sluice.dev/after, else sluice.dev/inputs, else sluice.dev/after-group
// (up is then a member of a group it waits for).
func (t *Task) KeyNaming(up string) string {
	switch {
	case slices.Contains(t.After, up):
		return AfterAnnotation
	case slices.ContainsFunc(t.Inputs, func(in Input) bool { return in.Task == up }):
		return InputsAnnotation
	}
	return AfterGroupAnnotation
}

// WaitsForGroup returns the size of the named group when the task waits for
// it, else 0.
func (t *Task) WaitsForGroup(group string) int {
	for _, w := range t.AfterGroups {
		if w.Group == group {
			return w.Size
		}
	}
	return 0
}

// Held reports whether the task must wait before it may start.
func (t *Task) Held() bool {
	return len(t.After) > 0 || len(t.AfterGroups) > 0 || len(t.Inputs) > 0 || t.When != ""
}

// InitialPhase is the phase a task is created in (the mutating webhook
// labels it so): Waiting while it is held, else Running.
func (t *Task) InitialPhase() Phase {
	if t.Held() {
		return PhaseWaiting
	}
	return PhaseRunning
}

// RunKey identifies a run across namespaces.
func (t *Task) RunKey() string { return t.Namespace + "/" + t.Run }

// HasOutput reports whether the task declares the named output.
func (t *Task) HasOutput(name string) bool {
	return slices.ContainsFunc(t.Outputs, func(o Output) bool { return o.Name == name })
}

var (
	labelsPath      = field.NewPath("metadata", "labels")
	annotationsPath = field.NewPath("metadata", "annotations")

	// artifactName is the form of an input or output name: it becomes a
	// directory and, upper-cased, an environment variable name.
	artifactName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_-]*$`)
	typeName     = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_.]*$`)
)

// DefaultOutputType is the type of an output declared without one.
const DefaultOutputType = "Artifact"

// IsSluiceObject reports whether the object opted in with the pipeline label.
func IsSluiceObject(obj metav1.Object) bool {
	_, ok := obj.GetLabels()[PipelineLabel]
	return ok
}

// Parse reads the sluice keys of obj into a Task, applying defaults (run =
// pipeline, task = object name). Every problem is returned at once, each
// naming the key, the value and what was expected.
func Parse(obj metav1.Object) (*Task, field.ErrorList) {
	labels, annots := obj.GetLabels(), obj.GetAnnotations()
	t := &Task{Namespace: obj.GetNamespace()}
	var errs field.ErrorList

	errs = append(errs, unknownKeys(labels, labelsPath, userLabels, ControllerLabels)...)
	errs = append(errs, unknownKeys(annots, annotationsPath, userAnnotations, ControllerAnnotations)...)

	t.Pipeline = labels[PipelineLabel]
	errs = append(errs, nameErrors(labelsPath.Key(PipelineLabel), t.Pipeline, "the pipeline name")...)

	t.Run = labels[RunLabel]
	if t.Run == "" {
		t.Run = t.Pipeline
	} else {
		errs = append(errs, nameErrors(labelsPath.Key(RunLabel), t.Run, "the run id")...)
	}

	t.Name = labels[TaskLabel]
	switch {
	case t.Name != "":
		errs = append(errs, nameErrors(labelsPath.Key(TaskLabel), t.Name, "the task name")...)
	case obj.GetName() != "":
		t.Name = obj.GetName()
		if msgs := validation.IsDNS1123Label(t.Name); len(msgs) > 0 {
			errs = append(errs, field.Invalid(labelsPath.Key(TaskLabel), t.Name,
				"the object's name is the default task name and must then be a DNS-1123 label; set "+TaskLabel+" to one: "+strings.Join(msgs, "; ")))
		}
	default:
		errs = append(errs, field.Required(labelsPath.Key(TaskLabel),
			"an object created with generateName has no name to default the task name from; set "+TaskLabel))
	}

	if v, ok := labels[GroupLabel]; ok {
		t.Group = v
		errs = append(errs, nameErrors(labelsPath.Key(GroupLabel), v, "the group name")...)
	}

	var afterErrs, groupErrs field.ErrorList
	t.After, afterErrs = parseAfter(annotationsPath.Key(AfterAnnotation), annots[AfterAnnotation])
	errs = append(errs, afterErrs...)
	t.AfterGroups, groupErrs = parseAfterGroups(annotationsPath.Key(AfterGroupAnnotation), annots[AfterGroupAnnotation])
	errs = append(errs, groupErrs...)
	if t.Group != "" && t.WaitsForGroup(t.Group) > 0 {
		errs = append(errs, field.Invalid(annotationsPath.Key(AfterGroupAnnotation), annots[AfterGroupAnnotation],
			fmt.Sprintf("a task cannot wait for its own group %q (it is labelled %s=%s)", t.Group, GroupLabel, t.Group)))
	}
	errs = append(errs, annotationsSizeErrors(annots, len(t.After))...)
	var inErrs, outErrs field.ErrorList
	t.Inputs, inErrs = parseInputs(annotationsPath.Key(InputsAnnotation), annots[InputsAnnotation])
	errs = append(errs, inErrs...)
	t.Outputs, outErrs = parseOutputs(annotationsPath.Key(OutputsAnnotation), annots[OutputsAnnotation])
	errs = append(errs, outErrs...)

	if t.Name != "" && slices.Contains(t.Upstreams(), t.Name) {
		errs = append(errs, field.Invalid(annotationsPath.Key(AfterAnnotation), t.Name,
			"a task cannot depend on itself (through "+AfterAnnotation+" or "+InputsAnnotation+")"))
	}

	t.When = strings.TrimSpace(annots[WhenAnnotation])
	if v, ok := annots[WhenAnnotation]; ok && t.When == "" {
		errs = append(errs, field.Invalid(annotationsPath.Key(WhenAnnotation), v, "expected a CEL condition, e.g. tasks.evaluate.results.accuracy >= 0.9"))
	}
	t.Trigger = strings.TrimSpace(annots[TriggerAnnotation])
	switch t.Trigger {
	case "":
		t.Trigger = TriggerAllSucceeded
	case TriggerAllSucceeded, TriggerAllDone, TriggerAnyFailed, TriggerNoneFailed:
	default:
		errs = append(errs, field.NotSupported(annotationsPath.Key(TriggerAnnotation), annots[TriggerAnnotation],
			[]string{TriggerAllSucceeded, TriggerAllDone, TriggerAnyFailed, TriggerNoneFailed}))
	}
	t.StorageClass = annots[StorageClassAnnotation]
	if t.StorageClass != "" {
		if msgs := validation.IsDNS1123Subdomain(t.StorageClass); len(msgs) > 0 {
			errs = append(errs, field.Invalid(annotationsPath.Key(StorageClassAnnotation), t.StorageClass, "expected a StorageClass name: "+strings.Join(msgs, "; ")))
		}
	}
	if v, ok := annots[ArtifactSizeAnnotation]; ok {
		q, err := resource.ParseQuantity(v)
		if err != nil || q.Sign() <= 0 {
			errs = append(errs, field.Invalid(annotationsPath.Key(ArtifactSizeAnnotation), v, "expected a positive storage quantity, e.g. 10Gi"))
		} else {
			t.ArtifactSize = &q
		}
	}
	if v, ok := annots[StartDeadlineAnnotation]; ok {
		d, err := time.ParseDuration(strings.TrimSpace(v))
		if err != nil || d < 0 {
			errs = append(errs, field.Invalid(annotationsPath.Key(StartDeadlineAnnotation), v, `expected a duration such as 10m or 1h30m, or "0" for no deadline`))
		} else {
			t.StartDeadline = &d
		}
	}
	if v, ok := annots[AttemptAnnotation]; ok {
		n, err := strconv.Atoi(strings.TrimSpace(v))
		if err != nil || n < 1 {
			errs = append(errs, field.Invalid(annotationsPath.Key(AttemptAnnotation), v, "expected a positive integer: the generation of the task's object, which kubectl sluice retry counts"))
		} else {
			t.Attempt = n
		}
	}
	return t, errs
}

// NeedsVolume reports whether the task reads or writes artifacts.
func (t *Task) NeedsVolume() bool { return len(t.Inputs) > 0 || len(t.Outputs) > 0 }

// nameErrors checks a value used as a task, run or pipeline name: these end
// up in object names and paths, so they must be DNS-1123 labels.
func nameErrors(path *field.Path, value, what string) field.ErrorList {
	if value == "" {
		return field.ErrorList{field.Required(path, what+" must not be empty")}
	}
	if msgs := validation.IsDNS1123Label(value); len(msgs) > 0 {
		return field.ErrorList{field.Invalid(path, value, what+" must be a DNS-1123 label: "+strings.Join(msgs, "; "))}
	}
	return nil
}

// splitList splits a comma list, trimming blanks; empty items are reported.
func splitList(path *field.Path, value, example string) ([]string, field.ErrorList) {
	if strings.TrimSpace(value) == "" {
		return nil, nil
	}
	var items []string
	var errs field.ErrorList
	for i, item := range strings.Split(value, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			errs = append(errs, field.Invalid(path, value, fmt.Sprintf("item %d is empty; expected a comma list like %q", i+1, example)))
			continue
		}
		items = append(items, item)
	}
	return items, errs
}

func parseAfter(path *field.Path, value string) ([]string, field.ErrorList) {
	items, errs := splitList(path, value, "preprocess, validate")
	var after []string
	for _, item := range items {
		if msgs := validation.IsDNS1123Label(item); len(msgs) > 0 {
			errs = append(errs, field.Invalid(path, value, fmt.Sprintf("%q is not a task name (a DNS-1123 label): %s", item, strings.Join(msgs, "; "))))
			continue
		}
		if slices.Contains(after, item) {
			errs = append(errs, field.Duplicate(path, item))
			continue
		}
		after = append(after, item)
	}
	return after, errs
}

func parseAfterGroups(path *field.Path, value string) ([]GroupWait, field.ErrorList) {
	const example = "shards=1000"
	items, errs := splitList(path, value, example)
	var waits []GroupWait
	for _, item := range items {
		group, size, ok := strings.Cut(item, "=")
		group, size = strings.TrimSpace(group), strings.TrimSpace(size)
		if !ok {
			errs = append(errs, field.Invalid(path, value, fmt.Sprintf("%q: expected group=size, the group's name and how many tasks it has, e.g. %q", item, example)))
			continue
		}
		if msgs := validation.IsDNS1123Label(group); len(msgs) > 0 {
			errs = append(errs, field.Invalid(path, value, fmt.Sprintf("%q: %q is not a group name (a DNS-1123 label): %s", item, group, strings.Join(msgs, "; "))))
			continue
		}
		n, err := strconv.Atoi(size)
		if err != nil || n < 1 || n > MaxGroupSize {
			errs = append(errs, field.Invalid(path, value, fmt.Sprintf("%q: the size of group %s must be a whole number from 1 to %d: the number of tasks labelled %s=%s", item, group, MaxGroupSize, GroupLabel, group)))
			continue
		}
		if slices.ContainsFunc(waits, func(w GroupWait) bool { return w.Group == group }) {
			errs = append(errs, field.Duplicate(path, group))
			continue
		}
		waits = append(waits, GroupWait{Group: group, Size: n})
	}
	return waits, errs
}

// annotationsSizeErrors reports annotations larger than the API server
// accepts, when a long sluice.dev/after is the reason, with the way out.
func annotationsSizeErrors(annots map[string]string, after int) field.ErrorList {
	total := 0
	for k, v := range annots {
		total += len(k) + len(v)
	}
	if total <= apivalidation.TotalAnnotationSizeLimitB || len(annots[AfterAnnotation]) < total/2 {
		return nil
	}
	return field.ErrorList{field.Invalid(annotationsPath.Key(AfterAnnotation),
		fmt.Sprintf("%d task names, %d KiB", after, (len(annots[AfterAnnotation])+1023)/1024),
		fmt.Sprintf("an object's annotations hold at most %d KiB in all; wait for that many tasks as a group instead: label each %s=NAME and set %s: NAME=%d",
			apivalidation.TotalAnnotationSizeLimitB/1024, GroupLabel, AfterGroupAnnotation, after))}
}

func parseInputs(path *field.Path, value string) ([]Input, field.ErrorList) {
	const example = "dataset=preprocess.processed_data"
	items, errs := splitList(path, value, example)
	var inputs []Input
	envs := map[string]string{}
	for _, item := range items {
		name, ref, ok := strings.Cut(item, "=")
		task, output, ok2 := strings.Cut(ref, ".")
		name, task, output = strings.TrimSpace(name), strings.TrimSpace(task), strings.TrimSpace(output)
		if !ok || !ok2 {
			errs = append(errs, field.Invalid(path, value, fmt.Sprintf("%q: expected name=task.output, e.g. %q", item, example)))
			continue
		}
		if e := artifactErrors(path, value, "input", name); e != nil {
			errs = append(errs, e)
			continue
		}
		if msgs := validation.IsDNS1123Label(task); len(msgs) > 0 {
			errs = append(errs, field.Invalid(path, value, fmt.Sprintf("%q: %q is not a task name (a DNS-1123 label): %s", item, task, strings.Join(msgs, "; "))))
			continue
		}
		if e := artifactErrors(path, value, "output", output); e != nil {
			errs = append(errs, e)
			continue
		}
		if prev, dup := envs[EnvName(name)]; dup {
			errs = append(errs, field.Invalid(path, value, fmt.Sprintf("inputs %q and %q would both be %s", prev, name, InputEnv(name))))
			continue
		}
		envs[EnvName(name)] = name
		inputs = append(inputs, Input{Name: name, Task: task, Output: output})
	}
	return inputs, errs
}

func parseOutputs(path *field.Path, value string) ([]Output, field.ErrorList) {
	items, errs := splitList(path, value, "model:Model, metrics:Metrics")
	var outputs []Output
	envs := map[string]string{}
	for _, item := range items {
		name, typ, typed := strings.Cut(item, ":")
		name, typ = strings.TrimSpace(name), strings.TrimSpace(typ)
		if e := artifactErrors(path, value, "output", name); e != nil {
			errs = append(errs, e)
			continue
		}
		if !typed {
			typ = DefaultOutputType
		} else if !typeName.MatchString(typ) {
			errs = append(errs, field.Invalid(path, value, fmt.Sprintf("%q: type %q must be a word such as Dataset, Model, Metrics or Artifact", item, typ)))
			continue
		}
		if prev, dup := envs[EnvName(name)]; dup {
			errs = append(errs, field.Invalid(path, value, fmt.Sprintf("outputs %q and %q would both be %s", prev, name, OutputEnv(name))))
			continue
		}
		envs[EnvName(name)] = name
		outputs = append(outputs, Output{Name: name, Type: typ})
	}
	return outputs, errs
}

func artifactErrors(path *field.Path, value, what, name string) *field.Error {
	if len(name) > 63 || !artifactName.MatchString(name) {
		return field.Invalid(path, value, fmt.Sprintf("%s name %q must start with a letter or '_' and hold only letters, digits, '_' and '-' (at most 63)", what, name))
	}
	return nil
}

// EnvName turns an artifact name into the tail of its environment variable.
func EnvName(name string) string {
	return strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
}

// InputEnv is the environment variable holding the path of an input.
func InputEnv(name string) string { return "SLUICE_INPUT_" + EnvName(name) }

// OutputEnv is the environment variable holding the path of an output.
func OutputEnv(name string) string { return "SLUICE_OUTPUT_" + EnvName(name) }

// RunVolumeName is the PersistentVolumeClaim holding a run's artifacts.
func RunVolumeName(run string) string { return "sluice-" + run }
