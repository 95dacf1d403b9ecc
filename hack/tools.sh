#!/usr/bin/env bash
# Builds the pinned tools into bin/ from source through the Go module proxy.
# Each binary is skipped when bin/ already holds it at the pinned version, so
# only the first run on a machine pays (about 11 minutes on 2 cores, cold).
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

want=()
for b in kube-apiserver kube-controller-manager kube-scheduler kubectl; do
  fresh "$b" "$KUBE_VERSION" || want+=("$b")
done
if ((${#want[@]})); then
  echo "tools: building ${want[*]} $KUBE_VERSION (cold: ~10 minutes)"
  pkgs=()
  for b in "${want[@]}"; do pkgs+=("k8s.io/kubernetes/cmd/$b"); done
  (cd "$ROOT/hack/tools" && go build -trimpath -ldflags "$KUBE_LDFLAGS" -o "$BIN/" "${pkgs[@]}")
  for b in "${want[@]}"; do stamp "$b" "$KUBE_VERSION"; done
fi

# etcd comes from the same tools module: k8s.io/kubernetes pins its version.
ETCD_VERSION=$(cd "$ROOT/hack/tools" && go list -m -f '{{.Version}}' go.etcd.io/etcd/server/v3)
if ! fresh etcd "$ETCD_VERSION"; then
  echo "tools: building etcd $ETCD_VERSION"
  (cd "$ROOT/hack/tools" && go build -trimpath -ldflags "-s -w" -o "$BIN/etcd" go.etcd.io/etcd/server/v3)
  stamp etcd "$ETCD_VERSION"
fi

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
