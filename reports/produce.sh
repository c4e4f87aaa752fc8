#!/usr/bin/env bash
# Produce a report: reports/<YYYY-MM-DD>-<hostname>/ from one clean sequence.
#
#   reports/produce.sh
#
# Run it from a clean, committed tree on a machine left otherwise idle; it takes about
# 75 minutes on two cores. Steps:
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
#    then `concbench report`. The Beazley scenario runs its default core-count sweep
#    (1 … cores, 2 × cores) and both arrangements (shared, isolated); then once more
#    with the servers in a network namespace of their own ("two hosts", root only);
#    the rate sweep writes its .hgrm files where the report copies them from.
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

# "Two hosts" on this machine: the servers in one network namespace, the scenario (the
# client) in another, joined by a veth pair with link-local addresses; the rows go to
# beazley-netns.json, which the report sets beside the shared and isolated arrangements.
# Needs root and `ip netns`; the namespaces (and so the veth pair) are deleted on every
# exit of this script, also when a step fails.
netns_client=cb-produce-cli-$$
netns_server=cb-produce-srv-$$
remove_namespaces() {
    ip netns delete "$netns_client" 2>/dev/null || true
    ip netns delete "$netns_server" 2>/dev/null || true
}
two_hosts() {
    if [[ $(id -u) != 0 ]] || ! ip netns list >/dev/null 2>&1; then
        echo "not root or no ip netns: no two-hosts (network namespace) rows" >&2
        return
    fi
    trap remove_namespaces EXIT
    ip netns add "$netns_client"
    ip netns add "$netns_server"
    ip -n "$netns_client" link add cbp-cli type veth peer name cbp-srv netns "$netns_server"
    ip -n "$netns_client" addr add 169.254.77.1/30 dev cbp-cli
    ip -n "$netns_server" addr add 169.254.77.2/30 dev cbp-srv
    for ns in "$netns_client" "$netns_server"; do ip -n "$ns" link set lo up; done
    ip -n "$netns_client" link set cbp-cli up
    ip -n "$netns_server" link set cbp-srv up
    # Run as a `step`, this function is an `if` condition, where `set -e` does not
    # apply: the scenario's status is the function's.
    local status=0
    ip netns exec "$netns_client" "$concbench" scenario beazley \
        --server-launcher "ip netns exec $netns_server" --server-host 169.254.77.2 \
        --arrangements shared --workers "$(nproc)" --peers none --no-redis --save-as beazley-netns ||
        status=$?
    remove_namespaces
    trap - EXIT
    return "$status"
}

if [[ -n $(git status --porcelain --untracked-files=no) ]]; then
    echo "warning: the tree has uncommitted changes; machine.json will say it was dirty" >&2
fi
install_redis

# A step that fails is reported and the others still run, so that an hour of
# measurement is not thrown away for one failing step; the script then exits non-zero
# naming the steps that failed; the report leaves out what they would have measured.
failed=()
step() {
    local name=$1
    shift
    echo "== $name"
    if ! "$@"; then
        echo "== $name FAILED (exit $?); going on with the other steps" >&2
        failed+=("$name")
    fi
}

rm -rf "$CARGO_TARGET_DIR/criterion" "$CARGO_TARGET_DIR/concbench"
step "cargo bench" cargo bench
cargo build --release
concbench="$CARGO_TARGET_DIR/release/concbench"
step measure "$concbench" measure
step beazley "$concbench" scenario beazley
step two-hosts two_hosts
step rate-sweep "$concbench" scenario rate-sweep --hgrm "$CARGO_TARGET_DIR/concbench/hgrm"
step tasks "$concbench" scenario tasks
step connections "$concbench" scenario connections
step io "$concbench" scenario io
# The newest committed report of another day or host, for `report --compare`.
this_folder="$(date -u +%F)-$(hostname)"
previous=$(find reports -mindepth 1 -maxdepth 1 -type d -name '20*' ! -name "$this_folder" | sort | tail -1)
if [[ -n $previous ]]; then
    "$concbench" report --compare "$previous"
else
    "$concbench" report
fi
if ((${#failed[@]})); then
    echo "produce.sh: these steps failed, their results are missing from the report: ${failed[*]}" >&2
    exit 1
fi
