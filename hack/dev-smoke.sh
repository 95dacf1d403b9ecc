#!/usr/bin/env bash
# Checks that the development cluster of hack/dev-up.sh simulates what sluice
# relies on, in a namespace of its own (sluice-smoke, deleted afterwards):
#
#   - the five simulated nodes are Ready;
#   - a Job whose pod runs 2 s (sim.sluice.dev/duration) completes;
#   - a Job whose pod exits 3 (sim.sluice.dev/exit-code) fails, with exit
#     code 3 and the sim.sluice.dev/message in its container status;
#   - a bare Pod reaches Succeeded, its termination message set;
#   - a ReadWriteMany claim of class sluice-local binds (hack/provisioner),
#     a Job mounting it completes, and its directory goes with the claim;
#   - a pod asking for an nvidia.com/gpu lands on a T4 node;
#   - a pod held by a scheduling gate is left alone.
#
# Prints the time each took and ends with "N passed, N failed"; exits
# non-zero when a check failed. Usage: hack/dev-smoke.sh (after dev-up).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
export KUBECONFIG=${KUBECONFIG:-$ROOT/.kwok/kubeconfig}
NS=sluice-smoke
VOLUME_ROOT=$ROOT/.kwok/volumes
passed=0 failed=0

k() { "$ROOT/bin/kubectl" -n "$NS" "$@"; }
now() { date +%s.%N; }
since() { printf '%.2f' "$(echo "$(now) - $1" | bc)"; }
pass() {
	passed=$((passed + 1))
	printf 'ok    %s\n' "$*"
}
fail() {
	failed=$((failed + 1))
	printf 'FAIL  %s\n' "$*"
}

"$ROOT/bin/kubectl" delete namespace "$NS" --ignore-not-found --wait=true >/dev/null
"$ROOT/bin/kubectl" create namespace "$NS" >/dev/null
trap '"$ROOT/bin/kubectl" delete namespace "$NS" --wait=false >/dev/null 2>&1 || true' EXIT
# Pods need the namespace's default ServiceAccount.
for _ in $(seq 100); do k get serviceaccount default >/dev/null 2>&1 && break; sleep 0.1; done

# ------------------------------------------------------------------ nodes
ready=$("$ROOT/bin/kubectl" get nodes -l type=kwok \
	-o jsonpath='{range .items[*]}{.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}' | grep -c True || true)
if ((ready == 5)); then pass "5 simulated nodes Ready"; else fail "$ready of 5 simulated nodes Ready"; fi

# ------------------------------------------------------------------- jobs
job() { # NAME ANNOTATIONS(json) [extra pod spec json fields]
	cat <<EOF
{"apiVersion":"batch/v1","kind":"Job","metadata":{"name":"$1"},
 "spec":{"backoffLimit":0,"template":{"metadata":{"annotations":$2},
  "spec":{"restartPolicy":"Never","containers":[{"name":"main","image":"python:3.12"${3:-}}]${4:-}}}}}
EOF
}

t=$(now)
job sim-ok '{"sim.sluice.dev/duration":"2s"}' | k apply -f - >/dev/null
job sim-fail '{"sim.sluice.dev/duration":"1s","sim.sluice.dev/exit-code":"3","sim.sluice.dev/message":"loss diverged"}' | k apply -f - >/dev/null
cat <<EOF | k apply -f - >/dev/null
{"apiVersion":"v1","kind":"Pod","metadata":{"name":"sim-bare","annotations":{"sim.sluice.dev/duration":"500ms","sim.sluice.dev/message":"accuracy=0.93"}},
 "spec":{"restartPolicy":"Never","containers":[{"name":"main","image":"python:3.12"}]}}
EOF
cat <<EOF | k apply -f - >/dev/null
{"apiVersion":"v1","kind":"Pod","metadata":{"name":"sim-gated","annotations":{"sim.sluice.dev/duration":"0s"}},
 "spec":{"restartPolicy":"Never","schedulingGates":[{"name":"sluice.dev/upstream"}],"containers":[{"name":"main","image":"python:3.12"}]}}
EOF

# Shortest first, so that each wait returns when its own step ends.
if k wait --for=jsonpath='{.status.phase}'=Succeeded pod/sim-bare --timeout=60s >/dev/null; then
	msg=$(k get pod sim-bare -o jsonpath='{.status.containerStatuses[0].state.terminated.message}')
	if [[ $msg == "accuracy=0.93" ]]; then
		pass "bare Pod Succeeded after $(since "$t")s with its termination message"
	else
		fail "bare Pod Succeeded with message '$msg'"
	fi
