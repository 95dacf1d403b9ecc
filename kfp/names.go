package kfp

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
)

// maxName is the longest a task name, a run id or an object name may be: a
// DNS-1123 label (label values have the same bound).
const maxName = 63

// DNSName folds s into a DNS-1123 label: lower case, every run of other
// characters one '-', no '-' at either end, and a name longer than 63
// characters cut to 54 and given 8 hex digits of s's SHA-256, so that two
// long names that share their first 54 characters stay apart and the same
// s always gives the same name.
func DNSName(s string) string {
	var b strings.Builder
	dash := false
	for _, r := range strings.ToLower(s) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			b.WriteRune(r)
			dash = false
		default:
			if !dash && b.Len() > 0 {
				b.WriteByte('-')
			}
			dash = true
		}
	}
	out := strings.TrimRight(b.String(), "-")
	if out == "" {
		out = "x"
	}
	if len(out) > maxName {
		sum := sha256.Sum256([]byte(s))
		out = strings.TrimRight(out[:maxName-9], "-") + "-" + hex.EncodeToString(sum[:4])
	}
	return out
}
