#!/usr/bin/env bash
# Proves the x64 executable runs on a minimal root filesystem, the way it will in the distroless image:
# nothing but the Debian packages that provide the libraries it links (glibc), unpacked with dpkg -x,
# plus the binary, a config, /etc/passwd with the distroless `nonroot` user (65532), /tmp and a mounted /proc.
# No shell, no certificates, and (until the multi-worker check, which adds the device nodes every
# container runtime provides) no /dev. It runs as 65532:65532.
#
#   test/packaging/rootfs.sh [BINARY]     (default dist/yatagarasu-linux-x64; run `bun run build` first)
#
# Needs root (chroot, mount). Prints PASS/FAIL lines and a SUMMARY line; exits non-zero when any check failed.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

BIN="${1:-$REPO_ROOT/dist/yatagarasu-linux-x64}"
WORK="$(mktemp -d /tmp/yatagarasu-rootfs.XXXXXX)"
ROOT="$WORK/root"
NONROOT="65532:65532"

cleanup() {
  stop_server
  if mountpoint -q "$ROOT/proc" 2>/dev/null; then
    umount "$ROOT/proc" 2>/dev/null || umount -l "$ROOT/proc" 2>/dev/null || echo "warning: could not unmount $ROOT/proc" >&2
  fi
  # Only remove the tree once nothing is mounted inside it.
  if ! grep -q " $ROOT/" /proc/mounts; then rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [ "$(id -u)" -ne 0 ]; then
  fail "rootfs: running as root" "chroot and mount need root"
  summary rootfs
  exit 1
fi
if [ ! -f "$BIN" ]; then
  fail "rootfs: x64 binary exists" "$BIN not found (run: bun run build)"
  summary rootfs
  exit 1
fi
command -v curl >/dev/null || ensure_apt curl

# 1. Which Debian packages provide the shared libraries the binary links? (ldd resolves them on this host.)
mapfile -t LIBS < <(ldd "$BIN" | awk '/=>/ { print $3 } !/=>/ && $1 ~ /^\// { print $1 }' | sort -u)
PKGS=(libc6)
for lib in "${LIBS[@]}"; do
  owner="$(dpkg -S "$lib" 2>/dev/null || dpkg -S "$(readlink -f "$lib")" 2>/dev/null || true)"
  owner="${owner%%:*}"
  [ -n "$owner" ] && PKGS+=("$owner")
done
mapfile -t PKGS < <(printf '%s\n' "${PKGS[@]}" | sort -u)
log "binary links: ${LIBS[*]}"
log "packages for the root filesystem: ${PKGS[*]}"

# 2. Download and unpack them (the same glibc version as the host, which is what apt offers).
mkdir -p "$WORK/debs" "$ROOT"
download() { (cd "$WORK/debs" && apt-get download -qq "${PKGS[@]}" 2>&1 | grep -v 'unsandboxed' || true); }
download
if ! ls "$WORK"/debs/*.deb >/dev/null 2>&1; then
  apt_update_once
  download
fi
for p in "${PKGS[@]}"; do
  if ! ls "$WORK/debs/${p}_"*.deb >/dev/null 2>&1; then
    fail "rootfs: download $p" "apt-get download $p produced no .deb"
    summary rootfs
    exit 1
  fi
done
for deb in "$WORK"/debs/*.deb; do dpkg -x "$deb" "$ROOT"; done
pass "rootfs: unpacked ${PKGS[*]} ($(du -sh "$ROOT" | cut -f1))"

# 3. The rest of the image: binary, config, users, /tmp, /proc. Nothing else.
mkdir -p "$ROOT/usr/local/bin" "$ROOT/etc/yatagarasu" "$ROOT/tmp" "$ROOT/proc" "$ROOT/home/nonroot"
chmod 1777 "$ROOT/tmp"
chown 65532:65532 "$ROOT/home/nonroot"
install -m 0755 "$BIN" "$ROOT/usr/local/bin/yatagarasu"
cat >"$ROOT/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/sbin/nologin
nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin
EOF
cat >"$ROOT/etc/group" <<'EOF'
root:x:0:
nonroot:x:65532:
EOF
PORT="$(free_port)"
write_config "$PORT" "$ROOT/etc/yatagarasu/config.yaml"
# The same with two worker processes: the primary re-executes the binary (via /proc/self/exe).
PORT2="$(free_port)"
write_config "$PORT2" - | sed 's/^  shutdown_timeout: .*/&\n  workers: 2/' >"$ROOT/etc/yatagarasu/workers.yaml"
cp "$FIXTURES/invalid-yaml.yaml" "$FIXTURES/invalid-schema.yaml" "$ROOT/etc/yatagarasu/"
chmod 0644 "$ROOT"/etc/yatagarasu/*.yaml

if [ ! -e "$ROOT/bin/sh" ] && [ ! -e "$ROOT/usr/bin/sh" ] && [ ! -e "$ROOT/etc/ssl/certs" ]; then
  pass "rootfs: no shell and no CA store in the root filesystem"
else
  fail "rootfs: no shell and no CA store in the root filesystem" "the unpacked packages brought one"
fi

mount -t proc proc "$ROOT/proc"

RUN=(env -i PATH=/usr/local/bin HOME=/home/nonroot "$(command -v chroot)" --userspec="$NONROOT" "$ROOT" /usr/local/bin/yatagarasu)

VERSION="$(package_version)"
expect_exit "rootfs: --version exits 0" 0 "${RUN[@]}" --version
expect_prefix "rootfs: --version prints 'yatagarasu $VERSION (commit ...'" "yatagarasu $VERSION (commit "
expect_exit "rootfs: --help exits 0" 0 "${RUN[@]}" --help
expect_exit "rootfs: --check accepts the config" 0 "${RUN[@]}" --check --config /etc/yatagarasu/config.yaml
expect_exit "rootfs: --check rejects malformed YAML with exit 1" 1 "${RUN[@]}" --check --config /etc/yatagarasu/invalid-yaml.yaml
expect_exit "rootfs: --check rejects a schema violation with exit 1" 1 "${RUN[@]}" --check --config /etc/yatagarasu/invalid-schema.yaml

# 4. It serves from the chroot (same network namespace): /health from outside, the image's HEALTHCHECK
#    command from inside, then SIGTERM and exit 0.
HEALTHCHECK_CMD=("${RUN[@]}")
serve_check "rootfs" "$PORT" "$WORK/server.log" "${RUN[@]}" --config /etc/yatagarasu/config.yaml

# 5. Multi-process mode works from the executable in the minimal root filesystem too. Spawning a
#    worker with stdin "ignore" opens /dev/null, so from here on /dev has the character devices a
#    container runtime always provides (the checks above ran with no /dev at all).
mkdir -p "$ROOT/dev"
for node in "null 1 3" "zero 1 5" "full 1 7" "random 1 8" "urandom 1 9" "tty 5 0"; do
  set -- $node
  [ -e "$ROOT/dev/$1" ] || mknod -m 0666 "$ROOT/dev/$1" c "$2" "$3"
done
if grep -q '^  workers: 2$' "$ROOT/etc/yatagarasu/workers.yaml"; then
  HEALTHCHECK_CMD=()
  serve_check "rootfs workers=2" "$PORT2" "$WORK/server-workers.log" "${RUN[@]}" --config /etc/yatagarasu/workers.yaml
else
  fail "rootfs workers=2: config" "could not add 'workers: 2' to the fixture"
fi

summary rootfs
