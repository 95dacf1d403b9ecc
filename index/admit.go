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
}

// BadInput is an input whose producer exists but does not declare the output.
type BadInput struct {
	Input    annotations.Input
	Producer Entry
}

// None reports whether nothing conflicts.
func (c Conflicts) None() bool { return c.Duplicate == nil && len(c.Inputs) == 0 && c.Cycle == nil }

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
	c.Cycle = r.cycleThrough(task)
	return c
}

// cycleThrough returns the cycle task would close: a path from it, through
// tasks that wait for it, to one of its upstreams. Breadth-first, so the
// shortest such cycle is named.
func (r *run) cycleThrough(task *annotations.Task) []string {
	ups := task.Upstreams()
	if len(ups) == 0 || len(r.down[task.Name]) == 0 {
		return nil
	}
	parent := map[string]string{task.Name: ""}
	queue := []string{task.Name}
	for len(queue) > 0 {
		n := queue[0]
		queue = queue[1:]
		next := make([]string, 0, len(r.down[n]))
		for d := range r.down[n] {
			next = append(next, d)
		}
		slices.Sort(next)
		for _, d := range next {
			if _, seen := parent[d]; seen {
				continue
			}
			parent[d] = n
			if _, found := slices.BinarySearch(ups, d); found {
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
