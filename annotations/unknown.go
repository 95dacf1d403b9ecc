package annotations

import (
	"slices"
	"sort"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation/field"
)

// unknownKeys reports sluice.dev/ keys that sluice does not define, with a
// did-you-mean for near misses of the keys valid in that place.
func unknownKeys(m map[string]string, path *field.Path, known ...[]string) field.ErrorList {
	var valid []string
	for _, k := range known {
		valid = append(valid, k...)
	}
	var keys []string
	for k := range m {
		if strings.HasPrefix(k, Prefix) && !slices.Contains(valid, k) {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	var errs field.ErrorList
	for _, k := range keys {
		msg := "unknown sluice key"
		if near := nearest(k, valid); near != "" {
			msg += "; did you mean " + near + "?"
		} else {
			msg += "; known keys here: " + strings.Join(valid, ", ")
		}
		errs = append(errs, field.Invalid(path.Key(k), m[k], msg))
	}
	return errs
}

// nearest returns the candidate closest to s when it is a plausible typo:
// within edit distance 2, or 3 for long keys.
func nearest(s string, candidates []string) string {
	best, bestD := "", 1<<30
	for _, c := range candidates {
		if d := editDistance(s, c); d < bestD {
			best, bestD = c, d
		}
	}
	limit := 2
	if len(strings.TrimPrefix(s, Prefix)) > 8 {
		limit = 3
	}
	if bestD > limit {
		return ""
	}
	return best
}

// editDistance is the Levenshtein distance between a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
