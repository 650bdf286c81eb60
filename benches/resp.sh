#!/usr/bin/env bash
# benches/resp.sh — tollgate's RESP `CHECK` against redis-server's `INCR`, in one run.
#
# Builds the release binary, starts tollgate with its own configuration (RESP on a free
# loopback port; the `basic` tier's limit is 4,000,000,000 per hour, never reached in a run,
# so every CHECK is a real admitted decision that counts a hit on a sliding window; the
# limiter may track 2,000,000 states so that the 1,000,000 random keys never evict) and
# redis-server (no persistence, loopback, its own port). Then, with redis-benchmark and the
# same flags on both (-c 64 -r 1000000, the key drawn from 1,000,000 at random):
#
#   tollgate:  CHECK key:__rand_int__ basic      (a sliding-window decision, 5-integer reply)
#   redis:     INCR  key:__rand_int__            (a bare increment, 1-integer reply)
#
# pipelined (-P 16) and not (-P 1), alternating redis, tollgate, redis, tollgate… for ROUNDS
# rounds, each run after a discarded warm-up. Prints one line per run, a line with medians and
# each server's CPU time per operation (read from /proc; steadier than ops/s), and as its last
# line (medians; ratio = tollgate ops/s ÷ redis ops/s):
#
#   {"pipelined_ratio":…, "unpipelined_ratio":…, "tollgate_pipelined_ops_per_s":…}
#
# Needs: cargo, redis-server, redis-benchmark, redis-cli (Debian: redis-server, redis-tools).
# Uses only loopback, stops exactly the processes it started (by PID), and bounds every
# redis-benchmark run with `timeout`. redis-benchmark prints "Could not fetch server CONFIG"
# for tollgate (which has no Redis configuration); that line goes to the log, not the screen.
#
# Settings (environment): ROUNDS (3), N_PIPELINED (2000000) and N_UNPIPELINED (400000)
# requests per measured run (each run must finish within 30 s), CONNS (64),
# RESP_THREADS to set tollgate's `[resp] threads` (unset: its default, one event loop of its
# own; 0: the server's shared runtime), IDLE_POLL_US to set `[resp] idle_poll_us` (unset: its
# default; 0: the loop never polls before sleeping), TOLLGATE_BIN=<path> to measure another build (no build then; how before/after figures are taken), SKIP_BUILD=1 to reuse
# target/release/tollgate.
set -euo pipefail

ROUNDS=${ROUNDS:-3}
N_PIPELINED=${N_PIPELINED:-2000000}
N_UNPIPELINED=${N_UNPIPELINED:-400000}
CONNS=${CONNS:-64}
KEYSPACE=1000000

cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$(pwd)
# shellcheck source=support/common.sh
source "$root/benches/support/common.sh"

die() { echo "benches/resp.sh: $*" >&2; exit 1; }
for tool in redis-server redis-benchmark redis-cli python3 /usr/bin/time; do
    command -v "$tool" >/dev/null 2>&1 || die "needs $tool (apt-get install redis-server redis-tools time)"
done
for v in "$ROUNDS" "$N_PIPELINED" "$N_UNPIPELINED" "$CONNS" "${RESP_THREADS:-1}" "${IDLE_POLL_US:-0}"; do
    [[ "$v" =~ ^[0-9]+$ ]] || die "settings must be whole numbers"
done
[ "$ROUNDS" -ge 1 ] || die "ROUNDS must be at least 1"

if [ "${SKIP_BUILD:-0}" != 1 ] && [ -z "${TOLLGATE_BIN:-}" ]; then
    cargo build --release --locked --bin tollgate >&2
fi
bin="${TOLLGATE_BIN:-$root/target/release/tollgate}"
[ -x "$bin" ] || die "no $bin"

work=$(mktemp -d /tmp/tollgate-resp-bench.XXXXXX)
pids=()
trap stop_started EXIT


# --- tollgate, with its [resp] settings from the environment
extra=()
[ -n "${RESP_THREADS:-}" ] && extra+=("threads = $RESP_THREADS")
[ -n "${IDLE_POLL_US:-}" ] && extra+=("idle_poll_us = $IDLE_POLL_US")
start_resp_tollgate tollgate "${extra[@]}"
tg_port=$(cat "$work/tollgate.port")
tg_pid=$(cat "$work/tollgate.pid")

# --- redis-server: no persistence, loopback only, in the foreground so $! is its PID.
rd_port=$(free_port)
redis-server --port "$rd_port" --bind 127.0.0.1 --save '' --appendonly no \
    --dir "$work" --logfile "$work/redis.log" --daemonize no &
rd_pid=$!
pids+=("$rd_pid")
wait_pong "$rd_port"

hz=$(getconf CLK_TCK)

