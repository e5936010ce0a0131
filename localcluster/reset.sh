#!/usr/bin/env bash
# Stops the local control plane and wipes its data, certificates and logs.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
"$LC_DIR/down.sh"
rm -rf "$DATA" "$PKI" "$LOGS" "$RUN" "$KUBECONFIG_PATH"
log "wiped $CLUSTER_DIR"
