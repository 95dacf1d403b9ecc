package kfp

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	sigsyaml "sigs.k8s.io/yaml"
)

// oracleGraph is the dependency graph of a pipeline as KFP itself compiles
// it to Argo: the oracle the converter's graph is checked against.
type oracleGraph struct {
	// Steps are the container steps, each named by its KFP task path: the
	// DAG task names from the root's DAG down to the container task, joined
	// by "/" (e.g. "condition-1/print-op-2", "for-loop-2/print-op"). Loops are
	// not unrolled: a step inside a ParallelFor appears once.
	Steps map[string]bool
	// After[b][a]: step b starts only after step a has finished (the
	// transitive closure of the dependencies, so that flattening nested DAGs
	// and how a dependency on a sub-DAG is spelt do not matter). A step with
	// no upstream has no entry.
	After map[string]map[string]bool
	// Exit[e][a]: step e is an exit handler, run once the task it hangs on
	// has finished, whatever its status; a ranges over that task's steps.
	// KFP compiles a task with triggerPolicy ALL_UPSTREAM_TASKS_COMPLETED
	// (dsl.ExitHandler's exit task, ignore_upstream_failure) to an exit hook
	// on its upstream task; a Workflow's onExit hangs on all steps. Exit
	// handlers are steps too, and After holds their full order. Nil when
	// the Workflow has none.
	Exit map[string]map[string]bool
}

// argoWorkflow is the part of an Argo Workflow the oracle reads.
type argoWorkflow struct {
	Kind string `json:"kind"`
	Spec struct {
		Entrypoint string         `json:"entrypoint"`
		OnExit     string         `json:"onExit"`
		Templates  []argoTemplate `json:"templates"`
	} `json:"spec"`
}

type argoTemplate struct {
	Name string `json:"name"`
	DAG  *struct {
		Tasks []argoTask `json:"tasks"`
	} `json:"dag"`
	Steps any `json:"steps"`
}

type argoTask struct {
	Name         string   `json:"name"`
	Template     string   `json:"template"`
	Depends      string   `json:"depends"`
	Dependencies []string `json:"dependencies"`
	WithParam    string   `json:"withParam"`
	WithItems    []any    `json:"withItems"`
	WithSequence any      `json:"withSequence"`
	OnExit       string   `json:"onExit"`
	Hooks        map[string]struct {
		Template string `json:"template"`
	} `json:"hooks"`
}

func (t *argoTask) fansOut() bool {
	return t.WithParam != "" || t.WithItems != nil || t.WithSequence != nil
}

// argoGraph reads KFP's Argo compilation of a pipeline and returns its
// container steps and which run after which.
//
// The Workflow is read as a graph of nodes, one per Argo task instance plus
// an end node per task (its start for a driver, importer or executor, every
// inner end for a DAG): a task starts after the ends of the siblings its
// depends names and after its parent DAG's start, which is how the steps of
// a sub-DAG inherit the sub-DAG's dependencies. The order between steps is
// then the reachability between their nodes, through drivers, importers and
// DAG nodes alike.
func argoGraph(data []byte) (*oracleGraph, error) {
	var wf argoWorkflow
	if err := sigsyaml.Unmarshal(data, &wf); err != nil {
		return nil, fmt.Errorf("not an Argo Workflow: %w", err)
	}
	if wf.Kind != "Workflow" {
		return nil, fmt.Errorf("kind %q is not an Argo Workflow; expected KFP's Argo compilation (kind Workflow)", wf.Kind)
	}
	w := &argoWalker{
		nodeGraph: newNodeGraph(),
		templates: map[string]*argoTemplate{},
		active:    map[string]bool{},
	}
	for i := range wf.Spec.Templates {
		w.templates[wf.Spec.Templates[i].Name] = &wf.Spec.Templates[i]
	}
	entry, err := w.dag(wf.Spec.Entrypoint)
	if err != nil {
		return nil, fmt.Errorf("entrypoint: %w", err)
	}
	// KFP's entrypoint only wraps the root DAG with its driver: its task
	// names are not KFP's.
	all, err := w.walk(entry, "", "", true)
	if err != nil {
		return nil, err
	}
	if wf.Spec.OnExit != "" {
		tmpl, err := w.dag(wf.Spec.OnExit)
		if err != nil {
			return nil, fmt.Errorf("onExit: %w", err)
		}
		w.preds["$exit"] = []string{"$end"}
		handlers, err := w.walk(tmpl, "$exit", "", false)
		if err != nil {
			return nil, err
		}
		for _, h := range handlers {
			w.exits[h] = append(w.exits[h], all...)
		}
	}
	return w.oracle()
}

