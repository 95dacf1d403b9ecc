// Package index keeps the tasks of every run in memory, fed by the manager's
// informers, so that admission checks a new task against its run in time
// proportional to the task, not to the run. What this replica admitted but its
// informers have not delivered yet is in the index too (read-your-writes): the
// documents of one `kubectl apply -f` see each other.
package index

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/manager"

	"github.com/sluice-dev/sluice/annotations"
)

// Ref names the object of a task.
type Ref struct {
	Kind      string // Job or Pod
	Namespace string
	Name      string
}

func (r Ref) String() string { return r.Kind + " " + r.Namespace + "/" + r.Name }

// RefOf returns the reference of a Job or Pod.
func RefOf(obj client.Object) Ref {
	kind := "Pod"
	if _, ok := obj.(*batchv1.Job); ok {
		kind = "Job"
	}
	return Ref{Kind: kind, Namespace: obj.GetNamespace(), Name: obj.GetName()}
}

// Entry is one task of a run as the index knows it.
type Entry struct {
	Ref  Ref
	UID  types.UID
	Task *annotations.Task
	// admitted is when this replica admitted the object; it is zero once an
	// informer delivered the object.
	admitted time.Time
	// next is an object of the same name admitted while this one was still
	// in the index (deleted, its delete event not delivered yet; or a create
	// that will fail because the name is taken). It takes this entry's place
	// when this one is forgotten.
	next *Entry
}

// Pending reports whether only admission has seen the entry so far.
func (e *Entry) Pending() bool { return !e.admitted.IsZero() }

// run is the index of one run.
type run struct {
	byName map[string][]*Entry // task name -> entries (more than one only when a duplicate slipped in)
	byRef  map[Ref]*Entry
	// down maps a task name to the tasks that name it as an upstream, with
	// the number of entries that do. The upstream need not exist yet.
	down map[string]map[string]int
	// members and joins map a group to its tasks, and to the tasks that
	// wait for it, with the number of entries of each name.
	members, joins map[string]map[string]int
}

func newRun() *run {
	return &run{
		byName: map[string][]*Entry{}, byRef: map[Ref]*Entry{}, down: map[string]map[string]int{},
		members: map[string]map[string]int{}, joins: map[string]map[string]int{},
	}
}

func (r *run) add(e *Entry) {
	r.byRef[e.Ref] = e
	r.byName[e.Task.Name] = append(r.byName[e.Task.Name], e)
	r.link(e, 1)
}

func (r *run) remove(e *Entry) {
	delete(r.byRef, e.Ref)
	name := e.Task.Name
	r.byName[name] = slices.DeleteFunc(r.byName[name], func(x *Entry) bool { return x == e })
	if len(r.byName[name]) == 0 {
		delete(r.byName, name)
	}
	r.link(e, -1)
}

// link counts an entry's edges in (+1) or out (-1): its upstreams, its
// group, and the groups it waits for.
func (r *run) link(e *Entry, delta int) {
	name := e.Task.Name
	for _, up := range e.Task.Upstreams() {
		count(r.down, up, name, delta)
	}
	if g := e.Task.Group; g != "" {
		count(r.members, g, name, delta)
	}
	for _, w := range e.Task.AfterGroups {
		count(r.joins, w.Group, name, delta)
	}
}

func count(m map[string]map[string]int, key, name string, delta int) {
	if m[key] == nil {
		m[key] = map[string]int{}
	}
	if m[key][name] += delta; m[key][name] <= 0 {
		delete(m[key], name)
	}
	if len(m[key]) == 0 {
		delete(m, key)
	}
}

// downstream returns the tasks that wait for the named one: by name, or
// as a member of its group.
func (r *run) downstream(name, group string) []string {
	next := make([]string, 0, len(r.down[name])+len(r.joins[group]))
	for d := range r.down[name] {
		next = append(next, d)
	}
	if group != "" {
		for d := range r.joins[group] {
			next = append(next, d)
		}
	}
	slices.Sort(next)
	return slices.Compact(next)
}

// groupOf returns the group of the named task, if it exists.
func (r *run) groupOf(name string) string {
	if es := r.byName[name]; len(es) > 0 {
		return es[0].Task.Group
	}
	return ""
}

func (r *run) empty() bool { return len(r.byRef) == 0 }

// DefaultPendingFor is how long an admitted object that no informer has
// delivered stays in the index. Past it, the create is taken to have failed
// after admission (another webhook refused it, or etcd did).
const DefaultPendingFor = time.Minute

// Runs is the index of every run's tasks. The zero value is not usable; call New.
type Runs struct {
	mu         sync.Mutex
	runs       map[string]*run // namespace/run
	now        func() time.Time
	pendingFor time.Duration
	synced     []toolscache.InformerSynced
	// pending holds the admitted entries in admission order, to expire them.
	pending []*Entry
}

// New returns an empty index.
func New() *Runs {
	return &Runs{runs: map[string]*run{}, now: time.Now, pendingFor: DefaultPendingFor}
}

// Of returns a synced index of exactly the given objects, fed by no
// informer: for tests and for checks of objects that are not in a cluster.
func Of(objs ...client.Object) *Runs {
	x := New()
	x.synced = []toolscache.InformerSynced{func() bool { return true }}
	for _, o := range objs {
		x.Observe(o)
	}
	return x
}

func runKey(ns, name string) string { return ns + "/" + name }

