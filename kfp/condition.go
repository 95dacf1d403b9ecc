package kfp

import (
	"fmt"
	"maps"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/google/cel-go/common"
	"github.com/google/cel-go/common/ast"
	"github.com/google/cel-go/common/operators"
	"github.com/google/cel-go/parser"

	"github.com/sluice-dev/sluice/kfp/task"
)

// A KFP condition reads its task's inputs as inputs.parameter_values['name'].
var conditionRefRE = regexp.MustCompile(`inputs\s*\.\s*parameter_values\s*\[\s*'([^']*)'\s*\]`)

// rewriteCondition turns a KFP triggerPolicy.condition (CEL over the task's
// input parameters) into a sluice.dev/when (CEL over the upstreams'
// results): an input known at import becomes a literal, one that is an
// upstream's output parameter becomes tasks['<upstream>'].results['<key>'].
// The upstream's sluice name is only known once every step is, so the
// expression is kept with a marker per producer, filled in by when.
//
// KFP's values are protobuf Values: strings stay strings, numbers are
// doubles, as sluice's results are, so comparisons read the same.
func rewriteCondition(path, expr string, params map[string]*param) (*condition, error) {
	refs, err := conditionRefs(expr)
	if err != nil {
		return nil, fmt.Errorf("task %s: condition %q: %w", path, expr, err)
	}
	matches := conditionRefRE.FindAllStringSubmatchIndex(expr, -1)
	var b strings.Builder
	cond := &condition{}
	last := 0
	for _, m := range matches {
		if !slices.Contains(refs, m[0]) {
			continue // inside a string literal
		}
		name := expr[m[2]:m[3]]
		p, ok := params[name]
		b.WriteString(expr[last:m[0]])
		last = m[1]
		switch {
		case !ok:
			return nil, fmt.Errorf("task %s: condition %q reads input %s, which has no value", path, expr, name)
		case p.static:
			lit, err := celLiteral(p.value)
			if err != nil {
				return nil, fmt.Errorf("task %s: condition %q: input %s: %w", path, expr, name, err)
			}
			b.WriteString(lit)
		case len(p.refs) != 1 || p.collect:
			return nil, fmt.Errorf("task %s: condition %q reads input %s, which is a dsl.OneOf or dsl.Collected value; a condition can read one upstream's output", path, expr, name)
		default:
			r := p.refs[0]
			fmt.Fprintf(&b, "tasks[%s].results[%s]", producerMarker(len(cond.producers)), strconv.Quote(r.key))
			cond.producers = append(cond.producers, r.step)
		}
	}
	if len(refs) != countUsed(matches, refs) {
		return nil, fmt.Errorf("task %s: condition %q reads its inputs in a way the importer does not know (expected inputs.parameter_values['name'])", path, expr)
	}
	b.WriteString(expr[last:])
	cond.expr = b.String()
	return cond, nil
}

func countUsed(matches [][]int, refs []int) int {
	n := 0
	for _, m := range matches {
		if slices.Contains(refs, m[0]) {
			n++
		}
	}
	return n
}

// producerMarker stands for the i-th producer's sluice name until it is known.
func producerMarker(i int) string { return fmt.Sprintf("\x00%d\x00", i) }

// when is a step's sluice.dev/when: its conditions, each with its
// producers' names filled in, joined by &&.
func (s *step) when() string {
	var parts []string
	for _, c := range s.conds {
		e := c.expr
		for i, p := range c.producers {
			e = strings.ReplaceAll(e, producerMarker(i), strconv.Quote(p.name))
		}
		if len(s.conds) > 1 {
			e = "(" + e + ")"
		}
		parts = append(parts, e)
	}
	return strings.Join(parts, " && ")
}

// conditionRefs parses expr as CEL and gives the source offsets of its
// inputs.parameter_values[...] reads, so that text inside string literals
// is never taken for one.
func conditionRefs(expr string) ([]int, error) {
	p, err := parser.NewParser(parser.Macros(parser.AllMacros...))
	if err != nil {
		return nil, err
	}
	parsed, iss := p.Parse(common.NewTextSource(expr))
	if iss != nil && len(iss.GetErrors()) > 0 {
		return nil, fmt.Errorf("not CEL: %s", oneLine(iss.ToDisplayString()))
	}
	info := parsed.SourceInfo()
	var offs []int
	var walk func(e ast.Expr)
	walk = func(e ast.Expr) {
		switch e.Kind() {
		case ast.CallKind:
			call := e.AsCall()
			args := call.Args()
			if call.FunctionName() == operators.Index && len(args) == 2 && args[0].Kind() == ast.SelectKind {
				sel := args[0].AsSelect()
				if sel.FieldName() == "parameter_values" && sel.Operand().Kind() == ast.IdentKind && sel.Operand().AsIdent() == "inputs" {
					loc := info.GetStartLocation(sel.Operand().ID())
					offs = append(offs, offsetOf(expr, loc.Line(), loc.Column()))
				}
			}
			if call.IsMemberFunction() {
				walk(call.Target())
			}
			for _, a := range args {
				walk(a)
			}
		case ast.SelectKind:
			walk(e.AsSelect().Operand())
		case ast.ListKind:
			for _, el := range e.AsList().Elements() {
				walk(el)
			}
		case ast.MapKind:
			for _, en := range e.AsMap().Entries() {
				walk(en.AsMapEntry().Key())
				walk(en.AsMapEntry().Value())
			}
		case ast.ComprehensionKind:
			cm := e.AsComprehension()
			walk(cm.IterRange())
			walk(cm.AccuInit())
			walk(cm.LoopCondition())
			walk(cm.LoopStep())
			walk(cm.Result())
		}
	}
	walk(parsed.Expr())
	return offs, nil
}

// offsetOf turns a 1-based line and 0-based column (in code points) into a byte offset.
func offsetOf(s string, line, col int) int {
	off := 0
	for l := 1; l < line; l++ {
		i := strings.IndexByte(s[off:], '\n')
		if i < 0 {
			return -1
		}
		off += i + 1
	}
	for c := 0; c < col && off < len(s); c++ {
		_, size := utf8.DecodeRuneInString(s[off:])
		off += size
	}
	return off
}

// celLiteral writes a parameter value as a CEL literal.
func celLiteral(v any) (string, error) {
	switch x := task.Plain(v).(type) {
	case string:
		return strconv.Quote(x), nil
	case bool:
		return strconv.FormatBool(x), nil
	case int64:
		return strconv.FormatInt(x, 10), nil
	case float64:
		if math.IsInf(x, 0) || math.IsNaN(x) {
			return "", fmt.Errorf("%v has no CEL literal", x)
		}
		s := strconv.FormatFloat(x, 'g', -1, 64)
		if !strings.ContainsAny(s, ".eE") {
			s += ".0"
		}
		return s, nil
	case nil:
		return "null", nil
	case []any:
		parts := make([]string, len(x))
		for i, e := range x {
			l, err := celLiteral(e)
			if err != nil {
				return "", err
			}
			parts[i] = l
		}
		return "[" + strings.Join(parts, ", ") + "]", nil
	case map[string]any:
		var parts []string
		for _, k := range slices.Sorted(maps.Keys(x)) {
			l, err := celLiteral(x[k])
			if err != nil {
				return "", err
			}
			parts = append(parts, strconv.Quote(k)+": "+l)
		}
		return "{" + strings.Join(parts, ", ") + "}", nil
	}
	return "", fmt.Errorf("%s has no CEL literal", task.Describe(v))
}
