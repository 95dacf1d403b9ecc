//go:build tools

// Package tools pins the control-plane binaries the local cluster and the
// integration tests run: they are built from source through the Go module
// proxy, never downloaded prebuilt.
package tools

import (
	_ "go.etcd.io/etcd/server/v3"
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
