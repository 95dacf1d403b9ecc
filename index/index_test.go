package index

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/sluice-dev/sluice/annotations"
	utiltesting "github.com/sluice-dev/sluice/annotations/testing"
)

// job is a Job as the API server stores it: mutated (run label) and with a UID.
func job(name string) *utiltesting.JobWrapper {
	return utiltesting.MakeJob(name, "ml").Run("r").UID("uid-" + name)
}

func parse(t testing.TB, obj client.Object) (*annotations.Task, Ref, types.UID) {
	t.Helper()
	task, errs := annotations.Parse(obj)
	if len(errs) > 0 {
		t.Fatalf("Parse(%s) = %v", obj.GetName(), errs)
	}
	return task, RefOf(obj), obj.GetUID()
}

func admit(t testing.TB, x *Runs, obj client.Object, record bool) Conflicts {
	t.Helper()
	task, ref, uid := parse(t, obj)
	c, err := x.Admit(context.Background(), ref, uid, task, record, nil)
	if err != nil {
		t.Fatalf("Admit(%s) = %v", obj.GetName(), err)
	}
	return c
}

func names(x *Runs) []string {
	var out []string
	for _, e := range x.Tasks("ml", "r") {
		out = append(out, e.Task.Name)
	}
	return out
}

func TestAdmitChecks(t *testing.T) {
	x := Of(
		job("prep").Outputs("data:Dataset").Obj(),
		job("train").After("prep").Outputs("model").Obj(),
		job("b").After("a").Obj(),
		job("c").After("b").Obj(),
	)
	cases := map[string]struct {
		obj       client.Object
		duplicate string
		inputs    []string
		cycle     string
	}{
		"fits":                   {obj: job("evaluate").Inputs("m=train.model").Obj()},
		"upstream not yet there": {obj: job("deploy").Inputs("m=register.model").Obj()},
		"same object again":      {obj: job("train").After("prep").Outputs("model").Obj()},
		"duplicate task":         {obj: job("train-2").Label(annotations.TaskLabel, "train").Obj(), duplicate: "Job ml/train"},
		"undeclared output":      {obj: job("evaluate").Inputs("m=train.weights, d=prep.data").Obj(), inputs: []string{"m=train.weights"}},
		"closes a cycle":         {obj: job("a").After("c").Obj(), cycle: "a -> b -> c -> a"},
		"not a cycle":            {obj: job("a").After("prep").Obj()},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			c := admit(t, x, tc.obj, false)
			var dup string
			if c.Duplicate != nil {
				dup = c.Duplicate.Ref.String()
			}
			var inputs []string
			for _, b := range c.Inputs {
				inputs = append(inputs, b.Input.Name+"="+b.Input.Task+"."+b.Input.Output)
			}
			if dup != tc.duplicate || !slices.Equal(inputs, tc.inputs) || strings.Join(c.Cycle, " -> ") != tc.cycle {
				t.Errorf("Admit() = duplicate %q, inputs %v, cycle %q; want %q, %v, %q",
					dup, inputs, strings.Join(c.Cycle, " -> "), tc.duplicate, tc.inputs, tc.cycle)
			}
		})
	}
	if got := names(x); !slices.Equal(got, []string{"b", "c", "prep", "train"}) {
		t.Errorf("checks without record changed the index: %v", got)
	}
}

func TestCycleIsShortestFromTheNewTask(t *testing.T) {
	// a waits for x; b and c wait for a; d waits for c. x after d closes
	// x -> a -> c -> d -> x; x after b closes the shorter x -> a -> b -> x.
	x := Of(job("a").After("x").Obj(), job("b").After("a").Obj(), job("c").After("a").Obj(), job("d").After("c").Obj())
	if c := admit(t, x, job("x").After("b", "d").Obj(), false); strings.Join(c.Cycle, " -> ") != "x -> a -> b -> x" {
		t.Errorf("cycle = %v, want x -> a -> b -> x", c.Cycle)
	}
}

