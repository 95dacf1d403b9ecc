package main

import (
	"compress/gzip"
	"fmt"
	"os"
	"path/filepath"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// Spec describes one image: its layers (uncompressed tarballs, lowest
// first) and its configuration.
type Spec struct {
	Ref        string
	Layers     []string
	Env        []string
	Cmd        []string
	Entrypoint []string
	User       string
	WorkDir    string
}

// Build makes the image of spec on the empty base, for linux/amd64.
func Build(spec Spec) (v1.Image, error) {
	img := empty.Image
	for _, path := range spec.Layers {
		layer, err := tarball.LayerFromFile(path, tarball.WithCompressionLevel(gzip.BestSpeed))
		if err != nil {
			return nil, fmt.Errorf("layer %s: %w", path, err)
		}
		if img, err = mutate.AppendLayers(img, layer); err != nil {
			return nil, fmt.Errorf("layer %s: %w", path, err)
		}
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", "amd64"
	cf.Config = v1.Config{Env: spec.Env, Cmd: spec.Cmd, Entrypoint: spec.Entrypoint, User: spec.User, WorkingDir: spec.WorkDir}
	return mutate.ConfigFile(img, cf)
}

// Write builds the image of spec and writes it to out as a docker-archive
// tarball tagged spec.Ref (written to a temporary file first, so that an
// interrupted build never leaves a truncated archive behind). It returns
// the image's digest.
func Write(spec Spec, out string) (string, error) {
	tag, err := name.NewTag(spec.Ref, name.WeakValidation)
	if err != nil {
		return "", fmt.Errorf("image reference %q: %w", spec.Ref, err)
	}
	img, err := Build(spec)
	if err != nil {
		return "", err
	}
	tmp, err := os.CreateTemp(filepath.Dir(out), ".mkimage-*")
	if err != nil {
		return "", err
	}
	defer os.Remove(tmp.Name())
	if err := tarball.Write(tag, img, tmp); err != nil {
		tmp.Close()
		return "", fmt.Errorf("writing %s: %w", out, err)
	}
	if err := tmp.Close(); err != nil {
		return "", err
	}
	if err := os.Rename(tmp.Name(), out); err != nil {
		return "", err
	}
	d, err := img.Digest()
	return d.String(), err
}
