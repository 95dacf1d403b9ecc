package task

import (
	"encoding/json"
	"io/fs"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/google/go-cmp/cmp"
)

// mapFiles is a run volume in memory, by absolute paths; a directory exists
// when a file inside it does.
type mapFiles fstest.MapFS

func (m mapFiles) ReadFile(path string) ([]byte, error) {
	return fs.ReadFile(fstest.MapFS(m), strings.TrimPrefix(path, "/"))
}

func (m mapFiles) Stat(path string) (fs.FileInfo, error) {
	return fs.Stat(fstest.MapFS(m), strings.TrimPrefix(path, "/"))
}

func mapFile(s string) *fstest.MapFile { return &fstest.MapFile{Data: []byte(s)} }

// failingFiles fails every access with err.
type failingFiles struct{ err error }

func (f failingFiles) ReadFile(string) ([]byte, error)  { return nil, f.err }
func (f failingFiles) Stat(string) (fs.FileInfo, error) { return nil, f.err }

func resolveExecutor() *Executor {
	return &Executor{
		Run:  "run-1",
		Task: "train",
		Inputs: ExecutorInputs{
			Parameters: map[string]InputParameter{
				"text":     {Type: TypeString, Value: "hi there"},
				"epochs":   {Type: TypeInteger, Value: float64(3)},
				"conf":     {Type: TypeStruct, Value: map[string]any{"a": float64(1)}},
				"count":    {Type: TypeInteger, Files: []ParameterFile{{Path: "/sluice/inputs/prep-count/count", Type: TypeInteger}}},
				"as_text":  {Type: TypeString, Files: []ParameterFile{{Path: "/sluice/inputs/prep-count/count", Type: TypeInteger}}},
				"rate":     {Type: TypeDouble, Files: []ParameterFile{{Path: "/sluice/inputs/prep-rate/rate", Type: TypeString}}},
				"branch":   {Type: TypeString, Files: []ParameterFile{{Path: "/sluice/inputs/a-out/out", Type: TypeString}, {Path: "/sluice/inputs/b-out/out", Type: TypeString}}},
				"all":      {Type: TypeList, Collect: true, Files: []ParameterFile{{Path: "/sluice/inputs/d-0/n", Type: TypeInteger}, {Path: "/sluice/inputs/d-1/n", Type: TypeInteger}, {Path: "/sluice/inputs/d-2/n", Type: TypeInteger}}},
				"nested":   {Type: TypeList, Collect: true, Groups: []int{2, 1}, Files: []ParameterFile{{Path: "/sluice/inputs/d-0/n", Type: TypeInteger}, {Path: "/sluice/inputs/d-1/n", Type: TypeInteger}, {Path: "/sluice/inputs/d-2/n", Type: TypeInteger}}},
				"none":     {Type: TypeList, Collect: true, Files: []ParameterFile{{Path: "/sluice/inputs/e-0/n", Type: TypeInteger}}},
				"skipped":  {Type: TypeString, Files: []ParameterFile{{Path: "/sluice/inputs/c-out/out", Type: TypeString}}},
				"optional": {Type: TypeString},
			},
			Artifacts: map[string]InputArtifact{
				"data":   {Type: "system.Dataset", Paths: []string{"/sluice/inputs/a-data/data", "/sluice/inputs/b-data/data"}},
				"model":  {Type: "system.Model", Paths: []string{"/sluice/inputs/fit-model/model"}},
				"shards": {Type: "system.Dataset", List: true, Paths: []string{"/sluice/inputs/s-0/shard", "/sluice/inputs/s-1/shard", "/sluice/inputs/s-2/shard"}},
				"gone":   {Type: "system.Artifact", Paths: []string{"/sluice/inputs/g/gone"}},
			},
		},
		Outputs: ExecutorOutputs{
			Parameters: map[string]OutputParameter{"n": {Type: TypeInteger, Path: "/sluice/outputs/n/n"}},
			Artifacts:  map[string]OutputArtifact{"out": {Type: "system.Dataset", Path: "/sluice/outputs/out/out"}},
		},
	}
}

