package main

import (
	"archive/tar"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// TestManifest: the rendered manifest is a krew Plugin naming each
// platform's archive, its checksum and the binary in it.
func TestManifest(t *testing.T) {
	dir := t.TempDir()
	exe := filepath.Join(dir, "kubectl-sluice")
	if err := os.WriteFile(exe, []byte("#!/bin/sh\necho sluice\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	sum, err := archive(filepath.Join(dir, "a.tar.gz"), exe, "kubectl-sluice")
	if err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(filepath.Join(dir, "a.tar.gz"))
	if h := sha256.Sum256(data); hex.EncodeToString(h[:]) != sum {
		t.Errorf("archive's checksum %s, but the file hashes to %x", sum, h)
	}
	gz, err := gzip.NewReader(strings.NewReader(string(data)))
	if err != nil {
		t.Fatal(err)
	}
	hdr, err := tar.NewReader(gz).Next()
	if err != nil || hdr.Name != "kubectl-sluice" || hdr.Mode&0o111 == 0 {
		t.Fatalf("archive entry %+v (%v), want an executable kubectl-sluice", hdr, err)
	}

	var b strings.Builder
	m := Manifest{Version: "v1.2.3", Homepage: "HOMEPAGE", Platforms: []Platform{
		{OS: "linux", Arch: "amd64", URI: "RELEASE/a.tar.gz", SHA256: sum, Bin: "kubectl-sluice"},
		{OS: "windows", Arch: "amd64", URI: "RELEASE/b.tar.gz", SHA256: sum, Bin: "kubectl-sluice.exe"},
	}}
	if err := render(&b, m); err != nil {
		t.Fatal(err)
	}
	var plugin struct {
		APIVersion, Kind string
		Metadata         struct{ Name string }
		Spec             struct {
			Version, Homepage, ShortDescription string
			Platforms                           []struct {
				Selector         struct{ MatchLabels map[string]string }
				URI, SHA256, Bin string
			}
		}
	}
	if err := yaml.Unmarshal([]byte(b.String()), &plugin); err != nil {
		t.Fatalf("manifest is not YAML: %v\n%s", err, b.String())
	}
	if plugin.Kind != "Plugin" || plugin.APIVersion != "krew.googlecontainertools.github.com/v1alpha2" || plugin.Metadata.Name != "sluice" ||
		plugin.Spec.Version != "v1.2.3" || plugin.Spec.ShortDescription == "" || len(plugin.Spec.Platforms) != 2 {
		t.Fatalf("manifest:\n%s", b.String())
	}
	p := plugin.Spec.Platforms[1]
	if p.Selector.MatchLabels["os"] != "windows" || p.URI != "RELEASE/b.tar.gz" || p.SHA256 != sum || p.Bin != "kubectl-sluice.exe" {
		t.Errorf("windows platform %+v", p)
	}
}
