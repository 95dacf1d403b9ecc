package framework

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
)

// Rule is one invariant of sluice that the checker holds every run to.
type Rule string

// The rules, checked on every observed version of every task.
const (
	// RuleReleasedEarly: a held task is released (its Job seen unsuspended,
	// its Pod seen without sluice's gate) only after each of its upstreams
	// (after, inputs, the members of its after-groups) was seen in a phase
	// its trigger accepts: all Succeeded (all-succeeded), all finished
	// (all-done), at least one Failed or UpstreamFailed (any-failed).
	RuleReleasedEarly Rule = "released-before-upstreams"
	// RuleReleasedTwice: a task released, then held again, is not released again.
	RuleReleasedTwice Rule = "released-twice"
	// RuleExtraSuccess: a Job has at most one succeeded pod per completion.
	RuleExtraSuccess Rule = "succeeded-pods-beyond-completions"
	// RuleFinalPhase: every task ends in the phase its graph and its
	// upstreams' outcomes imply, and only tasks that must run were released.
	RuleFinalPhase Rule = "final-phase"
	// RulePhaseBackwards: a finished phase never changes, Running never
	// becomes Waiting, and a recorded phase is never removed.
	RulePhaseBackwards Rule = "phase-backwards"
	// RuleRunOutcome: a run's outcome is recorded exactly once, on one task,
	// after every task finished, and is Failed exactly when a task Failed or
	// is UpstreamFailed.
	RuleRunOutcome Rule = "run-outcome"
)

// Violation is one broken invariant, with what was observed.
type Violation struct {
	Rule Rule
	// Run is the run (namespace/run) of a run's rule; Task the task of a task's rule.
	Run, Task string
	Message   string
	// Observed is the observed sequence the rule judged, one line per change.
	Observed []string
}

func (v Violation) String() string {
	who := "task " + v.Task
	if v.Task == "" {
		who = "run " + v.Run
	}
	return fmt.Sprintf("[%s] %s: %s\n\t%s", v.Rule, who, v.Message, strings.Join(v.Observed, "\n\t"))
}

// InvariantOption changes what the checker checks.
type InvariantOption func(*Recorder)

// Except exempts one task from one rule (for RuleRunOutcome, name the run)
// in a scenario the rule cannot describe; why is logged whenever the
// exemption excuses a violation. There is no way to turn a rule off for a
// whole test.
func Except(rule Rule, name, why string) InvariantOption {
	return func(r *Recorder) { r.exceptions[exception{rule, name}] = why }
}

type exception struct {
	rule Rule
	name string
}

// Recorder keeps every observed version of every sluice Job and Pod (and
// pod of a Job) in one namespace, from informers, and checks the rules on
// them.
type Recorder struct {
	history    *history
	exceptions map[exception]string
	cancel     context.CancelFunc
}

// RecordInvariants starts a Recorder on namespace ns; it returns once the
// informers have synced.
func RecordInvariants(cfg *rest.Config, ns string, opts ...InvariantOption) (*Recorder, error) {
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	r := newRecorder(opts...)
	f := informers.NewSharedInformerFactoryWithOptions(cs, 0, informers.WithNamespace(ns))
	handler := cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { r.observe(obj, false) },
		UpdateFunc: func(_, obj any) { r.observe(obj, false) },
		DeleteFunc: func(obj any) { r.observe(obj, true) },
	}
	for kind, inf := range map[string]cache.SharedIndexInformer{"Pod": f.Core().V1().Pods().Informer(), "Job": f.Batch().V1().Jobs().Informer()} {
		if _, err := inf.AddEventHandler(handler); err != nil {
			return nil, err
		}
		// Versions seen after a broken watch may show changes it missed.
		if err := inf.SetWatchErrorHandler(func(*cache.Reflector, error) { r.history.watchBroke(kind) }); err != nil {
			return nil, err
		}
	}
	if r.cancel, err = startInformers(f, ns); err != nil {
		return nil, err
	}
	recorders.Lock()
	recorders.live[r] = true
	recorders.Unlock()
	return r, nil
}

// recorders are the Recorders running, for outages to reach them.
var recorders = struct {
	sync.Mutex
	live map[*Recorder]bool
}{live: map[*Recorder]bool{}}

// outage tells every running Recorder that the API server is about to go
// away: its watches may miss writes from now until they list again, and
// an informer resumes a watch after a refused connection without telling
// (its watch error handler sees only the errors that make it list).
func outage() {
	recorders.Lock()
	defer recorders.Unlock()
	for r := range recorders.live {
		r.history.watchBroke("Job")
		r.history.watchBroke("Pod")
	}
}