// argoWalker collects the node graph of a Workflow.
type argoWalker struct {
	*nodeGraph
	templates map[string]*argoTemplate
	// active are the templates being walked: one inside itself is refused.
	active map[string]bool
}

func (w *argoWalker) dag(name string) (*argoTemplate, error) {
	tmpl := w.templates[name]
	switch {
	case tmpl == nil:
		return nil, fmt.Errorf("template %q is not in spec.templates", name)
	case tmpl.Steps != nil:
		return nil, fmt.Errorf("template %q has steps; KFP compiles to dag templates only", name)
	case tmpl.DAG == nil:
		return nil, fmt.Errorf("template %q is not a dag template", name)
	}
	return tmpl, nil
}

// walk records the tasks of the DAG template tmpl run as node id, the
// tasks' KFP path prefix being path, and returns the executor nodes in it.
// In a plumbing template (KFP's entrypoint and the two templates of a
// loop's iteration) the task names are Argo's, not KFP's, so they add
// nothing to the path and no executor may sit there.
func (w *argoWalker) walk(tmpl *argoTemplate, id, path string, plumbing bool) ([]string, error) {
	if w.active[tmpl.Name] {
		return nil, fmt.Errorf("template %q runs itself", tmpl.Name)
	}
	w.active[tmpl.Name] = true
	defer delete(w.active, tmpl.Name)

	siblings := map[string]bool{}
	for _, t := range tmpl.DAG.Tasks {
		siblings[t.Name] = true
	}
	end := id + "$end"
	w.preds[end] = append(w.preds[end], id)
	var members []string
	for i := range tmpl.DAG.Tasks {
		t := &tmpl.DAG.Tasks[i]
		where := fmt.Sprintf("template %q task %q", tmpl.Name, t.Name)
		tid := id + "/" + t.Name
		ups, err := argoUpstreams(t)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", where, err)
		}
		w.preds[tid] = append(w.preds[tid], id)
		for _, u := range ups {
			if !siblings[u] {
				return nil, fmt.Errorf("%s: depends on %q, which is not a task of the template", where, u)
			}
			w.preds[tid] = append(w.preds[tid], id+"/"+u+"$end")
		}
		w.preds[end] = append(w.preds[end], tid+"$end")
		inner, err := w.task(t, tid, path, plumbing)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", where, err)
		}
		members = append(members, inner...)
		hook, err := argoExitHook(t)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", where, err)
		}
		if hook == "" {
			continue
		}
		if plumbing {
			return nil, fmt.Errorf("%s: an exit hook on KFP's own plumbing", where)
		}
		htmpl, err := w.dag(hook)
		if err != nil {
			return nil, fmt.Errorf("%s: exit hook: %w", where, err)
		}
		// The hook runs after the task, whatever its status, and stands
		// beside it in the DAG: siblings waiting for the task do not wait
		// for its hook, the DAG itself does.
		hid := tid + "$exit"
		w.preds[hid] = []string{id, tid + "$end"}
		w.preds[end] = append(w.preds[end], hid+"$end")
		handlers, err := w.walk(htmpl, hid, path, false)
		if err != nil {
			return nil, err
		}
		for _, h := range handlers {
			w.exits[h] = append(w.exits[h], inner...)
		}
		members = append(members, handlers...)
	}
	return members, nil
}

