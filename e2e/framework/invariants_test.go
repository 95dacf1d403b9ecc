package framework

import (
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/cache"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/sluice-dev/sluice/annotations"
	utiltesting "github.com/sluice-dev/sluice/annotations/testing"
)

// fakeRun feeds a Recorder an observed history as its informers would:
// each write gets the next resourceVersion.
type fakeRun struct {
	t    *testing.T
	r    *Recorder
	rv   int
	objs map[string]client.Object
}

func newFakeRun(t *testing.T, opts ...InvariantOption) *fakeRun {
	return &fakeRun{t: t, r: newRecorder(opts...), objs: map[string]client.Object{}}
}

func (f *fakeRun) apply(obj client.Object) {
	f.rv++
	obj.SetResourceVersion(strconv.Itoa(f.rv))
	if obj.GetUID() == "" {
		obj.SetUID(types.UID(obj.GetName()))
	}
	f.objs[obj.GetName()] = obj
	f.r.observe(obj.DeepCopyObject(), false)
}

// update applies edits to the named object and records the new version.
func (f *fakeRun) update(name string, edits ...func(client.Object)) {
	f.t.Helper()
	obj, ok := f.objs[name]
	if !ok {
		f.t.Fatalf("no object %s in the fake run", name)
	}
	obj = obj.DeepCopyObject().(client.Object)
	for _, e := range edits {
		e(obj)
	}
	f.apply(obj)
}

// unseen applies edits to the named object as a write the recorder's
// watch missed.
func (f *fakeRun) unseen(name string, edits ...func(client.Object)) {
	obj := f.objs[name].DeepCopyObject().(client.Object)
	for _, e := range edits {
		e(obj)
	}
	f.rv++
	obj.SetResourceVersion(strconv.Itoa(f.rv))
	f.objs[name] = obj
}

func (f *fakeRun) delete(name string) {
	f.rv++
	obj := f.objs[name].DeepCopyObject().(client.Object)
	obj.SetResourceVersion(strconv.Itoa(f.rv))
	f.r.observe(obj, true)
}

// Objects as the mutating webhook admits them: a task with upstreams held
// and Waiting, one without Running.
func heldJob(w *utiltesting.JobWrapper) *batchv1.Job {
	j := w.Run("r").Label(annotations.PhaseLabel, string(annotations.PhaseWaiting)).Obj()
	j.Spec.Suspend = ptr.To(true)
	return j
}

func freeJob(name string) *batchv1.Job { return free(job(name)) }

func free(w *utiltesting.JobWrapper) *batchv1.Job {
	return w.Run("r").Label(annotations.PhaseLabel, string(annotations.PhaseRunning)).Obj()
}

func job(name string) *utiltesting.JobWrapper { return utiltesting.MakeJob(name, "ns") }

func heldPod(name string, after ...string) *corev1.Pod {
	return utiltesting.MakePod(name, "ns").Label(annotations.RunLabel, "r").After(after...).
		Label(annotations.PhaseLabel, string(annotations.PhaseWaiting)).Gate(annotations.UpstreamGate).Obj()
}

func podOf(jobName, name string) *corev1.Pod {
	return utiltesting.MakePod(name, "ns").Label(annotations.RunLabel, "r").OwnedByJob(jobName, jobName).Phase(corev1.PodRunning).Obj()
}

// Edits of an object.
func phase(p annotations.Phase) func(client.Object) {
	return func(o client.Object) { o.GetLabels()[annotations.PhaseLabel] = string(p) }
}

func annotate(k, v string) func(client.Object) {
	return func(o client.Object) {
		a := o.GetAnnotations()
		if a == nil {
			a = map[string]string{}
		}
		a[k] = v
		o.SetAnnotations(a)
	}
}

func outcome(v string) func(client.Object) { return annotate(annotations.RunOutcomeAnnotation, v) }

