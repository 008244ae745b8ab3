# Builds a local image holding the `vestibule` binary (run as `vestibule echo`), the libraries
# `ldd` names and `/bin/sh` (for healthchecks), with `docker import` (no registry needed).
# Used by `vestibule demo --docker` and the Docker tests. Arguments: BINARY TAG.
set -eu
root=$(mktemp -d); trap 'rm -rf "$root"' EXIT
mkdir -p "$root/bin" "$root/tmp"; chmod 1777 "$root/tmp"
install -m 0755 "$1" "$root/vestibule"; cp -L /bin/sh "$root/bin/sh"
for lib in $( { ldd "$1"; ldd /bin/sh; } 2>/dev/null | awk '{ for (i = 1; i <= NF; i++) if ($i ~ /^\//) print $i }' | sort -u); do
  mkdir -p "$root$(dirname "$lib")"; cp -L "$lib" "$root$lib"
done
tar --numeric-owner --owner=0 --group=0 -C "$root" -c . |
  docker import --change 'ENTRYPOINT ["/vestibule"]' - "$2" >/dev/null
