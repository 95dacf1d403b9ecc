package annotations

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseResults(t *testing.T) {
	cases := map[string]struct {
		msg     string
		want    map[string]any
		wantErr string // substring; empty means no error
	}{
		"empty message has no results": {
			msg:  "",
			want: map[string]any{},
		},
		"blank lines and comments only": {
			msg:  "\n  \n# nothing yet\n\t# indented comment\n",
			want: map[string]any{},
		},
		"key=value lines are typed": {
			msg: "accuracy=0.95\nepochs = 10\n\nconverged=true\nstopped=false\nmodel= gs://bucket/model \n# a comment\nnote=\n",
			want: map[string]any{
				"accuracy":  0.95,
				"epochs":    10.0,
				"converged": true,
				"stopped":   false,
				"model":     "gs://bucket/model",
				"note":      "",
			},
		},
		"only the first = splits": {
			msg:  "query=a=b",
			want: map[string]any{"query": "a=b"},
		},
		"CRLF line ends": {
			msg:  "a=1\r\nb=x\r\n",
			want: map[string]any{"a": 1.0, "b": "x"},
		},
		"keys may hold dots and dashes": {
			msg:  "val.loss=0.1\nf1-score=0.8\n_private=1",
			want: map[string]any{"val.loss": 0.1, "f1-score": 0.8, "_private": 1.0},
		},
		"non-finite and odd numbers stay text": {
			msg:  "a=NaN\nb=Inf\nc=-infinity\nd=1e400\ne=True\nf=0.5.1",
			want: map[string]any{"a": "NaN", "b": "Inf", "c": "-infinity", "d": "1e400", "e": "True", "f": "0.5.1"},
		},
		"number forms strconv accepts are numbers": {
			msg:  "a=1e3\nb=-0.25\nc=+7\nd=0x1p4",
			want: map[string]any{"a": 1000.0, "b": -0.25, "c": 7.0, "d": 16.0},
		},
		"line without = names the line and the text": {
			msg:     "# metrics\naccuracy 0.9\n",
			wantErr: `line 2: "accuracy 0.9" is not key=value; expected lines like accuracy=0.95, or one JSON object`,
		},
		"bad key": {
			msg:     "ok=1\n\n1st=2",
			wantErr: `line 3: key "1st" in "1st=2" must start with a letter or '_'`,
		},
		"empty key": {
			msg:     "=2",
			wantErr: `line 1: key "" in "=2" must start with a letter`,
		},
		"repeated key": {
			msg:     "a=1\nb=2\na=3",
			wantErr: `line 3: key "a" is repeated (first on line 1)`,
		},
		"long offending text is shortened": {
			msg:     strings.Repeat("x", 200),
			wantErr: `line 1: "` + strings.Repeat("x", 64) + `..." is not key=value`,
		},
		"JSON object keeps decoded values": {
			msg: ` {"accuracy": 0.95, "epochs": 10, "ok": true, "name": "resnet", "tags": ["a", 1], "nested": {"x": 2.5}, "none": null} `,
			want: map[string]any{
				"accuracy": 0.95,
				"epochs":   10.0,
				"ok":       true,
				"name":     "resnet",
				"tags":     []any{"a", 1.0},
				"nested":   map[string]any{"x": 2.5},
				"none":     nil,
			},
		},
		"JSON number too large for a float64 stays text": {
			msg:  `{"big": 1e400, "nested": [-1e999]}`,
			want: map[string]any{"big": "1e400", "nested": []any{"-1e999"}},
		},
		"empty JSON object": {
			msg:  "{}",
			want: map[string]any{},
		},
		"invalid JSON names the line": {
			msg:     "\n{\"a\": 1,\n \"b\": }",
			wantErr: `line 3: invalid JSON: invalid character '}' looking for beginning of value; expected one JSON object or key=value lines`,
		},
		"text after the JSON object": {
			msg:     `{"a": 1} {"b": 2}`,
			wantErr: `line 1: invalid JSON: invalid character '{' after top-level value`,
		},
		"repeated JSON key": {
			msg:     "{\"a\": 1,\n\"a\": 2}",
			wantErr: `line 2: key "a" is repeated in the JSON object`,
		},
		"too long": {
			msg:     strings.Repeat("a=1\n", 1025),
			wantErr: "termination message is 4100 bytes; the kubelet keeps only the last 4096 bytes",
		},
		"as long as the kubelet keeps: maybe truncated": {
			msg:     "a=" + strings.Repeat("x", MaxTerminationMessage-2),
			wantErr: "termination message is 4096 bytes; the kubelet keeps only the last 4096 bytes of a container's message, so one this long may have lost its beginning",
		},
		"one byte less is fine": {
			msg:  "a=" + strings.Repeat("x", MaxTerminationMessage-3),
			want: map[string]any{"a": strings.Repeat("x", MaxTerminationMessage-3)},
		},
		"invalid UTF-8 names the line": {
			msg:     "a=1\nb=\xff\n",
			wantErr: "line 2: not valid UTF-8",
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got, err := ParseResults(tc.msg)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("ParseResults() error = %v, want it to contain %q", err, tc.wantErr)
				}
				if strings.Contains(err.Error(), "\n") {
					t.Errorf("ParseResults() error spans lines: %q", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseResults() unexpected error: %v", err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("ParseResults() (-want,+got):\n%s", diff)
			}
		})
	}
}

