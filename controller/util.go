package controller

import (
	"strconv"
	"strings"
)

func ptrTrue(b *bool) bool { return b != nil && *b }

func itoa(i int32) string { return strconv.Itoa(int(i)) }

// oneLine folds a message onto one line of at most 256 characters: reasons
// live in an annotation that `kubectl get -o wide`-style views print.
func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	s = strings.TrimSuffix(s, ":")
	if len(s) > 256 {
		s = s[:253] + "..."
	}
	return s
}
