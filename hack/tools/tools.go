//go:build tools

// Package tools pins the Kubernetes binaries the local cluster and the
// integration tests run: they are built from source through the Go module
// proxy, never downloaded prebuilt. They live in sluice's own module so that
// the control plane, the kubelet and sluice's scheduler (cmd/scheduler)
// share one module graph: the kube packages they have in common are
// compiled once.
package tools

import (
	_ "go.etcd.io/etcd/server/v3"
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kubectl"
	_ "k8s.io/kubernetes/cmd/kubelet"
)
