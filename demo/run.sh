#!/usr/bin/env bash
# `make demo`: the MSP story on a fresh embedded database, driven through
# the CLI and the API. Every command is printed with the server's answer;
# at the end the server keeps running and the logins are printed.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

BIN=${CHANGEGATE_BIN:-target/debug/changegate}
LISTEN=${CHANGEGATE_DEMO_LISTEN:-127.0.0.1:8080}
DATA=${CHANGEGATE_DEMO_DATA:-.demo}
export CHANGEGATE_SERVER="http://$LISTEN"
export CHANGEGATE_DATA_DIR="$DATA"
PASSWORD=${CHANGEGATE_DEMO_PASSWORD:-changegate-demo}

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
run() { printf '$ %s\n' "$*"; "$@"; }
# A command changegate must refuse; the demo fails if it is accepted.
refused() {
  printf '$ %s\n' "$*"
  if out="$("$@" 2>&1)"; then echo "unexpected: accepted: $out" >&2; exit 1; fi
  printf '%s\n' "$out"
}
as() { local who=$1; shift; CHANGEGATE_TOKEN=${TOKENS[$who]} "$@"; }
number() { sed -n 's/^\(CHG-[0-9]*\) .*/\1/p' | head -1; }
release_number() { sed -n 's/^\(REL-[0-9]*\) .*/\1/p' | head -1; }

rm -rf "$DATA"
say "Start the server on a fresh embedded database ($DATA)"
# Plain HTTP on loopback: cookies without the Secure flag.
# E-mails are written to $DATA/mail as .eml files instead of being sent.
"$BIN" serve --listen "$LISTEN" --insecure-cookies --mail-dir "$DATA/mail" > "$DATA.log" 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true' EXIT
for _ in $(seq 100); do
  curl -fsS "$CHANGEGATE_SERVER/readyz" >/dev/null 2>&1 && break
  kill -0 $SERVER 2>/dev/null || { cat "$DATA.log" >&2; exit 1; }
  sleep 0.1
done
run curl -fsS "$CHANGEGATE_SERVER/readyz"; echo

say "Bootstrap: the MSP's administrator and staff (admin create-user works on the database directly)"
export CHANGEGATE_DEMO_PASSWORD=$PASSWORD
run "$BIN" admin create-user --email admin@msp.example --name "Ada (MSP admin)" --admin --password-env CHANGEGATE_DEMO_PASSWORD
declare -A TOKENS
TOKENS[admin]=$("$BIN" admin token admin@msp.example --name demo)

say "Policy as code: tenants, people, boards, policies, windows, templates, configuration items"
run as admin "$BIN" apply -f demo/msp.yaml
say "Applying the same file again changes nothing"
run as admin "$BIN" apply -f demo/msp.yaml
say "A bad file is refused whole, with the document, line and field"
printf 'kind: Tenant\nslug: client-c\nname: C\n---\nkind: Window\ntenant: client-c\nname: w\nspec:\n  timeZone: Mars/Olympus\n  schedule: { cron: { expr: "0 2 * * SAT", duration: 4h } }\n' > "$DATA/bad.yaml"
refused as admin "$BIN" apply -f "$DATA/bad.yaml"
run as admin "$BIN" change list --tenant client-c 2>&1 || true

for who in eve:"Eve (MSP engineer)":requester ian:"Ian (MSP implementer)":implementer \
           tom:"Tom (MSP technical approver)":technical-approver tina:"Tina (MSP technical approver)":technical-approver \
           cm:"Cody (change manager)":change-manager rita:"Rita (release manager)":release-manager \
           audrey:"Audrey (auditor)":auditor; do
  IFS=: read -r id name role <<<"$who"
  roles=(--role "client-a:$role")
  # Eve also reviews her peers' changes: she shows separation of duties.
  [[ $id == eve ]] && roles+=(--role client-a:technical-approver)
  [[ $role == auditor || $id == tina ]] || roles+=(--role "client-b:$role")
  "$BIN" admin create-user --email "$id@msp.example" --name "$name" "${roles[@]}" --password-env CHANGEGATE_DEMO_PASSWORD >/dev/null
  TOKENS[$id]=$("$BIN" admin token "$id@msp.example" --name demo)
done
for who in carol@client-a.example alice@client-a.example bob@client-b.example; do
  TOKENS[${who%%@*}]=$("$BIN" admin token "$who" --name demo)
  "$BIN" admin set-password "$who" --password-env CHANGEGATE_DEMO_PASSWORD >/dev/null
done
echo "MSP staff created: eve, ian, tom, tina, cm (change manager), rita (release manager), audrey (auditor); client users carol, alice, bob"

