#!/usr/bin/env bash
# Builds every fuzz target and runs each for a short, bounded time (default 30 s) from its
# seeds and saved regressions: what CI does on every change. Longer campaigns are in
# docs/fuzzing.md.
#
#   fuzz/ci.sh            every target, 30 s each
#   fuzz/ci.sh 600 jwt_token http_fastpath
#
# Needs a nightly toolchain (`rustup toolchain install nightly`) and cargo-fuzz, which this
# script installs from the crate registry when it is missing. A crash, a broken invariant or a
# leak fails the run; libFuzzer saves the input under fuzz/artifacts/<target>/.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

seconds=${1:-30}
shift || true

if ! cargo +nightly --version >/dev/null 2>&1; then
    echo "fuzz/ci.sh: no nightly toolchain; install it with: rustup toolchain install nightly" >&2
    exit 1
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz/ci.sh: installing cargo-fuzz from the crate registry"
    cargo install --locked cargo-fuzz
fi

cargo +nightly fuzz build -O

targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    mapfile -t targets < <(cargo +nightly fuzz list)
fi

# A fresh corpus directory per run: libFuzzer writes what it finds there, and the
# committed seeds and regressions stay read-only inputs.
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for t in "${targets[@]}"; do
    printf '\n--- %s: %s s\n' "$t" "$seconds"
    mkdir -p "$work/$t" "fuzz/artifacts/$t"
    inputs=("$work/$t" "fuzz/seeds/$t")
    [ -d "fuzz/regressions/$t" ] && inputs+=("fuzz/regressions/$t")
    extra=()
    [ "$t" = config_parse ] && extra+=(-max_len=16384)
    status=0
    cargo +nightly fuzz run -O "$t" "${inputs[@]}" -- \
        -max_total_time="$seconds" -print_final_stats=1 "${extra[@]}" >"$work/$t.log" 2>&1 ||
        status=$?
    grep -E '^(#[0-9]+[[:space:]]+(INITED|DONE)|Done |stat::number_of_executed_units|stat::average_exec_per_sec)' \
        "$work/$t.log" || true
    if [ "$status" -ne 0 ]; then
        tail -n 60 "$work/$t.log" >&2
        echo "fuzz/ci.sh: $t failed (exit $status); the input is in fuzz/artifacts/$t/" >&2
        exit "$status"
    fi
done
echo
echo "fuzz/ci.sh: ${#targets[@]} targets, ${seconds} s each, no finding"
