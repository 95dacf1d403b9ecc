package annotations

import (
	"maps"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// tasks builds tasks from "name[@group][:up,up,group=size]".
func tasks(specs ...string) []*Task {
	var out []*Task
	for _, s := range specs {
		name, ups, _ := strings.Cut(s, ":")
		name, group, _ := strings.Cut(name, "@")
		t := &Task{Name: name, Run: "r", Group: group}
		for _, up := range strings.Split(ups, ",") {
			if g, size, isGroup := strings.Cut(up, "="); isGroup {
				n, _ := strconv.Atoi(size)
				t.AfterGroups = append(t.AfterGroups, GroupWait{Group: g, Size: n})
			} else if up != "" {
				t.After = append(t.After, up)
			}
		}
		out = append(out, t)
	}
	return out
}

func TestGraph(t *testing.T) {
	cases := map[string]struct {
		tasks     []*Task
		wantOrder []string
		wantErrs  []string
		wantMiss  []string
	}{
		"chain": {
			tasks:     tasks("c:b", "a", "b:a"),
			wantOrder: []string{"a", "b", "c"},
		},
		"diamond": {
			tasks:     tasks("d:b,c", "c:a", "b:a", "a"),
			wantOrder: []string{"a", "b", "c", "d"},
		},
		"missing upstream is waited for, not an error": {
			tasks:     tasks("b:a", "c:b"),
			wantOrder: []string{"b", "c"},
			wantMiss:  []string{"a"},
		},
		"cycle": {
			tasks:    tasks("a:c", "b:a", "c:b", "d"),
			wantErrs: []string{`run "r" has a dependency cycle: a -> b -> c -> a`},
		},
		"a group's tasks come before the task that waits for it": {
			tasks:     tasks("join:shards=3", "s2@shards:root", "s1@shards:root", "s3@shards:root", "root"),
			wantOrder: []string{"root", "s1", "s2", "s3", "join"},
		},
		"a group that is not complete yet is waited for": {
			tasks:     tasks("join:shards=3", "s1@shards"),
			wantOrder: []string{"s1", "join"},
		},
		"cycle through a group": {
			tasks:    tasks("join:shards=2", "s1@shards", "s2@shards:join"),
			wantErrs: []string{`run "r" has a dependency cycle: join -> s2 -> join`},
		},
		"a group with more tasks than waited for": {
			tasks:     tasks("join:shards=1", "s1@shards", "s2@shards"),
			wantOrder: []string{"s1", "s2", "join"},
			wantErrs:  []string{`run "r": group "shards" has 2 tasks, but task "join" waits for 1 (sluice.dev/after-group)`},
		},
		"two sizes of one group": {
			tasks:     tasks("a:shards=2", "b:shards=3", "s1@shards", "s2@shards"),
			wantOrder: []string{"s1", "s2", "a", "b"},
			wantErrs:  []string{`run "r": task "b" waits for group "shards" of 3 tasks, but task "a" for 2: a group has one size`},
		},
		"duplicate task": {
			tasks:     tasks("a", "a", "b:a"),
			wantOrder: []string{"a", "b"},
			wantErrs:  []string{`task "a" appears more than once in run "r"`},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			g, errs := NewGraph(tc.tasks)
			var got []string
			for _, e := range errs {
				got = append(got, e.Error())
			}
			if diff := cmp.Diff(tc.wantErrs, got); diff != "" {
				t.Errorf("errors (-want,+got):\n%s", diff)
			}
			order, err := g.Order()
			if tc.wantOrder != nil {
				if err != nil {
					t.Fatal(err)
				}
				if diff := cmp.Diff(tc.wantOrder, order); diff != "" {
					t.Errorf("Order() (-want,+got):\n%s", diff)
				}
			} else if err == nil {
				t.Errorf("Order() = %v, want a cycle error", order)
			}
			if diff := cmp.Diff(tc.wantMiss, g.Missing()); diff != "" {
				t.Errorf("Missing() (-want,+got):\n%s", diff)
			}
		})
	}
}

func TestDownstream(t *testing.T) {
	g, _ := NewGraph(tasks("a", "b:a", "c:a", "d:b,c"))
	if diff := cmp.Diff([]string{"b", "c"}, g.Downstream("a")); diff != "" {
		t.Errorf("Downstream(a) (-want,+got):\n%s", diff)
	}
}