// task records one DAG task, node tid, and returns the executor nodes in it.
func (w *argoWalker) task(t *argoTask, tid, path string, plumbing bool) ([]string, error) {
	name := t.Template
	if name == "" {
		return nil, errors.New("no template (templateRef is not KFP's)")
	}
	if w.templates[name] == nil {
		return nil, fmt.Errorf("template %q is not in spec.templates", name)
	}
	switch {
	case strings.HasSuffix(name, "system-container-driver"), strings.HasSuffix(name, "system-dag-driver"),
		strings.Contains(name, "system-importer"):
		w.preds[tid+"$end"] = []string{tid}
		return nil, nil
	case strings.HasSuffix(name, "system-container-executor"):
		if plumbing {
			return nil, errors.New("executor in KFP's plumbing template, where its name would not be a KFP task's")
		}
		w.preds[tid+"$end"] = []string{tid}
		w.steps[tid] = argoJoin(path, t.Name)
		return []string{tid}, nil
	}
	sub, err := w.dag(name)
	if err != nil {
		return nil, err
	}
	// A ParallelFor is the loop task (a KFP name) calling an iterator
	// template (a loop driver and the fan-out task), whose fan-out runs an
	// iteration template (a driver and the task running the loop's body).
	subPlumbing := argoIterator(sub) || (t.fansOut() && plumbing)
	subPath := path
	if !plumbing {
		subPath = argoJoin(path, t.Name)
	}
	return w.walk(sub, tid, subPath, subPlumbing)
}

// argoIterator tells whether tmpl is KFP's loop iterator: drivers and a
// single task fanning out with withSequence, withParam or withItems.
func argoIterator(tmpl *argoTemplate) bool {
	fanOut, other := 0, 0
	for _, t := range tmpl.DAG.Tasks {
		switch {
		case t.fansOut():
			fanOut++
		case !strings.HasSuffix(t.Template, "-driver"):
			other++
		}
	}
	return fanOut == 1 && other == 0
}

func argoJoin(prefix, name string) string {
	if prefix == "" {
		return name
	}
	return prefix + "/" + name
}

// argoExitHook returns the template a task runs when it exits, if any.
func argoExitHook(t *argoTask) (string, error) {
	hook := t.OnExit
	for event, h := range t.Hooks {
		if event != "exit" {
			return "", fmt.Errorf("hook %q is not an exit hook; KFP emits only hooks.exit", event)
		}
		if hook != "" && hook != h.Template {
			return "", fmt.Errorf("both onExit %q and hooks.exit %q", hook, h.Template)
		}
		hook = h.Template
	}
	return hook, nil
}

// argoUpstreams returns the sibling tasks a task depends on, from depends
// or the older dependencies list.
func argoUpstreams(t *argoTask) ([]string, error) {
	ups := slices.Clone(t.Dependencies)
	if t.Depends != "" {
		names, err := argoDependsNames(t.Depends)
		if err != nil {
			return nil, err
		}
		ups = append(ups, names...)
	}
	return ups, nil
}

// argoStatuses are the results an Argo depends expression may test.
var argoStatuses = map[string]bool{
	"Succeeded": true, "Failed": true, "Errored": true, "Skipped": true, "Omitted": true,
	"Daemoned": true, "AnySucceeded": true, "AllFailed": true,
}

// argoDependsNames parses an Argo depends expression and returns the tasks it
// names. Whatever result is tested, a named task is an upstream.
//
//	expr  = and { "||" and }
//	and   = unary { "&&" unary }
//	unary = "!" unary | "(" expr ")" | task [ "." status ]
func argoDependsNames(expr string) ([]string, error) {
	p := &argoDependsParser{src: expr}
	p.next()
	if err := p.or(); err != nil {
		return nil, fmt.Errorf("depends %q: %w", expr, err)
	}
	if p.tok != "" {
		return nil, fmt.Errorf("depends %q: unexpected %q after the expression", expr, p.tok)
	}
	return p.names, nil
}

type argoDependsParser struct {
	src   string
	pos   int
	tok   string // "" at the end
	names []string
}

// next reads the next token: an operator, a parenthesis, a task.Status, or
// a single stray byte that the grammar then refuses.
func (p *argoDependsParser) next() {
	for p.pos < len(p.src) && strings.ContainsRune(" \t\r\n", rune(p.src[p.pos])) {
		p.pos++
	}
	rest := p.src[p.pos:]
	switch {
	case rest == "":
		p.tok = ""
	case strings.HasPrefix(rest, "&&"), strings.HasPrefix(rest, "||"):
		p.tok = rest[:2]
	default:
		n := strings.IndexFunc(rest, func(r rune) bool { return !argoNameRune(r) })
		if n < 0 {
			n = len(rest)
		}
		if n == 0 {
			n = 1
		}
		p.tok = rest[:n]
	}
	p.pos += len(p.tok)
}