# One measurement: a discarded warm-up (a tenth of N), then the measured run.
# Prints "ops_per_s p50_ms p99_ms cpu_us_per_op generator_cpu_us_per_op": the server's CPU
# and redis-benchmark's own (user + system, /usr/bin/time). Unpipelined, redis-benchmark
# nearly fills one of the two cores, so its cost per reply (larger for CHECK's 5-integer
# array than for INCR's one integer) bounds the rate of either server.
measure() {
    local port=$1 pid=$2 pipeline=$3 n=$4 before after out
    shift 4
    timeout 30 redis-benchmark -h 127.0.0.1 -p "$port" -c "$CONNS" -r "$KEYSPACE" \
        -P "$pipeline" -n $((n / 10)) --csv "$@" >/dev/null 2>>"$work/bench.log" ||
        die "warm-up failed against port $port"
    before=$(process_ticks "$pid")
    out=$(/usr/bin/time -f '%U %S' -o "$work/generator.txt" \
        timeout 30 redis-benchmark -h 127.0.0.1 -p "$port" -c "$CONNS" -r "$KEYSPACE" \
        -P "$pipeline" -n "$n" --csv "$@" 2>>"$work/bench.log") ||
        die "redis-benchmark failed or ran over 30 s against port $port (lower N_*)"
    after=$(process_ticks "$pid")
    echo "$out" >>"$work/bench.log"
    # The CSV row: "name","rps","avg","min","p50","p95","p99","max".
    gen=$(awk '{ print $1 + $2 }' "$work/generator.txt")
    awk -F'","' -v ticks=$((after - before)) -v hz="$hz" -v n="$n" -v gen="$gen" '
        NR == 2 { printf "%.0f %.3f %.3f %.2f %.2f\n", $2, $5, $7, ticks / hz * 1e6 / n, gen * 1e6 / n }
    ' <<<"$out"
}

echo "load: $(cut -d' ' -f1-3 /proc/loadavg); $(nproc) cores; redis-benchmark -c $CONNS -r $KEYSPACE, -P 16 (n=$N_PIPELINED) and -P 1 (n=$N_UNPIPELINED); tollgate resp.threads=${RESP_THREADS:-default} resp.idle_poll_us=${IDLE_POLL_US:-default}" >&2
for f in rd16 tg16 rd1 tg1; do : >"$work/$f.txt"; done
for round in $(seq "$ROUNDS"); do
    for p in 16 1; do
        n=$N_UNPIPELINED
        [ "$p" = 16 ] && n=$N_PIPELINED
        res=$(measure "$rd_port" "$rd_pid" "$p" "$n" INCR 'key:__rand_int__')
        echo "$res" >>"$work/rd$p.txt"
        read -r ops p50 p99 cpu gen <<<"$res"
        echo "round $round -P $p redis    INCR  ops_per_s=$ops p50_ms=$p50 p99_ms=$p99 cpu_us_per_op=$cpu generator_cpu_us_per_op=$gen"
        res=$(measure "$tg_port" "$tg_pid" "$p" "$n" CHECK 'key:__rand_int__' basic)
        echo "$res" >>"$work/tg$p.txt"
        read -r ops p50 p99 cpu gen <<<"$res"
        echo "round $round -P $p tollgate CHECK ops_per_s=$ops p50_ms=$p50 p99_ms=$p99 cpu_us_per_op=$cpu generator_cpu_us_per_op=$gen"
    done
done

# Every CHECK measured was admitted (the limit is never reached): say so from tollgate's own
# counters rather than assume it.
stats=$(redis-cli -p "$tg_port" INFO stats | tr -d '\r')
allowed=$(awk -F: '/^checks_allowed:/ { print $2 }' <<<"$stats")
denied=$(awk -F: '/^checks_denied:/ { print $2 }' <<<"$stats")
errors=$(awk -F: '/^command_errors:/ { print $2 }' <<<"$stats")
sleeps=$(awk -F: '/^event_loop_sleeps:/ { print $2 }' <<<"$stats")
polls=$(awk -F: '/^event_loop_idle_polls:/ { print $2 }' <<<"$stats")
[ "${denied:-1}" = 0 ] && [ "${errors:-1}" = 0 ] ||
    die "tollgate denied $denied and refused $errors commands: the runs did not measure admitted checks"

tg16=$(col tg16 1)
rd16=$(col rd16 1)
tg1=$(col tg1 1)
rd1=$(col rd1 1)
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", (b > 0 ? a / b : 0) }'; }
printf '{"redis_pipelined_ops_per_s":%s,"tollgate_unpipelined_ops_per_s":%s,"redis_unpipelined_ops_per_s":%s,"tollgate_pipelined_p99_ms":%s,"redis_pipelined_p99_ms":%s,"tollgate_unpipelined_p99_ms":%s,"redis_unpipelined_p99_ms":%s,"tollgate_pipelined_cpu_us_per_op":%s,"redis_pipelined_cpu_us_per_op":%s,"tollgate_unpipelined_cpu_us_per_op":%s,"redis_unpipelined_cpu_us_per_op":%s,"tollgate_unpipelined_generator_cpu_us_per_op":%s,"redis_unpipelined_generator_cpu_us_per_op":%s,"checks_allowed":%s,"checks_denied":%s,"event_loop_sleeps":%s,"event_loop_idle_polls":%s,"rounds":%s}\n' \
    "$rd16" "$tg1" "$rd1" "$(col tg16 3)" "$(col rd16 3)" "$(col tg1 3)" "$(col rd1 3)" \
    "$(col tg16 4)" "$(col rd16 4)" "$(col tg1 4)" "$(col rd1 4)" "$(col tg1 5)" "$(col rd1 5)" \
    "$allowed" "$denied" "${sleeps:-0}" "${polls:-0}" "$ROUNDS"
printf '{"pipelined_ratio":%s, "unpipelined_ratio":%s, "tollgate_pipelined_ops_per_s":%s}\n' \
    "$(ratio "$tg16" "$rd16")" "$(ratio "$tg1" "$rd1")" "$tg16"
