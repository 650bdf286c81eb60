#!/usr/bin/env bash
# benches/http.sh — tollgate's HTTP /check against nginx `return 204`, in one run.
#
# Builds the release binary, starts tollgate (its own configuration, a free loopback port, a
# tier whose limit is never reached, so every request is a real admitted decision) and nginx
# (its own configuration: `return 204` on every path, as lean as nginx gets), then runs
# `wrk -t2 -c64` against each in turn — nginx, tollgate, nginx, tollgate, … — ROUNDS times,
# each a discarded warm-up plus a measured run. Prints one line per run, then as its last line:
#
#   {"tollgate_rps":…, "nginx_rps":…, "ratio":…, "tollgate_p99_ms":…}
#
# (medians over the rounds; ratio = tollgate_rps / nginx_rps). The line before it adds each
# server's CPU time per request, read from /proc, which moves less between runs than req/s.
#
# Needs: cargo, wrk, nginx (Debian: apt-get install wrk nginx-light). Uses only loopback,
# stops exactly the processes it started (by PID), and every wrk run is bounded in time.
#
# Settings (environment): ROUNDS (3), DURATION (10 s), WARMUP (2 s), THREADS (2), CONNS (64),
# TOLLGATE_BIN=<path> to measure another build (no build then; how before/after figures are taken), SKIP_BUILD=1 to reuse target/release/tollgate, WITH_HYPER=1 to also measure a second tollgate
# with its hand-written fast path off (TOLLGATE_HTTP_FAST_PATH=0: every request through
# hyper), which shows what the fast path is worth.
set -euo pipefail

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10}
WARMUP=${WARMUP:-2}
THREADS=${THREADS:-2}
CONNS=${CONNS:-64}

cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$(pwd)
# shellcheck source=support/common.sh
source "$root/benches/support/common.sh"

die() { echo "benches/http.sh: $*" >&2; exit 1; }
for tool in wrk nginx curl; do
    command -v "$tool" >/dev/null 2>&1 || die "needs $tool (apt-get install wrk nginx-light curl)"
done
for v in "$ROUNDS" "$DURATION" "$WARMUP" "$THREADS" "$CONNS"; do
    [[ "$v" =~ ^[0-9]+$ ]] || die "settings must be whole numbers"
done
if [ "$DURATION" -gt 15 ] || [ "$WARMUP" -gt 15 ]; then die "runs are limited to 15 s each"; fi
[ "$ROUNDS" -ge 1 ] || die "ROUNDS must be at least 1"

if [ "${SKIP_BUILD:-0}" != 1 ] && [ -z "${TOLLGATE_BIN:-}" ]; then
    cargo build --release --locked --bin tollgate >&2
fi
bin="${TOLLGATE_BIN:-$root/target/release/tollgate}"
[ -x "$bin" ] || die "no $bin"

work=$(mktemp -d /tmp/tollgate-http-bench.XXXXXX)
pids=()
trap stop_started EXIT

# --- tollgate
tg_port=$(free_port)
cat >"$work/tollgate.toml" <<EOF
[server]
http = "127.0.0.1:$tg_port"

[log]
level = "warn"

[tiers.anonymous]
limit = 100
window = "1h"

[tiers.basic]
limit = 500
window = "1h"

# Never reached in a run: every request is an admitted, counted decision.
[tiers.bench]
limit = 4000000000
window = "1h"
EOF
"$bin" check-config "$work/tollgate.toml" >/dev/null
"$bin" serve --config "$work/tollgate.toml" >"$work/tollgate.log" 2>&1 &
tg_pid=$!
pids+=("$tg_pid")
tg_url="http://127.0.0.1:$tg_port/check?key=ip:10.0.0.1&tier=bench"
wait_http "$tg_url"
[ "$(curl -s -o /dev/null -w '%{http_code}' "$tg_url")" = 200 ] || die "tollgate does not admit $tg_url"

if [ "${WITH_HYPER:-0}" = 1 ]; then
    hy_port=$(free_port)
    sed "s/127.0.0.1:$tg_port/127.0.0.1:$hy_port/" "$work/tollgate.toml" >"$work/hyper.toml"
    TOLLGATE_HTTP_FAST_PATH=0 "$bin" serve --config "$work/hyper.toml" >"$work/hyper.log" 2>&1 &
    hy_pid=$!
    pids+=("$hy_pid")
    hy_url="http://127.0.0.1:$hy_port/check?key=ip:10.0.0.1&tier=bench"
    wait_http "$hy_url"
fi

# --- nginx `return 204`: worker per core, reuseport, no access log, endless keep-alive.
ng_port=$(free_port)
mkdir -p "$work/nginx/logs"
cat >"$work/nginx/nginx.conf" <<EOF
worker_processes auto;
daemon off;
pid $work/nginx/nginx.pid;
error_log $work/nginx/logs/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    keepalive_requests 1000000;
    keepalive_timeout 75s;
    client_body_temp_path $work/nginx/body;
    proxy_temp_path $work/nginx/proxy;
    fastcgi_temp_path $work/nginx/fastcgi;
    uwsgi_temp_path $work/nginx/uwsgi;
    scgi_temp_path $work/nginx/scgi;
    server {
        listen 127.0.0.1:$ng_port reuseport;
        location / { return 204; }
    }
}
EOF
nginx -p "$work/nginx" -c "$work/nginx/nginx.conf" &
ng_pid=$!
pids+=("$ng_pid")
ng_url="http://127.0.0.1:$ng_port/"
wait_http "$ng_url"

