#!/usr/bin/env bash
# Stops the agent and the server processes started by `make up`.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
stop_operator
stop_server
