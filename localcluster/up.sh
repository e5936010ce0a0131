#!/usr/bin/env bash
# Starts (or reuses) the local control plane on loopback: etcd,
# kube-apiserver, kube-controller-manager, kube-scheduler and kwok with fake
# nodes. Writes the admin kubeconfig to .cluster/kubeconfig and logs to
# .cluster/logs/. Data persists across cluster-down until cluster-reset.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

BIN="$("$LC_DIR/build.sh")"
mkdir -p "$PKI" "$LOGS" "$RUN" "$DATA"

healthy() {
  for c in "${COMPONENTS[@]}"; do running "$c" || return 1; done
  kubectl_admin get --raw /readyz >/dev/null 2>&1
}

if healthy; then
  log "reusing the running cluster (kubeconfig: $KUBECONFIG_PATH)"
  exit 0
fi
# Anything half-running is stopped first; data is kept.
"$LC_DIR/down.sh" --quiet

# ---------------------------------------------------------------- PKI
gen_cert() { # NAME CN ORG [SANS]
  local name="$1" cn="$2" org="$3" sans="${4:-}"
  [[ -f "$PKI/$name.crt" ]] && return
  local subj="/CN=$cn"; [[ -n "$org" ]] && subj="/O=$org$subj"
  openssl genrsa -out "$PKI/$name.key" 2048 2>/dev/null
  openssl req -new -key "$PKI/$name.key" -subj "$subj" -out "$PKI/$name.csr" 2>/dev/null
  local ext="$PKI/$name.ext"
  {
    echo "basicConstraints=CA:FALSE"
    echo "keyUsage=critical,digitalSignature,keyEncipherment"
    if [[ -n "$sans" ]]; then echo "extendedKeyUsage=serverAuth,clientAuth"; echo "subjectAltName=$sans"
    else echo "extendedKeyUsage=clientAuth"; fi
  } >"$ext"
  openssl x509 -req -in "$PKI/$name.csr" -CA "$PKI/ca.crt" -CAkey "$PKI/ca.key" -CAcreateserial \
    -days 3650 -sha256 -extfile "$ext" -out "$PKI/$name.crt" 2>/dev/null
  rm -f "$PKI/$name.csr" "$ext"
}

if [[ ! -f "$PKI/ca.crt" ]]; then
  log "creating the cluster CA and certificates in $PKI"
  openssl req -x509 -newkey rsa:2048 -nodes -keyout "$PKI/ca.key" -out "$PKI/ca.crt" \
    -days 3650 -subj "/CN=changegate-local-ca" 2>/dev/null
fi
gen_cert apiserver kube-apiserver "" \
  "DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,IP:127.0.0.1,IP:10.96.0.1"
gen_cert admin changegate-admin system:masters
gen_cert controller-manager system:kube-controller-manager ""
gen_cert scheduler system:kube-scheduler ""
gen_cert kwok changegate-kwok system:masters
gen_cert front-proxy-client front-proxy-client ""
[[ -f "$PKI/sa.key" ]] || {
  openssl genrsa -out "$PKI/sa.key" 2048 2>/dev/null
  openssl rsa -in "$PKI/sa.key" -pubout -out "$PKI/sa.pub" 2>/dev/null
}

write_kubeconfig() { # FILE CERTNAME
  local file="$1" cert="$2"
  cat >"$file" <<KUBECONFIG
apiVersion: v1
kind: Config
clusters:
- name: changegate-local
  cluster:
    server: https://127.0.0.1:$APISERVER_PORT
    certificate-authority-data: $(base64 -w0 "$PKI/ca.crt")
users:
- name: $cert
  user:
    client-certificate-data: $(base64 -w0 "$PKI/$cert.crt")
    client-key-data: $(base64 -w0 "$PKI/$cert.key")
contexts:
- name: changegate-local
  context: {cluster: changegate-local, user: $cert}
current-context: changegate-local
KUBECONFIG
  chmod 600 "$file"
}
write_kubeconfig "$KUBECONFIG_PATH" admin
write_kubeconfig "$PKI/controller-manager.kubeconfig" controller-manager
write_kubeconfig "$PKI/scheduler.kubeconfig" scheduler
write_kubeconfig "$PKI/kwok.kubeconfig" kwok

# ---------------------------------------------------------- processes
start() { # NAME ARGS...: runs BIN/NAME detached, logging to logs/NAME.log
  local name="$1"; shift
  log "starting $name"
  setsid nohup "$BIN/$name" "$@" >>"$LOGS/$name.log" 2>&1 </dev/null &
  echo $! >"$RUN/$name.pid"
}