func TestMarshalResults(t *testing.T) {
	cases := map[string]struct {
		results map[string]any
		want    string
		wantErr string
	}{
		"nil is an empty object": {
			results: nil,
			want:    "{}",
		},
		"keys sorted, compact, no HTML escaping": {
			results: map[string]any{"z": 1.0, "a": "<b>&", "m": []any{true, nil}, "n": map[string]any{"y": 2.5, "x": "s"}},
			want:    `{"a":"<b>&","m":[true,null],"n":{"x":"s","y":2.5},"z":1}`,
		},
		"NaN cannot be encoded": {
			results: map[string]any{"a": nan()},
			wantErr: "encoding sluice.dev/results: json: unsupported value: NaN",
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got, err := MarshalResults(tc.results)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("MarshalResults() error = %v, want it to contain %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("MarshalResults() unexpected error: %v", err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("MarshalResults() (-want,+got):\n%s", diff)
			}
		})
	}
}

func TestUnmarshalResults(t *testing.T) {
	cases := map[string]struct {
		annotation string
		want       map[string]any
		wantErr    string
	}{
		"empty annotation has no results": {
			annotation: "",
			want:       map[string]any{},
		},
		"numbers are float64": {
			annotation: `{"accuracy":0.95,"epochs":10,"ids":[1,2],"big":"1e400"}`,
			want:       map[string]any{"accuracy": 0.95, "epochs": 10.0, "ids": []any{1.0, 2.0}, "big": "1e400"},
		},
		"not an object": {
			annotation: `[1,2]`,
			wantErr:    `sluice.dev/results: "[1,2]" is not a JSON object`,
		},
		"null is not an object": {
			annotation: `null`,
			wantErr:    `sluice.dev/results: "null" is not a JSON object`,
		},
		"broken JSON": {
			annotation: `{"a":`,
			wantErr:    `sluice.dev/results: invalid JSON: unexpected end of JSON input`,
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got, err := UnmarshalResults(tc.annotation)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("UnmarshalResults() error = %v, want it to contain %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("UnmarshalResults() unexpected error: %v", err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("UnmarshalResults() (-want,+got):\n%s", diff)
			}
		})
	}
}

func TestResultsRoundTrip(t *testing.T) {
	for _, msg := range []string{
		"accuracy=0.95\nepochs=10\nok=true\nmodel=gs://b/m",
		`{"a":{"b":[1,"x",null,false]},"c":-0,"d":"\u003c"}`,
		`{"big":12345678901234567890}`,
	} {
		parsed, err := ParseResults(msg)
		if err != nil {
			t.Fatalf("ParseResults(%q): %v", msg, err)
		}
		enc, err := MarshalResults(parsed)
		if err != nil {
			t.Fatalf("MarshalResults(%v): %v", parsed, err)
		}
		got, err := UnmarshalResults(enc)
		if err != nil {
			t.Fatalf("UnmarshalResults(%q): %v", enc, err)
		}
		if diff := cmp.Diff(parsed, got); diff != "" {
			t.Errorf("round trip of %q through %q (-want,+got):\n%s", msg, enc, diff)
		}
	}
}

func FuzzParseResults(f *testing.F) {
	for _, seed := range []string{
		"",
		"accuracy=0.95\nepochs=10\n",
		"# comment\n\nok=true\nname = resnet \n",
		"accuracy 0.9",
		"a=1\na=2",
		`{"accuracy": 0.95, "tags": ["a", 1], "nested": {"x": null}}`,
		`{"big": 1e400, "n": -0}`,
		`{"a": 1} trailing`,
		"a=\xff",
		"x=0x1p-2\ny=1_000\nz=NaN",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, msg string) {
		parsed, err := ParseResults(msg)
		if err != nil {
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("ParseResults(%q) error spans lines: %q", msg, err)
			}
			return
		}
		if parsed == nil {
			t.Fatalf("ParseResults(%q) = nil map without an error", msg)
		}
		enc, err := MarshalResults(parsed)
		if err != nil {
			t.Fatalf("MarshalResults(ParseResults(%q)): %v", msg, err)
		}
		got, err := UnmarshalResults(enc)
		if err != nil {
			t.Fatalf("UnmarshalResults(%q): %v", enc, err)
		}
		if diff := cmp.Diff(parsed, got); diff != "" {
			t.Fatalf("round trip of %q through %q (-want,+got):\n%s", msg, enc, diff)
		}
		again, err := MarshalResults(got)
		if err != nil || again != enc {
			t.Fatalf("MarshalResults is not stable: %q then %q (%v)", enc, again, err)
		}
	})
}

func nan() float64 {
	zero := 0.0
	return zero / zero
}
