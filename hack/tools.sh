#!/usr/bin/env bash
# Builds the pinned tools into bin/ from source through the Go module proxy.
# Each binary is skipped when bin/ already holds it at the pinned version, so
# only the first run on a machine pays (about 20 minutes on 2 cores, cold).
# Two groups build side by side, since neither keeps both cores busy on its
# own (long single-threaded links, narrow spots in the package graph): the
# kube binaries and etcd, and everything else.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${BIN:-$ROOT/bin}
# KUBE_VERSION and KUBE_LDFLAGS (the version stamp, shared with hack/build-scheduler.sh).
# shellcheck source=hack/kube-version.sh
source "$ROOT/hack/kube-version.sh"
KWOK_VERSION=v0.8.0
HELM_VERSION=v3.22.0
mkdir -p "$BIN"

# fresh NAME VERSION: true when bin/NAME exists and was built at VERSION.
fresh() { [[ -x $BIN/$1 && "$(cat "$BIN/.$1.version" 2>/dev/null)" == "$2" ]]; }
stamp() { echo "$2" >"$BIN/.$1.version"; }

kube_tools() {
  # The kube binaries are built in sluice's own module (hack/tools/tools.go
  # pins them), the same module graph as bin/sluice-scheduler: the packages
  # they share are compiled once. bin/kube-scheduler is not built: the local
  # cluster runs bin/sluice-scheduler, kube-scheduler with one more plugin.
  want=()
  for b in kube-apiserver kube-controller-manager kubectl kubelet; do
    fresh "$b" "$KUBE_BUILD" || want+=("$b")
  done
  if ((${#want[@]})); then
    echo "tools: building ${want[*]} $KUBE_VERSION (cold: ~15 minutes)"
    pkgs=()
    for b in "${want[@]}"; do pkgs+=("k8s.io/kubernetes/cmd/$b"); done
    (cd "$ROOT" && CGO_ENABLED=0 go build -trimpath -ldflags "$KUBE_LDFLAGS" -o "$BIN/" "${pkgs[@]}")
    for b in "${want[@]}"; do stamp "$b" "$KUBE_BUILD"; done
  fi

  # etcd comes from the same module: k8s.io/kubernetes pins its version.
  ETCD_VERSION=$(cd "$ROOT" && go list -m -f '{{.Version}}' go.etcd.io/etcd/server/v3)
  if ! fresh etcd "$ETCD_VERSION+static"; then
    echo "tools: building etcd $ETCD_VERSION"
    (cd "$ROOT" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$BIN/etcd" go.etcd.io/etcd/server/v3)
    stamp etcd "$ETCD_VERSION+static"
  fi
}

other_tools() {
  for b in kwok kwokctl; do
    if ! fresh "$b" "$KWOK_VERSION"; then
      echo "tools: building $b $KWOK_VERSION"
      GOBIN=$BIN go install -trimpath -ldflags "-s -w" "sigs.k8s.io/kwok/cmd/$b@$KWOK_VERSION"
      stamp "$b" "$KWOK_VERSION"
    fi
  done

  # helm's Makefile stamps the Kubernetes version its client libraries speak
  # (v1.37 for helm v3.22); without it `helm template` and `helm lint` assume
  # v1.20 and refuse charts that need newer APIs.
  HELM_K8S_MINOR=37
  if ! fresh helm "$HELM_VERSION+k8s1.$HELM_K8S_MINOR"; then
    echo "tools: building helm $HELM_VERSION"
    helm_ldflags="-s -w"
    for pkg in helm.sh/helm/v3/pkg/chartutil helm.sh/helm/v3/pkg/lint/rules; do
      helm_ldflags+=" -X $pkg.k8sVersionMajor=1 -X $pkg.k8sVersionMinor=$HELM_K8S_MINOR"
    done
    GOBIN=$BIN go install -trimpath -ldflags "$helm_ldflags" "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
    stamp helm "$HELM_VERSION+k8s1.$HELM_K8S_MINOR"
  fi

  # The real node: containerd, its runc shim and ctr, and the CNI plugins, from
  # their own module (hack/nodetools), versions read from its go.mod.
  NODETOOLS=$ROOT/hack/nodetools
  ver() { (cd "$NODETOOLS" && go list -m -f '{{.Version}}' "$1"); }
  CONTAINERD_VERSION=$(ver github.com/containerd/containerd/v2)
  CNI_VERSION=$(ver github.com/containernetworking/plugins)
  CV=github.com/containerd/containerd/v2/version
  CONTAINERD_LDFLAGS="-s -w -X $CV.Version=$CONTAINERD_VERSION -X $CV.Revision=sluice-$CONTAINERD_VERSION"
  if ! fresh containerd "$CONTAINERD_VERSION" || ! fresh ctr "$CONTAINERD_VERSION"; then
    echo "tools: building containerd and ctr $CONTAINERD_VERSION (cold: ~5 minutes)"
    # btrfs needs cgo and its headers; devmapper and zfs snapshotters are not used.
    (cd "$NODETOOLS" && go build -trimpath -tags 'no_btrfs no_devmapper no_zfs urfave_cli_no_docs' \
      -ldflags "$CONTAINERD_LDFLAGS" -o "$BIN/" \
      github.com/containerd/containerd/v2/cmd/containerd github.com/containerd/containerd/v2/cmd/ctr)
    stamp containerd "$CONTAINERD_VERSION"
    stamp ctr "$CONTAINERD_VERSION"
  fi
  if ! fresh containerd-shim-runc-v2 "$CONTAINERD_VERSION"; then
    echo "tools: building containerd-shim-runc-v2 $CONTAINERD_VERSION"
    # Static and without grpc, as containerd's own Makefile builds it.
    (cd "$NODETOOLS" && CGO_ENABLED=0 go build -trimpath -tags 'no_grpc urfave_cli_no_docs' \
      -ldflags "$CONTAINERD_LDFLAGS" -o "$BIN/containerd-shim-runc-v2" \
      github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2)
    stamp containerd-shim-runc-v2 "$CONTAINERD_VERSION"
  fi
  mkdir -p "$BIN/cni" "$BIN/.cni"
  if [[ ! -x $BIN/cni/host-local ]] || ! fresh cni/bridge "$CNI_VERSION"; then
    echo "tools: building CNI plugins $CNI_VERSION"
    (cd "$NODETOOLS" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$BIN/cni/" \
      github.com/containernetworking/plugins/plugins/main/bridge \
      github.com/containernetworking/plugins/plugins/main/loopback \
      github.com/containernetworking/plugins/plugins/ipam/host-local)
    stamp cni/bridge "$CNI_VERSION"
  fi

  # kind's storage provisioner: the local cluster's ReadWriteOnce class.
  LOCAL_PATH_VERSION=v0.0.30
  if ! fresh local-path-provisioner "$LOCAL_PATH_VERSION"; then
    echo "tools: building local-path-provisioner $LOCAL_PATH_VERSION"
    GOBIN=$BIN CGO_ENABLED=0 go install -trimpath -ldflags "-s -w" \
      "github.com/rancher/local-path-provisioner@$LOCAL_PATH_VERSION"
    stamp local-path-provisioner "$LOCAL_PATH_VERSION"
  fi

  # The pause binary of every pod sandbox: Kubernetes' own pause.c, static.
  if ! fresh pause "$KUBE_VERSION"; then
    echo "tools: building pause ($KUBE_VERSION's build/pause)"
    src=$(cd "$ROOT" && go list -m -f '{{.Dir}}' k8s.io/kubernetes)/build/pause/linux/pause.c
    gcc -Os -Wall -Werror -static -DVERSION="$KUBE_VERSION-sluice" -o "$BIN/pause" "$src"
    strip "$BIN/pause"
    stamp pause "$KUBE_VERSION"
  fi
}

(kube_tools 2>&1 | sed -u 's/^/[kube] /') &
kube=$!
(other_tools 2>&1 | sed -u 's/^/[tools] /') &
other=$!
status=0
wait "$kube" || status=$?
wait "$other" || status=$?
exit "$status"
