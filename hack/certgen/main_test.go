package main

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

func writeSet(t *testing.T, dir string, hosts []string, validity time.Duration) {
	t.Helper()
	ca, cert, key, err := generate(hosts, time.Now(), validity)
	if err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string][]byte{caFile: ca, certFile: cert, keyFile: key} {
		if err := writeFileAtomic(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

func TestCheckExisting(t *testing.T) {
	dir := t.TempDir()
	if err := checkExisting(dir, []string{"127.0.0.1"}, time.Now()); !os.IsNotExist(err) {
		t.Fatalf("empty dir: got %v, want not-exist", err)
	}
	writeSet(t, dir, []string{"127.0.0.1", "localhost"}, 48*time.Hour)
	if err := checkExisting(dir, []string{"127.0.0.1", "localhost"}, time.Now().Add(24*time.Hour)); err != nil {
		t.Fatalf("fresh set rejected: %v", err)
	}
	if err := checkExisting(dir, []string{"127.0.0.2"}, time.Now()); err == nil {
		t.Fatal("set accepted for a host it does not cover")
	}
	if err := checkExisting(dir, []string{"127.0.0.1"}, time.Now().Add(72*time.Hour)); err == nil {
		t.Fatal("set accepted although it expires too soon")
	}

	// A serving pair from another CA must be rejected.
	other := t.TempDir()
	writeSet(t, other, []string{"127.0.0.1"}, 48*time.Hour)
	data, err := os.ReadFile(filepath.Join(other, caFile))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, caFile), data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := checkExisting(dir, []string{"127.0.0.1"}, time.Now()); err == nil {
		t.Fatal("serving certificate accepted under a foreign CA")
	}
}
