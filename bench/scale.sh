#!/usr/bin/env bash
# Session check against token check as the number of live credentials grows.
#
#   bench/scale.sh [N ...]        default: 1 10000 200000
#
# For each N: a fresh data directory with one user, N sessions written straight into the
# SQLite store and N access tokens signed with the server's own key (bench/mint.py); then
# `GET /v1/me` under wrk, the credentials presented round robin (the worst case for the
# in-process caches: 100,000 sessions, 65,536 verified tokens), once with cookies, once with
# bearer tokens. The server runs on CPU 0, wrk on CPU 1. Prints req/s, p99 and the server's
# peak RSS per N; compare rows of one run (ratios), not runs of different days.
#
# Env: DURATION (s, default 10), CONNS (default 32); TESSERA_* variables reach the server
# (e.g. TESSERA_SESSION__CACHE_CAPACITY=0 to measure without the session cache).
# Needs: a release build (built if missing), wrk, and Python with PyJWT (scripts/test
# installs it into target/test-venv).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
sizes=("$@")
((${#sizes[@]})) || sizes=(1 10000 200000)
duration=${DURATION:-10} conns=${CONNS:-32}
bin=target/release/tessera
[[ -x $bin ]] || cargo build --release -p tessera-server
python=target/test-venv/bin/python
"$python" -c 'import jwt' 2>/dev/null || python=python3
"$python" -c 'import jwt, cryptography' || { echo "scale.sh: needs PyJWT (run scripts/test once)" >&2; exit 2; }
command -v wrk >/dev/null || apt-get install -y wrk >/dev/null

port=$("$python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
base=http://127.0.0.1:$port
export TESSERA_SERVER__PUBLIC_URL=$base TESSERA_COOKIE__SECURE=false TESSERA_LIMITS__IP_PER_MINUTE=1000000
pid=""
start() { # start DATA_DIR LOG
  taskset -c 0 "$bin" serve --listen "127.0.0.1:$port" --data-dir "$1" >"$2" 2>&1 &
  pid=$!
  for _ in $(seq 100); do grep -q "listening on" "$2" && return 0; sleep 0.1; done
  echo "scale.sh: the server did not start; see $2" >&2; exit 1
}
stop() { kill -TERM "$pid"; wait "$pid" || true; }
trap '[[ -n $pid ]] && kill -KILL $pid 2>/dev/null || true' EXIT

run_wrk() { # run_wrk FILE HEADER
  taskset -c 1 wrk -t1 -c"$conns" -d"${duration}s" --latency -s bench/rotate.lua "$base/v1/me" -- "$1" "$2" \
    | sed -n 's/^WRKJSON //p'
}

echo "# bench/scale.sh $(date -u +%Y-%m-%dT%H:%M:%SZ), ${duration}s runs, -c$conns, load $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "| credentials | session req/s | session p99 ms | session peak RSS MiB | token req/s | token p99 ms | token peak RSS MiB |"
echo "|---:|---:|---:|---:|---:|---:|---:|"
for n in "${sizes[@]}"; do
  dir=$(mktemp -d "${TMPDIR:-/tmp}/tessera-scale.XXXXXX")
  start "$dir/data" "$dir/setup.log"
  curl -sf "$base/v1/users" -H 'content-type: application/json' \
    -d '{"username":"bench.user","password":"bench-pw-9f8e7d6c5b41"}' >/dev/null
  stop
  "$python" bench/mint.py "$dir/data" "$n" "$base" "$dir"
  # Each method gets a fresh server: session renewals written in the background must not
  # land in the token run. One pass over every credential first, so the row is steady state.
  warm=$((n / 20000 + 2))
  measure() { # measure FILE HEADER: sets $result (wrk JSON) and $rss (peak MiB)
    start "$dir/data" "$dir/server.log"
    taskset -c 1 wrk -t1 -c"$conns" -d"${warm}s" -s bench/rotate.lua "$base/v1/me" -- "$1" "$2" >/dev/null
    result=$(run_wrk "$1" "$2")
    rss=$(awk '/^VmHWM:/ {printf "%.1f", $2 / 1024}' "/proc/$pid/status")
    stop
  }
  measure "$dir/sessions.txt" Cookie
  session=$result session_rss=$rss
  measure "$dir/tokens.txt" Authorization
  token=$result token_rss=$rss
  "$python" - "$n" "$session" "$token" "$session_rss" "$token_rss" <<'PY'
import json, sys
n, s, t = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3])
for name, r in (("session", s), ("token", t)):
    if r["non2xx"] or r["socket_errors"]:
        print(f"warning: {name} run at N={n} had {r['non2xx']} non-2xx and {r['socket_errors']} socket errors", file=sys.stderr)
print(f"| {int(n):,} | {s['rps']:,.0f} | {s['p99_us'] / 1000:.2f} | {sys.argv[4]} | "
      f"{t['rps']:,.0f} | {t['p99_us'] / 1000:.2f} | {sys.argv[5]} |")
PY
  rm -rf "$dir"
done
