package main

import (
	"fmt"
	"net"
	"slices"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

func TestProcAddr(t *testing.T) {
	for _, c := range []struct {
		in       string
		ip       string
		port     int
		loopback bool
	}{
		{"0100007F:17AC", "127.0.0.1", 6060, true},
		{"00000000:2382", "0.0.0.0", 9090, false},
		{"00000000000000000000000001000000:0050", "::1", 80, true},
		{"00000000000000000000000000000000:17AC", "::", 6060, false},
	} {
		addr, err := procAddr(c.in)
		if err != nil {
			t.Fatalf("procAddr(%q): %v", c.in, err)
		}
		if !addr.IP.Equal(net.ParseIP(c.ip)) || addr.Port != c.port || addr.IP.IsLoopback() != c.loopback {
			t.Errorf("procAddr(%q) = %s (loopback %v), want %s:%d (loopback %v)", c.in, addr, addr.IP.IsLoopback(), c.ip, c.port, c.loopback)
		}
	}
	if _, err := procAddr("0100007F"); err == nil {
		t.Error("procAddr without a port: no error")
	}
}

func TestArgoWorkflow(t *testing.T) {
	u := argoWorkflow("r0", "sluice-scheduler", fan("r0", 3), map[string]string{benchRunLabel: "r0"})
	templates, _, _ := unstructured.NestedSlice(u.Object, "spec", "templates")
	dag := templates[0].(map[string]any)["dag"].(map[string]any)["tasks"].([]any)
	var got []string
	for _, task := range dag {
		task := task.(map[string]any)
		desc := task["name"].(string)
		if seq, ok := task["withSequence"].(map[string]any); ok {
			desc += " x" + seq["count"].(string)
		}
		if deps, ok := task["dependencies"].([]any); ok {
			desc += " after"
			for _, d := range deps {
				desc += " " + d.(string)
			}
		}
		got = append(got, desc)
	}
	// The fan-out is one looped task: the CRDs allow 200 tasks in a DAG.
	if want := []string{"root", "w x3 after root", "join after w"}; !slices.Equal(got, want) {
		t.Errorf("fan(3) tasks %q, want %q", got, want)
	}
	if got, _, _ := unstructured.NestedString(u.Object, "spec", "podMetadata", "annotations", "sim.sluice.dev/duration"); got != "0s" {
		t.Errorf("pods' duration annotation %q, want 0s", got)
	}
	if got, _, _ := unstructured.NestedString(u.Object, "spec", "schedulerName"); got != "sluice-scheduler" {
		t.Errorf("schedulerName %q", got)
	}
	// The bench's informers copy objects: the Workflow must be JSON-clean.
	if _, err := u.MarshalJSON(); err != nil {
		t.Fatal(err)
	}

	chainTasks := argoTasks(chain(4))
	if len(chainTasks) != 4 {
		t.Fatalf("chain(4): %d tasks, want 4", len(chainTasks))
	}
	for i, task := range chainTasks {
		task := task.(map[string]any)
		if task["name"] != fmt.Sprintf("s%d", i) || task["withSequence"] != nil {
			t.Errorf("chain task %d: %v", i, task)
		}
		if deps, _ := task["dependencies"].([]any); i > 0 && (len(deps) != 1 || deps[0] != fmt.Sprintf("s%d", i-1)) {
			t.Errorf("chain task %d depends on %v", i, deps)
		}
	}
}

func TestArgoStep(t *testing.T) {
	for node, want := range map[string]string{"r0.s3": "s3", "r0.w(12:12)": "w12", "r0.root": "root", "r0.join": "join"} {
		if got, ok := argoStep(node); !ok || got != want {
			t.Errorf("argoStep(%q) = %q, %v; want %q", node, got, ok, want)
		}
	}
	for _, node := range []string{"r0", "r0.w(12"} {
		if got, ok := argoStep(node); ok {
			t.Errorf("argoStep(%q) = %q, want none", node, got)
		}
	}
	for name, want := range map[string]int{"w12": 12, "s0": 0, "root": -1, "w007": -1, "42": -1} {
		if _, i := splitIndex(name); i != want {
			t.Errorf("splitIndex(%q) index %d, want %d", name, i, want)
		}
	}
}
