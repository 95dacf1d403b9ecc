#!/usr/bin/env bash
# Brings up the sluice development cluster on this machine, without Docker:
#
#   - a kwokctl cluster "sluice" (runtime binary): the real etcd,
#     kube-apiserver and kube-controller-manager from bin/, and as its
#     kube-scheduler bin/sluice-scheduler (./cmd/scheduler, built by
#     hack/build-scheduler.sh when missing or stale) with
#     manifests/scheduler-config.yaml: profiles default-scheduler and
#     sluice-scheduler (the SluiceGPU plugin); kwok simulates nodes and pods
#     (hack/kwok/stages.yaml);
#   - one real node, sluice-real-1 (hack/realnode.sh): containerd, runc and
#     a kubelet on this machine running steps in real containers, from the
#     images hack/images.sh built, with 2 simulated GPUs (hack/gpu-plugin);
#   - five simulated nodes (hack/kwok/nodes.yaml): two CPU nodes, two nodes
#     with 4 Tesla T4 each, one with 8 A100. They carry the taint
#     sim.sluice.dev/node: only pods annotated sim.sluice.dev/* run there
#     (hack/kwok/simulated-steps.yaml, a MutatingAdmissionPolicy, gives them
#     the toleration and node selector); every other pod runs for real;
#   - the default StorageClass local-path (ReadWriteOnce, as in kind) and
#     kind's provisioner (bin/local-path-provisioner) as a process
#     (hack/kwok/local-path.yaml);
#   - the StorageClass sluice-local and its provisioner (bin/sluice-provisioner,
#     built from hack/provisioner) as a process: directories of this machine,
#     shared by every node (ReadWriteMany, like a shared file system);
#   - the sluice manager (bin/sluice-webhook: admission webhooks and the
#     dependency controller, run with --scheduler-name sluice-scheduler so
#     sluice steps use the GPU-aware profile) as a process, and its webhook registration
#     (hack/webhook-config.yaml.tmpl) with a CA from hack/certgen.
#
# State lives in .kwok/ (KWOK_WORKDIR): kubeconfig, certs/, volumes/, the
# pidfiles and logs of the processes (*.pid, *.log), and kwokctl's own
# clusters/sluice/ (component logs under clusters/sluice/logs/).
#
# Running it again is harmless and repairs what is not running: a stopped
# cluster or component is started again, a dead (or rebuilt) provisioner or
# manager restarted, nodes and registrations re-applied.
#
# Progress goes to stderr; the last line, on stdout, is
#   export KUBECONFIG=/abs/path/.kwok/kubeconfig
# so `eval "$(hack/dev-up.sh)"` points the shell at the cluster.
#
# Needs the pinned tools in bin/ (bash hack/tools.sh): etcd kube-apiserver
# kube-controller-manager kwok kwokctl kubectl, and for the real node kubelet
# containerd ctr containerd-shim-runc-v2 cni/ sluice-gpu-plugin and
# bin/images/ (hack/images.sh); runc from Debian. Run as root. The scheduler is only read
# when the cluster is created: after changing it, run dev-down and dev-up.
#
# Environment:
#   SLUICE_WEBHOOK_BIN  manager binary (default bin/sluice-webhook; built from
#                       ./cmd/webhook when that default is missing)
#   SKIP_MANAGER=1      start no manager and register no webhooks (e2e tests
#                       run their own); a manager and a registration left by
#                       an earlier dev-up are stopped and removed
#   SLUICE_SCHEDULER_NAME  schedulerName the manager gives sluice steps
#                       (default sluice-scheduler; empty: leave pods alone)
#   SLUICE_SCHEDULER_CONFIG  KubeSchedulerConfiguration of the cluster's
#                       scheduler (default manifests/scheduler-config.yaml;
#                       the e2e tests pass one without the sluice profile and
#                       run the chart's scheduler themselves)
#   SLUICE_CLUSTER      kwokctl cluster name (default sluice; the e2e tests use sluice-e2e)
#   SLUICE_STATE_DIR    state directory (default .kwok; the e2e tests use .kwok-e2e)
#   SLUICE_WEBHOOK_PORT (19443), SLUICE_METRICS_ADDR (127.0.0.1:18080),
#   SLUICE_HEALTH_ADDR (127.0.0.1:18081)
#   SLUICE_PPROF_ADDR   the manager's /debug/pprof address, for profiling
#                       (default 0: off; e.g. 127.0.0.1:18082)
#   SLUICE_KCM_QPS      kube-controller-manager's --kube-api-qps when the
#                       cluster is created (default 500; burst twice that)
#
# hack/dev-down.sh removes everything again.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=$ROOT/bin
HACK=$ROOT/hack
export KWOK_WORKDIR=${SLUICE_STATE_DIR:-$ROOT/.kwok}
# kwokctl has no --kubectl-binary flag; it reads this variable (it runs
# kubectl to see whether the apiserver serves, and would download one).
export KWOK_KUBECTL_BINARY=$BIN/kubectl

