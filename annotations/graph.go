package annotations

import (
	"fmt"
	"slices"
	"strings"
)

// Graph is the task graph of one run.
type Graph struct {
	tasks map[string]*Task
	// ups holds each task's upstreams: those it names, and the members of
	// the groups it waits for.
	ups        map[string][]string
	downstream map[string][]string
	members    map[string][]string // group -> its tasks, sorted
}

// GraphError is a problem of one task's place in its run's graph.
type GraphError struct {
	// Task is the task whose key states the problem, Key that key ("" for
	// the task's name itself).
	Task *Task
	Key  string
	msg  string
}

func (e *GraphError) Error() string { return e.msg }

func graphErrorf(t *Task, key, format string, args ...any) *GraphError {
	return &GraphError{Task: t, Key: key, msg: fmt.Sprintf(format, args...)}
}

// NewGraph builds the graph of the given tasks, which must belong to one run.
// It reports duplicate task names (the first one is kept), groups with more
// tasks than a task waiting for them expects, and cycles.
func NewGraph(tasks []*Task) (*Graph, []*GraphError) {
	g := &Graph{tasks: map[string]*Task{}, ups: map[string][]string{}, downstream: map[string][]string{}, members: map[string][]string{}}
	var errs []*GraphError
	for _, t := range tasks {
		if _, dup := g.tasks[t.Name]; dup {
			errs = append(errs, graphErrorf(t, "", "task %q appears more than once in run %q", t.Name, t.Run))
			continue
		}
		g.tasks[t.Name] = t
	}
	names := g.Names()
	for _, name := range names {
		if group := g.tasks[name].Group; group != "" {
			g.members[group] = append(g.members[group], name)
		}
	}
	for _, name := range names {
		t := g.tasks[name]
		ups := t.Upstreams()
		for _, w := range t.AfterGroups {
			ups = append(ups, g.members[w.Group]...)
		}
		if len(t.AfterGroups) > 0 {
			slices.Sort(ups)
			ups = slices.Compact(ups)
		}
		g.ups[name] = ups
		for _, up := range ups {
			g.downstream[up] = append(g.downstream[up], name)
		}
	}
	errs = append(errs, g.groupErrors()...)
	if cycle := g.Cycle(); cycle != nil {
		t := g.tasks[cycle[1]] // waits for cycle[0]
		errs = append(errs, graphErrorf(t, t.KeyNaming(cycle[0]), "run %q has a dependency cycle: %s", tasks[0].Run, strings.Join(cycle, " -> ")))
	}
	return g, errs
}

// groupErrors reports the groups that tasks wait for with different sizes,
// or that have more tasks than a task waiting for them expects.
func (g *Graph) groupErrors() []*GraphError {
	var errs []*GraphError
	size, by := map[string]int{}, map[string]string{}
	for _, name := range g.Names() {
		t := g.tasks[name]
		for _, w := range t.AfterGroups {
			switch prev, seen := size[w.Group]; {
			case !seen:
				size[w.Group], by[w.Group] = w.Size, name
				if n := len(g.members[w.Group]); n > w.Size {
					errs = append(errs, graphErrorf(t, AfterGroupAnnotation, "run %q: group %q has %d tasks, but task %q waits for %d (%s)", t.Run, w.Group, n, name, w.Size, AfterGroupAnnotation))
				}
			case prev != w.Size:
				errs = append(errs, graphErrorf(t, AfterGroupAnnotation, "run %q: task %q waits for group %q of %d tasks, but task %q for %d: a group has one size", t.Run, name, w.Group, w.Size, by[w.Group], prev))
			}
		}
	}
	return errs
}

// Upstreams returns every task the named one waits for: by name, and the
// members of the groups it waits for; sorted.
func (g *Graph) Upstreams(name string) []string { return g.ups[name] }

// Members returns the tasks of a group, sorted.
func (g *Graph) Members(group string) []string { return g.members[group] }

// Task returns the named task, or nil.
func (g *Graph) Task(name string) *Task { return g.tasks[name] }

