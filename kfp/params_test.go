package kfp

import (
	"encoding/json"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/sluice-dev/sluice/kfp/task"
)

func TestResolveParams(t *testing.T) {
	defs := map[string]ParameterSpec{
		"text":   {ParameterType: task.TypeString, DefaultValue: "Hello", IsOptional: true},
		"epochs": {ParameterType: task.TypeInteger, DefaultValue: json.Number("10"), IsOptional: true},
		"rate":   {ParameterType: task.TypeDouble},
		"flag":   {ParameterType: task.TypeBoolean, IsOptional: true},
		"items":  {ParameterType: task.TypeList, DefaultValue: []any{"a", json.Number("2")}, IsOptional: true},
		"conf":   {ParameterType: task.TypeStruct, IsOptional: true},
		"status": {ParameterType: task.TypeTaskFinalStatus},
	}
	cases := map[string]struct {
		flags   map[string]string
		file    map[string]any
		want    map[string]any
		wantErr string
	}{
		"defaults and a required flag": {
			flags: map[string]string{"rate": "0.01"},
			want:  map[string]any{"text": "Hello", "epochs": int64(10), "rate": 0.01, "items": []any{"a", float64(2)}},
		},
		"flags are read by their type": {
			flags: map[string]string{"rate": "1", "epochs": "3", "flag": "true", "text": "x=y", "conf": `{"a": [1]}`},
			want:  map[string]any{"text": "x=y", "epochs": int64(3), "rate": float64(1), "flag": true, "items": []any{"a", float64(2)}, "conf": map[string]any{"a": []any{float64(1)}}},
		},
		"a params file, flags winning": {
			flags: map[string]string{"rate": "2"},
			file:  map[string]any{"rate": 5.0, "epochs": "12", "flag": false},
			want:  map[string]any{"text": "Hello", "epochs": int64(12), "rate": float64(2), "flag": false, "items": []any{"a", float64(2)}},
		},
		"whole doubles are integers; int64 as a string": {
			flags: map[string]string{"rate": "1"},
			file:  map[string]any{"epochs": 4.0},
			want:  map[string]any{"text": "Hello", "epochs": int64(4), "rate": float64(1), "items": []any{"a", float64(2)}},
		},
		"required and missing": {wantErr: "parameter rate: required (a number) and not given; pass -p rate=VALUE"},
		"not an integer":       {flags: map[string]string{"rate": "1", "epochs": "1.5"}, wantErr: `parameter epochs: "1.5" is not an integer`},
		"not a bool":           {flags: map[string]string{"rate": "1", "flag": "yes please"}, wantErr: `parameter flag: "yes please" is not true or false`},
		"not a list in a file": {flags: map[string]string{"rate": "1"}, file: map[string]any{"items": "a,b"}, wantErr: `parameter items: "a,b" is not a JSON list`},
		"a fraction in a file": {flags: map[string]string{"rate": "1"}, file: map[string]any{"epochs": 2.5}, wantErr: "parameter epochs: 2.5 is not an integer"},
		"not JSON":             {flags: map[string]string{"rate": "1", "conf": "{a"}, wantErr: `parameter conf: "{a" is not JSON; expected a JSON object`},
		"unknown parameter":    {flags: map[string]string{"rate": "1", "lr": "2"}, wantErr: "parameter lr: the pipeline has no such parameter (it has conf, epochs, flag, items, rate, status, text)"},
		"NaN is not a number":  {flags: map[string]string{"rate": "NaN"}, wantErr: `parameter rate: "NaN" is not a number`},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got, err := ResolveParams(defs, tc.flags, tc.file)
			if tc.wantErr != "" {
				if err == nil || err.Error() != tc.wantErr {
					t.Fatalf("error = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(tc.want, got); d != "" {
				t.Errorf("values (-want +got):\n%s", d)
			}
		})
	}
}

func TestResolveParamsOfNoParameters(t *testing.T) {
	_, err := ResolveParams(nil, map[string]string{"lr": "2"}, nil)
	if want := "parameter lr: the pipeline has no parameters"; err == nil || err.Error() != want {
		t.Errorf("error = %v, want %q", err, want)
	}
}

func TestParseParamFlags(t *testing.T) {
	got, err := ParseParamFlags([]string{"a=1", "b==x", "c="})
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(map[string]string{"a": "1", "b": "=x", "c": ""}, got); d != "" {
		t.Error(d)
	}
	for _, bad := range [][]string{{"a"}, {"=1"}, {"a=1", "a=2"}} {
		if _, err := ParseParamFlags(bad); err == nil {
			t.Errorf("ParseParamFlags(%q) took it", bad)
		}
	}
}
