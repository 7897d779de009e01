# shellcheck shell=bash
# Helpers shared by the packaging checks (sourced, not run).
#
# Each check prints one line: "PASS: <name>" or "FAIL: <name>: <why>".
# A script ends with "SUMMARY <script> pass=N fail=N", which .ci/run reads.

PKG_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$PKG_DIR/../.." && pwd)"
FIXTURES="$PKG_DIR/fixtures"

CHECKS_PASSED=0
CHECKS_FAILED=0

pass() {
  CHECKS_PASSED=$((CHECKS_PASSED + 1))
  echo "PASS: $1"
}

fail() {
  CHECKS_FAILED=$((CHECKS_FAILED + 1))
  echo "FAIL: $1${2:+: $2}"
}

# summary NAME: prints the SUMMARY line and returns non-zero when any check failed.
summary() {
  echo "SUMMARY $1 pass=$CHECKS_PASSED fail=$CHECKS_FAILED"
  [ "$CHECKS_FAILED" -eq 0 ]
}

log() { echo "[$(date +%H:%M:%S)] $*" >&2; }

package_version() {
  # The version the binaries must report; read with bun so no jq is needed.
  bun -e 'console.log(require(process.argv[1]).version)' "$REPO_ROOT/package.json"
}

# free_port: asks the kernel for a free loopback TCP port (listen on 0, print, close).
free_port() {
  bun -e 'const s = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } }); console.log(s.port); s.stop(true);'
}

# write_config PORT FILE: the valid fixture with its port filled in (FILE "-" for stdout).
write_config() {
  if [ "$2" = "-" ]; then sed "s/@PORT@/$1/" "$FIXTURES/config.yaml.in"; else sed "s/@PORT@/$1/" "$FIXTURES/config.yaml.in" >"$2"; fi
}

APT_UPDATED=0
apt_update_once() {
  if [ "$APT_UPDATED" -eq 0 ]; then
    log "apt-get update"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    APT_UPDATED=1
  fi
}

# ensure_apt PKG...: installs the Debian packages that are not installed yet (needs root).
ensure_apt() {
  local missing=() p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ "${#missing[@]}" -eq 0 ] && return 0
  if [ "$(id -u)" -ne 0 ]; then
    echo "missing Debian packages (${missing[*]}) and not root to install them" >&2
    return 1
  fi
  case " ${missing[*]}" in *":arm64"*)
    if ! dpkg --print-foreign-architectures | grep -qx arm64; then
      dpkg --add-architecture arm64
      APT_UPDATED=0
    fi ;;
  esac
  apt_update_once
  log "apt-get install ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# expect_exit NAME WANT_CODE CMD...: runs CMD (60 s limit), checks its exit code.
# Always returns 0 (safe under set -e); the output is kept in $LAST_OUT and the code in $LAST_RC.
LAST_OUT=""
LAST_RC=0
expect_exit() {
  local name="$1" want="$2"
  shift 2
  LAST_RC=0
  LAST_OUT="$(timeout 60 "$@" 2>&1)" || LAST_RC=$?
  if [ "$LAST_RC" -eq "$want" ]; then
    pass "$name"
  else
    fail "$name" "exit $LAST_RC, expected $want; output: $(printf '%s' "$LAST_OUT" | tail -c 600 | tr '\n' ' ')"
  fi
}

# expect_output NAME WANT: checks that $LAST_OUT (trimmed) is exactly WANT.
expect_output() {
  local got
  got="$(printf '%s' "$LAST_OUT" | sed -e 's/[[:space:]]*$//')"
  if [ "$got" = "$2" ]; then pass "$1"; else fail "$1" "got '$(printf '%s' "$got" | head -c 300)', expected '$2'"; fi
}

# expect_prefix NAME PREFIX: the last command's output (trailing space trimmed) starts with PREFIX.
expect_prefix() {
  local got
  got="$(printf '%s' "$LAST_OUT" | sed -e 's/[[:space:]]*$//')"
  case "$got" in
    "$2"*) pass "$1" ;;
    *) fail "$1" "got '$(printf '%s' "$got" | head -c 300)', expected it to start with '$2'" ;;
  esac
}

