#!/usr/bin/env bash
# Compare the benchmarks of the current tree with those of BASE_REF, and fail on a
# confirmed regression.
#
#   ci/bench-compare.sh BASE_REF
#
# 1. checks BASE_REF out into a temporary git worktree and runs the suite there with
#    `--save-baseline base`;
# 2. runs the suite on the current tree with `--baseline base` (both runs share one
#    CARGO_TARGET_DIR, so criterion compares them);
# 3. runs `concbench regress`, which prints a markdown table, writes it to
#    $CARGO_TARGET_DIR/regress.md and exits 1 on a confirmed regression.
#
# Environment:
#   BENCHES    cargo bench target selection   (default: every suite; e.g. "--bench cpu")
#   THRESHOLD  regression threshold, percent  (default: 10)
#   RATIOS     set to 1 to gate on within-run ratios to `seq` instead of absolute times
set -euo pipefail

base_ref=${1:?usage: ci/bench-compare.sh BASE_REF}
root=$(git rev-parse --show-toplevel)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$root/target}
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
gate=(regress --baseline base --threshold "$threshold" --markdown "$CARGO_TARGET_DIR/regress.md")
if [[ "${RATIOS:-}" == 1 ]]; then
    gate+=(--ratios)
fi
cargo run --quiet --release --manifest-path "$root/Cargo.toml" -- "${gate[@]}"
