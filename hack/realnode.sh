# shellcheck shell=bash
# The local cluster's real node: containerd, runc and a kubelet on this
# machine, joined to the kwokctl control plane beside the kwok nodes, running
# steps in real containers. Sourced by hack/dev-up.sh (realnode_up) and
# hack/dev-down.sh (realnode_down), which define ROOT, BIN, KWOK_WORKDIR,
# CLUSTER, KUBECONFIG_FILE, k, log and die (dev-up also start_bg and
# rebuilt), and source hack/pidfile.sh.
#
# Isolation from the host (see README, "The real node"):
#   - one private mount namespace, held by a small holder process, for
#     containerd, the kubelet, the shims and the GPU device plugin. In it the
#     node's state directory is bind-mounted over /var/lib, /var/log and /run,
#     so the paths the kubelet and containerd hard-code
#     (/var/lib/kubelet/device-plugins, /var/log/containers, /var/lib/cni,
#     /run/containerd) are the node's own; none of their mounts is seen on
#     the host, and all of them go away with the namespace;
#   - every listener on 127.0.0.1; pods get a veth into a bridge with no
#     address, no uplink, no route and no masquerade, and a resolver on
#     127.0.0.1 that answers nothing; containerd reaches no registry (its
#     proxy is a closed loopback port), so only images imported from
#     bin/images/ run;
#   - pod cgroups under a cgroup root of the node's own, so that two real
#     nodes (the dev and the e2e clusters', or two checkouts') never clean
#     up each other's pods;
#   - the sysctls the kubelet changes are recorded before the first real node
#     of this machine starts and put back when the last one stops.

NODE_NAME=sluice-real-1
NODE_DIR=$KWOK_WORKDIR/node
NODE_RUN=$NODE_DIR/run
CTRD_SOCK=$NODE_DIR/containerd/containerd.sock
# What the command lines of this node's processes contain: a PID recycled by
# another process, or another cluster's node, never matches.
NODE_MATCH=$NODE_DIR
HOLDER_PID=$NODE_RUN/holder.pid
CONTAINERD_PID=$NODE_RUN/containerd.pid
KUBELET_PID=$NODE_RUN/kubelet.pid
GPU_PLUGIN_PID=$NODE_RUN/gpu-plugin.pid
# Host-wide (tmpfs, gone at reboot): the sysctl values before any real node.
SYSCTL_RECORD=/run/sluice-real-node.sysctl
SYSCTLS=(vm/overcommit_memory vm/panic_on_oom kernel/panic kernel/panic_on_oops kernel/keys/root_maxkeys kernel/keys/root_maxbytes)
# The simulated GPUs the node advertises (hack/gpu-plugin) and the labels a
# T4 node of GPU feature discovery and GKE carries.
NODE_GPUS=2
NODE_LABELS=sluice.dev/real-node=true,sluice.dev/node-pool=real,nvidia.com/gpu.present=true,nvidia.com/gpu.product=Tesla-T4,nvidia.com/gpu.count=$NODE_GPUS,cloud.google.com/gke-accelerator=nvidia-tesla-t4,sluice.dev/simulated-gpus=true
# The images every real node holds (hack/images.sh builds them), and
# sluice's own, imported when `make images` built them.
NODE_IMAGES=(pause busybox python)
OPTIONAL_IMAGES=(webhook scheduler kfp-launcher)

ctr_() { "$BIN/ctr" --address "$CTRD_SOCK" --namespace k8s.io "$@" 2> >(grep -v 'cgroup v1' >&2); }

# The bridge pods are plugged into: one per cluster, a name of at most 15
# characters derived from the state directory.
node_bridge() { echo "sl$(printf '%s' "$NODE_DIR" | cksum | cut -c1-8)"; }
# The cgroup (in every hierarchy) that holds this node's pods, one per
# state directory like the bridge.
node_cgroup_root() { echo "/sluice-$(node_bridge)"; }

