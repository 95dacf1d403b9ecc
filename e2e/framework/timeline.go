package framework

import (
	"context"
	"fmt"
	"sync"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/utils/ptr"

	"github.com/sluice-dev/sluice/annotations"
)

// Moments of a task that a Timeline records, by wall clock of the test.
const (
	Released  = "released"  // Job seen unsuspended or Pod seen without sluice's gate
	Started   = "started"   // a pod of the task seen bound to a node
	Succeeded = "succeeded" // a pod of the task seen Succeeded
	Failed    = "failed"    // a pod of the task seen Failed
)

// Timeline watches one namespace through informers (which re-list and
// re-watch, unlike a bare watch) and records when each task first reached
// each moment.
type Timeline struct {
	mu      sync.Mutex
	seen    map[string]map[string]time.Time
	cancel  context.CancelFunc
	started bool
}

// WatchNamespace starts a Timeline for ns.
func WatchNamespace(cfg *rest.Config, ns string) (*Timeline, error) {
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	tl := &Timeline{seen: map[string]map[string]time.Time{}}
	f := informers.NewSharedInformerFactoryWithOptions(cs, 0, informers.WithNamespace(ns))
	onPod := func(obj any) {
		p, ok := obj.(*corev1.Pod)
		if !ok {
			return
		}
		task := p.Labels[annotations.TaskLabel]
		if task == "" {
			return
		}
		if p.Spec.NodeName != "" {
			tl.mark(task, Started)
		}
		if len(p.OwnerReferences) == 0 && !hasGate(p) {
			tl.mark(task, Released)
		}
		switch p.Status.Phase {
		case corev1.PodSucceeded:
			tl.mark(task, Succeeded)
		case corev1.PodFailed:
			tl.mark(task, Failed)
		}
	}
	onJob := func(obj any) {
		j, ok := obj.(*batchv1.Job)
		if !ok {
			return
		}
		if task := j.Labels[annotations.TaskLabel]; task != "" && !ptr.Deref(j.Spec.Suspend, false) {
			tl.mark(task, Released)
		}
	}
	if _, err := f.Core().V1().Pods().Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: onPod, UpdateFunc: func(_, o any) { onPod(o) },
	}); err != nil {
		return nil, err
	}
	if _, err := f.Batch().V1().Jobs().Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: onJob, UpdateFunc: func(_, o any) { onJob(o) },
	}); err != nil {
		return nil, err
	}
	if tl.cancel, err = startInformers(f, ns); err != nil {
		return nil, err
	}
	return tl, nil
}

func hasGate(p *corev1.Pod) bool {
	for _, g := range p.Spec.SchedulingGates {
		if g.Name == annotations.UpstreamGate {
			return true
		}
	}
	return false
}

func (tl *Timeline) mark(task, moment string) {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	if tl.seen[task] == nil {
		tl.seen[task] = map[string]time.Time{}
	}
	if _, ok := tl.seen[task][moment]; !ok {
		tl.seen[task][moment] = time.Now()
	}
}

// At returns when the task reached the moment, and whether it did.
func (tl *Timeline) At(task, moment string) (time.Time, bool) {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	t, ok := tl.seen[task][moment]
	return t, ok
}

// Stop stops the informers.
func (tl *Timeline) Stop() { tl.cancel() }

// startInformers starts the factory's informers and waits until they have
// synced; the returned function stops them.
func startInformers(f informers.SharedInformerFactory, ns string) (context.CancelFunc, error) {
	ctx, cancel := context.WithCancel(context.Background())
	f.Start(ctx.Done())
	for typ, ok := range f.WaitForCacheSync(ctx.Done()) {
		if !ok {
			cancel()
			return nil, fmt.Errorf("informer for %v in namespace %s did not sync", typ, ns)
		}
	}
	return cancel, nil
}
