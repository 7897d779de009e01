#!/usr/bin/env bash
# Runs the arm64 executable under qemu user-mode emulation against arm64 glibc from Debian multiarch.
#
#   test/packaging/arm64.sh [BINARY]     (default dist/yatagarasu-linux-arm64; run `bun run build` first)
#
# Installs qemu-user-static and libc6:arm64 when missing (root). Prints PASS/FAIL lines and a SUMMARY line;
# exits non-zero when any check failed.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

BIN="${1:-$REPO_ROOT/dist/yatagarasu-linux-arm64}"
WORK="$(mktemp -d /tmp/yatagarasu-arm64.XXXXXX)"
cleanup() {
  stop_server
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [ ! -f "$BIN" ]; then
  fail "arm64 binary exists" "$BIN not found (run: bun run build)"
  summary arm64
  exit 1
fi

# qemu user-mode emulator and the arm64 loader + libc (multiarch puts them under / itself).
if ! command -v qemu-aarch64-static >/dev/null || { [ ! -e /lib/ld-linux-aarch64.so.1 ] && [ ! -e /usr/aarch64-linux-gnu/lib/ld-linux-aarch64.so.1 ]; }; then
  ensure_apt qemu-user-static libc6:arm64 || true
fi
if ! command -v qemu-aarch64-static >/dev/null; then
  fail "qemu-aarch64-static available" "not installed and could not be installed"
  summary arm64
  exit 1
fi
if [ -e /lib/ld-linux-aarch64.so.1 ]; then
  SYSROOT=/
elif [ -e /usr/aarch64-linux-gnu/lib/ld-linux-aarch64.so.1 ]; then
  SYSROOT=/usr/aarch64-linux-gnu
else
  fail "arm64 glibc sysroot" "no /lib/ld-linux-aarch64.so.1 (apt-get install libc6:arm64 after dpkg --add-architecture arm64)"
  summary arm64
  exit 1
fi
log "qemu: $(qemu-aarch64-static --version | head -1); sysroot $SYSROOT; binary $BIN"

# The binary runs in a clean environment, as in a container: nothing from this shell leaks in.
# (An array, not a function: `timeout` and `&` need a real command whose pid is the emulator's.)
RUN=(env -i PATH=/usr/bin:/bin HOME="$WORK" "$(command -v qemu-aarch64-static)" -L "$SYSROOT" "$BIN")

# 1. The file is an aarch64 ELF executable (e_machine 0xb7 at offset 18, little-endian).
machine="$(od -An -t x1 -j 18 -N 2 "$BIN" | tr -d ' \n')"
magic="$(od -An -t x1 -N 4 "$BIN" | tr -d ' \n')"
if [ "$magic" = "7f454c46" ] && [ "$machine" = "b700" ]; then
  pass "arm64: file is an aarch64 ELF executable"
else
  fail "arm64: file is an aarch64 ELF executable" "magic $magic, e_machine $machine"
fi

VERSION="$(package_version)"
expect_exit "arm64: --version exits 0" 0 "${RUN[@]}" --version
expect_prefix "arm64: --version prints 'yatagarasu $VERSION (commit ...'" "yatagarasu $VERSION (commit "
expect_exit "arm64: --help exits 0" 0 "${RUN[@]}" --help

PORT="$(free_port)"
write_config "$PORT" "$WORK/config.yaml"
expect_exit "arm64: --check accepts a valid config" 0 "${RUN[@]}" --check --config "$WORK/config.yaml"
expect_exit "arm64: --check rejects malformed YAML with exit 1" 1 "${RUN[@]}" --check --config "$FIXTURES/invalid-yaml.yaml"
expect_exit "arm64: --check rejects a schema violation with exit 1" 1 "${RUN[@]}" --check --config "$FIXTURES/invalid-schema.yaml"
expect_exit "arm64: --check on a missing file exits 1" 1 "${RUN[@]}" --check --config "$WORK/does-not-exist.yaml"

# 2. It serves: start under qemu, GET /health from outside, SIGTERM, exit 0.
HEALTHCHECK_CMD=("${RUN[@]}")
serve_check "arm64" "$PORT" "$WORK/server.log" "${RUN[@]}" --config "$WORK/config.yaml"

summary arm64
