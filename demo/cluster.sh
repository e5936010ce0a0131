#!/usr/bin/env bash
# The changegate walkthrough on the local control plane (`make demo`, which
# runs `make up` first). An MSP runs client A's payments API: a change is
# requested, refused by admission until approved and inside a window,
# approved by the client, rolled out, fails, and is backed out; the audit
# trail stays on the ChangeRequest. Every command is printed before it runs.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export KUBECONFIG="$PWD/.cluster/kubeconfig"
NS=client-a-prod

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
run() { printf '$ %s\n' "$*"; "$@"; }
# Runs a command that changegate must refuse; fails the demo if it is admitted.
refused() {
  printf '$ %s\n' "$*"
  if out="$("$@" 2>&1)"; then echo "unexpected: admitted: $out" >&2; exit 1; fi
  printf '%s\n' "$out"
}
# The webhook reads its own caches; give them a moment to see a new object.
until_admitted() {
  local deadline=$((SECONDS + 20))
  printf '$ %s\n' "$*"
  until out="$("$@" 2>&1)"; do
    ((SECONDS < deadline)) || { echo "$out" >&2; exit 1; }
    sleep 0.5
  done
  printf '%s\n' "$out"
}
# Waits until a server-side dry run of the command is refused: the webhook's
# caches show the namespace governed. Runs nothing for real.
until_gated() {
  local deadline=$((SECONDS + 20))
  while "$@" --dry-run=server >/dev/null 2>&1; do
    ((SECONDS < deadline)) || { echo "changegate does not gate: $*" >&2; exit 1; }
    sleep 0.5
  done
}
at() { date -u -d "$1" +%Y-%m-%dT%H:%M:%SZ; }

say "The local control plane: a real kube-apiserver with kwok nodes, changegate running as a local process"
run kubectl get nodes
run kubectl get validatingwebhookconfiguration,mutatingwebhookconfiguration

say "A fresh start for client A (the demo can be re-run)"
kubectl delete namespace "$NS" --ignore-not-found --wait=true >/dev/null
kubectl delete changepolicy client-a --ignore-not-found >/dev/null
kubectl delete maintenancewindow client-a-weekly client-a-tonight --ignore-not-found >/dev/null
run kubectl create namespace "$NS"
run kubectl -n "$NS" create deployment payments-api --image=registry.example.com/client-a/payments-api:2.4.0 --replicas=3
kubectl -n "$NS" patch deployment payments-api -p '{"spec":{"progressDeadlineSeconds":15}}' >/dev/null
run kubectl -n "$NS" rollout status deployment/payments-api --timeout=90s
kubectl apply -f tests/fixtures/rbac.yaml >/dev/null
kubectl -n "$NS" create rolebinding requesters --clusterrole=changegate-e2e-requester --group=client-a:requesters >/dev/null
kubectl -n "$NS" create rolebinding approvers --clusterrole=changegate-e2e-approver --group=client-a:approvers >/dev/null

say "The MSP puts client A under change control: a policy, the weekly window, and the tenant label"
run kubectl apply -f examples/policy-client-a.yaml -f examples/window-client-a-weekly.yaml
run kubectl label namespace "$NS" changegate.dev/tenant=client-a
run kubectl get cpol,mw

say "An unplanned change is refused, with what to do next"
until_gated kubectl -n "$NS" set image deployment/payments-api payments-api=registry.example.com/client-a/payments-api:2.4.1
refused kubectl -n "$NS" set image deployment/payments-api payments-api=registry.example.com/client-a/payments-api:2.4.1

say "Bob (MSP engineer) requests the change; changegate records who asked"
cat <<CHG | run kubectl --as=bob --as-group=client-a:requesters -n "$NS" apply -f -
apiVersion: changegate.dev/v1alpha1
kind: ChangeRequest
metadata: {name: chg-0142}
spec:
  type: Normal
  title: Upgrade payments-api to 2.4.1
  justification: 2.4.1 fixes a card-token leak in request logs.
  risk: Medium
  targets: [{kind: Deployment, name: payments-api}]
  backout: {strategy: Automatic, plan: Restore the previous ReplicaSet (2.4.0).}
CHG
run kubectl -n "$NS" get chg chg-0142 -o jsonpath='requested-by: {.metadata.annotations.changegate\.dev/requested-by}{"\n"}'
refused kubectl -n "$NS" set image deployment/payments-api payments-api=registry.example.com/client-a/payments-api:2.4.1

say "Bob cannot approve his own change (separation of duties)"
refused kubectl --as=bob --as-group=client-a:approvers -n "$NS" patch chg chg-0142 --subresource=status --type=merge \
  -p '{"status":{"approvals":[{"decision":"Approved","comment":"lgtm"}]}}'

say "Alice, client A's approver, approves; the record is stamped with her identity"
run kubectl --as=alice --as-group=client-a:approvers -n "$NS" patch chg chg-0142 --subresource=status --type=merge \
  -p '{"status":{"approvals":[{"decision":"Approved","approver":"someone-else","comment":"Approved for this weekend"}]}}'
run kubectl -n "$NS" get chg chg-0142 -o jsonpath='{range .status.approvals[*]}{.decision} by {.approver} ({.groups}) at {.at}: {.comment}{"\n"}{end}'

say "Approved, but outside the maintenance window: still refused, with the next opening in Berlin time"
refused kubectl -n "$NS" set image deployment/payments-api payments-api=registry.example.com/client-a/payments-api:2.4.1

say "The MSP opens an extra window tonight for client A"
cat <<MW | run kubectl apply -f -
apiVersion: changegate.dev/v1alpha1
kind: MaintenanceWindow
metadata: {name: client-a-tonight}
spec:
  tenants: [client-a]
  timeZone: Europe/Berlin
  schedule:
    ranges: [{start: "$(at '-10 minutes')", end: "$(at '+2 hours')"}]
MW

say "Inside the window the approved change deploys"
until_admitted kubectl -n "$NS" set image deployment/payments-api payments-api=registry.example.com/client-a/payments-api:2.4.1
run kubectl -n "$NS" rollout status deployment/payments-api --timeout=90s

say "A follow-up build is bad (its tag ends in -fail): the rollout stalls at its progress deadline"
run kubectl -n "$NS" set image deployment/payments-api payments-api=registry.example.com/client-a/payments-api:2.4.2-fail
if kubectl -n "$NS" rollout status deployment/payments-api --timeout=90s; then
  echo "unexpected: the bad rollout succeeded" >&2; exit 1
fi
run kubectl -n "$NS" get deployment payments-api -o jsonpath='{range .status.conditions[*]}{.type}={.status} ({.reason}){"\n"}{end}'

say "Backout per the plan: back to the previous ReplicaSet, still under chg-0142 in the open window"
run kubectl -n "$NS" rollout undo deployment/payments-api
run kubectl -n "$NS" rollout status deployment/payments-api --timeout=90s
run kubectl -n "$NS" get deployment payments-api -o wide

say "Audit evidence stays on the change: approvals are append-only"
refused kubectl -n "$NS" patch chg chg-0142 --subresource=status --type=merge -p '{"status":{"approvals":[]}}'
run kubectl -n "$NS" get chg chg-0142 -o yaml

say "Done. 'make down' stops the operator and the cluster."
