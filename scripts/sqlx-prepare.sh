#!/usr/bin/env bash
# Regenerate the committed sqlx offline query data (crates/store-*/.sqlx)
# after a query or a migration changed: each store crate is checked once
# against a scratch database of its own kind built from its migrations.
# Usage: scripts/sqlx-prepare.sh [sqlite] [postgres]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
targets=("${@:-sqlite postgres}")
scratch=$(mktemp -d)
# searchable, so that pg-scratch.sh run as root can hand $scratch/pg to the postgres user
chmod 711 "$scratch"
trap 'rm -rf "$scratch"' EXIT

prepare() { # crate database_url
  local crate=$1 url=$2 dir="$PWD/crates/$1/.sqlx"
  rm -rf "$dir" && mkdir -p "$dir"
  touch "crates/$crate/src/lib.rs"
  find "crates/$crate/src" -name '*.rs' -exec touch {} +
  DATABASE_URL="$url" SQLX_OFFLINE=false SQLX_OFFLINE_DIR="$dir" cargo check -q -p "changegate-$crate"
  echo "crates/$crate/.sqlx: $(ls "$dir" | wc -l) queries"
}

for t in ${targets[*]}; do
  case $t in
    sqlite)
      for m in crates/store-sqlite/migrations/*.sql; do sqlite3 "$scratch/prepare.db" < "$m"; done
      prepare store-sqlite "sqlite://$scratch/prepare.db"
      ;;
    postgres)
      url=$(scripts/pg-scratch.sh start "$scratch/pg")
      trap 'scripts/pg-scratch.sh stop "$scratch/pg"; rm -rf "$scratch"' EXIT
      for m in crates/store-postgres/migrations/*.sql; do psql -q -v ON_ERROR_STOP=1 "$url" -f "$m"; done
      prepare store-postgres "$url"
      ;;
    *) echo "unknown target $t (sqlite or postgres)" >&2; exit 2 ;;
  esac
done
