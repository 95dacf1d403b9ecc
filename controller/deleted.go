package controller

import (
	"maps"
	"slices"
	"sync"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/sluice-dev/sluice/annotations"
)

// deletedTasks remembers tasks deleted before they finished, so that their
// downstream tasks become UpstreamFailed instead of waiting for them to be
// created. It is the controller's only memory: a deletion that happens while
// no controller runs is not seen, and its downstream keeps waiting (it is
// never released early). Once decided, UpstreamFailed is in the objects.
type deletedTasks struct {
	mu    sync.Mutex
	tasks map[string]map[string]string // namespace/run -> task name -> its group
}

func newDeletedTasks() *deletedTasks {
	return &deletedTasks{tasks: map[string]map[string]string{}}
}

func (d *deletedTasks) has(ns, run, task string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	_, ok := d.tasks[ns+"/"+run][task]
	return ok
}

// of returns the deleted tasks of a run, with their groups.
func (d *deletedTasks) of(ns, run string) map[string]string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return maps.Clone(d.tasks[ns+"/"+run])
}

// lost returns the deleted tasks of a group, sorted.
func (d *deletedTasks) lost(ns, run, group string) []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	var names []string
	for name, g := range d.tasks[ns+"/"+run] {
		if g == group {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	return names
}

func (d *deletedTasks) set(obj client.Object, deleted bool) {
	if annotations.ControlledByJob(obj) {
		return
	}
	task, errs := annotations.Parse(obj)
	if len(errs) > 0 {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	key := task.RunKey()
	if !deleted {
		delete(d.tasks[key], task.Name) // re-created: wait for it again
		return
	}
	if d.tasks[key] == nil {
		d.tasks[key] = map[string]string{}
	}
	d.tasks[key][task.Name] = task.Group
}

// finishedObject reports whether a task's object shows an outcome: recorded
// by the controller, or observed in its status.
func finishedObject(obj client.Object) bool {
	if recordedPhase(obj).Finished() {
		return true
	}
	switch o := obj.(type) {
	case *batchv1.Job:
		return observeJob(&annotations.Task{}, o, nil).phase.Finished()
	case *corev1.Pod:
		return observePod(&annotations.Task{}, o).phase.Finished()
	}
	return false
}