say "1. Client A, normal change: Eve raises a high-risk upgrade of the payments API"
out=$(as eve "$BIN" change create --tenant client-a --type normal --title "Upgrade payments API to 2.4.1" \
  --description "New settlement rules for the 2027 tariff" --ci payments-api \
  --artifact "registry.example/payments@sha256:4f1c9a" --risk production=yes --risk outage=yes --risk untested=no --risk no-backout=no \
  --implementation-plan "helm upgrade payments 2.4.1" --backout-plan "helm rollback payments" --test-plan "staging smoke tests")
echo "$out"; A1=$(number <<<"$out")
run as eve "$BIN" change submit "$A1" --tenant client-a
say "Eve cannot approve her own change (separation of duties), and Bob (client B) cannot even see it"
refused as eve "$BIN" change approve "$A1" --tenant client-a
refused as bob "$BIN" change show "$A1" --tenant client-a
say "Tom reviews it technically, Carol approves as Client A's business owner"
run as tom "$BIN" change approve "$A1" --tenant client-a -m "rollout plan reviewed"
run as carol "$BIN" change approve "$A1" --tenant client-a -m "OK for the weekend"
say "Ian may implement it only inside Client A's window (weekly, Saturday 02:00 Berlin) and outside the freeze"
printf '$ %s\n' "changegate change start $A1 --tenant client-a"
as ian "$BIN" change start "$A1" --tenant client-a 2>&1 || true

say "2. Client B, standard change from the pre-approved template: approved at submission, done, closed"
out=$(as eve "$BIN" change create --tenant client-b --type standard --title "Shared mailbox for accounting" --template add-mailbox --ci m365-tenant)
echo "$out"; B1=$(number <<<"$out")
run as eve "$BIN" change submit "$B1" --tenant client-b
run as ian "$BIN" change start "$B1" --tenant client-b
run as ian "$BIN" change complete "$B1" --tenant client-b --documentation "mailbox list in the client runbook"
say "The template pre-approves the M365 tenant only: the same template naming the edge firewall and an image is refused"
out=$(as eve "$BIN" change create --tenant client-b --type standard --title "Shared mailbox, and a firewall rule" --template add-mailbox \
  --ci edge-firewall --artifact registry.example/fw-rules@sha256:6666)
echo "$out"; B0=$(number <<<"$out")
refused as eve "$BIN" change submit "$B0" --tenant client-b

say "3. Client A, emergency in the year-end freeze: implemented first, approved retrospectively"
out=$(as eve "$BIN" change create --tenant client-a --type emergency --title "Block exploited VPN endpoint" \
  --risk production=yes --risk outage=no --risk untested=yes --risk no-backout=no --backout-plan "re-enable the endpoint")
echo "$out"; A2=$(number <<<"$out")
run as eve "$BIN" change submit "$A2" --tenant client-a
run as ian "$BIN" change start "$A2" --tenant client-a --note "active exploitation"
run as tom "$BIN" change approve "$A2" --tenant client-a -m "retrospective: correct call"
run as ian "$BIN" change complete "$A2" --tenant client-a --note "endpoint blocked"
run as ian "$BIN" change review "$A2" --tenant client-a --outcome succeeded --notes "contained in 20 minutes" --lessons "keep the ECAB on call"

say "4. Client B, a failed deployment rolled back, and its post-implementation review"
out=$(as eve "$BIN" change create --tenant client-b --type normal --title "Firewall rule set 2026.11" --ci edge-firewall \
  --risk production=yes --risk outage=no --risk untested=no --risk no-backout=no --backout-plan "restore rule set 2026.10")
echo "$out"; B2=$(number <<<"$out")
run as eve "$BIN" change submit "$B2" --tenant client-b
run as bob "$BIN" change approve "$B2" --tenant client-b -m "approved for tonight"
run as ian "$BIN" change start "$B2" --tenant client-b
run as ian "$BIN" change fail "$B2" --tenant client-b --note "VPN tunnels dropped" --rolled-back "rule set 2026.10"
run as ian "$BIN" change review "$B2" --tenant client-b --outcome rolled-back --notes "tunnel MTU changed" --lessons "test VPN paths in staging"

say "5. The gate: a pipeline asks before it ships client A's payments API (docs/gate.md)"
PIPELINE=$(as ian "$BIN" gate token --tenant client-a --name demo-pipeline)
echo "Ian minted a gate token for client A's pipeline: it reaches nothing but client A's gate"
GATE=(gate check --tenant client-a --workload prod-eu/payments/Deployment/payments-api)
echo "An image other than the one approved in $A1 is denied (exit 1):"
refused env CHANGEGATE_TOKEN="$PIPELINE" "$BIN" "${GATE[@]}" --artifact registry.example/payments@sha256:0bad
echo "The approved image ships only inside client A's window (exit 0 inside it, 1 with the next opening outside):"
printf '$ %s\n' "changegate ${GATE[*]} --artifact registry.example/payments@sha256:4f1c9a"
CHANGEGATE_TOKEN="$PIPELINE" "$BIN" "${GATE[@]}" --artifact registry.example/payments@sha256:4f1c9a || true
echo "A deployment reported without an approved change is recorded as unauthorized, for the auditor:"
refused env CHANGEGATE_TOKEN="$PIPELINE" "$BIN" "${GATE[@]}" --artifact registry.example/payments@sha256:0bad \
  --record --run https://ci.msp.example/runs/7