func newRecorder(opts ...InvariantOption) *Recorder {
	r := &Recorder{history: newHistory(), exceptions: map[exception]string{}, cancel: func() {}}
	for _, o := range opts {
		o(r)
	}
	return r
}

func (r *Recorder) observe(obj any, deleted bool) {
	if tomb, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = tomb.Obj
	}
	if o, ok := obj.(metav1.Object); ok {
		r.history.observe(o, deleted)
	}
}

// Stop stops the informers.
func (r *Recorder) Stop() {
	recorders.Lock()
	delete(recorders.live, r)
	recorders.Unlock()
	r.cancel()
}

// Result is what one check found.
type Result struct {
	Violations []Violation
	// Excused are the violations an Except option excused.
	Excused []Excused
	// Checks counts the rules applied (one per rule and task, or run), Tasks
	// and Versions what they were applied to.
	Checks, Tasks, Versions int
}

// Excused is a violation an Except option excused, and the option's reason.
type Excused struct {
	Violation Violation
	Why       string
}

// Check applies every rule to what was observed so far.
func (r *Recorder) Check() Result {
	runs, versions := r.history.snapshot()
	res := Result{Versions: versions}
	report := func(v *Violation) {
		res.Checks++
		if v == nil {
			return
		}
		name := v.Task
		if name == "" {
			_, name, _ = strings.Cut(v.Run, "/")
		}
		if why, ok := r.exceptions[exception{v.Rule, name}]; ok {
			res.Excused = append(res.Excused, Excused{Violation: *v, Why: why})
			return
		}
		res.Violations = append(res.Violations, *v)
	}
	for _, key := range slices.Sorted(maps.Keys(runs)) {
		v := newRunView(key, runs[key])
		cycles := v.cycles()
		for _, name := range v.names() {
			for _, th := range v.incarnations[name] {
				res.Tasks++
				report(v.checkReleasedEarly(th))
				report(checkReleasedTwice(th))
				report(checkCompletions(th))
				report(v.checkPhaseForward(th))
			}
			if th := v.current(name); !th.gone() {
				report(v.checkFinalPhase(th, cycles[name]))
			}
		}
		vs := v.checkRunOutcome()
		if len(vs) == 0 {
			report(nil)
		}
		for i := range vs {
			report(&vs[i])
		}
	}
	return res
}

// settled reports whether the result holds no violation that time may
// still mend: a final phase or a run outcome the controller has yet to record.
func (res Result) settled() bool {
	return !slices.ContainsFunc(res.Violations, func(v Violation) bool {
		return v.Rule == RuleFinalPhase || v.Rule == RuleRunOutcome
	})
}

// Suite-wide counts, for the e2e run's summary.
var totals struct{ namespaces, checks, violations atomic.Int64 }

// InvariantTotals summarises every check CheckInvariants made in this process.
func InvariantTotals() string {
	return fmt.Sprintf("invariant checker: %d namespaces, %d checks, %d violations",
		totals.namespaces.Load(), totals.checks.Load(), totals.violations.Load())
}

// CheckInvariants records every sluice Job and Pod of namespace ns from now
// on and, when the test ends, checks the invariants (the Rule constants) on
// everything it saw, failing the test with each violation. It first gives
// the run up to Timeout to settle: the last phases and the run outcome are
// recorded a moment after what a test waits for.
func CheckInvariants(t testing.TB, cfg *rest.Config, ns string, opts ...InvariantOption) {
	t.Helper()
	r, err := RecordInvariants(cfg, ns, opts...)
	if err != nil {
		t.Fatalf("starting the invariant checker on namespace %s: %v", ns, err)
	}
	t.Cleanup(func() {
		defer r.Stop()
		res := r.Check()
		for deadline := time.Now().Add(Timeout); !res.settled() && time.Now().Before(deadline); {
			time.Sleep(250 * time.Millisecond)
			res = r.Check()
		}
		totals.namespaces.Add(1)
		totals.checks.Add(int64(res.Checks))
		totals.violations.Add(int64(len(res.Violations)))
		for _, e := range res.Excused {
			t.Logf("invariant exception (%s) excused: %s", e.Why, e.Violation)
		}
		if len(res.Violations) == 0 {
			t.Logf("invariants of namespace %s: %d checks on %d tasks (%d versions observed), no violation", ns, res.Checks, res.Tasks, res.Versions)
			return
		}
		var b strings.Builder
		for _, v := range res.Violations {
			b.WriteString("\n" + v.String())
		}
		t.Errorf("invariants of namespace %s: %d of %d checks failed on %d tasks (%d versions observed):%s",
			ns, len(res.Violations), res.Checks, res.Tasks, res.Versions, b.String())
	})
}
