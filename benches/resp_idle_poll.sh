#!/usr/bin/env bash
# benches/resp_idle_poll.sh — what idle polling (`[resp] idle_poll_us`) costs and buys, by load.
#
# Starts two tollgates on loopback, identical but for `idle_poll_us` (20: the default; 0: the
# event loop sleeps as soon as it is out of work), and loads each with redis-benchmark
# (`CHECK key:__rand_int__ basic`, unpipelined) at 1, 4, 16 and 64 connections, alternating
# the two servers for ROUNDS rounds, each run after a discarded warm-up. Prints one line per
# run and, per connection count, the medians: ops/s, median latency, the server's CPU per
# command and its share of a core (CPU time over the run's wall time, read from /proc), and
# as its last line the ratios of the polling server to the sleeping one:
#
#   {"c1_ops_ratio":…, "c1_cpu_ratio":…, …, "c64_ops_ratio":…, "c64_cpu_ratio":…}
#
# Needs: cargo, redis-benchmark, redis-cli (Debian: redis-tools), python3. Uses only loopback,
# stops exactly the processes it started (by PID), bounds every run with `timeout`.
# Settings (environment): ROUNDS (3), N (200000 commands per run), TOLLGATE_BIN=<path> to measure another build (no build then; how before/after figures are taken), SKIP_BUILD=1.
set -euo pipefail

ROUNDS=${ROUNDS:-3}
N=${N:-200000}
cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$(pwd)
# shellcheck source=support/common.sh
source "$root/benches/support/common.sh"
die() { echo "benches/resp_idle_poll.sh: $*" >&2; exit 1; }
for tool in redis-benchmark redis-cli python3; do
    command -v "$tool" >/dev/null 2>&1 || die "needs $tool (apt-get install redis-tools)"
done
[[ "$ROUNDS" =~ ^[1-9][0-9]*$ && "$N" =~ ^[1-9][0-9]*$ ]] || die "ROUNDS and N must be whole numbers"
if [ "${SKIP_BUILD:-0}" != 1 ] && [ -z "${TOLLGATE_BIN:-}" ]; then
    cargo build --release --locked --bin tollgate >&2
fi
bin="${TOLLGATE_BIN:-$root/target/release/tollgate}"
[ -x "$bin" ] || die "no $bin"

work=$(mktemp -d /tmp/tollgate-idle-poll-bench.XXXXXX)
pids=()
trap stop_started EXIT

start_resp_tollgate polling "idle_poll_us = 20"
start_resp_tollgate sleeping "idle_poll_us = 0"

hz=$(getconf CLK_TCK)

# measure NAME CONNS: prints "ops_per_s p50_ms cpu_us_per_op core_share".
measure() {
    local name=$1 c=$2 port pid before after t0 t1 out
    port=$(cat "$work/$name.port")
    pid=$(cat "$work/$name.pid")
    timeout 60 redis-benchmark -p "$port" -c "$c" -r 1000000 -P 1 -n $((N / 10)) --csv \
        CHECK 'key:__rand_int__' basic >/dev/null 2>>"$work/bench.log" || die "warm-up failed"
    before=$(process_ticks "$pid")
    t0=$(date +%s.%N)
    out=$(timeout 60 redis-benchmark -p "$port" -c "$c" -r 1000000 -P 1 -n "$N" --csv \
        CHECK 'key:__rand_int__' basic 2>>"$work/bench.log") || die "redis-benchmark failed or ran over 60 s"
    t1=$(date +%s.%N)
    after=$(process_ticks "$pid")
    awk -F'","' -v ticks=$((after - before)) -v hz="$hz" -v n="$N" -v wall="$(echo "$t1 - $t0" | bc -l)" '
        NR == 2 { printf "%.0f %.3f %.2f %.2f\n", $2, $5, ticks / hz * 1e6 / n, ticks / hz / wall }
    ' <<<"$out"
}

echo "load: $(cut -d' ' -f1-3 /proc/loadavg); $(nproc) cores; redis-benchmark -P 1 -r 1000000 -n $N; CHECK key:__rand_int__ basic" >&2
conns=(1 4 16 64)
for round in $(seq "$ROUNDS"); do
    for c in "${conns[@]}"; do
        for name in sleeping polling; do
            res=$(measure "$name" "$c")
            echo "$res" >>"$work/$name.$c.txt"
            read -r ops p50 cpu share <<<"$res"
            echo "round $round -c $c $name ops_per_s=$ops p50_ms=$p50 cpu_us_per_op=$cpu core_share=$share"
        done
    done
done
json="{"
for c in "${conns[@]}"; do
    for name in sleeping polling; do
        echo "median -c $c $name ops_per_s=$(col "$name.$c" 1) p50_ms=$(col "$name.$c" 2) cpu_us_per_op=$(col "$name.$c" 3) core_share=$(col "$name.$c" 4)"
    done
    ops=$(awk -v a="$(col "polling.$c" 1)" -v b="$(col "sleeping.$c" 1)" 'BEGIN { printf "%.3f", a / b }')
    cpu=$(awk -v a="$(col "polling.$c" 3)" -v b="$(col "sleeping.$c" 3)" 'BEGIN { printf "%.3f", a / b }')
    json+="\"c${c}_ops_ratio\":$ops, \"c${c}_cpu_ratio\":$cpu, "
done
echo "${json%, }}"
