#!/usr/bin/env bash
# An A/A experiment: how far apart two runs of the *same* code land on this machine,
# through the same gate a pull request goes through. Use it to pick a threshold.
#
#   ci/a-a.sh [RUNS] [OUT_DIR]
#
# 1. runs the suites once with `--save-baseline aa`;
# 2. RUNS times (default 3): runs them again with `--baseline aa`, then gates that run
#    with `concbench regress`, in change mode and in ratio mode, writing
#    OUT_DIR/regress-a-a-<i>.md and OUT_DIR/regress-a-a-ratios-<i>.md;
# 3. prints how many runs each mode flagged. Nothing changed between the runs, so every
#    flag is a false positive at that threshold.
#
# Environment:
#   BENCHES    cargo bench target selection   (default: "--bench cpu")
#   THRESHOLD  regression threshold, percent  (default: 5, the gate's default)
set -euo pipefail

runs=${1:-3}
root=$(git rev-parse --show-toplevel)
out_dir=${2:-$root/target/a-a}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$root/target}
read -r -a benches <<< "${BENCHES:---bench cpu}"
threshold=${THRESHOLD:-5}
mkdir -p "$out_dir"
cd "$root"

cargo build --quiet --release
concbench="$CARGO_TARGET_DIR/release/concbench"
commit=$(git rev-parse --short HEAD)
suite="cargo bench ${benches[*]}"

echo "== baseline run: $suite -- --save-baseline aa"
cargo bench "${benches[@]}" -- --save-baseline aa >/dev/null

flagged_change=0
flagged_ratios=0
for ((run = 1; run <= runs; run++)); do
    echo "== A/A run $run of $runs: $suite -- --baseline aa"
    cargo bench "${benches[@]}" -- --baseline aa >/dev/null
    for mode in change ratios; do
        if [[ $mode == change ]]; then
            file="$out_dir/regress-a-a-$run.md"
            gate=(regress --baseline aa --threshold "$threshold")
            how="criterion's change estimates"
        else
            file="$out_dir/regress-a-a-ratios-$run.md"
            gate=(regress --baseline aa --threshold "$threshold" --ratios)
            how="each style's ratio to \`seq\` within each run"
        fi
        status=0
        table=$("$concbench" "${gate[@]}" 2>/dev/null) || status=$?
        if ((status > 1)); then
            echo "concbench regress failed (exit $status)" >&2
            exit "$status"
        fi
        if ((status == 1)); then
            if [[ $mode == change ]]; then ((++flagged_change)); else ((++flagged_ratios)); fi
        fi
        {
            echo "# A/A comparison $run of $runs: $mode mode, threshold $threshold %"
            echo
            echo "Commit \`$commit\` benchmarked twice: \`$suite -- --save-baseline aa\`, then"
            echo "\`$suite -- --baseline aa\` (run $run of $runs), gated on $how with"
            echo "\`concbench ${gate[*]}\` (exit status $status). Nothing changed between the runs:"
            echo "every \"regressed\" row is a false positive at this threshold."
            echo
            echo "$table"
        } > "$file"
    done
done

echo "== A/A summary, threshold $threshold %: change mode flagged $flagged_change of $runs runs, ratio mode $flagged_ratios of $runs"
echo "tables: $out_dir/regress-a-a-*.md"
