#!/usr/bin/env bash
# Runs the example ML pipeline (examples/ml-pipeline.yaml) on the local
# cluster started by dev-up: its steps run in real containers on the real
# node (train on a simulated GPU). Shows the run until it ends, then what
# each step produced. The cluster is left up.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
export KUBECONFIG=${KUBECONFIG_OVERRIDE:-$ROOT/.kwok/kubeconfig}
KUBECTL="$ROOT/bin/kubectl"
EXAMPLE=$ROOT/examples/ml-pipeline.yaml
RUN=churn-demo

# A previous demo's run has finished: remove it so this one starts fresh.
"$KUBECTL" delete -f "$EXAMPLE" --ignore-not-found --wait=true >/dev/null
"$KUBECTL" delete pvc "sluice-$RUN" --ignore-not-found --wait=true >/dev/null

echo "Applying $EXAMPLE (ingest -> preprocess -> train -> evaluate -> deploy):"
"$KUBECTL" apply -f "$EXAMPLE"
start=$(date +%s%N)
"$ROOT/bin/kubectl-sluice" status "$RUN" --wait --timeout 5m
end=$(date +%s%N)
ms=$(((end - start) / 1000000))
printf '\nThe run took %d.%03ds from apply to its last task.\n' $((ms / 1000)) $((ms % 1000))

echo
"$ROOT/bin/kubectl-sluice" graph "$RUN"

echo
echo "What each step printed (kubectl logs job/<step>):"
for step in ingest preprocess train evaluate deploy; do
	phase=$("$KUBECTL" get job "$step" -o jsonpath='{.metadata.labels.sluice\.dev/phase}')
	if [[ $phase == Succeeded || $phase == Failed ]]; then
		printf '  %-10s %s\n' "$step" "$("$KUBECTL" logs "job/$step" --tail=1 2>&1)"
	else
		printf '  %-10s (%s: %s)\n' "$step" "$phase" "$("$KUBECTL" get job "$step" -o jsonpath='{.metadata.annotations.sluice\.dev/reason}')"
	fi
done

pv=$("$KUBECTL" get pvc "sluice-$RUN" -o jsonpath='{.spec.volumeName}')
dir=$("$KUBECTL" get pv "$pv" -o jsonpath='{.spec.hostPath.path}' 2>/dev/null || true)
if [[ -n $dir && -d $dir ]]; then
	echo
	echo "The run's volume (PersistentVolumeClaim sluice-$RUN, on this machine at ${dir#"$ROOT"/}):"
	(cd "$dir" && find . -type f -printf '  %-40P %8s bytes\n' | sort)
fi
cat <<MSG

Look around:
  export KUBECONFIG=$KUBECONFIG
  $KUBECTL get jobs,pods,pvc -l sluice.dev/run=$RUN -L sluice.dev/phase -o wide
  $KUBECTL get events --field-selector reason=Released
  $KUBECTL logs job/train
  bin/kubectl-sluice status $RUN
  bin/kubectl-sluice logs $RUN --all
  bin/kubectl-sluice graph $RUN -o svg > $RUN.svg
  bin/kubectl-sluice dashboard       # the runs and their graphs, live, in your browser
  bin/kubectl-sluice retry $RUN --dry-run
  $KUBECTL -n sluice-system get pods -o wide      # sluice itself, installed from its Helm chart
  leader=\$($KUBECTL -n sluice-system get lease sluice-controller.sluice.dev -o jsonpath='{.spec.holderIdentity}')
  $KUBECTL get --raw "/api/v1/namespaces/sluice-system/pods/\${leader%%_*}:8080/proxy/metrics" | grep ^sluice_
Tear down:
  make dev-down
MSG