# node_start NAME CMD...: CMD detached (dev-up's start_bg) in the node's
# mount namespace, pid in run/NAME.pid (nsenter's, which execs CMD), log in
# logs/NAME.log.
node_start() {
	local name=$1
	shift
	log "real node: starting $name (log: ${NODE_DIR#"$ROOT"/}/logs/$name.log)"
	start_bg "$NODE_RUN/$name.pid" "$NODE_DIR/logs/$name.log" \
		nsenter --mount="/proc/$(<"$HOLDER_PID")/ns/mnt" -- "$@"
}

node_fail() { # NAME: die with the tail of NAME's log
	tail -n 25 "$NODE_DIR/logs/$1.log" >&2
	die "the real node's $1 did not start (log: $NODE_DIR/logs/$1.log)"
}

# node_wait NAME SECONDS CMD...: run CMD until it succeeds; node_fail NAME
# as soon as NAME's process is gone, or after SECONDS. (The process is
# looked at after a pause: just after node_start it may not have exec'd
# into the command line that names it yet.)
node_wait() {
	local name=$1 deadline=$((SECONDS + $2))
	shift 2
	until "$@" >/dev/null 2>&1; do
		sleep 0.2
		running "$NODE_RUN/$name.pid" "$NODE_MATCH" && ((SECONDS < deadline)) || node_fail "$name"
	done
}