func argoNameRune(r rune) bool {
	return r == '-' || r == '_' || r == '.' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z'
}

func (p *argoDependsParser) or() error {
	if err := p.and(); err != nil {
		return err
	}
	for p.tok == "||" {
		p.next()
		if err := p.and(); err != nil {
			return err
		}
	}
	return nil
}

func (p *argoDependsParser) and() error {
	if err := p.unary(); err != nil {
		return err
	}
	for p.tok == "&&" {
		p.next()
		if err := p.unary(); err != nil {
			return err
		}
	}
	return nil
}

func (p *argoDependsParser) unary() error {
	switch p.tok {
	case "!":
		p.next()
		return p.unary()
	case "(":
		p.next()
		if err := p.or(); err != nil {
			return err
		}
		if p.tok != ")" {
			return fmt.Errorf("missing ) at offset %d", p.pos-len(p.tok))
		}
		p.next()
		return nil
	}
	if p.tok == "" || !argoNameRune(rune(p.tok[0])) {
		return fmt.Errorf("expected a task at offset %d, got %q", p.pos-len(p.tok), p.tok)
	}
	task, status, dotted := strings.Cut(p.tok, ".")
	if task == "" || dotted && !argoStatuses[status] {
		return fmt.Errorf("%q is not task.Status (Status one of Succeeded, Failed, Errored, Skipped, Omitted, Daemoned, AnySucceeded, AllFailed)", p.tok)
	}
	p.names = append(p.names, task)
	p.next()
	return nil
}

// nodeGraph is a dependency graph of task nodes, some of them steps.
type nodeGraph struct {
	// preds are each node's direct upstream nodes.
	preds map[string][]string
	// steps maps a step's node to its KFP task path.
	steps map[string]string
	// exits maps an exit handler's node to the nodes of the steps it handles.
	exits map[string][]string
}

func newNodeGraph() *nodeGraph {
	return &nodeGraph{preds: map[string][]string{}, steps: map[string]string{}, exits: map[string][]string{}}
}

// oracle turns the node graph into the steps' order.
func (n *nodeGraph) oracle() (*oracleGraph, error) {
	g := &oracleGraph{Steps: map[string]bool{}, After: map[string]map[string]bool{}}
	byPath := map[string]string{}
	for node, path := range n.steps {
		if other, dup := byPath[path]; dup {
			return nil, fmt.Errorf("tasks %s and %s are both KFP task %q", other, node, path)
		}
		byPath[path] = node
		g.Steps[path] = true
	}
	memo := map[string]map[string]bool{}
	for node, path := range n.steps {
		ups, err := n.upstream(node, memo, map[string]bool{})
		if err != nil {
			return nil, err
		}
		for u := range ups {
			if up, ok := n.steps[u]; ok {
				if g.After[path] == nil {
					g.After[path] = map[string]bool{}
				}
				g.After[path][up] = true
			}
		}
	}
	for node, handled := range n.exits {
		if g.Exit == nil {
			g.Exit = map[string]map[string]bool{}
		}
		e := map[string]bool{}
		for _, h := range handled {
			e[n.steps[h]] = true
		}
		g.Exit[n.steps[node]] = e
	}
	return g, nil
}

// upstream returns every node node runs after.
func (n *nodeGraph) upstream(node string, memo map[string]map[string]bool, visiting map[string]bool) (map[string]bool, error) {
	if ups, ok := memo[node]; ok {
		return ups, nil
	}
	if visiting[node] {
		return nil, fmt.Errorf("the tasks' dependencies form a cycle through %s", strings.TrimSuffix(node, "$end"))
	}
	visiting[node] = true
	ups := map[string]bool{}
	for _, p := range n.preds[node] {
		ups[p] = true
		pu, err := n.upstream(p, memo, visiting)
		if err != nil {
			return nil, err
		}
		for u := range pu {
			ups[u] = true
		}
	}
	delete(visiting, node)
	memo[node] = ups
	return ups, nil
}

