package controller

import (
	"maps"
	"slices"
	"sync"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/sluice-dev/sluice/annotations"
)

// taskRef names the object of a task within its run's namespace.
type taskRef struct {
	job  bool // a Job, else a bare Pod
	name string
}

// runModel is what the controller keeps of one run between events: every
// task parsed once and its condition compiled once, the graph's edges, the
// last observation of each task, and, per waiting task, how many of its
// upstreams have not finished. An event costs the tasks it touches and their
// direct downstream, never the whole run. The model is rebuilt from the cache
// after a restart, and dropped once the run ended.
type runModel struct {
	nodes map[string]*node
	// down maps a task name to the tasks that name it as an upstream; the
	// upstream need not exist yet.
	down map[string][]string
	// groups holds, per group, its tasks and the tasks waiting for it;
	// down links each member to those.
	groups map[string]*group
	// gone holds the tasks deleted before they finished, with their group:
	// their downstream counts them as finished (a failure) until they are
	// created again. A group's size counts them.
	gone map[string]string
	// unfinished counts the nodes whose phase is not final.
	unfinished int
	// needsVolume is true once a task that passes artifacts was seen;
	// volume once the run's artifact volume is known to exist.
	needsVolume, volume bool
	// deadlines holds when each released task whose pod cannot start fails
	// its start deadline, unless it starts first.
	deadlines map[string]time.Time
	// outcome is the task whose object carries the run's outcome
	// (sluice.dev/run-outcome), "" while none does.
	outcome string
}

// node is one task of the run.
type node struct {
	ref   taskRef
	uid   types.UID
	task  *annotations.Task
	state *taskState // the last observation, with the controller's decision
	// pendingUps counts the upstreams that do not exist or have not
	// finished, group members not created yet included. It says when to
	// decide the task (decide looks at the upstreams themselves): it may
	// fall short, when a group has more tasks than its size says, but never
	// count an upstream that finished.
	pendingUps int
	// cycle is set when the task is on a dependency cycle: it can never run.
	cycle []string
	when  *annotations.When
	// whenErr is why the condition does not compile (admission refused
	// that, unless it was bypassed).
	whenErr error
}

// group is one sluice.dev/group of the run.
type group struct {
	members  map[string]bool
	finished int      // members whose phase is final
	joins    []string // tasks waiting for the group
}

func newRunModel() *runModel {
	return &runModel{nodes: map[string]*node{}, down: map[string][]string{}, groups: map[string]*group{}, gone: map[string]string{},
		deadlines: map[string]time.Time{}}
}

func finished(s *taskState) bool { return s != nil && s.phase.Finished() }

func (m *runModel) group(name string) *group {
	g := m.groups[name]
	if g == nil {
		g = &group{members: map[string]bool{}}
		m.groups[name] = g
	}
	return g
}

// add puts a new task in the model, with its first observation.
func (m *runModel) add(n *node) {
	name := n.task.Name
	m.nodes[name] = n
	m.setDeadline(name, n.state)
	for _, up := range n.task.Upstreams() {
		m.down[up] = append(m.down[up], name)
		u := m.nodes[up]
		if _, gone := m.gone[up]; (u == nil && !gone) || (u != nil && !finished(u.state)) {
			n.pendingUps++
		}
	}
	for _, w := range n.task.AfterGroups {
		g := m.group(w.Group)
		g.joins = append(g.joins, name)
		for member := range g.members {
			m.down[member] = append(m.down[member], name)
		}
		n.pendingUps += w.Size - g.finished
		for _, of := range m.gone {
			if of == w.Group {
				n.pendingUps--
			}
		}
	}
	if n.task.Group != "" {
		g := m.group(n.task.Group)
		g.members[name] = true
		m.down[name] = append(m.down[name], g.joins...)
	}
	if _, ok := m.gone[name]; ok {
		delete(m.gone, name)
		m.upstreamFinished(name, -1) // its downstream waits for it again
	}
	if !finished(n.state) {
		m.unfinished++
	} else {
		m.finish(n, 1)
	}
	if n.task.When != "" {
		n.when, n.whenErr = annotations.CompileWhen(n.task.When, n.task.Upstreams())
	}
	m.needsVolume = m.needsVolume || n.task.NeedsVolume()
}

