package webhook

import (
	"fmt"
	"unicode/utf8"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// A denial quotes enough of a bad value to recognise it, never a whole
// oversized annotation echoed back (the API server caps all of an object's
// annotations at 256 KiB, each of which would otherwise come back in the
// message, and in every log that prints it).
const (
	maxShownValue  = 200
	maxShownDetail = 1000
)

// invalid is the Invalid error for kind/name with errs, their bad values
// and details shortened.
func invalid(kind schema.GroupKind, name string, errs field.ErrorList) error {
	for _, e := range errs {
		if s, ok := e.BadValue.(string); ok {
			e.BadValue = shorten(s, maxShownValue)
		}
		e.Detail = shorten(e.Detail, maxShownDetail)
	}
	return apierrors.NewInvalid(kind, name, errs)
}

// shorten cuts s to at most n bytes, at a rune boundary, saying how long it was.
func shorten(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return fmt.Sprintf("%s... (%d bytes in all)", s[:cut], len(s))
}
