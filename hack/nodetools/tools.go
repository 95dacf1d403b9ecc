//go:build tools

// Package nodetools pins what the local cluster's real node runs besides the
// kubelet: containerd, its runc shim and ctr, and the CNI plugins. They are
// built from source through the Go module proxy (hack/node-tools.sh); runc
// comes from Debian. A module of its own: containerd's dependencies do not
// fit the Kubernetes version sluice's module pins.
package nodetools

import (
	_ "github.com/containerd/containerd/v2/cmd/containerd"
	_ "github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2"
	_ "github.com/containerd/containerd/v2/cmd/ctr"
	_ "github.com/containernetworking/plugins/plugins/ipam/host-local"
	_ "github.com/containernetworking/plugins/plugins/main/bridge"
	_ "github.com/containernetworking/plugins/plugins/main/loopback"
)
