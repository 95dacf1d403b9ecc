package framework

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/klog/v2"
	"k8s.io/utils/ptr"

	"github.com/sluice-dev/sluice/annotations"
)

// Observations are ordered by resourceVersion, not by arrival: Jobs and Pods
// come through separate watches, so a downstream Job's release can arrive
// before the upstream pod's success that caused it. The API asks clients to
// treat resourceVersions as opaque; on a cluster with one etcd they are its
// revisions, which order every write, and this checker relies on that.

// A watch that breaks (the API server restarted, a connection dropped) may
// miss writes until its informer lists again: the first version seen of an
// object after that shows changes made at any write since the last event
// the watch delivered. Such a version carries that resourceVersion as since,
// and the rules date what it shows from just after it, never later than
// it may have happened.

// observation is one version of a task's object, reduced to what the rules read.
type observation struct {
	rv uint64
	// since is not 0 when the version was the first seen after a watch
	// broke: what it shows happened after since, at rv at the latest.
	since   uint64
	deleted bool
	phase   annotations.Phase // the sluice.dev/phase label ("" when absent)
	held    bool              // a Job suspended, a Pod gated by sluice
	reason  string
	results string
	outcome *string // sluice.dev/run-outcome, when set
	// status is the outcome the object's own status shows: Succeeded or
	// Failed (a Job's conditions, a bare Pod's phase), else "".
	status annotations.Phase
	// onePod: a Job whose one succeeded pod decides its success, on which
	// the controller may release downstream before the Job's condition.
	onePod bool
	// completions is how many pods of a Job may succeed.
	completions int
}

// podObservation is one version of a pod of a Job task.
type podObservation struct {
	rv, since uint64 // as in observation
	name      string
	phase     corev1.PodPhase
	deleted   bool
}

// taskHistory is every version observed of one task's object (one
// incarnation: a task deleted and created again is a new history).
type taskHistory struct {
	run      string // namespace/run
	task     *annotations.Task
	kind     string // Job or Pod
	ref      klog.ObjectRef
	uid      types.UID
	versions []observation
	// pods are a Job task's pods, by UID; joined in at check time, since a
	// pod may be seen before its Job.
	pods map[types.UID][]podObservation
}

func (h *taskHistory) first() observation { return h.versions[0] }
func (h *taskHistory) last() observation  { return h.versions[len(h.versions)-1] }

// phaseAt returns the phase of the last version seen before rv; ok is
// false when none was, or the object was deleted by then.
func (h *taskHistory) phaseAt(rv uint64) (phase annotations.Phase, ok bool) {
	for _, o := range h.versions {
		if o.rv >= rv {
			break
		}
		phase, ok = o.phase, !o.deleted
	}
	return phase, ok
}

// gone reports whether the object was seen deleted.
func (h *taskHistory) gone() bool { return h.last().deleted }

// history is what a Recorder saw, safe for the informers' goroutines.
type history struct {
	mu       sync.Mutex
	tasks    map[types.UID]*taskHistory
	jobPods  map[types.UID]map[types.UID][]podObservation // Job UID -> pod UID -> versions
	versions int
	watches  map[string]*watchState // by kind: Job, Pod
	// breaksSeen is, per object, how many breaks of its watch had happened
	// when it was last seen.
	breaksSeen map[types.UID]int
}

// watchState is what the recorder knows of one informer's watch.
type watchState struct {
	lastRV uint64 // the newest resourceVersion it delivered
	// gaps are, for each time it broke, lastRV then.
	gaps []uint64
}

func newHistory() *history {
	return &history{tasks: map[types.UID]*taskHistory{}, jobPods: map[types.UID]map[types.UID][]podObservation{},
		watches: map[string]*watchState{"Job": {}, "Pod": {}}, breaksSeen: map[types.UID]int{}}
}

// watchBroke records that the watch of kind (Job or Pod) ended with an error.
func (h *history) watchBroke(kind string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	w := h.watches[kind]
	w.gaps = append(w.gaps, w.lastRV)
}

// since returns the since of a version of obj seen at rv through the watch
// of kind (see observation), and notes the object seen: the start of the
// first gap since the object was last seen, the earliest its change may
// date from.
func (h *history) since(kind string, obj metav1.Object, rv uint64) uint64 {
	w := h.watches[kind]
	w.lastRV = max(w.lastRV, rv)
	seen := h.breaksSeen[obj.GetUID()]
	h.breaksSeen[obj.GetUID()] = len(w.gaps)
	if seen == len(w.gaps) || rv <= w.gaps[seen] {
		return 0
	}
	return w.gaps[seen]
}

