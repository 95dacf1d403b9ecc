package framework

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestRefusalsOf(t *testing.T) {
	log := filepath.Join(t.TempDir(), "manager.log")
	at := func(s string) time.Time {
		v, err := time.ParseInLocation("2006-01-02 15:04:05", s, time.Local)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	year := time.Now().Format("2006")
	lines := "E1202 14:06:20.000000   1 x.go:1] \"Failed to watch\" err=\"pods is forbidden\"\n" +
		"E1202 14:06:27.894633   1 x.go:1] \"Failed to watch\" err=\"jobs.batch is forbidden\"\n" +
		"I1202 14:06:28.000000   1 x.go:1] \"Caches populated\"\n" +
		"2026/12/02 14:06:27 http: forbidden, in another format\n"
	if err := os.WriteFile(log, []byte(lines), 0o644); err != nil {
		t.Fatal(err)
	}
	c := &Cluster{restarts: []window{{from: at(year + "-12-02 14:06:21"), to: at(year + "-12-02 14:06:28")}}}
	got, err := c.RefusalsOf(&Process{Log: log})
	if err != nil {
		t.Fatal(err)
	}
	// The refusal before the restart, and the line whose time cannot be
	// read, stay; the one during the restart goes.
	if len(got) != 2 || got[0] != "E1202 14:06:20.000000   1 x.go:1] \"Failed to watch\" err=\"pods is forbidden\"" {
		t.Errorf("RefusalsOf = %q, want the refusal at 14:06:20 and the unreadable line", got)
	}
}