// remove takes a deleted task out of the model. A task deleted before it
// finished counts as finished for the tasks waiting for it (decide fails
// them), until it is created again. It returns the tasks that waited for it
// as a member of their group: those no longer link to it.
func (m *runModel) remove(name string) (joins []string) {
	n := m.nodes[name]
	if n == nil {
		return nil
	}
	delete(m.deadlines, name)
	if finished(n.state) {
		m.finish(n, -1) // it is missing again
	} else {
		m.unfinished--
		m.gone[name] = n.task.Group
		m.upstreamFinished(name, 1)
	}
	unlink := func(up string) {
		m.down[up] = slices.DeleteFunc(m.down[up], func(d string) bool { return d == name })
		if len(m.down[up]) == 0 {
			delete(m.down, up)
		}
	}
	for _, up := range n.task.Upstreams() {
		unlink(up)
	}
	for _, w := range n.task.AfterGroups {
		g := m.groups[w.Group]
		g.joins = slices.DeleteFunc(g.joins, func(d string) bool { return d == name })
		for member := range g.members {
			unlink(member)
		}
	}
	if n.task.Group != "" {
		g := m.groups[n.task.Group]
		delete(g.members, name)
		joins = g.joins
		m.down[name] = slices.DeleteFunc(m.down[name], func(d string) bool { return slices.Contains(joins, d) })
		if len(m.down[name]) == 0 {
			delete(m.down, name)
		}
	}
	delete(m.nodes, name)
	if m.outcome == name {
		m.outcome = ""
	}
	return joins
}

// observed replaces a task's observation, keeping the counts of its
// downstream and of the run in step with whether it finished.
func (m *runModel) observed(n *node, s *taskState) {
	was, is := finished(n.state), finished(s)
	n.state = s
	m.setDeadline(n.task.Name, s)
	switch {
	case !was && is:
		m.unfinished--
		m.finish(n, 1)
	case was && !is:
		m.unfinished++
		m.finish(n, -1)
	}
}

// finish counts a task as finished (+1) or not any more (-1), for its
// group and its downstream.
func (m *runModel) finish(n *node, delta int) {
	if n.task.Group != "" {
		m.groups[n.task.Group].finished += delta
	}
	m.upstreamFinished(n.task.Name, delta)
}

// upstreamFinished tells the tasks waiting for name that it finished (+1)
// or is not finished any more (-1).
func (m *runModel) upstreamFinished(name string, delta int) {
	for _, d := range m.down[name] {
		if dn := m.nodes[d]; dn != nil {
			dn.pendingUps -= delta
		}
	}
}

// upstreams returns the states of the task's upstreams that exist, the
// members of the groups it waits for included, and those groups.
func (m *runModel) upstreams(n *node, lost func(group string) []string) (map[string]*taskState, []groupWait) {
	ups := make(map[string]*taskState, len(n.task.Upstreams()))
	add := func(up string) {
		if u := m.nodes[up]; u != nil && u.state != nil {
			ups[up] = u.state
		}
	}
	for _, up := range n.task.Upstreams() {
		add(up)
	}
	var groups []groupWait
	for _, w := range n.task.AfterGroups {
		gw := groupWait{GroupWait: w, lost: lost(w.Group)}
		if g := m.groups[w.Group]; g != nil {
			gw.members = slices.Sorted(maps.Keys(g.members))
		}
		for _, member := range gw.members {
			add(member)
		}
		groups = append(groups, gw)
	}
	return ups, groups
}

// retakable reports whether a task decided without running (Skipped,
// UpstreamFailed, or Failed while held) may be taken back to Waiting: its
// object is still held, it is on no cycle, and it waits for no task that
// does not exist (one deleted while the controller was down looks like
// that). decideAll takes it back only when the decision no longer holds.
func (m *runModel) retakable(n *node, groups []groupWait) bool {
	if !decidedWithoutRunning(n.state.phase) || !annotations.IsHeld(n.task, n.state.object()) || n.cycle != nil {
		return false
	}
	for _, up := range n.task.Upstreams() {
		if m.nodes[up] == nil {
			return false
		}
	}
	for _, g := range groups {
		if len(g.members) < g.Size {
			return false
		}
	}
	return true
}

// rerunning adds to wake the tasks decided without running that wait for
// name, which does not show a final phase any more (a new generation of a
// failed task, `kubectl sluice retry`, or a task taken back): their
// decisions may no longer hold.
func (m *runModel) rerunning(name string, wake map[string]bool) {
	for _, d := range m.down[name] {
		if dn := m.nodes[d]; dn != nil && decidedWithoutRunning(dn.state.phase) {
			wake[d] = true
		}
	}
}

