#!/usr/bin/env bash
# deploy/ against a real kube-apiserver (v1.20.2 from the shared apiserver.sh, started here on
# its own state directory and ports, stopped at the end):
#  1. server-side dry-run of every kustomization (`kubectl apply --server-side --dry-run=server`),
#     after creating only their Namespaces for real (a dry-run cannot create the namespace its
#     other objects go into);
#  2. the gateway-api overlay is refused without the Gateway API CRDs and accepted with them
#     (a stand-in GatewayClass CRD: the real CRDs cannot be downloaded here);
#  3. RBAC, for real: the base's roles and bindings applied, then `kubectl auth can-i` as the
#     ServiceAccount (impersonation: there is no token controller) for every permission the
#     code needs (granted) and a sample of others (denied); then the same for the lb overlay
#     (`--lb`: a stand-in IPAddressPool CRD) and the namespaced overlay.
#   .ci/deploy-cluster.sh
# Env: VESTIBULE_SHARED (default ../shared of the checkout): the directory holding k8s/apiserver.sh,
#   K8S_RUN (default: a new temporary directory), K8S_API_PORT, K8S_ETCD_PORT,
#   K8S_ETCD_PEER_PORT (apiserver.sh's defaults unless set),
#   KUBECTL (default kubectl): the client, for rendering too;
#   DEPLOY_RBAC_HOOK: a command run after step 3's base RBAC is applied, with KUBECONFIG set to a
#   kubeconfig that acts as the ServiceAccount (system:serviceaccount:vestibule:vestibule) and
#   DEPLOY_ADMIN_KUBECONFIG to the admin one: e.g. `vestibule run --kubernetes` there, asserting
#   it logs no 403. Default, when VESTIBULE_BIN names a binary: .ci/deploy-rbac-run.sh, which
#   does exactly that.
#
# PodDisruptionBudget: the manifests use policy/v1 (Kubernetes 1.21+; policy/v1beta1 was removed
# in 1.25). A 1.20 server has only v1beta1, so there the PDB is dry-run as policy/v1beta1 (the
# same fields: maxUnavailable, selector) and left out of the rest; its policy/v1 schema is
# checked by .ci/deploy_manifests.py (kubernetes-validate). A server that serves policy/v1 gets
# it unchanged.
set -Eeuo pipefail
cd "$(dirname "$0")/.."

apiserver_sh=${VESTIBULE_SHARED:-../shared}/k8s/apiserver.sh
[ -x "$apiserver_sh" ] ||
  { echo "deploy-cluster: FAIL: no $apiserver_sh (set VESTIBULE_SHARED)" >&2; exit 1; }
kubectl=${KUBECTL:-kubectl}
command -v "$kubectl" >/dev/null || { echo "deploy-cluster: FAIL: $kubectl is not installed (Debian kubernetes-client)" >&2; exit 1; }

work=$(mktemp -d)
export K8S_RUN=${K8S_RUN:-$work/k8s}
started=""
cleanup() {
  [ -z "$started" ] || "$apiserver_sh" stop >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "deploy-cluster: FAIL: $*" >&2; exit 1; }

"$apiserver_sh" start > "$work/apiserver.out"
started=1
export KUBECONFIG
KUBECONFIG=$(sed -n 's/^KUBECONFIG=//p' "$work/apiserver.out")
[ -f "$KUBECONFIG" ] || fail "apiserver.sh printed no KUBECONFIG: $(cat "$work/apiserver.out")"
k() { "$kubectl" --request-timeout=30s "$@"; }
echo "deploy-cluster: kube-apiserver $(k version -o json 2>/dev/null | python3 -c 'import json,sys; v = json.load(sys.stdin); print(v["serverVersion"]["gitVersion"], "with kubectl", v["clientVersion"]["gitVersion"])')"

# Each kustomization rendered and split: Namespaces, the PDB, the rest.
split() { # render out-prefix
  python3 - "$1" "$2" <<'PY'
import sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
parts = {"ns": [], "pdb": [], "rest": []}
for d in docs:
    parts["ns" if d["kind"] == "Namespace" else "pdb" if d["kind"] == "PodDisruptionBudget" else "rest"].append(d)
for name, items in parts.items():
    with open(f"{sys.argv[2]}.{name}.yaml", "w") as f:
        yaml.safe_dump_all(items, f, sort_keys=False)
PY
}
serves_policy_v1=$(k api-versions | grep -qx 'policy/v1' && echo yes || echo no)
dry_run() { k apply --server-side --dry-run=server --field-manager=vestibule-ci -f "$1"; }