// Observe records an object an informer delivered (added or updated). Objects
// that are not tasks (no pipeline label, keys that do not parse, pods of a
// Job) are ignored; the graph keys are immutable, so an update of a known
// object changes nothing but its pending mark.
func (x *Runs) Observe(obj client.Object) {
	if !annotations.IsSluiceObject(obj) || annotations.ControlledByJob(obj) {
		return
	}
	ref := RefOf(obj)
	key := runKey(obj.GetNamespace(), annotations.RunOf(obj))
	x.mu.Lock()
	defer x.mu.Unlock()
	if r := x.runs[key]; r != nil {
		if e := r.byRef[ref]; e != nil && (e.UID == obj.GetUID() || e.UID == "") {
			e.UID, e.admitted = obj.GetUID(), time.Time{}
			return
		}
	}
	task, errs := annotations.Parse(obj)
	if len(errs) > 0 {
		return
	}
	x.put(&Entry{Ref: ref, UID: obj.GetUID(), Task: task})
}

// put adds e, replacing the entry of the same object; x.mu is held.
func (x *Runs) put(e *Entry) {
	key := e.Task.RunKey()
	r := x.runs[key]
	if r == nil {
		r = newRun()
		x.runs[key] = r
	}
	if old := r.byRef[e.Ref]; old != nil {
		r.remove(old)
	}
	r.add(e)
}

// Forget removes a deleted object. An entry of the same name but another
// UID (the object was created again) stays.
func (x *Runs) Forget(obj client.Object) {
	key := runKey(obj.GetNamespace(), annotations.RunOf(obj))
	x.mu.Lock()
	defer x.mu.Unlock()
	r := x.runs[key]
	if r == nil {
		return
	}
	e := r.byRef[RefOf(obj)]
	if e == nil || (e.UID != "" && obj.GetUID() != "" && e.UID != obj.GetUID()) {
		return
	}
	r.remove(e)
	if next := e.next; next != nil && next.admitted.After(x.now().Add(-x.pendingFor)) {
		r.add(next)
		x.pending = append(x.pending, next)
	}
	if r.empty() {
		delete(x.runs, key)
	}
}

// Tasks returns the entries of a run, sorted by task name and then object.
func (x *Runs) Tasks(ns, name string) []Entry {
	x.mu.Lock()
	defer x.mu.Unlock()
	r := x.runs[runKey(ns, name)]
	if r == nil {
		return nil
	}
	out := make([]Entry, 0, len(r.byRef))
	for _, e := range r.byRef {
		out = append(out, *e)
	}
	slices.SortFunc(out, func(a, b Entry) int {
		if c := strings.Compare(a.Task.Name, b.Task.Name); c != 0 {
			return c
		}
		return strings.Compare(a.Ref.String(), b.Ref.String())
	})
	return out
}

// Synced reports whether every informer feeding the index delivered its
// initial list: before that, a check could miss tasks that exist.
func (x *Runs) Synced() bool {
	x.mu.Lock()
	synced := x.synced
	x.mu.Unlock()
	if len(synced) == 0 {
		return false
	}
	for _, s := range synced {
		if !s() {
			return false
		}
	}
	return true
}

// ErrNotSynced is returned by Admit before the informers delivered their
// initial lists.
var ErrNotSynced = errors.New("sluice's task index is still loading the cluster's Jobs and Pods (the manager just started); retry in a moment")

// ReadyCheck is a readyz check that fails until the index is synced, so
// that no admission is routed to a replica that would check against half a run.
func (x *Runs) ReadyCheck(*http.Request) error {
	if !x.Synced() {
		return ErrNotSynced
	}
	return nil
}

// InformerSource gives the informers of a kind; the manager's cache is one.
type InformerSource interface {
	GetInformer(ctx context.Context, obj client.Object, opts ...cache.InformerGetOption) (cache.Informer, error)
}

// Feed registers the index with the Job and Pod informers of the source.
func (x *Runs) Feed(ctx context.Context, src InformerSource) error {
	for _, obj := range []client.Object{&batchv1.Job{}, &corev1.Pod{}} {
		inf, err := src.GetInformer(ctx, obj, cache.BlockUntilSynced(false))
		if err != nil {
			return fmt.Errorf("getting the %T informer for the task index: %w", obj, err)
		}
		reg, err := inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
			AddFunc:    func(o any) { x.observeAny(o) },
			UpdateFunc: func(_, o any) { x.observeAny(o) },
			DeleteFunc: func(o any) { x.forgetAny(o) },
		})
		if err != nil {
			return fmt.Errorf("registering the task index with the %T informer: %w", obj, err)
		}
		x.mu.Lock()
		x.synced = append(x.synced, reg.HasSynced)
		x.mu.Unlock()
	}
	return nil
}

func (x *Runs) observeAny(o any) {
	if obj, ok := o.(client.Object); ok {
		x.Observe(obj)
	}
}

func (x *Runs) forgetAny(o any) {
	if d, ok := o.(toolscache.DeletedFinalStateUnknown); ok {
		o = d.Obj
	}
	if obj, ok := o.(client.Object); ok {
		x.Forget(obj)
	}
}

// Setup returns an index fed by the manager's Job and Pod informers, and
// makes the manager's readiness wait for it.
func Setup(ctx context.Context, mgr manager.Manager) (*Runs, error) {
	x := New()
	if err := x.Feed(ctx, mgr.GetCache()); err != nil {
		return nil, err
	}
	if err := mgr.AddReadyzCheck("task-index", x.ReadyCheck); err != nil {
		return nil, fmt.Errorf("adding the task index ready check: %w", err)
	}
	return x, nil
}
