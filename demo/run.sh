#!/usr/bin/env bash
# The changegate walkthrough on the local control plane (`make demo`).
# Today it shows the ground everything stands on: the changegate CRDs served
# by a real API server, and a tenant's Deployment rolling out, stalling on a
# bad image and being rolled back.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export KUBECONFIG="$PWD/.cluster/kubeconfig"
NS=client-a-prod

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
run() { printf '$ %s\n' "$*"; "$@"; }

say "The local control plane: a real kube-apiserver with kwok nodes"
run kubectl get nodes

say "Install the changegate CRDs, generated from the Rust types"
run kubectl apply --server-side --force-conflicts -f crds/changegate.dev.yaml
run kubectl wait --for=condition=Established --timeout=60s -f crds/changegate.dev.yaml

say "Client A's production namespace is governed: it carries the tenant label"
kubectl create namespace "$NS" --dry-run=client -o yaml | kubectl apply -f - >/dev/null
run kubectl label namespace "$NS" changegate.dev/tenant=client-a --overwrite

say "The MSP's governance objects: a policy and a weekly maintenance window"
run kubectl apply -f examples/policy-client-a.yaml -f examples/window-client-a-weekly.yaml
run kubectl get cpol,mw

say "A change request for the payments API"
run kubectl apply -n "$NS" -f examples/change-normal.yaml
run kubectl get chg -n "$NS"

say "payments-api rolls out three replicas"
kubectl -n "$NS" delete deployment payments-api --ignore-not-found >/dev/null
run kubectl -n "$NS" create deployment payments-api --image=registry.example.com/client-a/payments-api:2.4.0 --replicas=3
kubectl -n "$NS" patch deployment payments-api -p '{"spec":{"progressDeadlineSeconds":15}}' >/dev/null
run kubectl -n "$NS" rollout status deployment/payments-api --timeout=90s

say "A bad image (tag ends in -fail) never becomes ready: the rollout hits its deadline"
run kubectl -n "$NS" set image deployment/payments-api payments-api=registry.example.com/client-a/payments-api:2.4.1-fail
if kubectl -n "$NS" rollout status deployment/payments-api --timeout=90s; then
  echo "unexpected: the bad rollout succeeded" >&2; exit 1
fi
run kubectl -n "$NS" get deployment payments-api -o jsonpath='{range .status.conditions[*]}{.type}={.status} ({.reason}){"\n"}{end}'

say "Backout: roll back to the previous ReplicaSet"
run kubectl -n "$NS" rollout undo deployment/payments-api
run kubectl -n "$NS" rollout status deployment/payments-api --timeout=90s
run kubectl -n "$NS" get deployment payments-api -o wide

say "Done. The cluster keeps running; 'make cluster-down' stops it."
