// Command mkimage packs root filesystem tarballs into an OCI image on the
// empty base and writes it as a docker-archive tarball, which
// `ctr images import` loads into containerd. No container engine and no
// registry are involved: this is how the local cluster's real node gets its
// images (hack/images.sh).
//
//	mkimage -layer rootfs.tar -ref localhost/sluice/busybox:dev -o busybox.tar \
//	        -env PATH=/bin -cmd /bin/sh
package main

import (
	"flag"
	"fmt"
	"os"
	"strings"
)

// list is a repeatable string flag.
type list []string

func (l *list) String() string     { return strings.Join(*l, ",") }
func (l *list) Set(s string) error { *l = append(*l, s); return nil }

func main() {
	var spec Spec
	var layers, env, cmd, entrypoint list
	flag.Var(&layers, "layer", "uncompressed tarball of a layer, lowest first (repeatable)")
	flag.StringVar(&spec.Ref, "ref", "", "image reference, e.g. localhost/sluice/busybox:dev")
	out := flag.String("o", "", "docker-archive tarball to write")
	flag.Var(&env, "env", "KEY=VALUE of the image's environment (repeatable)")
	flag.Var(&cmd, "cmd", "element of the image's Cmd (repeatable)")
	flag.Var(&entrypoint, "entrypoint", "element of the image's Entrypoint (repeatable)")
	flag.StringVar(&spec.User, "user", "", "user the image runs as, e.g. 65532:65532")
	flag.StringVar(&spec.WorkDir, "workdir", "/", "working directory")
	flag.Parse()
	if len(layers) == 0 || spec.Ref == "" || *out == "" {
		fmt.Fprintln(os.Stderr, "mkimage: -layer, -ref and -o are required")
		flag.Usage()
		os.Exit(2)
	}
	spec.Layers, spec.Env, spec.Cmd, spec.Entrypoint = layers, env, cmd, entrypoint
	digest, err := Write(spec, *out)
	if err != nil {
		fmt.Fprintln(os.Stderr, "mkimage:", err)
		os.Exit(1)
	}
	fmt.Printf("%s %s\n", spec.Ref, digest)
}
