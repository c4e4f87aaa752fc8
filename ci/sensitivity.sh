#!/usr/bin/env bash
# How often the gate catches a real slowdown: builds of HEAD in which `style-rayon`'s
# `fib_batch` computes extra inputs (and throws their answers away), compared with HEAD
# RUNS times each, through `concbench compare`, and (CRITERION_RUNS > 0) through the
# criterion-baseline path as well, for a side-by-side reading.
#
#   ci/sensitivity.sh [RUNS] [OUT_DIR]
#
# Variants (extra inputs on top of the 64 × fib(27), work added on 2 workers):
#   plus9   6 × fib(27)  +9.4 %
#   plus5   3 × fib(27)  +4.7 %
#   plus2   2 × fib(26)  +1.9 %
#
# Environment:
#   VARIANTS        which variants; empty for the criterion path alone (default: "plus9 plus5 plus2")
#   BENCH_GROUPS      compared groups            (default: fib_batch: the only group the change touches)
#   THRESHOLD       gate threshold, %          (default: 3)
#   CRITERION_RUNS  criterion-path runs per variant, plus9 and plus5 only (default: 0)
#   LAYOUT          plain: build without the 64-byte function alignment (ci/lib.sh), to see the layout bias
#   REF             the commit every build starts from (default: HEAD)
#   BINARIES        a folder with base-concbench and <variant>-concbench already built
#                   (by an earlier run of this script): skips the builds
set -euo pipefail

runs=${1:-10}
root=$(git rev-parse --show-toplevel)
out_dir=${2:-$root/target/sensitivity}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$root/target}
read -r -a variants <<< "${VARIANTS-plus9 plus5 plus2}"
groups=${BENCH_GROUPS:-fib_batch}
threshold=${THRESHOLD:-3}
criterion_runs=${CRITERION_RUNS:-0}
target_id="fib_batch/rayon/64x27"
mkdir -p "$out_dir"
# shellcheck source=ci/lib.sh
source "$root/ci/lib.sh"
scratch=$(mktemp -d "${TMPDIR:-/tmp}/concbench-sens.XXXXXX")
trap 'rm -rf "$scratch"; git -C "$root" worktree prune' EXIT

extra_of() {
    case $1 in
        plus9) echo "27, 27, 27, 27, 27, 27" ;;
        plus5) echo "27, 27, 27" ;;
        plus2) echo "26, 26" ;;
        *) echo "unknown variant $1" >&2; return 2 ;;
    esac
}
# The change: the batch is computed with the extra inputs appended, then cut back to
# the real answers, so every check still passes and only the work grows.
patch_for() {
    local extra
    extra=$(extra_of "$1")
    cat <<PATCH
python3 - <<'PY'
path = "crates/style-rayon/src/lib.rs"
text = open(path).read()
old = ".install(|| inputs.par_iter().map(|&n| workloads::fib(n)).collect()))"
assert old in text, "style-rayon's fib_batch is not what this experiment patches"
new = """.install(|| {
                let padded: Vec<u32> = inputs.iter().copied().chain([$extra]).collect();
                let mut answers: Vec<u64> = padded.par_iter().map(|&n| workloads::fib(n)).collect();
                answers.truncate(inputs.len());
                answers
            }))"""
open(path, "w").write(text.replace(old, new))
PY
PATCH
}

commit=$(git -C "$root" rev-parse --short "${REF:-HEAD}")
if [[ -n ${BINARIES:-} ]]; then
    echo "== prebuilt binaries from $BINARIES"
    for binary in base "${variants[@]}"; do
        cp "$BINARIES/$binary-concbench" "$scratch/"
    done
else
    echo "== builds of $commit: base and ${variants[*]}"
    build_ref "$commit" "$scratch/base-concbench"
    for variant in "${variants[@]}"; do
        build_ref "$commit" "$scratch/$variant-concbench" "$(patch_for "$variant")"
    done
fi

