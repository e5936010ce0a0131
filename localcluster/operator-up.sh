#!/usr/bin/env bash
# Runs changegate against the local control plane (`make up`): (re)starts a
# server on a fresh embedded database with an administrator and this
# cluster registered, then the agent from the current build, with its
# webhook registered on loopback and its bundle long-polled from that
# server; returns once both answer. Logs: .cluster/logs/{server,operator}.log;
# admin token: .cluster/server/admin-token.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

BIN="${CHANGEGATE_BIN:-$REPO_ROOT/target/debug/changegate}"
[[ -x "$BIN" ]] || die "no changegate binary at $BIN: run 'cargo build' (make up does)"
[[ -f "$KUBECONFIG_PATH" ]] || die "no cluster: run 'make cluster-up' (make up does)"

stop_operator
stop_server

kubectl_admin create namespace "$OPERATOR_NAMESPACE" --dry-run=client -o yaml | kubectl_admin apply -f - >/dev/null
# The custom resources, as generated into crds/ (the chart installs the
# same files); a kind of earlier versions that is not served any more goes.
kubectl_admin delete crd changepolicies.changegate.dev --ignore-not-found >/dev/null
kubectl_admin apply --server-side --force-conflicts --field-manager=changegate-up -f "$REPO_ROOT/crds/" >/dev/null
kubectl_admin wait --for=condition=Established --timeout=60s \
  crd/changerequests.changegate.dev crd/releases.changegate.dev crd/maintenancewindows.changegate.dev >/dev/null

# The server: a fresh embedded database per `make up`, an administrator,
# and this cluster registered as `local` with its agent token.
rm -rf "$SERVER_DIR" "$AGENT_CACHE"
mkdir -p "$SERVER_DIR"
log "starting the server on $SERVER_URL ($BIN)"
RUST_LOG="${RUST_LOG:-info}" setsid nohup "$BIN" serve --listen "127.0.0.1:$SERVER_PORT" \
  --data-dir "$SERVER_DIR/data" --public-url "$SERVER_URL" >>"$LOGS/server.log" 2>&1 </dev/null &
echo $! >"$SERVER_PID_FILE"
server_alive() { kill -0 "$(cat "$SERVER_PID_FILE")" 2>/dev/null || { tail -20 "$LOGS/server.log"; echo "the server exited; see $LOGS/server.log"; return 3; }; }
server_ready() { server_alive && curl -fsS "$SERVER_URL/readyz"; }
wait_for "the server to be ready" 60 server_ready
CHANGEGATE_DATA_DIR="$SERVER_DIR/data" "$BIN" admin create-user --email admin@msp.example --name "Local admin" --admin >/dev/null
CHANGEGATE_DATA_DIR="$SERVER_DIR/data" "$BIN" admin token admin@msp.example >"$SERVER_DIR/admin-token"
curl -fsS -X POST "$SERVER_URL/api/v1/clusters" -H "authorization: Bearer $(cat "$SERVER_DIR/admin-token")" \
  -H 'content-type: application/json' -d "{\"name\": \"$CLUSTER_NAME\"}" \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])' >"$SERVER_DIR/agent-token"

# The operator runs as the chart's service account (the admin credential
# impersonating it), bound to the chart's ClusterRole and Role: a
# permission the chart lacks fails here, not in a client's cluster. The
# cluster-scoped names get a suffix: the chart's own RBAC test installs
# and removes the chart's names.
helm template changegate "$REPO_ROOT/charts/changegate" --namespace "$OPERATOR_NAMESPACE" \
  --set server.url="$SERVER_URL" --set changegate-server.enabled=false \
  --show-only templates/serviceaccount.yaml --show-only templates/rbac.yaml --show-only templates/roles.yaml \
  | sed 's/changegate-operator$/changegate-operator-up/; s/name: changegate-operator}/name: changegate-operator-up}/' \
  | kubectl_admin apply -n "$OPERATOR_NAMESPACE" -f - >/dev/null
OPERATOR_KUBECONFIG="$CLUSTER_DIR/operator.kubeconfig"
python3 - "$KUBECONFIG_PATH" "$OPERATOR_KUBECONFIG" "system:serviceaccount:$OPERATOR_NAMESPACE:changegate" <<'PY'
import sys
source, target, user = sys.argv[1:]
text = open(source).read()
assert "  user:\n" in text, "the admin kubeconfig has no user entry to extend"
open(target, "w").write(text.replace("  user:\n", f"  user:\n    as: {user}\n", 1))
PY
chmod 600 "$OPERATOR_KUBECONFIG"

log "starting the operator ($BIN) as the chart's service account"
KUBECONFIG="$OPERATOR_KUBECONFIG" RUST_LOG="${RUST_LOG:-info,kube=warn}" setsid nohup "$BIN" operator \
  --namespace "$OPERATOR_NAMESPACE" \
  --webhook-addr "127.0.0.1:$WEBHOOK_PORT" --health-addr "127.0.0.1:$HEALTH_PORT" \
  --webhook-url "https://127.0.0.1:$WEBHOOK_PORT" \
  --server "$SERVER_URL" --token-file "$SERVER_DIR/agent-token" --cache-dir "$AGENT_CACHE" \
  "$@" >>"$LOGS/operator.log" 2>&1 </dev/null &
echo $! >"$OPERATOR_PID_FILE"

operator_alive() { kill -0 "$(cat "$OPERATOR_PID_FILE")" 2>/dev/null || { tail -20 "$LOGS/operator.log"; echo "the agent exited; see $LOGS/operator.log"; return 3; }; }
ready() { operator_alive && curl -fsS "http://127.0.0.1:$HEALTH_PORT/readyz"; }
wait_for "the agent to be ready" 60 ready
# The webhook answers when the API server relays its verdict: a namespace
# labelled for no tenant in particular is refused by changegate itself.
kubectl_admin apply -f - >/dev/null <<'NS'
apiVersion: v1
kind: Namespace
metadata: {name: changegate-probe, labels: {changegate.dev/tenant: ""}}
NS
webhook_answers() {
  local out
  out="$(kubectl_admin create --dry-run=server -o name -f - 2>&1 <<'PROBE' || true
apiVersion: apps/v1
kind: Deployment
metadata: {name: changegate-readiness-probe, namespace: changegate-probe}
spec:
  selector: {matchLabels: {app: probe}}
  template:
    metadata: {labels: {app: probe}}
    spec: {containers: [{name: app, image: example.com/probe:1}]}
PROBE
)"
  [[ "$out" == *"denied the request: changegate: "* ]] || { echo "$out"; return 1; }
}
wait_for "the admission webhook to answer" 60 webhook_answers
log "operator ready: webhook on https://127.0.0.1:$WEBHOOK_PORT, health on http://127.0.0.1:$HEALTH_PORT; server on $SERVER_URL (admin token in $SERVER_DIR/admin-token)"
