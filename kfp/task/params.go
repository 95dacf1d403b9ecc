package task

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Parameter types, as the IR names them.
const (
	TypeString  = "STRING"
	TypeInteger = "NUMBER_INTEGER"
	TypeDouble  = "NUMBER_DOUBLE"
	TypeBoolean = "BOOLEAN"
	TypeList    = "LIST"
	TypeStruct  = "STRUCT"
	// TypeTaskFinalStatus is dsl.PipelineTaskFinalStatus, which sluice refuses.
	TypeTaskFinalStatus = "TASK_FINAL_STATUS"
)

var parameterTypes = []string{TypeString, TypeInteger, TypeDouble, TypeBoolean, TypeList, TypeStruct}

// ParseParam reads a parameter's value from text, as -p gives it.
func ParseParam(typ, s string) (any, error) {
	switch typ {
	case TypeString:
		return s, nil
	case TypeInteger:
		i, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
		if err != nil {
			return nil, fmt.Errorf("%q is not an integer", s)
		}
		return i, nil
	case TypeDouble:
		f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
		if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
			return nil, fmt.Errorf("%q is not a number", s)
		}
		return f, nil
	case TypeBoolean:
		b, err := strconv.ParseBool(strings.TrimSpace(s))
		if err != nil {
			return nil, fmt.Errorf("%q is not true or false", s)
		}
		return b, nil
	case TypeList, TypeStruct:
		var v any
		if err := json.Unmarshal([]byte(s), &v); err != nil {
			return nil, fmt.Errorf("%q is not JSON; expected %s", s, DescribeType(typ))
		}
		return Coerce(typ, v)
	}
	return nil, fmt.Errorf("parameter type %q is not one of %s", typ, strings.Join(parameterTypes, ", "))
}

// Coerce checks a typed value (from YAML, JSON or the IR) against a
// parameter type, the way KFP reads them: integers may come as whole
// doubles or as decimal strings (the IR writes int64 values so), numbers
// as strings, booleans as "true"/"false". Numbers come back as int64 or
// float64, lists and structs with plain values inside.
func Coerce(typ string, v any) (any, error) {
	v = Plain(v)
	switch typ {
	case TypeString:
		if s, ok := v.(string); ok {
			return s, nil
		}
	case TypeInteger:
		switch x := v.(type) {
		case float64:
			if x == math.Trunc(x) && math.Abs(x) < 1<<63 {
				return int64(x), nil
			}
		case int64:
			return x, nil
		case string:
			if i, err := strconv.ParseInt(strings.TrimSpace(x), 10, 64); err == nil {
				return i, nil
			}
		}
	case TypeDouble:
		switch x := v.(type) {
		case float64:
			return x, nil
		case int64:
			return float64(x), nil
		case string:
			if f, err := strconv.ParseFloat(strings.TrimSpace(x), 64); err == nil && !math.IsInf(f, 0) && !math.IsNaN(f) {
				return f, nil
			}
		}
	case TypeBoolean:
		switch x := v.(type) {
		case bool:
			return x, nil
		case string:
			if b, err := strconv.ParseBool(x); err == nil {
				return b, nil
			}
		}
	case TypeList:
		if l, ok := v.([]any); ok {
			return l, nil
		}
	case TypeStruct:
		if m, ok := v.(map[string]any); ok {
			return m, nil
		}
	default:
		return nil, fmt.Errorf("parameter type %q is not one of %s", typ, strings.Join(parameterTypes, ", "))
	}
	return nil, fmt.Errorf("%s is not %s", Describe(v), DescribeType(typ))
}

// Plain turns json.Number into float64, as JSON numbers are read
// elsewhere (an int64 too large for a double comes as a string, which
// Coerce reads exactly), and recurses into lists and maps.
func Plain(v any) any {
	switch x := v.(type) {
	case json.Number:
		f, _ := x.Float64()
		return f
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = Plain(e)
		}
		return out
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = Plain(e)
		}
		return out
	}
	return v
}

// Format writes a parameter value as a command line gets it: strings as
// they are, numbers without a trailing .0 for whole values, booleans as
// true/false, lists and structs as compact JSON.
func Format(v any) string {
	switch x := Plain(v).(type) {
	case string:
		return x
	case int64:
		return strconv.FormatInt(x, 10)
	case float64:
		if x == math.Trunc(x) && math.Abs(x) < 1e15 {
			return strconv.FormatInt(int64(x), 10)
		}
		return strconv.FormatFloat(x, 'g', -1, 64)
	case bool:
		return strconv.FormatBool(x)
	case nil:
		return ""
	default:
		b, err := json.Marshal(x)
		if err != nil {
			return fmt.Sprint(x)
		}
		return string(b)
	}
}

// DescribeType says, for an error message, what a value of a parameter type
// is: "an integer", "a JSON list". An unknown type is given as it is.
func DescribeType(typ string) string {
	switch typ {
	case TypeString:
		return "a string"
	case TypeInteger:
		return "an integer"
	case TypeDouble:
		return "a number"
	case TypeBoolean:
		return "true or false"
	case TypeList:
		return "a JSON list"
	case TypeStruct:
		return "a JSON object"
	}
	return typ
}

// Describe names a value for an error message: a string quoted, null, "a
// list", "an object", anything else as Format writes it.
func Describe(v any) string {
	switch x := v.(type) {
	case string:
		return strconv.Quote(x)
	case nil:
		return "null"
	case []any:
		return "a list"
	case map[string]any:
		return "an object"
	default:
		return Format(x)
	}
}

// listOrNone lists names for an error message, or says there are none.
func listOrNone(names []string) string {
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ", ")
}
