#!/usr/bin/env bash
# Runs tollgate's whole test suite on a fresh machine: installs the real components the
# integration tests drive (nginx for the auth_request tests, redis-tools for redis-cli,
# nftables for the cluster partition test),
# then `cargo test`. Safe to run again; installs only what is missing.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

missing=()
# nginx lives in /usr/sbin, which a non-root PATH may lack (the tests look there too).
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing+=(nginx)
command -v redis-cli >/dev/null 2>&1 || missing+=(redis-tools)
# nftables: tests/cluster_partition.rs partitions a cluster inside a network namespace.
command -v nft >/dev/null 2>&1 || [ -x /usr/sbin/nft ] || missing+=(nftables)
if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "tests/run.sh: need ${missing[*]}; run as root or install them with apt-get" >&2
        exit 1
    fi
    # Keep Debian from starting its own nginx service while installing: the tests start
    # their own instances on loopback ports.
    policy_added=0
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
        chmod +x /usr/sbin/policy-rc.d
        policy_added=1
    fi
    trap '[ "$policy_added" = 1 ] && rm -f /usr/sbin/policy-rc.d' EXIT
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

cargo test --locked "$@"
# The 2,000,000-key flood through the limiter's cap takes minutes in a debug build: run it,
# and only it, in release.
exec cargo test --locked --release --lib limiter::tests::a_denied_key_is_held_through_a_two_million_key_flood -- --ignored
