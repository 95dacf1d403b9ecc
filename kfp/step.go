package kfp

import (
	"encoding/json"
	"fmt"
	"maps"
	"path"
	"slices"
	"strconv"
	"strings"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/sluice-dev/sluice/annotations"
	"github.com/sluice-dev/sluice/kfp/task"
)

// MaxSteps bounds the Jobs of one conversion: loops unrolled at import
// could otherwise make any number of them.
const MaxSteps = 10000

// mainContainer is the name of a step's container.
const mainContainer = "main"

// containerStep makes the step of one container task instance.
func (c *converter) containerStep(name, path string, t *TaskSpec, comp *ComponentSpec, sc *scope,
	params map[string]*param, arts map[string]*artifact, after []*step, conds []*condition, allDone bool) (*outputs, error) {
	exe := c.p.Spec.DeploymentSpec.Executors[comp.ExecutorLabel]
	switch {
	case exe == nil:
		return nil, fmt.Errorf("task %s: executor %q is not in the pipeline's deploymentSpec", path, comp.ExecutorLabel)
	case exe.Importer != nil:
		return nil, fmt.Errorf("task %s: dsl.importer is not supported: sluice has no artifact store to import from; produce the artifact with a task instead", path)
	case exe.Container == nil:
		return nil, fmt.Errorf("task %s: executor %s has no container", path, comp.ExecutorLabel)
	}
	if strings.HasPrefix(exe.Container.Image, "argostub/") {
		return nil, fmt.Errorf("task %s: %s (kfp-kubernetes CreatePVC/DeletePVC) is not supported: sluice gives every run its own volume; mount an existing claim with kubernetes.mount_pvc", path, exe.Container.Image)
	}
	if len(c.steps) == MaxSteps {
		return nil, fmt.Errorf("task %s: the pipeline unrolls to more than %d tasks; sluice runs at most that many in one run from an import", path, MaxSteps)
	}
	s := &step{
		order: len(c.steps), path: path, names: append(slices.Clone(sc.names), name), indices: sc.indices,
		task: t, component: t.ComponentRef.Name, comp: comp, exec: exe.Container, label: comp.ExecutorLabel,
		params: params, arts: arts, dagParams: sc.params, after: after, conds: conds, allDone: allDone,
	}
	// KFP runs a task after a condition that was not taken, and a dsl.OneOf
	// consumer after the branches that were not: Skipped upstreams count as
	// done for it.
	for _, u := range after {
		if !condsWithin(u.conds, conds) {
			s.noneFailed = true
		}
	}
	for _, p := range params {
		if len(p.refs) > 1 && !p.collect {
			s.noneFailed = true
		}
	}
	for _, a := range arts {
		if len(a.refs) > 1 && !a.list {
			s.noneFailed = true
		}
	}
	for _, cond := range conds {
		s.after = append(s.after, cond.producers...)
	}
	s.after = uniqueSteps(s.after)
	c.steps = append(c.steps, s)

	out := &outputs{steps: []*step{s}, sinks: []*step{s}, params: map[string]*param{}, arts: map[string]*artifact{}}
	if od := comp.OutputDefinitions; od != nil {
		for key, def := range od.Parameters {
			out.params[key] = &param{typ: def.ParameterType, refs: []outRef{{step: s, key: key, typ: def.ParameterType}}}
		}
		for key, def := range od.Artifacts {
			out.arts[key] = &artifact{typ: def.ArtifactType.SchemaTitle, refs: []outRef{{step: s, key: key, typ: def.ArtifactType.SchemaTitle}}, list: def.IsArtifactList}
		}
	}
	return out, nil
}

// condsWithin reports whether every condition of up also holds for a task
// under conds: then up is Skipped only when the task is too.
func condsWithin(up, conds []*condition) bool {
	for _, c := range up {
		if !slices.Contains(conds, c) {
			return false
		}
	}
	return true
}

