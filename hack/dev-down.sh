#!/usr/bin/env bash
# Tears down what hack/dev-up.sh brought up: stops the manager and the
# provisioner (by their pidfiles), deletes the kwokctl cluster "sluice"
# (stopping its etcd, apiserver, controller-manager, scheduler and kwok
# processes) and removes the state directory .kwok/ with the volumes in it.
# Harmless when nothing is up.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=$ROOT/bin
export KWOK_WORKDIR=${SLUICE_STATE_DIR:-$ROOT/.kwok}
export KWOK_KUBECTL_BINARY=$BIN/kubectl
CLUSTER=${SLUICE_CLUSTER:-sluice}

log() { printf 'dev-down: %s\n' "$*" >&2; }

if [[ ! -d $KWOK_WORKDIR ]]; then
	log "nothing to do ($KWOK_WORKDIR does not exist)"
	exit 0
fi

# Wait for a dev-up in progress rather than pulling the floor from under it.
exec 9>"$KWOK_WORKDIR/.dev-up.lock"
flock -w 180 9 || log "lock still held after 180s; going on"

running() {
	local pid
	[[ -s $1 ]] || return 1
	pid=$(<"$1")
	[[ $pid =~ ^[0-9]+$ && -r /proc/$pid/cmdline ]] || return 1
	[[ -z ${2:-} ]] && return 0
	tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$2"
}

# stop PIDFILE [MATCH]: TERM the process (if its command line contains
# MATCH), KILL it after 10 s.
stop() {
	local pidfile=$1 match=${2:-} pid
	if running "$pidfile" "$match"; then
		pid=$(<"$pidfile")
		log "stopping $(basename "$pidfile" .pid) (pid $pid)"
		kill "$pid" 2>/dev/null || true
		for _ in $(seq 50); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.2
		done
		kill -9 "$pid" 2>/dev/null || true
	fi
	rm -f "$pidfile"
}

# The manager's binary may have been overridden (SLUICE_WEBHOOK_BIN): know it
# by the --cert-dir dev-up gave it.
stop "$KWOK_WORKDIR/sluice-webhook.pid" "--cert-dir $KWOK_WORKDIR/certs"
stop "$KWOK_WORKDIR/sluice-provisioner.pid" sluice-provisioner

if [[ -x $BIN/kwokctl ]] && "$BIN/kwokctl" get clusters 2>/dev/null | grep -qx "$CLUSTER"; then
	log "deleting cluster $CLUSTER"
	"$BIN/kwokctl" --name "$CLUSTER" delete cluster >&2 || log "kwokctl delete cluster failed; stopping its processes by pidfile"
fi
# Whatever kwokctl could not stop (no kwokctl, broken cluster config).
for pidfile in "$KWOK_WORKDIR/clusters/$CLUSTER"/pids/*.pid; do
	[[ -e $pidfile ]] && stop "$pidfile"
done

rm -rf "$KWOK_WORKDIR"
log "removed $KWOK_WORKDIR"