// argoHeader starts a Workflow the way KFP does: the shared templates and
// an entrypoint wrapping the root DAG, whose template the test case writes.
const argoHeader = `
apiVersion: argoproj.io/v1alpha1
kind: Workflow
spec:
  entrypoint: entrypoint
  templates:
  - {name: system-container-driver, container: {image: driver}}
  - {name: system-dag-driver, container: {image: driver}}
  - {name: system-container-impl, container: {image: launcher}}
  - name: system-container-executor
    dag:
      tasks:
      - {name: executor, template: system-container-impl}
  - name: entrypoint
    dag:
      tasks:
      - {name: root-driver, template: system-dag-driver}
      - {name: root, template: root, depends: root-driver.Succeeded}
`

// argoStep writes the driver and executor tasks KFP emits for one container
// task running after depends (the driver carries the task's depends).
func argoStep(name, depends string) string {
	d := ""
	if depends != "" {
		d = ", depends: '" + depends + "'"
	}
	return fmt.Sprintf(`
      - {name: '%[1]s-driver', template: system-container-driver%[2]s}
      - {name: '%[1]s', template: system-container-executor, depends: '%[1]s-driver.Succeeded'}`, name, d)
}

// argoLoop writes the iterator and iteration templates of ParallelFor name
// whose body is template comp-name.
func argoLoop(name string) string {
	return fmt.Sprintf(`
  - name: comp-%[1]s-iteration
    dag:
      tasks:
      - {name: iteration-item-driver, template: system-dag-driver}
      - {name: iteration-item, template: comp-%[1]s, depends: iteration-item-driver.Succeeded}
  - name: comp-%[1]s-%[1]s-iterator
    dag:
      tasks:
      - {name: iteration-driver, template: system-dag-driver}
      - name: iteration-iterations
        template: comp-%[1]s-iteration
        depends: iteration-driver.Succeeded
        withSequence: {count: '{{tasks.iteration-driver.outputs.parameters.iteration-count}}'}`, name)
}

func argoSet(names ...string) map[string]bool {
	s := map[string]bool{}
	for _, n := range names {
		s[n] = true
	}
	return s
}

func TestArgoDependsNames(t *testing.T) {
	cases := map[string]struct {
		expr    string
		want    []string
		wantErr string
	}{
		"one task":             {expr: "a.Succeeded", want: []string{"a"}},
		"and":                  {expr: "a.Succeeded && b-2.Succeeded", want: []string{"a", "b-2"}},
		"all done":             {expr: "a.Succeeded || a.Failed || a.Errored || a.Skipped || a.Omitted", want: []string{"a", "a", "a", "a", "a"}},
		"parentheses and not":  {expr: "(a.Succeeded || a.Skipped) && !(b.Failed)", want: []string{"a", "a", "b"}},
		"a bare task name":     {expr: "a && b.AnySucceeded || c.AllFailed", want: []string{"a", "b", "c"}},
		"spread over lines":    {expr: "a.Succeeded\n  &&\tb.Daemoned", want: []string{"a", "b"}},
		"empty":                {expr: "", wantErr: `expected a task at offset 0, got ""`},
		"an unknown status":    {expr: "a.Done", wantErr: `"a.Done" is not task.Status`},
		"a single &":           {expr: "a.Succeeded & b.Succeeded", wantErr: `unexpected "&"`},
		"a dangling operator":  {expr: "a.Succeeded &&", wantErr: `expected a task at offset 14`},
		"unclosed parenthesis": {expr: "(a.Succeeded", wantErr: `missing )`},
		"two tasks in a row":   {expr: "a.Succeeded b.Succeeded", wantErr: `unexpected "b.Succeeded"`},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got, err := argoDependsNames(tc.expr)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("argoDependsNames(%q) error = %v, want one containing %q", tc.expr, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(tc.want, got); d != "" {
				t.Errorf("argoDependsNames(%q) (-want,+got):\n%s", tc.expr, d)
			}
		})
	}
}