run curl -fsS -H "Authorization: Bearer ${TOKENS[audrey]}" "$CHANGEGATE_SERVER/api/v1/tenants/client-a/deployments"; echo

say "6. Waiting in the portal: a change for Tom (or Tina) to decide in the browser"
out=$(as eve "$BIN" change create --tenant client-a --type normal --title "Rotate the payments TLS certificate" \
  --description "The certificate expires on 2027-01-15" --ci payments-api \
  --risk production=yes --risk outage=no --risk untested=no --risk no-backout=no --backout-plan "restore the old certificate")
echo "$out"; A3=$(number <<<"$out")
run as eve "$BIN" change submit "$A3" --tenant client-a

say "7. A release: client A's normal change and client B's standard change, together in one shared window"
out=$(as eve "$BIN" change create --tenant client-a --type normal --title "Payments API 2.5: settlement reports" \
  --description "Adds the settlement report endpoint" --ci payments-api --artifact "registry.example/payments@sha256:7d2e01" \
  --risk production=yes --risk outage=yes --risk untested=no --risk no-backout=no \
  --implementation-plan "helm upgrade payments 2.5.0" --backout-plan "helm rollback payments" \
  --test-plan "staging smoke tests" --test-evidence "staging run: 148 of 148 tests green" --implementer ian@msp.example)
echo "$out"; A4=$(number <<<"$out")
run as eve "$BIN" change submit "$A4" --tenant client-a
run as tom "$BIN" change approve "$A4" --tenant client-a -m "technical review done"
run as carol "$BIN" change approve "$A4" --tenant client-a -m "approved for the release"
out=$(as eve "$BIN" change create --tenant client-b --type standard --title "Shared mailbox for the auditors" --template add-mailbox \
  --ci m365-tenant --test-evidence "created and removed in the test tenant" --implementer ian@msp.example)
echo "$out"; B3=$(number <<<"$out")
run as eve "$BIN" change submit "$B3" --tenant client-b
echo "The change manager agrees a release window for tonight with both clients (policy as code):"
from=$(date -u -d '-10 min' +%Y-%m-%dT%H:%M:%SZ); until=$(date -u -d '+3 hours' +%Y-%m-%dT%H:%M:%SZ)
for t in client-a client-b; do
  printf 'kind: Window\ntenant: %s\nname: release-night\nspec:\n  timeZone: Europe/Berlin\n  schedule:\n    ranges: [ { start: "%s", end: "%s" } ]\n---\n' "$t" "$from" "$until"
done > "$DATA/release-window.yaml"
run as cm "$BIN" apply -f "$DATA/release-window.yaml"
cat > "$DATA/runbook.yaml" <<RUNBOOK
- { kind: deploy, title: "Upgrade payments-api to 2.5.0", owner: ian@msp.example, change: $A4 }
- { kind: deploy, title: "Create the auditors' shared mailbox", owner: ian@msp.example, change: $B3 }
- { kind: validate, title: "Smoke tests of both clients", owner: ian@msp.example }
- { kind: rollback, title: "helm rollback payments to 2.4.1", owner: ian@msp.example, change: $A4 }
- { kind: rollback, title: "Remove the partial mailbox", owner: ian@msp.example, change: $B3 }
RUNBOOK
out=$(as rita "$BIN" release create --name "November release" --change "client-a/$A4" --change "client-b/$B3" \
  --start "$(date -u +%Y-%m-%dT%H:%M:%SZ)" --end "$(date -u -d '+2 hours' +%Y-%m-%dT%H:%M:%SZ)" --runbook "$DATA/runbook.yaml")
echo "$out"; REL=$(release_number <<<"$out")
echo "Rita (release manager) sees the conflicts where she chose the slot; Bob sees only client B's part:"
run as bob "$BIN" release show "$REL"
for key in $(as rita "$BIN" release show "$REL" --json | python3 -c 'import json,sys; print(" ".join(c["key"] for c in json.load(sys.stdin)["conflicts"] if c["overridable"] and not c["overridden_by"]))'); do
  echo "A conflict stands: only a change manager may let it stand, with a reason."
  run as cm "$BIN" release override "$REL" --conflict "$key" --reason "agreed with the client's CIO for this release (ticket MSP-4711)"
