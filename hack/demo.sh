#!/usr/bin/env bash
# Runs the example ML pipeline on the local cluster (started by dev-up) and
# shows it until the run ends. The cluster is left up.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
export KUBECONFIG=${KUBECONFIG_OVERRIDE:-$ROOT/.kwok/kubeconfig}
KUBECTL="$ROOT/bin/kubectl"
EXAMPLE=$ROOT/examples/ml-pipeline.yaml
RUN=churn-demo

# A previous demo's run has finished: remove it so this one starts fresh.
"$KUBECTL" delete -f "$EXAMPLE" --ignore-not-found --wait=true >/dev/null
"$KUBECTL" delete pvc "sluice-$RUN" --ignore-not-found --wait=true >/dev/null

echo "Applying $EXAMPLE (preprocess -> train -> evaluate):"
"$KUBECTL" apply -f "$EXAMPLE"
start=$(date +%s%N)
"$ROOT/bin/kubectl-sluice" status "$RUN" --wait --timeout 5m
end=$(date +%s%N)
ms=$(((end - start) / 1000000))
printf '\nThe run took %d.%03ds from apply to its last task.\n' $((ms / 1000)) $((ms % 1000))
cat <<MSG

Look around:
  export KUBECONFIG=$KUBECONFIG
  $KUBECTL get jobs,pods,pvc -l sluice.dev/run=$RUN -L sluice.dev/phase
  $KUBECTL get events --field-selector reason=Released
  bin/kubectl-sluice status $RUN
  curl -s http://127.0.0.1:18080/metrics | grep ^sluice_
Tear down:
  make dev-down
MSG