// waitsFor reports whether n waits for the task named up: by name, or as a
// member of a group.
func (m *runModel) waitsFor(n *node, up string) bool {
	if _, found := slices.BinarySearch(n.task.Upstreams(), up); found {
		return true
	}
	u := m.nodes[up]
	return u != nil && u.task.Group != "" && n.task.WaitsForGroup(u.task.Group) > 0
}

// markCycle looks for a dependency cycle through a task just added: a path
// from it, through tasks that wait for it, back to one of its upstreams.
// Every task on it is marked. Only tasks created after tasks that wait for
// them cost anything here.
func (m *runModel) markCycle(n *node) {
	if !n.task.Held() || len(m.down[n.task.Name]) == 0 {
		return
	}
	start := n.task.Name
	parent := map[string]string{start: ""}
	queue := []string{start}
	for len(queue) > 0 {
		cur := queue[0]
		queue = queue[1:]
		for _, d := range m.down[cur] {
			if _, seen := parent[d]; seen || m.nodes[d] == nil {
				continue
			}
			parent[d] = cur
			if !m.waitsFor(n, d) {
				queue = append(queue, d)
				continue
			}
			ring := []string{start}
			for p := d; p != start; p = parent[p] {
				ring = append(ring, p)
			}
			slices.Reverse(ring[1:]) // start, then the tasks in the order they would run
			for i, name := range ring {
				rotated := append(slices.Clone(ring[i:]), ring[:i]...)
				m.nodes[name].cycle = append(rotated, name)
			}
			return
		}
	}
}

// markCycles marks the tasks on every dependency cycle of the run, in one
// pass over the graph (Tarjan's algorithm, in annotations.Graph).
func (m *runModel) markCycles() {
	tasks := make([]*annotations.Task, 0, len(m.nodes))
	for _, n := range m.nodes {
		tasks = append(tasks, n.task)
	}
	g, _ := annotations.NewGraph(tasks)
	_, cycles := g.Schedule()
	for name, cycle := range cycles {
		m.nodes[name].cycle = cycle
	}
}

// inbox collects, between two reconciles of a run, the tasks whose objects
// changed (from the event handlers), so that a reconcile looks at those only.
type inbox struct {
	mu   sync.Mutex
	runs map[types.NamespacedName]map[string]taskRef
}

func newInbox() *inbox { return &inbox{runs: map[types.NamespacedName]map[string]taskRef{}} }

// taskOf says which task obj belongs to: its run, the task's name, and the
// task's object (obj itself, or the Job of a Job's pod). It reads labels
// only, as the webhook wrote them; ok is false for an object of no run.
func taskOf(obj client.Object) (run types.NamespacedName, name string, ref taskRef, ok bool) {
	if annotations.RunOf(obj) == "" {
		return run, "", ref, false
	}
	ref = taskRef{name: obj.GetName()}
	if job := annotations.JobRef(obj); job != nil {
		ref = taskRef{job: true, name: job.Name}
	} else if _, isJob := obj.(*batchv1.Job); isJob {
		ref.job = true
	}
	name = obj.GetLabels()[annotations.TaskLabel]
	if name == "" {
		name = ref.name // the default task name, as Parse gives it
	}
	return types.NamespacedName{Namespace: obj.GetNamespace(), Name: annotations.RunOf(obj)}, name, ref, true
}

// touch records that the task object obj belongs to (a Job, a bare Pod, or
// the Job of a pod) changed.
func (b *inbox) touch(obj client.Object) {
	key, name, ref, ok := taskOf(obj)
	if !ok {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.runs[key] == nil {
		b.runs[key] = map[string]taskRef{}
	}
	b.runs[key][name] = ref
}

// drain returns and forgets what changed in a run.
func (b *inbox) drain(key types.NamespacedName) map[string]taskRef {
	b.mu.Lock()
	defer b.mu.Unlock()
	touched := b.runs[key]
	delete(b.runs, key)
	return touched
}

// setDeadline keeps when the task fails its start deadline, if it can.
func (m *runModel) setDeadline(name string, s *taskState) {
	if s.deadline.IsZero() {
		delete(m.deadlines, name)
	} else {
		m.deadlines[name] = s.deadline
	}
}

// due returns the tasks whose start deadline passed by now, and how long
// until the next one does (0: none is pending).
func (m *runModel) due(now time.Time) (names []string, next time.Duration) {
	for name, at := range m.deadlines {
		if wait := at.Sub(now); wait <= 0 {
			names = append(names, name)
		} else if next == 0 || wait < next {
			next = wait
		}
	}
	slices.Sort(names)
	return names, next
}