CLUSTER=${SLUICE_CLUSTER:-sluice}
KUBECONFIG_FILE=$KWOK_WORKDIR/kubeconfig
CERT_DIR=$KWOK_WORKDIR/certs
VOLUME_ROOT=$KWOK_WORKDIR/volumes

SKIP_MANAGER=${SKIP_MANAGER:-0}
SLUICE_WEBHOOK_BIN=${SLUICE_WEBHOOK_BIN:-}
SCHEDULER_NAME=${SLUICE_SCHEDULER_NAME-sluice-scheduler}
SCHEDULER_CONFIG=${SLUICE_SCHEDULER_CONFIG:-$ROOT/manifests/scheduler-config.yaml}
WEBHOOK_HOST=127.0.0.1
WEBHOOK_PORT=${SLUICE_WEBHOOK_PORT:-19443}
METRICS_ADDR=${SLUICE_METRICS_ADDR:-127.0.0.1:18080}
HEALTH_ADDR=${SLUICE_HEALTH_ADDR:-127.0.0.1:18081}
PPROF_ADDR=${SLUICE_PPROF_ADDR:-0}
KCM_QPS=${SLUICE_KCM_QPS:-500}

LOCAL_PATH_PID=$KWOK_WORKDIR/local-path-provisioner.pid
LOCAL_PATH_LOG=$KWOK_WORKDIR/local-path-provisioner.log
PROVISIONER_PID=$KWOK_WORKDIR/sluice-provisioner.pid
PROVISIONER_LOG=$KWOK_WORKDIR/sluice-provisioner.log
MANAGER_PID=$KWOK_WORKDIR/sluice-webhook.pid
MANAGER_LOG=$KWOK_WORKDIR/sluice-webhook.log
WEBHOOK_CONFIG=$KWOK_WORKDIR/webhook-config.yaml
# What the command line of the manager started here always contains, whatever
# SLUICE_WEBHOOK_BIN is: a pid recycled by another process never matches.
MANAGER_MATCH="--cert-dir $CERT_DIR"

START=$SECONDS
log() { printf 'dev-up: %s\n' "$*" >&2; }
die() {
	printf 'dev-up: error: %s\n' "$*" >&2
	exit 1
}
k() { "$BIN/kubectl" --kubeconfig "$KUBECONFIG_FILE" "$@"; }

# wait_for SECONDS WHAT CMD...: run CMD every 0.2 s until it succeeds.
wait_for() {
	local timeout=$1 what=$2
	shift 2
	local deadline=$((SECONDS + timeout))
	until "$@" >/dev/null 2>&1; do
		((SECONDS < deadline)) || die "timed out after ${timeout}s waiting for $what"
		sleep 0.2
	done
}

# shellcheck source=hack/pidfile.sh
source "$(dirname "$0")/pidfile.sh"
# shellcheck source=hack/realnode.sh
source "$(dirname "$0")/realnode.sh"

