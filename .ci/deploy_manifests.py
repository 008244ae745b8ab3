#!/usr/bin/env python3
"""Checks deploy/ offline: renders every kustomization with `kubectl kustomize`, parses the
render with Vestibule's own parser (`vestibule check`, with a probe Ingress of the rendered
IngressClass that must be routed), and checks the invariants the manifests promise (below).
Writes each render to OUT/<name>.yaml for .ci/deploy-cluster.sh.

    .ci/deploy_manifests.py [--vestibule BIN] [--out DIR]

Exit 1 with one line per broken invariant, each naming the kustomization, object and field.
Needs python3 with PyYAML, kubectl (kustomize built in; KUBECTL=path picks one). `kubernetes-validate` (PyPI), when
installed, also checks every built-in kind against a newer Kubernetes schema, strictly
(unknown fields are errors); without it that step is skipped with a message.
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

import yaml

# The kubectl to render with (CI: Debian's kubernetes-client); KUBECTL=path to choose another.
KUBECTL = os.environ.get("KUBECTL", "kubectl")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Every install users are told to apply, and its name in OUT/ (deploy/gateway-api, the
# GatewayClass alone, is checked within the gateway-api overlay).
KUSTOMIZATIONS = {
    "base": "deploy/base",
    "daemonset": "deploy/overlays/daemonset",
    "namespaced": "deploy/overlays/namespaced",
    "gateway-api": "deploy/overlays/gateway-api",
    "lb": "deploy/overlays/lb",
}
# The fields every kustomize from v2.0.3 on reads alike (Debian's kubectl 1.20 renders with
# v2.0.3; see deploy/parts/common/kustomization.yaml for what the others break there).
KUSTOMIZE_V2_FIELDS = {"apiVersion", "kind", "bases", "resources", "images", "patchesJson6902"}

# ---- PENDING FLAGS: agreed in issue 11, not yet in this binary's `vestibule run --help` ----
# The manifests use them ahead of the branches that add them ("k8s-provider", "k8s-cluster").
# Each entry: flag -> True when it takes a value. Once the binary knows a flag, this check fails
# until the flag's line is removed here (the allow-list must not outlive its reason).
PENDING_FLAGS = {
}
# ---- end of PENDING FLAGS ----

INGRESS_CONTROLLER = "vestibule.dev/ingress-controller"
GATEWAY_CONTROLLER = "vestibule.dev/gateway-controller"
ELECTION_NAME_DEFAULT = "vestibule-leader"
# The only verbs the code uses; a write is allowed only on a status subresource, an Event,
# the Lease, or a merge patch of the one annotation the leader writes on Services and Ingresses.
READ_VERBS = {"get", "list", "watch"}
STATUS_VERBS = {"get", "patch", "update"}
WRITABLE = {
    ("events.k8s.io", "events"): {"create", "patch"},
    # The leader's vestibule.dev/tcp-ports-assigned annotation: a merge patch of Services.
    ("", "services"): READ_VERBS | {"patch"},
    # The leader's vestibule.dev/annotation-report annotation: a merge patch of Ingresses.
    ("networking.k8s.io", "ingresses"): READ_VERBS | {"patch"},
}
LEASE = ("coordination.k8s.io", "leases")


class Checks:
    def __init__(self):
        self.failures = []
        self.prefix = ""  # the kustomization being checked

    def fail(self, where, message):
        if self.prefix and not where.startswith(self.prefix):
            where = f"{self.prefix}: {where}"
        self.failures.append(f"{where}: {message}")

    def expect(self, ok, where, message):
        if not ok:
            self.fail(where, message)
        return ok


def run(cmd, **kwargs):
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, **kwargs)


def known_run_flags(vestibule):
    """Flags of `vestibule run --help`: flag -> True when it takes a value."""
    out = run([vestibule, "run", "--help"])
    if out.returncode != 0:
        sys.exit(f"deploy-manifests: {vestibule} run --help failed: {out.stderr}")
    flags = {}
    for line in out.stdout.splitlines():
        m = re.match(r"^\s+(?:-\w, )?(--[a-z0-9-]+)( [<\[])?", line)
        if m:
            flags[m.group(1)] = m.group(2) is not None
    if "--http" not in flags:
        sys.exit(f"deploy-manifests: cannot read the flags of `{vestibule} run --help`")
    return flags


def name_of(doc):
    meta = doc.get("metadata", {})
    ns = meta.get("namespace")
    return f"{doc.get('kind')} {ns + '/' if ns else ''}{meta.get('name')}"


def render(path):
    out = run([KUBECTL, "kustomize", os.path.join(ROOT, path)])
    if out.returncode != 0:
        sys.exit(f"deploy-manifests: kubectl kustomize {path} failed:\n{out.stderr}")
    return out.stdout


def flag_values(args):
    """`--flag=value` / `--flag value` / `--flag` -> list of (flag, value or None)."""
    pairs, i = [], 0
    while i < len(args):
        arg = str(args[i])
        if arg.startswith("--"):
            flag, eq, value = arg.partition("=")
            pairs.append((flag, value if eq else None, arg))
        elif pairs and pairs[-1][1] is None:
            flag, _, raw = pairs[-1]
            pairs[-1] = (flag, arg, raw)
        i += 1
    return pairs


def port_of(addr):
    return int(addr.rsplit(":", 1)[1])


def check_workload(c, where, doc, docs, known):
    kind = doc["kind"]
    spec = doc["spec"]
    pod = spec["template"]["spec"]
    labels = spec["template"]["metadata"].get("labels", {})
    selector = spec["selector"].get("matchLabels", {})
    c.expect(
        selector and all(labels.get(k) == v for k, v in selector.items()),
        where, f"spec.selector.matchLabels {selector} does not select the template's labels {labels}")
    host_network = pod.get("hostNetwork", False)
    if kind == "DaemonSet":
        c.expect(host_network, where, "spec.template.spec.hostNetwork: must be true (ports 80/443 on every node)")
        c.expect(pod.get("dnsPolicy") == "ClusterFirstWithHostNet", where,
                 "spec.template.spec.dnsPolicy: must be ClusterFirstWithHostNet with hostNetwork")
        c.expect(any(t.get("key") == "node-role.kubernetes.io/control-plane" for t in pod.get("tolerations", [])),
                 where, "spec.template.spec.tolerations: no toleration for node-role.kubernetes.io/control-plane")
    if kind == "Deployment":
        c.expect(spec.get("replicas", 1) >= 2, where, "spec.replicas: at least 2")
        c.expect(pod.get("affinity", {}).get("podAntiAffinity"), where, "spec.template.spec.affinity.podAntiAffinity: missing")

    accounts = {d["metadata"]["name"] for d in docs if d["kind"] == "ServiceAccount"}
    c.expect(pod.get("serviceAccountName") in accounts, where,
             f"spec.template.spec.serviceAccountName {pod.get('serviceAccountName')!r}: no such ServiceAccount in the render")

    pod_sc = pod.get("securityContext", {})
    containers = pod["containers"]
    c.expect(len(containers) == 1, where, "spec.template.spec.containers: exactly one (vestibule)")
    ct = containers[0]
    cwhere = f"{where}: spec.template.spec.containers[0]"
    args = ct.get("args", [])
    image = ct.get("image", "")
    c.expect(re.fullmatch(r"[^:@]+(:[\w.-]+)", image.rsplit("/", 1)[-1]) and not image.endswith(":latest"), cwhere,
             f"image {image!r}: needs a version tag (kustomize `images:`)")
    c.expect(not ct.get("command"), cwhere, "command: leave the image's ENTRYPOINT (/vestibule)")
    c.expect(args[:1] == ["run"], cwhere, f"args: must start with the subcommand `run`, not {args[:1]}")
    flags = {}
    for flag, value, raw in flag_values(args[1:]):
        takes_value = known.get(flag, PENDING_FLAGS.get(flag))
        if takes_value is None:
            c.fail(cwhere, f"args: {raw}: `vestibule run` has no flag {flag} (misspelt? not in --help nor in PENDING_FLAGS)")
            continue
        if takes_value and value is None:
            c.fail(cwhere, f"args: {raw}: {flag} needs a value")
        if not takes_value and value is not None:
            c.fail(cwhere, f"args: {raw}: {flag} takes no value")
        flags.setdefault(flag, []).append(value)
    one = {k: v[-1] for k, v in flags.items()}
    c.expect("--kubernetes" in flags, cwhere, "args: --kubernetes missing")
    c.expect(one.get("--controller-name", INGRESS_CONTROLLER) == INGRESS_CONTROLLER, cwhere,
             f"args: --controller-name={one.get('--controller-name')}, the IngressClass says {INGRESS_CONTROLLER}")
    classes = {d["metadata"]["name"] for d in docs if d["kind"] == "IngressClass"}
    for cls in flags.get("--ingress-class", []):
        c.expect(cls in classes, cwhere, f"args: --ingress-class={cls}: no such IngressClass in the render ({sorted(classes)})")

    # terminationGracePeriodSeconds must outlast the drain (the kubelet's SIGKILL ends it).
    delay = float(one.get("--shutdown-delay", 0))
    drain = float(one.get("--drain-timeout", 30))
    grace = pod.get("terminationGracePeriodSeconds", 30)
    c.expect(grace > delay + drain, where,
             f"spec.template.spec.terminationGracePeriodSeconds {grace} is not above --shutdown-delay + --drain-timeout ({delay} + {drain})")

    # Ports: what the flags listen on is what the pod declares.
    ports = {p.get("name"): p for p in ct.get("ports", [])}
    for flag, pname in (("--http", "http"), ("--https", "https")):
        if c.expect(flag in one, cwhere, f"args: {flag} missing (the default may not be the declared port)"):
            declared = ports.get(pname, {}).get("containerPort")
            c.expect(declared == port_of(one[flag]), cwhere,
                     f"ports[{pname}].containerPort {declared} != the {flag} port {port_of(one[flag])}")
    admin = one.get("--admin", "127.0.0.1:9000")
    admin_ip, admin_port = admin.rsplit(":", 1)[0], port_of(admin)
    for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
        get = ct.get(probe, {}).get("httpGet")
        if not c.expect(get, cwhere, f"{probe}.httpGet: missing"):
            continue
        c.expect(get.get("path") == path, cwhere, f"{probe}.httpGet.path: {get.get('path')}, want {path}")
        port = get.get("port")
        port = ports.get(port, {}).get("containerPort") if isinstance(port, str) else port
        c.expect(port == admin_port, cwhere, f"{probe}.httpGet.port: {get.get('port')} is not the --admin port {admin_port}")
        # The kubelet probes the pod IP unless told otherwise: admin must listen there.
        host = get.get("host")
        c.expect(admin_ip in ("0.0.0.0", "[::]") or host == admin_ip, cwhere,
                 f"{probe}: --admin={admin} is not reachable at the probe's address ({host or 'the pod IP'})")
    if host_network:
        c.expect(admin_ip in ("127.0.0.1", "[::1]"), cwhere,
                 f"args: --admin={admin}: with hostNetwork, admin must stay on the node's loopback")

    # Downward API: the identity and namespace leader election uses.
    env = {e["name"]: e.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") for e in ct.get("env", [])}
    c.expect(env.get("POD_NAME") == "metadata.name", cwhere, "env POD_NAME: must come from fieldRef metadata.name")
    c.expect(env.get("POD_NAMESPACE") == "metadata.namespace", cwhere, "env POD_NAMESPACE: must come from fieldRef metadata.namespace")

    # Security: read-only root, no escalation, no capability but NET_BIND_SERVICE (and that one
    # only where it binds ports below 1024, as uid 0: see deploy/overlays/daemonset).
    sc = ct.get("securityContext", {})
    c.expect(sc.get("readOnlyRootFilesystem") is True, cwhere, "securityContext.readOnlyRootFilesystem: must be true")
    c.expect(sc.get("allowPrivilegeEscalation") is False, cwhere, "securityContext.allowPrivilegeEscalation: must be false")
    c.expect(not sc.get("privileged"), cwhere, "securityContext.privileged: must not be set")
    caps = sc.get("capabilities", {})
    c.expect(caps.get("drop") == ["ALL"], cwhere, "securityContext.capabilities.drop: must be [ALL]")
    low = min([port_of(one[f]) for f in ("--http", "--https") if f in one] or [1024]) < 1024
    want_add = ["NET_BIND_SERVICE"] if low else []
    c.expect(caps.get("add", []) == want_add, cwhere,
             f"securityContext.capabilities.add: {caps.get('add', [])}, want {want_add} (ports below 1024: {low})")
    uid = sc.get("runAsUser", pod_sc.get("runAsUser"))
    non_root = sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot"))
    if low:
        c.expect(uid == 0, where, "binds ports below 1024: runs as uid 0 with only NET_BIND_SERVICE (see the DaemonSet's comment)")
    else:
        c.expect(non_root is True and uid not in (None, 0), where,
                 f"runAsNonRoot: true and a non-zero runAsUser (got {non_root}, {uid})")
    seccomp = sc.get("seccompProfile", pod_sc.get("seccompProfile", {})).get("type")
    c.expect(seccomp == "RuntimeDefault", where, f"seccompProfile.type: {seccomp}, want RuntimeDefault")
    res = ct.get("resources", {})
    c.expect(res.get("requests", {}).get("cpu") and res.get("requests", {}).get("memory")
             and res.get("limits", {}).get("memory"), cwhere, "resources: cpu and memory requests, a memory limit")

    # Services in front of it: their targetPorts exist and never include admin.
    for svc in (d for d in docs if d["kind"] == "Service"):
        sel = svc["spec"].get("selector", {})
        if not sel or not all(labels.get(k) == v for k, v in sel.items()):
            continue
        swhere = name_of(svc)
        for i, p in enumerate(svc["spec"].get("ports", [])):
            target = p.get("targetPort", p.get("port"))
            number = ports.get(target, {}).get("containerPort") if isinstance(target, str) else target
            c.expect(number is not None and number in {q.get("containerPort") for q in ports.values()}, swhere,
                     f"spec.ports[{i}].targetPort {target!r}: the pod declares no such port")
            c.expect(number != admin_port, swhere, f"spec.ports[{i}]: the admin port {admin_port} must not be on a Service")
    # --publish-service NS/NAME: a Service of the render.
    publish = one.get("--publish-service")
    if publish:
        services = {f"{d['metadata'].get('namespace')}/{d['metadata']['name']}" for d in docs if d["kind"] == "Service"}
        c.expect(publish in services, cwhere, f"args: --publish-service={publish}: no such Service in the render")
    for pdb in (d for d in docs if d["kind"] == "PodDisruptionBudget"):
        sel = pdb["spec"].get("selector", {}).get("matchLabels", {})
        c.expect(sel and all(labels.get(k) == v for k, v in sel.items()), name_of(pdb),
                 f"spec.selector.matchLabels {sel} does not select {where}'s pods")
    return one, flags


def rules_of(doc):
    for i, rule in enumerate(doc.get("rules", [])):
        for group in rule.get("apiGroups", []):
            for resource in rule.get("resources", []):
                yield i, group, resource, set(rule.get("verbs", [])), rule.get("resourceNames")


def check_rbac(c, name, docs, one, flags):
    roles = {(d["kind"], d["metadata"].get("namespace"), d["metadata"]["name"]): d
             for d in docs if d["kind"] in ("Role", "ClusterRole")}
    account = next(d for d in docs if d["kind"] == "ServiceAccount")
    sa = (account["metadata"]["namespace"], account["metadata"]["name"])
    install_ns = sa[0]
    election_ns = one.get("--election-namespace", install_ns)
    election = one.get("--election-name", ELECTION_NAME_DEFAULT)
    bound = []
    for b in (d for d in docs if d["kind"] in ("RoleBinding", "ClusterRoleBinding")):
        ref = b["roleRef"]
        ns = b["metadata"].get("namespace") if ref["kind"] == "Role" else None
        role = roles.get((ref["kind"], ns, ref["name"]))
        c.expect(role is not None, name_of(b), f"roleRef {ref['kind']} {ref['name']}: not in the render")
        c.expect(any(s.get("kind") == "ServiceAccount" and (s.get("namespace"), s.get("name")) == sa for s in b.get("subjects", [])),
                 name_of(b), f"subjects: must name ServiceAccount {sa[0]}/{sa[1]}")
        if role is not None:
            bound.append((b["kind"], b["metadata"].get("namespace"), role))
    for key, role in roles.items():
        rwhere = name_of(role)
        c.expect(any(r is role for _, _, r in bound), rwhere, "bound to nothing")
        for i, group, resource, verbs, names in rules_of(role):
            c.expect("*" not in verbs and group != "*" and resource != "*", rwhere, f"rules[{i}]: no wildcards")
            base = resource.split("/")[0]
            if resource.endswith("/status"):
                allowed = STATUS_VERBS
            elif (group, resource) == LEASE:
                allowed = {"create", "get", "update"}
                c.expect(role["kind"] == "Role" and role["metadata"].get("namespace") == election_ns, rwhere,
                         f"rules[{i}]: leases only in the election namespace {election_ns}")
                c.expect("create" in verbs or names == [election], rwhere,
                         f"rules[{i}]: get/update of leases limited to resourceNames [{election}] (--election-name)")
            elif (group, resource) in WRITABLE:
                allowed = WRITABLE[(group, resource)]
            else:
                allowed = READ_VERBS
            c.expect(verbs <= allowed, rwhere, f"rules[{i}]: {group or 'core'}/{resource}: verbs {sorted(verbs - allowed)} beyond {sorted(allowed)}")
            c.expect(base != "secrets" or verbs <= READ_VERBS, rwhere, f"rules[{i}]: secrets are only read")
    # The whole read set, either cluster-wide or in every watched namespace.
    watched = flags.get("--watch-namespace") or [None]
    namespaced_reads = [("", "services"), ("", "secrets"), ("discovery.k8s.io", "endpointslices"),
                        ("networking.k8s.io", "ingresses")]
    cluster_reads = [("", "namespaces"), ("networking.k8s.io", "ingressclasses")]

    def granted(group, resource, verb, ns):
        for kind, bns, role in bound:
            if kind == "RoleBinding" and (ns is None or bns != ns):
                continue
            for _, g, r, verbs, names in rules_of(role):
                if g == group and r == resource and verb in verbs and not names:
                    return True
        return False

    for ns in watched:
        for group, resource in namespaced_reads:
            for verb in sorted(READ_VERBS):
                c.expect(granted(group, resource, verb, ns), name,
                         f"ServiceAccount {sa[0]}/{sa[1]} cannot {verb} {group or 'core'}/{resource} in {ns or 'every namespace'}")
        c.expect(granted("networking.k8s.io", "ingresses/status", "patch", ns), name,
                 f"cannot patch ingresses/status in {ns or 'every namespace'}")
    for group, resource in cluster_reads:
        c.expect(granted(group, resource, "watch", None), name, f"cannot watch {group or 'core'}/{resource} cluster-wide")
    if "--watch-namespace" in flags:
        c.expect(not any(k == "ClusterRoleBinding" and any(r == "secrets" for _, _, r, _, _ in rules_of(role))
                         for k, _, role in bound), name, "--watch-namespace install must not read Secrets cluster-wide")


def check_parser(c, name, vestibule, rendered, docs, workdir):
    """The render through Vestibule's own parser, with a probe Ingress of the rendered class."""
    classes = [d for d in docs if d["kind"] == "IngressClass"]
    if not c.expect(len(classes) == 1, name, f"exactly one IngressClass, got {len(classes)}"):
        return
    cls = classes[0]
    c.expect(cls["spec"].get("controller") == INGRESS_CONTROLLER, name_of(cls),
             f"spec.controller: {cls['spec'].get('controller')!r}, want {INGRESS_CONTROLLER}")
    probe = rendered[: -len(".yaml")] + "-probe.yaml"
    with open(probe, "w") as f:
        f.write(f"""apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {{name: probe, namespace: deploy-check}}
spec:
  ingressClassName: {cls['metadata']['name']}
  rules:
  - host: probe.deploy-check.example
    http:
      paths:
      - {{path: /, pathType: Prefix, backend: {{service: {{name: probe, port: {{number: 80}}}}}}}}
---
apiVersion: v1
kind: Service
metadata: {{name: probe, namespace: deploy-check}}
spec:
  ports: [{{port: 80, targetPort: 8080}}]
""")
    out = run([vestibule, "check", "-f", rendered, "-f", probe, "--output", "json"])
    try:
        report = json.loads(out.stdout)
    except json.JSONDecodeError:
        c.fail(name, f"vestibule check printed no JSON (exit {out.returncode}): {out.stdout[:300]} {out.stderr[:300]}")
        return
    c.expect(out.returncode == 0 and not report["errors"], name, f"vestibule check: exit {out.returncode}, errors {report['errors']}")
    c.expect(not report["warnings"], name, f"vestibule check: warnings {report['warnings']}")
    hosts = [h["host"] for h in report["routes"]["hosts"]]
    c.expect(hosts == ["probe.deploy-check.example"], name,
             f"vestibule check: an Ingress of class {cls['metadata']['name']!r} is not routed by the rendered IngressClass (hosts {hosts})")


