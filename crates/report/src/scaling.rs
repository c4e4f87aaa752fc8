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
use scenarios::{BeazleyRow, Phase};

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
    if !files.contains(&name) {
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

/// The servers' core-count sweep: the Beazley scenario's shared throughput rate of each
/// server at every worker count it was measured at (all of them interleaved in the same
/// rounds), at each connection count, and the best count's rate over 1 worker's. Nothing
/// when the rows hold one worker count.
pub(crate) fn server_section(out: &mut String, rows: &[BeazleyRow]) {
    let rows: Vec<&BeazleyRow> = rows
        .iter()
        .filter(|row| row.phase == Phase::Throughput && !row.is_isolated())
        .filter(|row| row.workers.is_some())
        .collect();
    let mut counts: Vec<usize> = rows.iter().filter_map(|row| row.workers).collect();
    counts.sort_unstable();
    counts.dedup();
    if counts.len() < 2 {
        return;
    }
    let mut connections: Vec<usize> = rows.iter().map(|row| row.connections).collect();
    connections.sort_unstable();
    connections.dedup();
    let default = rows
        .iter()
        .find(|row| !row.sweep_point)
        .and_then(|row| row.workers);
    let _ = writeln!(
        out,
        "### Servers against the worker count\n\n\
         The throughput phase (shared arrangement) with every server started once per worker count \
         ({}), all of them interleaved in the same shuffled rounds; the main table above is the \
         default count{}. best ÷ 1: the best count's rate over the same server's at 1 worker (a \
         single-threaded server stays near 1.00; the fib(1) requests are kernel-bound, so a server \
         that scales shows it by the socket work it spreads over cores).\n",
        counts
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", "),
        default.map_or_else(String::new, |workers| format!(" ({workers})"))
    );
    let mut header = vec!["server".to_owned()];
    for c in &connections {
        for workers in &counts {
            header.push(format!("c={c} w={workers}"));
        }
        header.push(format!("c={c} best ÷ 1"));
    }
    let mut styles: Vec<&str> = Vec::new();
    for row in &rows {
        if !styles.contains(&row.style.as_str()) {
            styles.push(&row.style);
        }
    }
    let mut lines = Vec::new();
    for style in styles {
        let mut cells = vec![style.to_owned()];
        for &c in &connections {
            let rate = |workers: usize| {
                rows.iter()
                    .find(|row| {
                        row.style == style && row.connections == c && row.workers == Some(workers)
                    })
                    .map(|row| row.rps)
            };
            for &workers in &counts {
                cells.push(rate(workers).map_or_else(|| "—".to_owned(), |rps| format!("{rps:.0}")));
            }
            let best = counts
                .iter()
                .filter_map(|&workers| rate(workers))
                .fold(None, |best: Option<f64>, rps| {
                    Some(best.map_or(rps, |b| b.max(rps)))
                });
            cells.push(match (rate(1), best) {
                (Some(single), Some(best)) if single > 0.0 => format!("{:.2}", best / single),
                _ => "—".to_owned(),
            });
        }
        lines.push(cells);
    }
    let _ = writeln!(out, "| {} |", header.join(" | "));
    let _ = writeln!(out, "|---|{}", "---:|".repeat(header.len() - 1));
    for cells in lines {
        let cells: Vec<String> = cells.iter().map(|cell| table_text(cell)).collect();
        let _ = writeln!(out, "| {} |", cells.join(" | "));
    }
    out.push('\n');
}