realnode_check() {
	local missing=() t
	for t in kubelet containerd ctr containerd-shim-runc-v2 cni/bridge cni/host-local cni/loopback sluice-gpu-plugin; do
		[[ -x $BIN/$t ]] || missing+=("$t")
	done
	((${#missing[@]} == 0)) || die "missing in bin/ for the real node: ${missing[*]}; run make tools build"
	for t in runc nsenter unshare ip iptables; do
		command -v "$t" >/dev/null || die "$t is not installed (make host-packages installs runc and iptables)"
	done
	for t in "${NODE_IMAGES[@]}"; do
		[[ -s $BIN/images/$t.tar ]] || die "bin/images/$t.tar is missing: run bash hack/images.sh"
	done
}

# The kwokctl configuration of a cluster with a real node: the API server
# reaches kubelets by InternalIP (the real node's is 127.0.0.1) with a client
# certificate, and kwok manages only the nodes annotated as fake (kwokctl's
# binary runtime would otherwise take over the real node: its Lease, its
# status, and fake statuses for its pods).
realnode_kwokctl_config() { # OUT
	local pki=$KWOK_WORKDIR/clusters/$CLUSTER/pki
	cat "$ROOT/hack/kwok/kwokctl.yaml" - >"$1" <<YAML
componentsPatches:
- name: kube-apiserver
  extraArgs:
  - {key: kubelet-client-certificate, value: $pki/admin.crt}
  - {key: kubelet-client-key, value: $pki/admin.key}
  - {key: kubelet-preferred-address-types, value: "InternalIP,Hostname"}
- name: kwok-controller
  extraArgs:
  - {key: manage-all-nodes, value: "false", override: true}
  - {key: manage-nodes-with-annotation-selector, value: kwok.x-k8s.io/node=fake}
YAML
}

# ------------------------------------------------------------------- up
realnode_up() {
	realnode_check
	mkdir -p "$NODE_RUN" "$NODE_DIR"/{logs,containerd,cni/conf,cni/ipam,var/lib,var/log,var/run,imported}
	record_sysctls
	start_holder
	write_network
	start_containerd
	import_images
	start_kubelet
	start_gpu_plugin
	wait_node_ready
	realnode_api_route
}

# realnode_api_route: pods reach the API server at the address and port the
# kubernetes Service's endpoints give (the machine's own address, which its
# serving certificate names), though it listens on 127.0.0.1 only: one NAT
# rule for connections from this node's bridge to exactly that address and
# port, and route_localnet on the bridge so that the kernel delivers them to
# loopback. Pods use it with KUBERNETES_SERVICE_HOST and _PORT set to that
# endpoint (there is no kube-proxy for the Service's own address, which the
# certificate does not name).
realnode_api_route() {
	local bridge endpoint addr port
	bridge=$(node_bridge)
	endpoint=$(k get endpointslice -n default -l kubernetes.io/service-name=kubernetes \
		-o jsonpath='{.items[0].endpoints[0].addresses[0]} {.items[0].ports[0].port}')
	read -r addr port <<<"$endpoint"
	[[ -n $addr && -n $port ]] || die "the kubernetes Service has no endpoint to route the real node's pods to"
	realnode_api_route_down
	sysctl -qw "net.ipv4.conf.$bridge.route_localnet=1"
	iptables -w -t nat -A PREROUTING -i "$bridge" -d "$addr" -p tcp --dport "$port" \
		-m comment --comment "sluice real node $bridge" -j DNAT --to-destination "127.0.0.1:$port"
	iptables -w -I FORWARD -i "$bridge" -m comment --comment "sluice real node $bridge" -j DROP
	echo "$addr $port" >"$NODE_DIR/api-endpoint"
}

# realnode_api_route_down removes this node's rules.
realnode_api_route_down() {
	local table chain rule
	command -v iptables >/dev/null || return 0
	for table in nat:PREROUTING filter:FORWARD; do
		chain=${table#*:}
		table=${table%%:*}
		while read -r rule; do
			eval "iptables -w -t $table ${rule/-A /-D }"
		done < <(iptables -w -t "$table" -S "$chain" 2>/dev/null | grep -F -- "sluice real node $(node_bridge)")
	done
}

record_sysctls() {
	[[ -s $SYSCTL_RECORD ]] && return
	local key
	for key in "${SYSCTLS[@]}"; do echo "$key $(cat "/proc/sys/$key")"; done >"$SYSCTL_RECORD"
}

start_holder() {
	if running "$HOLDER_PID" "$NODE_MATCH"; then
		return
	fi
	# Processes left in a namespace whose holder is gone would not see the
	# mounts of those started in a new one: start them all again.
	stop_pidfile "$GPU_PLUGIN_PID" "$NODE_MATCH"
	stop_pidfile "$KUBELET_PID" "$NODE_MATCH"
	stop_pidfile "$CONTAINERD_PID" "$NODE_MATCH"
	# The holder makes the namespace, mounts the node's directories over the
	# host paths the kubelet and containerd hard-code, and then only waits:
	# bash keeps its arguments in its command line, so it stays ours by name.
	local script='set -e; mount --make-rprivate /
		mount --bind "$1/var/lib" /var/lib; mount --bind "$1/var/log" /var/log; mount --bind "$1/var/run" /run
		echo ready >"$1/run/holder.ready"; while :; do sleep 3600; done'
	rm -f "$NODE_RUN/holder.ready"
	setsid nohup unshare --mount --propagation private bash -c "$script" sluice-node-holder "$NODE_DIR" \
		>>"$NODE_DIR/logs/holder.log" 2>&1 </dev/null 9>&- &
	echo $! >"$HOLDER_PID"
	# unshare execs bash: the pid is the holder's.
	node_wait holder 5 test -e "$NODE_RUN/holder.ready"
}

# node_subnet: the pods' /16 of this node, in 100.64.0.0/10, chosen once
# (kept in the node's directory) among those no other interface of this
# machine routes, so that the dev and the e2e clusters' nodes never share one.
node_subnet() {
	local f=$NODE_DIR/subnet i octet start
	if [[ -s $f ]]; then
		cat "$f"
		return
	fi
	start=$((0x$(printf '%s' "$NODE_DIR" | cksum | cut -c1-4)))
	for i in $(seq 0 63); do
		octet=$((64 + (start + i) % 64))
		if [[ -z $(ip -4 route show "100.$octet.0.0/16" 2>/dev/null) ]]; then
			echo "100.$octet.0.0/16" | tee "$f"
			return
		fi
	done
	die "no free /16 for the real node's pods in 100.64.0.0/10"
}

write_network() {
	local bridge subnet
	bridge=$(node_bridge)
	subnet=$(node_subnet)
	# The bridge is the pods' gateway (its first address), so that they
	# reach the API server (the NAT rule of realnode_api_route) and the host
	# reaches them (a Service's endpoints). Nothing goes further: no
	# masquerade, and realnode_api_route drops whatever the host would
	# forward from the bridge, whatever net.ipv4.ip_forward says.
	cat >"$NODE_DIR/cni/conf/10-sluice.conflist" <<JSON
{
  "cniVersion": "1.0.0",
  "name": "sluice-real-node",
  "plugins": [{
    "type": "bridge", "bridge": "$bridge",
    "isGateway": true, "isDefaultGateway": true, "ipMasq": false, "hairpinMode": false,
    "ipam": {"type": "host-local", "ranges": [[{"subnet": "$subnet"}]], "dataDir": "$NODE_DIR/cni/ipam"}
  }]
}
JSON
	# Made before the plugin does, with IPv6 off: the host side gets no
	# IPv6 address, not even a link-local one.
	if ! ip link show "$bridge" >/dev/null 2>&1; then
		ip link add "$bridge" type bridge
		sysctl -qw "net.ipv6.conf.$bridge.disable_ipv6=1"
		ip link set "$bridge" up
	fi
	printf 'nameserver 127.0.0.1\noptions ndots:1 timeout:1 attempts:1\n' >"$NODE_DIR/resolv.conf"
}

start_containerd() {
	if running "$CONTAINERD_PID" "$NODE_MATCH" && ctr_ version >/dev/null 2>&1; then
		return
	fi
	stop_pidfile "$CONTAINERD_PID" "$NODE_MATCH"
	local c=$NODE_DIR/containerd
	cat >"$c/config.toml" <<TOML
version = 3
root = "$c/root"
state = "$c/state"
temp = "$c/tmp"
[grpc]
  address = "$CTRD_SOCK"
[ttrpc]
  address = "$CTRD_SOCK.ttrpc"
[debug]
  address = "$c/debug.sock"
[metrics]
  address = ""
[plugins]
  [plugins.'io.containerd.cri.v1.runtime']
    enable_selinux = false
    netns_mounts_under_state_dir = true
    # Root here lacks CAP_SYS_RESOURCE: runc cannot lower oom_score_adj
    # (-998 for the sandbox) and fails every container without this clamp.
    restrict_oom_score_adj = true
    cdi_spec_dirs = []
    [plugins.'io.containerd.cri.v1.runtime'.containerd]
      default_runtime_name = 'runc'
      [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
        runtime_type = 'io.containerd.runc.v2'
        [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
          BinaryName = '$(command -v runc)'
          Root = '$c/runc'
          SystemdCgroup = false
    [plugins.'io.containerd.cri.v1.runtime'.cni]
      bin_dirs = ['$BIN/cni']
      conf_dir = '$NODE_DIR/cni/conf'
      max_conf_num = 1
  [plugins.'io.containerd.cri.v1.images']
    snapshotter = 'overlayfs'
    [plugins.'io.containerd.cri.v1.images'.pinned_images]
      sandbox = 'localhost/sluice/pause:3.10'
  [plugins.'io.containerd.nri.v1.nri']
    disable = true
  [plugins.'io.containerd.internal.v1.opt']
    path = '$c/opt'
TOML
	mkdir -p "$c/tmp"
	# No registry is reachable from here, and none may be tried: every pull
	# goes to a closed loopback port and fails at once (ErrImagePull).
	node_start containerd env HTTPS_PROXY=http://127.0.0.1:9 HTTP_PROXY=http://127.0.0.1:9 NO_PROXY= \
		PATH="$BIN:/usr/sbin:/usr/bin:/sbin:/bin" "$BIN/containerd" --config "$c/config.toml"
	node_wait containerd 30 ctr_ version
}

# import_images: every image of bin/images/ not yet imported at its current
# build (its inputs record) goes into containerd's k8s.io namespace.
import_images() {
	local name inputs start
	for name in "${NODE_IMAGES[@]}" "${OPTIONAL_IMAGES[@]}"; do
		[[ -s $BIN/images/$name.tar ]] || continue
		inputs=$(cat "$BIN/images/.$name.inputs" 2>/dev/null)
		[[ -n $inputs && $(cat "$NODE_DIR/imported/$name" 2>/dev/null) == "$inputs" ]] && continue
		start=$SECONDS
		ctr_ images import "$BIN/images/$name.tar" >/dev/null ||
			die "importing bin/images/$name.tar into the real node's containerd failed"
		echo "$inputs" >"$NODE_DIR/imported/$name"
		log "real node: imported $name in $((SECONDS - start))s"
	done
}

start_kubelet() {
	if running "$KUBELET_PID" "$NODE_MATCH" && ! rebuilt "$KUBELET_PID"; then
		return
	fi
	stop_pidfile "$KUBELET_PID" "$NODE_MATCH"
	local pki=$KWOK_WORKDIR/clusters/$CLUSTER/pki cg h ports
	# Its cgroup root must exist in every hierarchy.
	cg=$(node_cgroup_root)
	for h in /sys/fs/cgroup/*/; do
		[[ -e $h/cgroup.procs ]] && mkdir -p "$h${cg#/}"
	done
	[[ -e /sys/fs/cgroup/cgroup.procs ]] && mkdir -p "/sys/fs/cgroup${cg}"
	mapfile -t ports < <(free_ports 2)
	cat >"$NODE_DIR/kubelet.yaml" <<YAML
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: 127.0.0.1
port: ${ports[0]}
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: ${ports[1]}
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: false}
  x509: {clientCAFile: $pki/ca.crt}
authorization: {mode: AlwaysAllow}
cgroupDriver: cgroupfs
cgroupRoot: $cg
# cgroup v1 here: deprecated, still supported when asked for.
failCgroupV1: false
failSwapOn: false
containerRuntimeEndpoint: unix://$CTRD_SOCK
resolvConf: $NODE_DIR/resolv.conf
serializeImagePulls: false
# Images are imported, never pulled: never collect them.
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {memory.available: 200Mi, nodefs.available: 1%, imagefs.available: 1%, nodefs.inodesFree: 1%}
maxPods: 110
YAML
	# --cloud-provider=external: the kubelet refuses a loopback --node-ip, so
	# the node's address is set below, as a cloud controller would.
	node_start kubelet "$BIN/kubelet" --config="$NODE_DIR/kubelet.yaml" \
		--kubeconfig="$KUBECONFIG_FILE" --hostname-override="$NODE_NAME" \
		--cloud-provider=external --node-labels="$NODE_LABELS" --v=2
	node_wait kubelet 60 k get node "$NODE_NAME"
}

start_gpu_plugin() {
	if running "$GPU_PLUGIN_PID" "$NODE_MATCH" && ! rebuilt "$GPU_PLUGIN_PID"; then
		return
	fi
	stop_pidfile "$GPU_PLUGIN_PID" "$NODE_MATCH"
	node_start gpu-plugin "$BIN/sluice-gpu-plugin" --count "$NODE_GPUS" --device-plugin-dir "$NODE_DIR/var/lib/kubelet/device-plugins"
}

wait_node_ready() {
	# The addresses a cloud controller would set; the kubelet keeps them.
	k patch node "$NODE_NAME" --subresource=status --type=merge -p \
		'{"status":{"addresses":[{"type":"InternalIP","address":"127.0.0.1"},{"type":"Hostname","address":"'"$NODE_NAME"'"}]}}' >/dev/null
	k taint node "$NODE_NAME" node.cloudprovider.kubernetes.io/uninitialized- >/dev/null 2>&1 || true
	k wait --for=condition=Ready "node/$NODE_NAME" --timeout=90s >/dev/null || node_fail kubelet
	node_wait gpu-plugin 60 node_has_gpus
	log "real node $NODE_NAME is Ready ($NODE_GPUS simulated nvidia.com/gpu)"
}

node_has_gpus() {
	[[ $(k get node "$NODE_NAME" -o jsonpath='{.status.allocatable.nvidia\.com/gpu}') == "$NODE_GPUS" ]]
}

free_ports() { # N: N free TCP ports on 127.0.0.1
	python3 - "$1" <<'PY'
import socket, sys
socks = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in socks:
    s.bind(("127.0.0.1", 0))
for s in socks:
    print(s.getsockname()[1])
PY
}

# ----------------------------------------------------------------- down
# realnode_down: stop what realnode_up started, in the order that lets each
# part clean up after itself, and put the host back as it was.
realnode_down() {
	[[ -d $NODE_DIR ]] || return 0
	# Pods first: the kubelet unmounts their volumes and CNI frees their
	# addresses.
	if running "$KUBELET_PID" "$NODE_MATCH" && [[ -s $KUBECONFIG_FILE ]] && k --request-timeout=5s get --raw /readyz >/dev/null 2>&1; then
		k delete pods -A --field-selector "spec.nodeName=$NODE_NAME" --grace-period=1 --wait=true --timeout=60s >/dev/null 2>&1 ||
			log "real node: some pods were not deleted in time; stopping them with the node"
	fi
	stop_pidfile "$GPU_PLUGIN_PID" "$NODE_MATCH"
	stop_pidfile "$KUBELET_PID" "$NODE_MATCH"
	if running "$CONTAINERD_PID" "$NODE_MATCH"; then
		local t
		for t in $(ctr_ tasks ls -q 2>/dev/null); do ctr_ tasks kill -s SIGKILL "$t" >/dev/null 2>&1; done
		sleep 0.5
		for t in $(ctr_ tasks ls -q 2>/dev/null); do ctr_ tasks delete -f "$t" >/dev/null 2>&1; done
		for t in $(ctr_ containers ls -q 2>/dev/null); do ctr_ containers rm "$t" >/dev/null 2>&1; done
	fi
	stop_pidfile "$CONTAINERD_PID" "$NODE_MATCH"
	# Shims outlive containerd by design; ours name its socket in their
	# command line.
	local p
	for p in /proc/[0-9]*; do
		[[ $(readlink "$p/exe" 2>/dev/null) == "$BIN/containerd-shim-runc-v2" ]] || continue
		tr '\0' ' ' <"$p/cmdline" 2>/dev/null | grep -qF -- "$CTRD_SOCK" || continue
		kill -KILL "${p#/proc/}" 2>/dev/null && log "real node: killed shim ${p#/proc/}"
	done
	# The last process of the mount namespace: every mount of the node goes
	# with it.
	stop_pidfile "$HOLDER_PID" "$NODE_MATCH"
	realnode_api_route_down
	local bridge
	bridge=$(node_bridge)
	if ip link show "$bridge" >/dev/null 2>&1; then ip link del "$bridge"; fi
	local cg h
	cg=$(node_cgroup_root)
	for h in /sys/fs/cgroup/*/ /sys/fs/cgroup/; do
		[[ -d $h${cg#/} ]] || continue
		find "$h${cg#/}" -depth -type d -exec rmdir {} \; 2>/dev/null ||
			log "real node: could not remove cgroup $h${cg#/} (processes left in it?)"
	done
	restore_sysctls
}

# restore_sysctls: once no kubelet runs on this machine any more, the values
# recorded before the first real node started are put back.
restore_sysctls() {
	[[ -s $SYSCTL_RECORD ]] || return 0
	local p
	for p in /proc/[0-9]*; do
		if [[ $(basename "$(readlink "$p/exe" 2>/dev/null)") == kubelet ]]; then
			log "real node: another kubelet (pid ${p#/proc/}) runs: leaving the host's sysctls to it"
			return 0
		fi
	done
	local key value
	while read -r key value; do
		[[ $(cat "/proc/sys/$key") == "$value" ]] || echo "$value" >"/proc/sys/$key"
	done <"$SYSCTL_RECORD"
	rm -f "$SYSCTL_RECORD"
}