# ---- 1. server-side dry-run of every kustomization ------------------------------------------
for name in base daemonset namespaced gateway-api lb; do
  dir=deploy/base
  [ "$name" = base ] || dir=deploy/overlays/$name
  # (stderr kept apart: newer kubectl warns about the kustomize v2 fields deploy/ keeps.)
  k kustomize "$dir" > "$work/$name.yaml" 2> "$work/$name.kustomize.err" ||
    fail "kubectl kustomize $dir: $(cat "$work/$name.kustomize.err")"
  split "$work/$name.yaml" "$work/$name"
done
# The namespaced overlay's Role lives in the namespace it watches, which users create; the lb
# overlay's in MetalLB's namespace, which MetalLB (or the user) creates.
k create namespace web >/dev/null
k create namespace metallb-system >/dev/null
for name in base daemonset namespaced lb; do
  k apply --server-side --field-manager=vestibule-ci -f "$work/$name.ns.yaml" >/dev/null
  dry_run "$work/$name.rest.yaml" > "$work/$name.dry" 2>&1 || fail "dry-run of $name:
$(cat "$work/$name.dry")"
  pdb="no PodDisruptionBudget"
  if grep -q '^kind: PodDisruptionBudget' "$work/$name.pdb.yaml"; then
    if [ "$serves_policy_v1" = yes ]; then
      dry_run "$work/$name.pdb.yaml" >/dev/null || fail "dry-run of $name's PodDisruptionBudget"
      pdb="PodDisruptionBudget as policy/v1"
    else
      sed 's|^apiVersion: policy/v1$|apiVersion: policy/v1beta1|' "$work/$name.pdb.yaml" > "$work/$name.pdb-v1beta1.yaml"
      dry_run "$work/$name.pdb-v1beta1.yaml" >/dev/null || fail "dry-run of $name's PodDisruptionBudget (as policy/v1beta1)"
      pdb="PodDisruptionBudget as policy/v1beta1: this server has no policy/v1"
    fi
  fi
  echo "deploy-cluster: ok: dry-run of $name ($(grep -c 'serverside-applied (server dry run)' "$work/$name.dry") objects; $pdb)"
done

# ---- 2. the GatewayClass needs the Gateway API CRDs ----------------------------------------
if dry_run "$work/gateway-api.rest.yaml" > "$work/gw.dry" 2>&1; then
  fail "the gateway-api overlay was accepted without the Gateway API CRDs (is a CRD already installed?)"
fi
grep -q 'GatewayClass' "$work/gw.dry" || fail "the gateway-api overlay failed for another reason: $(cat "$work/gw.dry")"
# Stand-ins of the Gateway API CRDs (the real ones cannot be downloaded here): the group, scope
# and names the real ones have; GatewayClass with the spec field we set required, the others
# keeping whatever is sent. Step 3 needs them too: `kubectl auth can-i` resolves a resource
# through discovery, and asks about the wrong group for one the server does not know.
crd() { # plural Kind scope schema-of-spec
  cat <<YAML
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: $1.gateway.networking.k8s.io
  # *.k8s.io groups need it; the real CRDs carry the same annotation.
  annotations: {api-approved.kubernetes.io: "https://github.com/kubernetes-sigs/gateway-api/pull/1538"}
spec:
  group: gateway.networking.k8s.io
  scope: $3
  names: {plural: $1, singular: $(tr '[:upper:]' '[:lower:]' <<<"$2"), kind: $2, listKind: $2List}
  versions:
    - name: v1
      served: true
      storage: true
      subresources: {status: {}}
      schema:
        openAPIV3Schema:
          type: object
          properties:
            spec: $4
            status: {type: object, x-kubernetes-preserve-unknown-fields: true}
---
YAML
}
{
  crd gatewayclasses GatewayClass Cluster '{type: object, required: [controllerName], properties: {controllerName: {type: string, minLength: 1, maxLength: 253}, description: {type: string}, parametersRef: {type: object, x-kubernetes-preserve-unknown-fields: true}}}'
  any='{type: object, x-kubernetes-preserve-unknown-fields: true}'
  crd gateways Gateway Namespaced "$any"
  crd httproutes HTTPRoute Namespaced "$any"
  crd grpcroutes GRPCRoute Namespaced "$any"
  crd tlsroutes TLSRoute Namespaced "$any"
  crd tcproutes TCPRoute Namespaced "$any"
  crd referencegrants ReferenceGrant Namespaced "$any"
  crd backendtlspolicies BackendTLSPolicy Namespaced "$any"
} > "$work/gateway-crds.yaml"
k apply -f "$work/gateway-crds.yaml" >/dev/null
k wait --for=condition=Established --timeout=30s -f "$work/gateway-crds.yaml" >/dev/null
ok=""
for ((i = 0; i < 20; i++)); do # discovery catches up with the new CRD within seconds
  dry_run "$work/gateway-api.rest.yaml" > "$work/gw.dry" 2>&1 && { ok=1; break; }
  sleep 0.5