// release is the controller's release patch: unsuspend or ungate, and Running.
func release(o client.Object) {
	switch o := o.(type) {
	case *batchv1.Job:
		o.Spec.Suspend = ptr.To(false)
	case *corev1.Pod:
		annotations.RemoveGate(&o.Spec)
	}
	phase(annotations.PhaseRunning)(o)
}

func suspend(o client.Object) { o.(*batchv1.Job).Spec.Suspend = ptr.To(true) }

func condition(c batchv1.JobConditionType) func(client.Object) {
	return func(o client.Object) {
		j := o.(*batchv1.Job)
		j.Status.Conditions = append(j.Status.Conditions, batchv1.JobCondition{Type: c, Status: corev1.ConditionTrue})
	}
}

func podPhase(p corev1.PodPhase) func(client.Object) {
	return func(o client.Object) { o.(*corev1.Pod).Status.Phase = p }
}

// succeed runs the Job task to success the way the cluster does: its pod
// succeeds, then the Job completes and the controller records it.
func (f *fakeRun) succeed(name string, edits ...func(client.Object)) {
	f.apply(podOf(name, name+"-pod"))
	f.update(name+"-pod", podPhase(corev1.PodSucceeded))
	f.update(name, append([]func(client.Object){condition(batchv1.JobComplete), phase(annotations.PhaseSucceeded)}, edits...)...)
}

func (f *fakeRun) fail(name string, edits ...func(client.Object)) {
	f.apply(podOf(name, name+"-pod"))
	f.update(name+"-pod", podPhase(corev1.PodFailed))
	f.update(name, append([]func(client.Object){condition(batchv1.JobFailed), phase(annotations.PhaseFailed)}, edits...)...)
}

// retry replaces a failed Job task with its next generation, as kubectl
// sluice retry does: deleted, then created anew under the same name.
func (f *fakeRun) retry(name string) {
	f.delete(name)
	j := freeJob(name)
	j.UID = types.UID(name + "-2")
	j.Annotations = map[string]string{annotations.AttemptAnnotation: "2"}
	f.apply(j)
}

// succeedRetried runs a retried Job task (retry) to success.
func (f *fakeRun) succeedRetried(name string) {
	pod := utiltesting.MakePod(name+"-pod-2", "ns").Label(annotations.RunLabel, "r").OwnedByJob(name, name+"-2").Phase(corev1.PodRunning).Obj()
	f.apply(pod)
	f.update(pod.Name, podPhase(corev1.PodSucceeded))
	f.update(name, condition(batchv1.JobComplete), phase(annotations.PhaseSucceeded))
}

// withdraw removes the run outcome, as the controller does when the run
// runs again.
func withdraw(o client.Object) { delete(o.GetAnnotations(), annotations.RunOutcomeAnnotation) }

