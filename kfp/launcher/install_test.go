package launcher

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestInstall(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "kfp-launcher")
	if err := os.WriteFile(src, []byte("#!/bin/sh\necho launcher\n"), 0o700); err != nil {
		t.Fatal(err)
	}
	dest := filepath.Join(dir, "sluice", "kfp", "launcher")
	// Twice: the second replaces the first.
	for range 2 {
		if err := Install(src, dest); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(dest)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != "#!/bin/sh\necho launcher\n" {
		t.Errorf("content = %q", got)
	}
	info, err := os.Stat(dest)
	if err != nil {
		t.Fatal(err)
	}
	if info.Mode().Perm() != 0o755 {
		t.Errorf("mode = %v, want 0755", info.Mode().Perm())
	}
	entries, err := os.ReadDir(filepath.Dir(dest))
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		t.Errorf("%s holds %d entries, want only the launcher", filepath.Dir(dest), len(entries))
	}
}

func TestInstallMissingSource(t *testing.T) {
	dir := t.TempDir()
	err := Install(filepath.Join(dir, "nope"), filepath.Join(dir, "launcher"))
	if err == nil || !strings.Contains(err.Error(), "installing the launcher at "+filepath.Join(dir, "launcher")) {
		t.Fatalf("error = %v", err)
	}
}

// kfp-launcher install DEST copies the running executable: here the test
// binary.
func TestMainInstall(t *testing.T) {
	tl := newTestLauncher(t)
	dest := tl.path("kfp/launcher")
	if code := tl.Main([]string{"install", dest}); code != 0 {
		t.Fatalf("exit code = %d; stderr:\n%s", code, tl.stderr)
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	want, err := os.Stat(exe)
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.Stat(dest)
	if err != nil {
		t.Fatal(err)
	}
	if got.Size() != want.Size() || got.Mode().Perm() != 0o755 {
		t.Errorf("installed %d bytes, mode %v; want %d bytes, mode 0755", got.Size(), got.Mode().Perm(), want.Size())
	}
}
