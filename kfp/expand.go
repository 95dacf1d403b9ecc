package kfp

import (
	"encoding/json"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/sluice-dev/sluice/kfp/task"
)

// converter flattens a pipeline's DAGs into steps.
type converter struct {
	p        *Pipeline
	opts     Options
	pipeline string
	steps    []*step
	warnings []string
	// iterations counts the loop iterations unrolled, bounded like the steps.
	iterations int
}

// step is one container task instance: one Job.
type step struct {
	order     int
	path      string   // KFP task path, with loop indices: "for-loop-2[1]/print-op"
	names     []string // the DAG task names from the root down
	indices   []int    // the enclosing loops' iteration indices
	name      string   // sluice task name, given once all steps are known
	task      *TaskSpec
	component string
	comp      *ComponentSpec
	exec      *ContainerSpec
	label     string // executor label

	params map[string]*param    // the component's inputs, bound
	arts   map[string]*artifact // the component's input artifacts, bound
	// dagParams are the enclosing DAG's inputs, which the task's platform
	// settings read (a secret's name, say).
	dagParams           map[string]*param
	after               []*step
	conds               []*condition
	allDone, noneFailed bool
}

// suffixName is the step's last k DAG task names joined by "-", with its
// loop indices.
func (s *step) suffixName(k int) string {
	n := strings.Join(s.names[max(0, len(s.names)-k):], "-")
	for _, i := range s.indices {
		n += "-" + strconv.Itoa(i)
	}
	return n
}

// param is a parameter's value as the importer knows it: static, or the
// output parameters of steps (one; a dsl.OneOf's candidates; a loop's
// iterations collected).
type param struct {
	typ     string
	static  bool
	value   any
	refs    []outRef
	collect bool
	groups  []int // with collect: the refs of each outer iteration (task.InputParameter.Groups)
}

// outRef is one output of a step.
type outRef struct {
	step *step
	key  string
	typ  string // parameterType, or the artifact's schemaTitle
}

// artifact is an artifact's value: the output artifacts of steps.
type artifact struct {
	typ  string
	refs []outRef
	list bool
}

// condition is one enclosing dsl.If, as CEL over upstream results.
type condition struct {
	expr      string
	producers []*step
}

// scope is what a DAG's tasks see: its inputs, its enclosing conditions,
// and what its roots wait for.
type scope struct {
	params  map[string]*param
	arts    map[string]*artifact
	conds   []*condition
	path    string // KFP path prefix, "" at the root
	names   []string
	indices []int
	comps   []string // the DAG components being expanded, outermost first
	after   []*step  // the DAG task's upstreams, inherited by its roots
	allDone bool     // the DAG task waits for all of its upstreams to finish, whatever their outcome
}

// outputs are what a DAG task (or container task) gives its siblings.
type outputs struct {
	steps  []*step // every step inside (for a container task: itself)
	sinks  []*step // the steps nothing inside waits for
	params map[string]*param
	arts   map[string]*artifact
}

