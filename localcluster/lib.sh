# Shared settings for the local control-plane scripts. Sourced, not run.
# shellcheck shell=bash

LC_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$LC_DIR/.." && pwd)"
CLUSTER_DIR="${CHANGEGATE_CLUSTER_DIR:-$REPO_ROOT/.cluster}"
PKI="$CLUSTER_DIR/pki"
LOGS="$CLUSTER_DIR/logs"
RUN="$CLUSTER_DIR/run"
DATA="$CLUSTER_DIR/data"
KUBECONFIG_PATH="$CLUSTER_DIR/kubeconfig"
# The kubectl built with the control plane (build.sh), when present.
PATH="${CHANGEGATE_CACHE:-$HOME/.cache/changegate}/bin:$PATH"

# Loopback ports; override to run two clusters side by side.
ETCD_PORT="${CHANGEGATE_ETCD_PORT:-23790}"
ETCD_PEER_PORT="${CHANGEGATE_ETCD_PEER_PORT:-23800}"
APISERVER_PORT="${CHANGEGATE_APISERVER_PORT:-16443}"
KCM_PORT="${CHANGEGATE_KCM_PORT:-10357}"
SCHEDULER_PORT="${CHANGEGATE_SCHEDULER_PORT:-10359}"
KWOK_PORT="${CHANGEGATE_KWOK_PORT:-10347}"
NODE_COUNT="${CHANGEGATE_NODES:-3}"

# Start order; cluster-down stops them in reverse.
COMPONENTS=(etcd kube-apiserver kube-controller-manager kube-scheduler kwok)

log() { printf '[cluster] %s\n' "$*" >&2; }
die() { printf '[cluster] error: %s\n' "$*" >&2; exit 1; }

pid_of() { cat "$RUN/$1.pid" 2>/dev/null || true; }
running() {
  local pid; pid="$(pid_of "$1")"
  [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null
}

# wait_for DESCRIPTION TIMEOUT_SECONDS COMMAND...: polls COMMAND until it
# succeeds; on time-out prints what the last attempt said. COMMAND exits 3
# when waiting is pointless (what it waits for has died): fail at once.
wait_for() {
  local what="$1" timeout="$2"; shift 2
  local deadline=$((SECONDS + timeout)) out
  until out="$("$@" 2>&1)"; do
    (($? == 3)) && die "gave up waiting for $what: $out"
    if ((SECONDS >= deadline)); then
      die "timed out after ${timeout}s waiting for $what; last output: $out"
    fi
    sleep 0.5
  done
}

# still_running NAME COMMAND...: COMMAND, unless component NAME has exited
# (status 3, with the end of its log, for wait_for).
still_running() {
  local name="$1"; shift
  running "$name" || { tail -5 "$LOGS/$name.log"; echo "$name exited; see $LOGS/$name.log"; return 3; }
  "$@"
}

kubectl_admin() { kubectl --kubeconfig "$KUBECONFIG_PATH" "$@"; }

# The operator as a local process (make up / make down).
OPERATOR_PID_FILE="$CLUSTER_DIR/operator.pid"
OPERATOR_NAMESPACE="${CHANGEGATE_NAMESPACE:-changegate-system}"
WEBHOOK_PORT="${CHANGEGATE_WEBHOOK_PORT:-9443}"
HEALTH_PORT="${CHANGEGATE_HEALTH_PORT:-9080}"

# The server the agent takes its bundles from (make up), on the embedded database.
SERVER_PID_FILE="$CLUSTER_DIR/server.pid"
SERVER_PORT="${CHANGEGATE_SERVER_PORT:-9180}"
SERVER_URL="http://127.0.0.1:$SERVER_PORT"
SERVER_DIR="$CLUSTER_DIR/server"
AGENT_CACHE="$CLUSTER_DIR/agent-cache"
# The name the server knows this cluster by; configuration items bind to it.
CLUSTER_NAME="${CHANGEGATE_CLUSTER_NAME:-local}"

# stop_process WHAT PID_FILE: TERM, up to 10 s, then KILL; removes the pid file.
stop_process() {
  local what="$1" file="$2" pid
  pid="$(cat "$file" 2>/dev/null || true)"
  if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null; then
    log "stopping the $what ($pid)"
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$file"
}
stop_server() { stop_process server "$SERVER_PID_FILE"; }
stop_operator() { stop_process agent "$OPERATOR_PID_FILE"; }