func TestArgoGraph(t *testing.T) {
	cases := map[string]struct {
		workflow string
		want     *oracleGraph
		wantErr  string
	}{
		"a chain orders each step after all before it": {
			workflow: argoHeader + `
  - name: root
    dag:
      tasks:` + argoStep("a", "") + argoStep("b", "a.Succeeded") + argoStep("c", "b.Succeeded"),
			want: &oracleGraph{
				Steps: argoSet("a", "b", "c"),
				After: map[string]map[string]bool{"b": argoSet("a"), "c": argoSet("a", "b")},
			},
		},
		"a sub-DAG's steps inherit its dependencies and a dependency on it waits for all of them": {
			workflow: argoHeader + `
  - name: comp-condition-1
    dag:
      tasks:` + argoStep("x", "") + argoStep("y", "x.Succeeded") + argoStep("z", "") + `
  - name: root
    dag:
      tasks:` + argoStep("a", "") + `
      - {name: condition-1-driver, template: system-dag-driver, depends: a.Succeeded}
      - name: condition-1
        template: comp-condition-1
        depends: condition-1-driver.Succeeded
        when: '{{tasks.condition-1-driver.outputs.parameters.condition}} != false'` + argoStep("d", "condition-1.Succeeded"),
			want: &oracleGraph{
				Steps: argoSet("a", "condition-1/x", "condition-1/y", "condition-1/z", "d"),
				After: map[string]map[string]bool{
					"condition-1/x": argoSet("a"),
					"condition-1/y": argoSet("a", "condition-1/x"),
					"condition-1/z": argoSet("a"),
					"d":             argoSet("a", "condition-1/x", "condition-1/y", "condition-1/z"),
				},
			},
		},
		"a loop's steps appear once, under the loop task": {
			workflow: argoHeader + argoLoop("for-loop-2") + `
  - name: comp-for-loop-2
    dag:
      tasks:` + argoStep("print-op", "") + `
  - name: root
    dag:
      tasks:` + argoStep("gen", "") + `
      - {name: for-loop-2, template: comp-for-loop-2-for-loop-2-iterator, depends: gen.Succeeded}` + argoStep("after-loop", "for-loop-2.Succeeded"),
			want: &oracleGraph{
				Steps: argoSet("gen", "for-loop-2/print-op", "after-loop"),
				After: map[string]map[string]bool{
					"for-loop-2/print-op": argoSet("gen"),
					"after-loop":          argoSet("gen", "for-loop-2/print-op"),
				},
			},
		},
		"an exit hook runs after the task it hangs on, beside it in the DAG": {
			workflow: argoHeader + `
  - name: comp-exit-handler-1
    dag:
      tasks:` + argoStep("fail-op", "") + argoStep("print-op-2", "") + `
  - name: exit-hook-root-print-op
    dag:
      tasks:` + argoStep("print-op", "") + `
  - name: root
    dag:
      tasks:` + argoStep("first", "") + `
      - {name: exit-handler-1-driver, template: system-dag-driver, depends: first.Succeeded}
      - name: exit-handler-1
        template: comp-exit-handler-1
        depends: exit-handler-1-driver.Succeeded
        hooks: {exit: {template: exit-hook-root-print-op}}`,
			want: &oracleGraph{
				Steps: argoSet("first", "exit-handler-1/fail-op", "exit-handler-1/print-op-2", "print-op"),
				After: map[string]map[string]bool{
					"exit-handler-1/fail-op":    argoSet("first"),
					"exit-handler-1/print-op-2": argoSet("first"),
					"print-op":                  argoSet("first", "exit-handler-1/fail-op", "exit-handler-1/print-op-2"),
				},
				Exit: map[string]map[string]bool{"print-op": argoSet("exit-handler-1/fail-op", "exit-handler-1/print-op-2")},
			},
		},
		"an exit hook on a step (ignore_upstream_failure)": {
			workflow: argoHeader + `
  - name: exit-hook-root-cleanup
    dag:
      tasks:` + argoStep("cleanup", "") + `
  - name: root
    dag:
      tasks:
      - {name: fail-op-driver, template: system-container-driver}
      - name: fail-op
        template: system-container-executor
        depends: fail-op-driver.Succeeded
        hooks: {exit: {template: exit-hook-root-cleanup}}`,
			want: &oracleGraph{
				Steps: argoSet("fail-op", "cleanup"),
				After: map[string]map[string]bool{"cleanup": argoSet("fail-op")},
				Exit:  map[string]map[string]bool{"cleanup": argoSet("fail-op")},
			},
		},
		"the Workflow's onExit runs after every step": {
			workflow: strings.Replace(argoHeader, "entrypoint: entrypoint", "entrypoint: entrypoint\n  onExit: notify", 1) + `
  - name: notify
    dag:
      tasks:` + argoStep("notify", "") + `
  - name: root
    dag:
      tasks:` + argoStep("a", "") + argoStep("b", ""),
			want: &oracleGraph{
				Steps: argoSet("a", "b", "notify"),
				After: map[string]map[string]bool{"notify": argoSet("a", "b")},
				Exit:  map[string]map[string]bool{"notify": argoSet("a", "b")},
			},
		},
		"any status, parentheses, negation and the dependencies list name upstreams": {
			workflow: argoHeader + `
  - name: root
    dag:
      tasks:` + argoStep("a", "") + argoStep("b", "") + argoStep("c", "") + argoStep("d", "") +
				argoStep("e", "(a.Succeeded || a.Skipped) && !b.Failed || c.AnySucceeded && (d.Errored||d.Omitted)") + `
      - {name: f-driver, template: system-container-driver, dependencies: [a, b]}
      - {name: f, template: system-container-executor, dependencies: [f-driver]}` + argoStep("g", "e"),
			want: &oracleGraph{
				Steps: argoSet("a", "b", "c", "d", "e", "f", "g"),
				After: map[string]map[string]bool{
					"e": argoSet("a", "b", "c", "d"),
					"f": argoSet("a", "b"),
					"g": argoSet("a", "b", "c", "d", "e"),
				},
			},
		},
		"not a Workflow": {
			workflow: "apiVersion: v1\nkind: ConfigMap\n",
			wantErr:  `kind "ConfigMap" is not an Argo Workflow`,
		},
		"depends on a task that is not a sibling": {
			workflow: argoHeader + `
  - name: root
    dag:
      tasks:` + argoStep("a", "nope.Succeeded"),
			wantErr: `template "root" task "a-driver": depends on "nope", which is not a task of the template`,
		},
		"an unknown status": {
			workflow: argoHeader + `
  - name: root
    dag:
      tasks:` + argoStep("a", "") + argoStep("b", "a.Done"),
			wantErr: `"a.Done" is not task.Status`,
		},
		"unbalanced parentheses": {
			workflow: argoHeader + `
  - name: root
    dag:
      tasks:` + argoStep("a", "") + argoStep("b", "(a.Succeeded || a.Failed"),
			wantErr: `missing )`,
		},
		"a cycle": {
			workflow: argoHeader + `
  - name: root
    dag:
      tasks:` + argoStep("a", "b.Succeeded") + argoStep("b", "a.Succeeded"),
			wantErr: `form a cycle through /root/`,
		},
		"a missing template": {
			workflow: argoHeader + `
  - name: root
    dag:
      tasks:
      - {name: a, template: comp-a}`,
			wantErr: `template "comp-a" is not in spec.templates`,
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got, err := argoGraph([]byte(tc.workflow))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("argoGraph() error = %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(tc.want, got); d != "" {
				t.Errorf("argoGraph() (-want,+got):\n%s", d)
			}
		})
	}
}

