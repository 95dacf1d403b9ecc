package main

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

func TestExplain(t *testing.T) {
	forbidden := apierrors.NewForbidden(schema.GroupResource{Group: "batch", Resource: "jobs"}, "", errors.New(`User "ana" cannot list resource "jobs" in API group "batch" in the namespace "ml"`))
	cases := []struct {
		err  error
		want string
	}{
		{fmt.Errorf("listing Jobs: %w", forbidden), `cannot list resource "jobs" in API group "batch" in the namespace "ml" (your credentials lack that permission`},
		{apierrors.NewUnauthorized("token expired"), "(your credentials were not accepted"},
		{fmt.Errorf("listing Jobs: %w", &url.Error{Op: "Get", URL: "https://127.0.0.1:1/api", Err: errors.New("dial tcp 127.0.0.1:1: connect: connection refused")}), "(the cluster cannot be reached"},
		{errors.New(`no run "r" in namespace ml (kubectl sluice status lists the runs)`), `no run "r" in namespace ml (kubectl sluice status lists the runs)`},
	}
	for _, tc := range cases {
		if got := explain(tc.err); !strings.Contains(got, tc.want) {
			t.Errorf("explain(%v) = %q, want it to contain %q", tc.err, got, tc.want)
		}
	}
}
