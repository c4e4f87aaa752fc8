#!/usr/bin/env bash
# An A/A experiment for `concbench compare`: two builds of the same commit, compared
# RUNS times. Nothing differs between them, so every "regressed" row is a false alarm
# at that threshold. Use it to check a threshold on your own runner.
#
#   ci/a-a-compare.sh [RUNS] [OUT_DIR]
#
# Writes OUT_DIR/compare-a-a-<i>.md per run and OUT_DIR/compare-a-a.md, a summary:
# per run, its exit status, rounds, time, widest interval and the most extreme change.
#
# Environment:
#   BENCH_GROUPS benchmark groups            (default: cpu)
#   THRESHOLD  regression threshold, %     (default: 3, the gate's default)
#   EXTRA      more `concbench compare` options (e.g. "--quick")
#   REF        the commit built twice      (default: HEAD)
set -euo pipefail

runs=${1:-20}
root=$(git rev-parse --show-toplevel)
out_dir=${2:-$root/target/a-a-compare}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$root/target}
groups=${BENCH_GROUPS:-cpu}
threshold=${THRESHOLD:-3}
read -r -a extra <<< "${EXTRA:-}"
mkdir -p "$out_dir"
# shellcheck source=ci/lib.sh
source "$root/ci/lib.sh"
scratch=$(mktemp -d "${TMPDIR:-/tmp}/concbench-aa.XXXXXX")
trap 'rm -rf "$scratch"' EXIT

commit=$(git -C "$root" rev-parse --short "${REF:-HEAD}")
echo "== two builds of $commit"
build_ref "$commit" "$scratch/a-concbench"
build_ref "$commit" "$scratch/b-concbench"

summary="$out_dir/compare-a-a.md"
{
    echo "# A/A: \`concbench compare\`, two builds of $commit, threshold $threshold %"
    echo
    echo "Command: \`concbench compare --base A --head B --groups $groups --threshold $threshold ${extra[*]}\`,"
    echo "$runs runs (\`ci/a-a-compare.sh $runs\`). A and B are separate builds of the same commit:"
    echo "every \"regressed\" row is a false alarm."
    echo
    echo "| run | exit | regressed rows | rounds | seconds | widest interval | largest change (interval) |"
    echo "|---:|---:|---:|---:|---:|---:|---|"
} > "$summary"
flagged=0
for ((run = 1; run <= runs; run++)); do
    file="$out_dir/compare-a-a-$run.md"
    json="$out_dir/compare-a-a-$run.json"
    status=0
    "$scratch/b-concbench" compare --base "$scratch/a-concbench" --head "$scratch/b-concbench" \
        --groups "$groups" --threshold "$threshold" --seed "$run" "${extra[@]}" \
        --markdown "$file" --json "$json" >/dev/null || status=$?
    if ((status > 1)); then
        echo "concbench compare failed (exit $status)" >&2
        exit "$status"
    fi
    ((status == 1)) && ((++flagged))
    python3 - "$json" "$run" "$status" "$threshold" >> "$summary" <<'PY'
import json, sys
run = json.load(open(sys.argv[1]))
rows = [row for row in run["rows"] if row["change"]]
widest = max((row["change"]["upper"] - row["change"]["lower"]) / 2 for row in rows)
extreme = max(rows, key=lambda row: abs(row["change"]["point"]))
change = extreme["change"]
regressed = sum(1 for row in rows if row["change"]["lower"] > float(sys.argv[4]) / 100)
print(f"| {sys.argv[2]} | {sys.argv[3]} | {regressed} | {run['rounds']} | {run['elapsed_s']:.0f} | ±{widest*100:.1f} % "
      f"| `{extreme['id']}` {change['point']*100:+.1f} % ({change['lower']*100:+.1f} … {change['upper']*100:+.1f}) |")
PY
    echo "run $run of $runs: exit $status"
done
{
    echo
    echo "**False alarms: $flagged of $runs runs** flagged a regression at $threshold %."
} >> "$summary"
echo "== A/A: $flagged of $runs runs flagged at $threshold %; summary: $summary"
