# shellcheck shell=bash disable=SC2154  # `work`, `pids` and `bin` come from the sourcing script
# benches/support/common.sh — helpers the benchmark scripts share; sourced, not run.
#
# A script that sources this sets `work` (its temporary directory) and `pids` (the PIDs of the
# processes it started) before it calls `stop_started`.

# A loopback port nothing listens on: bind port 0 and let the kernel choose.
free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# Every descendant of PID (nginx's workers, uvicorn's worker processes…), one a line, read
# from /proc: the children of each of its threads, recursively.
descendants() {
    local child
    # shellcheck disable=SC2013  # the file is PIDs separated by spaces, not lines
    for child in $(cat /proc/"$1"/task/*/children 2>/dev/null); do
        echo "$child"
        descendants "$child"
    done
}

# Stops every process in `pids` and everything they had started: SIGTERM to each PID in `pids`
# (nginx and uvicorn stop their own workers on it), a bounded wait, then SIGKILL to exactly
# those PIDs, and the descendants recorded before the SIGTERM, that are still alive — so a
# master that does not stop in time leaves no worker behind. Then removes `$work`. Meant for
# `trap stop_started EXIT`.
stop_started() {
    local pid
    local -a all=()
    for pid in "${pids[@]}"; do
        all+=("$pid")
        # shellcheck disable=SC2207  # one PID a line
        all+=($(descendants "$pid"))
    done
    for pid in "${pids[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${all[@]}"; do
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
    done
    rm -rf "$work"
}

# wait_http URL: waits until URL answers with any HTTP status (bounded: 10 s).
wait_http() {
    for _ in $(seq 100); do
        [ "$(curl -s -o /dev/null -w '%{http_code}' "$1" || true)" != 000 ] && return 0
        sleep 0.1
    done
    die "nothing answers at $1"
}

# CPU time (user + system, in clock ticks) of one process, all its threads: fields 14 and 15
# of /proc/PID/stat, counted after the parenthesised command name.
process_ticks() {
    sed 's/^.*) //' /proc/"$1"/stat | awk '{print $12 + $13}'
}

# The median of the numbers on standard input, one per line.
median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

# The median of column COL of $work/NAME.txt (space-separated): col NAME COL.
col() { cut -d' ' -f"$2" "$work/$1.txt" | median; }

# wait_pong PORT: waits until the RESP server on 127.0.0.1:PORT answers PING (bounded: 15 s).
wait_pong() {
    for _ in $(seq 150); do
        [ "$(redis-cli -p "$1" PING 2>/dev/null || true)" = PONG ] && return 0
        sleep 0.1
    done
    die "nothing answers PING on 127.0.0.1:$1"
}

# start_resp_tollgate NAME [LINE…]: starts $bin for the RESP benchmarks, LINEs added to its
# [resp] section, and waits until it answers an admitted `CHECK key:0 basic`. The `basic`
# tier's limit (4,000,000,000 an hour) is never reached in a run, so every CHECK is a real
# admitted decision that counts a hit; the limiter may track 2,000,000 states, so 1,000,000
# random keys never evict. Writes its port to $work/NAME.port and its PID to $work/NAME.pid,
# and adds the PID to `pids`. (Not in a command substitution: that subshell would lose `pids`.)
start_resp_tollgate() {
    local name=$1 port http line
    shift
    port=$(free_port)
    http=$(free_port)
    cat >"$work/$name.toml" <<CONF
[server]
http = "127.0.0.1:$http"

[log]
level = "warn"

[limiter]
max_states = 2000000

[tiers.anonymous]
limit = 100
window = "1h"

[tiers.basic]
limit = 4000000000
window = "1h"

[resp]
enabled = true
tcp = "127.0.0.1:$port"
CONF
    for line in "$@"; do
        echo "$line" >>"$work/$name.toml"
    done
    "$bin" check-config "$work/$name.toml" >/dev/null
    "$bin" serve --config "$work/$name.toml" >"$work/$name.log" 2>&1 &
    pids+=("$!")
    echo "$!" >"$work/$name.pid"
    echo "$port" >"$work/$name.port"
    wait_pong "$port"
    [ "$(redis-cli -p "$port" CHECK key:0 basic | head -1)" = 1 ] ||
        die "tollgate ($name) does not admit CHECK key:0 basic"
}