# rebuilt PIDFILE: true when the running process's executable was replaced
# on disk since it started (go build writes a new file).
rebuilt() {
	local exe
	exe=$(readlink "/proc/$(<"$1")/exe" 2>/dev/null) || return 1
	[[ $exe == *" (deleted)" ]]
}

# start_bg PIDFILE LOGFILE CMD...: run CMD detached from this shell (own
# session, so it outlives the terminal and dev-up itself).
start_bg() {
	local pidfile=$1 logfile=$2
	shift 2
	printf '==== %s dev-up: %s\n' "$(date -Iseconds)" "$*" >>"$logfile"
	# 9>&-: the child must not inherit (and so hold forever) dev-up's lock.
	setsid nohup "$@" >>"$logfile" 2>&1 </dev/null 9>&- &
	echo $! >"$pidfile"
}

# build_go NAME PKG: go build bin/NAME from PKG when missing or older than
# the package's sources.
build_go() {
	local name=$1 pkg=$2
	if [[ -x $BIN/$name && -z $(find "$ROOT/$pkg" -maxdepth 1 -name '*.go' -newer "$BIN/$name" -print -quit) ]]; then
		return
	fi
	log "building bin/$name from ./$pkg"
	(cd "$ROOT" && CGO_ENABLED=0 go build -trimpath -o "$BIN/$name" "./$pkg")
}

# The simulated nodes of hack/kwok/nodes.yaml.
mapfile -t NODES < <(sed -n 's/^  name: \(.*\)$/\1/p' "$HACK/kwok/nodes.yaml")
# kwok renews node Leases every quarter of this.
NODE_LEASE_SECONDS=12

