package kfp

import (
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/util/validation"
)

func TestDNSName(t *testing.T) {
	long := strings.Repeat("step-", 20)
	for in, want := range map[string]string{
		"print-op":           "print-op",
		"Train_Model":        "train-model",
		"--odd..name--":      "odd-name",
		"pipelinechannel--x": "pipelinechannel-x",
		"___":                "x",
		long:                 DNSName(long),
	} {
		if got := DNSName(in); got != want {
			t.Errorf("DNSName(%q) = %q, want %q", in, got, want)
		}
	}
	a, b := DNSName(long+"a"), DNSName(long+"b")
	if a == b || len(a) > 63 || !strings.HasPrefix(a, "step-step-") {
		t.Errorf("long names: %q and %q, want distinct, at most 63, keeping their start", a, b)
	}
}

func FuzzDNSName(f *testing.F) {
	f.Add("print-op")
	f.Add(strings.Repeat("é-", 50))
	f.Fuzz(func(t *testing.T, s string) {
		n := DNSName(s)
		if msgs := validation.IsDNS1123Label(n); len(msgs) > 0 {
			t.Fatalf("DNSName(%q) = %q: %v", s, n, msgs)
		}
		if DNSName(s) != n {
			t.Fatal("not stable")
		}
	})
}
