#!/usr/bin/env bash
# Builds the Sluice container image without pulling a base image (FROM scratch; see
# deploy/Containerfile.scratch): the binary, the shared libraries it links (ldd), the
# machine's CA certificates and deploy/container.yaml.
#
#   bash deploy/build-image.sh [--binary PATH] [--tag NAME] [--no-strip]
#
# --binary: the sluice binary to put in the image (default: target/release/sluice, built with
#   `cargo build --release` when missing). The tests pass their debug binary (see
#   docs/deploying.md for the trade-off). Its debug info is stripped from the copy unless
#   --no-strip.
# --tag: image name (default localhost/sluice:latest).
# Engine: podman (PODMAN_RUNTIME, default runc, is passed as --runtime); BUILD_ENGINE=docker
# uses `docker build` instead. Prints the image name on its last line.
set -euo pipefail
cd "$(dirname "$0")/.."
binary="" tag="localhost/sluice:latest" strip=1
while [ $# -gt 0 ]; do
  case "$1" in
    --binary) binary="$2"; shift 2 ;;
    --tag) tag="$2"; shift 2 ;;
    --no-strip) strip=0; shift ;;
    *) echo "build-image.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
if [ -z "$binary" ]; then
  binary="${CARGO_TARGET_DIR:-target}/release/sluice"
  [ -x "$binary" ] || cargo build --release --bin sluice
fi
[ -x "$binary" ] || { echo "build-image.sh: no executable at $binary" >&2; exit 2; }

ctx="$(mktemp -d)"
trap 'rm -rf "$ctx"' EXIT
root="$ctx/rootfs"
mkdir -p "$root/usr/local/bin" "$root/etc/sluice" "$root/etc/ssl/certs" "$root/tmp" "$ctx/data"
chmod 1777 "$root/tmp"
if [ "$strip" = 1 ] && command -v objcopy >/dev/null 2>&1; then
  objcopy --strip-debug "$binary" "$root/usr/local/bin/sluice"
else
  cp "$binary" "$root/usr/local/bin/sluice"
fi
# The shared libraries and the program interpreter, each at the path the binary asks for.
for lib in $(ldd "$binary" | awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// {print $1}'); do
  mkdir -p "$root$(dirname "$lib")"
  cp -L "$lib" "$root$lib"
done
if [ -f /etc/ssl/certs/ca-certificates.crt ]; then
  cp -L /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/"
else
  echo "build-image.sh: no /etc/ssl/certs/ca-certificates.crt; the image will not verify https upstreams" >&2
fi
printf 'root:x:0:0:root:/:/sbin/nologin\nnobody:x:65534:65534:nobody:/data:/sbin/nologin\n' > "$root/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' > "$root/etc/group"
cp deploy/container.yaml "$root/etc/sluice/sluice.yaml"
cp deploy/Containerfile.scratch "$ctx/Containerfile"

if [ "${BUILD_ENGINE:-podman}" = docker ]; then
  docker build -t "$tag" "$ctx" >&2
else
  podman --runtime "${PODMAN_RUNTIME:-runc}" build --pull=never -t "$tag" "$ctx" >&2
fi
echo "$tag"
