#!/usr/bin/env bash
# The image deploy/image.sh builds, run as the manifests run it: read-only root filesystem,
# uid 65532, every capability dropped, and the listener, admin and shutdown flags of the
# rendered Deployment (the Kubernetes flags need an API server: .ci/deploy-cluster.sh). Checks
# /healthz, /readyz, one request routed by `vestibule run -f` (a manifest mounted read-only) to
# an echo backend in a second container, and SIGTERM as the kubelet sends it: /readyz 503 at
# once while traffic is still served for --shutdown-delay, then exit 0 well within the
# manifest's terminationGracePeriodSeconds. Then the DaemonSet overlay's mode (its flags; uid 0,
# only NET_BIND_SERVICE, port 80) and why it needs uid 0 (uid 65532 with the same capability
# cannot bind port 80).
#   .ci/deploy-image.sh   (VESTIBULE_BIN: the binary, default target/debug/vestibule;
#                          KUBECTL: the kubectl that renders deploy/, default kubectl)
# Removes the containers and the image it created, by the names it gave them. Skips, loudly,
# when no Docker engine answers.
set -Eeuo pipefail
cd "$(dirname "$0")/.."

bin=${VESTIBULE_BIN:-target/debug/vestibule}
if ! command -v docker >/dev/null 2>&1 || ! timeout 20 docker info >/dev/null 2>&1; then
  echo "deploy-image: SKIPPED: no Docker engine answers here (docker info failed); the image was NOT tested" >&2
  exit 0
fi
[ -x "$bin" ] || { echo "deploy-image: $bin is not built (cargo build, or set VESTIBULE_BIN)" >&2; exit 1; }

id=$$
image=vestibule-ci-image:$id
echo_c=vestibule-ci-echo-$id proxy_c=vestibule-ci-proxy-$id low_c=vestibule-ci-lowport-$id
denied_c=vestibule-ci-denied-$id
work=$(mktemp -d)
cleanup() {
  docker rm -f "$echo_c" "$proxy_c" "$low_c" "$denied_c" >/dev/null 2>&1 || true
  docker rmi "$image" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "deploy-image: FAIL: $*" >&2; for c in "$proxy_c" "$low_c"; do docker logs "$c" 2>&1 | tail -n 20 >&2 || true; done; exit 1; }

deploy/image.sh --binary "$bin" --tag "$image" >/dev/null
[ "$(docker image inspect "$image" --format '{{.Config.User}} {{json .Config.Entrypoint}}')" = '65532:65532 ["/vestibule"]' ] ||
  fail "image config: $(docker image inspect "$image" --format '{{json .Config}}')"