// oracleIR reads the same graph from the compiled pipeline itself, to
// check argoGraph against: a task whose component is a DAG stands for the
// tasks in it, one whose component has an executor is a step.
//
// Two kinds of executor are not steps, because KFP's Argo runs no
// container executor for them:
//   - an importer (dsl.importer): Argo runs it as a system-importer task,
//     neither driver nor container executor (and the converter refuses it);
//   - kubernetes.CreatePVC and DeletePVC, compiled to a container with the
//     stub image argostub/createpvc or argostub/deletepvc: Argo runs only
//     their driver (a system-container-driver task named after the KFP task),
//     which creates or deletes the claim itself.
//
// Both still order the tasks around them. A task runs after its
// dependentTasks and the producers of its inputs, and after what the DAG
// task holding it runs after; depending on a DAG task is depending on all
// in it. A task with triggerPolicy ALL_UPSTREAM_TASKS_COMPLETED is an exit
// handler of its dependentTasks, which KFP's Argo makes an exit hook.
func oracleIR(p *Pipeline) (*oracleGraph, error) {
	g := newNodeGraph()
	var walk func(dag *DAGSpec, id string) ([]string, error)
	walk = func(dag *DAGSpec, id string) ([]string, error) {
		end := id + "$end"
		g.preds[end] = append(g.preds[end], id)
		inside := map[string][]string{}
		var all []string
		for name, task := range dag.Tasks {
			tid := argoJoin(id, name)
			g.preds[tid] = append(g.preds[tid], id)
			for _, u := range oracleIRUpstreams(task) {
				if dag.Tasks[u] == nil {
					return nil, fmt.Errorf("task %s: upstream %q is not a task of its DAG", tid, u)
				}
				g.preds[tid] = append(g.preds[tid], argoJoin(id, u)+"$end")
			}
			g.preds[end] = append(g.preds[end], tid+"$end")
			c := p.Spec.Components[task.ComponentRef.Name]
			switch {
			case c == nil:
				return nil, fmt.Errorf("task %s: component %q is not in components", tid, task.ComponentRef.Name)
			case c.DAG != nil:
				steps, err := walk(c.DAG, tid)
				if err != nil {
					return nil, err
				}
				inside[name] = steps
			case c.ExecutorLabel != "":
				ex := p.Spec.DeploymentSpec.Executors[c.ExecutorLabel]
				if ex == nil {
					return nil, fmt.Errorf("task %s: executor %q is not in deploymentSpec", tid, c.ExecutorLabel)
				}
				g.preds[tid+"$end"] = []string{tid}
				if ex.Importer == nil && (ex.Container == nil || !argoStubImages[ex.Container.Image]) {
					g.steps[tid] = tid
					inside[name] = []string{tid}
				}
			default:
				return nil, fmt.Errorf("task %s: component %q has neither dag nor executorLabel", tid, task.ComponentRef.Name)
			}
			all = append(all, inside[name]...)
		}
		for name, task := range dag.Tasks {
			if task.TriggerPolicy == nil || task.TriggerPolicy.Strategy != "ALL_UPSTREAM_TASKS_COMPLETED" {
				continue
			}
			for _, h := range inside[name] {
				for _, u := range task.DependentTasks {
					g.exits[h] = append(g.exits[h], inside[u]...)
				}
			}
		}
		return all, nil
	}
	if _, err := walk(p.Spec.Root.DAG, ""); err != nil {
		return nil, err
	}
	return g.oracle()
}