func resolveFiles() mapFiles {
	return mapFiles{
		"sluice/inputs/prep-count/count":               mapFile("42\n"),
		"sluice/inputs/prep-rate/rate":                 mapFile(" 0.5\n"),
		"sluice/inputs/b-out/out":                      mapFile("from b\n"),
		"sluice/inputs/d-0/n":                          mapFile("1"),
		"sluice/inputs/d-2/n":                          mapFile("3"),
		"sluice/inputs/b-data/data":                    mapFile("x,y\n"),
		"sluice/inputs/b-data/" + MetadataFile:         mapFile(`{"rows": 10, "big": 12345678901234567890}`),
		"sluice/inputs/fit-model/model/saved_model.pb": mapFile("model"),
		"sluice/inputs/s-0/shard":                      mapFile("0"),
		"sluice/inputs/s-0/" + MetadataFile:            mapFile(`{"part": 0}`),
		"sluice/inputs/s-2/shard":                      mapFile("2"),
	}
}

func TestResolve(t *testing.T) {
	v, err := NewResolver(resolveExecutor(), resolveFiles())
	if err != nil {
		t.Fatal(err)
	}
	cases := map[string]struct {
		in      []string
		want    []string
		wantErr string
	}{
		"static values, formatted": {
			in:   []string{"{{$.inputs.parameters['text']}}", "--epochs={{$.inputs.parameters['epochs']}}", "{{$.inputs.parameters['conf']}}"},
			want: []string{"hi there", "--epochs=3", `{"a":1}`},
		},
		"an upstream's file, trimmed and typed": {
			in:   []string{"{{$.inputs.parameters['count']}}", "{{$.inputs.parameters['rate']}}"},
			want: []string{"42", "0.5"},
		},
		"an integer file feeding a string input is its text": {
			in:   []string{"[{{$.inputs.parameters['as_text']}}]"},
			want: []string{"[42]"},
		},
		"OneOf: the first file that exists, as written": {
			in:   []string{"{{$.inputs.parameters['branch']}}"},
			want: []string{"from b\n"},
		},
		"Collected: the values of the files that exist": {
			in:   []string{"{{$.inputs.parameters['all']}}", "{{$.inputs.parameters['none']}}"},
			want: []string{"[1,3]", "[]"},
		},
		"Collected over nested loops: a list per outer iteration": {
			in:   []string{"{{$.inputs.parameters['nested']}}"},
			want: []string{"[[1],[3]]"},
		},
		"IfPresent: an input none of whose files exists takes Else": {
			in:   []string{`{"IfPresent": {"InputName": "skipped", "Then": ["--s", "{{$.inputs.parameters['skipped']}}"], "Else": ["--no-s"]}}`},
			want: []string{"--no-s"},
		},
		"IfPresent: an optional input without a value takes Else, or nothing": {
			in:   []string{`{"IfPresent": {"InputName": "optional", "Then": ["{{$.inputs.parameters['optional']}}"]}}`, "end"},
			want: []string{"end"},
		},
		"IfPresent: an input with a value takes Then": {
			in:   []string{`{"IfPresent": {"InputName": "count", "Then": [{"Concat": ["--count=", "{{$.inputs.parameters['count']}}"]}]}}`},
			want: []string{"--count=42"},
		},
		"IfPresent: an output is present": {
			in:   []string{`{"IfPresent": {"InputName": "out", "Then": ["yes"], "Else": ["no"]}}`},
			want: []string{"yes"},
		},
		"input artifacts: the first path that exists; uri is the path": {
			in:   []string{"{{$.inputs.artifacts['data'].path}}", "{{$.inputs.artifacts['data'].uri}}", "{{$.inputs.artifacts['model'].path}}"},
			want: []string{"/sluice/inputs/b-data/data", "/sluice/inputs/b-data/data", "/sluice/inputs/fit-model/model"},
		},
		"input artifact metadata, numbers as written; none is {}": {
			in:   []string{"{{$.inputs.artifacts['data'].metadata}}", "{{$.inputs.artifacts['model'].metadata}}"},
			want: []string{`{"big":12345678901234567890,"rows":10}`, "{}"},
		},
		"a list of artifacts: those that exist": {
			in: []string{"{{$.inputs.artifacts['shards']}}"},
			want: []string{`{"artifacts":[` +
				`{"name":"shards","type":{"schemaTitle":"system.Dataset"},"uri":"/sluice/inputs/s-0/shard","metadata":{"part":0}},` +
				`{"name":"shards","type":{"schemaTitle":"system.Dataset"},"uri":"/sluice/inputs/s-2/shard","metadata":{}}]}`},
		},
		"outputs": {
			in:   []string{"{{$.outputs.parameters['n'].output_file}}", "{{$.outputs.artifacts['out'].path}}", "{{$.outputs.artifacts['out'].uri}}", "{{$.outputs.artifacts['out'].metadata}}"},
			want: []string{"/sluice/outputs/n/n", "/sluice/outputs/out/out", "/sluice/outputs/out/out", "{}"},
		},
		"system placeholders": {
			in:   []string{"{{$.pipeline_job_name}}/{{$.pipeline_task_name}}", "root={{$.pipeline_root}}"},
			want: []string{"run-1/train", "root="},
		},
		"an absent input outside IfPresent": {
			in:      []string{"{{$.inputs.parameters['skipped']}}"},
			wantErr: `placeholder {{$.inputs.parameters['skipped']}}: input parameter skipped has no value (none of its files exists: /sluice/inputs/c-out/out); an optional input belongs inside {"IfPresent": {"InputName": "skipped", ...}}`,
		},
		"an optional input without a value outside IfPresent": {
			in:      []string{"{{$.inputs.parameters['optional']}}"},
			wantErr: "input parameter optional has no value (it was given no value)",
		},
		"an absent artifact": {
			in:      []string{"{{$.inputs.artifacts['gone'].path}}"},
			wantErr: "input artifact gone has no value (none of its paths exists: /sluice/inputs/g/gone)",
		},
		"an unknown input": {
			in:      []string{"{{$.inputs.parameters['nope']}}"},
			wantErr: "placeholder {{$.inputs.parameters['nope']}}: the task has no input parameter nope (it has all, as_text, branch, conf, count, epochs, nested, none, optional, rate, skipped, text)",
		},
		"an unknown output": {
			in:      []string{"{{$.outputs.artifacts['nope'].path}}"},
			wantErr: "the component has no output artifact nope (it has out)",
		},
		"a field of a list of artifacts": {
			in:      []string{"{{$.inputs.artifacts['shards'].path}}"},
			wantErr: "input artifact shards is a list of artifacts, which has no .path; pass the whole list, {{$.inputs.artifacts['shards']}}",
		},
		"a system placeholder sluice does not provide": {
			in:      []string{"{{$.pipeline_job_uuid}}"},
			wantErr: "placeholder {{$.pipeline_job_uuid}}: sluice does not provide it",
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got, err := ExpandAll(tc.in, v)
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
				t.Errorf("(-want,+got):\n%s", d)
			}
		})
	}
}

