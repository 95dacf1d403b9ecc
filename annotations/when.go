package annotations

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/common/ast"
	"github.com/google/cel-go/common/operators"
	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"
)

// Limits on a sluice.dev/when condition. It is compiled in the webhook and
// evaluated in the controller's reconcile loop; a hostile or careless one
// must stall neither.
const (
	// WhenCostLimit bounds the work of one evaluation, in CEL cost units
	// (roughly one per operation; a comparison of two results costs a few).
	WhenCostLimit = 1_000_000
	// whenInterruptEvery is how many comprehension iterations run between
	// checks of the evaluation context.
	whenInterruptEvery = 100
	// WhenMaxLength bounds a condition's length, in characters. Type-checking
	// time grows faster than the length, and it is spent in the webhook.
	WhenMaxLength = 4096
	// WhenMaxDepth bounds how deeply a condition nests. Type-checking time
	// grows steeply with nesting: [[[...]]] 150 deep takes seconds.
	WhenMaxDepth = 32
	// whenMaxErrors is how many CEL issues an error message lists.
	whenMaxErrors = 3
)

// The names a condition sees.
const (
	whenTasksVar    = "tasks"
	whenTaskType    = "sluice.Task"
	whenPhaseField  = "phase"
	whenResultField = "results"
)

var whenErrPrefix = WhenAnnotation + ": "

// TaskResult is what a condition sees of one finished upstream task.
type TaskResult struct {
	// Phase is the upstream's final phase: Succeeded, Failed, Skipped or UpstreamFailed.
	Phase string
	// Results are its output parameters, as ParseResults gives them.
	Results map[string]any
}

// When is a compiled sluice.dev/when condition. It is safe for concurrent use.
type When struct {
	expr    string
	program cel.Program
}

// String returns the condition's source.
func (w *When) String() string {
	if w == nil {
		return ""
	}
	return w.expr
}

// CompileWhen parses and type-checks a sluice.dev/when condition of a task
// whose upstream tasks are upstreams. The condition sees one variable,
// tasks, mapping each upstream's name to its phase (a string) and results (a
// map of its output parameters). It must be a bool; an expression whose type
// is only known at run time (a result, say tasks.check.results.passed) is
// accepted and must give a bool when evaluated. Referring to a task that is
// not an upstream is an error: its result would never be there.
//
// Errors are one line beginning with "sluice.dev/when: ".
func CompileWhen(expr string, upstreams []string) (w *When, err error) {
	defer func() {
		// cel-go is a large dependency running on user input in the webhook;
		// a bug there must reject the condition, not crash the process.
		if r := recover(); r != nil {
			w, err = nil, fmt.Errorf("%sinternal error compiling the condition: %s", whenErrPrefix, oneLine(fmt.Sprint(r)))
		}
	}()
	env, err := whenEnv()
	if err != nil {
		return nil, fmt.Errorf("%ssetting up CEL: %w", whenErrPrefix, err)
	}
	if strings.TrimSpace(expr) == "" {
		return nil, errors.New(whenErrPrefix + "the condition is empty; expected a CEL expression such as tasks.evaluate.results.accuracy >= 0.9")
	}
	if n := utf8.RuneCountInString(expr); n > WhenMaxLength {
		return nil, fmt.Errorf("%sthe condition is %d characters; at most %d are allowed", whenErrPrefix, n, WhenMaxLength)
	}
	checked, iss := env.Compile(expr)
	if iss.Err() != nil {
		return nil, errors.New(whenErrPrefix + condenseIssues(iss))
	}
	if err := checkTaskRefs(checked.NativeRep().Expr(), upstreams); err != nil {
		return nil, err
	}
	switch out := checked.OutputType(); {
	case out.IsExactType(types.BoolType), out.IsExactType(types.DynType):
	default:
		return nil, fmt.Errorf("%sthe condition has type %s; expected a bool, e.g. tasks.evaluate.results.accuracy >= 0.9", whenErrPrefix, out)
	}
	prg, err := env.Program(checked,
		cel.CostLimit(WhenCostLimit),
		cel.InterruptCheckFrequency(whenInterruptEvery),
	)
	if err != nil {
		return nil, fmt.Errorf("%s%s", whenErrPrefix, oneLine(err.Error()))
	}
	return &When{expr: expr, program: prg}, nil
}

// Eval evaluates the condition against the upstreams' outcomes. A result it
// reads that is missing or of the wrong type is an error, not false: a
// condition that cannot be decided must not silently skip a step.
func (w *When) Eval(upstreams map[string]TaskResult) (bool, error) {
	return w.EvalContext(context.Background(), upstreams)
}