func TestReadYourWrites(t *testing.T) {
	x := Of()
	if c := admit(t, x, job("prep").Outputs("data").Obj(), true); !c.None() {
		t.Fatalf("first object: %+v", c)
	}
	// The next document of the same apply, before any informer event.
	if c := admit(t, x, job("train").Inputs("d=prep.model").Obj(), true); len(c.Inputs) != 1 || c.Inputs[0].Producer.Ref.Name != "prep" {
		t.Fatalf("second object did not see the first: %+v", c)
	}
	if c := admit(t, x, job("prep-copy").Label(annotations.TaskLabel, "prep").Obj(), true); c.Duplicate == nil || !c.Duplicate.Pending() {
		t.Fatalf("duplicate of an admitted object not found: %+v", c)
	}
	// A dry run is checked but not recorded.
	if c := admit(t, x, job("eval").After("prep").Obj(), false); !c.None() {
		t.Fatalf("dry run: %+v", c)
	}
	if got := names(x); !slices.Equal(got, []string{"prep"}) {
		t.Errorf("index = %v, want [prep] (refused and dry-run objects are not recorded)", got)
	}
}

func TestPendingExpiresUnlessDelivered(t *testing.T) {
	now := time.Unix(1000, 0)
	x := Of()
	x.now = func() time.Time { return now }
	delivered, lost := job("delivered").Obj(), job("lost").Obj()
	admit(t, x, delivered, true)
	admit(t, x, lost, true)
	x.Observe(delivered) // the informer caught up with one of them
	now = now.Add(DefaultPendingFor + time.Second)
	if c := admit(t, x, job("lost-again").Label(annotations.TaskLabel, "lost").Obj(), true); !c.None() {
		t.Errorf("a create that never landed still holds its task name: %+v", c)
	}
	if c := admit(t, x, job("delivered-again").Label(annotations.TaskLabel, "delivered").Obj(), true); c.Duplicate == nil || c.Duplicate.Pending() {
		t.Errorf("a delivered object must not expire: %+v", c)
	}
}

func TestPendingDuplicateThatDoesNotExist(t *testing.T) {
	now := time.Unix(1000, 0)
	x := Of()
	x.now = func() time.Time { return now }
	admit(t, x, job("first").Label(annotations.TaskLabel, "t").Obj(), true)
	var asked []string
	exists := func(_ context.Context, ref Ref) (bool, error) {
		asked = append(asked, ref.String())
		return false, nil // its create failed after admission
	}
	task, ref, uid := parse(t, job("second").Label(annotations.TaskLabel, "t").Obj())
	// While the first create may still be on its way, it is not looked up.
	if c, _ := x.Admit(context.Background(), ref, uid, task, true, exists); c.Duplicate == nil || len(asked) != 0 {
		t.Fatalf("Admit() = %+v after asking %v; want the duplicate in flight, no lookup", c, asked)
	}
	now = now.Add(InFlightFor + time.Second)
	c, err := x.Admit(context.Background(), ref, uid, task, true, exists)
	if err != nil || !c.None() {
		t.Fatalf("Admit() = %+v, %v; want no conflict", c, err)
	}
	if !slices.Equal(asked, []string{"Job ml/first"}) {
		t.Errorf("asked the API server about %v, want [Job ml/first]", asked)
	}
	// A duplicate the informers delivered is not looked up: it exists.
	x.Observe(job("second").Label(annotations.TaskLabel, "t").Obj())
	asked = nil
	task, ref, uid = parse(t, job("third").Label(annotations.TaskLabel, "t").Obj())
	if c, _ := x.Admit(context.Background(), ref, uid, task, true, exists); c.Duplicate == nil || len(asked) != 0 {
		t.Errorf("Admit() = %+v after asking %v; want the delivered duplicate, no lookup", c, asked)
	}
}

func TestForgetAndRecreate(t *testing.T) {
	x := Of(job("a").Obj(), job("b").After("a").Obj())
	old := job("a").Obj()
	recreated := job("a").Obj()
	recreated.UID = "uid-a-2"
	admit(t, x, recreated, true) // same name: not a duplicate of itself
	x.Forget(old)                // the old object's delete event arrives late
	if got := names(x); !slices.Equal(got, []string{"a", "b"}) {
		t.Fatalf("index = %v; the late delete removed the new object", got)
	}
	x.Forget(recreated)
	x.Forget(job("b").After("a").Obj())
	if got := names(x); len(got) != 0 || len(x.runs) != 0 {
		t.Errorf("index = %v, runs %d; want empty", got, len(x.runs))
	}
}