func TestNewResolverErrors(t *testing.T) {
	oneFile := []ParameterFile{{Path: "/sluice/inputs/p/x", Type: TypeString}}
	cases := map[string]struct {
		e       Executor
		files   RunFiles
		wantErr string
	}{
		"a static value of the wrong type": {
			e:       Executor{Inputs: ExecutorInputs{Parameters: map[string]InputParameter{"n": {Type: TypeInteger, Value: "many"}}}},
			wantErr: `input parameter n: its value: "many" is not an integer`,
		},
		"a value and files": {
			e:       Executor{Inputs: ExecutorInputs{Parameters: map[string]InputParameter{"x": {Type: TypeString, Value: "a", Files: oneFile}}}},
			files:   mapFiles{},
			wantErr: "input parameter x: has both a value and files; expected one or the other",
		},
		"files without a reader": {
			e:       Executor{Inputs: ExecutorInputs{Parameters: map[string]InputParameter{"x": {Type: TypeString, Files: oneFile}}}},
			wantErr: "input parameter x: its value is in files, which only the launcher reads",
		},
		"a file that is not its type": {
			e:       Executor{Inputs: ExecutorInputs{Parameters: map[string]InputParameter{"n": {Type: TypeInteger, Files: []ParameterFile{{Path: "/sluice/inputs/p/n", Type: TypeInteger}}}}}},
			files:   mapFiles{"sluice/inputs/p/n": mapFile("3.5\n")},
			wantErr: `input parameter n: file /sluice/inputs/p/n: "3.5" is not an integer`,
		},
		"a file that does not fit the input's type": {
			e:       Executor{Inputs: ExecutorInputs{Parameters: map[string]InputParameter{"n": {Type: TypeInteger, Files: []ParameterFile{{Path: "/sluice/inputs/p/x", Type: TypeDouble}}}}}},
			files:   mapFiles{"sluice/inputs/p/x": mapFile("2.5")},
			wantErr: "input parameter n: file /sluice/inputs/p/x (NUMBER_DOUBLE) does not fit the input's type NUMBER_INTEGER: 2.5 is not an integer",
		},
		"a file that cannot be read": {
			e:       Executor{Inputs: ExecutorInputs{Parameters: map[string]InputParameter{"x": {Type: TypeString, Files: oneFile}}}},
			files:   failingFiles{fs.ErrPermission},
			wantErr: "input parameter x: permission denied",
		},
		"an artifact that cannot be looked at": {
			e:       Executor{Inputs: ExecutorInputs{Artifacts: map[string]InputArtifact{"d": {Type: "system.Dataset", Paths: []string{"/sluice/inputs/d/d"}}}}},
			files:   failingFiles{fs.ErrPermission},
			wantErr: "input artifact d: permission denied",
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := NewResolver(&tc.e, tc.files)
			if err == nil || err.Error() != tc.wantErr {
				t.Fatalf("error = %v, want %q", err, tc.wantErr)
			}
		})
	}
}