// EvalContext is Eval that stops early with an error when ctx is done.
func (w *When) EvalContext(ctx context.Context, upstreams map[string]TaskResult) (ok bool, err error) {
	if w == nil || w.program == nil {
		return false, errors.New(whenErrPrefix + "the condition was not compiled")
	}
	defer func() {
		if r := recover(); r != nil {
			ok, err = false, fmt.Errorf("%sinternal error evaluating %q: %s", whenErrPrefix, excerpt(w.expr), oneLine(fmt.Sprint(r)))
		}
	}()
	tasks := make(map[string]any, len(upstreams))
	for name, up := range upstreams {
		results := map[string]any{}
		for k, v := range up.Results {
			results[k] = toCELValue(v)
		}
		tasks[name] = map[string]any{whenPhaseField: up.Phase, whenResultField: results}
	}
	val, _, err := w.program.ContextEval(ctx, map[string]any{whenTasksVar: tasks})
	if err != nil {
		msg := oneLine(err.Error())
		if strings.HasPrefix(msg, "no such overload") {
			// CEL says no more; the usual cause is int arithmetic on a result.
			msg += " (an operator or function got operand types it does not take; numbers in results are doubles, so write 1.0, not 1, in arithmetic with them)"
		}
		return false, fmt.Errorf("%s%s", whenErrPrefix, msg)
	}
	b, isBool := val.Value().(bool)
	if !isBool {
		return false, fmt.Errorf("%sthe condition gave %s %s, expected a bool", whenErrPrefix, val.Type().TypeName(), excerpt(fmt.Sprint(val.Value())))
	}
	return b, nil
}

// whenEnv is the CEL environment of every condition; only the upstreams,
// checked separately, differ between tasks.
var whenEnv = sync.OnceValues(func() (*cel.Env, error) {
	base, err := cel.NewEnv()
	if err != nil {
		return nil, err
	}
	return base.Extend(
		cel.CustomTypeProvider(taskTypeProvider{base.CELTypeProvider()}),
		cel.Variable(whenTasksVar, cel.MapType(cel.StringType, cel.ObjectType(whenTaskType))),
		// Results are float64, but people write `>= 1`, not `>= 1.0`.
		cel.CrossTypeNumericComparisons(true),
		cel.ParserExpressionSizeLimit(WhenMaxLength),
		cel.ParserRecursionLimit(WhenMaxDepth),
	)
})

// taskTypeProvider declares the type of tasks.<name> to the type checker,
// so a misspelt field (tasks.train.phse) is caught when the object is
// applied. At run time the values are plain maps, which CEL selects from
// the same way.
type taskTypeProvider struct {
	types.Provider
}

var (
	taskType   = types.NewObjectType(whenTaskType)
	taskFields = map[string]*types.Type{
		whenPhaseField:  types.StringType,
		whenResultField: types.NewMapType(types.StringType, types.DynType),
	}
)

func (p taskTypeProvider) FindStructType(name string) (*types.Type, bool) {
	if name == whenTaskType {
		return types.NewTypeTypeWithParam(taskType), true
	}
	return p.Provider.FindStructType(name)
}

func (p taskTypeProvider) FindStructFieldNames(name string) ([]string, bool) {
	if name == whenTaskType {
		return []string{whenPhaseField, whenResultField}, true
	}
	return p.Provider.FindStructFieldNames(name)
}

func (p taskTypeProvider) FindStructFieldType(name, field string) (*types.FieldType, bool) {
	if name == whenTaskType {
		t, ok := taskFields[field]
		if !ok {
			return nil, false
		}
		// No IsSet/GetFrom: the interpreter then selects from the map value.
		return &types.FieldType{Type: t}, true
	}
	return p.Provider.FindStructFieldType(name, field)
}

func (p taskTypeProvider) NewValue(name string, fields map[string]ref.Val) ref.Val {
	if name == whenTaskType {
		return types.NewErr("%s values cannot be created in a condition", whenTaskType)
	}
	return p.Provider.NewValue(name, fields)
}

