#!/usr/bin/env bash
# Brings up the sluice development cluster on this machine, without Docker:
#
#   - a kwokctl cluster "sluice" (runtime binary): the real etcd,
#     kube-apiserver (routing to Services' endpoints itself:
#     --enable-aggregator-routing, which admission webhooks' Services use
#     too) and kube-controller-manager from bin/, and as its kube-scheduler
#     bin/sluice-scheduler (./cmd/scheduler, built by
#     hack/build-scheduler.sh when missing or stale) with
#     hack/kwok/scheduler-config.yaml: the profile default-scheduler only;
#     kwok simulates nodes and pods (hack/kwok/stages.yaml);
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
#   - sluice itself, from its Helm chart (manifests/charts/sluice, release
#     sluice in namespace sluice-system, which enforces the restricted Pod
#     Security Standard): the manager (2 replicas) and the sluice-scheduler
#     as pods on the real node, from the images of bin/images/ (tagged
#     dev-<hash of their inputs> in the node's containerd, so a rebuilt
#     image rolls them), reaching the API server at the kubernetes
#     Service's endpoint (apiServer.host/.port; see realnode_api_route).
#
# State lives in .kwok/ (KWOK_WORKDIR): kubeconfig, volumes/, the
# pidfiles and logs of the processes (*.pid, *.log), and kwokctl's own
# clusters/sluice/ (component logs under clusters/sluice/logs/).
#
# Running it again is harmless and repairs what is not running: a stopped
# cluster or component is started again, a dead (or rebuilt) provisioner
# restarted, nodes re-applied, the chart upgraded (rolling the pods when
# an image was rebuilt).
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
#   SKIP_MANAGER=1      do not install sluice (the e2e tests install the
#                       chart themselves)
#   SLUICE_HELM_ARGS    more arguments for helm upgrade --install, e.g.
#                       "--set webhook.logLevel=2"
#   SLUICE_SCHEDULER_CONFIG  KubeSchedulerConfiguration of the cluster's
#                       scheduler (default hack/kwok/scheduler-config.yaml)
#   SLUICE_CLUSTER      kwokctl cluster name (default sluice; the e2e tests use sluice-e2e)
#   SLUICE_STATE_DIR    state directory (default .kwok; the e2e tests use .kwok-e2e)
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
VOLUME_ROOT=$KWOK_WORKDIR/volumes

SKIP_MANAGER=${SKIP_MANAGER:-0}
SCHEDULER_CONFIG=${SLUICE_SCHEDULER_CONFIG:-$HACK/kwok/scheduler-config.yaml}
RELEASE=sluice
RELEASE_NS=sluice-system
KCM_QPS=${SLUICE_KCM_QPS:-500}

LOCAL_PATH_PID=$KWOK_WORKDIR/local-path-provisioner.pid
LOCAL_PATH_LOG=$KWOK_WORKDIR/local-path-provisioner.log
PROVISIONER_PID=$KWOK_WORKDIR/sluice-provisioner.pid
PROVISIONER_LOG=$KWOK_WORKDIR/sluice-provisioner.log

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

# image_tag NAME: the tag of the node's build of bin/images/NAME.tar,
# dev-<hash of its inputs>: a rebuilt image gets a new tag, and the helm
# upgrade below rolls the pods onto it, as a new release would.
image_tag() { echo "dev-$(sha256sum <"$BIN/images/.$1.inputs" | cut -c1-12)"; }

# sluice_admits: the API server sends a sluice Job through the webhooks (a
# server-side dry run: nothing is created) and gets it back mutated.
sluice_admits() {
	k -n default create --dry-run=server -o jsonpath='{.spec.suspend}' -f - <<'JSON' | grep -qx true
{"apiVersion":"batch/v1","kind":"Job","metadata":{"name":"dev-up-probe","labels":{"sluice.dev/pipeline":"dev-up-probe","sluice.dev/run":"dev-up-probe","sluice.dev/task":"probe"},"annotations":{"sluice.dev/after":"first"}},
 "spec":{"template":{"spec":{"restartPolicy":"Never","containers":[{"name":"main","image":"localhost/sluice/busybox:dev"}]}}}}
JSON
}

# rolled_out DEPLOYMENT: every replica of the release's Deployment runs its
# current template and is ready, and no old one is left.
rolled_out() {
	local gen observed want updated ready have
	read -r gen observed want updated ready have < <(k -n "$RELEASE_NS" get deployment "$1" \
		-o jsonpath='{.metadata.generation} {.status.observedGeneration} {.spec.replicas} {.status.updatedReplicas} {.status.readyReplicas} {.status.replicas}{"\n"}')
	[[ -n $gen && $gen == "$observed" && $updated == "$want" && $ready == "$want" && $have == "$want" ]]
}

# cert_missing: the kubelet cannot mount the manager's certificate Secret,
# which does not exist (with certManager.enabled=true, until cert-manager
# issues it).
cert_missing() {
	k -n "$RELEASE_NS" get events --field-selector reason=FailedMount -o jsonpath='{.items[*].message}' 2>/dev/null |
		grep -qF "secret \"$RELEASE-webhook-cert\" not found"
}

# sluice_pods_waiting: what keeps the release's pods from running, one line
# per container that waits (its image, reason and message).
sluice_pods_waiting() {
	k -n "$RELEASE_NS" get pods -l app.kubernetes.io/instance="$RELEASE" -o jsonpath='{range .items[*]}{range .status.containerStatuses[?(@.state.waiting)]}{"container "}{.name}{" ("}{.image}{"): "}{.state.waiting.reason}{" "}{.state.waiting.message}{"\n"}{end}{end}' 2>/dev/null
}

