// Package draw draws a run's task graph: as text for an 80-column
// terminal, as Graphviz DOT, as Mermaid, and as SVG rendered here (no
// Graphviz needed). Tasks are laid out in layers by depth, upstreams
// first; within a layer they are ordered to keep edges short.
package draw

import (
	"cmp"
	"fmt"
	"io"
	"slices"
	"strings"
)

// Task is one node: a task, its phase, its condition and its upstreams.
type Task struct {
	Name  string
	Phase string
	// When is the task's condition ("" for none): its node is drawn as
	// conditional.
	When      string
	Upstreams []string
}

// Run is what is drawn: a run's tasks.
type Run struct {
	Namespace, Name string
	Outcome         string
	Tasks           []Task
}

// layout places the tasks: layers[d] are the indexes of the tasks of
// depth d, in drawing order.
type layout struct {
	run    Run
	index  map[string]int
	depth  []int
	layers [][]int
	row    []int // a task's position within its layer
}

func newLayout(r Run) *layout {
	l := &layout{run: r, index: map[string]int{}, depth: make([]int, len(r.Tasks)), row: make([]int, len(r.Tasks))}
	for i, t := range r.Tasks {
		l.index[t.Name] = i
	}
	// Longest path from a root; a task on a cycle keeps the depth it has
	// when its turn comes (the walk visits each task once).
	state := make([]int, len(r.Tasks)) // 0 new, 1 on the path, 2 done
	var visit func(i int) int
	visit = func(i int) int {
		if state[i] != 0 {
			return l.depth[i]
		}
		state[i] = 1
		for _, up := range r.Tasks[i].Upstreams {
			if j, ok := l.index[up]; ok && state[j] != 1 {
				l.depth[i] = max(l.depth[i], visit(j)+1)
			}
		}
		state[i] = 2
		return l.depth[i]
	}
	for i := range r.Tasks {
		visit(i)
	}
	for i, d := range l.depth {
		for len(l.layers) <= d {
			l.layers = append(l.layers, nil)
		}
		l.layers[d] = append(l.layers[d], i)
	}
	// Within a layer: by the mean position of the upstreams (barycenter,
	// one pass down), then by name.
	for d, layer := range l.layers {
		key := make(map[int]float64, len(layer))
		for _, i := range layer {
			sum, n := 0.0, 0
			for _, up := range r.Tasks[i].Upstreams {
				if j, ok := l.index[up]; ok && l.depth[j] < d {
					sum += float64(l.row[j])
					n++
				}
			}
			if n > 0 {
				key[i] = sum / float64(n)
			}
		}
		slices.SortStableFunc(layer, func(a, b int) int {
			if c := cmp.Compare(key[a], key[b]); c != 0 {
				return c
			}
			return strings.Compare(r.Tasks[a].Name, r.Tasks[b].Name)
		})
		for pos, i := range layer {
			l.row[i] = pos
		}
	}
	return l
}

// edges returns every edge as (upstream, downstream) indexes, in drawing
// order; upstreams that are not in the run are left out.
func (l *layout) edges() [][2]int {
	var out [][2]int
	for _, layer := range l.layers {
		for _, i := range layer {
			for _, up := range slices.Sorted(slices.Values(l.run.Tasks[i].Upstreams)) {
				if j, ok := l.index[up]; ok {
					out = append(out, [2]int{j, i})
				}
			}
		}
	}
	return out
}

