package launcher

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/sluice-dev/sluice/annotations"
)

func TestTerminationMessage(t *testing.T) {
	cases := map[string]struct {
		values   map[string]any
		limit    int
		wantMsg  string
		wantLeft []string
	}{
		"everything fits": {
			values:  map[string]any{"n": int64(1), "s": "a", "l": []any{true}},
			limit:   100,
			wantMsg: `{"l":[true],"n":1,"s":"a"}`,
		},
		"the largest values are left out first": {
			// {"n":1,"s":"abc"} is 17 bytes: under 18, not under 17.
			values:   map[string]any{"n": int64(1), "s": "abc", "big": strings.Repeat("x", 20)},
			limit:    18,
			wantMsg:  `{"n":1,"s":"abc"}`,
			wantLeft: []string{"big"},
		},
		"a message of exactly the limit is too long": {
			values:   map[string]any{"n": int64(1), "s": "abc"},
			limit:    17,
			wantMsg:  `{"n":1}`,
			wantLeft: []string{"s"},
		},
		"nothing fits": {
			values:   map[string]any{"a": "xxxx", "b": "yyyy"},
			limit:    8,
			wantMsg:  `{}`,
			wantLeft: []string{"a", "b"},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			msg, left := terminationMessage(tc.values, tc.limit)
			if d := cmp.Diff(tc.wantMsg, string(msg)); d != "" {
				t.Errorf("message (-want,+got):\n%s", d)
			}
			if d := cmp.Diff(tc.wantLeft, left); d != "" {
				t.Errorf("left out (-want,+got):\n%s", d)
			}
		})
	}
}

// The launcher keeps its own copy of the limit so as not to import
// annotations; the controller enforces the one in annotations.
func TestMaxTerminationMessage(t *testing.T) {
	if maxTerminationMessage != annotations.MaxTerminationMessage {
		t.Errorf("maxTerminationMessage = %d, want annotations.MaxTerminationMessage = %d", maxTerminationMessage, annotations.MaxTerminationMessage)
	}
}

// What the launcher writes, sluice's controller reads as the results.
func TestTerminationMessageParses(t *testing.T) {
	values := map[string]any{"n": int64(3), "ok": true, "s": "a \"quoted\" <word>", "big": strings.Repeat("é", 3000)}
	msg, left := terminationMessage(values, maxTerminationMessage)
	if d := cmp.Diff([]string{"big"}, left); d != "" {
		t.Errorf("left out (-want,+got):\n%s", d)
	}
	got, err := annotations.ParseResults(string(msg))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"n": float64(3), "ok": true, "s": "a \"quoted\" <word>"}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("results (-want,+got):\n%s", d)
	}
}