// job writes a step as a labelled Job.
func (c *converter) job(s *step) (*batchv1.Job, Explained, error) {
	exe, inputs, err := c.executor(s)
	if err != nil {
		return nil, Explained{}, err
	}
	launcher := needsLauncher(exe)
	pod, err := c.podSpec(s, exe, launcher)
	if err != nil {
		return nil, Explained{}, err
	}
	var backoff int32
	if rp := s.task.RetryPolicy; rp != nil && rp.MaxRetryCount > 0 {
		backoff = int32(rp.MaxRetryCount)
		if rp.BackoffDuration != "" || rp.BackoffFactor != 0 || rp.BackoffMaxDuration != "" {
			c.warn("task %s: retries %d times with the Job controller's own backoff (10 s doubling, at most 6 min), not KFP's backoff settings", s.path, rp.MaxRetryCount)
		}
	}
	job := &batchv1.Job{
		TypeMeta: metav1.TypeMeta{APIVersion: "batch/v1", Kind: "Job"},
		ObjectMeta: metav1.ObjectMeta{
			Name:      DNSName(c.opts.Run + "-" + s.name),
			Namespace: c.opts.Namespace,
			Labels: map[string]string{
				annotations.PipelineLabel: c.pipeline,
				annotations.RunLabel:      c.opts.Run,
				annotations.TaskLabel:     s.name,
			},
			Annotations: map[string]string{
				TaskAnnotation:      s.path,
				ComponentAnnotation: s.component,
				PipelineAnnotation:  c.p.Spec.PipelineInfo.Name,
			},
		},
		Spec: batchv1.JobSpec{
			BackoffLimit: &backoff,
			Template:     corev1.PodTemplateSpec{Spec: pod},
		},
	}
	if err := c.resources(s, job, exe); err != nil {
		return nil, Explained{}, err
	}
	if err := c.platform(s, job); err != nil {
		return nil, Explained{}, err
	}
	ex := graphKeys(s, inputs, job.Annotations)
	ex.Launcher = launcher
	return job, ex, nil
}

// podSpec is the step's pod: its container, with the command written out
// or run by the launcher, which an init container delivers.
func (c *converter) podSpec(s *step, exe *task.Executor, launcher bool) (corev1.PodSpec, error) {
	ctr := corev1.Container{Name: mainContainer, Image: s.exec.Image}
	if to, ok := c.opts.ImageMap[ctr.Image]; ok {
		ctr.Image = to
	}
	for _, e := range s.exec.Env {
		ctr.Env = append(ctr.Env, corev1.EnvVar{Name: e.Name, Value: e.Value})
	}
	if !launcher {
		res, err := task.NewResolver(exe, nil)
		if err != nil {
			return corev1.PodSpec{}, err
		}
		if ctr.Command, err = task.ExpandAll(exe.Command, res); err != nil {
			return corev1.PodSpec{}, err
		}
		return corev1.PodSpec{RestartPolicy: corev1.RestartPolicyNever, Containers: []corev1.Container{ctr}}, nil
	}
	spec, err := json.Marshal(exe)
	if err != nil {
		return corev1.PodSpec{}, err
	}
	mount := corev1.VolumeMount{Name: task.LauncherVolume, MountPath: task.LauncherDir}
	ctr.Command = []string{task.LauncherPath}
	ctr.Env = append(ctr.Env, corev1.EnvVar{Name: task.ExecutorEnv, Value: string(spec)})
	ctr.VolumeMounts = append(ctr.VolumeMounts, mount)
	return corev1.PodSpec{
		RestartPolicy: corev1.RestartPolicyNever,
		InitContainers: []corev1.Container{{
			Name:         "kfp-launcher",
			Image:        c.opts.LauncherImage,
			Command:      []string{"/usr/local/bin/kfp-launcher", "install", task.LauncherPath},
			VolumeMounts: []corev1.VolumeMount{mount},
		}},
		Containers: []corev1.Container{ctr},
		Volumes:    []corev1.Volume{{Name: task.LauncherVolume, VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}},
	}, nil
}

// graphKeys writes the step's sluice keys of the run's graph (after,
// inputs, outputs, trigger, when) into annots, and says what they are.
func graphKeys(s *step, inputs []sluiceInput, annots map[string]string) Explained {
	ex := Explained{KFPTask: s.path, Task: s.name}
	var after []string
	producers := map[string]bool{}
	for _, in := range inputs {
		producers[in.task] = true
	}
	for _, u := range s.after {
		ex.Upstreams = append(ex.Upstreams, u.name)
		if !producers[u.name] {
			after = append(after, u.name)
		}
	}
	slices.Sort(ex.Upstreams)
	slices.Sort(after)
	if len(after) > 0 {
		annots[annotations.AfterAnnotation] = strings.Join(after, ",")
	}
	if len(inputs) > 0 {
		var list []string
		for _, in := range inputs {
			list = append(list, in.name+"="+in.task+"."+in.output)
		}
		annots[annotations.InputsAnnotation] = strings.Join(list, ",")
	}
	if outs := outputList(s); outs != "" {
		annots[annotations.OutputsAnnotation] = outs
	}
	switch {
	case s.allDone:
		ex.Trigger = annotations.TriggerAllDone
	case s.noneFailed:
		ex.Trigger = annotations.TriggerNoneFailed
	}
	if ex.Trigger != "" {
		annots[annotations.TriggerAnnotation] = ex.Trigger
	}
	if w := s.when(); w != "" {
		ex.When = w
		annots[annotations.WhenAnnotation] = w
	}
	return ex
}

// sluiceInput is one sluice input of a step: an upstream's output mounted
// at annotations.InputsDir/name.
type sluiceInput struct{ name, task, output string }

