#!/usr/bin/env python3
"""How far two `concbench measure` runs agree, speedup by speedup.

    ci/measure-agreement.py FIRST.json SECOND.json [TOLERANCE_PERCENT] > agreement.md

Reads two runs' rows (schema version 1, `crates/measure/src/rows.rs`), and for every
(cohort, style) that both measured prints both speedups with their intervals and how
far the second is from the first; then each cohort's noise gauge in both runs. The
exit status is 0 either way: this is a report, not a gate.
"""
import datetime
import json
import sys


def load(path):
    with open(path) as handle:
        run = json.load(handle)
    if run.get("schema_version") != 1:
        sys.exit(f"{path}: schema version {run.get('schema_version')!r}, this script reads 1")
    return run


def when(run):
    return datetime.datetime.fromtimestamp(run["recorded_at"], datetime.timezone.utc).strftime("%H:%M UTC")


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    first, second = load(sys.argv[1]), load(sys.argv[2])
    tolerance = float(sys.argv[3]) / 100 if len(sys.argv) > 3 else 0.03
    minutes = (second["recorded_at"] - first["recorded_at"]) / 60
    print(f"# Two engine runs, {minutes:.0f} minutes apart\n")
    print(f"- first: `{first['command']}`, seed {first['seed']}, ended {when(first)}")
    print(f"- second: `{second['command']}`, seed {second['seed']}, ended {when(second)}\n")
    print(f"| cohort | style | first (95 %) | second (95 %) | second ÷ first | within ±{tolerance * 100:g} % |")
    print("|---|---|---:|---:|---:|---|")
    compared = within = 0
    worst = (0.0, "")
    cohorts = {(c["group"], c["parameter"]): c for c in second["cohorts"]}
    gauges = []
    for cohort in first["cohorts"]:
        other = cohorts.get((cohort["group"], cohort["parameter"]))
        if other is None:
            continue
        name = f"{cohort['group']}/{cohort['parameter']}"
        gauges.append((name, cohort.get("gauge"), other.get("gauge")))
        styles = {row["style"]: row for row in other["styles"]}
        for row in cohort["styles"]:
            twin = styles.get(row["style"])
            if twin is None or row["speedup"] is None or twin["speedup"] is None:
                continue
            a, b = row["speedup"], twin["speedup"]
            moved = b["point"] / a["point"] - 1
            compared += 1
            ok = abs(moved) <= tolerance
            within += ok
            if abs(moved) > abs(worst[0]):
                worst = (moved, f"{name} `{row['style']}`")
            cell = lambda s: f"{s['point']:.3f}× ({s['lower']:.3f}–{s['upper']:.3f})"
            print(f"| {name} | `{row['style']}` | {cell(a)} | {cell(b)} | {moved*100:+.1f} % | {'yes' if ok else '**no**'} |")
    print()
    print(f"**{within} of {compared}** speedups agree within ±{tolerance*100:g} %; "
          f"the largest move is {worst[0]*100:+.1f} % ({worst[1]}).\n")
    print("Noise gauges (the single-threaded styles' paired speedup over `seq`, ideal 1.00×):\n")
    print("| cohort | first: from 1.00 | first: widest interval | second: from 1.00 | second: widest interval |")
    print("|---|---:|---:|---:|---:|")
    for name, a, b in gauges:
        if a and b:
            print(f"| {name} | {a['spread']*100:.1f} % | ±{a['widest_half_width']*100:.1f} % "
                  f"| {b['spread']*100:.1f} % | ±{b['widest_half_width']*100:.1f} % |")


if __name__ == "__main__":
    main()
