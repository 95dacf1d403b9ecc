package task

import (
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// mapResolver resolves from a table keyed by the placeholder as written.
type mapResolver struct {
	values  map[string]string
	present map[string]bool
}

func (m mapResolver) Resolve(r Ref) (string, error) {
	v, ok := m.values[r.Text]
	if !ok {
		return "", fmt.Errorf("no value for %s", r.Text)
	}
	return v, nil
}

func (m mapResolver) Present(input string) bool { return m.present[input] }

func TestExpand(t *testing.T) {
	r := mapResolver{
		values: map[string]string{
			"{{$.inputs.parameters['text']}}":           "hi there",
			"{{$.outputs.artifacts['data'].path}}":      "/sluice/outputs/data/data",
			"{{$.inputs.artifacts['model'].uri}}":       "/sluice/inputs/model/model",
			"{{$.outputs.parameters['n'].output_file}}": "/tmp/n",
			"{{$}}": `{"inputs":{}}`,
		},
		present: map[string]bool{"text": true},
	}
	cases := map[string]struct {
		in      []string
		want    []string
		wantErr string
	}{
		"plain items":                          {in: []string{"sh", "-c", "echo"}, want: []string{"sh", "-c", "echo"}},
		"a whole item":                         {in: []string{"{{$.inputs.parameters['text']}}"}, want: []string{"hi there"}},
		"inside an f-string":                   {in: []string{"--out={{$.outputs.artifacts['data'].path}} x"}, want: []string{"--out=/sluice/outputs/data/data x"}},
		"executor input":                       {in: []string{"--executor_input", "{{$}}"}, want: []string{"--executor_input", `{"inputs":{}}`}},
		"concat":                               {in: []string{`{"Concat": ["prefix-", "{{$.inputs.parameters['text']}}", "-", "{{$.inputs.artifacts['model'].uri}}"]}`}, want: []string{"prefix-hi there-/sluice/inputs/model/model"}},
		"if present, then":                     {in: []string{"a", `{"IfPresent": {"InputName": "text", "Then": ["--text", "{{$.inputs.parameters['text']}}"], "Else": ["bye"]}}`}, want: []string{"a", "--text", "hi there"}},
		"if absent, else":                      {in: []string{`{"IfPresent": {"InputName": "other", "Then": ["x"], "Else": ["bye"]}}`}, want: []string{"bye"}},
		"if absent, no else":                   {in: []string{`{"IfPresent": {"InputName": "other", "Then": ["x"]}}`, "z"}, want: []string{"z"}},
		"then as a string":                     {in: []string{`{"IfPresent": {"InputName": "text", "Then": "{{$.inputs.parameters['text']}}"}}`}, want: []string{"hi there"}},
		"nested":                               {in: []string{`{"IfPresent": {"InputName": "text", "Then": [{"Concat": ["-t=", "{{$.inputs.parameters['text']}}"]}]}}`}, want: []string{"-t=hi there"}},
		"JSON that is not a placeholder stays": {in: []string{`{"a": 1}`}, want: []string{`{"a": 1}`}},
		"unknown placeholder":                  {in: []string{"{{$.inputs.secrets['x']}}"}, wantErr: "placeholder {{$.inputs.secrets['x']}} is not one the importer knows"},
		"bad field":                            {in: []string{"{{$.outputs.artifacts['data'].size}}"}, wantErr: "expected .path, .uri or .metadata"},
		"resolver error":                       {in: []string{"{{$.inputs.parameters['nope']}}"}, wantErr: "no value for"},
		"if present without a name":            {in: []string{`{"IfPresent": {"Then": ["x"]}}`}, wantErr: "InputName is missing"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got, err := ExpandAll(tc.in, r)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(tc.want, got); d != "" {
				t.Errorf("(-want +got):\n%s", d)
			}
		})
	}
}

func TestRefs(t *testing.T) {
	got, err := Refs([]string{
		"sh", "{{$}}",
		`{"IfPresent": {"InputName": "opt", "Then": ["{{$.inputs.parameters['opt']}}"], "Else": ["{{$.outputs.artifacts['d'].uri}}"]}}`,
		"{{$.pipeline_job_name}}-{{$.outputs.parameters['n'].output_file}}",
		"{{$.inputs.artifacts['list']}}",
	})
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, r := range got {
		kinds = append(kinds, r.Kind+":"+r.Name+"."+r.Field)
	}
	want := []string{
		"executor-input:.", "output-artifact:d.uri", "presence:opt.", "input-parameter:opt.",
		"system:pipeline_job_name.", "output-parameter:n.output_file", "input-artifact:list.",
	}
	if d := cmp.Diff(want, kinds); d != "" {
		t.Errorf("(-want +got):\n%s", d)
	}
}

func FuzzExpand(f *testing.F) {
	f.Add(`{"Concat": ["a", "{{$.inputs.parameters['text']}}"]}`)
	f.Add(`{"IfPresent": {"InputName": "text", "Then": ["x"], "Else": "y"}}`)
	f.Add("--x={{$.outputs.artifacts['data'].path}}")
	f.Fuzz(func(t *testing.T, item string) {
		r := mapResolver{values: map[string]string{"{{$.inputs.parameters['text']}}": "T"}, present: map[string]bool{"text": true}}
		got, err := Expand(item, r)
		if err != nil {
			return
		}
		if _, isStructured := structured(item); !isStructured && len(got) != 1 {
			t.Fatalf("a plain item became %d items", len(got))
		}
		if _, err := Refs([]string{item}); err != nil && !strings.Contains(err.Error(), "placeholder") {
			t.Fatalf("Refs: %v", err)
		}
	})
}