# The flags of the rendered manifests that shape the process outside a cluster, one per line.
runtime_args() { # kustomization
  "${KUBECTL:-kubectl}" kustomize "$1" 2>/dev/null | python3 -c '
import sys, yaml
keep = ("--http", "--https", "--admin", "--shutdown-delay", "--drain-timeout")
for d in yaml.safe_load_all(sys.stdin):
    if d and d["kind"] in ("Deployment", "DaemonSet"):
        pod = d["spec"]["template"]["spec"]
        print("--grace=%s" % pod.get("terminationGracePeriodSeconds", 30))
        for arg in pod["containers"][0]["args"]:
            if arg.split("=")[0] in keep:
                print(arg)'
}
flag() { local name=$1; shift; printf '%s\n' "$@" | sed -n "s/^$name=//p" | tail -n 1; }
mapfile -t deploy_args < <(runtime_args deploy/base)
mapfile -t ds_args < <(runtime_args deploy/overlays/daemonset)
grace=$(flag --grace "${deploy_args[@]}") delay=$(flag --shutdown-delay "${deploy_args[@]}")
http_port=$(flag --http "${deploy_args[@]}") admin_port=$(flag --admin "${deploy_args[@]}")
http_port=${http_port##*:} admin_port=${admin_port##*:}
[ -n "$grace" ] && [ -n "$delay" ] && [ -n "$http_port" ] && [ -n "$admin_port" ] ||
  fail "cannot read the Deployment's flags from deploy/base: ${deploy_args[*]}"
unset 'deploy_args[0]' 'ds_args[0]' # --grace is ours, not vestibule's

# As the Deployment runs it (docker's --user/--read-only/--cap-drop for the pod's securityContext).
restricted=(--read-only --user 65532:65532 --cap-drop ALL --security-opt no-new-privileges)
ip_of() { docker inspect --format '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' "$1"; }

docker run -d --name "$echo_c" "${restricted[@]}" "$image" echo --listen 0.0.0.0:8081 --name ci-echo >/dev/null
echo_ip=$(ip_of "$echo_c")
[ -n "$echo_ip" ] || fail "the echo container has no bridge address"

mkdir -p "$work/manifests"
cat > "$work/manifests/app.yaml" <<YAML
apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata: {name: vestibule}
spec: {controller: vestibule.dev/ingress-controller}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: ci, namespace: default}
spec:
  ingressClassName: vestibule
  rules:
  - host: ci.example
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: echo, port: {number: 80}}}}
---
apiVersion: v1
kind: Service
metadata: {name: echo, namespace: default}
spec:
  ports: [{name: http, port: 80, targetPort: 8081}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: echo-1
  namespace: default
  labels: {kubernetes.io/service-name: echo}
addressType: IPv4
ports: [{name: http, port: 8081}]
endpoints:
- addresses: ["$echo_ip"]
  conditions: {ready: true}
YAML
chmod -R a+rX "$work"

# Until $2 answers $3 (HTTP status) at most 100 x 0.1 s; prints the body.
wait_http() {
  local what=$1 url=$2 want=$3 i code
  shift 3
  for ((i = 0; i < 100; i++)); do
    code=$(curl -s -o "$work/body" -w '%{http_code}' --max-time 2 "$@" "$url" || true)
    [ "$code" = "$want" ] && { cat "$work/body"; return 0; }
    sleep 0.1
  done
  fail "$what: $url answered ${code:-nothing}, not $want, after 10 s"
}

docker run -d --name "$proxy_c" "${restricted[@]}" -v "$work/manifests:/manifests:ro" "$image" \
  run -f /manifests "${deploy_args[@]}" >/dev/null
proxy_ip=$(ip_of "$proxy_c")
[ -n "$proxy_ip" ] || fail "the proxy container has no bridge address"
wait_http healthz "http://$proxy_ip:$admin_port/healthz" 200 >/dev/null
wait_http readyz "http://$proxy_ip:$admin_port/readyz" 200 >/dev/null
body=$(wait_http "routed request" "http://$proxy_ip:$http_port/hello" 200 -H 'Host: ci.example')
grep -q ci-echo <<<"$body" || fail "routed request: the body does not come from the echo backend: $body"
wait_http "unknown host" "http://$proxy_ip:$http_port/" 404 -H 'Host: nobody.example' >/dev/null
[ "$(docker inspect --format '{{.State.Running}}' "$proxy_c")" = true ] || fail "the proxy container stopped"
echo "deploy-image: ok: deploy/base's flags (${deploy_args[*]}), read-only, uid 65532, no capabilities: /healthz, /readyz, ci.example -> $echo_ip:8081, 404 for an unknown host"

# SIGTERM, as the kubelet sends it to the container's PID 1 (vestibule itself).
start_ms=$(date +%s%3N)
docker kill --signal TERM "$proxy_c" >/dev/null
wait_http "readyz after SIGTERM" "http://$proxy_ip:$admin_port/readyz" 503 >/dev/null
wait_http "traffic during --shutdown-delay" "http://$proxy_ip:$http_port/hello" 200 -H 'Host: ci.example' >/dev/null
exit_code=$(timeout "$grace" docker wait "$proxy_c") || fail "still running $grace s (terminationGracePeriodSeconds) after SIGTERM"
elapsed_ms=$(($(date +%s%3N) - start_ms))
[ "$exit_code" = 0 ] || fail "exit status $exit_code after SIGTERM, want 0"
[ "$elapsed_ms" -ge "$((${delay%.*} * 1000))" ] || fail "exited ${elapsed_ms} ms after SIGTERM, before --shutdown-delay ($delay s)"
echo "deploy-image: ok: SIGTERM: /readyz 503, traffic still served, exit 0 after $elapsed_ms ms (--shutdown-delay $delay s, terminationGracePeriodSeconds $grace)"

# The DaemonSet overlay's securityContext: uid 0, only NET_BIND_SERVICE, the node's port 80.
# Docker opens every port to every user in a container's own network namespace
# (net.ipv4.ip_unprivileged_port_start=0); a node's network namespace, which hostNetwork pods
# share, keeps the kernel's 1024, so the test sets that back.
node_ports=(--sysctl net.ipv4.ip_unprivileged_port_start=1024)
docker run -d --name "$low_c" "${node_ports[@]}" --read-only --user 0:0 --cap-drop ALL \
  --cap-add NET_BIND_SERVICE --security-opt no-new-privileges -v "$work/manifests:/manifests:ro" \
  "$image" run -f /manifests "${ds_args[@]}" >/dev/null
low_ip=$(ip_of "$low_c")
low_port=$(flag --http "${ds_args[@]}")
low_port=${low_port##*:}
[ "$low_port" = 80 ] || fail "the DaemonSet's --http port is $low_port, not 80"
wait_http "port 80 (uid 0 + NET_BIND_SERVICE)" "http://$low_ip:$low_port/hello" 200 -H 'Host: ci.example' >/dev/null
echo "deploy-image: ok: the DaemonSet's flags (${ds_args[*]}), uid 0 with only NET_BIND_SERVICE: served on port 80"

# Why that pod is uid 0: uid 65532 given the same capability still cannot bind port 80 (no
# ambient capabilities for non-root users), and the start-up error names the flag.
docker run -d --name "$denied_c" "${node_ports[@]}" --read-only --user 65532:65532 --cap-drop ALL \
  --cap-add NET_BIND_SERVICE --security-opt no-new-privileges "$image" \
  run --http 0.0.0.0:80 --https 0.0.0.0:8443 --admin 127.0.0.1:9000 >/dev/null
for ((i = 0; i < 100; i++)); do
  [ "$(docker inspect --format '{{.State.Running}}' "$denied_c")" = false ] && break
  sleep 0.1
done
status=$(docker inspect --format '{{.State.Running}} {{.State.ExitCode}}' "$denied_c")
out=$(docker logs "$denied_c" 2>&1)
[ "$status" = "false 1" ] && grep -q -- '--http 0.0.0.0:80' <<<"$out" ||
  fail "uid 65532 + NET_BIND_SERVICE on port 80: expected exit 1 naming --http, got (running, exit) $status: $out"
echo "deploy-image: ok: uid 65532 + NET_BIND_SERVICE cannot bind port 80: $(grep -o -- '--http 0.0.0.0:80.*' <<<"$out" | head -n 1)"