start etcd --name changegate-local --data-dir "$DATA/etcd" \
  --listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
  --listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
  --initial-cluster "changegate-local=http://127.0.0.1:$ETCD_PEER_PORT" \
  --listen-metrics-urls "" --quota-backend-bytes 4294967296 --log-level warn
wait_for "etcd to be healthy" 60 still_running etcd curl -fsS "http://127.0.0.1:$ETCD_PORT/health"

start kube-apiserver --etcd-servers "http://127.0.0.1:$ETCD_PORT" \
  --bind-address 127.0.0.1 --advertise-address 127.0.0.1 --secure-port "$APISERVER_PORT" \
  --tls-cert-file "$PKI/apiserver.crt" --tls-private-key-file "$PKI/apiserver.key" \
  --client-ca-file "$PKI/ca.crt" \
  --service-account-issuer https://kubernetes.default.svc.cluster.local \
  --service-account-key-file "$PKI/sa.pub" --service-account-signing-key-file "$PKI/sa.key" \
  --service-cluster-ip-range 10.96.0.0/16 \
  --authorization-mode RBAC --anonymous-auth=false \
  --requestheader-client-ca-file "$PKI/ca.crt" --requestheader-allowed-names front-proxy-client \
  --requestheader-username-headers X-Remote-User --requestheader-group-headers X-Remote-Group \
  --requestheader-extra-headers-prefix X-Remote-Extra- \
  --proxy-client-cert-file "$PKI/front-proxy-client.crt" --proxy-client-key-file "$PKI/front-proxy-client.key" \
  --endpoint-reconciler-type none \
  --allow-privileged=true --profiling=true --v=1
wait_for "kube-apiserver /readyz" 120 still_running kube-apiserver kubectl_admin get --raw /readyz

# kwok renews node leases from one process; on a busy 2-core machine a
# renewal can come late, and with the default 50s grace the node lifecycle
# controller would mark every node NotReady and every fake pod unready.
start kube-controller-manager --kubeconfig "$PKI/controller-manager.kubeconfig" \
  --authentication-kubeconfig "$PKI/controller-manager.kubeconfig" \
  --authorization-kubeconfig "$PKI/controller-manager.kubeconfig" \
  --bind-address 127.0.0.1 --secure-port "$KCM_PORT" --leader-elect=false \
  --service-account-private-key-file "$PKI/sa.key" --root-ca-file "$PKI/ca.crt" \
  --use-service-account-credentials=true --controllers '*' --profiling=false --v=1 \
  --node-monitor-grace-period 10m

start kube-scheduler --kubeconfig "$PKI/scheduler.kubeconfig" \
  --authentication-kubeconfig "$PKI/scheduler.kubeconfig" \
  --authorization-kubeconfig "$PKI/scheduler.kubeconfig" \
  --bind-address 127.0.0.1 --secure-port "$SCHEDULER_PORT" --leader-elect=false --profiling=false --v=1

start kwok --kubeconfig "$PKI/kwok.kubeconfig" --config "$LC_DIR/kwok-stages.yaml" \
  --manage-all-nodes=false --manage-nodes-with-annotation-selector kwok.x-k8s.io/node=fake \
  --cidr 10.244.0.0/16 --node-ip 127.0.0.1 --server-address "127.0.0.1:$KWOK_PORT"

# Fake nodes: kwok marks them Ready and keeps their leases fresh.
for i in $(seq 1 "$NODE_COUNT"); do
  cat <<NODE
apiVersion: v1
kind: Node
metadata:
  name: kwok-node-$i
  annotations: {kwok.x-k8s.io/node: fake, node.alpha.kubernetes.io/ttl: "0"}
  labels: {type: kwok, kubernetes.io/hostname: kwok-node-$i, kubernetes.io/os: linux, kubernetes.io/arch: amd64}
status:
  allocatable: {cpu: "32", memory: 256Gi, pods: "250"}
  capacity: {cpu: "32", memory: 256Gi, pods: "250"}
NODE
  echo '---'
done | kubectl_admin apply -f - >/dev/null
kubectl_admin wait --for=condition=Ready node --all --timeout=120s >/dev/null
wait_for "the default service account" 60 kubectl_admin get serviceaccount default -n default

log "ready: $(kubectl_admin version -o json 2>/dev/null | sed -n 's/.*"gitVersion": "\(v[^"]*\)".*/\1/p' | tail -1) with $NODE_COUNT kwok nodes; export KUBECONFIG=$KUBECONFIG_PATH"
