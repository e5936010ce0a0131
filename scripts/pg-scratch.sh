#!/usr/bin/env bash
# A throwaway, loopback-only PostgreSQL 15 for development and tests (used
# by scripts/sqlx-prepare.sh). fsync is off: nothing here needs to survive
# a crash. As root the server runs as the `postgres` OS user, because
# initdb and postgres refuse to run as root.
# Usage: scripts/pg-scratch.sh start DIR   prints postgres://app:secret@127.0.0.1:PORT/postgres
#        scripts/pg-scratch.sh stop DIR
# Only the URL goes to stdout; progress and errors go to stderr.
set -euo pipefail

PGBIN=${CHANGEGATE_TEST_PG_BIN:-/usr/lib/postgresql/15/bin}
PASSWORD=secret

die() { echo "pg-scratch: $*" >&2; exit 1; }

usage() { die "usage: $0 start|stop DIR"; }

[[ $# -eq 2 ]] || usage
cmd=$1
dir=$2

# Run a PostgreSQL binary as an unprivileged user: postgres when we are root.
as_owner() {
  if [[ $(id -u) -eq 0 ]]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

start() {
  [[ -x $PGBIN/initdb && -x $PGBIN/pg_ctl ]] ||
    die "no PostgreSQL binaries in $PGBIN: run apt-get install postgresql-15 (or set CHANGEGATE_TEST_PG_BIN)"
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  [[ ! -e $dir/data ]] || die "$dir/data already exists: stop and remove the old instance first"
  umask 077
  printf '%s\n' "$PASSWORD" >"$dir/pw"
  if [[ $(id -u) -eq 0 ]]; then
    chown -R postgres: "$dir"
    # mktemp -d makes 0700 directories: the postgres user must be able to
    # reach DIR through its parents, and we would rather say so than chmod them.
    runuser -u postgres -- test -w "$dir" ||
      die "the postgres user cannot reach $dir (make its parent directories searchable, e.g. chmod o+x)"
  fi
  as_owner "$PGBIN/initdb" -D "$dir/data" -U app --pwfile="$dir/pw" \
    --auth-local=trust --auth-host=scram-sha-256 -E UTF8 --locale=C.UTF-8 \
    >"$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log" >&2; die "initdb failed"; }
  # The port is free when picked but may be taken before postgres binds it:
  # try a few.
  local port attempt
  for attempt in 1 2 3; do
    port=$(free_port)
    if as_owner "$PGBIN/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 30 -o \
      "-p $port -c listen_addresses=127.0.0.1 -k $dir -c fsync=off -c synchronous_commit=off -c full_page_writes=off" \
      start >/dev/null 2>>"$dir/pg_ctl.log"; then
      echo "postgres://app:$PASSWORD@127.0.0.1:$port/postgres"
      return 0
    fi
    echo "pg-scratch: start on port $port failed (attempt $attempt)" >&2
  done
  tail -n 20 "$dir/server.log" >&2 || true
  die "PostgreSQL did not start in $dir (log: $dir/server.log)"
}

stop() {
  [[ -d $dir/data ]] || return 0
  [[ -f $dir/data/postmaster.pid ]] || return 0
  as_owner "$PGBIN/pg_ctl" -D "$dir/data" -m fast -w -t 30 stop >/dev/null
}

case $cmd in
  start) start ;;
  stop) stop ;;
  *) usage ;;
esac