func TestInvariants(t *testing.T) {
	cases := map[string]struct {
		opts    []InvariantOption
		history func(f *fakeRun)
		want    []Rule
		excused int
	}{
		// Correct histories: the checker stays quiet.
		"chain released after its upstream succeeded": {
			history: func(f *fakeRun) {
				f.apply(freeJob("a"))
				f.apply(heldJob(job("b").After("a")))
				f.succeed("a")
				f.update("b", release)
				f.succeed("b", outcome("Succeeded"))
			},
		},
		"released on a one-pod Job's succeeded pod, before its condition": {
			history: func(f *fakeRun) {
				f.apply(freeJob("a"))
				f.apply(heldJob(job("b").After("a")))
				f.apply(podOf("a", "a-pod"))
				f.update("a-pod", podPhase(corev1.PodSucceeded))
				f.update("b", release)
				f.update("a", condition(batchv1.JobComplete), phase(annotations.PhaseSucceeded))
				f.succeed("b", outcome("Succeeded"))
			},
		},
		"released on a pod's success that the broken pod watch missed, seen after it": {
			history: func(f *fakeRun) {
				f.apply(freeJob("a"))
				f.apply(heldJob(job("b").After("a")))
				f.apply(podOf("a", "a-pod"))
				f.r.history.watchBroke("Pod")
				f.unseen("a-pod", podPhase(corev1.PodSucceeded))
				f.update("b", release)
				f.update("a-pod", annotate("later", "write")) // the first version seen after the break
				f.update("a", condition(batchv1.JobComplete), phase(annotations.PhaseSucceeded))
				f.succeed("b", outcome("Succeeded"))
			},
		},
		"two breaks before the pod is seen again: dated from the first": {
			history: func(f *fakeRun) {
				f.apply(freeJob("a"))
				f.apply(heldJob(job("b").After("a")))
				f.apply(podOf("a", "a-pod"))
				f.r.history.watchBroke("Pod")
				f.unseen("a-pod", podPhase(corev1.PodSucceeded))
				f.update("b", release)
				f.apply(podOf("b", "b-pod")) // seen: the pods' watch delivers again
				f.r.history.watchBroke("Pod")
				f.update("a-pod", annotate("later", "write"))
				f.update("a", condition(batchv1.JobComplete), phase(annotations.PhaseSucceeded))
				f.update("b-pod", podPhase(corev1.PodSucceeded))
				f.update("b", condition(batchv1.JobComplete), phase(annotations.PhaseSucceeded), outcome("Succeeded"))
			},
		},
		"a broken watch excuses nothing it delivered before it broke": {
			history: func(f *fakeRun) {
				f.apply(freeJob("a"))
				f.apply(heldJob(job("b").After("a")))
				f.apply(podOf("a", "a-pod"))
				f.update("b", release)
				f.update("a-pod", annotate("seen", "running"))
				f.r.history.watchBroke("Pod")
				f.update("a-pod", podPhase(corev1.PodSucceeded))
				f.update("a", condition(batchv1.JobComplete), phase(annotations.PhaseSucceeded))
				f.succeed("b", outcome("Succeeded"))
			},
			want: []Rule{RuleReleasedEarly},
		},
		"after a broken Job watch, a Job seen again unfinished is not excused later": {
			history: func(f *fakeRun) {
				f.apply(freeJob("a"))
				f.apply(heldJob(job("b").After("a")))
				f.apply(podOf("a", "a-pod"))
				f.r.history.watchBroke("Job")
				f.update("a", annotate("seen", "again")) // a's first version after the break: still running
				f.update("b", release)
				f.update("a-pod", podPhase(corev1.PodSucceeded))
				f.update("a", condition(batchv1.JobComplete), phase(annotations.PhaseSucceeded))
				f.succeed("b", outcome("Succeeded"))
			},
			want: []Rule{RuleReleasedEarly},
		},
		"a retry: the failed task's new generation runs, what never ran is taken back, the run ends again": {
			history: func(f *fakeRun) {
				f.apply(freeJob("a"))
				f.apply(heldJob(job("b").After("a")))
				f.apply(heldJob(job("c").After("b")))
				f.fail("a")
				f.update("b", phase(annotations.PhaseUpstreamFailed))
				f.update("c", phase(annotations.PhaseUpstreamFailed), outcome("Failed"))
				f.retry("a")
				f.update("b", phase(annotations.PhaseWaiting))
				f.update("c", phase(annotations.PhaseWaiting))
				f.update("c", withdraw)
				f.succeedRetried("a")
				f.update("b", release)
				f.succeed("b")
				f.update("c", release)
				f.succeed("c", outcome("Succeeded"))
			},
		},
		"a decision taken back while nothing it waits for runs again": {
			history: func(f *fakeRun) {
				f.apply(freeJob("a"))
				f.apply(heldJob(job("b").After("a")))
				f.fail("a")
				f.update("b", phase(annotations.PhaseUpstreamFailed), outcome("Failed"))
				f.update("b", phase(annotations.PhaseWaiting))
			},
			want: []Rule{RuleFinalPhase, RulePhaseBackwards, RuleRunOutcome},
		},
		"a run outcome withdrawn though the run had ended": {
			history: func(f *fakeRun) {
				f.apply(freeJob("a"))
				f.fail("a", outcome("Failed"))
				f.update("a", withdraw)
			},
			want: []Rule{RuleRunOutcome},
		},
		"a retried run's old outcome kept while it runs again": {
			history: func(f *fakeRun) {
				f.apply(freeJob("a"))
				f.apply(freeJob("b"))
				f.succeed("b")
				f.fail("a")
				f.update("b", outcome("Failed"))
				f.retry("a")
				f.succeedRetried("a")
			},
			want: []Rule{RuleRunOutcome},
		},
		"a failure propagates down the chain": {
			history: func(f *fakeRun) {
				f.apply(freeJob("a"))
				f.apply(heldJob(job("b").After("a")))
				f.apply(heldJob(job("c").After("b")))
				f.fail("a")
				f.update("b", phase(annotations.PhaseUpstreamFailed))
				f.update("c", phase(annotations.PhaseUpstreamFailed), outcome("Failed"))
			},
		},
		"all-done and any-failed run after a failure, all-succeeded does not": {
			history: func(f *fakeRun) {
				f.apply(freeJob("train"))
				f.apply(heldJob(job("cleanup").After("train").Annotation(annotations.TriggerAnnotation, "all-done")))
				f.apply(heldJob(job("alert").After("train").Annotation(annotations.TriggerAnnotation, "any-failed")))
				f.apply(heldJob(job("report").After("train")))
				f.fail("train")
				f.update("report", phase(annotations.PhaseUpstreamFailed))
				f.update("cleanup", release)
				f.update("alert", release)
				f.succeed("cleanup")
				f.succeed("alert", outcome("Failed"))
			},
		},
		"none-failed runs after a skipped branch": {
			history: func(f *fakeRun) {
				f.apply(freeJob("flip"))
				f.apply(heldJob(job("heads").After("flip").When("tasks.flip.results.side == 'heads'")))
				f.apply(heldJob(job("join").After("flip", "heads").Annotation(annotations.TriggerAnnotation, "none-failed")))
				f.succeed("flip", annotate(annotations.ResultsAnnotation, `{"side":"tails"}`))
				f.update("heads", phase(annotations.PhaseSkipped))
				f.update("join", release)
				f.succeed("join", outcome("Succeeded"))
			},
		},
		"any-failed is skipped when nothing failed": {
			history: func(f *fakeRun) {
				f.apply(freeJob("lint"))
				f.apply(heldJob(job("alert").After("lint").Annotation(annotations.TriggerAnnotation, "any-failed")))
				f.succeed("lint")
				f.update("alert", phase(annotations.PhaseSkipped), outcome("Succeeded"))
			},
		},
		"a false condition skips": {
			history: func(f *fakeRun) {
				f.apply(freeJob("evaluate"))
				f.apply(heldJob(job("deploy").After("evaluate").When("tasks.evaluate.results.accuracy >= 0.9")))
				f.succeed("evaluate", annotate(annotations.ResultsAnnotation, `{"accuracy":0.8}`))
				f.update("deploy", phase(annotations.PhaseSkipped), outcome("Succeeded"))
			},
		},
		"a join over a group waits for every member": {
			history: func(f *fakeRun) {
				f.apply(heldJob(job("merge").AfterGroup("shards=2")))
				f.apply(free(job("s1").Group("shards")))
				f.apply(heldJob(job("s2").Group("shards").After("s1")))
				f.succeed("s1")
				f.update("s2", release)
				f.succeed("s2")
				f.update("merge", release)
				f.succeed("merge", outcome("Succeeded"))
			},
		},
		"an upstream deleted before it finished fails its downstream": {
			history: func(f *fakeRun) {
				f.apply(freeJob("prep"))
				f.apply(heldJob(job("train").After("prep")))
				f.apply(podOf("prep", "prep-pod"))
				f.delete("prep")
				f.update("train", phase(annotations.PhaseUpstreamFailed), outcome("Failed"))
			},
		},
		"a run still going has no outcome": {
			history: func(f *fakeRun) {
				f.apply(freeJob("a"))
				f.apply(heldJob(job("b").After("a")))
				f.apply(heldJob(job("c").After("missing")))
				f.succeed("a")
				f.update("b", release)
				f.apply(podOf("b", "b-pod"))
			},
		},
		"a bare Pod is ungated after its upstream": {
			history: func(f *fakeRun) {
				f.apply(freeJob("a"))
				f.apply(heldPod("c", "a"))
				f.succeed("a")
				f.update("c", release)
				f.update("c", podPhase(corev1.PodSucceeded))
				f.update("c", phase(annotations.PhaseSucceeded), outcome("Succeeded"))
			},
		},

		// Violating histories: each rule fires.
		"released before its upstream succeeded": {
			history: func(f *fakeRun) {
				f.apply(freeJob("a"))
				f.apply(heldJob(job("b").After("a")))
				f.update("b", release)
				f.succeed("a")
				f.succeed("b", outcome("Succeeded"))
			},
			want: []Rule{RuleReleasedEarly},
		},
		"released on the pod of a Job that pod does not decide": {
			history: func(f *fakeRun) {
				a := freeJob("a")
				a.Spec.ActiveDeadlineSeconds = ptr.To[int64](60)
				f.apply(a)
				f.apply(heldJob(job("b").After("a")))
				f.apply(podOf("a", "a-pod"))
				f.update("a-pod", podPhase(corev1.PodSucceeded))
				f.update("b", release)
				f.update("a", condition(batchv1.JobComplete), phase(annotations.PhaseSucceeded))
				f.succeed("b", outcome("Succeeded"))
			},
			want: []Rule{RuleReleasedEarly},
		},
		"a bare Pod ungated before its upstream finished": {
			history: func(f *fakeRun) {
				f.apply(freeJob("a"))
				f.apply(heldPod("c", "a").DeepCopy())
				f.update("c", release)
				f.succeed("a")
				f.update("c", podPhase(corev1.PodSucceeded))
				f.update("c", phase(annotations.PhaseSucceeded), outcome("Succeeded"))
			},
			want: []Rule{RuleReleasedEarly},
		},
		"a join released while its group is incomplete": {
			history: func(f *fakeRun) {
				f.apply(heldJob(job("merge").AfterGroup("shards=2")))
				f.apply(heldJob(job("s1").Group("shards").After("x")))
				f.apply(freeJob("x"))
				f.succeed("x")
				f.update("s1", release)
				f.succeed("s1")
				f.update("merge", release)
				f.apply(heldJob(job("s2").Group("shards").After("x")))
				f.update("s2", release)
				f.succeed("s2")
				f.succeed("merge", outcome("Succeeded"))
			},
			want: []Rule{RuleReleasedEarly},
		},
		"any-failed released though nothing failed": {
			history: func(f *fakeRun) {
				f.apply(freeJob("lint"))
				f.apply(heldJob(job("alert").After("lint").Annotation(annotations.TriggerAnnotation, "any-failed")))
				f.succeed("lint")
				f.update("alert", release)
				f.succeed("alert", outcome("Succeeded"))
			},
			want: []Rule{RuleFinalPhase, RuleReleasedEarly},
		},
		"none-failed released after a failure": {
			history: func(f *fakeRun) {
				f.apply(freeJob("flip"))
				f.apply(heldJob(job("join").After("flip").Annotation(annotations.TriggerAnnotation, "none-failed")))
				f.fail("flip")
				f.update("join", release)
				f.succeed("join", outcome("Failed"))
			},
			want: []Rule{RuleFinalPhase, RuleReleasedEarly},
		},
		"released, suspended by someone, released again": {
			history: func(f *fakeRun) {
				f.apply(freeJob("a"))
				f.apply(heldJob(job("b").After("a")))
				f.succeed("a")
				f.update("b", release)
				f.update("b", suspend)
				f.update("b", release)
				f.succeed("b", outcome("Succeeded"))
			},
			want: []Rule{RuleReleasedTwice},
		},
		"two succeeded pods for one completion": {
			history: func(f *fakeRun) {
				f.apply(freeJob("a"))
				f.apply(podOf("a", "a-extra"))
				f.update("a-extra", podPhase(corev1.PodSucceeded))
				f.succeed("a", outcome("Succeeded"))
			},
			want: []Rule{RuleExtraSuccess},
		},
		"a finished phase changed": {
			history: func(f *fakeRun) {
				f.apply(freeJob("a"))
				f.succeed("a")
				f.update("a", phase(annotations.PhaseRunning))
				f.update("a", phase(annotations.PhaseSucceeded), outcome("Succeeded"))
			},
			want: []Rule{RulePhaseBackwards},
		},
		"a running task waiting again": {
			history: func(f *fakeRun) {
				f.apply(freeJob("a"))
				f.apply(heldJob(job("b").After("a")))
				f.update("b", phase(annotations.PhaseRunning))
				f.update("b", phase(annotations.PhaseWaiting))
			},
			want: []Rule{RulePhaseBackwards},
		},
		"downstream of a failure ends Skipped": {
			history: func(f *fakeRun) {
				f.apply(freeJob("a"))
				f.apply(heldJob(job("b").After("a")))
				f.fail("a")
				f.update("b", phase(annotations.PhaseSkipped), outcome("Failed"))
			},
			want: []Rule{RuleFinalPhase},
		},
		"a false condition released the task": {
			history: func(f *fakeRun) {
				f.apply(freeJob("evaluate"))
				f.apply(heldJob(job("deploy").After("evaluate").When("tasks.evaluate.results.accuracy >= 0.9")))
				f.succeed("evaluate", annotate(annotations.ResultsAnnotation, `{"accuracy":0.8}`))
				f.update("deploy", release)
				f.succeed("deploy", outcome("Succeeded"))
			},
			want: []Rule{RuleFinalPhase},
		},
		"left Waiting after its upstreams succeeded": {
			history: func(f *fakeRun) {
				f.apply(freeJob("a"))
				f.apply(heldJob(job("b").After("a")))
				f.succeed("a")
			},
			want: []Rule{RuleFinalPhase},
		},
		"the outcome recorded on two tasks": {
			history: func(f *fakeRun) {
				f.apply(freeJob("a"))
				f.apply(freeJob("b"))
				f.succeed("a", outcome("Succeeded"))
				f.succeed("b", outcome("Succeeded"))
			},
			want: []Rule{RuleRunOutcome},
		},
		"no outcome once every task finished": {
			history: func(f *fakeRun) {
				f.apply(freeJob("a"))
				f.succeed("a")
			},
			want: []Rule{RuleRunOutcome},
		},
		"a run with a failure recorded Succeeded": {
			history: func(f *fakeRun) {
				f.apply(freeJob("train"))
				f.apply(heldJob(job("alert").After("train").Annotation(annotations.TriggerAnnotation, "any-failed")))
				f.fail("train")
				f.update("alert", release)
				f.succeed("alert", outcome("Succeeded"))
			},
			want: []Rule{RuleRunOutcome},
		},
		"the outcome recorded before the run ended": {
			history: func(f *fakeRun) {
				f.apply(freeJob("a"))
				f.apply(freeJob("b"))
				f.succeed("a", outcome("Succeeded"))
				f.succeed("b")
			},
			want: []Rule{RuleRunOutcome},
		},
		"the outcome changed once recorded": {
			history: func(f *fakeRun) {
				f.apply(freeJob("a"))
				f.succeed("a", outcome("Failed"))
				f.update("a", outcome("Succeeded"))
			},
			want: []Rule{RuleRunOutcome},
		},
		"an exception names the task and the rule": {
			opts: []InvariantOption{Except(RuleReleasedTwice, "b", "the test suspends b itself")},
			history: func(f *fakeRun) {
				f.apply(freeJob("a"))
				f.apply(heldJob(job("b").After("a")))
				f.succeed("a")
				f.update("b", release)
				f.update("b", suspend)
				f.update("b", release)
				f.succeed("b", outcome("Succeeded"))
			},
			excused: 1,
		},
		"an exception excuses nothing else": {
			opts: []InvariantOption{Except(RuleReleasedTwice, "a", "a different task")},
			history: func(f *fakeRun) {
				f.apply(freeJob("a"))
				f.apply(heldJob(job("b").After("a")))
				f.succeed("a")
				f.update("b", release)
				f.update("b", suspend)
				f.update("b", release)
				f.succeed("b", outcome("Succeeded"))
			},
			want: []Rule{RuleReleasedTwice},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			f := newFakeRun(t, tc.opts...)
			tc.history(f)
			res := f.r.Check()
			t.Logf("%d checks on %d tasks:%s", res.Checks, res.Tasks, describeAll(res.Violations))
			var got []Rule
			for _, v := range res.Violations {
				got = append(got, v.Rule)
			}
			slices.Sort(got)
			got = slices.Compact(got)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("rules fired (-want,+got):\n%s\nviolations:%s", diff, describeAll(res.Violations))
			}
			if len(res.Excused) != tc.excused {
				t.Errorf("%d violations excused, want %d", len(res.Excused), tc.excused)
			}
			if res.Checks == 0 || res.Tasks == 0 {
				t.Errorf("checks %d on %d tasks, want some", res.Checks, res.Tasks)
			}
		})
	}
}