func FuzzGraph(f *testing.F) {
	f.Add("a:b;b:c;c")
	f.Add("a:a")
	f.Add("a:b;b:a;c:a")
	f.Add("j:g=2;a@g:r;b@g:r;r")
	f.Add("j:g=1;a@g:j")
	f.Fuzz(func(t *testing.T, spec string) {
		g, errs := NewGraph(tasks(strings.Split(spec, ";")...))
		order, err := g.Order()
		if (err != nil) != (g.Cycle() != nil) {
			t.Fatalf("Order error %v disagrees with Cycle %v", err, g.Cycle())
		}
		if err != nil {
			if len(errs) == 0 {
				t.Fatal("a cycle must be reported by NewGraph")
			}
			return
		}
		pos := map[string]int{}
		for i, n := range order {
			pos[n] = i
		}
		if len(order) != len(g.Names()) {
			t.Fatalf("order %v misses tasks of %v", order, g.Names())
		}
		for _, n := range order {
			ups := g.Task(n).Upstreams()
			for _, w := range g.Task(n).AfterGroups {
				ups = append(ups, g.Members(w.Group)...)
			}
			for _, up := range ups {
				if p, ok := pos[up]; ok && p >= pos[n] {
					t.Fatalf("%s placed before its upstream %s in %v", n, up, order)
				}
			}
		}
	})
}

func TestSchedule(t *testing.T) {
	// a -> b -> c -> a is a cycle; d waits for c; e stands alone; f -> g -> f
	// is a second cycle fed by e.
	g, _ := NewGraph(tasks("a:c", "b:a", "c:b", "d:c", "e", "f:e,g", "g:f"))
	order, cycles := g.Schedule()
	if len(order) != 7 {
		t.Fatalf("order %v does not hold every task", order)
	}
	pos := map[string]int{}
	for i, n := range order {
		pos[n] = i
	}
	for _, edge := range [][2]string{{"c", "d"}, {"e", "f"}} {
		if pos[edge[0]] > pos[edge[1]] {
			t.Errorf("order %v puts %s after %s", order, edge[0], edge[1])
		}
	}
	want := map[string]string{
		"a": "a -> b -> c -> a", "b": "b -> c -> a -> b", "c": "c -> a -> b -> c",
		"f": "f -> g -> f", "g": "g -> f -> g",
	}
	got := map[string]string{}
	for n, c := range cycles {
		got[n] = strings.Join(c, " -> ")
	}
	if !maps.Equal(got, want) {
		t.Errorf("cycles = %v, want %v", got, want)
	}
}

func TestDepths(t *testing.T) {
	// A diamond (a; b, c after a; d after both) beside a lone e, a chain
	// f -> g -> h whose h also waits for a, and a cycle x <-> y.
	g, _ := NewGraph(tasks("a", "b:a", "c:a", "d:b,c", "e", "f", "g:f", "h:g,a", "x:y", "y:x"))
	want := map[string]int{"a": 0, "b": 1, "c": 1, "d": 2, "e": 0, "f": 0, "g": 1, "h": 2, "x": 0, "y": 0}
	if got := g.Depths(); !maps.Equal(got, want) {
		t.Errorf("Depths() = %v, want %v", got, want)
	}
}

// BenchmarkCheck is the offline graph check (lint) of 1 -> n -> 1, the
// join waiting for a group: parse, graph, cycles, inputs, groups.
func BenchmarkCheck(b *testing.B) {
	for _, n := range []int{100, 10_000} {
		b.Run(strconv.Itoa(n), func(b *testing.B) {
			p := map[string]string{PipelineLabel: "etl"}
			objs := []metav1.Object{object("split", p, map[string]string{OutputsAnnotation: "parts"})}
			for i := range n {
				objs = append(objs, object("shard-"+strconv.Itoa(i), map[string]string{PipelineLabel: "etl", GroupLabel: "shards"},
					map[string]string{InputsAnnotation: "in=split.parts"}))
			}
			objs = append(objs, object("merge", p, map[string]string{AfterGroupAnnotation: "shards=" + strconv.Itoa(n)}))
			for b.Loop() {
				if errs := Check(objs); len(errs) > 0 {
					b.Fatal(errs)
				}
			}
		})
	}
}