// checkTaskRefs reports every tasks.<name> and tasks["<name>"] whose name is
// not an upstream. Names computed at run time are left to evaluation, which
// fails with "no such key".
func checkTaskRefs(e ast.Expr, upstreams []string) error {
	var unknown []string
	var walk func(e ast.Expr, shadowed bool)
	walk = func(e ast.Expr, shadowed bool) {
		isTasks := func(x ast.Expr) bool {
			return !shadowed && x.Kind() == ast.IdentKind && x.AsIdent() == whenTasksVar
		}
		note := func(name string) {
			if !slices.Contains(upstreams, name) && !slices.Contains(unknown, name) {
				unknown = append(unknown, name)
			}
		}
		switch e.Kind() {
		case ast.SelectKind:
			sel := e.AsSelect()
			if isTasks(sel.Operand()) {
				note(sel.FieldName())
			}
			walk(sel.Operand(), shadowed)
		case ast.CallKind:
			call := e.AsCall()
			args := call.Args()
			if (call.FunctionName() == operators.Index || call.FunctionName() == operators.OptIndex) &&
				len(args) == 2 && isTasks(args[0]) && args[1].Kind() == ast.LiteralKind {
				if s, ok := args[1].AsLiteral().(types.String); ok {
					note(string(s))
				}
			}
			if call.IsMemberFunction() {
				walk(call.Target(), shadowed)
			}
			for _, a := range args {
				walk(a, shadowed)
			}
		case ast.ListKind:
			for _, el := range e.AsList().Elements() {
				walk(el, shadowed)
			}
		case ast.MapKind:
			for _, en := range e.AsMap().Entries() {
				walk(en.AsMapEntry().Key(), shadowed)
				walk(en.AsMapEntry().Value(), shadowed)
			}
		case ast.StructKind:
			for _, f := range e.AsStruct().Fields() {
				walk(f.AsStructField().Value(), shadowed)
			}
		case ast.ComprehensionKind:
			c := e.AsComprehension()
			walk(c.IterRange(), shadowed)
			walk(c.AccuInit(), shadowed)
			inner := shadowed || c.IterVar() == whenTasksVar || c.AccuVar() == whenTasksVar ||
				(c.HasIterVar2() && c.IterVar2() == whenTasksVar)
			walk(c.LoopCondition(), inner)
			walk(c.LoopStep(), inner)
			walk(c.Result(), shadowed || c.AccuVar() == whenTasksVar)
		}
	}
	walk(e, false)
	if len(unknown) == 0 {
		return nil
	}
	var known string
	if len(upstreams) == 0 {
		known = "this task has no upstreams"
	} else {
		ups := slices.Clone(upstreams)
		slices.Sort(ups)
		known = "its upstreams are " + strings.Join(slices.Compact(ups), ", ")
	}
	quoted := make([]string, len(unknown))
	for i, n := range unknown {
		quoted[i] = strconv.Quote(excerpt(n))
	}
	noun := "task " + quoted[0] + ", which is not an upstream"
	if len(quoted) > 1 {
		noun = "tasks " + strings.Join(quoted, ", ") + ", which are not upstreams"
	}
	return fmt.Errorf("%sthe condition refers to %s of this task (%s); a condition can only read tasks listed in %s or %s",
		whenErrPrefix, noun, known, AfterAnnotation, InputsAnnotation)
}

// toCELValue prepares a result for CEL: every number becomes a double, so a
// result compares and computes the same whether it was written as 1 or 1.0.
func toCELValue(v any) any {
	switch v := v.(type) {
	case float64:
		return v
	case float32:
		return float64(v)
	case int:
		return float64(v)
	case int8:
		return float64(v)
	case int16:
		return float64(v)
	case int32:
		return float64(v)
	case int64:
		return float64(v)
	case uint:
		return float64(v)
	case uint8:
		return float64(v)
	case uint16:
		return float64(v)
	case uint32:
		return float64(v)
	case uint64:
		return float64(v)
	case json.Number:
		if f, err := v.Float64(); err == nil && !math.IsInf(f, 0) {
			return f
		}
		return string(v)
	case map[string]any:
		m := make(map[string]any, len(v))
		for k, e := range v {
			m[k] = toCELValue(e)
		}
		return m
	case []any:
		l := make([]any, len(v))
		for i, e := range v {
			l[i] = toCELValue(e)
		}
		return l
	}
	return v
}

// condenseIssues turns CEL's multi-line report (message, source line, caret)
// into one line: "line:column: message", the first few joined with "; ".
func condenseIssues(iss *cel.Issues) string {
	errs := iss.Errors()
	var parts []string
	for i, e := range errs {
		if i == whenMaxErrors {
			parts = append(parts, fmt.Sprintf("and %d more", len(errs)-i))
			break
		}
		loc := ""
		if e.Location != nil && e.Location.Line() > 0 {
			loc = fmt.Sprintf("%d:%d: ", e.Location.Line(), e.Location.Column()+1)
		}
		parts = append(parts, loc+oneLine(e.Message))
	}
	if len(parts) == 0 {
		return oneLine(iss.String())
	}
	return strings.Join(parts, "; ")
}

// oneLine collapses runs of white space, newlines included.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}
