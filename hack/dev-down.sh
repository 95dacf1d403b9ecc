#!/usr/bin/env bash
# Tears down what hack/dev-up.sh brought up: stops the manager and the
# provisioner (by their pidfiles), stops the real node and puts the host
# back as it found it (hack/realnode.sh), deletes the kwokctl cluster "sluice"
# (stopping its etcd, apiserver, controller-manager, scheduler and kwok
# processes) and removes the state directory .kwok/ with the volumes in it.
# Harmless when nothing is up.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=$ROOT/bin
export KWOK_WORKDIR=${SLUICE_STATE_DIR:-$ROOT/.kwok}
export KWOK_KUBECTL_BINARY=$BIN/kubectl
CLUSTER=${SLUICE_CLUSTER:-sluice}
KUBECONFIG_FILE=$KWOK_WORKDIR/kubeconfig

log() { printf 'dev-down: %s\n' "$*" >&2; }
die() {
	printf 'dev-down: error: %s\n' "$*" >&2
	exit 1
}
k() { "$BIN/kubectl" --kubeconfig "$KUBECONFIG_FILE" "$@"; }

if [[ ! -d $KWOK_WORKDIR ]]; then
	log "nothing to do ($KWOK_WORKDIR does not exist)"
	exit 0
fi

# Wait for a dev-up in progress rather than pulling the floor from under it.
exec 9>"$KWOK_WORKDIR/.dev-up.lock"
flock -w 180 9 || log "lock still held after 180s; going on"

# shellcheck source=hack/pidfile.sh
source "$(dirname "$0")/pidfile.sh"
# shellcheck source=hack/realnode.sh
source "$(dirname "$0")/realnode.sh"

# A manager process of an earlier dev-up (sluice now runs as pods, which go
# with the node), known by the --cert-dir that dev-up gave it.
stop_pidfile "$KWOK_WORKDIR/sluice-webhook.pid" "--cert-dir $KWOK_WORKDIR/certs"
stop_pidfile "$KWOK_WORKDIR/sluice-provisioner.pid" sluice-provisioner
stop_pidfile "$KWOK_WORKDIR/local-path-provisioner.pid" "--kubeconfig $KUBECONFIG_FILE"
realnode_down

if [[ -x $BIN/kwokctl ]] && "$BIN/kwokctl" get clusters 2>/dev/null | grep -qx "$CLUSTER"; then
	log "deleting cluster $CLUSTER"
	"$BIN/kwokctl" --name "$CLUSTER" delete cluster >&2 || log "kwokctl delete cluster failed; stopping its processes by pidfile"
fi
# Whatever kwokctl could not stop (no kwokctl, broken cluster config).
for pidfile in "$KWOK_WORKDIR/clusters/$CLUSTER"/pids/*.pid; do
	[[ -e $pidfile ]] && stop_pidfile "$pidfile"
done

rm -rf "$KWOK_WORKDIR"
log "removed $KWOK_WORKDIR"