else
	fail "bare Pod did not succeed"
fi

if k wait --for=condition=Failed job/sim-fail --timeout=60s >/dev/null; then
	state=$(k get pod -l job-name=sim-fail -o jsonpath='{.items[0].status.containerStatuses[0].state.terminated.exitCode}/{.items[0].status.containerStatuses[0].state.terminated.message}/{.items[0].status.phase}')
	if [[ $state == "3/loss diverged/Failed" ]]; then
		pass "Job with exit code 3 Failed after $(since "$t")s (pod: exitCode 3, message, phase Failed)"
	else
		fail "Job sim-fail failed but its pod says $state"
	fi
else
	fail "Job sim-fail did not fail"
fi
if k wait --for=condition=Complete job/sim-ok --timeout=60s >/dev/null; then
	pass "Job with a 2s step Complete after $(since "$t")s"
else
	fail "Job sim-ok did not complete"
fi
# ---------------------------------------------------------------- volumes
t=$(now)
cat <<EOF | k apply -f - >/dev/null
{"apiVersion":"v1","kind":"PersistentVolumeClaim","metadata":{"name":"artifacts"},
 "spec":{"storageClassName":"sluice-local","accessModes":["ReadWriteMany"],"resources":{"requests":{"storage":"1Gi"}}}}
EOF
job sim-pvc '{"sim.sluice.dev/duration":"1s"}' ',"volumeMounts":[{"name":"a","mountPath":"/artifacts"}]' \
	',"volumes":[{"name":"a","persistentVolumeClaim":{"claimName":"artifacts"}}]' | k apply -f - >/dev/null
if k wait --for=jsonpath='{.status.phase}'=Bound pvc/artifacts --timeout=60s >/dev/null; then
	pv=$(k get pvc artifacts -o jsonpath='{.spec.volumeName}')
	if [[ -d $VOLUME_ROOT/$pv ]]; then
		pass "sluice-local claim Bound after $(since "$t")s ($VOLUME_ROOT/$pv)"
	else
		fail "claim Bound to $pv but $VOLUME_ROOT/$pv is missing"
	fi
	if k wait --for=condition=Complete job/sim-pvc --timeout=60s >/dev/null; then
		pass "Job mounting the claim Complete after $(since "$t")s"
	else
		fail "Job sim-pvc did not complete"
	fi
	k delete job sim-pvc --wait=true >/dev/null
	k delete pvc artifacts --wait=true >/dev/null
	for _ in $(seq 100); do [[ -d $VOLUME_ROOT/$pv ]] || break; sleep 0.1; done
	if [[ ! -d $VOLUME_ROOT/$pv ]]; then pass "volume directory removed with its claim"; else fail "$VOLUME_ROOT/$pv left behind"; fi
else
	fail "claim of class sluice-local not Bound"
fi

# -------------------------------------------------------------------- gpu
t=$(now)
cat <<EOF | k apply -f - >/dev/null
{"apiVersion":"v1","kind":"Pod","metadata":{"name":"sim-gpu","annotations":{"sim.sluice.dev/duration":"1s"}},
 "spec":{"restartPolicy":"Never","nodeSelector":{"cloud.google.com/gke-accelerator":"nvidia-tesla-t4"},
  "tolerations":[{"key":"nvidia.com/gpu","operator":"Exists","effect":"NoSchedule"}],
  "containers":[{"name":"train","image":"python:3.12","resources":{"limits":{"nvidia.com/gpu":"1"}}}]}}
EOF
if k wait --for=jsonpath='{.status.phase}'=Succeeded pod/sim-gpu --timeout=60s >/dev/null; then
	node=$(k get pod sim-gpu -o jsonpath='{.spec.nodeName}')
	pool=$("$ROOT/bin/kubectl" get node "$node" -o jsonpath='{.metadata.labels.sluice\.dev/node-pool}')
	if [[ $pool == t4 ]]; then pass "GPU pod ran on $node (pool t4), Succeeded after $(since "$t")s"; else fail "GPU pod ran on $node (pool $pool)"; fi
else
	fail "GPU pod did not succeed"
fi

# ------------------------------------------------------------------ gated
gated=$(k get pod sim-gated -o jsonpath='{.status.phase}/{.spec.nodeName}/{.status.containerStatuses}')
if [[ $gated == "Pending//" ]]; then pass "gated pod left alone (Pending, unbound, no container status)"; else fail "gated pod: $gated"; fi

echo "$passed passed, $failed failed"
((failed == 0))
