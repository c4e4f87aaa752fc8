#!/usr/bin/env bash
# Produce a report: reports/<YYYY-MM-DD>-<hostname>/ from one clean sequence.
#
#   reports/produce.sh
#
# Run it from a clean, committed tree on a machine left otherwise idle; it takes about
# 45 minutes on two cores. Steps:
#
# 1. installs redis-server and redis-benchmark when they are missing and this is a
#    Debian-like machine run as root (the loopback ceiling row, and the check of the
#    load generator against redis's own client); without them those rows are left out;
# 2. removes earlier results (criterion's and the scenarios'), so nothing stale from
#    another commit or parameter set can reach the report;
# 3. `cargo bench` (cpu, server, tasks: criterion's medians and HTML), the measurement
#    engine (`concbench measure`: the paired speedups and the noise gauge the report
#    quotes), the Beazley scenario (with the Python peers when python3 is on PATH), the
#    tasks scenario, the connections (C10K) and io (waiting on a backend) scenarios,
#    then `concbench report`.
set -euo pipefail
root=$(git rev-parse --show-toplevel)
cd "$root"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$root/target}

install_redis() {
    if command -v redis-server >/dev/null && command -v redis-benchmark >/dev/null; then
        return
    fi
    if [[ $(id -u) != 0 ]] || ! command -v apt-get >/dev/null; then
        echo "redis-server/redis-benchmark not found and cannot be installed here (needs root and apt-get): no redis rows" >&2
        return
    fi
    echo "== installing redis-server (Debian's package)"
    # Debian's package starts a redis service on port 6379 when it is installed; forbid
    # that for the install: the scenario starts its own redis on a free port and stops it.
    local policy=/usr/sbin/policy-rc.d created_policy=
    if [[ ! -e $policy ]]; then
        printf '#!/bin/sh\nexit 101\n' > "$policy"
        chmod +x "$policy"
        created_policy=1
    fi
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null ||
        echo "installing redis-server failed: no redis rows" >&2
    if [[ -n $created_policy ]]; then rm -f "$policy"; fi
}

if [[ -n $(git status --porcelain --untracked-files=no) ]]; then
    echo "warning: the tree has uncommitted changes; machine.json will say it was dirty" >&2
fi
install_redis

rm -rf "$CARGO_TARGET_DIR/criterion" "$CARGO_TARGET_DIR/concbench"
cargo bench
cargo build --release
concbench="$CARGO_TARGET_DIR/release/concbench"
"$concbench" measure
"$concbench" scenario beazley
"$concbench" scenario tasks
"$concbench" scenario connections
"$concbench" scenario io
"$concbench" report
