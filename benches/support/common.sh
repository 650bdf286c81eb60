# benches/support/common.sh — helpers the benchmark scripts share; sourced, not run.
#
# A script that sources this sets `work` (its temporary directory) and `pids` (the PIDs of the
# processes it started) before it calls `stop_started`.

# A loopback port nothing listens on: bind port 0 and let the kernel choose.
free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# Stops every process in `pids` (SIGTERM, a bounded wait, then SIGKILL to that PID only) and
# removes `$work`. Meant for `trap stop_started EXIT`.
stop_started() {
    local pid
    for pid in "${pids[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${pids[@]}"; do
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
    done
    rm -rf "$work"
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
