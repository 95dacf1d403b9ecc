#!/usr/bin/env bash
# Builds bin/sluice-scheduler (./cmd/scheduler: kube-scheduler with the
# SluiceGPU plugin) stamped with the pinned Kubernetes version, like the
# control plane of hack/tools.sh. Skipped when the binary is newer than
# every source it depends on in this module and go.mod/go.sum; FORCE=1
# rebuilds. It is built in the module graph and build configuration of the
# kube tools (hack/kube-version.sh), so after hack/tools.sh it mostly links
# packages already compiled: under a minute.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${BIN:-$ROOT/bin}
# shellcheck source=hack/kube-version.sh
source "$ROOT/hack/kube-version.sh"
OUT=$BIN/sluice-scheduler

if [[ ${FORCE:-0} != 1 && -x $OUT && "$(cat "$BIN/.sluice-scheduler.version" 2>/dev/null)" == "$KUBE_BUILD" ]] &&
	[[ -z $(find "$ROOT/cmd/scheduler" "$ROOT/scheduler-plugin" "$ROOT/annotations" "$ROOT/go.mod" "$ROOT/go.sum" \
		-name '*.go' -newer "$OUT" -o -name 'go.*' -newer "$OUT" 2>/dev/null | head -n1) ]]; then
	exit 0
fi
mkdir -p "$BIN"
echo "build-scheduler: building bin/sluice-scheduler ($KUBE_VERSION)" >&2
(cd "$ROOT" && CGO_ENABLED=0 go build -trimpath -ldflags "$KUBE_LDFLAGS" -o "$OUT" ./cmd/scheduler)
echo "$KUBE_BUILD" >"$BIN/.sluice-scheduler.version"
