package index

import (
	"context"
	"slices"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/types"

	"github.com/sluice-dev/sluice/annotations"
)

// Conflicts is what keeps a new task out of its run.
type Conflicts struct {
	// Duplicate is another object that already holds the task's name.
	Duplicate *Entry
	// Inputs are the task's inputs that name an output their producer does
	// not declare.
	Inputs []BadInput
	// Cycle is the dependency cycle the task would close, as the tasks would
	// run, starting and ending with the new task: a -> b -> c -> a.
	Cycle []string
	// Groups are the groups the task would overfill or give a second size.
	Groups []GroupConflict
}

// GroupConflict is a group whose size the new task contradicts: as a
// member of a group that is full, or as a task that waits for a group with
// another size than the tasks waiting for it already do, or a smaller one
// than it has.
type GroupConflict struct {
	Group string
	// Join is a task of the run that waits for the group, and Size the
	// size it gives; Join is empty when Size is the new task's own.
	Join string
	Size int
	// Members is how many tasks the group has, the new one not counted.
	Members int
}

// BadInput is an input whose producer exists but does not declare the output.
type BadInput struct {
	Input    annotations.Input
	Producer Entry
}

// None reports whether nothing conflicts.
func (c Conflicts) None() bool {
	return c.Duplicate == nil && len(c.Inputs) == 0 && c.Cycle == nil && len(c.Groups) == 0
}

// Exists asks the API server whether an object exists: a create can fail
// after admission, so a duplicate that only admission has seen, and for
// longer than InFlightFor, is looked up.
type Exists func(ctx context.Context, ref Ref) (bool, error)

// Admit checks a task about to be created (its object ref, and UID when the
// API server already assigned one) against the other tasks of its run: its
// name is free, the outputs its inputs name are declared, and it closes no
// cycle. Upstreams that do not exist yet are fine: they are waited for. When
// nothing conflicts and record is true (not a dry run), the task enters the
// index at once, so the next object of the same apply sees it.
//
// The cost is that of the task's own keys, plus its existing downstream when
// it is created after tasks that wait for it; never that of the whole run.
func (x *Runs) Admit(ctx context.Context, ref Ref, uid types.UID, task *annotations.Task, record bool, exists Exists) (Conflicts, error) {
	if !x.Synced() {
		return Conflicts{}, ErrNotSynced
	}
	for attempt := 0; ; attempt++ {
		x.mu.Lock()
		x.expire()
		c := x.check(ref, task)
		if dup := c.Duplicate; dup != nil && x.unconfirmed(dup) && exists != nil && attempt < 3 {
			stale := *dup
			x.mu.Unlock()
			ok, err := exists(ctx, stale.Ref)
			if err != nil {
				return Conflicts{}, err
			}
			if !ok {
				x.mu.Lock()
				if r := x.runs[task.RunKey()]; r != nil && r.byRef[stale.Ref] == dup && dup.Pending() {
					r.remove(dup)
				}
				x.mu.Unlock()
			}
			continue
		}
		if c.None() && record {
			x.admit(ref, uid, task)
		}
		x.mu.Unlock()
		return c, nil
	}
}

// InFlightFor is how long after its admission an object that no informer
// delivered yet is taken to exist without asking: its create may still be on
// its way to etcd, and a lookup would not find it yet.
const InFlightFor = 10 * time.Second

// unconfirmed reports whether a pending entry is old enough to be looked up:
// its create should have landed, but no informer delivered it.
func (x *Runs) unconfirmed(e *Entry) bool {
	return e.Pending() && x.now().Sub(e.admitted) > InFlightFor
}

// check finds the conflicts of task; x.mu is held.
func (x *Runs) check(ref Ref, task *annotations.Task) Conflicts {
	var c Conflicts
	r := x.runs[task.RunKey()]
	if r == nil {
		return c
	}
	others := func(name string) []*Entry {
		var out []*Entry
		for _, e := range r.byName[name] {
			if e.Ref != ref {
				out = append(out, e)
			}
		}
		slices.SortFunc(out, func(a, b *Entry) int { return strings.Compare(a.Ref.String(), b.Ref.String()) })
		return out
	}
	if dups := others(task.Name); len(dups) > 0 {
		c.Duplicate = dups[0]
		return c
	}
	for _, in := range task.Inputs {
		producers := others(in.Task)
		if len(producers) > 0 && !producers[0].Task.HasOutput(in.Output) {
			c.Inputs = append(c.Inputs, BadInput{Input: in, Producer: *producers[0]})
		}
	}
	c.Groups = r.groupConflicts(task)
	c.Cycle = r.cycleThrough(task)
	return c
}