// ASCII writes the graph as text that fits in 80 columns: the tasks layer
// by layer, each with its phase and what it waits for.
func ASCII(w io.Writer, r Run) error {
	l := newLayout(r)
	var b strings.Builder
	fmt.Fprintf(&b, "run %s/%s: %s, %d tasks\n", r.Namespace, r.Name, r.Outcome, len(r.Tasks))
	nameW := 0
	for _, t := range r.Tasks {
		nameW = max(nameW, len(t.Name))
	}
	nameW = min(nameW, 30)
	for d, layer := range l.layers {
		fmt.Fprintf(&b, "\nlayer %d\n", d+1)
		for _, i := range layer {
			t := r.Tasks[i]
			line := fmt.Sprintf("  %-*s  %-14s", nameW, fit(t.Name, 30), t.Phase)
			var notes []string
			if len(t.Upstreams) > 0 {
				notes = append(notes, "after "+strings.Join(slices.Sorted(slices.Values(t.Upstreams)), ", "))
			}
			if t.When != "" {
				notes = append(notes, "when "+t.When)
			}
			if len(notes) > 0 {
				line += "  " + strings.Join(notes, "; ")
			}
			b.WriteString(fit(strings.TrimRight(line, " "), 80) + "\n")
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// fit cuts s to n bytes, ending it with "..." when cut.
func fit(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n-3] + "..."
}

// phases are sluice's task phases, in the order a legend lists them.
var phases = []string{"Succeeded", "Running", "Waiting", "Failed", "UpstreamFailed", "Skipped"}

// phaseFill are the phases' fill colors.
var phaseFill = map[string]string{
	"Succeeded": "#c8e6c9", "Running": "#fff59d", "Waiting": "#eeeeee",
	"Failed": "#ffcdd2", "UpstreamFailed": "#ffe0e0", "Skipped": "#f5f5f5",
}

func fill(phase string) string {
	if c, ok := phaseFill[phase]; ok {
		return c
	}
	return "#ffffff"
}

// DOT writes the graph in Graphviz's language.
func DOT(w io.Writer, r Run) error {
	l := newLayout(r)
	var b strings.Builder
	fmt.Fprintf(&b, "digraph %q {\n  rankdir=LR;\n  node [shape=box, style=\"rounded,filled\", fontname=\"sans-serif\"];\n", r.Namespace+"/"+r.Name)
	for _, layer := range l.layers {
		for _, i := range layer {
			t := r.Tasks[i]
			style := "rounded,filled"
			if t.When != "" {
				style += ",dashed"
			}
			fmt.Fprintf(&b, "  %q [label=%q, fillcolor=%q, style=%q", t.Name, t.Name+"\n"+t.Phase, fill(t.Phase), style)
			if t.When != "" {
				fmt.Fprintf(&b, ", tooltip=%q", "when "+t.When)
			}
			b.WriteString("];\n")
		}
	}
	for _, e := range l.edges() {
		fmt.Fprintf(&b, "  %q -> %q;\n", r.Tasks[e[0]].Name, r.Tasks[e[1]].Name)
	}
	b.WriteString("}\n")
	_, err := io.WriteString(w, b.String())
	return err
}

// Mermaid writes the graph as a Mermaid flowchart.
func Mermaid(w io.Writer, r Run) error {
	l := newLayout(r)
	var b strings.Builder
	b.WriteString("flowchart LR\n")
	id := func(i int) string { return fmt.Sprintf("t%d", i) }
	used := map[string]bool{}
	for _, layer := range l.layers {
		for _, i := range layer {
			t := r.Tasks[i]
			class := strings.ToLower(t.Phase)
			if class == "" {
				class = "unknown"
			}
			used[class] = true
			label := t.Name + "<br/>" + t.Phase
			if t.When != "" {
				label += "<br/><i>when " + t.When + "</i>"
			}
			fmt.Fprintf(&b, "  %s[\"%s\"]:::%s\n", id(i), mermaidText(label), class)
		}
	}
	for _, e := range l.edges() {
		arrow := "-->"
		if r.Tasks[e[1]].When != "" {
			arrow = "-.->"
		}
		fmt.Fprintf(&b, "  %s %s %s\n", id(e[0]), arrow, id(e[1]))
	}
	for _, phase := range phases {
		if class := strings.ToLower(phase); used[class] {
			fmt.Fprintf(&b, "  classDef %s fill:%s,stroke:#555\n", class, phaseFill[phase])
		}
	}
	if used["unknown"] {
		b.WriteString("  classDef unknown fill:#ffffff,stroke:#555\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// mermaidText escapes what would end a quoted Mermaid label.
func mermaidText(s string) string {
	return strings.NewReplacer(`"`, "#quot;", "\n", " ").Replace(s)
}
