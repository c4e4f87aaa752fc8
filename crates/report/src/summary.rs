//! `summary.md` and `results.csv`.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::Path;

use measure::rows::{CohortRow, MeasureRun, StyleRow};
use scenarios::{BeazleyRow, Phase, TaskRow};
use workloads::Workload;

use crate::results::{RatioBase, ResultRow, format_nanos, format_rate};
use crate::{
    BEAZLEY_ROWS, CONNECTIONS_ROWS, IO_ROWS, Inputs, Loaded, MachineInfo, ReportError, TASK_ROWS,
};

/// The hog-latency chart's file name.
pub(crate) const HOG_CHART: &str = "hog_latency_p99.svg";
/// The memory-per-unit chart's file name.
pub(crate) const TASKS_CHART: &str = "bytes_per_task.svg";
/// The bytes-per-connection chart's file name (the `connections` scenario).
pub(crate) const CONNECTIONS_CHART: &str = "connections_bytes.svg";
/// The achieved-against-ideal chart's file name (the `io` scenario).
pub(crate) const IO_CHART: &str = "io_efficiency.svg";

/// The columns of `results.csv`, in order.
pub const CSV_COLUMNS: [&str; 18] = [
    "group",
    "style",
    "parameter",
    "median_ns",
    "median_ci_low_ns",
    "median_ci_high_ns",
    "mean_ns",
    "ratio",
    "ratio_to",
    "elements_per_iteration",
    "elements_per_second",
    "paired_speedup",
    "paired_speedup_low",
    "paired_speedup_high",
    "paired_efficiency",
    "paired_efficiency_low",
    "paired_efficiency_high",
    "cpu_per_wall",
];

/// Rows grouped by criterion group, in the matrix's workload order (unknown groups
/// last, alphabetically).
pub(crate) fn by_group(rows: &[ResultRow]) -> Vec<(&str, Vec<&ResultRow>)> {
    let mut groups: BTreeMap<(usize, &str), Vec<&ResultRow>> = BTreeMap::new();
    for row in rows {
        let group = row.benchmark.group.as_str();
        let order = Workload::ALL
            .iter()
            .position(|workload| workload.name() == group)
            .unwrap_or(usize::MAX);
        groups.entry((order, group)).or_default().push(row);
    }
    groups
        .into_iter()
        .map(|((_, group), rows)| (group, rows))
        .collect()
}

/// The axis label of a group chart, which also says what the bar labels' ratios are.
pub(crate) fn ratio_axis(base: RatioBase, baseline: &str) -> String {
    let ratio = match base {
        RatioBase::Baseline => format!("× = speed relative to {baseline}"),
        RatioBase::Best => "× = speed relative to the fastest".to_owned(),
    };
    format!("median time per element, log scale (shorter is faster); {ratio}")
}

/// The engine's row for `style` at `group`/`parameter`, with its cohort.
fn engine_row<'a>(
    measured: Option<&'a MeasureRun>,
    group: &str,
    style: &str,
    parameter: Option<&str>,
) -> Option<(&'a CohortRow, &'a StyleRow)> {
    let cohort = measured?
        .cohorts
        .iter()
        .find(|cohort| cohort.group == group && Some(cohort.parameter.as_str()) == parameter)?;
    Some((cohort, cohort.styles.iter().find(|row| row.style == style)?))
}

pub(crate) fn write_csv(
    path: &Path,
    rows: &[ResultRow],
    measured: Option<&MeasureRun>,
) -> Result<(), ReportError> {
    let write_error = |error: csv::Error| ReportError::Write {
        path: path.to_path_buf(),
        source: std::io::Error::other(error),
    };
    let mut writer = csv::Writer::from_path(path).map_err(write_error)?;
    writer.write_record(CSV_COLUMNS).map_err(write_error)?;
    for row in rows {
        let benchmark = &row.benchmark;
        let optional = |value: Option<String>| value.unwrap_or_default();
        let engine = engine_row(
            measured,
            &benchmark.group,
            &benchmark.function,
            benchmark.value.as_deref(),
        )
        .map(|(_, row)| row);
        // The reference's own speedup is 1 by definition.
        let speedup = engine.map(|row| {
            row.speedup.map_or((1.0, 1.0, 1.0), |speedup| {
                (speedup.point, speedup.lower, speedup.upper)
            })
        });
        let efficiency = engine.and_then(|row| row.efficiency);
        writer
            .write_record([
                benchmark.group.clone(),
                benchmark.function.clone(),
                optional(benchmark.value.clone()),
                format!("{:.1}", benchmark.median.point),
                format!("{:.1}", benchmark.median.lower),
                format!("{:.1}", benchmark.median.upper),
                format!("{:.1}", benchmark.mean.point),
                format!("{:.4}", row.ratio),
                match row.ratio_base {
                    RatioBase::Baseline => "baseline".to_owned(),
                    RatioBase::Best => "best".to_owned(),
                },
                optional(benchmark.elements.map(|elements| elements.to_string())),
                optional(row.elements_per_second.map(|rate| format!("{rate:.1}"))),
                optional(speedup.map(|speedup| format!("{:.4}", speedup.0))),
                optional(speedup.map(|speedup| format!("{:.4}", speedup.1))),
                optional(speedup.map(|speedup| format!("{:.4}", speedup.2))),
                optional(efficiency.map(|efficiency| format!("{:.4}", efficiency.point))),
                optional(efficiency.map(|efficiency| format!("{:.4}", efficiency.lower))),
                optional(efficiency.map(|efficiency| format!("{:.4}", efficiency.upper))),
                optional(engine.map(|row| format!("{:.3}", row.cpu_per_wall))),
            ])
            .map_err(write_error)?;
    }
    writer.flush().map_err(|source| ReportError::Write {
        path: path.to_path_buf(),
        source,
    })
}

