package main

import (
	"archive/tar"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// writeTar writes a layer tarball holding files (path -> content).
func writeTar(t *testing.T, path string, files map[string]string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	tw := tar.NewWriter(f)
	for name, body := range files {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o755, Size: int64(len(body)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		if _, err := io.WriteString(tw, body); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	f.Close()
}

func TestWriteReadsBack(t *testing.T) {
	dir := t.TempDir()
	base, top := filepath.Join(dir, "base.tar"), filepath.Join(dir, "top.tar")
	writeTar(t, base, map[string]string{"bin/tool": "v1", "etc/passwd": "root:x:0:0::/:/bin/sh\n"})
	writeTar(t, top, map[string]string{"bin/tool": "v2"})
	out := filepath.Join(dir, "image.tar")
	spec := Spec{
		Ref: "localhost/sluice/test:dev", Layers: []string{base, top},
		Env: []string{"PATH=/bin"}, Entrypoint: []string{"/bin/tool"}, Cmd: []string{"--help"},
		User: "65532:65532", WorkDir: "/work",
	}
	digest, err := Write(spec, out)
	if err != nil {
		t.Fatal(err)
	}
	tag, _ := name.NewTag(spec.Ref)
	img, err := tarball.ImageFromPath(out, &tag)
	if err != nil {
		t.Fatalf("reading the archive back as %s: %v", spec.Ref, err)
	}
	if d, _ := img.Digest(); d.String() != digest {
		t.Errorf("digest read back %s, Write returned %s", d, digest)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	got := Spec{Env: cf.Config.Env, Entrypoint: cf.Config.Entrypoint, Cmd: cf.Config.Cmd, User: cf.Config.User, WorkDir: cf.Config.WorkingDir}
	want := Spec{Env: spec.Env, Entrypoint: spec.Entrypoint, Cmd: spec.Cmd, User: spec.User, WorkDir: spec.WorkDir}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("config (-want,+got):\n%s", diff)
	}
	if cf.OS != "linux" || cf.Architecture != "amd64" {
		t.Errorf("platform %s/%s, want linux/amd64", cf.OS, cf.Architecture)
	}
	// The upper layer wins, as in any container runtime.
	tr := tar.NewReader(mutate.Extract(img))
	files := map[string]string{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(tr)
		files[h.Name] = string(b)
	}
	if files["bin/tool"] != "v2" || files["etc/passwd"] == "" {
		t.Errorf("flattened filesystem = %v, want bin/tool from the top layer and etc/passwd from the base", files)
	}
	if matches, _ := filepath.Glob(filepath.Join(dir, ".mkimage-*")); len(matches) > 0 {
		t.Errorf("temporary files left behind: %v", matches)
	}
}

func TestWriteRefusesBadInput(t *testing.T) {
	dir := t.TempDir()
	for name, spec := range map[string]Spec{
		"bad reference": {Ref: "Not A Ref", Layers: []string{filepath.Join(dir, "x.tar")}},
		"missing layer": {Ref: "localhost/x:1", Layers: []string{filepath.Join(dir, "missing.tar")}},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := Write(spec, filepath.Join(dir, "out.tar")); err == nil {
				t.Fatal("Write succeeded, want an error")
			}
			if _, err := os.Stat(filepath.Join(dir, "out.tar")); err == nil {
				t.Error("an output file was written")
			}
		})
	}
}