done
[ -n "$ok" ] || fail "the gateway-api overlay with the GatewayClass CRD: $(cat "$work/gw.dry")"
echo "deploy-cluster: ok: gateway-api overlay refused without the Gateway API CRDs, accepted with them"

# ---- 3. RBAC, for real ----------------------------------------------------------------------
sa=system:serviceaccount:vestibule:vestibule
as=(--as="$sa" --as-group=system:serviceaccounts --as-group=system:serviceaccounts:vestibule)
checked=0
can() { # yes|no verb resource [flags...]
  local want=$1 got
  shift
  got=$(k auth can-i "${as[@]}" "$@" 2>/dev/null || true)
  [ "$got" = "$want" ] || fail "kubectl auth can-i --as=$sa $*: '$got', want '$want'"
  checked=$((checked + 1))
}

k apply --server-side --field-manager=vestibule-ci -f "$work/base.rest.yaml" >/dev/null

reads=(ingresses.networking.k8s.io services secrets configmaps endpointslices.discovery.k8s.io
  gateways.gateway.networking.k8s.io httproutes.gateway.networking.k8s.io
  grpcroutes.gateway.networking.k8s.io tlsroutes.gateway.networking.k8s.io
  tcproutes.gateway.networking.k8s.io referencegrants.gateway.networking.k8s.io
  backendtlspolicies.gateway.networking.k8s.io)
statuses=(ingresses.networking.k8s.io gateways.gateway.networking.k8s.io
  httproutes.gateway.networking.k8s.io grpcroutes.gateway.networking.k8s.io
  tlsroutes.gateway.networking.k8s.io tcproutes.gateway.networking.k8s.io
  backendtlspolicies.gateway.networking.k8s.io)
for verb in get list watch; do
  for r in "${reads[@]}"; do can yes "$verb" "$r" --all-namespaces; can yes "$verb" "$r" -n default; done
  for r in ingressclasses.networking.k8s.io namespaces gatewayclasses.gateway.networking.k8s.io; do can yes "$verb" "$r"; done
done
for verb in get patch update; do
  for r in "${statuses[@]}"; do can yes "$verb" "$r" --subresource=status -n default; done
  can yes "$verb" gatewayclasses.gateway.networking.k8s.io --subresource=status
done
can yes create leases.coordination.k8s.io -n vestibule
can yes get leases.coordination.k8s.io/vestibule-leader -n vestibule
can yes update leases.coordination.k8s.io/vestibule-leader -n vestibule
can yes create events.events.k8s.io -n default
can yes patch events.events.k8s.io -n default
# The leader's vestibule.dev/tcp-ports-assigned annotation: a merge patch of Services; its
# vestibule.dev/annotation-report annotation: a merge patch of Ingresses.
can yes patch services -n default
can yes patch ingresses.networking.k8s.io -n default
# ... and nothing more: the objects themselves are never written, nothing else is read.
for verb in create update delete; do
  can no "$verb" services -n default
  can no "$verb" ingresses.networking.k8s.io -n default
done
for verb in create update patch delete; do
  can no "$verb" secrets -n default
  can no "$verb" ingressclasses.networking.k8s.io
  can no "$verb" httproutes.gateway.networking.k8s.io -n default