# CPU time (user + system, in clock ticks) of a process and its children's threads: for
# nginx the master and its workers, for tollgate the one process.
ticks() {
    local total=0 pid
    for pid in "$1" $(cat /proc/"$1"/task/*/children 2>/dev/null); do
        [ -r /proc/"$pid"/stat ] || continue
        # Fields 14 and 15 (utime, stime), counted after the parenthesised command name.
        total=$((total + $(sed 's/^.*) //' /proc/"$pid"/stat | awk '{print $12 + $13}')))
    done
    echo "$total"
}
hz=$(getconf CLK_TCK)

# One measurement: warm-up, then the measured run. Prints "rps p99_ms cpu_us_per_req".
measure() {
    local url=$1 pid=$2 out before after
    timeout 30 wrk -t"$THREADS" -c"$CONNS" -d"${WARMUP}s" "$url" >/dev/null
    before=$(ticks "$pid")
    out=$(timeout 30 wrk -t"$THREADS" -c"$CONNS" -d"${DURATION}s" --latency "$url")
    after=$(ticks "$pid")
    echo "$out" >>"$work/wrk.txt"
    if grep -q 'Non-2xx' <<<"$out"; then
        die "non-2xx answers from $url: the measurement would not be of admitted requests"
    fi
    if grep -q 'Socket errors' <<<"$out"; then
        echo "warning: socket errors against $url" >&2
    fi
    awk -v ticks=$((after - before)) -v hz="$hz" '
        function ms(v) {
            if (v ~ /us$/) return substr(v, 1, length(v) - 2) / 1000
            if (v ~ /ms$/) return substr(v, 1, length(v) - 2) + 0
            if (v ~ /s$/)  return substr(v, 1, length(v) - 1) * 1000
            return v
        }
        /^ *99%/ { p99 = ms($2) }
        /requests in/ { n = $1 }
        /^Requests\/sec:/ { rps = $2 }
        END { printf "%.1f %.3f %.2f\n", rps, p99, (n > 0 ? ticks / hz * 1e6 / n : 0) }
    ' <<<"$out"
}

echo "load: $(cut -d' ' -f1-3 /proc/loadavg); $(nproc) cores; wrk -t$THREADS -c$CONNS -d${DURATION}s (+${WARMUP}s warm-up)" >&2
: >"$work/nginx.txt"
: >"$work/tollgate.txt"
: >"$work/hyper.txt"
for round in $(seq "$ROUNDS"); do
    res=$(measure "$ng_url" "$ng_pid")
    read -r rps p99 cpu <<<"$res"
    echo "$rps $p99 $cpu" >>"$work/nginx.txt"
    echo "round $round nginx    rps=$rps p99_ms=$p99 cpu_us_per_req=$cpu"
    res=$(measure "$tg_url" "$tg_pid")
    read -r rps p99 cpu <<<"$res"
    echo "$rps $p99 $cpu" >>"$work/tollgate.txt"
    echo "round $round tollgate rps=$rps p99_ms=$p99 cpu_us_per_req=$cpu"
    if [ "${WITH_HYPER:-0}" = 1 ]; then
        res=$(measure "$hy_url" "$hy_pid")
        read -r rps p99 cpu <<<"$res"
        echo "$rps $p99 $cpu" >>"$work/hyper.txt"
        echo "round $round hyper-only rps=$rps p99_ms=$p99 cpu_us_per_req=$cpu"
    fi
done

ng_rps=$(col nginx 1)
tg_rps=$(col tollgate 1)
tg_p99=$(col tollgate 2)
ng_p99=$(col nginx 2)
tg_cpu=$(col tollgate 3)
ng_cpu=$(col nginx 3)
ratio=$(awk -v a="$tg_rps" -v b="$ng_rps" 'BEGIN { printf "%.3f", (b > 0 ? a / b : 0) }')
hyper=""
if [ "${WITH_HYPER:-0}" = 1 ]; then
    hyper=$(printf ',"hyper_only_rps":%s,"hyper_only_p99_ms":%s,"hyper_only_cpu_us_per_req":%s' \
        "$(col hyper 1)" "$(col hyper 2)" \
        "$(col hyper 3)")
fi
printf '{"nginx_p99_ms":%s,"tollgate_cpu_us_per_req":%s,"nginx_cpu_us_per_req":%s,"rounds":%s%s}\n' \
    "$ng_p99" "$tg_cpu" "$ng_cpu" "$ROUNDS" "$hyper"
printf '{"tollgate_rps":%s,"nginx_rps":%s,"ratio":%s,"tollgate_p99_ms":%s}\n' \
    "$tg_rps" "$ng_rps" "$ratio" "$tg_p99"