// executor describes the step for the launcher (or for substitution at
// import) and gives the sluice inputs that mount what it reads.
func (c *converter) executor(s *step) (*task.Executor, []sluiceInput, error) {
	exe := &task.Executor{
		Command: slices.Concat(s.exec.Command, s.exec.Args),
		Run:     c.opts.Run, Task: s.name,
		Inputs:  task.ExecutorInputs{Parameters: map[string]task.InputParameter{}, Artifacts: map[string]task.InputArtifact{}},
		Outputs: task.ExecutorOutputs{Parameters: map[string]task.OutputParameter{}, Artifacts: map[string]task.OutputArtifact{}},
	}
	var inputs []sluiceInput
	// mount gives an input's i-th upstream a sluice input and its path.
	mount := func(in string, i, n int, r outRef) string {
		name := in
		if n > 1 {
			name = in + "-" + strconv.Itoa(i)
		}
		inputs = append(inputs, sluiceInput{name: name, task: r.step.name, output: r.key})
		return path.Join(annotations.InputsDir, name, r.key)
	}
	for _, name := range slices.Sorted(maps.Keys(s.params)) {
		p := s.params[name]
		if p.static {
			exe.Inputs.Parameters[name] = task.InputParameter{Type: p.typ, Value: p.value}
			continue
		}
		ip := task.InputParameter{Type: p.typ, Collect: p.collect, Groups: p.groups}
		for i, r := range p.refs {
			ip.Files = append(ip.Files, task.ParameterFile{Path: mount(name, i, len(p.refs), r), Type: r.typ})
		}
		exe.Inputs.Parameters[name] = ip
	}
	for _, name := range slices.Sorted(maps.Keys(s.arts)) {
		a := s.arts[name]
		ia := task.InputArtifact{Type: a.typ, List: a.list}
		for i, r := range a.refs {
			ia.Paths = append(ia.Paths, mount(name, i, len(a.refs), r))
		}
		exe.Inputs.Artifacts[name] = ia
	}
	if od := s.comp.OutputDefinitions; od != nil {
		for name, def := range od.Parameters {
			exe.Outputs.Parameters[name] = task.OutputParameter{Type: def.ParameterType, Path: outputPath(name)}
		}
		for name, def := range od.Artifacts {
			exe.Outputs.Artifacts[name] = task.OutputArtifact{Type: def.ArtifactType.SchemaTitle, Path: outputPath(name)}
		}
	}
	return exe, inputs, nil
}

// outputPath is where a step writes its output: a file named after it in
// the output's own directory on the run volume.
func outputPath(name string) string { return path.Join(annotations.OutputsDir, name, name) }

// outputList is the step's sluice.dev/outputs: every output of its
// component, parameters too (their files are what consumers read).
func outputList(s *step) string {
	od := s.comp.OutputDefinitions
	if od == nil {
		return ""
	}
	var list []string
	for _, name := range slices.Sorted(maps.Keys(od.Parameters)) {
		list = append(list, name+":Parameter")
	}
	for _, name := range slices.Sorted(maps.Keys(od.Artifacts)) {
		list = append(list, name+":"+artifactTypeName(od.Artifacts[name].ArtifactType.SchemaTitle))
	}
	return strings.Join(list, ",")
}

// artifactTypeName is sluice's word for a KFP schema title: system.Dataset -> Dataset.
func artifactTypeName(title string) string {
	_, t, found := strings.Cut(title, ".")
	if !found {
		t = title
	}
	var b strings.Builder
	for _, r := range t {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' {
			b.WriteRune(r)
		}
	}
	if b.Len() == 0 || b.String()[0] >= '0' && b.String()[0] <= '9' {
		return annotations.DefaultOutputType
	}
	return b.String()
}

// needsLauncher reports whether the step's command needs values only known
// at run time, or has output parameters to collect.
func needsLauncher(exe *task.Executor) bool {
	if len(exe.Outputs.Parameters) > 0 {
		return true
	}
	for _, p := range exe.Inputs.Parameters {
		if len(p.Files) > 0 {
			return true
		}
	}
	for _, a := range exe.Inputs.Artifacts {
		if len(a.Paths) != 1 || a.List {
			return true
		}
	}
	refs, err := task.Refs(exe.Command)
	if err != nil {
		return true // the launcher reports it where it can be seen
	}
	for _, r := range refs {
		switch {
		case r.Kind == task.RefExecutorInput:
			return true
		case r.Kind == task.RefInputArtifact && (r.Field == "metadata" || r.Field == ""):
			return true
		case r.Kind == task.RefSystem && r.Name != "pipeline_job_name" && r.Name != "pipeline_task_name" && r.Name != "pipeline_root":
			return true
		}
	}
	return false
}