done
can no delete ingresses.networking.k8s.io --subresource=status -n default
can no delete leases.coordination.k8s.io/vestibule-leader -n vestibule
can no update leases.coordination.k8s.io/another-lease -n vestibule
can no get leases.coordination.k8s.io/vestibule-leader -n default
can no create leases.coordination.k8s.io -n default
can no list pods --all-namespaces
can no create configmaps -n kube-system
can no list nodes
can no create pods -n vestibule
can no get customresourcedefinitions.apiextensions.k8s.io
can no create clusterrolebindings.rbac.authorization.k8s.io
can no escalate clusterroles.rbac.authorization.k8s.io
can no impersonate serviceaccounts -n vestibule
can no create serviceaccounts/token -n vestibule
# Everything the ServiceAccount may do in its own namespace (cluster-wide rules included), as
# `kubectl auth can-i --list` reports it, is exactly this: one row per resource, names, verbs.
# (The selfsubject*reviews rows come from system:basic-user, which every user has.) This is the
# list to reconcile with the code: a rule added to deploy/ without adding it here fails.
expected_rules() {
  cat <<'RULES'
backendtlspolicies.gateway.networking.k8s.io [] [get list watch]
backendtlspolicies.gateway.networking.k8s.io/status [] [get patch update]
configmaps [] [get list watch]
endpointslices.discovery.k8s.io [] [get list watch]
events.events.k8s.io [] [create patch]
gatewayclasses.gateway.networking.k8s.io [] [get list watch]
gatewayclasses.gateway.networking.k8s.io/status [] [get patch update]
gateways.gateway.networking.k8s.io [] [get list watch]
gateways.gateway.networking.k8s.io/status [] [get patch update]
grpcroutes.gateway.networking.k8s.io [] [get list watch]
grpcroutes.gateway.networking.k8s.io/status [] [get patch update]
httproutes.gateway.networking.k8s.io [] [get list watch]
httproutes.gateway.networking.k8s.io/status [] [get patch update]
ingressclasses.networking.k8s.io [] [get list watch]
ingresses.networking.k8s.io [] [get list watch patch]
ingresses.networking.k8s.io/status [] [get patch update]
leases.coordination.k8s.io [] [create]
leases.coordination.k8s.io [vestibule-leader] [get update]
namespaces [] [get list watch]
referencegrants.gateway.networking.k8s.io [] [get list watch]
secrets [] [get list watch]
services [] [get list watch patch]
tcproutes.gateway.networking.k8s.io [] [get list watch]
tcproutes.gateway.networking.k8s.io/status [] [get patch update]
tlsroutes.gateway.networking.k8s.io [] [get list watch]
tlsroutes.gateway.networking.k8s.io/status [] [get patch update]
RULES
}
k auth can-i --list -n vestibule "${as[@]}" |
  python3 -c '
import re, sys
rows = []
for line in sys.stdin.read().splitlines()[1:]:
    m = re.match(r"^(\S+)\s+\[\]\s+(\[[^]]*\])\s+(\[[^]]*\])\s*$", line)
    if m and not m.group(1).startswith("selfsubject"):
        rows.append(" ".join(m.groups()))
print("\n".join(sorted(rows)))' > "$work/rules.got"
expected_rules | sort > "$work/rules.want"
diff -u "$work/rules.want" "$work/rules.got" > "$work/rules.diff" ||
  fail "kubectl auth can-i --list -n vestibule as $sa differs from the expected rules (- expected, + granted):
$(cat "$work/rules.diff")"
echo "deploy-cluster: ok: base RBAC: $checked kubectl auth can-i answers and the exact rule list ($(wc -l < "$work/rules.want") rows) as $sa"

if [ -z "${DEPLOY_RBAC_HOOK:-}" ] && [ -n "${VESTIBULE_BIN:-}" ]; then
  DEPLOY_RBAC_HOOK=.ci/deploy-rbac-run.sh
fi
if [ -n "${DEPLOY_RBAC_HOOK:-}" ]; then
  python3 - "$KUBECONFIG" "$work/sa.kubeconfig" "$sa" <<'PY'
import sys, yaml
cfg = yaml.safe_load(open(sys.argv[1]))
for user in cfg["users"]:
    user["user"]["as"] = sys.argv[3]
    user["user"]["as-groups"] = ["system:serviceaccounts", "system:serviceaccounts:vestibule", "system:authenticated"]
yaml.safe_dump(cfg, open(sys.argv[2], "w"))
PY
  # (The admin's path assigned first: a prefix assignment sees the ones before it.)
  DEPLOY_ADMIN_KUBECONFIG=$KUBECONFIG KUBECONFIG=$work/sa.kubeconfig bash -c "$DEPLOY_RBAC_HOOK" ||
    fail "DEPLOY_RBAC_HOOK failed: $DEPLOY_RBAC_HOOK"
  echo "deploy-cluster: ok: DEPLOY_RBAC_HOOK as $sa"
fi

# The lb overlay (--lb): the base plus Services' status and MetalLB's configuration in its
# namespace. `kubectl auth can-i` resolves ipaddresspools through discovery: a stand-in CRD.
k apply -f - >/dev/null <<'YAML'
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: ipaddresspools.metallb.io}
spec:
  group: metallb.io
  scope: Namespaced
  names: {plural: ipaddresspools, singular: ipaddresspool, kind: IPAddressPool, listKind: IPAddressPoolList}
  versions:
    - name: v1beta1
      served: true
      storage: true
      schema: {openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}}
