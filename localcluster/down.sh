#!/usr/bin/env bash
# Stops every process of the local control plane and leaves none behind.
# The cluster's data stays in .cluster/data until cluster-reset.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
quiet=0; [[ "${1:-}" == "--quiet" ]] && quiet=1
# The operator talks to this cluster: it goes first.
stop_operator
stop_server

for ((i = ${#COMPONENTS[@]} - 1; i >= 0; i--)); do
  c="${COMPONENTS[i]}"
  pid="$(pid_of "$c")"
  if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null; then
    ((quiet)) || log "stopping $c ($pid)"
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$RUN/$c.pid"
done
# Strays (a lost pid file): a component binary whose command line names
# this cluster's directory. Other commands naming it (a `tail -f` of a
# log) are left alone.
names="$(IFS='|'; echo "${COMPONENTS[*]}")"
stray="^[^ ]*/($names) .*$CLUSTER_DIR/"
if pgrep -f -- "$stray" >/dev/null 2>&1; then
  pkill -KILL -f -- "$stray" || true
fi
((quiet)) || log "stopped (data kept in $DATA; make cluster-reset wipes it)"