// groupConflicts checks the new task against the sizes its run's tasks give
// its group and the groups it waits for.
func (r *run) groupConflicts(task *annotations.Task) []GroupConflict {
	// How many tasks the group has besides this one, and the tasks that
	// wait for it besides this one, by name.
	members := func(g string) int {
		n := len(r.members[g])
		if _, in := r.members[g][task.Name]; in {
			n--
		}
		return n
	}
	joins := func(g string) []string {
		var names []string
		for n := range r.joins[g] {
			if n != task.Name {
				names = append(names, n)
			}
		}
		slices.Sort(names)
		return names
	}
	var out []GroupConflict
	if g := task.Group; g != "" {
		for _, join := range joins(g) {
			if size, n := r.byName[join][0].Task.WaitsForGroup(g), members(g); n >= size {
				out = append(out, GroupConflict{Group: g, Join: join, Size: size, Members: n})
				break
			}
		}
	}
	for _, w := range task.AfterGroups {
		if others := joins(w.Group); len(others) > 0 {
			if size := r.byName[others[0]][0].Task.WaitsForGroup(w.Group); size != w.Size {
				out = append(out, GroupConflict{Group: w.Group, Join: others[0], Size: size, Members: members(w.Group)})
				continue
			}
		}
		if n := members(w.Group); n > w.Size {
			out = append(out, GroupConflict{Group: w.Group, Size: w.Size, Members: n})
		}
	}
	return out
}

// cycleThrough returns the cycle task would close: a path from it, through
// tasks that wait for it, to one of its upstreams. Breadth-first, so the
// shortest such cycle is named.
func (r *run) cycleThrough(task *annotations.Task) []string {
	ups := task.Upstreams()
	waitsFor := func(name string) bool {
		if _, found := slices.BinarySearch(ups, name); found {
			return true
		}
		g := r.groupOf(name)
		return g != "" && task.WaitsForGroup(g) > 0
	}
	if len(ups) == 0 && len(task.AfterGroups) == 0 {
		return nil
	}
	parent := map[string]string{task.Name: ""}
	queue := []string{task.Name}
	for len(queue) > 0 {
		n := queue[0]
		queue = queue[1:]
		group := r.groupOf(n)
		if n == task.Name {
			group = task.Group
		}
		for _, d := range r.downstream(n, group) {
			if _, seen := parent[d]; seen {
				continue
			}
			parent[d] = n
			if waitsFor(d) {
				path := []string{task.Name}
				for p := d; p != task.Name; p = parent[p] {
					path = append(path, p)
				}
				slices.Reverse(path[1:])
				return append(path, task.Name)
			}
			queue = append(queue, d)
		}
	}
	return nil
}

// admit records an admitted task as pending; x.mu is held. An object of the
// same name that the informers delivered stays in place: either its delete
// event is on its way (the new entry then takes its place), or this create
// fails because the name is taken, and the real entry must not expire.
func (x *Runs) admit(ref Ref, uid types.UID, task *annotations.Task) {
	e := &Entry{Ref: ref, UID: uid, Task: task, admitted: x.now()}
	if r := x.runs[task.RunKey()]; r != nil {
		if cur := r.byRef[ref]; cur != nil && !cur.Pending() {
			if cur.UID != uid {
				cur.next = e
			}
			return
		}
	}
	x.put(e)
	x.pending = append(x.pending, e)
}

// expire drops admitted entries that no informer delivered in time; x.mu is
// held. Entries are in admission order, so this stops at the first young one.
func (x *Runs) expire() {
	cutoff := x.now().Add(-x.pendingFor)
	i := 0
	for ; i < len(x.pending); i++ {
		e := x.pending[i]
		if !e.Pending() {
			continue // delivered since
		}
		if e.admitted.After(cutoff) {
			break
		}
		key := e.Task.RunKey()
		if r := x.runs[key]; r != nil && r.byRef[e.Ref] == e {
			r.remove(e)
			if r.empty() {
				delete(x.runs, key)
			}
		}
	}
	x.pending = x.pending[i:]
}