summary="$out_dir/sensitivity.md"
{
    echo "# Sensitivity: \`$target_id\` made slower on purpose, commit $commit"
    echo
    echo "\`ci/sensitivity.sh $runs\`: \`style-rayon\`'s \`fib_batch\` also computes extra inputs"
    echo "(plus9: 6 × fib(27), +9.4 % work; plus5: 3 × fib(27), +4.7 %; plus2: 2 × fib(26), +1.9 %)."
    echo "Engine: \`concbench compare --base HEAD --head VARIANT --groups $groups --threshold $threshold\`."
    echo
    echo "| path | variant | run | flagged \`$target_id\` | its change (95 % interval) | other rows flagged | rounds | seconds |"
    echo "|---|---|---:|---|---|---:|---:|---:|"
} > "$summary"
declare -A caught
for variant in "${variants[@]}"; do
    caught[$variant]=0
    for ((run = 1; run <= runs; run++)); do
        json="$out_dir/compare-$variant-$run.json"
        status=0
        "$scratch/base-concbench" compare --base "$scratch/base-concbench" \
            --head "$scratch/$variant-concbench" --groups "$groups" --threshold "$threshold" \
            --seed "$run" --json "$json" --markdown "$out_dir/compare-$variant-$run.md" \
            >/dev/null || status=$?
        if ((status > 1)); then
            echo "concbench compare failed (exit $status)" >&2
            exit "$status"
        fi
        line=$(python3 - "$json" "$target_id" "$threshold" "$variant" "$run" <<'PY'
import json, sys
run = json.load(open(sys.argv[1]))
target, threshold = sys.argv[2], float(sys.argv[3]) / 100
flag = lambda row: row["change"] is not None and row["change"]["lower"] > threshold
row = next(row for row in run["rows"] if row["id"] == target)
change = row["change"]
others = sum(1 for other in run["rows"] if other["id"] != target and flag(other))
print(("yes" if flag(row) else "no") + "\t" +
      f"| engine | {sys.argv[4]} | {sys.argv[5]} | {'**yes**' if flag(row) else 'no'} | "
      f"{change['point']*100:+.1f} % ({change['lower']*100:+.1f} … {change['upper']*100:+.1f}) | {others} | "
      f"{row['rounds']} | {run['elapsed_s']:.0f} |")
PY
        )
        [[ ${line%%$'\t'*} == yes ]] && caught[$variant]=$((caught[$variant] + 1))
        echo "${line#*$'\t'}" >> "$summary"
        echo "engine $variant run $run: ${line%%$'\t'*}"
    done
done

# The criterion path, as ci/bench-compare.sh GATE=criterion runs it: a baseline of the
# commit, then the variant compared with it, then the gate. Each side is a worktree
# with a target directory of its own (no rebuild between them); both write criterion's
# results to one place, as a CI job's shared target/ would.
declare -A criterion_caught
if ((criterion_runs > 0)); then
    base_tree=$(mktemp -d "${TMPDIR:-/tmp}/concbench-sens-base.XXXXXX")
    git -C "$root" worktree add --detach "$base_tree" "$commit" >/dev/null
    export CRITERION_HOME="$scratch/criterion"
    for variant in plus9 plus5; do
        criterion_caught[$variant]=0
        variant_tree=$(mktemp -d "${TMPDIR:-/tmp}/concbench-sens-wt.XXXXXX")
        git -C "$root" worktree add --detach "$variant_tree" "$commit" >/dev/null
        (cd "$variant_tree" && bash -c "$(patch_for "$variant")")
        for ((run = 1; run <= criterion_runs; run++)); do
            rm -rf "$CRITERION_HOME"
            (cd "$base_tree" && CARGO_TARGET_DIR="$CARGO_TARGET_DIR/sens-base" \
                cargo bench --quiet --bench cpu -- fib_batch --save-baseline sens >/dev/null 2>&1)
            (cd "$variant_tree" && CARGO_TARGET_DIR="$CARGO_TARGET_DIR/sens-variant" \
                cargo bench --quiet --bench cpu -- fib_batch --baseline sens >/dev/null 2>&1)
            for mode in change ratios; do
                file="$out_dir/criterion-$variant-$mode-$run.md"
                gate=(regress --baseline sens --criterion-dir "$CRITERION_HOME" --threshold "$threshold" --markdown "$file")
                [[ $mode == ratios ]] && gate+=(--ratios)
                "$scratch/base-concbench" "${gate[@]}" >/dev/null 2>&1 || true
                row=$(grep -F "\`$target_id\`" "$file" || true)
                change=$(echo "$row" | awk -F'|' '{print $5}' | xargs)
                verdict=$(echo "$row" | awk -F'|' '{print $6}' | xargs)
                others=$(grep -c "regressed\*\*" "$file" || true)
                flagged=no
                if [[ $verdict == "**regressed**" ]]; then
                    flagged=yes
                    others=$((others - 1))
                    [[ $mode == change ]] && criterion_caught[$variant]=$((criterion_caught[$variant] + 1))
                fi
                echo "| criterion, $mode mode | $variant | $run | $flagged | $change | $others | — | — |" >> "$summary"
                echo "criterion $mode $variant run $run: $verdict"
            done
        done
        git -C "$root" worktree remove --force "$variant_tree" 2>/dev/null || rm -rf "$variant_tree"
    done
    git -C "$root" worktree remove --force "$base_tree" 2>/dev/null || rm -rf "$base_tree"
    unset CRITERION_HOME
fi

{
    echo
    for variant in "${variants[@]}"; do
        echo "- engine, $variant: \`$target_id\` flagged in **${caught[$variant]} of $runs** runs at $threshold %."
    done
    for variant in "${!criterion_caught[@]}"; do
        echo "- criterion change mode, $variant: flagged in ${criterion_caught[$variant]} of $criterion_runs runs (ratio-mode rows in the table)."
    done
} >> "$summary"
echo "== summary: $summary"