def check_render(c, name, text, vestibule, known, workdir, rendered):
    docs = [d for d in yaml.safe_load_all(text) if d]
    for d in docs:
        c.expect(d.get("apiVersion") and d.get("kind") and d.get("metadata", {}).get("name"), name, f"a document without apiVersion/kind/name: {str(d)[:120]}")
    ids = [(d["apiVersion"].split("/")[0], d["kind"], d["metadata"].get("namespace"), d["metadata"]["name"]) for d in docs]
    c.expect(len(ids) == len(set(ids)), name, "duplicate objects")
    for d in docs:
        if d["kind"] not in ("Namespace", "IngressClass", "GatewayClass", "ClusterRole", "ClusterRoleBinding"):
            c.expect(d["metadata"].get("namespace"), f"{name}: {name_of(d)}", "metadata.namespace: not set")
    ns = [d for d in docs if d["kind"] == "Namespace" and d["metadata"]["name"] == "vestibule"]
    c.expect(ns, name, "no Namespace vestibule")
    workloads = [d for d in docs if d["kind"] in ("Deployment", "DaemonSet")]
    if not c.expect(len(workloads) == 1, name, f"exactly one Deployment or DaemonSet, got {len(workloads)}"):
        return
    one, flags = check_workload(c, f"{name}: {name_of(workloads[0])}", workloads[0], docs, known)
    # Pod Security: the strictest level the pods meet, enforced on their namespace.
    level = "privileged" if workloads[0]["spec"]["template"]["spec"].get("hostNetwork") else "restricted"
    for n in ns:
        got = n["metadata"].get("labels", {}).get("pod-security.kubernetes.io/enforce")
        c.expect(got == level, name_of(n), f"metadata.labels[pod-security.kubernetes.io/enforce]: {got!r}, want {level!r}")
    check_rbac(c, name, docs, one, flags)
    check_parser(c, name, vestibule, rendered, docs, workdir)
    for gc in (d for d in docs if d["kind"] == "GatewayClass"):
        c.expect(gc["spec"].get("controllerName") == GATEWAY_CONTROLLER, name_of(gc),
                 f"spec.controllerName: want {GATEWAY_CONTROLLER}")
    kinds = {d["kind"] for d in docs}
    if workloads[0]["kind"] == "Deployment":
        c.expect({"PodDisruptionBudget", "Service"} <= kinds, name, "a Deployment install has a PodDisruptionBudget and a Service")
        svc = [d for d in docs if d["kind"] == "Service"]
        c.expect(all(s["spec"].get("type") == "LoadBalancer" for s in svc), name, "Service type: LoadBalancer")
        c.expect(all(sorted(p["port"] for p in s["spec"]["ports"]) == [80, 443] for s in svc), name, "Service ports: 80 and 443")
    else:
        c.expect("PodDisruptionBudget" not in kinds and "Service" not in kinds, name,
                 "the DaemonSet install has neither PodDisruptionBudget nor LoadBalancer Service")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--vestibule", default=os.path.join(ROOT, "target/debug/vestibule"))
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    if not os.access(args.vestibule, os.X_OK):
        sys.exit(f"deploy-manifests: {args.vestibule} is not built (cargo build, or --vestibule)")
    out_dir = args.out or tempfile.mkdtemp(prefix="vestibule-deploy-")
    os.makedirs(out_dir, exist_ok=True)
    known = known_run_flags(args.vestibule)
    c = Checks()
    version = re.search(r'^version = "(.*)"', open(os.path.join(ROOT, "Cargo.toml")).read(), re.M).group(1)
    for dirpath, _, files in os.walk(os.path.join(ROOT, "deploy")):
        for f in files:
            path = os.path.relpath(os.path.join(dirpath, f), ROOT)
            text = open(os.path.join(dirpath, f)).read()
            if f == "kustomization.yaml":
                extra = set(yaml.safe_load(text)) - KUSTOMIZE_V2_FIELDS
                c.expect(not extra, path, f"{sorted(extra)}: not read alike by kustomize v2.0.3 (kubectl 1.20); use {sorted(KUSTOMIZE_V2_FIELDS)}")
                for res in yaml.safe_load(text).get("resources", []):
                    c.expect(os.path.isfile(os.path.join(dirpath, res)), path,
                             f"resources: {res}: kustomize v2.0.3 takes only files here (directories under `bases:`)")
                for img in yaml.safe_load(text).get("images", []):
                    c.expect(img.get("newTag") == version, path, f"images: {img} is not the version in Cargo.toml ({version})")
            elif f.endswith(".yaml"):
                c.expect("$patch" not in text, path, "$patch: kustomize v2.0.3 mishandles deletions; compose parts instead")
    for flag in sorted(set(PENDING_FLAGS) & set(known)):
        c.fail(".ci/deploy_manifests.py", f"PENDING_FLAGS: {flag} is now in `vestibule run --help`: remove its line")
    renders = {}
    for name, path in KUSTOMIZATIONS.items():
        text = render(path)
        rendered = os.path.join(out_dir, f"{name}.yaml")
        with open(rendered, "w") as f:
            f.write(text)
        renders[name] = text
        c.prefix = path
        check_render(c, path, text, args.vestibule, known, out_dir, rendered)

    c.prefix = ""
    # The overlays change only what they say they change.
    def objects(name, kinds):
        return sorted((yaml.safe_dump(d) for d in yaml.safe_load_all(renders[name]) if d and d["kind"] in kinds))
    rbac = {"ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding", "ServiceAccount", "IngressClass"}
    c.expect(objects("daemonset", rbac) == objects("base", rbac), "deploy/overlays/daemonset",
             "RBAC and IngressClass must be the base's")
    rbac.add("Namespace")
    c.expect(objects("gateway-api", rbac | {"Deployment", "Service", "PodDisruptionBudget"}) ==
             objects("base", rbac | {"Deployment", "Service", "PodDisruptionBudget"}),
             "deploy/overlays/gateway-api", "must be the base plus the GatewayClass only")
    # The lb overlay: the base's objects (its Deployment with --lb added) plus parts/lb-rbac.
    lb_docs = [d for d in yaml.safe_load_all(renders["lb"]) if d]
    lb_extra = sorted(name_of(d) for d in lb_docs if d["metadata"]["name"] == "vestibule-lb")
    c.expect(lb_extra == ["ClusterRole vestibule-lb", "ClusterRoleBinding vestibule-lb",
                          "Role metallb-system/vestibule-lb", "RoleBinding metallb-system/vestibule-lb"],
             "deploy/overlays/lb", f"adds exactly parts/lb-rbac, got {lb_extra}")
    kept = rbac | {"Service", "PodDisruptionBudget"}
    c.expect(sorted(yaml.safe_dump(d) for d in lb_docs if d["kind"] in kept and d["metadata"]["name"] != "vestibule-lb") ==
             objects("base", kept), "deploy/overlays/lb", "must be the base plus parts/lb-rbac and --lb")
    lb_args = next(d for d in lb_docs if d["kind"] == "Deployment")["spec"]["template"]["spec"]["containers"][0]["args"]
    c.expect("--lb" in lb_args, "deploy/overlays/lb", "its Deployment runs with --lb")

    # A newer schema, strictly: misspelt or misplaced fields of built-in kinds.
    validate = shutil.which("kubernetes-validate")
    if validate:
        files = [os.path.join(out_dir, f"{n}.yaml") for n in KUSTOMIZATIONS]
        out = run([validate, "--strict", "--quiet", "--no-warn", *files])
        c.expect(out.returncode == 0, "kubernetes-validate --strict", (out.stdout + out.stderr).strip())
        print("deploy-manifests: kubernetes-validate --strict (its newest schema): " + ("ok" if out.returncode == 0 else "FAILED"),
              flush=True)
    else:
        print("deploy-manifests: SKIPPED the schema check: kubernetes-validate is not installed (pip install kubernetes-validate)")

    if c.failures:
        print("\n".join(f"deploy-manifests: FAIL: {f}" for f in c.failures), file=sys.stderr)
        sys.exit(1)
    print(f"deploy-manifests: ok: {', '.join(KUSTOMIZATIONS.values())} rendered to {out_dir}, parsed, invariants hold")


if __name__ == "__main__":
    main()