// Names returns the task names, sorted.
func (g *Graph) Names() []string {
	names := make([]string, 0, len(g.tasks))
	for n := range g.tasks {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// Downstream returns the tasks that name the given task as an upstream, sorted.
// The upstream need not exist in the graph.
func (g *Graph) Downstream(name string) []string { return g.downstream[name] }

// Missing returns the upstreams named by tasks of the graph that are not in it.
func (g *Graph) Missing() []string {
	var missing []string
	for up := range g.downstream {
		if _, ok := g.tasks[up]; !ok {
			missing = append(missing, up)
		}
	}
	slices.Sort(missing)
	return missing
}

// Cycle returns one dependency cycle as a path that starts and ends with the
// same task (a -> b -> a), or nil when the graph is acyclic. Upstreams that are
// not in the graph are ignored.
func (g *Graph) Cycle() []string {
	const (
		unvisited = iota
		onStack
		done
	)
	state := map[string]int{}
	var stack []string
	var visit func(string) []string
	visit = func(n string) []string {
		state[n] = onStack
		stack = append(stack, n)
		for _, up := range g.ups[n] {
			if _, ok := g.tasks[up]; !ok {
				continue
			}
			switch state[up] {
			case onStack:
				i := slices.Index(stack, up)
				cycle := slices.Clone(stack[i:])
				slices.Reverse(cycle) // upstream first: the order things would run in
				return append([]string{cycle[len(cycle)-1]}, cycle...)
			case unvisited:
				if c := visit(up); c != nil {
					return c
				}
			}
		}
		stack = stack[:len(stack)-1]
		state[n] = done
		return nil
	}
	for _, n := range g.Names() {
		if state[n] == unvisited {
			if c := visit(n); c != nil {
				return c
			}
		}
	}
	return nil
}

// Order returns the tasks in a topological order (upstreams first, ties by
// name), or an error naming a cycle.
func (g *Graph) Order() ([]string, error) {
	if c := g.Cycle(); c != nil {
		return nil, fmt.Errorf("dependency cycle: %s", strings.Join(c, " -> "))
	}
	order, _ := g.Schedule()
	return order, nil
}

// Depths returns each task's depth: 0 for a task with no upstream in the
// graph, else one more than its deepest upstream's. Tasks on a cycle count
// as Schedule orders them, their upstreams disregarded.
func (g *Graph) Depths() map[string]int {
	order, cycles := g.Schedule()
	depth := make(map[string]int, len(order))
	for _, n := range order {
		depth[n] = 0
		if _, onCycle := cycles[n]; onCycle {
			continue
		}
		for _, up := range g.ups[n] {
			if d, ok := depth[up]; ok && d+1 > depth[n] {
				depth[n] = d + 1
			}
		}
	}
	return depth
}

// Schedule returns every task in an order in which each comes after its
// upstreams, and, for each task on a dependency cycle, the shortest cycle
// through it as the tasks would run (a -> b -> a). The upstreams of a task
// on a cycle are disregarded: it can never run, and the rest of the graph is
// ordered around it.
func (g *Graph) Schedule() (order []string, cycles map[string][]string) {
	cycles = g.cycles()
	indegree := map[string]int{}
	for _, n := range g.Names() {
		if _, onCycle := cycles[n]; onCycle {
			continue
		}
		for _, up := range g.ups[n] {
			if _, ok := g.tasks[up]; ok {
				indegree[n]++
			}
		}
	}
	var ready []string
	for _, n := range g.Names() {
		if indegree[n] == 0 {
			ready = append(ready, n)
		}
	}
	for len(ready) > 0 {
		n := ready[0]
		ready = ready[1:]
		order = append(order, n)
		var next []string
		for _, d := range g.downstream[n] {
			if _, onCycle := cycles[d]; onCycle {
				continue
			}
			if indegree[d]--; indegree[d] == 0 {
				next = append(next, d)
			}
		}
		if len(next) > 0 {
			ready = append(ready, next...)
			slices.Sort(ready)
		}
	}
	return order, cycles
}

// cycles finds the strongly connected components of more than one task
// (Tarjan) and, for each of their tasks, the shortest cycle through it.
func (g *Graph) cycles() map[string][]string {
	index, low := map[string]int{}, map[string]int{}
	onStack := map[string]bool{}
	var stack []string
	var components [][]string
	next := 0
	var connect func(string)
	connect = func(n string) {
		index[n], low[n] = next, next
		next++
		stack = append(stack, n)
		onStack[n] = true
		for _, d := range g.downstream[n] {
			if _, seen := index[d]; !seen {
				connect(d)
				low[n] = min(low[n], low[d])
			} else if onStack[d] {
				low[n] = min(low[n], index[d])
			}
		}
		if low[n] == index[n] {
			var comp []string
			for {
				m := stack[len(stack)-1]
				stack = stack[:len(stack)-1]
				onStack[m] = false
				comp = append(comp, m)
				if m == n {
					break
				}
			}
			if len(comp) > 1 {
				components = append(components, comp)
			}
		}
	}
	for _, n := range g.Names() {
		if _, seen := index[n]; !seen {
			connect(n)
		}
	}
	cycles := map[string][]string{}
	for _, comp := range components {
		in := map[string]bool{}
		for _, m := range comp {
			in[m] = true
		}
		for _, m := range comp {
			cycles[m] = g.shortestCycle(m, in)
		}
	}
	return cycles
}

// shortestCycle walks downstream from start, within the given tasks, back to
// start: start -> ... -> start.
func (g *Graph) shortestCycle(start string, within map[string]bool) []string {
	parent := map[string]string{}
	queue := []string{start}
	for len(queue) > 0 {
		n := queue[0]
		queue = queue[1:]
		for _, d := range g.downstream[n] {
			if !within[d] {
				continue
			}
			if d == start {
				path := []string{start}
				for p := n; p != start; p = parent[p] {
					path = append(path, p)
				}
				slices.Reverse(path[1:])
				return append(path, start)
			}
			if _, seen := parent[d]; !seen {
				parent[d] = n
				queue = append(queue, d)
			}
		}
	}
	return nil
}
