package task

import (
	"strings"
	"testing"
)

func TestFormat(t *testing.T) {
	for v, want := range map[any]string{
		"s": "s", int64(3): "3", 3.0: "3", 0.5: "0.5", true: "true", 1e20: "1e+20",
	} {
		if got := Format(v); got != want {
			t.Errorf("Format(%#v) = %q, want %q", v, got, want)
		}
	}
	if got := Format([]any{"a", 1.0, map[string]any{"k": false}}); got != `["a",1,{"k":false}]` {
		t.Errorf("Format(list) = %s", got)
	}
}

func FuzzParseParam(f *testing.F) {
	for _, s := range []string{"1", "1.5", "true", "[1]", `{"a":1}`, "x", "9223372036854775808"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for _, typ := range parameterTypes {
			v, err := ParseParam(typ, s)
			if err != nil {
				if strings.Contains(err.Error(), "\n") {
					t.Fatalf("error is not one line: %q", err)
				}
				continue
			}
			// What a flag gives, a params file and a default give too.
			again, err := Coerce(typ, v)
			if err != nil {
				t.Fatalf("Coerce(%s, ParseParam(%q) = %#v): %v", typ, s, v, err)
			}
			if typ != TypeList && typ != TypeStruct && again != v {
				t.Fatalf("Coerce changed %#v to %#v", v, again)
			}
		}
	})
}