func describeAll(vs []Violation) string {
	var b strings.Builder
	for _, v := range vs {
		b.WriteString("\n" + v.String())
	}
	return b.String()
}

// TestViolationReport: a violation names the rule, the task, and the
// observed sequence with resourceVersions.
func TestViolationReport(t *testing.T) {
	f := newFakeRun(t)
	f.apply(freeJob("a"))
	f.apply(heldJob(job("b").After("a")))
	f.update("b", release)
	f.succeed("a")
	f.succeed("b", outcome("Succeeded"))
	res := f.r.Check()
	if len(res.Violations) != 1 {
		t.Fatalf("got %d violations, want 1:%s", len(res.Violations), describeAll(res.Violations))
	}
	got := res.Violations[0].String()
	for _, want := range []string{
		"[released-before-upstreams] task b:",
		"released at rv=3 (trigger all-succeeded) while upstream a had not been seen Succeeded",
		"Job ns/b rv=2: Waiting, suspended",
		"Job ns/b rv=3: Running, released",
		"Job ns/a rv=6: Succeeded, released, status Succeeded",
		"pod a-pod: Running@4 -> Succeeded@5",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("report lacks %q:\n%s", want, got)
		}
	}
}

// TestTombstone: a deletion the informer only learnt of on a re-list (a
// tombstone carrying the last version seen) still ends the task's history.
func TestTombstone(t *testing.T) {
	f := newFakeRun(t)
	f.apply(freeJob("prep"))
	f.r.observe(cache.DeletedFinalStateUnknown{Key: "ns/prep", Obj: f.objs["prep"].DeepCopyObject()}, true)
	runs, _ := f.r.history.snapshot()
	if th := runs["ns/r"][0]; !th.gone() {
		t.Errorf("prep's history after a tombstone: %v, want it deleted", th.sequence())
	}
}

func TestSettled(t *testing.T) {
	for name, tc := range map[string]struct {
		rules []Rule
		want  bool
	}{
		"nothing to wait for":           {want: true},
		"a safety violation stays":      {rules: []Rule{RuleReleasedEarly}, want: true},
		"a final phase still to record": {rules: []Rule{RuleReleasedEarly, RuleFinalPhase}},
		"a run outcome still to record": {rules: []Rule{RuleRunOutcome}},
	} {
		t.Run(name, func(t *testing.T) {
			var res Result
			for _, r := range tc.rules {
				res.Violations = append(res.Violations, Violation{Rule: r})
			}
			if got := res.settled(); got != tc.want {
				t.Errorf("settled() = %v, want %v", got, tc.want)
			}
		})
	}
}