// The converter resolves a task whose inputs are all known at conversion
// without files: an artifact is its first path.
func TestResolveWithoutFiles(t *testing.T) {
	e := &Executor{
		Run: "r", Task: "t",
		Inputs: ExecutorInputs{
			Parameters: map[string]InputParameter{"n": {Type: TypeInteger, Value: "7"}},
			Artifacts:  map[string]InputArtifact{"d": {Type: "system.Dataset", Paths: []string{"/sluice/inputs/a/d", "/sluice/inputs/b/d"}}},
		},
	}
	v, err := NewResolver(e, nil)
	if err != nil {
		t.Fatal(err)
	}
	got, err := ExpandAll([]string{"{{$.inputs.parameters['n']}}", "{{$.inputs.artifacts['d'].path}}"}, v)
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff([]string{"7", "/sluice/inputs/a/d"}, got); d != "" {
		t.Errorf("(-want,+got):\n%s", d)
	}
	_, err = ExpandAll([]string{"{{$.inputs.artifacts['d'].metadata}}"}, v)
	if want := "the metadata of /sluice/inputs/a/d is known only at run time, to the launcher"; err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("error = %v, want %q", err, want)
	}
}

func TestReadParameter(t *testing.T) {
	cases := map[string]struct {
		typ     string
		data    string
		want    any
		wantErr string
	}{
		"a string as written":        {typ: TypeString, data: " two words\n", want: " two words\n"},
		"an integer, trimmed":        {typ: TypeInteger, data: "42\n", want: int64(42)},
		"a double":                   {typ: TypeDouble, data: "0.25", want: 0.25},
		"a boolean":                  {typ: TypeBoolean, data: "true\n", want: true},
		"a list":                     {typ: TypeList, data: `[1, "a"]`, want: []any{float64(1), "a"}},
		"a struct":                   {typ: TypeStruct, data: `{"k": [true]}` + "\n", want: map[string]any{"k": []any{true}}},
		"not an integer":             {typ: TypeInteger, data: "1.5", wantErr: `"1.5" is not an integer`},
		"an empty file is no number": {typ: TypeDouble, data: "", wantErr: `"" is not a number`},
		"not a list":                 {typ: TypeList, data: `{"a": 1}`, wantErr: "an object is not a JSON list"},
		"not JSON":                   {typ: TypeStruct, data: "{a", wantErr: `"{a" is not JSON; expected a JSON object`},
		"a long file, shortened":     {typ: TypeInteger, data: strings.Repeat("x", 100), wantErr: `"` + strings.Repeat("x", 48) + `"... (100 bytes) is not an integer`},
		"an unknown type":            {typ: "NUMBER", data: "1", wantErr: `parameter type "NUMBER" is not one of`},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got, err := ReadParameter(tc.typ, []byte(tc.data))
			if tc.wantErr != "" {
				if err == nil || !strings.HasPrefix(err.Error(), tc.wantErr) {
					t.Fatalf("error = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(tc.want, got); d != "" {
				t.Errorf("(-want,+got):\n%s", d)
			}
		})
	}
}

