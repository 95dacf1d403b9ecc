package draw

import (
	"fmt"
	"html"
	"io"
	"strings"
)

// Sizes of the SVG drawing, in pixels.
const (
	boxW, boxH   = 160, 44
	gapX, gapY   = 60, 16
	margin       = 20
	titleH       = 28
	maxLabelRune = 22
)

// SVG writes the graph as a standalone SVG document: layers left to right,
// a box per task filled by its phase (a conditional task's border dashed,
// a skipped one's text struck through), a curve per edge. Each task is a
// <g class="task"> with its name in data-task, for scripts and tests.
func SVG(w io.Writer, r Run) error {
	l := newLayout(r)
	rows := 0
	for _, layer := range l.layers {
		rows = max(rows, len(layer))
	}
	width := 2*margin + max(1, len(l.layers))*boxW + max(0, len(l.layers)-1)*gapX
	height := 2*margin + titleH + max(1, rows)*boxH + max(0, rows-1)*gapY
	x := func(i int) int { return margin + l.depth[i]*(boxW+gapX) }
	y := func(i int) int { return margin + titleH + l.row[i]*(boxH+gapY) }
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n",
		width, height, width, height)
	b.WriteString(`<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" fill="#666"/></marker></defs>` + "\n")
	fmt.Fprintf(&b, `<text x="%d" y="%d" font-size="14" font-weight="bold">%s</text>`+"\n", margin, margin+14,
		html.EscapeString(fmt.Sprintf("run %s/%s: %s", r.Namespace, r.Name, r.Outcome)))
	for _, e := range l.edges() {
		x1, y1 := x(e[0])+boxW, y(e[0])+boxH/2
		x2, y2 := x(e[1]), y(e[1])+boxH/2
		dash := ""
		if r.Tasks[e[1]].When != "" {
			dash = ` stroke-dasharray="4 3"`
		}
		mid := (x1 + x2) / 2
		fmt.Fprintf(&b, `<path class="edge" d="M %d %d C %d %d, %d %d, %d %d" fill="none" stroke="#666"%s marker-end="url(#arrow)"/>`+"\n",
			x1, y1, mid, y1, mid, y2, x2, y2, dash)
	}
	for _, layer := range l.layers {
		for _, i := range layer {
			t := r.Tasks[i]
			border := `stroke="#555"`
			if t.When != "" {
				border += ` stroke-dasharray="5 3"`
			}
			fmt.Fprintf(&b, `<g class="task" data-task="%s" data-phase="%s">`, html.EscapeString(t.Name), html.EscapeString(t.Phase))
			title := t.Name + ": " + t.Phase
			if t.When != "" {
				title += "\nwhen " + t.When
			}
			fmt.Fprintf(&b, `<title>%s</title>`, html.EscapeString(title))
			fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%d" height="%d" rx="8" fill="%s" %s/>`, x(i), y(i), boxW, boxH, fill(t.Phase), border)
			deco := ""
			if t.Phase == "Skipped" {
				deco = ` text-decoration="line-through" fill="#777"`
			}
			fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="middle" font-weight="bold"%s>%s</text>`, x(i)+boxW/2, y(i)+18, deco, html.EscapeString(label(t.Name)))
			fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="middle" fill="#333">%s</text>`, x(i)+boxW/2, y(i)+34, html.EscapeString(t.Phase))
			b.WriteString("</g>\n")
		}
	}
	b.WriteString("</svg>\n")
	_, err := io.WriteString(w, b.String())
	return err
}

// label shortens a task name to fit its box.
func label(s string) string {
	r := []rune(s)
	if len(r) <= maxLabelRune {
		return s
	}
	return string(r[:maxLabelRune-1]) + "…"
}
