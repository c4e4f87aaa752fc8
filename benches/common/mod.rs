//! What the benches share: the style configuration, and one checked timing loop.

#![allow(dead_code)] // each bench uses a different subset

use std::fmt::Display;
use std::time::{Duration, Instant};

use criterion::BenchmarkGroup;
use criterion::measurement::WallTime;
use measure::suite::Case;
use workloads::{Style, StyleConfig, StyleEntry, StyleError, Support, Workload};

/// The same configuration for every style: the worker count from the environment and
/// this package's binary as the worker process.
pub(crate) fn style_config() -> StyleConfig {
    let workers = StyleConfig::default_workers().unwrap_or_else(|error| panic!("{error}"));
    StyleConfig::new(workers).with_worker_command(catalog::worker_command(
        env!("CARGO_BIN_EXE_concbench").as_ref(),
    ))
}

/// Records how this bench suite was run, for `concbench report` (only when actually
/// benchmarking: `cargo test` runs each bench once without `--bench`, and leaves no
/// record). Idempotent: every group of a suite may call it.
pub(crate) fn record_run(suite: &str) {
    save_run_rows(suite, None::<&()>);
}

/// [`record_run`], with the rows the suite measured beside criterion's times, saved as
/// `bench-<suite>.json` for `concbench report`.
pub(crate) fn save_run_rows(suite: &str, rows: Option<&impl serde::Serialize>) {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if !args.iter().any(|arg| arg == "--bench") {
        return;
    }
    let extra: Vec<&str> = args
        .iter()
        .map(String::as_str)
        .filter(|arg| *arg != "--bench")
        .collect();
    let mut command = format!("cargo bench --bench {suite}");
    if !extra.is_empty() {
        command.push_str(" -- ");
        command.push_str(&extra.join(" "));
    }
    let workers = StyleConfig::default_workers().map_or(0, |workers| workers.get());
    let meta = scenarios::RunMeta::now(command, workers);
    if let Err(error) = scenarios::save_run(&format!("bench-{suite}"), &meta, rows) {
        eprintln!("cannot record the bench run: {error}");
    }
}

/// Builds `entry` for `workload`, or says why it is skipped and returns `None`.
pub(crate) fn build(entry: &StyleEntry, workload: Workload) -> Option<Box<dyn Style>> {
    if let Support::NotApplicable(reason) = (entry.support)(workload) {
        eprintln!("{workload}/{}: n/a: {reason}", entry.name);
        return None;
    }
    let style = (entry.build)(&style_config())
        .unwrap_or_else(|error| panic!("{}: cannot build the style: {error}", entry.name));
    Some(style)
}

/// The criterion group of `workload`: every style at every size of
/// [`measure::suite::Case::all`], the cases and checks the measurement engine runs too.
/// A style is built once per group; a (style, size) it cannot run here is skipped with
/// the reason.
pub(crate) fn bench_workload(criterion: &mut criterion::Criterion, workload: Workload) {
    let cases = Case::all(workload);
    let mut group = criterion.benchmark_group(workload.name());
    group.sampling_mode(criterion::SamplingMode::Flat);
    for entry in catalog::STYLES {
        let Some(style) = build(entry, workload) else {
            continue;
        };
        for case in &cases {
            if let Err(reason) = case.applies_to(entry) {
                eprintln!("{workload}/{}/{}: {reason}", entry.name, case.parameter());
                continue;
            }
            if let Some(elements) = case.elements() {
                group.throughput(criterion::Throughput::Elements(elements));
            }
            bench_checked(
                &mut group,
                entry,
                case.parameter(),
                || case.run(&*style),
                |answer| case.check(answer),
            );
        }
    }
    group.finish();
}

/// Times `run` as the benchmark `<entry>/<parameter>` of `group`, checking one answer
/// before timing and every answer after its timed iteration; a wrong answer panics,
/// failing the bench.
pub(crate) fn bench_checked<T, E: Display>(
    group: &mut BenchmarkGroup<'_, WallTime>,
    entry: &StyleEntry,
    parameter: impl Display,
    run: impl Fn() -> Result<T, StyleError>,
    check: impl Fn(&T) -> Result<(), E>,
) {
    let name = entry.name;
    let run_checked = || {
        let start = Instant::now();
        let answer = run();
        let elapsed = start.elapsed();
        let answer = answer.unwrap_or_else(|error| panic!("{name}/{parameter}: {error}"));
        if let Err(wrong) = check(&answer) {
            panic!("{name}/{parameter} gave a wrong answer: {wrong}");
        }
        elapsed
    };
    run_checked();
    group.bench_function(criterion::BenchmarkId::new(name, &parameter), |bencher| {
        bencher.iter_custom(|iters| (0..iters).map(|_| run_checked()).sum::<Duration>());
    });
}
