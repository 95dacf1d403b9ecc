package retry

import (
	"strconv"
	"strings"
	"testing"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/sluice-dev/sluice/annotations"
	utiltesting "github.com/sluice-dev/sluice/annotations/testing"
)

// job is a task's Job in a recorded phase; held ones are suspended, as the
// webhook leaves a task the controller never released.
func job(w *utiltesting.JobWrapper, p annotations.Phase, held bool) *batchv1.Job {
	j := w.Label(annotations.PhaseLabel, string(p)).Annotation(annotations.ReasonAnnotation, "said the controller").Obj()
	j.Spec.Suspend = ptr.To(held)
	return j
}

func steps(t *testing.T, objs ...client.Object) []Step {
	t.Helper()
	var out []Step
	for _, obj := range objs {
		task, errs := annotations.Parse(obj)
		if len(errs) > 0 {
			t.Fatalf("%s: %v", obj.GetName(), errs)
		}
		out = append(out, Step{Task: task, Object: obj})
	}
	return out
}

func TestPlan(t *testing.T) {
	const ns = "ml"
	mk := func(name string) *utiltesting.JobWrapper { return utiltesting.MakeJob(name, ns) }
	const (
		S  = annotations.PhaseSucceeded
		F  = annotations.PhaseFailed
		UF = annotations.PhaseUpstreamFailed
		SK = annotations.PhaseSkipped
		R  = annotations.PhaseRunning
		W  = annotations.PhaseWaiting
	)
	cases := map[string]struct {
		objs []client.Object
		want string // task=action(attempt) in graph order
	}{
		"a failed step reruns, what never ran because of it runs again, what succeeded is kept": {
			objs: []client.Object{
				job(mk("prep"), S, false),
				job(mk("train").After("prep"), F, false),
				job(mk("eval").After("train"), UF, true),
				job(mk("deploy").After("eval").When("tasks.eval.results.ok == 1"), UF, true),
				job(mk("report").After("prep"), S, false),
			},
			want: "prep=keep report=keep train=rerun(2) eval=again deploy=again",
		},
		"a second retry while the first runs does nothing": {
			objs: []client.Object{
				job(mk("prep"), S, false),
				job(mk("train").After("prep").Annotation(annotations.AttemptAnnotation, "2"), R, false),
				job(mk("eval").After("train"), UF, true), // not taken back yet
			},
			want: "prep=keep train=keep eval=keep",
		},
		"a failed second attempt reruns as the third": {
			objs: []client.Object{
				job(mk("train").Annotation(annotations.AttemptAnnotation, "2"), F, false),
				job(mk("eval").After("train"), UF, true),
			},
			want: "train=rerun(3) eval=again",
		},
		"a condition that failed on a succeeded upstream's results is stuck": {
			objs: []client.Object{
				job(mk("eval"), S, false),
				job(mk("deploy").After("eval").When("tasks.eval.results.accuracy > 0.9"), F, true),
			},
			want: "eval=keep deploy=stuck",
		},
		"a task whose failed upstream is gone is stuck": {
			objs: []client.Object{
				job(mk("eval").After("gone"), UF, true),
			},
			want: "eval=stuck",
		},
		"a group's failed member reruns and its join waits again": {
			objs: []client.Object{
				job(mk("shard-0").Group("shards"), S, false),
				job(mk("shard-1").Group("shards"), F, false),
				job(mk("merge").AfterGroup("shards=2"), UF, true),
			},
			want: "shard-0=keep shard-1=rerun(2) merge=again",
		},
		"an any-failed cleanup that ran is kept; one that was skipped runs again": {
			objs: []client.Object{
				job(mk("a"), F, false),
				job(mk("b"), F, false),
				job(mk("cleanup").After("a").Annotation(annotations.TriggerAnnotation, annotations.TriggerAnyFailed), S, false),
				job(mk("b-ok").After("b"), SK, true),
			},
			want: "a=rerun(2) b=rerun(2) b-ok=again cleanup=keep",
		},
		"a task still running is left alone, a failure not yet recorded too": {
			objs: []client.Object{
				job(mk("a"), R, false),
				func() client.Object {
					j := job(mk("b"), R, false)
					j.Status.Conditions = []batchv1.JobCondition{{Type: batchv1.JobFailed, Status: corev1.ConditionTrue}}
					return j
				}(),
				job(mk("c").After("a"), W, true),
			},
			want: "a=keep b=keep c=keep",
		},
		"a failed bare Pod reruns": {
			objs: []client.Object{
				utiltesting.MakePod("probe", ns).Label(annotations.PhaseLabel, string(F)).Phase(corev1.PodFailed).Obj(),
				utiltesting.MakePod("after", ns).After("probe").Gate(annotations.UpstreamGate).Label(annotations.PhaseLabel, string(UF)).Obj(),
			},
			want: "probe=rerun(2) after=again",
		},
		"a task that ran on all-done and failed reruns too": {
			objs: []client.Object{
				job(mk("a"), F, false),
				job(mk("summary").After("a").Annotation(annotations.TriggerAnnotation, annotations.TriggerAllDone), F, false),
			},
			want: "a=rerun(2) summary=rerun(2)",
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			var got []string
			for _, d := range Plan(steps(t, tc.objs...)) {
				s := d.Task + "=" + string(d.Action)
				if d.Action == Rerun {
					s += "(" + strconv.Itoa(d.Attempt) + ")"
				}
				if d.Why == "" {
					t.Errorf("%s: %s without a why", d.Task, d.Action)
				}
				got = append(got, s)
			}
			if strings.Join(got, " ") != tc.want {
				t.Errorf("Plan:\n got %s\nwant %s", strings.Join(got, " "), tc.want)
			}
		})
	}
}
