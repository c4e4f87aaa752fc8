#!/usr/bin/env python3
"""How far two `concbench measure` runs agree, ratio by ratio.

    ci/measure-agreement.py FIRST.json SECOND.json [TOLERANCE_PERCENT] > agreement.md

Reads two runs' rows (`crates/measure/src/rows.rs`: schema version 3, a core-count
sweep of one run per worker count, of which the run at the default worker count is
compared; or version 2, one run). For every
(cohort, style) that both measured it prints, with their intervals and how far the
second run is from the first:

- the efficiency (the style's time against the capacity probe's in the same round),
  the figure the report asks readers to compare across runs and hosts;
- the speedup over the reference, which also carries the host's parallel capacity of
  the moment (printed per cohort and run);
- first, the figure each style is quoted by: its efficiency when its CPU work uses the
  workers, its speedup when it runs on one thread (compared with the reference that
  uses the same resources);

then each cohort's noise gauge (the reference against a replica of itself) in both
runs. The exit status is 0 either way: this is a report, not a gate.
"""
import datetime
import json
import sys

SCHEMA_VERSIONS = (2, 3)


def load(path):
    with open(path) as handle:
        run = json.load(handle)
    version = run.get("schema_version")
    if version not in SCHEMA_VERSIONS:
        sys.exit(f"{path}: schema version {version!r}, this script reads {SCHEMA_VERSIONS}")
    if version == 2:
        return run
    default = run.get("default_workers")
    primary = [each for each in run.get("runs", []) if each.get("workers") == default]
    if not primary:
        sys.exit(f"{path}: no run at the default worker count {default!r}")
    return primary[0]


def when(run):
    return datetime.datetime.fromtimestamp(run["recorded_at"], datetime.timezone.utc).strftime("%H:%M UTC")


def cell(interval, percent=False):
    if percent:
        return f"{interval['point']*100:.1f} % ({interval['lower']*100:.1f}–{interval['upper']*100:.1f})"
    return f"{interval['point']:.3f}× ({interval['lower']:.3f}–{interval['upper']:.3f})"


def quoted(row):
    """The figure a style is compared by across runs: against the reference that uses
    the same resources. A style whose CPU work uses the workers is compared with the
    capacity probe (its efficiency); a single-threaded one with the single-threaded
    reference (its speedup), since its share of what the host offered falls whenever the
    host offers more."""
    if row.get("single_threaded"):
        return row.get("speedup"), False
    return row.get("efficiency"), True


def table(first, second, field, tolerance, title, percent):
    """Prints one table of `field` (speedup, efficiency, or quoted); returns (within,
    compared, worst)."""
    print(f"### {title}\n")
    print(f"| cohort | style | first (95 %) | second (95 %) | second ÷ first | within ±{tolerance * 100:g} % |")
    print("|---|---|---:|---:|---:|---|")
    compared = within = 0
    worst = (0.0, "")
    cohorts = {(c["group"], c["parameter"]): c for c in second["cohorts"]}
    for cohort in first["cohorts"]:
        other = cohorts.get((cohort["group"], cohort["parameter"]))
        if other is None:
            continue
        name = f"{cohort['group']}/{cohort['parameter']}"
        styles = {row["style"]: row for row in other["styles"]}
        for row in cohort["styles"]:
            twin = styles.get(row["style"])
            if twin is None:
                continue
            if field == "quoted":
                (a, as_percent), (b, _) = quoted(row), quoted(twin)
            else:
                a, b, as_percent = row.get(field), twin.get(field), percent
            if a is None or b is None:
                continue
            moved = b["point"] / a["point"] - 1
            compared += 1
            ok = abs(moved) <= tolerance
            within += ok
            if abs(moved) > abs(worst[0]):
                worst = (moved, f"{name} `{row['style']}`")
            print(f"| {name} | `{row['style']}` | {cell(a, as_percent)} | {cell(b, as_percent)} "
                  f"| {moved*100:+.1f} % | {'yes' if ok else '**no**'} |")
    print()
    if compared:
        print(f"**{within} of {compared}** agree within ±{tolerance*100:g} %; "
              f"the largest move is {worst[0]*100:+.1f} % ({worst[1]}).\n")
    return within, compared, worst


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    first, second = load(sys.argv[1]), load(sys.argv[2])
    tolerance = float(sys.argv[3]) / 100 if len(sys.argv) > 3 else 0.03
    minutes = (second["recorded_at"] - first["recorded_at"]) / 60
    print(f"# Two engine runs, {minutes:.0f} minutes apart\n")
    for label, run in (("first", first), ("second", second)):
        print(f"- {label}: `{run['command']}`, seed {run['seed']}, worker memory layout "
              f"{run.get('address_layout') or 'not recorded'}, ended {when(run)}")
    print()
    print("The host's parallel capacity in each run (the capacity probe's speedup over the reference):\n")
    print("| cohort | first | second | second ÷ first |")
    print("|---|---:|---:|---:|")
    cohorts = {(c["group"], c["parameter"]): c for c in second["cohorts"]}
    for cohort in first["cohorts"]:
        other = cohorts.get((cohort["group"], cohort["parameter"]))
        a = (cohort.get("capacity") or {}).get("speedup")
        b = ((other or {}).get("capacity") or {}).get("speedup")
        if a and b:
            print(f"| {cohort['group']}/{cohort['parameter']} | {cell(a)} | {cell(b)} "
                  f"| {(b['point'] / a['point'] - 1) * 100:+.1f} % |")
    print()
    table(first, second, "quoted", tolerance,
          "The figure each style is quoted by: efficiency for the styles that use the workers, "
          "speedup over the reference for the single-threaded ones", None)
    table(first, second, "efficiency", tolerance,
          "Efficiency: each style's time against the capacity probe's, paired per round", True)
    table(first, second, "speedup", tolerance,
          "Speedup over the reference, paired per round (carries the host's capacity of the moment)", False)
    print("### Noise gauges\n")
    print("The reference against a second worker process of itself, paired per round; ideal 1.000×.\n")
    print("| cohort | first | first: from 1.00 | second | second: from 1.00 |")
    print("|---|---:|---:|---:|---:|")
    for cohort in first["cohorts"]:
        other = cohorts.get((cohort["group"], cohort["parameter"]))
        a = (cohort.get("gauge") or {}).get("replica")
        b = ((other or {}).get("gauge") or {}).get("replica")
        if a and b:
            print(f"| {cohort['group']}/{cohort['parameter']} | {cell(a)} | {abs(a['point'] - 1) * 100:.1f} % "
                  f"| {cell(b)} | {abs(b['point'] - 1) * 100:.1f} % |")


if __name__ == "__main__":
    main()
