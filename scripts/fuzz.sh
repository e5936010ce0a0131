#!/usr/bin/env bash
# The API under a third-party fuzzer: schemathesis (PyPI, pinned in
# scripts/requirements-fuzz.txt, installed into target/fuzzenv) generates
# requests from /api/v1/openapi.json against a real `changegate serve`,
# on the embedded database and on a private PostgreSQL, with the tokens of
# two tenants' users in turn. It fails on any server error (5xx, a dropped
# connection) and on a route that answers without its authentication
# (schemathesis's ignored_auth check); what one tenant's token may reach
# of another tenant is the authorization matrix's business
# (crates/web/tests/api/matrix.rs).
# Usage: scripts/fuzz.sh   (CHANGEGATE_FUZZ_SECONDS per run, default 40)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

BIN=${CHANGEGATE_BIN:-$PWD/target/debug/changegate}
ST=$PWD/target/fuzzenv/bin/st
SECONDS_PER_RUN=${CHANGEGATE_FUZZ_SECONDS:-40}
work=$(mktemp -d)
chmod 711 "$work"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  [[ -d $work/pg ]] && scripts/pg-scratch.sh stop "$work/pg" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

[[ -x $BIN ]] || { echo "fuzz: no $BIN; run make build" >&2; exit 2; }
[[ -x $ST ]] || { echo "fuzz: no schemathesis in target/fuzzenv; run make fuzzdeps" >&2; exit 2; }

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# run_on NAME [DATABASE-URL]: a server on a fresh database, the MSP of the
# demo applied, then schemathesis with a token of each tenant.
run_on() {
  local name=$1 database=${2:-}
  local port url db_args=() log=$work/$name.log
  port=$(free_port)
  url=http://127.0.0.1:$port
  if [[ -n $database ]]; then
    db_args=(--database "$database")
  else
    db_args=(--data-dir "$work/$name-data")
  fi
  "$BIN" serve --listen "127.0.0.1:$port" --insecure-cookies --mail-dir "$work/$name-mail" "${db_args[@]}" >"$log" 2>&1 &
  pids+=($!)
  for _ in $(seq 300); do
    curl -fsS "$url/readyz" >/dev/null 2>&1 && break
    sleep 0.1
  done
  curl -fsS "$url/readyz" >/dev/null || { cat "$log" >&2; exit 1; }

  export CHANGEGATE_FUZZ_PASSWORD=fuzz-password-of-the-admin
  "$BIN" admin create-user --email admin@msp.example --name Admin --admin \
    --password-env CHANGEGATE_FUZZ_PASSWORD "${db_args[@]}" >/dev/null
  local admin
  admin=$("$BIN" admin token admin@msp.example --name fuzz "${db_args[@]}")
  CHANGEGATE_SERVER=$url CHANGEGATE_TOKEN=$admin "$BIN" apply -f demo/msp.yaml >/dev/null
  # client-a: an MSP engineer holding most roles there; client-b: its
  # business approver, a client user.
  "$BIN" admin create-user --email fuzz@msp.example --name Fuzz \
    --role client-a:requester --role client-a:implementer --role client-a:technical-approver \
    --role client-a:change-manager --role client-a:release-manager --role client-a:auditor \
    "${db_args[@]}" >/dev/null
  local token_a token_b
  token_a=$("$BIN" admin token fuzz@msp.example --name fuzz "${db_args[@]}")
  token_b=$("$BIN" admin token bob@client-b.example --name fuzz "${db_args[@]}")
  # Something to find: a change of each tenant.
  CHANGEGATE_SERVER=$url CHANGEGATE_TOKEN=$token_a "$BIN" change create --tenant client-a \
    --title "Fuzzed change" --risk production=no --risk outage=no --risk untested=no --risk no-backout=no >/dev/null

  for who in a b; do
    local token=$token_a
    [[ $who == b ]] && token=$token_b
    echo "[fuzz] $name, a token of client-$who, ${SECONDS_PER_RUN}s"
    # Left out: the long-polls (the agent's bundle, and the gate check,
    # whose `wait` holds a denied check up to a minute on purpose: past the
    # request timeout; its input is checked by the API tests), and revoking
    # tokens (a guessed id could be the fuzzer's own). Run from
    # the scratch folder: schemathesis keeps its cache in ./.schemathesis.
    (cd "$work" && "$ST" run "$url/api/v1/openapi.json" \
      --header "Authorization: Bearer $token" \
      --checks not_a_server_error,ignored_auth \
      --phases examples,coverage,fuzzing \
      --max-time "$SECONDS_PER_RUN" \
      --workers 2 \
      --request-timeout 15 \
      --suppress-health-check all \
      --exclude-path /api/v1/agent/bundle \
      --exclude-path /api/v1/gate/check \
      --exclude-path '/api/v1/tokens/{id}' \
      --no-color) ||
      { echo "[fuzz] $name, client-$who: schemathesis found failures (server log: $log)" >&2; tail -20 "$log" >&2; exit 1; }
  done
  if grep -q "panicked" "$log"; then
    echo "[fuzz] $name: the server panicked:" >&2
    grep -B2 -A5 "panicked" "$log" >&2
    exit 1
  fi
}

run_on sqlite
pg_url=$(scripts/pg-scratch.sh start "$work/pg")
run_on postgres "$pg_url"
echo "[fuzz] no server error, no ignored authentication, on both databases"
