#!/usr/bin/env bash
# Stops the local operator process started by `make up`.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
stop_operator