func TestGroupCountsFollowTheIndex(t *testing.T) {
	x := Of(job("merge").AfterGroup("shards=2").Obj())
	one, two, three := job("s1").Group("shards").Obj(), job("s2").Group("shards").Obj(), job("s3").Group("shards").Obj()
	for _, o := range []client.Object{one, two} {
		if c := admit(t, x, o, true); !c.None() {
			t.Fatalf("admitting %s: %+v", o.GetName(), c)
		}
	}
	full := GroupConflict{Group: "shards", Join: "merge", Size: 2, Members: 2}
	if c := admit(t, x, three, true); !slices.Equal(c.Groups, []GroupConflict{full}) {
		t.Fatalf("a third member of a group of 2: %+v, want %+v", c.Groups, full)
	}
	if c := admit(t, x, two, true); !c.None() {
		t.Errorf("admitting a member again (a retried create) counts it twice: %+v", c)
	}
	x.Forget(one)
	if c := admit(t, x, three, true); !c.None() {
		t.Errorf("after a member was deleted, another must fit: %+v", c)
	}
	x.Forget(job("merge").Obj())
	if c := admit(t, x, job("s4").Group("shards").Obj(), false); !c.None() {
		t.Errorf("with no task waiting for it a group has no size: %+v", c)
	}
}

func TestPodsOfJobsAndBrokenObjectsAreNotTasks(t *testing.T) {
	pod := utiltesting.MakePod("train-abc", "ml").Label(annotations.RunLabel, "r").Label(annotations.TaskLabel, "train").OwnedByJob("train", "uid-train").Obj()
	broken := job("bad").After("Not A Name").Obj()
	plain := utiltesting.MakeJob("plain", "ml").Obj()
	delete(plain.Labels, annotations.PipelineLabel)
	x := Of(pod, broken, plain, job("train").Obj())
	if got := names(x); !slices.Equal(got, []string{"train"}) {
		t.Errorf("index = %v, want [train]", got)
	}
}

func TestNotSynced(t *testing.T) {
	x := New()
	task, ref, uid := parse(t, job("a").Obj())
	if _, err := x.Admit(context.Background(), ref, uid, task, true, nil); err != ErrNotSynced {
		t.Errorf("Admit() before sync = %v, want ErrNotSynced", err)
	}
	if err := x.ReadyCheck(nil); err == nil {
		t.Error("ReadyCheck() before sync = nil")
	}
}

func TestConcurrentAdmissionsSeeEachOther(t *testing.T) {
	x := Of()
	var wg sync.WaitGroup
	var mu sync.Mutex
	dups := 0
	for i := range 64 {
		wg.Go(func() {
			// Two objects per task name, admitted at the same moment.
			c := admit(t, x, job(fmt.Sprintf("o%d", i)).Label(annotations.TaskLabel, fmt.Sprintf("t%d", i/2)).Obj(), true)
			if c.Duplicate != nil {
				mu.Lock()
				dups++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if dups != 32 || len(x.Tasks("ml", "r")) != 32 {
		t.Errorf("%d refused as duplicates, %d admitted; want 32 and 32", dups, len(x.Tasks("ml", "r")))
	}
}

// BenchmarkAdmitGroupMember admits one more member into a group of n that a
// join waits for: the cost must not grow with n either.
func BenchmarkAdmitGroupMember(b *testing.B) {
	for _, n := range []int{10, 10_000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			objs := []client.Object{job("merge").AfterGroup(fmt.Sprintf("shards=%d", n+1)).Obj()}
			for i := range n {
				objs = append(objs, job(fmt.Sprintf("s%d", i)).After("root").Group("shards").Obj())
			}
			x := Of(objs...)
			task, ref, uid := parse(b, job("last").After("root").Group("shards").Obj())
			b.ResetTimer()
			for b.Loop() {
				if c, err := x.Admit(context.Background(), ref, uid, task, false, nil); err != nil || !c.None() {
					b.Fatal(c, err)
				}
			}
		})
	}
}

// BenchmarkAdmit admits one more task into a run that holds n already: the
// cost must not grow with n.
func BenchmarkAdmit(b *testing.B) {
	for _, n := range []int{10, 10_000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			objs := make([]client.Object, 0, n)
			for i := range n {
				objs = append(objs, job(fmt.Sprintf("s%d", i)).After("root").Outputs("out").Obj())
			}
			x := Of(objs...)
			task, ref, uid := parse(b, job("join").Inputs("a=s1.out, b=s2.out").Obj())
			b.ResetTimer()
			for b.Loop() {
				if _, err := x.Admit(context.Background(), ref, uid, task, false, nil); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