pub(crate) fn markdown(
    inputs: &Inputs,
    loaded: &Loaded,
    rows: &[ResultRow],
    machine: &MachineInfo,
    files: &[String],
) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# concbench report: {}, {}\n",
        machine.date, machine.hostname
    );
    let _ = writeln!(out, "{}\n", machine.one_line());
    let _ = writeln!(
        out,
        "> Measured on one shared machine with {} available CPUs, where the load generator and the \
         server under test share the cores and the loopback: compare styles by their ratios within this \
         run, not by absolute numbers. Every style got the same worker count, and every answer was checked.\n",
        machine.available_parallelism
    );

    out.push_str("## Benchmarks\n\n");
    match &loaded.measure {
        Some(measured) => {
            let _ = writeln!(
                out,
                "Speedups come from the measurement engine (`{}`): every style in a worker process of its \
                 own, sampled once per round in a freshly shuffled order, each speedup taken within a round \
                 (the reference's time ÷ the style's), {} workers per style, samples of about {:.0} ms, \
                 target ±{:.1} %; each cohort's rounds, time and stop reason are under its table. Medians \
                 and their intervals are criterion's (each style measured contiguously, all in one \
                 process): read them for scale, quote the paired speedups.\n",
                measured.command,
                measured.workers,
                measured.sample_target_ms,
                measured.stopping.target * 100.0
            );
        }
        None => {
            let _ = writeln!(
                out,
                "_No rows of the measurement engine in `{}`: run `concbench measure` for paired speedups; \
                 the ratios below are criterion's medians divided, measured minutes apart._\n",
                inputs
                    .scenarios_dir
                    .join(measure::rows::MEASURE_ROWS)
                    .display()
            );
        }
    }
    if rows.is_empty() {
        let _ = writeln!(
            out,
            "_No criterion results in `{}`: run `cargo bench` first._\n",
            inputs.criterion_dir.display()
        );
    }
    let mut groups: Vec<(&str, Vec<&ResultRow>)> = by_group(rows);
    for cohort in loaded.measure.iter().flat_map(|measured| &measured.cohorts) {
        if !groups.iter().any(|(group, _)| *group == cohort.group) {
            groups.push((cohort.group.as_str(), Vec::new()));
        }
    }
    groups.sort_by_key(|(group, _)| {
        Workload::ALL
            .iter()
            .position(|workload| workload.name() == *group)
            .unwrap_or(usize::MAX)
    });
    for (group, group_rows) in groups {
        let _ = writeln!(out, "### {group}\n");
        if files.iter().any(|file| *file == format!("{group}.svg")) {
            let _ = writeln!(out, "![{group}]({group}.svg)\n");
        }
        let cohorts: Vec<&CohortRow> = loaded
            .measure
            .iter()
            .flat_map(|measured| &measured.cohorts)
            .filter(|cohort| cohort.group == group)
            .collect();
        if cohorts.is_empty() {
            criterion_table(&mut out, inputs, machine, group, &group_rows);
            if group == Workload::Throughput.name()
                && let Some(bench) = loaded.throughput_bench.as_deref()
            {
                crate::throughput::section(
                    &mut out,
                    &group_rows,
                    bench,
                    // All rows: the section picks the isolated ones for a bench row whose
                    // client and server were pinned apart, the shared ones otherwise.
                    loaded.beazley.as_deref().unwrap_or_default(),
                );
            }
        } else {
            paired_table(
                &mut out,
                loaded.measure.as_ref(),
                group,
                &group_rows,
                &cohorts,
            );
            for cohort in &cohorts {
                paired_notes(&mut out, cohort, machine.workers);
            }
        }
        if let Some(sweep) = &loaded.sweep {
            crate::scaling::section(&mut out, sweep, group, files);
        }
    }

    out.push_str("## The Beazley scenario\n\n");
    match loaded.beazley.as_deref() {
        Some(beazley) if !beazley.is_empty() => {
            // The isolated arrangement's rows have a section of their own.
            beazley_section(&mut out, &crate::isolation::main_rows(beazley), files);
            crate::isolation::section(&mut out, beazley, &inputs.scenarios_dir);
            crate::scaling::server_section(&mut out, beazley);
        }
        _ => {
            let _ = writeln!(
                out,
                "_No Beazley rows in `{}`: run `concbench scenario beazley` first._\n",
                inputs.scenarios_dir.join(BEAZLEY_ROWS).display()
            );
        }
    }

    out.push_str("## Task costs\n\n");
    match loaded.tasks.as_deref() {
        Some(tasks) if !tasks.is_empty() => tasks_section(&mut out, tasks, files),
        _ => {
            let _ = writeln!(
                out,
                "_No task rows in `{}`: run `concbench scenario tasks` first._\n",
                inputs.scenarios_dir.join(TASK_ROWS).display()
            );
        }
    }

    out.push_str("## Many connections (C10K)\n\n");
    match loaded.connections.as_deref() {
        Some(connections) if !connections.is_empty() => {
            crate::connections::section(&mut out, connections, files);
        }
        _ => {
            let _ = writeln!(
                out,
                "_No connections rows in `{}`: run `concbench scenario connections` first._\n",
                inputs.scenarios_dir.join(CONNECTIONS_ROWS).display()
            );
        }
    }

    out.push_str("## Waiting on a backend (io_wait)\n\n");
    match loaded.io.as_deref() {
        Some(io) if !io.is_empty() => crate::io_wait::section(&mut out, io, files),
        _ => {
            let _ = writeln!(
                out,
                "_No io rows in `{}`: run `concbench scenario io` first._\n",
                inputs.scenarios_dir.join(IO_ROWS).display()
            );
        }
    }

    out.push_str("## Latency against offered load\n\n");
    match loaded.rate_sweep.as_deref() {
        Some(rates) if !rates.is_empty() => crate::rate_sweep::section(&mut out, rates, files),
        _ => {
            let _ = writeln!(
                out,
                "_Not run: no rate-sweep rows in `{}`: run `concbench scenario rate-sweep` first._\n",
                inputs.scenarios_dir.join(crate::RATE_SWEEP_ROWS).display()
            );
        }
    }

    out.push_str("## How produced\n\n```sh\n");
    for command in &machine.commands {
        let _ = writeln!(out, "{command}");
    }
    out.push_str("```\n\n");
    let _ = writeln!(
        out,
        "Files: {}. `machine.json` records the machine, the toolchain and the commit.",
        files
            .iter()
            .map(|file| format!("[`{file}`]({file})"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    out
}

/// A group the engine did not measure: criterion's medians and ratios, its noise gauge
/// and its superlinear check, as before the engine.
fn criterion_table(
    out: &mut String,
    inputs: &Inputs,
    machine: &MachineInfo,
    group: &str,
    group_rows: &[&ResultRow],
) {
    let base = group_rows
        .first()
        .map_or(RatioBase::Best, |row| row.ratio_base);
    let _ = writeln!(
        out,
        "| style | parameter | median | 95 % CI | {} | throughput |\n|---|---|---:|---:|---:|---:|",
        base.label(&inputs.baseline)
    );
    for row in group_rows {
        let benchmark = &row.benchmark;
        let _ = writeln!(
            out,
            "| `{}` | {} | {} | {} – {} | {:.2}× | {} |",
            benchmark.function,
            benchmark.value.as_deref().unwrap_or(""),
            format_nanos(benchmark.median.point),
            format_nanos(benchmark.median.lower),
            format_nanos(benchmark.median.upper),
            row.ratio,
            row.elements_per_second
                .map_or_else(String::new, format_rate),
        );
    }
    out.push('\n');
    if CPU_GROUPS.iter().any(|workload| workload.name() == group) {
        noise_gauge(out, group_rows, &inputs.single_threaded);
    }
    if base == RatioBase::Baseline
        && let Some(workers) = machine.workers
    {
        disturbed_run_warning(out, group_rows, workers, &inputs.baseline);
    }
}

/// What one unit of a task group is, for its per-unit columns; `None` for the CPU groups.
fn task_unit(group: &str) -> Option<&'static str> {
    match group {
        "spawn" => Some("spawned unit"),
        "ping_pong" => Some("round trip"),
        "sleepers" => Some("sleeper"),
        _ => None,
    }
}

/// The per-unit cells of a task group's row: the engine's median wall and CPU time per
/// iteration divided by the units in it (the parameter), so that spinning shows as CPU
/// time rather than being rewarded with a short wall time.
fn per_unit_cells(row: Option<&StyleRow>, parameter: Option<&str>) -> String {
    let units = parameter.and_then(|parameter| parameter.parse::<f64>().ok());
    match (row, units) {
        (Some(row), Some(units)) if units > 0.0 => format!(
            " {} | {} |",
            format_nanos(row.wall_ns / units),
            format_nanos(row.cpu_ns / units)
        ),
        _ => " — | — |".to_owned(),
    }
}

/// A group the engine measured: per style, criterion's median beside the engine's
/// paired speedup and CPU ÷ wall, and for task groups the wall and CPU time per unit.
/// Styles only one of the two measured get "—" where the other's numbers would be.
fn paired_table(
    out: &mut String,
    measured: Option<&MeasureRun>,
    group: &str,
    group_rows: &[&ResultRow],
    cohorts: &[&CohortRow],
) {
    let unit = task_unit(group);
    let mut references_named: Vec<&str> = cohorts
        .iter()
        .map(|cohort| cohort.reference.as_str())
        .collect();
    references_named.dedup();
    let (unit_header, unit_rule) = match unit {
        Some(unit) => (format!(" wall per {unit} | CPU per {unit} |"), "---:|---:|"),
        None => (String::new(), ""),
    };
    let with_capacity = cohorts.iter().any(|cohort| cohort.capacity.is_some());
    let (efficiency_header, efficiency_rule) = if with_capacity {
        (" efficiency (95 %) |", "---:|")
    } else {
        ("", "")
    };
    let _ = writeln!(
        out,
        "| style | parameter | paired speedup over `{}` (95 %) |{efficiency_header} CPU ÷ wall |{unit_header} median (criterion) | 95 % CI | throughput |\n\
         |---|---|---:|{efficiency_rule}---:|{unit_rule}---:|---:|---:|",
        references_named.join("`, `")
    );
    let speedup_cell = |row: &StyleRow| {
        let speedup = row.speedup.map_or_else(
            || "1.00× (reference)".to_owned(),
            |speedup| speedup.format_ratio(2),
        );
        if !with_capacity {
            return speedup;
        }
        let efficiency = row.efficiency.map_or_else(
            || "—".to_owned(),
            |efficiency| {
                format!(
                    "{:.0} % ({:.0}–{:.0})",
                    efficiency.point * 100.0,
                    efficiency.lower * 100.0,
                    efficiency.upper * 100.0
                )
            },
        );
        format!("{speedup} | {efficiency}")
    };
    for row in group_rows {
        let benchmark = &row.benchmark;
        let engine = engine_row(
            measured,
            &benchmark.group,
            &benchmark.function,
            benchmark.value.as_deref(),
        );
        let unit_cells = if unit.is_some() {
            per_unit_cells(engine.map(|(_, row)| row), benchmark.value.as_deref())
        } else {
            String::new()
        };
        let _ = writeln!(
            out,
            "| `{}` | {} | {} | {} |{unit_cells} {} | {} – {} | {} |",
            benchmark.function,
            benchmark.value.as_deref().unwrap_or(""),
            engine.map_or_else(
                || if with_capacity {
                    "— | —".to_owned()
                } else {
                    "—".to_owned()
                },
                |(_, row)| speedup_cell(row)
            ),
            engine.map_or_else(
                || "—".to_owned(),
                |(_, row)| format!("{:.2}", row.cpu_per_wall)
            ),
            format_nanos(benchmark.median.point),
            format_nanos(benchmark.median.lower),
            format_nanos(benchmark.median.upper),
            row.elements_per_second
                .map_or_else(String::new, format_rate),
        );
    }
    for cohort in cohorts {
        for style in cohort.styles.iter().chain(&cohort.capacity) {
            let in_criterion = group_rows.iter().any(|row| {
                row.benchmark.function == style.style
                    && row.benchmark.value.as_deref() == Some(cohort.parameter.as_str())
            });
            if !in_criterion {
                let unit_cells = if unit.is_some() {
                    per_unit_cells(Some(style), Some(cohort.parameter.as_str()))
                } else {
                    String::new()
                };
                let _ = writeln!(
                    out,
                    "| `{}` | {} | {} | {:.2} |{unit_cells} — | — | |",
                    style.style,
                    cohort.parameter,
                    speedup_cell(style),
                    style.cpu_per_wall
                );
            }
        }
    }
    out.push('\n');
}

/// Under a paired table: how the cohort's rounds ended, the host's capacity, its noise
/// gauge (the reference against a replica of itself, ideal 1.00), and a warning when a
/// speedup's whole interval is beyond what the workers can give.
fn paired_notes(out: &mut String, cohort: &CohortRow, workers: Option<usize>) {
    let _ = writeln!(
        out,
        "> {}: {} rounds in {:.0} s, {}; the widest interval is ±{:.1} %.\n",
        cohort.parameter,
        cohort.rounds,
        cohort.elapsed_s,
        cohort.stop.describe(),
        cohort
            .styles
            .iter()
            .filter_map(|row| row.speedup)
            .map(|speedup| speedup.relative_half_width() * 100.0)
            .fold(0.0, f64::max)
    );
    if let Some(capacity) = cohort.capacity.as_ref().and_then(|probe| probe.speedup) {
        let _ = writeln!(
            out,
            "> Capacity: the engine's probe (`capacity`: the same work items, largest first, from one \
             atomic index on plain threads) ran {} faster than `{}` in the same rounds: what the host's \
             workers offered in this run. Efficiency is each style's time against the probe's, paired \
             the same way: it does not move when the host gives the workers more or less of a core. \
             Compare a style across runs and hosts by the ratio against the reference that uses the \
             same resources: its efficiency when its work uses the workers, its speedup over `{}` \
             when it runs on one thread; the other figures hold for this run.\n",
            capacity.format_ratio(2),
            cohort.reference,
            cohort.reference
        );
    }
    if let Some(gauge) = &cohort.gauge
        && let Some(replica) = gauge.replica
    {
        let points: Vec<String> = gauge
            .styles
            .iter()
            .filter_map(|name| cohort.styles.iter().find(|row| &row.style == name))
            .filter_map(|row| {
                row.speedup
                    .map(|speedup| format!("`{}` {:.3}×", row.style, speedup.point))
            })
            .collect();
        let verdict = if gauge.spread > REPLICA_GAUGE_LIMIT {
            "**Disturbed run:** the same work in two processes disagreed; do not quote this \
             cohort's speedups"
        } else {
            "differences between styles within that are noise"
        };
        let single_threaded = if points.is_empty() {
            String::new()
        } else {
            format!(
                " The single-threaded styles do `{}`'s work on one thread ({}): their distance from \
                 1.00 beyond the gauge is their own cost per task or callback.",
                cohort.reference,
                points.join(", ")
            )
        };
        let _ = writeln!(
            out,
            "> Noise gauge (paired): `{}` against a second worker process of itself, {}, \
             {:.1} % from the ideal 1.00: {verdict}.{single_threaded}\n",
            cohort.reference,
            replica.format_ratio(3),
            gauge.spread * 100.0,
        );
    }
    if let Some(workers) = workers.filter(|_| cohort.capacity.is_some()) {
        let limit = workers as f64 * SUPERLINEAR_TOLERANCE;
        let impossible: Vec<String> = cohort
            .styles
            .iter()
            .filter_map(|row| Some((row, row.speedup?)))
            .filter(|(_, speedup)| speedup.lower > limit)
            .map(|(row, speedup)| format!("`{}` at {:.2}×", row.style, speedup.point))
            .collect();
        if !impossible.is_empty() {
            let _ = writeln!(
                out,
                "> **Disturbed run:** {} over `{}` with {workers} workers, more than {workers} workers can give, \
                 even at the interval's lower end.\n",
                impossible.join(", "),
                cohort.reference
            );
        }
    }
}

/// The groups in which every style does the same sequential work in total, so that the
/// single-threaded styles' times must agree.
const CPU_GROUPS: [Workload; 3] = [
    Workload::FibBatch,
    Workload::FibSkewed,
    Workload::FibForkJoin,
];

/// Single-threaded styles whose medians differ by more than this are a disturbed run.
const NOISE_GAUGE_LIMIT: f64 = 0.10;

/// A reference whose replica (the same benchmark in a second worker process, paired per
/// round) is further than this from 1.00 marks the cohort as a disturbed run.
const REPLICA_GAUGE_LIMIT: f64 = 0.02;

/// The spread of the single-threaded styles' medians, at each parameter of a CPU group:
/// they run the same work on one thread, so their disagreement is the run's own noise
/// floor, below which no difference between styles means anything.
fn noise_gauge(out: &mut String, rows: &[&ResultRow], single_threaded: &[String]) {
    let mut by_parameter: BTreeMap<Option<&str>, Vec<&ResultRow>> = BTreeMap::new();
    for row in rows {
        if single_threaded.contains(&row.benchmark.function) {
            by_parameter
                .entry(row.benchmark.value.as_deref())
                .or_default()
                .push(row);
        }
    }
    for (parameter, gauge) in by_parameter {
        let medians = gauge.iter().map(|row| row.benchmark.median.point);
        let (fastest, slowest) = medians.fold((f64::INFINITY, 0.0_f64), |(low, high), median| {
            (low.min(median), high.max(median))
        });
        if gauge.len() < 2 || fastest <= 0.0 {
            continue;
        }
        let spread = slowest / fastest - 1.0;
        let names = gauge
            .iter()
            .map(|row| format!("`{}`", row.benchmark.function))
            .collect::<Vec<_>>()
            .join(", ");
        let at = parameter.map_or_else(String::new, |parameter| format!(" at {parameter}"));
        let verdict = if spread > NOISE_GAUGE_LIMIT {
            "**Disturbed run:** more than the overhead of a loop or a runtime can explain, so \
             other load on the machine moved these times; do not quote this group's ratios"
        } else {
            "differences between styles smaller than that are within this run's noise"
        };
        let _ = writeln!(
            out,
            "> Noise gauge{at}: {names} run the same work on one thread; their medians are {:.1} % apart: {verdict}.\n",
            spread * 100.0
        );
    }
}

/// More speed than the workers can give is impossible: it means the baseline's samples
/// were slowed by other load (or a style's were sped up by a quieter moment), so the
/// group's ratios are off by at least the excess. Say so under the table rather than
/// let an impossible ratio be quoted.
const SUPERLINEAR_TOLERANCE: f64 = 1.05;

fn disturbed_run_warning(out: &mut String, rows: &[&ResultRow], workers: usize, baseline: &str) {
    let limit = workers as f64 * SUPERLINEAR_TOLERANCE;
    let impossible: Vec<String> = rows
        .iter()
        .filter(|row| row.ratio > limit)
        .map(|row| {
            let benchmark = &row.benchmark;
            format!(
                "`{}` at {} is {:.2}×",
                benchmark.function,
                benchmark.value.as_deref().unwrap_or("its parameter"),
                row.ratio
            )
        })
        .collect();
    if !impossible.is_empty() {
        let _ = writeln!(
            out,
            "> **Disturbed run:** {} `{baseline}` with {workers} workers, more than {workers} workers can give. \
             Other load on the machine slowed some samples (the baseline's, or this group's), so the ratios \
             here are off by at least that much; rerun this group on a quieter machine before quoting them.\n",
            impossible.join(", ")
        );
    }
}

fn beazley_section(out: &mut String, rows: &[BeazleyRow], files: &[String]) {
    let mut connection_counts: Vec<usize> = rows
        .iter()
        .filter(|row| row.phase == Phase::Throughput)
        .map(|row| row.connections)
        .collect();
    connection_counts.sort_unstable();
    connection_counts.dedup();
    let busiest = connection_counts.last().copied();
    let rate_at = |style: &str, connections: usize| {
        rows.iter().find(|row| {
            row.style == style && row.phase == Phase::Throughput && row.connections == connections
        })
    };
    // Ratios among the servers under test: reference servers (redis) are the ceiling.
    let best = busiest.and_then(|busiest| {
        rows.iter()
            .filter(|row| {
                row.phase == Phase::Throughput && row.connections == busiest && row.language != "c"
            })
            .map(|row| row.rps)
            .reduce(f64::max)
    });
    let mut header = String::from("| server | language |");
    let mut rule = String::from("|---|---|");
    for connections in &connection_counts {
        let _ = write!(header, " c={connections} req/s | c={connections} p99 |");
        rule.push_str("---:|---:|");
    }
    header.push_str(" vs best | server CPU per reply | in user space |");
    rule.push_str("---:|---:|---:|");
    let _ = writeln!(out, "{header}\n{rule}");
    let mut styles: Vec<&str> = Vec::new();
    for row in rows {
        if !styles.contains(&row.style.as_str()) {
            styles.push(&row.style);
        }
    }
    for style in &styles {
        let language = rows
            .iter()
            .find(|row| row.style == *style)
            .map_or("", |row| row.language.as_str());
        let _ = write!(out, "| `{style}` | {language} |");
        for &connections in &connection_counts {
            match rate_at(style, connections) {
                Some(row) => {
                    let p99 = row
                        .p99_us
                        .map_or_else(|| "no reply".to_owned(), format_micros);
                    let _ = write!(out, " {:.0} | {p99} |", row.rps);
                }
                None => out.push_str(" — | — |"),
            }
        }
        let versus_best = match (busiest.and_then(|busiest| rate_at(style, busiest)), best) {
            (Some(row), Some(best)) => format!("{:.2}×", row.rps / best),
            _ => "—".to_owned(),
        };
        let busiest_row = busiest.and_then(|busiest| rate_at(style, busiest));
        let micros = |value: Option<f64>| {
            value.map_or_else(|| "—".to_owned(), |micros| format!("{micros:.1} µs"))
        };
        let cpu = micros(busiest_row.and_then(|row| row.server_cpu_us));
        let user = micros(busiest_row.and_then(|row| row.server_user_us));
        let _ = writeln!(out, " {versus_best} | {cpu} | {user} |");
    }
    out.push('\n');
    hog_sweep_table(out, rows, &styles);
    if let (Some(busiest), Some(best)) = (busiest, best)
        && let Some(redis) = rows.iter().find(|row| {
            row.language == "c" && row.phase == Phase::Throughput && row.connections == busiest
        })
    {
        let _ = writeln!(
            out,
            "Best server at {busiest} connections / `{}` `PING` through the same client: **{:.2}×**.\n",
            redis.style,
            best / redis.rps
        );
    }
    let client_checks: Vec<String> = rows
        .iter()
        .filter(|row| row.phase == Phase::Throughput)
        .filter_map(|row| {
            let reference = row.redis_benchmark_rps?;
            Some(format!(
                "{} connection(s): {:.0} against {reference:.0} req/s, **{:.2}×**",
                row.connections,
                row.rps,
                row.rps / reference
            ))
        })
        .collect();
    if !client_checks.is_empty() {
        let _ = writeln!(
            out,
            "The load generator against `redis-benchmark` (`-t ping_inline`, one thread, no pipelining), \
             both driving the same `redis-server`: {}.\n",
            client_checks.join("; ")
        );
    }
    if let Some(busiest) = busiest {
        language_comparison(out, rows, busiest);
    }
    if files.iter().any(|file| file == HOG_CHART) {
        let _ = writeln!(out, "![p99 latency idle and with hogs]({HOG_CHART})\n");
    }
}

/// The hog phases, one column pair per hog count: the probe's p99 (from each probe's
/// due time; `≥` where some probes were never sent or answered and count with the time
/// they had waited) and how many of the probes that fell due were answered.
fn hog_sweep_table(out: &mut String, rows: &[BeazleyRow], styles: &[&str]) {
    let hog_rows: Vec<&BeazleyRow> = rows.iter().filter(|row| row.phase == Phase::Hog).collect();
    let Some(first) = hog_rows.first() else {
        return;
    };
    let mut counts: Vec<Option<usize>> = hog_rows.iter().map(|row| row.hogs).collect();
    counts.sort_unstable();
    counts.dedup();
    let label = |count: Option<usize>| {
        count.map_or_else(|| "hogs".to_owned(), |count| format!("{count} hogs"))
    };
    let mut header = String::from("| server |");
    let mut rule = String::from("|---|");
    for &count in &counts {
        let _ = write!(header, " {}: probe p99 | answered / due |", label(count));
        rule.push_str("---:|---:|");
    }
    let _ = writeln!(out, "{header}\n{rule}");
    for style in styles {
        if !hog_rows.iter().any(|row| row.style == *style) {
            continue;
        }
        let _ = write!(out, "| `{style}` |");
        for &count in &counts {
            match hog_rows
                .iter()
                .find(|row| row.style == *style && row.hogs == count)
            {
                Some(row) => {
                    let due = row
                        .due
                        .map_or_else(|| "—".to_owned(), |due| due.to_string());
                    // A probe with no latency recorded at all is "no reply", never a
                    // 0 µs latency (rows written before latencies could be null have a
                    // 0 there, with no reply and no lower bound).
                    let recorded = row.requests > 0 || row.latency_lower_bounds > 0;
                    let p99 = match row.p99_us.filter(|_| recorded) {
                        None => "no reply".to_owned(),
                        Some(p99) if row.latency_lower_bounds > 0 => {
                            format!("≥ {}", format_micros(p99))
                        }
                        Some(p99) => format_micros(p99),
                    };
                    let _ = write!(out, " {p99} | {} / {due} |", row.requests);
                }
                None => out.push_str(" — | — |"),
            }
        }
        out.push('\n');
    }
    let probe_connections = first.connections;
    if let Some(hog_n) = first.hog_n {
        let _ = writeln!(
            out,
            "\nHog phases: the hog connections loop `fib({hog_n})` while {probe_connections} probe connection(s) send \
             `fib(1)` at a fixed rate, open loop. Probe latency counts from each probe's due time; a probe that fell due \
             and was never sent or answered counts too, with the time it had waited when the phase ended (`≥`: the \
             true p99 is at least that). The sweep runs below, at and above the worker count: with as many hogs as \
             workers, a fixed pool is saturated by construction.\n"
        );
    }
}

/// Reads one of a row's CPU-per-reply figures.
type CpuPerReply = fn(&BeazleyRow) -> Option<f64>;

/// Best Rust server against best server of each other language under test: by rate, and
/// by server CPU per reply (which still tells them apart when the client sets the rate).
fn language_comparison(out: &mut String, rows: &[BeazleyRow], busiest: usize) {
    let at_busiest = |language: &str| -> Vec<&BeazleyRow> {
        rows.iter()
            .filter(|row| {
                row.language == language
                    && row.phase == Phase::Throughput
                    && row.connections == busiest
            })
            .collect()
    };
    let best_rate = |language: &str| {
        at_busiest(language)
            .into_iter()
            .max_by(|a, b| a.rps.total_cmp(&b.rps))
            .map(|row| (row.style.clone(), row.rps))
    };
    let least = |language: &str, cpu: CpuPerReply| {
        at_busiest(language)
            .into_iter()
            .filter_map(|row| cpu(row).map(|micros| (row.style.clone(), micros)))
            .min_by(|a, b| a.1.total_cmp(&b.1))
    };
    let mut languages: Vec<&str> = rows
        .iter()
        .map(|row| row.language.as_str())
        .filter(|language| *language != "rust" && *language != "c")
        .collect();
    languages.sort_unstable();
    languages.dedup();
    for language in languages {
        if let (Some((rust, rust_rate)), Some((other, other_rate))) =
            (best_rate("rust"), best_rate(language))
        {
            let _ = writeln!(
                out,
                "Best Rust server (`{rust}`) / best {language} server (`{other}`) at {busiest} connections: \
                 **{:.2}×** the rate.",
                rust_rate / other_rate
            );
        }
        let measures: [(&str, CpuPerReply); 2] = [
            ("Least server CPU per reply", |row| row.server_cpu_us),
            (
                "Least of it in user space, the server's own code without the kernel's socket work",
                |row| row.server_user_us,
            ),
        ];
        for (label, cpu) in measures {
            if let (Some((rust, rust_cpu)), Some((other, other_cpu))) =
                (least("rust", cpu), least(language, cpu))
            {
                let _ = writeln!(
                    out,
                    "{label}: `{rust}` {rust_cpu:.1} µs, `{other}` {other_cpu:.1} µs: \
                     **{:.1}×** less in Rust.",
                    other_cpu / rust_cpu
                );
            }
        }
        out.push('\n');
    }
}

fn tasks_section(out: &mut String, rows: &[TaskRow], files: &[String]) {
    out.push_str("| style | unit | N | spawn | wall | peak RSS | bytes per unit |\n|---|---|---:|---:|---:|---:|---:|\n");
    let mut notes = Vec::new();
    for row in rows {
        match &row.not_attempted {
            Some(reason) => {
                let _ = writeln!(
                    out,
                    "| `{}` | {} | {} | not attempted | | | |",
                    row.style, row.unit, row.n_tasks
                );
                notes.push(format!("`{}` at {}: {reason}", row.style, row.n_tasks));
            }
            None => {
                let _ = writeln!(
                    out,
                    "| `{}` | {} | {} | {} | {} | {} | {} |",
                    row.style,
                    row.unit,
                    row.n_tasks,
                    row.spawn_ms
                        .map_or_else(String::new, |ms| format!("{ms:.1} ms")),
                    row.wall_ms
                        .map_or_else(String::new, |ms| format!("{ms:.1} ms")),
                    row.peak_rss_bytes.map_or_else(String::new, |bytes| format!(
                        "{:.1} MiB",
                        bytes as f64 / f64::from(1 << 20)
                    )),
                    row.bytes_per_task
                        .map_or_else(String::new, |bytes| format!("{bytes:.0}")),
                );
            }
        }
    }
    out.push('\n');
    if !notes.is_empty() {
        out.push_str("Not attempted:\n\n");
        for note in notes {
            let _ = writeln!(out, "- {note}");
        }
        out.push('\n');
    }
    if files.iter().any(|file| file == TASKS_CHART) {
        let _ = writeln!(out, "![bytes per unit against units held]({TASKS_CHART})\n");
    }
}

pub(crate) fn format_micros(micros: u64) -> String {
    format_nanos(micros as f64 * 1e3)
}

/// `12.3`: bytes in MiB, for columns headed "(MiB)".
pub(crate) fn format_mib(bytes: u64) -> String {
    format!("{:.1}", bytes as f64 / f64::from(1 << 20))
}

/// Text that stays inside one markdown table cell: no column breaks, no line breaks.
pub(crate) fn table_text(text: &str) -> String {
    text.replace('|', "\\|").replace(['\r', '\n'], " ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::{result_rows, test_benchmark};

    fn warning(seq_ns: f64, parallel_ns: f64) -> String {
        let rows = result_rows(
            &[
                test_benchmark("fib_batch", "seq", "64x27", seq_ns),
                test_benchmark("fib_batch", "rayon", "64x27", parallel_ns),
            ],
            "seq",
        );
        let rows: Vec<&ResultRow> = rows.iter().collect();
        let mut out = String::new();
        disturbed_run_warning(&mut out, &rows, 2, "seq");
        out
    }

    fn gauge(evloop_ns: f64) -> String {
        let rows = result_rows(
            &[
                test_benchmark("fib_batch", "seq", "64x27", 100.0),
                test_benchmark("fib_batch", "evloop", "64x27", evloop_ns),
                test_benchmark("fib_batch", "rayon", "64x27", 50.0),
            ],
            "seq",
        );
        let rows: Vec<&ResultRow> = rows.iter().collect();
        let mut out = String::new();
        noise_gauge(&mut out, &rows, &["seq".to_owned(), "evloop".to_owned()]);
        out
    }

    #[test]
    fn the_single_threaded_styles_gauge_the_runs_noise() {
        let quiet = gauge(102.0);
        assert!(
            quiet.contains("Noise gauge at 64x27: `seq`, `evloop` run the same work on one thread; their medians are 2.0 % apart: differences"),
            "{quiet}"
        );
        let disturbed = gauge(125.0);
        assert!(
            disturbed.contains("25.0 % apart: **Disturbed run:**"),
            "{disturbed}"
        );
        // One single-threaded style alone gauges nothing.
        let mut out = String::new();
        let rows = result_rows(&[test_benchmark("fib_batch", "seq", "a", 1.0)], "seq");
        noise_gauge(
            &mut out,
            &rows.iter().collect::<Vec<_>>(),
            &["seq".to_owned()],
        );
        assert_eq!(out, "");
    }

    #[test]
    fn a_speedup_beyond_the_workers_marks_the_run_as_disturbed() {
        let out = warning(260.0, 100.0);
        assert!(
            out.contains("**Disturbed run:** `rayon` at 64x27 is 2.60× `seq` with 2 workers"),
            "{out}"
        );
        // Up to the workers, and a little over them for timer noise, is possible.
        assert_eq!(warning(200.0, 100.0), "");
        assert_eq!(warning(204.0, 100.0), "");
    }

    fn hog_row(style: &str, hogs: usize, answered: u64, due: u64, p99_us: u64) -> BeazleyRow {
        BeazleyRow {
            style: style.to_owned(),
            language: "rust".to_owned(),
            phase: Phase::Hog,
            connections: 4,
            rps: answered as f64 / 3.0,
            p50_us: Some(p99_us / 10),
            p99_us: Some(p99_us),
            max_us: Some(p99_us),
            requests: answered,
            errors: 0,
            failed: due - answered,
            due: Some(due),
            latency_lower_bounds: due - answered,
            server_cpu_us: None,
            server_user_us: None,
            client_threads: None,
            client_cpu_us: None,
            round_rps: Vec::new(),
            redis_benchmark_rps: None,
            hog_n: Some(35),
            hogs: Some(hogs),
            hog_requests: Some(10),
            arrangement: None,
            server_cpus: None,
            client_cpus: None,
            server_launcher: None,
            workers: None,
            sweep_point: false,
        }
    }

    #[test]
    fn the_hog_sweep_shows_every_count_and_what_was_never_answered() {
        let silent = BeazleyRow {
            p50_us: None,
            p99_us: None,
            max_us: None,
            latency_lower_bounds: 0,
            ..hog_row("python-asyncio", 1, 0, 600, 0)
        };
        let rows = [
            hog_row("tokio", 1, 600, 600, 150),
            hog_row("tokio", 2, 80, 600, 2_400_000),
            hog_row("evloop", 2, 600, 600, 90),
            silent,
        ];
        let mut out = String::new();
        hog_sweep_table(&mut out, &rows, &["tokio", "evloop", "python-asyncio"]);
        // A server that recorded no latency at all is "no reply" (`null` in its JSON).
        assert!(
            out.contains("| `python-asyncio` | no reply | 0 / 600 | — | — |"),
            "{out}"
        );
        assert!(
            out.contains("| server | 1 hogs: probe p99 | answered / due | 2 hogs: probe p99 | answered / due |"),
            "{out}"
        );
        // A stalled probe: most of what fell due was never answered, and its p99 is a
        // lower bound, marked as one.
        assert!(
            out.contains("| `tokio` | 150.0 µs | 600 / 600 | ≥ 2.40 s | 80 / 600 |"),
            "{out}"
        );
        assert!(
            out.contains("| `evloop` | — | — | 90.0 µs | 600 / 600 |"),
            "{out}"
        );
        assert!(out.contains("4 probe connection(s)"), "{out}");
    }
}