# leases_renewed_since EPOCH: every node's Lease was renewed after EPOCH.
leases_renewed_since() {
	local t n=0
	while read -r t; do
		[[ -n $t ]] || continue
		(($(date -u -d "$t" +%s) >= $1)) || return 1
		n=$((n + 1))
	done < <(k -n kube-node-lease get lease "${NODES[@]}" -o jsonpath='{range .items[*]}{.spec.renewTime}{"\n"}{end}' 2>/dev/null)
	((n == ${#NODES[@]}))
}

apiserver_ready() { k --request-timeout=5s get --raw=/readyz; }

# components_up: every process kwokctl started for the cluster (etcd,
# kube-apiserver, kube-controller-manager, kube-scheduler, kwok-controller)
# is alive and not a zombie.
components_up() {
	local f pid state
	for f in "$KWOK_WORKDIR/clusters/$CLUSTER"/pids/*.pid; do
		[[ -e $f ]] || return 1
		pid=$(<"$f")
		state=$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null) || return 1
		[[ -n $state && $state != Z && $state != X ]] || return 1
	done
}

# ---------------------------------------------------------------- checks
missing=()
for tool in etcd kube-apiserver kube-controller-manager kwok kwokctl kubectl local-path-provisioner; do
	[[ -x $BIN/$tool ]] || missing+=("$tool")
done
((${#missing[@]} == 0)) || die "missing in bin/: ${missing[*]}; build them with: bash hack/tools.sh"

mkdir -p "$KWOK_WORKDIR"
# One dev-up (or dev-down) at a time. Every long-lived process started
# below gets fd 9 closed (9>&-), or it would hold the lock forever.
exec 9>"$KWOK_WORKDIR/.dev-up.lock"
flock -w 180 9 || die "another dev-up is running (lock $KWOK_WORKDIR/.dev-up.lock)"

build_go sluice-provisioner hack/provisioner
build_go sluice-certgen hack/certgen
build_go sluice-gpu-plugin hack/gpu-plugin
bash "$HACK/images.sh" 9>&-
realnode_check
# Version-stamped like the control plane; skipped when up to date.
bash "$HACK/build-scheduler.sh" 9>&-
if [[ $SKIP_MANAGER != 1 ]]; then
	if [[ -z $SLUICE_WEBHOOK_BIN ]]; then
		SLUICE_WEBHOOK_BIN=$BIN/sluice-webhook
		if [[ ! -x $SLUICE_WEBHOOK_BIN ]]; then
			ls "$ROOT"/cmd/webhook/*.go >/dev/null 2>&1 ||
				die "bin/sluice-webhook is missing and ./cmd/webhook has no source yet; run with SKIP_MANAGER=1"
			build_go sluice-webhook cmd/webhook
		fi
	fi
	[[ -x $SLUICE_WEBHOOK_BIN ]] || die "manager binary $SLUICE_WEBHOOK_BIN not found (or run with SKIP_MANAGER=1)"
fi

# --------------------------------------------------------------- cluster
fresh_cluster=0
kwok_restarted=0
KWOK_PIDFILE=$KWOK_WORKDIR/clusters/$CLUSTER/pids/kwok-controller.pid
if "$BIN/kwokctl" get clusters 2>/dev/null | grep -qx "$CLUSTER"; then
	kwok_pid_before=$(cat "$KWOK_PIDFILE" 2>/dev/null || true)
	if apiserver_ready >/dev/null 2>&1; then
		log "cluster $CLUSTER is up; making sure every component runs"
	else
		log "cluster $CLUSTER exists but is not serving; starting it"
	fi
	# kwokctl starts only the components that are not running. It takes a
	# zombie (a component that died but was not reaped yet) for a live one,
	# and its --wait only logs a timeout, so check and retry ourselves.
	for attempt in 1 2 3 4 5 6 7 8 9 10; do
		"$BIN/kwokctl" --name "$CLUSTER" start cluster >&2 9>&-
		components_up && break
		log "a component of $CLUSTER is not running yet (attempt $attempt); starting again"
		sleep 1
	done
	[[ $(cat "$KWOK_PIDFILE" 2>/dev/null) == "$kwok_pid_before" ]] || kwok_restarted=1
else
	# One controller-manager and one scheduler: without leader election a
	# restarted one works at once instead of waiting out its old Lease
	# (15 s, during which no Job would get a pod). The scheduler's is off in
	# its config; kwokctl adds the kubeconfig to a copy of that file.
	# The controller-manager's client limit is raised from its default of 20
	# requests/s, as large clusters do: at 20 its Job controller starts about
	# three Jobs a second, which is then all any Job pipeline measures.
	log "creating cluster $CLUSTER (state in $KWOK_WORKDIR)"
	fresh_cluster=1
	realnode_kwokctl_config "$KWOK_WORKDIR/kwokctl.yaml"
	"$BIN/kwokctl" --name "$CLUSTER" create cluster \
		--runtime binary \
		--etcd-binary "$BIN/etcd" \
		--kube-apiserver-binary "$BIN/kube-apiserver" \
		--kube-controller-manager-binary "$BIN/kube-controller-manager" \
		--kube-scheduler-binary "$BIN/sluice-scheduler" \
		--kube-scheduler-config "$SCHEDULER_CONFIG" \
		--kwok-controller-binary "$BIN/kwok" \
		--config "$KWOK_WORKDIR/kwokctl.yaml" \
		--config "$HACK/kwok/stages.yaml" \
		--kubeconfig "$KUBECONFIG_FILE" \
		--heartbeat-factor 1 \
		--extra-args kube-controller-manager=leader-elect=false \
		--extra-args kube-controller-manager=kube-api-qps="$KCM_QPS" \
		--extra-args kube-controller-manager=kube-api-burst="$((KCM_QPS * 2))" \
		--node-lease-duration-seconds "$NODE_LEASE_SECONDS" \
		--wait 2m >&2 9>&- ||
		die "kwokctl create cluster failed; see $KWOK_WORKDIR/clusters/$CLUSTER/logs/, then run hack/dev-down.sh and try again"
fi
components_up || die "not every component of $CLUSTER runs; see $KWOK_WORKDIR/clusters/$CLUSTER/logs/"
# kwokctl only logs a --wait timeout; check for ourselves.
wait_for 120 "the apiserver to be ready" apiserver_ready

log "applying nodes, the storage class and the simulated-steps policy"
k apply -f "$HACK/kwok/nodes.yaml" -f "$HACK/kwok/storageclass.yaml" -f "$HACK/kwok/simulated-steps.yaml" >&2
# The API server loads admission policies asynchronously: until it has this
# one, a simulated pod would be sent to the real node.
policy_active() {
	k -n default create --dry-run=server -o jsonpath='{.spec.nodeSelector}' -f - <<'JSON' | grep -q sim.sluice.dev/node
{"apiVersion":"v1","kind":"Pod","metadata":{"name":"policy-probe","annotations":{"sim.sluice.dev/duration":"0s"}},
 "spec":{"containers":[{"name":"main","image":"localhost/sluice/busybox:dev"}]}}
JSON
}
# A restarted kwok-controller has a new identity and leaves alone every node
# whose Lease its previous run still holds, until that Lease expires: no pod
# would start meanwhile. Hand the Leases over now and wait for the takeover.
if ((kwok_restarted)); then
	log "kwok-controller was restarted: handing the node Leases of its previous run over"
	since=$(date -u +%s)
	k -n kube-node-lease delete lease "${NODES[@]}" --ignore-not-found >&2
	wait_for 60 "kwok-controller to take the nodes over" leases_renewed_since "$since"
fi

# Pods cannot be created before the controller-manager made the namespace's
# default ServiceAccount.
wait_for 60 "the default ServiceAccount" k -n default get serviceaccount default
wait_for 30 "the simulated-steps admission policy to take effect" policy_active

# ------------------------------------------------------------- real node
# A new cluster has a new CA: a kubelet of the old one must start again.
((fresh_cluster)) && stop_pidfile "$KUBELET_PID" "$NODE_MATCH"
realnode_up

# ---------------------------------------------------------- local-path
# kind's provisioner serves the ReadWriteOnce class local-path
# (hack/kwok/local-path.yaml); its helper pods run on the nodes.
sed "s|@@VOLUME_ROOT@@|$KWOK_WORKDIR/local-path|" "$HACK/kwok/local-path.yaml" | k apply -f - >&2
if ((fresh_cluster)) || ! running "$LOCAL_PATH_PID" "--kubeconfig $KUBECONFIG_FILE"; then
	stop_pidfile "$LOCAL_PATH_PID" "--kubeconfig $KUBECONFIG_FILE"
	log "starting local-path-provisioner (log: ${LOCAL_PATH_LOG#"$ROOT"/})"
	start_bg "$LOCAL_PATH_PID" "$LOCAL_PATH_LOG" \
		"$BIN/local-path-provisioner" start --kubeconfig "$KUBECONFIG_FILE" \
		--namespace local-path-storage --configmap-name local-path-config \
		--service-account-name local-path-provisioner-service-account \
		--helper-image localhost/sluice/busybox:dev
	sleep 0.3
	running "$LOCAL_PATH_PID" "--kubeconfig $KUBECONFIG_FILE" || {
		tail -n 20 "$LOCAL_PATH_LOG" >&2
		die "local-path-provisioner exited"
	}
else
	log "local-path-provisioner is running (pid $(<"$LOCAL_PATH_PID"))"
fi

# ----------------------------------------------------------- provisioner
if ((fresh_cluster)) || ! running "$PROVISIONER_PID" sluice-provisioner || rebuilt "$PROVISIONER_PID"; then
	stop_pidfile "$PROVISIONER_PID" sluice-provisioner
	log "starting sluice-provisioner (log: ${PROVISIONER_LOG#"$ROOT"/})"
	start_bg "$PROVISIONER_PID" "$PROVISIONER_LOG" \
		"$BIN/sluice-provisioner" --kubeconfig "$KUBECONFIG_FILE" --root "$VOLUME_ROOT"
	sleep 0.3
	running "$PROVISIONER_PID" sluice-provisioner || {
		tail -n 20 "$PROVISIONER_LOG" >&2
		die "sluice-provisioner exited"
	}
else
	log "sluice-provisioner is running (pid $(<"$PROVISIONER_PID"))"
fi

# --------------------------------------------------------------- manager
"$BIN/sluice-certgen" --dir "$CERT_DIR" --hosts "$WEBHOOK_HOST,localhost" >&2

if [[ $SKIP_MANAGER == 1 ]]; then
	log "SKIP_MANAGER=1: no manager, no webhook registration"
	stop_pidfile "$MANAGER_PID" "$MANAGER_MATCH"
	# A registration left by an earlier dev-up would reject every sluice
	# object while its manager is gone.
	stale=$(k get mutatingwebhookconfiguration,validatingwebhookconfiguration \
		-l app.kubernetes.io/managed-by=sluice-dev-up -o name)
	if [[ -n $stale ]]; then
		# shellcheck disable=SC2086 # one name per word
		k delete $stale >&2
	fi
else
	manager_name=$(basename "$SLUICE_WEBHOOK_BIN")
	if ((fresh_cluster)) || ! running "$MANAGER_PID" "$MANAGER_MATCH" || rebuilt "$MANAGER_PID"; then
		stop_pidfile "$MANAGER_PID" "$MANAGER_MATCH"
		log "starting $manager_name (log: ${MANAGER_LOG#"$ROOT"/})"
		start_bg "$MANAGER_PID" "$MANAGER_LOG" \
			"$SLUICE_WEBHOOK_BIN" \
			--kubeconfig "$KUBECONFIG_FILE" \
			--cert-dir "$CERT_DIR" \
			--webhook-host "$WEBHOOK_HOST" \
			--webhook-port "$WEBHOOK_PORT" \
			--metrics-bind-address "$METRICS_ADDR" \
			--health-probe-bind-address "$HEALTH_ADDR" \
			--pprof-bind-address "$PPROF_ADDR" \
			--scheduler-name "$SCHEDULER_NAME" \
			--leader-elect
	else
		log "$manager_name is running (pid $(<"$MANAGER_PID"))"
	fi
	log "waiting for http://$HEALTH_ADDR/readyz"
	deadline=$((SECONDS + 90))
	until curl -fsS -o /dev/null --max-time 2 "http://$HEALTH_ADDR/readyz" 2>/dev/null; do
		if ! running "$MANAGER_PID" "$MANAGER_MATCH"; then
			tail -n 30 "$MANAGER_LOG" >&2
			die "$manager_name exited (log: $MANAGER_LOG)"
		fi
		((SECONDS < deadline)) || die "$manager_name not ready after 90s (log: $MANAGER_LOG)"
		sleep 0.2
	done
	# The apiserver will verify the serving certificate against ca.crt: so
	# do we, before registering (any HTTP status will do).
	webhook_tls() {
		local code
		code=$(curl -sS -o /dev/null -w '%{http_code}' --max-time 2 --cacert "$CERT_DIR/ca.crt" \
			"https://$WEBHOOK_HOST:$WEBHOOK_PORT/") || return 1
		[[ $code != 000 ]]
	}
	wait_for 30 "the webhook server on https://$WEBHOOK_HOST:$WEBHOOK_PORT" webhook_tls

	ca_bundle=$(base64 -w0 "$CERT_DIR/ca.crt")
	sed -e "s|@@WEBHOOK_BASE_URL@@|https://$WEBHOOK_HOST:$WEBHOOK_PORT|g" \
		-e "s|@@CA_BUNDLE@@|$ca_bundle|g" \
		"$HACK/webhook-config.yaml.tmpl" >"$WEBHOOK_CONFIG"
	log "registering the admission webhooks"
	k apply -f "$WEBHOOK_CONFIG" >&2
fi

# ----------------------------------------------------------------- nodes
k wait --for=condition=Ready -f "$HACK/kwok/nodes.yaml" --timeout=120s >&2

log "cluster $CLUSTER ready in $((SECONDS - START))s: $(k get nodes --no-headers 2>/dev/null | wc -l) nodes," \
	"apiserver $(k config view --minify -o jsonpath='{.clusters[0].cluster.server}')"
echo "export KUBECONFIG=$KUBECONFIG_FILE"