// oracleIRUpstreams returns the sibling tasks a task runs after.
func oracleIRUpstreams(t *TaskSpec) []string {
	ups := slices.Clone(t.DependentTasks)
	if t.Inputs == nil {
		return ups
	}
	for _, in := range t.Inputs.Parameters {
		if in.TaskOutputParameter != nil {
			ups = append(ups, in.TaskOutputParameter.ProducerTask)
		}
		if in.TaskFinalStatus != nil {
			ups = append(ups, in.TaskFinalStatus.ProducerTask)
		}
	}
	for _, in := range t.Inputs.Artifacts {
		if in.TaskOutputArtifact != nil {
			ups = append(ups, in.TaskOutputArtifact.ProducerTask)
		}
	}
	return ups
}

// argoStubImages are the images of KFP's PVC components, which the Argo
// driver does in place of a container.
var argoStubImages = map[string]bool{"argostub/createpvc": true, "argostub/deletepvc": true}

// TestArgoCorpus reads every Argo compilation of the corpus and checks that
// its steps are the IR's container tasks, in the same order, with the same
// exit handlers.
func TestArgoCorpus(t *testing.T) {
	irs := corpus(t)
	dir := corpusDir()
	files, _ := filepath.Glob(filepath.Join(dir, "argo", "*.yaml"))
	if len(files) == 0 {
		t.Skipf("no Argo compilations in %s/argo (set SLUICE_KFP_IR to the folder that holds argo/)", dir)
	}
	for _, f := range files {
		name := filepath.Base(f)
		t.Run(strings.TrimSuffix(name, ".yaml"), func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			g, err := argoGraph(data)
			if err != nil {
				t.Fatalf("argoGraph: %v", err)
			}
			if len(g.Steps) == 0 {
				t.Fatal("argoGraph found no step")
			}
			ir, ok := irs[name]
			if !ok {
				t.Fatalf("no ir/%s for argo/%s", name, name)
			}
			p, err := Decode(ir)
			if err != nil {
				t.Fatalf("Decode(ir/%s): %v", name, err)
			}
			want, err := oracleIR(p)
			if err != nil {
				t.Fatalf("ir/%s: %v", name, err)
			}
			if d := cmp.Diff(want, g); d != "" {
				t.Errorf("graph of ir/%s (-want) and argo/%s (+got):\n%s", name, name, d)
			}
		})
	}
}
