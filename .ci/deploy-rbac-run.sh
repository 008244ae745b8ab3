#!/usr/bin/env bash
# The real binary under deploy/base's RBAC: run by .ci/deploy-cluster.sh as its DEPLOY_RBAC_HOOK
# (KUBECONFIG acts as system:serviceaccount:vestibule:vestibule; DEPLOY_ADMIN_KUBECONFIG is the
# administrator's). `kubectl auth can-i` proves the rules; this proves they are the ones the code
# calls: `vestibule run --kubernetes` as the ServiceAccount must get ready (every watch listed),
# route an Ingress, take the leader Lease, write the Ingress's status, release the Lease on
# SIGTERM, and log no 403. Then the converse: with the EndpointSlice rule taken out of the
# ClusterRole it must not get ready, and say 403 in /api/sources (restored afterwards).
#   VESTIBULE_BIN=target/debug/vestibule .ci/deploy-cluster.sh   (sets DEPLOY_RBAC_HOOK to this)
set -Eeuo pipefail
cd "$(dirname "$0")/.."

bin=${VESTIBULE_BIN:?VESTIBULE_BIN: the binary to run}
: "${DEPLOY_ADMIN_KUBECONFIG:?run by .ci/deploy-cluster.sh}"
kubectl=${KUBECTL:-kubectl}
admin() { "$kubectl" --kubeconfig "$DEPLOY_ADMIN_KUBECONFIG" --request-timeout=30s "$@"; }
work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
fail() {
  echo "deploy-rbac-run: FAIL: $*" >&2
  for log in "$work"/*.log; do [ -f "$log" ] && { echo "--- $log" >&2; tail -n 30 "$log" >&2; }; done
  exit 1
}
# Free loopback ports, picked by the kernel.
read -r p_echo p_http p_https p_admin < <(python3 -c '
import socket
socks = [socket.socket() for _ in range(4)]
for s in socks: s.bind(("127.0.0.1", 0))
print(*[s.getsockname()[1] for s in socks])')
code() { curl -s -o /dev/null -m 2 -w '%{http_code}' "$@" || true; }
wait_for() { # seconds description command...
  local seconds=$1 what=$2
  shift 2
  for ((i = 0; i < seconds * 10; i++)); do "$@" && return 0; sleep 0.1; done
  fail "$what (waited ${seconds}s)"
}

"$bin" echo --listen "127.0.0.1:$p_echo" --name rbac-echo > "$work/echo.log" 2>&1 &
pids+=($!)

admin create namespace web >/dev/null 2>&1 || true
admin apply -f - >/dev/null <<YAML
apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata: {name: vestibule-rbac}
spec: {controller: vestibule.dev/ingress-controller}
---
apiVersion: v1
kind: Service
metadata: {name: echo, namespace: web}
spec:
  ports: [{name: http, port: 80, targetPort: $p_echo}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: echo-1
  namespace: web
  labels: {kubernetes.io/service-name: echo}
addressType: IPv4
ports: [{name: http, port: $p_echo, protocol: TCP}]
endpoints: [{addresses: [127.0.0.1], conditions: {ready: true}}]
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: echo, namespace: web}
spec:
  ingressClassName: vestibule-rbac
  rules:
  - host: rbac.example
    http:
      paths: [{path: /, pathType: Prefix, backend: {service: {name: echo, port: {number: 80}}}}]
YAML

start() { # name: runs the binary as the ServiceAccount, leaving its pid in $run_pid
  "$bin" run --kubernetes --http "127.0.0.1:$p_http" --https "127.0.0.1:$p_https" \
    --admin "127.0.0.1:$p_admin" --publish-address 192.0.2.10 --election-namespace vestibule \
    --pod-name "ci-$1" --retry-period 0.5 --renew-deadline 4 --lease-duration 6 \
    > "$work/$1.log" 2>&1 &
  run_pid=$!
  pids+=("$run_pid")
}
stop() { # pid: SIGTERM, then wait (bounded) for it to exit
  kill -TERM "$1"
  for ((i = 0; i < 300; i++)); do kill -0 "$1" 2>/dev/null || return 0; sleep 0.1; done
  fail "pid $1 still running 30 s after SIGTERM"
}

# ---- granted: everything works, nothing is forbidden ---------------------------------------
start granted
ready() { [ "$(code "http://127.0.0.1:$p_admin/readyz")" = 200 ]; }
wait_for 60 "ready (/readyz 200) as the ServiceAccount" ready
# Ready means the required kinds listed; the optional ones (the Gateway API kinds, whose CRDs
# deploy-cluster.sh installed) may still be starting: every source must be up and synced soon.
all_up() {
  sources=$(curl -s -m 2 "http://127.0.0.1:$p_admin/api/sources")
  python3 - "$sources" <<'PY'
import json, sys
sources = json.loads(sys.argv[1])
down = [s["source"] for s in sources if not s.get("up") or not s.get("synced")]
sys.exit(1 if not sources or down else 0)
PY
}
for ((i = 0; i < 300; i++)); do all_up && break; sleep 0.1; done
all_up || fail "not every source up and synced in /api/sources as the ServiceAccount (30 s): $(tr -d ' \n' <<<"$sources")"
routed() { [ "$(code -H 'Host: rbac.example' "http://127.0.0.1:$p_http/")" = 200 ]; }
wait_for 30 "the Ingress routed to the echo backend" routed
holder() { admin get lease vestibule-leader -n vestibule -o 'jsonpath={.spec.holderIdentity}' 2>/dev/null; }
leading() { [ "$(holder)" = ci-granted ]; }
wait_for 30 "the leader Lease taken by ci-granted" leading
published() { [ "$(admin get ingress echo -n web -o 'jsonpath={.status.loadBalancer.ingress[0].ip}')" = 192.0.2.10 ]; }
wait_for 30 "the Ingress status written (192.0.2.10)" published
stop "$run_pid"
released() { [ -z "$(holder)" ]; }
wait_for 10 "the Lease released on SIGTERM (holder: $(holder))" released
# 403 as a status code, not as digits of a timestamp ("21:48:48.403927Z") or a duration.
denied='(^|[^0-9.])403([^0-9.]|$)|forbidden'
if grep -Eiq "$denied" "$work/granted.log"; then
  fail "the binary logged a 403 under deploy/base's RBAC: $(grep -Ei "$denied" "$work/granted.log" | head -n 5)"
fi
echo "deploy-rbac-run: ok: as the ServiceAccount: ready, every source up, Ingress routed, Lease taken and released, status written, no 403"

# ---- converse: one rule missing must show --------------------------------------------------
admin get clusterrole vestibule -o json > "$work/clusterrole.json"
python3 - "$work/clusterrole.json" > "$work/clusterrole-cut.json" <<'PY'
import json, sys
role = json.load(open(sys.argv[1]))
for key in ("resourceVersion", "uid", "creationTimestamp", "managedFields"):
    role["metadata"].pop(key, None)
before = len(role["rules"])
role["rules"] = [r for r in role["rules"] if "endpointslices" not in r.get("resources", [])]
assert len(role["rules"]) < before, "no endpointslices rule to take out"
print(json.dumps(role))
PY
admin replace -f "$work/clusterrole-cut.json" >/dev/null
start converse
sleep 8
[ "$(code "http://127.0.0.1:$p_admin/readyz")" != 200 ] || fail "ready without the endpointslices rule"
curl -s -m 2 "http://127.0.0.1:$p_admin/api/sources" | grep -Eiq "$denied" ||
  fail "no 403 in /api/sources without the endpointslices rule: $(curl -s -m 2 "http://127.0.0.1:$p_admin/api/sources")"
stop "$run_pid"
python3 - "$work/clusterrole.json" > "$work/clusterrole-back.json" <<'PY'
import json, sys
role = json.load(open(sys.argv[1]))
for key in ("resourceVersion", "uid", "creationTimestamp", "managedFields"):
    role["metadata"].pop(key, None)
print(json.dumps(role))
PY
admin replace -f "$work/clusterrole-back.json" >/dev/null
echo "deploy-rbac-run: ok: without the endpointslices rule: not ready, 403 in /api/sources"