YAML
k wait --for=condition=Established --timeout=30s crd/ipaddresspools.metallb.io >/dev/null
k apply --server-side --field-manager=vestibule-ci -f "$work/lb.rest.yaml" >/dev/null
checked=0
for ((i = 0; i < 20; i++)); do # discovery catches up with the new CRD within seconds
  [ "$(k auth can-i "${as[@]}" list ipaddresspools.metallb.io -n metallb-system 2>/dev/null || true)" = yes ] && break
  sleep 0.5
done
for verb in get list watch; do
  can yes "$verb" configmaps -n metallb-system
  can yes "$verb" ipaddresspools.metallb.io -n metallb-system
  # (ConfigMaps are readable everywhere anyway: the base reads BackendTLSPolicy CAs.)
  can no "$verb" ipaddresspools.metallb.io -n default
done
can yes patch services --subresource=status -n default
can no update services --subresource=status -n default
for verb in create update patch delete; do
  can no "$verb" ipaddresspools.metallb.io -n metallb-system
  can no "$verb" configmaps -n metallb-system
done
# The exact rules in MetalLB's namespace: the base's cluster-wide ones (no Lease there) and
# what --lb adds; in the install namespace, the base's and the Services' status.
lb_rules() {
  cat <<'RULES'
configmaps [] [get list watch]
ipaddresspools.metallb.io [] [get list watch]
services/status [] [patch]
RULES
}
pinned() { # namespace: the rule rows `kubectl auth can-i --list` grants there, sorted
  k auth can-i --list -n "$1" "${as[@]}" |
    python3 -c '
import re, sys
rows = []
for line in sys.stdin.read().splitlines()[1:]:
    m = re.match(r"^(\S+)\s+\[\]\s+(\[[^]]*\])\s+(\[[^]]*\])\s*$", line)
    if m and not m.group(1).startswith("selfsubject"):
        rows.append(" ".join(m.groups()))
print("\n".join(sorted(rows)))'
}
{ expected_rules | grep -v '^leases\.'; lb_rules; } | sort -u > "$work/lb-rules.want"
pinned metallb-system > "$work/lb-rules.got"
diff -u "$work/lb-rules.want" "$work/lb-rules.got" > "$work/lb-rules.diff" ||
  fail "kubectl auth can-i --list -n metallb-system as $sa with the lb overlay (- expected, + granted):
$(cat "$work/lb-rules.diff")"
{ expected_rules; echo 'services/status [] [patch]'; } | sort > "$work/lb-rules.want"
pinned vestibule > "$work/lb-rules.got"
diff -u "$work/lb-rules.want" "$work/lb-rules.got" > "$work/lb-rules.diff" ||
  fail "kubectl auth can-i --list -n vestibule as $sa with the lb overlay (- expected, + granted):
$(cat "$work/lb-rules.diff")"
echo "deploy-cluster: ok: lb RBAC (--lb): $checked kubectl auth can-i answers and the exact rule lists as $sa"
k delete clusterrolebinding vestibule-lb >/dev/null
k delete clusterrole vestibule-lb >/dev/null
k delete rolebinding vestibule-lb -n metallb-system >/dev/null
k delete role vestibule-lb -n metallb-system >/dev/null

# The namespaced overlay in place of the base's cluster-wide role.
k delete clusterrolebinding vestibule >/dev/null
k delete clusterrole vestibule >/dev/null
k apply --server-side --field-manager=vestibule-ci -f "$work/namespaced.rest.yaml" >/dev/null
checked=0
for verb in get list watch; do
  for r in "${reads[@]}"; do can yes "$verb" "$r" -n web; can no "$verb" "$r" --all-namespaces; can no "$verb" "$r" -n default; done
  for r in ingressclasses.networking.k8s.io namespaces gatewayclasses.gateway.networking.k8s.io; do can yes "$verb" "$r"; done
  can yes "$verb" services -n vestibule # --publish-service
done
can yes patch services -n web
can no patch services -n default
can yes patch ingresses.networking.k8s.io -n web
can no patch ingresses.networking.k8s.io -n default
for r in "${statuses[@]}"; do can yes patch "$r" --subresource=status -n web; can no patch "$r" --subresource=status -n default; done
can yes create events.events.k8s.io -n web
can no create events.events.k8s.io -n default
can no get secrets -n kube-system
can no list secrets -n vestibule
can yes update leases.coordination.k8s.io/vestibule-leader -n vestibule
echo "deploy-cluster: ok: namespaced RBAC (--watch-namespace=web): $checked kubectl auth can-i answers as $sa"
