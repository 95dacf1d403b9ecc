// Command krew packages kubectl-sluice for krew: an archive per platform
// and the plugin manifest that names them, rendered from sluice.yaml.tmpl.
// The archives' address is given at release time (-base); none is kept in
// the repository.
//
//	go run ./hack/krew -version v0.3.0 -base "$RELEASE_URL" -out bin/dist
package main

import (
	"archive/tar"
	"compress/gzip"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"text/template"
	"time"
)

//go:embed sluice.yaml.tmpl
var manifestTemplate string

// Platform is one archive of the plugin.
type Platform struct {
	OS, Arch, URI, SHA256, Bin string
}

// Manifest is what the template renders.
type Manifest struct {
	Version, Homepage string
	Platforms         []Platform
}

var platforms = [][2]string{{"linux", "amd64"}, {"linux", "arm64"}, {"darwin", "amd64"}, {"darwin", "arm64"}, {"windows", "amd64"}}

func main() {
	version := flag.String("version", "", "the release's version, v-prefixed semver (required)")
	base := flag.String("base", "", "where the release's archives are downloaded from (required)")
	homepage := flag.String("homepage", "", "the project's home page (default: -base)")
	out := flag.String("out", "bin/dist", "where the archives and sluice.yaml are written")
	flag.Parse()
	if *version == "" || *base == "" || !strings.HasPrefix(*version, "v") {
		fmt.Fprintln(os.Stderr, "krew: -version vX.Y.Z and -base are required")
		os.Exit(2)
	}
	if *homepage == "" {
		*homepage = *base
	}
	if err := run(*version, strings.TrimSuffix(*base, "/"), *homepage, *out); err != nil {
		fmt.Fprintln(os.Stderr, "krew:", err)
		os.Exit(1)
	}
}

func run(version, base, homepage, out string) error {
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	m := Manifest{Version: version, Homepage: homepage}
	for _, p := range platforms {
		bin := "kubectl-sluice"
		if p[0] == "windows" {
			bin += ".exe"
		}
		exe := filepath.Join(out, p[0]+"-"+p[1], bin)
		build := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w -X main.version="+version, "-o", exe, "./cmd/kubectl-sluice")
		build.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS="+p[0], "GOARCH="+p[1])
		build.Stderr = os.Stderr
		if err := build.Run(); err != nil {
			return fmt.Errorf("building for %s/%s: %w", p[0], p[1], err)
		}
		name := fmt.Sprintf("kubectl-sluice_%s_%s_%s.tar.gz", version, p[0], p[1])
		sum, err := archive(filepath.Join(out, name), exe, bin)
		if err != nil {
			return err
		}
		m.Platforms = append(m.Platforms, Platform{OS: p[0], Arch: p[1], URI: base + "/" + name, SHA256: sum, Bin: bin})
	}
	f, err := os.Create(filepath.Join(out, "sluice.yaml"))
	if err != nil {
		return err
	}
	defer f.Close()
	return render(f, m)
}

// render writes the plugin manifest.
func render(w io.Writer, m Manifest) error {
	t, err := template.New("sluice.yaml").Option("missingkey=error").Parse(manifestTemplate)
	if err != nil {
		return err
	}
	return t.Execute(w, m)
}

// archive writes a tar.gz holding the file at path as name, and returns its
// SHA-256.
func archive(dst, path, name string) (string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	f, err := os.Create(dst)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	gz := gzip.NewWriter(io.MultiWriter(f, h))
	tw := tar.NewWriter(gz)
	if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o755, Size: int64(len(data)), ModTime: time.Unix(0, 0)}); err != nil {
		return "", err
	}
	if _, err := tw.Write(data); err != nil {
		return "", err
	}
	if err := tw.Close(); err != nil {
		return "", err
	}
	if err := gz.Close(); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