// expandDAG flattens one DAG component in scope sc.
func (c *converter) expandDAG(comp *ComponentSpec, compName string, sc *scope) (*outputs, error) {
	dag := comp.DAG
	order, err := topoOrder(dag, sc.path)
	if err != nil {
		return nil, err
	}
	done := map[string]*outputs{}
	for _, name := range order {
		t := dag.Tasks[name]
		out, err := c.expandTask(name, t, sc, done)
		if err != nil {
			return nil, err
		}
		done[name] = out
	}
	all := &outputs{params: map[string]*param{}, arts: map[string]*artifact{}}
	waitedFor := map[*step]bool{}
	for _, name := range order {
		for _, s := range done[name].steps {
			all.steps = append(all.steps, s)
			for _, u := range s.after {
				waitedFor[u] = true
			}
		}
	}
	for _, s := range all.steps {
		if !waitedFor[s] {
			all.sinks = append(all.sinks, s)
		}
	}
	if dag.Outputs != nil {
		for _, key := range slices.Sorted(maps.Keys(dag.Outputs.Parameters)) {
			o := dag.Outputs.Parameters[key]
			var sels []ParameterSelector
			switch {
			case o.ValueFromParameter != nil:
				sels = []ParameterSelector{*o.ValueFromParameter}
			case o.ValueFromOneof != nil:
				sels = o.ValueFromOneof.ParameterSelectors
			}
			p := &param{}
			for _, sel := range sels {
				inner, ok := done[sel.ProducerSubtask]
				if !ok {
					return nil, fmt.Errorf("component %s: output %s names task %s, which it does not have", compName, key, sel.ProducerSubtask)
				}
				ip, ok := inner.params[sel.OutputParameterKey]
				if !ok {
					return nil, fmt.Errorf("component %s: output %s names output %s of task %s, which it does not have", compName, key, sel.OutputParameterKey, sel.ProducerSubtask)
				}
				switch {
				case len(sels) == 1:
					p = ip
				case ip.static:
					return nil, fmt.Errorf("component %s: output %s: a dsl.OneOf over a constant is not supported", compName, key)
				case ip.collect:
					return nil, fmt.Errorf("component %s: output %s: a dsl.OneOf over collected loop outputs is not supported", compName, key)
				default:
					p.typ = ip.typ
					p.refs = append(p.refs, ip.refs...)
				}
			}
			all.params[key] = p
		}
		for _, key := range slices.Sorted(maps.Keys(dag.Outputs.Artifacts)) {
			a := &artifact{}
			sels := dag.Outputs.Artifacts[key].ArtifactSelectors
			for _, sel := range sels {
				inner, ok := done[sel.ProducerSubtask]
				if !ok {
					return nil, fmt.Errorf("component %s: output %s names task %s, which it does not have", compName, key, sel.ProducerSubtask)
				}
				ia, ok := inner.arts[sel.OutputArtifactKey]
				if !ok {
					return nil, fmt.Errorf("component %s: output %s names output %s of task %s, which it does not have", compName, key, sel.OutputArtifactKey, sel.ProducerSubtask)
				}
				a.typ = ia.typ
				a.refs = append(a.refs, ia.refs...)
				a.list = a.list || ia.list
			}
			all.arts[key] = a
		}
	}
	return all, nil
}

// topoOrder orders a DAG's tasks so that every task comes after those it
// depends on or takes inputs from, ties broken by name.
func topoOrder(dag *DAGSpec, path string) ([]string, error) {
	deps := map[string][]string{}
	for _, name := range slices.Sorted(maps.Keys(dag.Tasks)) {
		t := dag.Tasks[name]
		ds := slices.Clone(t.DependentTasks)
		if t.Inputs != nil {
			for _, in := range t.Inputs.Parameters {
				if in.TaskOutputParameter != nil {
					ds = append(ds, in.TaskOutputParameter.ProducerTask)
				}
				if in.TaskFinalStatus != nil {
					ds = append(ds, in.TaskFinalStatus.ProducerTask)
				}
			}
			for _, in := range t.Inputs.Artifacts {
				if in.TaskOutputArtifact != nil {
					ds = append(ds, in.TaskOutputArtifact.ProducerTask)
				}
			}
		}
		for _, d := range ds {
			if _, ok := dag.Tasks[d]; !ok {
				return nil, fmt.Errorf("task %s: depends on task %s, which its DAG does not have", join(path, name), d)
			}
		}
		slices.Sort(ds)
		deps[name] = slices.Compact(ds)
	}
	var order []string
	state := map[string]int{} // 1: visiting, 2: done
	var visit func(n string) error
	visit = func(n string) error {
		switch state[n] {
		case 1:
			return fmt.Errorf("task %s: its dependencies form a cycle", join(path, n))
		case 2:
			return nil
		}
		state[n] = 1
		for _, d := range deps[n] {
			if err := visit(d); err != nil {
				return err
			}
		}
		state[n] = 2
		order = append(order, n)
		return nil
	}
	for _, n := range slices.Sorted(maps.Keys(dag.Tasks)) {
		if err := visit(n); err != nil {
			return nil, err
		}
	}
	return order, nil
}

func join(prefix, name string) string {
	if prefix == "" {
		return name
	}
	return prefix + "/" + name
}