// observe records one version of a Job or Pod; deleted marks the last one.
// Objects that are neither sluice tasks nor pods of a Job are ignored.
func (h *history) observe(obj metav1.Object, deleted bool) {
	rv, err := strconv.ParseUint(obj.GetResourceVersion(), 10, 64)
	if err != nil {
		return // not from the API server: nothing to order it by
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	switch o := obj.(type) {
	case *batchv1.Job:
		if !annotations.IsSluiceObject(o) {
			return
		}
		h.record(o, "Job", observation{
			since:       h.since("Job", o, rv),
			held:        ptr.Deref(o.Spec.Suspend, false),
			status:      jobStatus(o),
			onePod:      decidedByOnePod(o),
			completions: completions(o),
		}, rv, deleted)
	case *corev1.Pod:
		since := h.since("Pod", o, rv)
		if job := annotations.JobOf(o); job != "" {
			if h.jobPods[job] == nil {
				h.jobPods[job] = map[types.UID][]podObservation{}
			}
			h.jobPods[job][o.UID] = append(h.jobPods[job][o.UID], podObservation{rv: rv, since: since, name: o.Name, phase: o.Status.Phase, deleted: deleted})
			h.versions++
			return
		}
		if !annotations.IsSluiceObject(o) {
			return
		}
		h.record(o, "Pod", observation{since: since, held: annotations.HasGate(&o.Spec), status: podStatus(o)}, rv, deleted)
	}
}

func (h *history) record(obj metav1.Object, kind string, o observation, rv uint64, deleted bool) {
	th := h.tasks[obj.GetUID()]
	if th == nil {
		task, errs := annotations.Parse(obj)
		if len(errs) > 0 {
			return // admission refuses such objects: one seen here is not a task
		}
		th = &taskHistory{run: task.RunKey(), task: task, kind: kind, ref: klog.KObj(obj), uid: obj.GetUID()}
		h.tasks[obj.GetUID()] = th
	}
	if len(th.versions) > 0 && th.last().rv >= rv {
		if !deleted || th.last().deleted {
			return // a re-list repeating what was seen
		}
		rv = th.last().rv // a tombstone: deleted at some moment after its last version seen
	}
	o.rv, o.deleted = rv, deleted
	o.phase = annotations.Phase(obj.GetLabels()[annotations.PhaseLabel])
	annots := obj.GetAnnotations()
	o.reason, o.results = annots[annotations.ReasonAnnotation], annots[annotations.ResultsAnnotation]
	if v, ok := annots[annotations.RunOutcomeAnnotation]; ok {
		o.outcome = &v
	}
	th.versions = append(th.versions, o)
	h.versions++
}

// snapshot returns a copy of the histories, grouped by run and with their
// pods joined, for the rules to read without the lock.
func (h *history) snapshot() (runs map[string][]*taskHistory, versions int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	runs = map[string][]*taskHistory{}
	for _, th := range h.tasks {
		c := *th
		c.versions = slices.Clone(th.versions)
		c.pods = map[types.UID][]podObservation{}
		for uid, vs := range h.jobPods[th.uid] {
			c.pods[uid] = slices.Clone(vs)
		}
		runs[c.run] = append(runs[c.run], &c)
	}
	for _, ths := range runs {
		slices.SortFunc(ths, func(a, b *taskHistory) int { return cmp.Compare(a.first().rv, b.first().rv) })
	}
	return runs, h.versions
}

// jobStatus is the outcome a Job's conditions show, as the controller
// reads them: the final Complete and Failed, and the earlier
// SuccessCriteriaMet and FailureTarget.
func jobStatus(j *batchv1.Job) annotations.Phase {
	for _, c := range j.Status.Conditions {
		if c.Status != corev1.ConditionTrue {
			continue
		}
		switch c.Type {
		case batchv1.JobComplete, batchv1.JobSuccessCriteriaMet:
			return annotations.PhaseSucceeded
		case batchv1.JobFailed, batchv1.JobFailureTarget:
			return annotations.PhaseFailed
		}
	}
	return ""
}

func podStatus(p *corev1.Pod) annotations.Phase {
	switch p.Status.Phase {
	case corev1.PodSucceeded:
		return annotations.PhaseSucceeded
	case corev1.PodFailed:
		return annotations.PhaseFailed
	}
	return ""
}

// decidedByOnePod is the controller's rule for treating a Job's pod's
// success as the Job's (README: one completion, one pod at a time, no
// active deadline).
func decidedByOnePod(j *batchv1.Job) bool {
	one := func(p *int32) bool { return p == nil || *p == 1 }
	return one(j.Spec.Completions) && one(j.Spec.Parallelism) && j.Spec.ActiveDeadlineSeconds == nil
}

// completions is how many of a Job's pods may succeed: its completions, or,
// for a work queue (completions unset), its parallelism.
func completions(j *batchv1.Job) int {
	switch {
	case j.Spec.Completions != nil:
		return int(*j.Spec.Completions)
	case j.Spec.Parallelism != nil && *j.Spec.Parallelism > 1:
		return int(*j.Spec.Parallelism)
	}
	return 1
}

// outcomes are the moments a task's outcome became known, by resourceVersion:
// the first at which it was seen Succeeded, finished at all, and Failed.
type outcomes struct {
	succeeded, done, failed uint64 // 0: never
}

// outcomes reads when the task's outcome became known to whoever watches it:
// its recorded phase, its object's status, a succeeded pod of a Job that
// one pod decides, or its deletion before it finished (which the controller
// counts as a failure). A version seen after a watch broke dates from just
// after the break.
func (h *taskHistory) outcomes() outcomes {
	var o outcomes
	mark := func(rv, since uint64, p annotations.Phase) {
		if !p.Finished() {
			return
		}
		if since != 0 {
			rv = since + 1
		}
		first := func(at *uint64) {
			if *at == 0 || rv < *at {
				*at = rv
			}
		}
		first(&o.done)
		switch p {
		case annotations.PhaseSucceeded:
			first(&o.succeeded)
		case annotations.PhaseFailed, annotations.PhaseUpstreamFailed:
			first(&o.failed)
		}
	}
	for _, v := range h.versions {
		mark(v.rv, v.since, v.phase)
		mark(v.rv, v.since, v.status)
		if v.deleted && o.done == 0 {
			mark(v.rv, v.since, annotations.PhaseFailed)
		}
	}
	for _, pod := range h.pods {
		for _, p := range pod {
			if p.phase == corev1.PodSucceeded && h.onePodAt(p.rv) {
				mark(p.rv, p.since, annotations.PhaseSucceeded)
			}
		}
	}
	return o
}

// onePodAt reports whether the Job, as last seen before rv, is decided by one pod.
func (h *taskHistory) onePodAt(rv uint64) bool {
	ok := false
	for _, v := range h.versions {
		if v.rv > rv {
			break
		}
		ok = v.onePod
	}
	return ok
}

// statusOutcome is the outcome the task's objects show by themselves, at
// the end: its status's (Job conditions, a bare Pod's phase), or a
// succeeded pod of a Job that one pod decides; "" while they show none.
func (h *taskHistory) statusOutcome() annotations.Phase {
	last := h.last()
	if last.status.Finished() {
		return last.status
	}
	if h.kind == "Job" && last.onePod && !last.held {
		for _, pod := range h.pods {
			if slices.ContainsFunc(pod, func(p podObservation) bool { return p.phase == corev1.PodSucceeded }) {
				return annotations.PhaseSucceeded
			}
		}
	}
	return ""
}

// finalPhase is the phase the task's downstream reads at the end: the
// outcome its objects show when it ran and finished, else its recorded
// phase.
func (h *taskHistory) finalPhase() annotations.Phase {
	if p := h.statusOutcome(); p != "" {
		return p
	}
	return h.last().phase
}

// releasedAt returns the resourceVersion at which the task was first seen
// released (a Job unsuspended, a Pod without sluice's gate), or 0.
func (h *taskHistory) releasedAt() uint64 {
	for _, v := range h.versions {
		if !v.held && !v.deleted {
			return v.rv
		}
	}
	return 0
}

// sequence describes the versions for a report, one line per change of
// what the rules read.
func (h *taskHistory) sequence() []string {
	var lines []string
	prev := ""
	for _, v := range h.versions {
		s := v.describe(h.kind)
		if s != prev || v.since != 0 {
			lines = append(lines, fmt.Sprintf("%s %s rv=%d%s: %s", h.kind, h.ref, v.rv, afterGap(v.since), s))
		}
		prev = s
	}
	for _, uid := range slices.Sorted(maps.Keys(h.pods)) {
		var phases []string
		for _, p := range h.pods[uid] {
			s := string(p.phase)
			if p.deleted {
				s = "deleted"
			}
			if len(phases) == 0 || !strings.HasPrefix(phases[len(phases)-1], s+"@") || p.since != 0 {
				phases = append(phases, fmt.Sprintf("%s@%d%s", s, p.rv, afterGap(p.since)))
			}
		}
		lines = append(lines, fmt.Sprintf("  pod %s: %s", h.pods[uid][0].name, strings.Join(phases, " -> ")))
	}
	return lines
}

// afterGap notes a version first seen after its watch broke at since.
func afterGap(since uint64) string {
	if since == 0 {
		return ""
	}
	return fmt.Sprintf(" (first seen after a watch gap from rv=%d)", since)
}

func (v observation) describe(kind string) string {
	var b strings.Builder
	phase := string(v.phase)
	if phase == "" {
		phase = "(no phase)"
	}
	b.WriteString(phase)
	switch {
	case v.deleted:
		b.WriteString(", deleted")
	case v.held && kind == "Job":
		b.WriteString(", suspended")
	case v.held:
		b.WriteString(", gated")
	default:
		b.WriteString(", released")
	}
	if v.status != "" {
		b.WriteString(", status " + string(v.status))
	}
	if v.outcome != nil {
		b.WriteString(", run-outcome " + *v.outcome)
	}
	if v.reason != "" {
		b.WriteString(", reason " + strconv.Quote(v.reason))
	}
	return b.String()
}
