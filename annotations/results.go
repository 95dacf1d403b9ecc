package annotations

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"regexp"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// MaxTerminationMessage is the most of a container's termination message
// the kubelet keeps: of a longer file it keeps the last 4096 bytes, without
// saying so. A message of that length may thus have lost its beginning, so
// results must be shorter: at most MaxTerminationMessage-1 bytes.
const MaxTerminationMessage = 4096

// resultKey is the form of a key in a key=value termination message.
var resultKey = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_.-]*$`)

// ParseResults reads a container's termination message into the task's
// output parameters. The message is either one JSON object, whose top-level
// members become the results, or key=value lines (blank lines and lines
// starting with # are skipped). Numbers become float64 so that every result
// compares the same way in sluice.dev/when whichever form produced it. An
// empty message has no results. Errors name the line at fault.
func ParseResults(msg string) (map[string]any, error) {
	if len(msg) >= MaxTerminationMessage {
		return nil, fmt.Errorf("termination message is %d bytes; the kubelet keeps only the last %d bytes of a container's message, "+
			"so one this long may have lost its beginning: keep results under %d bytes (larger outputs belong in an output artifact)",
			len(msg), MaxTerminationMessage, MaxTerminationMessage)
	}
	if !utf8.ValidString(msg) {
		// encoding/json would silently replace the bad bytes, so the
		// results would differ from what the step wrote.
		return nil, fmt.Errorf("line %d: not valid UTF-8; expected text key=value lines or one JSON object", lineAt(msg, invalidUTF8At(msg)))
	}
	trimmed := strings.TrimSpace(msg)
	switch {
	case trimmed == "":
		return map[string]any{}, nil
	case trimmed[0] == '{':
		lead := len(msg) - len(strings.TrimLeftFunc(msg, unicode.IsSpace))
		res, offset, err := decodeObject(trimmed)
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", lineAt(msg, lead+offset), err)
		}
		return res, nil
	default:
		return parseKeyValues(msg)
	}
}

func parseKeyValues(msg string) (map[string]any, error) {
	res := map[string]any{}
	firstSeen := map[string]int{}
	for i, line := range strings.Split(msg, "\n") {
		n := i + 1
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		key, value, ok := strings.Cut(line, "=")
		if !ok {
			return nil, fmt.Errorf("line %d: %q is not key=value; expected lines like accuracy=0.95, or one JSON object", n, excerpt(line))
		}
		key, value = strings.TrimSpace(key), strings.TrimSpace(value)
		if !resultKey.MatchString(key) {
			return nil, fmt.Errorf("line %d: key %q in %q must start with a letter or '_' and hold only letters, digits, '_', '.' and '-'", n, excerpt(key), excerpt(line))
		}
		if first, dup := firstSeen[key]; dup {
			return nil, fmt.Errorf("line %d: key %q is repeated (first on line %d); expected each key once", n, excerpt(key), first)
		}
		firstSeen[key] = n
		res[key] = scalar(value)
	}
	return res, nil
}

// scalar types a key=value value: a finite number, a bool, else the text.
func scalar(v string) any {
	if f, err := strconv.ParseFloat(v, 64); err == nil && !math.IsInf(f, 0) && !math.IsNaN(f) {
		return f
	}
	switch v {
	case "true":
		return true
	case "false":
		return false
	}
	return v
}

// decodeObject decodes one JSON object, rejecting repeated top-level keys
// (encoding/json would keep the last silently). On error it also returns the
// byte offset the error points at.
func decodeObject(s string) (map[string]any, int, error) {
	if !json.Valid([]byte(s)) {
		var v any
		err := json.Unmarshal([]byte(s), &v)
		var syn *json.SyntaxError
		if errors.As(err, &syn) {
			return nil, int(syn.Offset), fmt.Errorf("invalid JSON: %v; expected one JSON object or key=value lines", syn)
		}
		return nil, 0, fmt.Errorf("invalid JSON: %v; expected one JSON object or key=value lines", err)
	}
	dec := json.NewDecoder(strings.NewReader(s))
	dec.UseNumber()
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, 0, fmt.Errorf("expected one JSON object, got %q", excerpt(s))
	}
	res := map[string]any{}
	for dec.More() {
		tok, err := dec.Token()
		// After the key, so the offset is on the key's line.
		offset := int(dec.InputOffset())
		if err != nil {
			return nil, offset, fmt.Errorf("invalid JSON: %w", err)
		}
		key, ok := tok.(string)
		if !ok {
			return nil, offset, fmt.Errorf("invalid JSON: expected an object key, got %v", tok)
		}
		var v any
		if err := dec.Decode(&v); err != nil {
			return nil, offset, fmt.Errorf("invalid JSON value of %q: %w", excerpt(key), err)
		}
		if _, dup := res[key]; dup {
			return nil, offset, fmt.Errorf("key %q is repeated in the JSON object; expected each key once", excerpt(key))
		}
		res[key] = fromJSON(v)
	}
	if tok, err := dec.Token(); err != nil || tok != json.Delim('}') {
		return nil, int(dec.InputOffset()), errors.New("invalid JSON: the object is not closed")
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, int(dec.InputOffset()), errors.New("unexpected text after the JSON object; expected exactly one object")
	}
	return res, 0, nil
}

// fromJSON turns the json.Numbers of a value decoded with UseNumber into
// float64, keeping as text a number too large for one.
func fromJSON(v any) any {
	switch v := v.(type) {
	case json.Number:
		if f, err := strconv.ParseFloat(string(v), 64); err == nil && !math.IsInf(f, 0) {
			return f
		}
		return string(v)
	case map[string]any:
		for k, e := range v {
			v[k] = fromJSON(e)
		}
		return v
	case []any:
		for i, e := range v {
			v[i] = fromJSON(e)
		}
		return v
	}
	return v
}

// MarshalResults encodes results for the sluice.dev/results annotation:
// compact JSON with sorted keys, so equal results give equal annotations and
// the controller does not patch objects needlessly.
func MarshalResults(results map[string]any) (string, error) {
	if results == nil {
		results = map[string]any{}
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	// Results are read by people with kubectl; < > & need no escaping there.
	enc.SetEscapeHTML(false)
	if err := enc.Encode(results); err != nil {
		return "", fmt.Errorf("encoding %s: %w", ResultsAnnotation, err)
	}
	return strings.TrimSuffix(buf.String(), "\n"), nil
}

// UnmarshalResults decodes a sluice.dev/results annotation, with numbers as
// float64 as ParseResults gives them. An empty annotation holds no results.
func UnmarshalResults(s string) (map[string]any, error) {
	trimmed := strings.TrimSpace(s)
	if trimmed == "" {
		return map[string]any{}, nil
	}
	if trimmed[0] != '{' {
		return nil, fmt.Errorf("%s: %q is not a JSON object", ResultsAnnotation, excerpt(trimmed))
	}
	res, _, err := decodeObject(trimmed)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", ResultsAnnotation, err)
	}
	return res, nil
}

// lineAt is the 1-based line holding byte offset off of s.
func lineAt(s string, off int) int {
	off = min(max(off, 0), len(s))
	return strings.Count(s[:off], "\n") + 1
}

func invalidUTF8At(s string) int {
	for i, r := range s {
		if r == utf8.RuneError {
			if _, size := utf8.DecodeRuneInString(s[i:]); size == 1 {
				return i
			}
		}
	}
	return len(s)
}

// excerpt shortens text quoted in an error so the message stays one
// readable line.
func excerpt(s string) string {
	const limit = 64
	if utf8.RuneCountInString(s) <= limit {
		return s
	}
	return string([]rune(s)[:limit]) + "..."
}