// expandTask turns one task of a DAG into its steps.
func (c *converter) expandTask(name string, t *TaskSpec, sc *scope, done map[string]*outputs) (*outputs, error) {
	path := join(sc.path, name)
	comp, ok := c.p.Spec.Components[t.ComponentRef.Name]
	if !ok || comp == nil {
		return nil, fmt.Errorf("task %s: component %q is not in the pipeline's components", path, t.ComponentRef.Name)
	}
	if t.ArtifactIterator != nil {
		return nil, fmt.Errorf("task %s: dsl.ParallelFor over artifacts (artifactIterator) is not supported: sluice unrolls loops at import, over a list or a pipeline parameter", path)
	}
	params, arts, err := c.bind(path, t, comp, sc, done)
	if err != nil {
		return nil, err
	}
	// What the task waits for: the tasks it names, and those whose outputs it takes.
	var after []*step
	allDone := t.TriggerPolicy != nil && t.TriggerPolicy.Strategy == "ALL_UPSTREAM_TASKS_COMPLETED"
	if t.TriggerPolicy != nil && t.TriggerPolicy.Strategy != "" && !allDone {
		return nil, fmt.Errorf("task %s: trigger strategy %q is not one the importer knows (ALL_UPSTREAM_TASKS_COMPLETED)", path, t.TriggerPolicy.Strategy)
	}
	deps := slices.Clone(t.DependentTasks)
	for _, name := range slices.Sorted(maps.Keys(params)) {
		for _, r := range params[name].refs {
			after = append(after, r.step)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(arts)) {
		for _, r := range arts[name].refs {
			after = append(after, r.step)
		}
	}
	for _, d := range deps {
		up := done[d]
		if allDone {
			after = append(after, up.steps...)
		} else {
			after = append(after, up.sinks...)
		}
	}
	// A root of its DAG (waiting for no sibling) waits for what the DAG task
	// waits for, as KFP starts a DAG's tasks once the DAG task starts.
	if !hasSiblingDeps(t) {
		after = append(after, sc.after...)
		allDone = allDone || sc.allDone
	}
	conds := slices.Clone(sc.conds)
	if t.TriggerPolicy != nil && t.TriggerPolicy.Condition != "" {
		cond, err := rewriteCondition(path, t.TriggerPolicy.Condition, params)
		if err != nil {
			return nil, err
		}
		conds = append(conds, cond)
	}

	if comp.DAG != nil {
		if slices.Contains(sc.comps, t.ComponentRef.Name) {
			return nil, fmt.Errorf("task %s: component %s contains itself", path, t.ComponentRef.Name)
		}
		inner := &scope{
			comps:  append(slices.Clone(sc.comps), t.ComponentRef.Name),
			params: params, arts: arts, conds: conds,
			path: path, names: append(slices.Clone(sc.names), name), indices: sc.indices,
			after: uniqueSteps(after), allDone: allDone,
		}
		if t.ParameterIterator != nil {
			return c.expandLoop(path, t, comp, inner)
		}
		if t.IteratorPolicy != nil {
			return nil, fmt.Errorf("task %s: iteratorPolicy without a loop", path)
		}
		return c.expandDAG(comp, t.ComponentRef.Name, inner)
	}
	if t.ParameterIterator != nil {
		return nil, fmt.Errorf("task %s: a loop over a container component; expected a DAG", path)
	}
	return c.containerStep(name, path, t, comp, sc, params, arts, uniqueSteps(after), conds, allDone)
}

// hasSiblingDeps reports whether a task waits for another task of its DAG.
func hasSiblingDeps(t *TaskSpec) bool {
	if len(t.DependentTasks) > 0 {
		return true
	}
	if t.Inputs != nil {
		for _, in := range t.Inputs.Parameters {
			if in.TaskOutputParameter != nil {
				return true
			}
		}
		for _, in := range t.Inputs.Artifacts {
			if in.TaskOutputArtifact != nil {
				return true
			}
		}
	}
	return false
}

// bind gives a task's component its inputs: what the task binds them to in
// sc, else the component's defaults. Optional inputs without either are
// left out.
func (c *converter) bind(path string, t *TaskSpec, comp *ComponentSpec, sc *scope, done map[string]*outputs) (map[string]*param, map[string]*artifact, error) {
	params := map[string]*param{}
	var defs Definitions
	if comp.InputDefinitions != nil {
		defs = *comp.InputDefinitions
	}
	var in TaskInputs
	if t.Inputs != nil {
		in = *t.Inputs
	}
	for _, name := range slices.Sorted(maps.Keys(in.Parameters)) {
		b := in.Parameters[name]
		// An input the component does not declare is there for the task's
		// settings (resources, accelerator) to read; it keeps its own type.
		def := defs.Parameters[name]
		if def.ParameterType == task.TypeTaskFinalStatus || b.TaskFinalStatus != nil {
			return nil, nil, fmt.Errorf("task %s: input %s is a dsl.PipelineTaskFinalStatus, which sluice does not provide; read the upstream's phase in a sluice.dev/when instead", path, name)
		}
		var p *param
		switch {
		case b.ComponentInputParameter != "":
			from, ok := sc.params[b.ComponentInputParameter]
			if !ok {
				// An optional input of the enclosing DAG left unset.
				continue
			}
			p = from
		case b.RuntimeValue != nil:
			p = &param{static: true, value: task.Plain(b.RuntimeValue.Constant)}
		case b.TaskOutputParameter != nil:
			up := done[b.TaskOutputParameter.ProducerTask]
			from, ok := up.params[b.TaskOutputParameter.OutputParameterKey]
			if !ok {
				return nil, nil, fmt.Errorf("task %s: input %s: task %s has no output parameter %s", path, name, b.TaskOutputParameter.ProducerTask, b.TaskOutputParameter.OutputParameterKey)
			}
			p = from
		default:
			return nil, nil, fmt.Errorf("task %s: input %s has no value source the importer knows", path, name)
		}
		if b.ParameterExpressionSelector != "" {
			var err error
			if p, err = selectField(path, name, b.ParameterExpressionSelector, p); err != nil {
				return nil, nil, err
			}
		}
		typ := def.ParameterType
		if typ == "" {
			typ = p.typ
		}
		if typ == "" && p.static {
			typ = typeOf(p.value)
		}
		p = &param{typ: typ, static: p.static, value: p.value, refs: p.refs, collect: p.collect, groups: p.groups}
		if p.static && typ != "" {
			v, err := coerceInput(typ, p.value)
			if err != nil {
				return nil, nil, fmt.Errorf("task %s: input %s: %w", path, name, err)
			}
			p.value = v
		}
		params[name] = p
	}
	for _, name := range slices.Sorted(maps.Keys(defs.Parameters)) {
		def := defs.Parameters[name]
		if _, bound := params[name]; bound || def.DefaultValue == nil {
			continue
		}
		if _, given := in.Parameters[name]; given {
			continue // bound to an unset optional input: stays unset
		}
		v, err := task.Coerce(def.ParameterType, def.DefaultValue)
		if err != nil {
			return nil, nil, fmt.Errorf("task %s: input %s: its default: %w", path, name, err)
		}
		params[name] = &param{typ: def.ParameterType, static: true, value: v}
	}
	arts, err := bindArtifacts(path, t, defs.Artifacts, in.Artifacts, sc, done)
	if err != nil {
		return nil, nil, err
	}
	return params, arts, nil
}

// bindArtifacts gives a task's component its input artifacts; an optional
// one the enclosing DAG leaves unset is left out.
func bindArtifacts(path string, t *TaskSpec, defs map[string]ArtifactSpec, bindings map[string]ArtifactInput, sc *scope, done map[string]*outputs) (map[string]*artifact, error) {
	arts := map[string]*artifact{}
	for _, name := range slices.Sorted(maps.Keys(bindings)) {
		b := bindings[name]
		def, declared := defs[name]
		if !declared {
			return nil, fmt.Errorf("task %s: input artifact %s is not declared by component %s", path, name, t.ComponentRef.Name)
		}
		var a *artifact
		switch {
		case b.ComponentInputArtifact != "":
			from, ok := sc.arts[b.ComponentInputArtifact]
			if !ok {
				continue
			}
			a = from
		case b.TaskOutputArtifact != nil:
			up := done[b.TaskOutputArtifact.ProducerTask]
			from, ok := up.arts[b.TaskOutputArtifact.OutputArtifactKey]
			if !ok {
				return nil, fmt.Errorf("task %s: input %s: task %s has no output artifact %s", path, name, b.TaskOutputArtifact.ProducerTask, b.TaskOutputArtifact.OutputArtifactKey)
			}
			a = from
		default:
			return nil, fmt.Errorf("task %s: input artifact %s has no value source the importer knows", path, name)
		}
		arts[name] = &artifact{typ: def.ArtifactType.SchemaTitle, refs: a.refs, list: a.list || def.IsArtifactList}
	}
	return arts, nil
}

// coerceInput types a value known at import for an input: as task.Coerce, and
// as KFP passes a loop item or a struct to a STRING input, as its JSON.
func coerceInput(typ string, v any) (any, error) {
	if typ == task.TypeString {
		if _, isString := v.(string); !isString && v != nil {
			return task.Format(v), nil
		}
	}
	return task.Coerce(typ, v)
}

// typeOf is the parameter type of a value known at import.
func typeOf(v any) string {
	switch task.Plain(v).(type) {
	case bool:
		return task.TypeBoolean
	case int64:
		return task.TypeInteger
	case float64:
		return task.TypeDouble
	case []any:
		return task.TypeList
	case map[string]any:
		return task.TypeStruct
	}
	return task.TypeString
}

var selectorRE = regexp.MustCompile(`^parseJson\(string_value\)\["([^"]+)"\]$`)

// selectField applies a loop item's field selector (parseJson(string_value)["key"]).
func selectField(path, name, sel string, p *param) (*param, error) {
	m := selectorRE.FindStringSubmatch(sel)
	if m == nil {
		return nil, fmt.Errorf("task %s: input %s: selector %q is not one the importer knows (parseJson(string_value)[\"key\"])", path, name, sel)
	}
	if !p.static {
		return nil, fmt.Errorf("task %s: input %s: a field of an upstream task's output (%s) is only known at run time; sluice unrolls loops at import, over a list or a pipeline parameter", path, name, sel)
	}
	obj, ok := p.value.(map[string]any)
	if s, isString := p.value.(string); isString {
		ok = json.Unmarshal([]byte(s), &obj) == nil
	}
	if !ok {
		return nil, fmt.Errorf("task %s: input %s: %s: the item %s is not a JSON object", path, name, sel, task.Describe(p.value))
	}
	v, ok := obj[m[1]]
	if !ok {
		return nil, fmt.Errorf("task %s: input %s: the item has no field %q", path, name, m[1])
	}
	return &param{static: true, value: task.Plain(v)}, nil
}

// expandLoop unrolls a static dsl.ParallelFor: one copy of the loop's DAG
// per item, each iteration's roots after the sinks of the iteration
// parallelismLimit before it.
func (c *converter) expandLoop(path string, t *TaskSpec, comp *ComponentSpec, sc *scope) (*outputs, error) {
	it := t.ParameterIterator
	items, err := loopItems(path, it, sc)
	if err != nil {
		return nil, err
	}
	limit := 0
	if t.IteratorPolicy != nil {
		limit = t.IteratorPolicy.ParallelismLimit
	}
	if limit > 0 && limit < len(items) {
		c.warn("task %s: parallelism %d: sluice runs the loop's iterations in %d lanes, each iteration after the one %d before it, not as a pool", path, limit, limit, limit)
	}
	all := &outputs{params: map[string]*param{}, arts: map[string]*artifact{}}
	var iters []*outputs
	for i, item := range items {
		if c.iterations++; c.iterations > MaxSteps {
			return nil, fmt.Errorf("task %s: the pipeline's loops unroll to more than %d iterations; sluice runs at most that many in one run from an import", path, MaxSteps)
		}
		isc := *sc
		isc.params = map[string]*param{}
		for k, v := range sc.params {
			isc.params[k] = v
		}
		isc.params[it.ItemInput] = &param{static: true, value: task.Plain(item)}
		isc.path = fmt.Sprintf("%s[%d]", path, i)
		isc.indices = append(slices.Clone(sc.indices), i)
		if limit > 0 && i >= limit {
			isc.after = uniqueSteps(append(slices.Clone(sc.after), iters[i-limit].sinks...))
		}
		out, err := c.expandDAG(comp, t.ComponentRef.Name, &isc)
		if err != nil {
			return nil, err
		}
		iters = append(iters, out)
		all.steps = append(all.steps, out.steps...)
		all.sinks = append(all.sinks, out.sinks...)
	}
	if err := collectLoop(path, comp, iters, all); err != nil {
		return nil, err
	}
	return all, nil
}

// loopItems are a static loop's items: its raw list, or the list a
// pipeline parameter (or constant) gives it.
func loopItems(path string, it *ParameterIterator, sc *scope) ([]any, error) {
	var items []any
	switch {
	case it.Items.Raw != nil:
		if err := json.Unmarshal([]byte(*it.Items.Raw), &items); err != nil {
			return nil, fmt.Errorf("task %s: the loop's items %q are not a JSON list", path, *it.Items.Raw)
		}
	case it.Items.InputParameter != "":
		p, ok := sc.params[it.Items.InputParameter]
		if !ok {
			return nil, fmt.Errorf("task %s: the loop's items come from input %s, which has no value", path, it.Items.InputParameter)
		}
		if !p.static {
			return nil, fmt.Errorf("task %s: dsl.ParallelFor over the output of task %s is dynamic; sluice unrolls loops at import, so their items must be a list or a pipeline parameter", path, p.refs[0].step.path)
		}
		v := p.value
		if s, isString := v.(string); isString {
			if err := json.Unmarshal([]byte(s), &v); err != nil {
				return nil, fmt.Errorf("task %s: the loop's items %s are not a JSON list", path, task.Describe(p.value))
			}
		}
		list, ok := task.Plain(v).([]any)
		if !ok {
			return nil, fmt.Errorf("task %s: the loop's items %s are not a list", path, task.Describe(p.value))
		}
		items = list
	default:
		return nil, fmt.Errorf("task %s: the loop has no items", path)
	}
	return items, nil
}

// collectLoop gives a loop its outputs: its iterations' outputs,
// collected, a list, or a list of lists when the iterations collected an
// inner loop's.
func collectLoop(path string, comp *ComponentSpec, iters []*outputs, all *outputs) error {
	if od := comp.OutputDefinitions; od != nil {
		for _, key := range slices.Sorted(maps.Keys(od.Parameters)) {
			p := &param{collect: true, typ: task.TypeList}
			for _, o := range iters {
				ip := o.params[key]
				switch {
				case ip == nil || ip.static:
					return fmt.Errorf("task %s: output %s: dsl.Collected over a constant is not supported", path, key)
				case ip.collect && len(ip.groups) > 0:
					return fmt.Errorf("task %s: output %s: dsl.Collected over loops nested three deep is not supported", path, key)
				case ip.collect:
					p.groups = append(p.groups, len(ip.refs))
				case len(ip.refs) != 1:
					return fmt.Errorf("task %s: output %s: dsl.Collected over a dsl.OneOf is not supported", path, key)
				}
				p.refs = append(p.refs, ip.refs...)
			}
			if len(p.groups) > 0 && len(p.groups) != len(iters) {
				return fmt.Errorf("task %s: output %s: its iterations collect differently", path, key)
			}
			all.params[key] = p
		}
		for _, key := range slices.Sorted(maps.Keys(od.Artifacts)) {
			a := &artifact{list: true, typ: od.Artifacts[key].ArtifactType.SchemaTitle}
			for _, o := range iters {
				// KFP has lists of artifacts, not lists of lists: an inner
				// loop's collected artifacts join the outer list.
				if ia := o.arts[key]; ia != nil {
					a.refs = append(a.refs, ia.refs...)
				}
			}
			all.arts[key] = a
		}
	}
	return nil
}

func uniqueSteps(in []*step) []*step {
	seen := map[*step]bool{}
	var out []*step
	for _, s := range in {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}

func (c *converter) warn(format string, args ...any) {
	c.warnings = append(c.warnings, fmt.Sprintf(format, args...))
}