# install_sluice: helm upgrade --install of manifests/charts/sluice in
# $RELEASE_NS, from the images on the real node, then wait until the API
# server admits a sluice Job through the chart's Service.
install_sluice() {
	local name tag addr port start=$SECONDS waiting cert_hint=0
	local -a set=()
	for name in webhook scheduler; do
		[[ -s $BIN/images/.$name.inputs ]] || die "bin/images/$name.tar is missing: run make images"
		tag=$(image_tag "$name")
		ctr_ images tag --force "localhost/sluice/$name:dev" "localhost/sluice/$name:$tag" >/dev/null ||
			die "the real node has no image localhost/sluice/$name:dev: run make images, then make dev-up"
		set+=(--set-string "image.$name.repository=localhost/sluice/$name" --set-string "image.$name.tag=$tag"
			--set-string "image.$name.pullPolicy=Never")
	done
	# The pods reach the API server at the kubernetes Service's endpoint
	# (realnode_api_route), the cluster address having no kube-proxy.
	read -r addr port <"$NODE_DIR/api-endpoint"
	set+=(--set-string "apiServer.host=$addr" --set-string "apiServer.port=$port")
	# The release namespace enforces the restricted Pod Security Standard.
	k create namespace "$RELEASE_NS" --dry-run=client -o yaml | k apply -f - >/dev/null
	k label --overwrite namespace "$RELEASE_NS" pod-security.kubernetes.io/enforce=restricted \
		pod-security.kubernetes.io/enforce-version=latest >/dev/null
	log "helm upgrade --install $RELEASE manifests/charts/sluice -n $RELEASE_NS"
	# shellcheck disable=SC2086 # SLUICE_HELM_ARGS: words, as on a command line
	"$BIN/helm" upgrade --install "$RELEASE" "$ROOT/manifests/charts/sluice" --kubeconfig "$KUBECONFIG_FILE" \
		--namespace "$RELEASE_NS" "${set[@]}" ${SLUICE_HELM_ARGS:-} >&2 9>&- ||
		die "helm upgrade --install failed (the chart refused a value, or the cluster an object: see above)"
	log "waiting for the rollout, and for the webhook to admit a sluice Job (through Service $RELEASE-webhook)"
	local deadline=$((SECONDS + 180))
	until rolled_out "$RELEASE-webhook" && rolled_out "$RELEASE-scheduler" && sluice_admits; do
		waiting=$(sluice_pods_waiting)
		if grep -q ErrImageNeverPull <<<"$waiting"; then
			die "an image is not on the real node: $(grep -m1 ErrImageNeverPull <<<"$waiting"); run make images, then make dev-up"
		fi
		if ((!cert_hint)) && cert_missing; then
			cert_hint=1
			log "the manager's pods wait for their certificate: Secret $RELEASE-webhook-cert is not there yet." \
				"With certManager.enabled=true cert-manager issues it for Certificate $RELEASE-webhook" \
				"(kubectl -n $RELEASE_NS describe certificate $RELEASE-webhook); dev-up keeps waiting"
		fi
		if ((SECONDS >= deadline)); then
			k -n "$RELEASE_NS" get pods -o wide >&2 || true
			[[ -z $waiting ]] || printf '%s\n' "$waiting" >&2
			die "sluice is not ready 180s after helm upgrade --install; see kubectl -n $RELEASE_NS describe pods, and their logs"
		fi
		sleep 0.5
	done
	log "sluice admits Jobs $((SECONDS - start))s after helm upgrade --install"
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
build_go sluice-gpu-plugin hack/gpu-plugin
# Version-stamped like the control plane; skipped when up to date.
bash "$HACK/build-scheduler.sh" 9>&-
if [[ $SKIP_MANAGER == 1 ]]; then
	bash "$HACK/images.sh" 9>&-
else
	[[ -x $BIN/sluice-webhook ]] || die "bin/sluice-webhook is missing: run make build (make dev-up does)"
	bash "$HACK/images.sh" pause busybox python webhook scheduler 9>&-
fi
realnode_check

# --------------------------------------------------------------- cluster
fresh_cluster=0
kwok_restarted=0
KWOK_PIDFILE=$KWOK_WORKDIR/clusters/$CLUSTER/pids/kwok-controller.pid
if "$BIN/kwokctl" get clusters 2>/dev/null | grep -qx "$CLUSTER"; then
	grep -q -- --enable-aggregator-routing=true "$KWOK_WORKDIR/clusters/$CLUSTER/kwok.yaml" 2>/dev/null ||
		die "cluster $CLUSTER was created by an older dev-up (its API server cannot reach a webhook's Service): run make dev-down, then make dev-up"
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
		--extra-args kube-apiserver=enable-aggregator-routing=true \
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

# ---------------------------------------------------------------- sluice
if [[ $SKIP_MANAGER == 1 ]]; then
	log "SKIP_MANAGER=1: sluice is not installed"
else
	install_sluice
fi

# ----------------------------------------------------------------- nodes
k wait --for=condition=Ready -f "$HACK/kwok/nodes.yaml" --timeout=120s >&2

log "cluster $CLUSTER ready in $((SECONDS - START))s: $(k get nodes --no-headers 2>/dev/null | wc -l) nodes," \
	"apiserver $(k config view --minify -o jsonpath='{.clusters[0].cluster.server}')"
if [[ $SKIP_MANAGER != 1 ]]; then
	log "sluice runs in namespace $RELEASE_NS (kubectl -n $RELEASE_NS get pods):"
	k -n "$RELEASE_NS" get pods -o wide >&2
fi
echo "export KUBECONFIG=$KUBECONFIG_FILE"
