package kfp

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	batchv1 "k8s.io/api/batch/v1"
)

// Provenance annotations: where in the KFP pipeline a Job comes from. They
// are not sluice keys (sluice ignores them); the importer's own prefix.
const (
	provenancePrefix = "kfp.sluice.dev/"
	// TaskAnnotation is the KFP task path: the DAG task names from the root
	// down, joined by "/", with each loop iteration's index in brackets.
	TaskAnnotation = provenancePrefix + "task"
	// ComponentAnnotation is the KFP component the task runs.
	ComponentAnnotation = provenancePrefix + "component"
	// PipelineAnnotation is the KFP pipeline's name.
	PipelineAnnotation = provenancePrefix + "pipeline"
)

// Options are a conversion's settings.
type Options struct {
	// Run is the sluice run id every Job gets (a DNS-1123 label).
	Run string
	// Namespace, when set, is written on every Job.
	Namespace string
	// Params are the pipeline parameters, as ResolveParams gives them.
	Params map[string]any
	// ImageMap replaces a component's image by another (FROM=TO).
	ImageMap map[string]string
	// LauncherImage is the image whose init container delivers the launcher.
	LauncherImage string
}

// Result is a conversion: one Job per container task instance.
type Result struct {
	// Pipeline is the sluice pipeline name (the KFP name, folded).
	Pipeline string
	Jobs     []*batchv1.Job
	// Steps say, in the Jobs' order, how each KFP task became a sluice task.
	Steps []Explained
	// Warnings are what maps only approximately, one line each.
	Warnings []string
}

// Explained is one sluice task and the KFP task it comes from.
type Explained struct {
	KFPTask   string // the KFP task path, as TaskAnnotation
	Task      string // the sluice task name
	Upstreams []string
	Trigger   string // "" for sluice's default, all-succeeded
	When      string
	Launcher  bool // runs through the launcher
}

// Convert turns a compiled pipeline into one labelled Job per container
// task instance: nested pipelines flattened, static loops unrolled,
// conditions as sluice.dev/when. What sluice cannot run is an error that
// names the KFP task and the feature.
func Convert(p *Pipeline, opts Options) (*Result, error) {
	if opts.Run == "" {
		return nil, fmt.Errorf("a run id is needed (--run)")
	}
	if DNSName(opts.Run) != opts.Run {
		return nil, fmt.Errorf("run %q: expected a DNS-1123 label (lower-case letters, digits and '-', at most 63), e.g. %s", opts.Run, DNSName(opts.Run))
	}
	if opts.LauncherImage == "" {
		return nil, fmt.Errorf("the launcher's image is needed")
	}
	c := &converter{p: p, opts: opts, pipeline: DNSName(p.Spec.PipelineInfo.Name)}
	if err := c.checkPipeline(); err != nil {
		return nil, err
	}
	root := &scope{params: map[string]*param{}, arts: map[string]*artifact{}}
	var defs map[string]ParameterSpec
	if in := p.Spec.Root.InputDefinitions; in != nil {
		defs = in.Parameters
	}
	for name, v := range opts.Params {
		typ := defs[name].ParameterType
		if typ == "" {
			typ = typeOf(v)
		}
		root.params[name] = &param{static: true, value: v, typ: typ}
	}
	if _, err := c.expandDAG(p.Spec.Root, "root", root); err != nil {
		return nil, err
	}
	if err := c.name(); err != nil {
		return nil, err
	}
	res := &Result{Pipeline: c.pipeline}
	for _, s := range c.steps {
		job, ex, err := c.job(s)
		if err != nil {
			return nil, fmt.Errorf("task %s: %w", s.path, err)
		}
		res.Jobs = append(res.Jobs, job)
		res.Steps = append(res.Steps, ex)
	}
	res.Warnings = c.warnings
	return res, nil
}

// checkPipeline refuses what applies to the whole pipeline.
func (c *converter) checkPipeline() error {
	if c.pipeline == "" {
		return fmt.Errorf("pipelineInfo.name is empty")
	}
	if in := c.p.Spec.Root.InputDefinitions; in != nil && len(in.Artifacts) > 0 {
		return fmt.Errorf("pipeline input artifact %s: sluice does not take artifacts as pipeline inputs; produce it with a task (e.g. one that downloads it)",
			strings.Join(slices.Sorted(maps.Keys(in.Artifacts)), ", "))
	}
	if pl := c.p.Platform; pl != nil {
		for _, k := range slices.Sorted(maps.Keys(pl.Platforms.Kubernetes.PipelineConfig)) {
			return fmt.Errorf("platforms.kubernetes.pipelineConfig.%s: not supported (a KFP workspace shared by the tasks); sluice gives every run its own volume", k)
		}
	}
	return nil
}

// name gives every step its sluice task name: its leaf name with its loop
// indices; where names collide, as many of the enclosing DAG tasks' names
// as tell them apart (condition-2-print-op); where even the whole path
// collides after DNS-1123 folding, an error naming both.
func (c *converter) name() error {
	taken := map[string]*step{}
	unnamed := c.steps
	for k := 1; len(unnamed) > 0; k++ {
		count := map[string]int{}
		for _, s := range unnamed {
			count[DNSName(s.suffixName(k))]++
		}
		// A step whose whole path is spelt has no longer name to take, so
		// it takes this one first; the others take a longer one if they must.
		var next []*step
		for _, s := range unnamed {
			n := DNSName(s.suffixName(k))
			if k < len(s.names) {
				continue
			}
			if other := taken[n]; other != nil {
				return fmt.Errorf("tasks %s and %s both become sluice task %q after DNS-1123 folding; rename one of them in the pipeline", other.path, s.path, n)
			}
			s.name = n
			taken[n] = s
		}
		for _, s := range unnamed {
			n := DNSName(s.suffixName(k))
			switch {
			case k >= len(s.names):
			case count[n] > 1 || taken[n] != nil:
				next = append(next, s)
			default:
				s.name = n
				taken[n] = s
			}
		}
		unnamed = next
	}
	slices.SortStableFunc(c.steps, func(a, b *step) int { return a.order - b.order })
	return nil
}
