package kfp

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	sigsyaml "sigs.k8s.io/yaml"

	"github.com/sluice-dev/sluice/kfp/task"
)

// ParseParamFlags reads -p name=value flags into raw strings, refusing a
// flag without '=' and a name given twice.
func ParseParamFlags(flags []string) (map[string]string, error) {
	out := make(map[string]string, len(flags))
	for _, f := range flags {
		name, value, ok := strings.Cut(f, "=")
		name = strings.TrimSpace(name)
		if !ok || name == "" {
			return nil, fmt.Errorf("-p %q: expected name=value, e.g. -p learning_rate=0.01", f)
		}
		if _, dup := out[name]; dup {
			return nil, fmt.Errorf("-p %s: given twice", name)
		}
		out[name] = value
	}
	return out, nil
}

// ParseParamsFile reads a YAML or JSON mapping of parameter names to values.
func ParseParamsFile(data []byte) (map[string]any, error) {
	var out map[string]any
	if err := sigsyaml.Unmarshal(data, &out); err != nil {
		return nil, fmt.Errorf("expected a mapping of parameter names to values: %s", oneLine(err.Error()))
	}
	return out, nil
}

// ResolveParams gives every pipeline parameter its value: from flags (text
// read by the parameter's type), else from the params file (typed values),
// else the IR's default. A parameter the pipeline does not declare, one of
// the wrong type and a required one left out are errors naming it and what
// is expected. Optional parameters without a value are absent from the
// result.
func ResolveParams(defs map[string]ParameterSpec, flags map[string]string, file map[string]any) (map[string]any, error) {
	for _, name := range slices.Concat(slices.Sorted(maps.Keys(flags)), slices.Sorted(maps.Keys(file))) {
		if _, ok := defs[name]; ok {
			continue
		}
		if len(defs) == 0 {
			return nil, fmt.Errorf("parameter %s: the pipeline has no parameters", name)
		}
		return nil, fmt.Errorf("parameter %s: the pipeline has no such parameter (it has %s)", name, strings.Join(slices.Sorted(maps.Keys(defs)), ", "))
	}
	out := map[string]any{}
	for _, name := range slices.Sorted(maps.Keys(defs)) {
		def := defs[name]
		if def.ParameterType == task.TypeTaskFinalStatus {
			continue
		}
		var (
			v   any
			err error
		)
		switch raw, inFlags := flags[name]; {
		case inFlags:
			v, err = task.ParseParam(def.ParameterType, raw)
		case file[name] != nil:
			v, err = task.Coerce(def.ParameterType, file[name])
		case def.DefaultValue != nil:
			v, err = task.Coerce(def.ParameterType, def.DefaultValue)
			if err != nil {
				err = fmt.Errorf("its default: %w", err)
			}
		case def.IsOptional:
			continue
		default:
			return nil, fmt.Errorf("parameter %s: required (%s) and not given; pass -p %s=VALUE", name, task.DescribeType(def.ParameterType), name)
		}
		if err != nil {
			return nil, fmt.Errorf("parameter %s: %w", name, err)
		}
		out[name] = v
	}
	return out, nil
}