# http_status URL: prints the HTTP status (000 when nothing answered).
http_status() {
  curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$1" || true
}

# serve_check LABEL PORT LOGFILE CMD...: starts CMD (a server on 127.0.0.1:PORT) in the background,
# waits for /health to answer 200 (polling, at most 60 s, stops early if the process dies),
# checks the startup log names the port, optionally runs HEALTHCHECK_CMD (an array, set by the caller)
# against it, then sends SIGTERM and expects exit code 0 within 20 s.
SERVER_PID=""
HEALTHCHECK_CMD=()
serve_check() {
  local label="$1" port="$2" logf="$3"
  shift 3
  "$@" >"$logf" 2>&1 &
  SERVER_PID=$!
  local deadline=$((SECONDS + 60)) status="000"
  while [ "$SECONDS" -lt "$deadline" ]; do
    status="$(http_status "http://127.0.0.1:$port/health")"
    [ "$status" = "200" ] && break
    kill -0 "$SERVER_PID" 2>/dev/null || break
    sleep 0.1
  done
  if [ "$status" = "200" ]; then
    pass "$label: GET /health answered 200"
  else
    fail "$label: GET /health" "last status $status; server log: $(tail -c 800 "$logf" | tr '\n' ' ')"
  fi

  if [ "$status" = "200" ]; then
    # The binary raises Bun's own 16 KiB request-head limit to the default max_header_size (build.ts).
    local big hs
    big="$(head -c 30000 /dev/zero | tr '\0' a)"
    hs="$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 -H "x-big: $big" "http://127.0.0.1:$port/health" || true)"
    if [ "$hs" = "200" ]; then
      pass "$label: a 30 KB request head is served (built-in --max-http-header-size)"
    else
      fail "$label: a 30 KB request head is served" "status $hs"
    fi
  fi

  if grep -Eq "\"port\" *: *$port([^0-9]|$)" "$logf"; then
    pass "$label: startup log line names port $port"
  else
    fail "$label: startup log line names port $port" "log: $(tail -c 400 "$logf" | tr '\n' ' ')"
  fi

  if [ "${#HEALTHCHECK_CMD[@]}" -gt 0 ] && [ "$status" = "200" ]; then
    expect_exit "$label: --healthcheck against the running server exits 0" 0 \
      "${HEALTHCHECK_CMD[@]}" --healthcheck "http://127.0.0.1:$port/health"
    local dead
    dead="$(free_port)"
    expect_exit "$label: --healthcheck against a closed port exits 1" 1 \
      "${HEALTHCHECK_CMD[@]}" --healthcheck "http://127.0.0.1:$dead/health"
  fi

  if ! kill -0 "$SERVER_PID" 2>/dev/null; then
    local rc=0
    wait "$SERVER_PID" || rc=$?
    fail "$label: still running when SIGTERM was due" "it had exited with $rc"
    SERVER_PID=""
    return
  fi
  kill -TERM "$SERVER_PID"
  deadline=$((SECONDS + 20))
  while kill -0 "$SERVER_PID" 2>/dev/null && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.1; done
  if kill -0 "$SERVER_PID" 2>/dev/null; then
    kill -KILL "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
    fail "$label: SIGTERM stops the server" "still running 20 s after SIGTERM; killed"
  else
    local rc=0
    wait "$SERVER_PID" || rc=$?
    if [ "$rc" -eq 0 ]; then
      pass "$label: SIGTERM stops the server with exit code 0"
    else
      fail "$label: SIGTERM stops the server with exit code 0" "exit $rc; log: $(tail -c 400 "$logf" | tr '\n' ' ')"
    fi
  fi
  SERVER_PID=""
}

# stop_server: for traps; ends a server serve_check left running.
stop_server() {
  if [ -n "${SERVER_PID:-}" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill -KILL "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  SERVER_PID=""
}
