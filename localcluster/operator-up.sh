#!/usr/bin/env bash
# Runs the changegate operator as a local process against the local control
# plane (`make up`): installs the CRDs, (re)starts the operator from the
# current build with its webhooks registered on loopback, and returns once
# the webhooks answer. Logs: .cluster/logs/operator.log; pid: .cluster/operator.pid.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

BIN="${CHANGEGATE_BIN:-$REPO_ROOT/target/debug/changegate}"
[[ -x "$BIN" ]] || die "no operator binary at $BIN: run 'cargo build' (make up does)"
[[ -f "$KUBECONFIG_PATH" ]] || die "no cluster: run 'make cluster-up' (make up does)"

stop_operator

kubectl_admin apply --server-side --force-conflicts --field-manager=changegate-install -f "$REPO_ROOT/crds/changegate.dev.yaml" >/dev/null
kubectl_admin wait --for=condition=Established --timeout=60s -f "$REPO_ROOT/crds/changegate.dev.yaml" >/dev/null
kubectl_admin create namespace "$OPERATOR_NAMESPACE" --dry-run=client -o yaml | kubectl_admin apply -f - >/dev/null

log "starting the operator ($BIN)"
# The admin certificate's user (CN=changegate-admin) is the controller identity locally.
KUBECONFIG="$KUBECONFIG_PATH" RUST_LOG="${RUST_LOG:-info,kube=warn}" setsid nohup "$BIN" agent \
  --namespace "$OPERATOR_NAMESPACE" \
  --webhook-addr "127.0.0.1:$WEBHOOK_PORT" --health-addr "127.0.0.1:$HEALTH_PORT" \
  --webhook-url "https://127.0.0.1:$WEBHOOK_PORT" \
  --controller-user changegate-admin \
  "$@" >>"$LOGS/operator.log" 2>&1 </dev/null &
echo $! >"$OPERATOR_PID_FILE"

operator_alive() { kill -0 "$(cat "$OPERATOR_PID_FILE")" 2>/dev/null || { tail -20 "$LOGS/operator.log"; echo "the operator exited; see $LOGS/operator.log"; return 3; }; }
ready() { operator_alive && curl -fsS "http://127.0.0.1:$HEALTH_PORT/readyz"; }
wait_for "the operator to be ready" 60 ready
# The webhooks answer when the API server relays their verdict: a window
# with an unknown time zone is refused by changegate, not by the schema.
webhook_answers() {
  local out
  out="$(kubectl_admin create --dry-run=server -o name -f - 2>&1 <<'MW' || true
apiVersion: changegate.dev/v1alpha1
kind: MaintenanceWindow
metadata: {name: changegate-readiness-probe}
spec: {timeZone: Nowhere/Atlantis, schedule: {cron: "0 2 * * SAT", duration: 1h}}
MW
)"
  [[ "$out" == *"unknown time zone"* ]] || { echo "$out"; return 1; }
}
wait_for "the admission webhooks to answer" 60 webhook_answers
log "operator ready: webhooks on https://127.0.0.1:$WEBHOOK_PORT, health on http://127.0.0.1:$HEALTH_PORT"