func TestParameterFileContent(t *testing.T) {
	cases := map[string]struct {
		typ  string
		v    any
		want string
	}{
		"a string as text":                    {typ: TypeString, v: "a\nb", want: "a\nb"},
		"a number given for a string":         {typ: TypeString, v: float64(3), want: "3"},
		"an integer from JSON":                {typ: TypeInteger, v: float64(7), want: "7"},
		"a large integer without an exponent": {typ: TypeInteger, v: float64(1e16), want: "10000000000000000"},
		"a JSON integer kept as written":      {typ: TypeInteger, v: json.Number("9007199254740993"), want: "9007199254740993"},
		"a double":                            {typ: TypeDouble, v: 0.5, want: "0.5"},
		"a whole double":                      {typ: TypeDouble, v: float64(2), want: "2"},
		"a boolean":                           {typ: TypeBoolean, v: true, want: "true"},
		"a list as JSON":                      {typ: TypeList, v: []any{float64(1), "a"}, want: `[1,"a"]`},
		"a struct as JSON":                    {typ: TypeStruct, v: map[string]any{"b": false}, want: `{"b":false}`},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got := ParameterFileContent(tc.typ, tc.v)
			if d := cmp.Diff(tc.want, string(got)); d != "" {
				t.Errorf("(-want,+got):\n%s", d)
			}
			// What the launcher writes, it reads back.
			if _, err := ReadParameter(tc.typ, got); err != nil {
				t.Errorf("ReadParameter(%s, %q): %v", tc.typ, got, err)
			}
		})
	}
}

func TestDecodeMetadata(t *testing.T) {
	for name, data := range map[string]string{"a list": "[1]", "two objects": "{} {}", "not JSON": "{"} {
		t.Run(name, func(t *testing.T) {
			if _, err := DecodeMetadata([]byte(data)); err == nil {
				t.Errorf("DecodeMetadata(%q) = nil error, want one", data)
			}
		})
	}
	got, err := DecodeMetadata([]byte("null"))
	if err != nil || len(got) != 0 || got == nil {
		t.Errorf("DecodeMetadata(null) = %v, %v; want an empty map", got, err)
	}
}

func TestPresent(t *testing.T) {
	v, err := NewResolver(resolveExecutor(), resolveFiles())
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, name := range []string{"text", "count", "skipped", "optional", "none", "data", "shards", "gone", "n", "out", "nope"} {
		got[name] = v.Present(name)
	}
	want := map[string]bool{
		"text": true, "count": true, "skipped": false, "optional": false, "none": true,
		"data": true, "shards": true, "gone": false, "n": true, "out": true, "nope": false,
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("(-want,+got):\n%s", d)
	}
}
