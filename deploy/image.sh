#!/usr/bin/env bash
# Builds the Vestibule image without a registry: the Dockerfile's final image, assembled from a
# binary built on this host instead of pulled base images.
#   deploy/image.sh [--binary PATH] [--tag NAME:TAG]
# Defaults: the first of target/dist, target/release, target/debug that holds `vestibule`;
# tag vestibule:<version in Cargo.toml>. Prints the tag on stdout when done.
#
# The root filesystem holds /vestibule, the shared libraries `ldd` names (with the dynamic
# loader, at the same paths), /etc/passwd and /etc/group with root and nonroot (65532), the
# host's CA bundle and an empty /tmp; it is imported with `docker import` and the Dockerfile's
# USER, ENTRYPOINT, EXPOSE and WORKDIR. Nothing in it is writable by 65532: run it with
# `--read-only --user 65532 --cap-drop ALL` as the manifests do.
set -Eeuo pipefail
cd "$(dirname "$0")/.."

binary="" tag=""
while [ $# -gt 0 ]; do
  case "$1" in
    --binary) binary=${2:?--binary needs a path}; shift 2 ;;
    --tag) tag=${2:?--tag needs NAME:TAG}; shift 2 ;;
    -h|--help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "image.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
if [ -z "$binary" ]; then
  for profile in dist release debug; do
    [ -x "target/$profile/vestibule" ] && { binary=target/$profile/vestibule; break; }
  done
  [ -n "$binary" ] || { echo "image.sh: no target/{dist,release,debug}/vestibule: run cargo build --profile dist, or pass --binary" >&2; exit 1; }
fi
[ -x "$binary" ] || { echo "image.sh: --binary $binary: not an executable file" >&2; exit 1; }
if [ -z "$tag" ]; then
  version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)
  tag=vestibule:${version:?cannot read the version from Cargo.toml}
fi
command -v docker >/dev/null || { echo "image.sh: docker is not installed" >&2; exit 1; }

root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root/etc" "$root/tmp"
chmod 1777 "$root/tmp"
install -m 0755 "$binary" "$root/vestibule"

# Every library the binary loads, and the loader itself, at the path ldd resolves.
# (`ldd` prints `name => /path (addr)`, or `/path (addr)` for the loader, or no path for vdso.)
# A static binary: ldd says "not a dynamic executable" (exit 1) and nothing is copied.
libs=$({ ldd "$binary" 2>/dev/null || true; } | awk '{ for (i = 1; i <= NF; i++) if ($i ~ /^\//) print $i }' | sort -u)
for lib in $libs; do
  mkdir -p "$root$(dirname "$lib")"
  cp -L "$lib" "$root$lib"
done

cat > "$root/etc/passwd" <<'PASSWD'
root:x:0:0:root:/root:/sbin/nologin
nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin
PASSWD
cat > "$root/etc/group" <<'GROUP'
root:x:0:
nonroot:x:65532:
GROUP
# Name resolution (ExternalName Services, the API server's name): files, then DNS.
echo 'hosts: files dns' > "$root/etc/nsswitch.conf"
if [ -f /etc/ssl/certs/ca-certificates.crt ]; then
  mkdir -p "$root/etc/ssl/certs"
  cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/"
fi

# Owned by root, numeric ids (no host user names leak in).
tar --numeric-owner --owner=0 --group=0 -C "$root" -c . |
  docker import \
    --change 'USER 65532:65532' \
    --change 'WORKDIR /' \
    --change 'EXPOSE 8080 8443 9000' \
    --change 'ENTRYPOINT ["/vestibule"]' \
    - "$tag" >/dev/null
echo "$tag"
