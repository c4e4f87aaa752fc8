#!/usr/bin/env bash
# Compare the benchmarks of the current tree with those of BASE_REF, and fail on a
# confirmed regression.
#
#   ci/bench-compare.sh BASE_REF
#
# Default (GATE=compare): builds BASE_REF in a temporary worktree and the current tree,
# then runs `concbench compare`: a worker process per benchmark and build, base and head
# sampled side by side in shuffled, alternating rounds, the change taken within each
# round (see ci/README.md). It prints a markdown table, writes it to
# $CARGO_TARGET_DIR/regress.md and exits 1 on a confirmed regression.
#
# GATE=criterion: the older path: `cargo bench -- --save-baseline base` on BASE_REF,
# `cargo bench -- --baseline base` on the tree, then `concbench regress`. Minutes apart,
# so a shared runner's drift lands on the comparison; kept for criterion's HTML.
#
# Environment:
#   GATE       compare | criterion                       (default: compare)
#   BENCH_GROUPS compare: benchmark groups                 (default: cpu)
#   QUICK      compare: set to 1 for the 60 s budget     (default: the 240 s budget)
#   THRESHOLD  regression threshold, percent             (default: 3 compare, 10 criterion)
#   BENCHES    criterion: cargo bench target selection   (default: every suite)
#   RATIOS     criterion: set to 1 to gate on within-run ratios to `seq`
set -euo pipefail

base_ref=${1:?usage: ci/bench-compare.sh BASE_REF}
root=$(git rev-parse --show-toplevel)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$root/target}
gate=${GATE:-compare}
# shellcheck source=ci/lib.sh
source "$root/ci/lib.sh"

if [[ $gate == compare ]]; then
    threshold=${THRESHOLD:-3}
    scratch=$(mktemp -d "${TMPDIR:-/tmp}/concbench-compare.XXXXXX")
    trap 'rm -rf "$scratch"' EXIT
    echo "== base: $base_ref"
    build_ref "$base_ref" "$scratch/base-concbench"
    echo "== head: $(git -C "$root" rev-parse --short HEAD)"
    (cd "$root" && RUSTFLAGS="$(layout_rustflags)" cargo build --quiet --release --bin concbench)
    cp "$CARGO_TARGET_DIR/release/concbench" "$scratch/head-concbench"
    echo "== compare: threshold ${threshold} %"
    args=(compare --base "$scratch/base-concbench" --head "$scratch/head-concbench"
        --groups "${BENCH_GROUPS:-cpu}" --threshold "$threshold"
        --markdown "$CARGO_TARGET_DIR/regress.md" --json "$CARGO_TARGET_DIR/compare.json")
    if [[ "${QUICK:-}" == 1 ]]; then
        args+=(--quick)
    fi
    exec "$scratch/head-concbench" "${args[@]}"
fi

if [[ $gate != criterion ]]; then
    echo "GATE must be compare or criterion, not $gate" >&2
    exit 2
fi
read -r -a benches <<< "${BENCHES:-}"
threshold=${THRESHOLD:-10}
worktree=$(mktemp -d "${TMPDIR:-/tmp}/concbench-base.XXXXXX")
cleanup() {
    git -C "$root" worktree remove --force "$worktree" 2>/dev/null || rm -rf "$worktree"
}
trap cleanup EXIT

echo "== base: $base_ref"
git -C "$root" worktree add --detach "$worktree" "$base_ref" >/dev/null
(cd "$worktree" && cargo bench "${benches[@]}" -- --save-baseline base)

echo "== change: $(git -C "$root" rev-parse --short HEAD)"
(cd "$root" && cargo bench "${benches[@]}" -- --baseline base)

echo "== gate: threshold ${threshold} %"
gate_args=(regress --baseline base --threshold "$threshold" --markdown "$CARGO_TARGET_DIR/regress.md")
if [[ "${RATIOS:-}" == 1 ]]; then
    gate_args+=(--ratios)
fi
cargo run --quiet --release --manifest-path "$root/Cargo.toml" -- "${gate_args[@]}"
