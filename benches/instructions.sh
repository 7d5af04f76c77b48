#!/usr/bin/env bash
# Instructions per request for P (bare Pingora) and C (lms-proxy), counted by callgrind:
# unlike requests per second on a shared machine, these counts repeat from run to run, so
# they show what a change to the request path costs. User-space instructions only: the
# kernel's TCP work, cache misses and waiting are not in them.
#
# Each proxy runs under valgrind and gets the same warm-up, then the counters are zeroed,
# wrk runs for DURATION seconds, and the counts are dumped and divided by wrk's requests.
# Prints one JSON line per variant. Note: valgrind's CPU lacks SHA extensions, so SHA-256
# (the tool-JWT cache key) counts a few thousand instructions more than on real hardware.
#
# With LMS_PROXY_BENCH_DATABASE_URL set (a PostgreSQL database the bench may use), C is also
# counted on PostgreSQL ("Cpg"): the cache-hit path should not touch the store at all.
#
# usage: benches/instructions.sh [--duration SECS] [--users N]
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=12
USERS=1000
while [ $# -gt 0 ]; do
  case "$1" in
    --duration) DURATION=$2; shift 2 ;;
    --users) USERS=$2; shift 2 ;;
    *) echo "usage: $0 [--duration SECS] [--users N]" >&2; exit 2 ;;
  esac
done

source benches/common.sh
need_tools nginx wrk python3 valgrind
cargo build --quiet --release --bin lms-proxy --example bare_proxy
cargo build --quiet --release -p lms-sandbox

PA=$(free_port); PP=$(free_port); PC=$(free_port); PS=$(free_port)
start_upstream "$PA"
CALLGRIND=(valgrind --tool=callgrind --dump-instr=no)
"${CALLGRIND[@]}" --callgrind-out-file="$WORK/P.out" "$BARE" "127.0.0.1:$PP" "127.0.0.1:$PA" 2 >/dev/null 2>&1 &
PPID_BARE=$!
PIDS+=($PPID_BARE)
prepare_lms_proxy "$PC" "$PA" "$PS" "$USERS"
"${CALLGRIND[@]}" --callgrind-out-file="$WORK/C.out" "$BIN" run -c "$WORK/lms-proxy.toml" >/dev/null 2>"$WORK/C.log" &
CPID=$!
PIDS+=($CPID)
VARIANTS="P C"
if [ -n "${LMS_PROXY_BENCH_DATABASE_URL:-}" ]; then
  PG=$(free_port)
  # Same users, same JWTs (same public_url), only the store and the listener differ.
  sed -e "s|^listen = .*|listen = \"127.0.0.1:$PG\"|" \
      -e 's|^url = "sqlite://lms-proxy.db"|url_env = "LMS_PROXY_BENCH_DATABASE_URL"|' \
      "$WORK/lms-proxy.toml" > "$WORK/lms-proxy-pg.toml"
  "$BIN" tokens import -c "$WORK/lms-proxy-pg.toml" --platform canvas --tool bench < "$WORK/tokens.jsonl" >/dev/null
  "${CALLGRIND[@]}" --callgrind-out-file="$WORK/Cpg.out" "$BIN" run -c "$WORK/lms-proxy-pg.toml" >/dev/null 2>"$WORK/Cpg.log" &
  CPGID=$!
  PIDS+=($CPGID)
  wait_port "$PG" 1200
  VARIANTS="P C Cpg"
fi
for p in "$PA" "$PP" "$PC" "$PS"; do wait_port "$p" 1200; done

cat >> "$WORK/users.lua" <<'LUA'
done = function(summary, latency, requests)
  io.write(string.format('%d\n', summary.requests))
end
LUA
# The warm-up takes the users in turn, so every JWT and token is cached before counting.
cat > "$WORK/each_user.lua" <<LUA
local jwts = {}
for line in io.lines("$WORK/jwts.txt") do jwts[#jwts + 1] = line end
local i = 0
request = function()
  i = i % #jwts + 1
  return wrk.format("GET", nil, { ["Authorization"] = "Bearer " .. jwts[i] })
end
LUA

for variant in $VARIANTS; do
  case $variant in
    P) url="http://127.0.0.1:$PP/api/v1/courses"; pid=$PPID_BARE ;;
    C) url="http://127.0.0.1:$PC/canvas/api/v1/courses"; pid=$CPID ;;
    Cpg) url="http://127.0.0.1:$PG/canvas/api/v1/courses"; pid=$CPGID ;;
  esac
  # Warm: connections open, every user's JWT and token cached.
  wrk -t1 -c8 -d"${DURATION}s" -s "$WORK/each_user.lua" "$url" >/dev/null
  callgrind_control --zero "$pid" >/dev/null 2>&1
  requests=$(wrk -t1 -c8 -d"${DURATION}s" -s "$WORK/users.lua" "$url" | tail -n 1)
  callgrind_control --dump "$pid" >/dev/null 2>&1
  # The dump is written by the profiled process itself, a moment later.
  for _ in $(seq 1 100); do [ -s "$WORK/$variant.out.1" ] && break; sleep 0.1; done
  sleep 1
  python3 benches/callgrind_summary.py "$variant" "$requests" "$WORK/$variant.out.1"
done
