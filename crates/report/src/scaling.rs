//! Speedup against the worker count: the engine's core-count sweep
//! (`concbench measure` at 1, 2, … cores and once oversubscribed), per CPU group.
//!
//! For each style and worker count `w` on a host of `c` cores (the sweep's `cores`):
//!
//! - the **paired speedup** over the reference (`seq`), from the run at `w`;
//! - the **parallel efficiency** `speedup ÷ min(w, c)`: the share of the cores the
//!   style could use that it turned into speed (1.00 is linear scaling; beyond the
//!   cores the ideal stays at `c`);
//! - the engine's **efficiency against the capacity probe** at `w`: the style's time
//!   against the probe's in the same rounds, which does not move with what the host
//!   offered.

use std::fmt::Write;

use measure::rows::MeasureFile;

use crate::summary::table_text;

/// The CPU groups, whose styles all do the same work and can be compared by speedup.
const CPU_GROUPS: [&str; 3] = ["fib_batch", "fib_skewed", "fib_forkjoin"];

/// The line the capacity probe is drawn and listed as.
pub const PROBE_LINE: &str = "capacity (probe)";

/// One style at one worker count.
#[derive(Debug, Clone, PartialEq)]
pub struct ScalingRow {
    /// The style (or [`PROBE_LINE`]).
    pub style: String,
    /// The cohort's parameter.
    pub parameter: String,
    /// The reference every speedup is over.
    pub reference: String,
    /// Workers per style in that run.
    pub workers: usize,
    /// More workers than cores.
    pub oversubscribed: bool,
    /// The paired speedup over the reference (1 for the reference itself).
    pub speedup: f64,
    /// Its 95 % interval, when the engine gave one.
    pub interval: Option<(f64, f64)>,
    /// `speedup ÷ min(workers, cores)`.
    pub per_core: f64,
    /// The engine's efficiency against the capacity probe, when measured.
    pub probe_efficiency: Option<f64>,
}

/// The chart's file name for `group`.
pub fn chart_name(group: &str) -> String {
    format!("{group}_scaling.svg")
}

/// The CPU groups the sweep measured at two or more worker counts.
pub fn groups(sweep: &MeasureFile) -> Vec<String> {
    CPU_GROUPS
        .iter()
        .filter(|group| {
            let mut counts: Vec<usize> = sweep
                .runs
                .iter()
                .filter(|run| run.cohorts.iter().any(|cohort| cohort.group == **group))
                .map(|run| run.workers)
                .collect();
            counts.sort_unstable();
            counts.dedup();
            counts.len() > 1
        })
        .map(|group| (*group).to_owned())
        .collect()
}

/// Every (style, worker count) of `group`, the styles in the default run's order (the
/// probe last), each style's counts ascending.
pub fn rows(sweep: &MeasureFile, group: &str) -> Vec<ScalingRow> {
    let cores = sweep.cores.max(1);
    let mut rows = Vec::new();
    for run in sweep.by_workers() {
        for cohort in run.cohorts.iter().filter(|cohort| cohort.group == group) {
            let styles = cohort
                .styles
                .iter()
                .map(|row| (row.style.clone(), row))
                .chain(
                    cohort
                        .capacity
                        .iter()
                        .map(|probe| (PROBE_LINE.to_owned(), probe)),
                );
            for (style, row) in styles {
                let is_probe = style == PROBE_LINE;
                let (speedup, interval) = match row.speedup {
                    Some(speedup) => (speedup.point, Some((speedup.lower, speedup.upper))),
                    None if style == cohort.reference => (1.0, None),
                    None => continue,
                };
                rows.push(ScalingRow {
                    style,
                    parameter: cohort.parameter.clone(),
                    reference: cohort.reference.clone(),
                    workers: run.workers,
                    oversubscribed: run.oversubscribed || run.workers > cores,
                    speedup,
                    interval,
                    per_core: speedup / run.workers.min(cores) as f64,
                    probe_efficiency: if is_probe {
                        None
                    } else {
                        row.efficiency.map(|efficiency| efficiency.point)
                    },
                });
            }
        }
    }
    let order: Vec<String> = sweep
        .primary()
        .into_iter()
        .flat_map(|run| &run.cohorts)
        .filter(|cohort| cohort.group == group)
        .flat_map(|cohort| cohort.styles.iter().map(|row| row.style.clone()))
        .collect();
    let rank = |style: &str| {
        if style == PROBE_LINE {
            usize::MAX
        } else {
            order
                .iter()
                .position(|known| known == style)
                .unwrap_or(usize::MAX - 1)
        }
    };
    // Stable: rows of the same style keep their ascending worker counts.
    rows.sort_by(|a, b| {
        (rank(&a.style), &a.style, &a.parameter, a.workers).cmp(&(
            rank(&b.style),
            &b.style,
            &b.parameter,
            b.workers,
        ))
    });
    rows
}

/// A worker count as the table and chart label it: `4 (oversubscribed)`.
pub fn workers_label(workers: usize, oversubscribed: bool) -> String {
    if oversubscribed {
        format!("{workers} (oversubscribed)")
    } else {
        workers.to_string()
    }
}

/// The group's scaling section: the chart, then the parallel-efficiency table.
pub(crate) fn section(out: &mut String, sweep: &MeasureFile, group: &str, files: &[String]) {
    let name = chart_name(group);
    if !files.iter().any(|file| *file == name) {
        return;
    }
    let rows = rows(sweep, group);
    let Some(first) = rows.first() else {
        return;
    };
    let mut counts: Vec<(usize, bool)> = rows
        .iter()
        .map(|row| (row.workers, row.oversubscribed))
        .collect();
    counts.sort_unstable();
    counts.dedup();
    let cores = sweep.cores.max(1);
    let _ = writeln!(
        out,
        "#### {group}: speedup against the worker count\n\n![{group} scaling]({name})\n\n\
         The engine's core-count sweep: one full `concbench measure` run at each worker count \
         ({}), on {cores} cores; the tables above are the run at {} workers. The speedup is paired \
         over `{}` within each run; the dashed line is the ideal `speedup = workers` up to the \
         cores (it stays at {cores} beyond them). Parallel efficiency is **speedup ÷ min(workers, \
         cores)**; \"vs probe\" is the engine's efficiency against the capacity probe at that \
         count (the style's time against the probe's in the same rounds).\n",
        counts
            .iter()
            .map(|(workers, oversubscribed)| workers_label(*workers, *oversubscribed))
            .collect::<Vec<_>>()
            .join(", "),
        sweep.default_workers,
        first.reference,
    );
    let _ = writeln!(
        out,
        "Parallel efficiency:\n\n| style | parameter | workers | paired speedup (95 %) | \
         speedup ÷ min(workers, cores) | efficiency vs probe |\n|---|---|---|---:|---:|---:|"
    );
    for row in &rows {
        let speedup = match row.interval {
            Some((lower, upper)) => format!("{:.2}× ({lower:.2}–{upper:.2})", row.speedup),
            None => format!("{:.2}× (reference)", row.speedup),
        };
        let _ = writeln!(
            out,
            "| `{}` | {} | {} | {speedup} | {:.0} % | {} |",
            table_text(&row.style),
            table_text(&row.parameter),
            workers_label(row.workers, row.oversubscribed),
            row.per_core * 100.0,
            row.probe_efficiency.map_or_else(
                || "—".to_owned(),
                |efficiency| format!("{:.0} %", efficiency * 100.0)
            ),
        );
    }
    out.push('\n');
}
