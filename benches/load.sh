#!/usr/bin/env bash
# Load benchmark: lms-proxy against nginx and against no proxy at all, on loopback.
#
#   A  wrk -> upstream nginx (a fixed Canvas-like JSON body)
#   B  wrk -> nginx reverse proxy adding a fixed Authorization header -> upstream
#   P  wrk -> bare Pingora proxy adding a fixed header (examples/bare_proxy.rs) -> upstream
#   C  wrk -> lms-proxy, 10,000 connected users, a random user's JWT per request -> upstream
#
# Same connections and duration for each; rounds interleave (A B P C A B P C ...) because the
# machine's speed drifts. Prints one JSON line per run on stdout; benches/report.py makes the
# table. Everything listens on 127.0.0.1 and is stopped on exit.
#
# usage: benches/load.sh [--duration SECS] [--connections N] [--rounds N] [--users N]
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=10
CONNECTIONS=64
ROUNDS=5
USERS=10000
while [ $# -gt 0 ]; do
  case "$1" in
    --duration) DURATION=$2; shift 2 ;;
    --connections) CONNECTIONS=$2; shift 2 ;;
    --rounds) ROUNDS=$2; shift 2 ;;
    --users) USERS=$2; shift 2 ;;
    *) echo "usage: $0 [--duration SECS] [--connections N] [--rounds N] [--users N]" >&2; exit 2 ;;
  esac
done

source benches/common.sh
need_tools nginx wrk python3
cargo build --quiet --release --bin lms-proxy --example bare_proxy
cargo build --quiet --release -p lms-sandbox

PA=$(free_port); PB=$(free_port); PP=$(free_port); PC=$(free_port); PS=$(free_port)

# A: the upstream.
start_upstream "$PA"
# B: nginx as a reverse proxy adding the header, with upstream keep-alive.
nginx_conf "$WORK/rp" 2 "upstream up { server 127.0.0.1:$PA; keepalive 128; }
  server { listen 127.0.0.1:$PB; location / { proxy_pass http://up; proxy_http_version 1.1;
    proxy_set_header Connection \"\"; proxy_set_header Authorization \"Bearer fixed-benchmark-token\"; } }"
# P: bare pingora.
"$BARE" "127.0.0.1:$PP" "127.0.0.1:$PA" 2 >/dev/null 2>&1 &
PPID_BARE=$!
PIDS+=($PPID_BARE)

# C: lms-proxy with USERS connected users; tokens issued by the sandbox LMS's token
# endpoint (it is the token_url), API calls answered by the upstream nginx.
prepare_lms_proxy "$PC" "$PA" "$PS" "$USERS"
"$BIN" run -c "$WORK/lms-proxy.toml" > /dev/null 2> "$WORK/lms-proxy.log" &
CPID=$!
PIDS+=($CPID)

for p in "$PA" "$PB" "$PP" "$PC" "$PS"; do wait_port "$p"; done

cat > "$WORK/fixed.lua" <<'LUA'
done = function(summary, latency, requests)
  io.write(string.format('{"requests":%d,"duration_us":%d,"errors":%d,"p50_us":%d,"p99_us":%d,"p999_us":%d}\n',
    summary.requests, summary.duration, summary.errors.status + summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    latency:percentile(50), latency:percentile(99), latency:percentile(99.9)))
end
LUA
cat "$WORK/fixed.lua" >> "$WORK/users.lua"

# Warm up every target (connections, caches) before measuring.
for url in "http://127.0.0.1:$PA/api/v1/courses" "http://127.0.0.1:$PB/api/v1/courses" "http://127.0.0.1:$PP/api/v1/courses"; do
  wrk -t2 -c"$CONNECTIONS" -d2s -s "$WORK/users.lua" "$url" >/dev/null
done
wrk -t2 -c"$CONNECTIONS" -d3s -s "$WORK/users.lua" "http://127.0.0.1:$PC/canvas/api/v1/courses" >/dev/null

if [ -n "${LOAD_PROFILE:-}" ]; then
  # Profile lms-proxy under load instead of measuring (for finding the hot path).
  perf record -g -p "$CPID" -o "$LOAD_PROFILE" -- sleep "$DURATION" >/dev/null 2>&1 &
  PERF=$!
  wrk -t2 -c"$CONNECTIONS" -d"${DURATION}s" -s "$WORK/users.lua" "http://127.0.0.1:$PC/canvas/api/v1/courses" >/dev/null
  wait "$PERF" || true
  echo "upstream sockets in TIME_WAIT: $(ss -tan state time-wait "( dport = :$PA )" | tail -n +2 | wc -l)" >&2
  exit 0
fi

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
rss_kib() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
TICKS=$(getconf CLK_TCK)

C_RATES=()
for round in $(seq 1 "$ROUNDS"); do
  for variant in A B P C; do
    case $variant in
      A) url="http://127.0.0.1:$PA/api/v1/courses" ;;
      B) url="http://127.0.0.1:$PB/api/v1/courses" ;;
      P) url="http://127.0.0.1:$PP/api/v1/courses" ;;
      C) url="http://127.0.0.1:$PC/canvas/api/v1/courses" ;;
    esac
    # Every variant gets the same requests (a random user's JWT), so wrk's own cost is
    # the same in each; A, B and P ignore the header.
    script="$WORK/users.lua"
    measured=""
    case $variant in P) measured=$PPID_BARE ;; C) measured=$CPID ;; esac
    [ -n "$measured" ] && before=$(cpu_ticks "$measured")
    result=$(wrk -t2 -c"$CONNECTIONS" -d"${DURATION}s" -s "$script" "$url" | tail -n 1)
    extra=""
    if [ -n "$measured" ]; then
      after=$(cpu_ticks "$measured")
      extra=$(printf ',"cpu_seconds":%s,"rss_kib":%s' "$(python3 -c "print(($after - $before) / $TICKS)")" "$(rss_kib "$measured")")
    fi
    printf '{"round":%d,"variant":"%s","connections":%d,"users":%d%s,"wrk":%s}\n' \
      "$round" "$variant" "$CONNECTIONS" "$USERS" "$extra" "$result"
    if [ "$variant" = C ]; then
      C_RATES+=("$(python3 -c "import json,sys; w=json.loads(sys.argv[1]); print(int(w['requests'] / (w['duration_us'] / 1e6)))" "$result")")
    fi
  done