done
run as rita "$BIN" release authorize "$REL" --phase plan --note "CAB of this week"
run as rita "$BIN" release authorize "$REL" --phase build-and-test --note "both changes tested"
run as rita "$BIN" release authorize "$REL" --phase deploy --note "go"
run as ian "$BIN" release step "$REL" 1 --status done --evidence "helm revision 12: payments 2.5.0 running"
run as ian "$BIN" release step "$REL" 2 --status failed --evidence "mailbox refused: licence pool empty"
echo "The runbook stops at the failure; Rita authorizes the rollback, Ian runs it:"
refused as ian "$BIN" release step "$REL" 3 --status done --evidence "smoke tests"
run as rita "$BIN" release rollback "$REL" --reason "client B's step failed; both changes go back as planned"
run as ian "$BIN" release step "$REL" 4 --status done --evidence "payments-api 2.4.1 restored (helm revision 13)"
run as ian "$BIN" release step "$REL" 5 --status done --evidence "partial mailbox removed"
run as rita "$BIN" release finish "$REL"
echo "The release closes only after every change's post-implementation review:"
refused as rita "$BIN" release close "$REL"
run as ian "$BIN" change review "$A4" --tenant client-a --outcome rolled-back --notes "rolled back with client B's part" --lessons "stage client B separately"
run as ian "$BIN" change review "$B3" --tenant client-b --outcome rolled-back --notes "licence pool empty" --lessons "check licences in the plan"
run as rita "$BIN" release close "$REL"

say "8. KPIs of client A this month (the portal draws them at /t/client-a/kpis)"
printf '$ curl -fsS -H "Authorization: Bearer <audrey>" %s | python3 -m json.tool\n' "$CHANGEGATE_SERVER/api/v1/tenants/client-a/kpis"
curl -fsS -H "Authorization: Bearer ${TOKENS[audrey]}" "$CHANGEGATE_SERVER/api/v1/tenants/client-a/kpis" | python3 -m json.tool

say "9. The auditor exports client A's evidence of the month and verifies it offline"
run as audrey "$BIN" report evidence --tenant client-a --out "$DATA/evidence-client-a.tar.gz"
run "$BIN" report verify "$DATA/evidence-client-a.tar.gz"
mkdir -p "$DATA/evidence" && tar -xzf "$DATA/evidence-client-a.tar.gz" -C "$DATA/evidence"
printf '$ (cd %s && sha256sum -c SHA256SUMS)\n' "$(ls -d "$DATA"/evidence/*/)"
(cd "$(ls -d "$DATA"/evidence/*/)" && sha256sum -c SHA256SUMS)

say "Every change, across both clients (the change manager's view)"
run as cm "$BIN" change list
say "The audit chains verify"
run as audrey "$BIN" audit verify --tenant client-a
run as cm "$BIN" audit verify --tenant client-b

say "changegate keeps running on $CHANGEGATE_SERVER (Ctrl-C stops it; log in $DATA.log)"
cat <<INFO
API tokens of the demo (use with: CHANGEGATE_TOKEN=<token> $BIN change list):
$(for k in admin eve ian tom cm rita audrey carol bob; do printf '  %-7s %s\n' "$k" "${TOKENS[$k]}"; done)
The portal: $CHANGEGATE_SERVER/ ; every login below has the password $PASSWORD
  tom@msp.example        technical approver: $A3 waits for his decision in the inbox
  eve@msp.example        engineer: raises changes (New change, from a template, with a preview)
  cm@msp.example         change manager: board agendas, settings (policy, boards, windows, templates), conflict overrides
  rita@msp.example       release manager: Releases ($REL with its failed step and rollback), Calendar
  carol@client-a.example client A's business approver: client A only
  alice@client-a.example client A's admin: its people and blackout dates (Settings)
  bob@client-b.example   client B's approver: sees nothing of client A
  audrey@msp.example     auditor: client A read only, the evidence view, KPIs, the evidence bundle
  admin@msp.example      installation admin: tenants
The OpenAPI document: $CHANGEGATE_SERVER/api/v1/openapi.json
INFO
# The scheduler delivers the outbox every second: wait until it is empty
# (the count of files stops growing over a pass).
count() { ls "$DATA/mail" 2>/dev/null | wc -l; }
before=-1
while [[ $(count) -ne $before ]]; do before=$(count); sleep 1.5; done
echo "The e-mails of the story (.eml files, readable in any mail client or with cat):"
for f in "$DATA"/mail/*.eml; do
  [[ -e $f ]] || continue
  printf '  %s  %s  %s\n' "$f" "$(sed -n 's/^To: //p' "$f" | head -1)" "$(sed -n 's/^Subject: //p' "$f" | head -1)"
done
if [[ -n "${CHANGEGATE_DEMO_EXIT:-}" ]]; then exit 0; fi
wait $SERVER
