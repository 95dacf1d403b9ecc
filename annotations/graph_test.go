package annotations

import (
	"maps"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func tasks(specs ...string) []*Task {
	var out []*Task
	for _, s := range specs {
		name, ups, _ := strings.Cut(s, ":")
		t := &Task{Name: name, Run: "r"}
		if ups != "" {
			t.After = strings.Split(ups, ",")
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
			for _, up := range g.Task(n).Upstreams() {
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
