# Shared by the load benchmarks (load.sh, instructions.sh): free ports, the upstream nginx,
# lms-proxy's config and users, and stopping everything they started. Source it from the
# repository root; it sets WORK (a temporary folder) and an EXIT trap.

BIN=target/release/lms-proxy
SANDBOX_BIN=target/release/lms-sandbox
BARE=target/release/examples/bare_proxy
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
BODY='[{"id":1,"name":"Course 1","course_code":"C001","workflow_state":"available"},{"id":2,"name":"Course 2","course_code":"C002","workflow_state":"available"}]'

WORK=$(mktemp -d)
PIDS=()
bench_cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  for dir in "$WORK"/*/; do
    [ -f "$dir/nginx.pid" ] && kill "$(cat "$dir/nginx.pid")" 2>/dev/null || true
  done
  rm -rf "$WORK"
}
trap bench_cleanup EXIT

# Installs what a benchmark needs when it can (root with apt-get), else says what is missing.
need_tools() {
  for tool in "$@"; do
    if ! command -v "$tool" >/dev/null 2>&1 && [ ! -x "/usr/sbin/$tool" ]; then
      if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "benches: installing $tool" >&2
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$tool" >/dev/null
      else
        echo "benches: needs $tool (apt-get install $*)" >&2; exit 1
      fi
    fi
  done
  NGINX=$(command -v nginx || echo /usr/sbin/nginx)
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

wait_port() { # port [tries of 0.05 s]
  for _ in $(seq 1 "${2:-200}"); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.05
  done
  echo "benches: nothing listens on $1" >&2; exit 1
}

nginx_conf() { # dir workers server-block
  mkdir -p "$1"
  cat > "$1/nginx.conf" <<CONF
worker_processes $2;
pid $1/nginx.pid;
error_log $1/error.log warn;
daemon on;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 1000000;
  client_body_temp_path $1; proxy_temp_path $1; fastcgi_temp_path $1; uwsgi_temp_path $1; scgi_temp_path $1;
  $3
}
CONF
  "$NGINX" -c "$1/nginx.conf" -p "$1"
}

# The upstream LMS API: one nginx worker answering a fixed Canvas-like body on every path.
start_upstream() { # port
  nginx_conf "$WORK/up" 1 "server { listen 127.0.0.1:$1; location / { default_type application/json; return 200 '$BODY'; } }"
}

# lms-proxy's side: the sandbox LMS as token endpoint, a config on LISTEN forwarding to the
# upstream, USERS connected users imported, one tool JWT per user in $WORK/jwts.txt, and
# $WORK/users.lua for wrk (a random user's JWT per request). Starts the sandbox only; the
# caller starts lms-proxy (plainly or under a profiler) with $WORK/lms-proxy.toml.
prepare_lms_proxy() { # listen-port upstream-port sandbox-port users
  SANDBOX_CLIENT_SECRET=bench-client-secret "$SANDBOX_BIN" --listen "127.0.0.1:$3" >/dev/null 2>&1 &
  PIDS+=($!)
  export LMS_PROXY_KEY
  LMS_PROXY_KEY=$(python3 -c 'import os,base64; print(base64.b64encode(os.urandom(32)).decode())')
  export BENCH_TOOL_SECRET=bench-tool-secret-bench-tool-secret-0123
  export CANVAS_CLIENT_SECRET=bench-client-secret
  cat > "$WORK/lms-proxy.toml" <<CONF
[server]
listen = "127.0.0.1:$1"
public_url = "http://127.0.0.1:$1"
key_env = "LMS_PROXY_KEY"
threads = 2

[store]
url = "sqlite://lms-proxy.db"

[[platforms]]
id = "canvas"
kind = "canvas"
base_url = "http://127.0.0.1:$2"
token_url = "http://127.0.0.1:$3/login/oauth2/token"
client_id = "10000000000001"
client_secret_env = "CANVAS_CLIENT_SECRET"

[[routes]]
prefix = "/canvas"
platform = "canvas"

[[tools]]
id = "bench"
secret_env = "BENCH_TOOL_SECRET"
platforms = ["canvas"]
CONF
  python3 benches/gen_users.py "$4" "http://127.0.0.1:$1" "$BENCH_TOOL_SECRET" "$WORK/tokens.jsonl" "$WORK/jwts.txt"
  "$BIN" tokens import -c "$WORK/lms-proxy.toml" --platform canvas --tool bench < "$WORK/tokens.jsonl" >/dev/null
  cat > "$WORK/users.lua" <<LUA
local jwts = {}
for line in io.lines("$WORK/jwts.txt") do jwts[#jwts + 1] = line end
math.randomseed(os.time())
request = function()
  return wrk.format("GET", nil, { ["Authorization"] = "Bearer " .. jwts[math.random(#jwts)] })
end
LUA
}