done
C_PEAK_RPS=$(printf '%s\n' "${C_RATES[@]}" | sort -n | awk '{a[NR]=$1} END {print a[int((NR + 1) / 2)]}')

# Latency at half of C's peak rate: P and C paced to the same rate, interleaved for ROUNDS
# rounds, each request from a random user as above. wrk cannot hold a constant rate, but
# each connection can wait after every answer (its Lua `delay`), which spreads CONNECTIONS
# connections to about half the rate. p50 and p99 of each, to compare at a load both
# sustain, and the CPU each proxy spent: at an equal rate the CPU per request is what each
# costs, free of the feedback a saturated machine adds.
if [ -n "${C_PEAK_RPS:-}" ]; then
  HALF=$(( C_PEAK_RPS / 2 ))
  DELAY_MS=$(( CONNECTIONS * 1000 / (HALF > 0 ? HALF : 1) ))
  sed -e '/^done = /,$d' "$WORK/users.lua" > "$WORK/paced.lua"
  cat >> "$WORK/paced.lua" <<LUA
delay = function() return $DELAY_MS end
LUA
  cat "$WORK/fixed.lua" >> "$WORK/paced.lua"
  for round in $(seq 1 "$ROUNDS"); do
    for variant in P C; do
      case $variant in
        P) url="http://127.0.0.1:$PP/api/v1/courses"; measured=$PPID_BARE ;;
        C) url="http://127.0.0.1:$PC/canvas/api/v1/courses"; measured=$CPID ;;
      esac
      before=$(cpu_ticks "$measured")
      result=$(wrk -t2 -c"$CONNECTIONS" -d"${DURATION}s" -s "$WORK/paced.lua" "$url" | tail -n 1)
      after=$(cpu_ticks "$measured")
      printf '{"half_rate":true,"round":%d,"variant":"%s","target_rps":%d,"delay_ms":%d,"cpu_seconds":%s,"wrk":%s}\n' \
        "$round" "$variant" "$HALF" "$DELAY_MS" "$(python3 -c "print(($after - $before) / $TICKS)")" "$result"
    done
  done
fi
