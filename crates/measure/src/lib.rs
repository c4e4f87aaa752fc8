//! The measurement engine: numbers that hold on a small, shared, noisy machine.
//!
//! criterion samples each benchmark contiguously, one style after another; a shared
//! host's speed drifts over seconds, so each style is measured on a different machine.
//! This engine pairs its samples instead:
//!
//! - every benchmark runs in a **worker process of its own** ([`process`]), started from
//!   a `concbench` binary's hidden `measure-worker` subcommand and built once, so no
//!   style's runtime or threads live beside another's;
//! - the parent runs **rounds** ([`engine`]); each round visits every contender in a
//!   freshly shuffled order (the seed is recorded) and asks it for one sample of `k`
//!   iterations, `k` calibrated so a sample lasts about 90 ms. Only one contender runs
//!   at a time; the others are blocked on a read of their stdin;
//! - each sample returns its wall time and the worker's CPU time (user + system, its
//!   child processes included, [`cpu`]); the worker checks every answer after the
//!   sample, outside the timed part ([`worker`]);
//! - ratios are taken **within a round** and summarised over rounds with a trimmed mean
//!   in log space and a bootstrap interval that resamples whole rounds ([`stats`]); a
//!   run stops when every interval is narrower than a target, or its budget ends, and
//!   says which.
//!
//! [`measure_cohort`] compares the styles of one workload and size with a reference
//! style (the report's ratio columns); [`compare`] compares two builds of the same
//! benchmarks, base and head alternating (the CI gate). [`rows`] is the JSON they
//! write, with a schema version. [`suite`] defines the benchmarks once, for the engine
//! and for the criterion benches alike.

#![forbid(unsafe_code)]

pub mod cpu;
pub mod engine;
pub mod process;
pub mod protocol;
pub mod rows;
pub mod stats;
pub mod suite;
pub mod worker;

use std::path::PathBuf;
use std::time::Duration;

use engine::{Contender, Design, Pair, Progress, Schedule};
use process::{Readiness, Side, WorkerProcess, WorkerProgram};
use rows::{CohortRow, CompareRow, CompareRun, NoiseGauge, NotCompared, StyleRow};
use stats::Stopping;
use suite::BenchmarkId;
use workloads::CpuThreads;

/// Why the engine could not measure.
#[derive(Debug, thiserror::Error)]
pub enum MeasureError {
    /// A worker program could not be started.
    #[error("cannot start {}: {source}", program.display())]
    Spawn {
        /// The program.
        program: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A worker failed: its style failed or answered wrongly, it died, hung, or broke
    /// the protocol.
    #[error("{0}")]
    Worker(String),
    /// The input cannot be measured: a missing binary, a build without the engine, no
    /// benchmark in common, a reference style that is not in the cohort.
    #[error("{0}")]
    Unusable(String),
    /// Reading or writing failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: &'static str,
        /// The underlying error.
        source: std::io::Error,
    },
}

impl MeasureError {
    /// Wraps an I/O error with what was being done.
    pub fn io(context: &'static str) -> impl FnOnce(std::io::Error) -> Self {
        move |source| Self::Io { context, source }
    }
}

/// How a run samples and when it stops.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Plan {
    /// The stopping rule.
    pub stopping: Stopping,
    /// The seed of every shuffle and bootstrap.
    pub seed: u64,
    /// How long one sample should last.
    pub sample_target: Duration,
}

/// Measures the styles of one cohort (one workload at one size) against `reference`,
/// each style in a worker process of `program`, in shuffled, paired rounds.
///
/// Each style's row carries its speedup over the reference (reference time ÷ style time
/// per round) with its interval, and its median wall and CPU time per iteration. The
/// styles whose CPU work runs on one thread form the noise gauge: they do the
/// reference's sequential work, so their speedup's ideal is 1.00.
pub fn measure_cohort(
    program: &WorkerProgram,
    cohort: &[BenchmarkId],
    reference: &str,
    plan: &Plan,
    progress: &mut dyn FnMut(&Progress),
) -> Result<CohortRow, MeasureError> {
    let Some(first) = cohort.first() else {
        return Err(MeasureError::Unusable("an empty cohort".into()));
    };
    let reference_index = cohort
        .iter()
        .position(|id| id.style == reference)
        .ok_or_else(|| {
            MeasureError::Unusable(format!(
                "the reference style `{reference}` does not run {}",
                first.cohort()
            ))
        })?;
    let mut workers = start_all(program, cohort, Side::Only)?;
    let mut iterations = Vec::with_capacity(workers.len());
    for worker in &mut workers {
        iterations.push(engine::calibrate(worker, plan.sample_target)?);
    }
    let pairs: Vec<Pair> = (0..cohort.len())
        .filter(|&index| index != reference_index)
        .map(|index| Pair {
            numerator: reference_index,
            denominator: index,
        })
        .collect();
    let schedule = Schedule {
        design: Design::Cohort,
        pairs: pairs.clone(),
        iterations: iterations.clone(),
        stopping: plan.stopping,
        seed: plan.seed,
    };
    let mut contenders: Vec<&mut dyn Contender> = workers
        .iter_mut()
        .map(|worker| worker as &mut dyn Contender)
        .collect();
    let outcome = engine::run(&mut contenders, &schedule, progress)?;
    drop(contenders);
    drop(workers);

    let mut styles = Vec::with_capacity(cohort.len());
    for (index, id) in cohort.iter().enumerate() {
        let samples = &outcome.samples[index];
        let wall: Vec<f64> = samples.iter().map(|sample| sample.wall_ns).collect();
        let cpu: Vec<f64> = samples.iter().map(|sample| sample.cpu_ns).collect();
        let utilisation: Vec<f64> = samples
            .iter()
            .map(|sample| sample.cpu_ns / sample.wall_ns)
            .collect();
        let pair = pairs.iter().position(|pair| pair.denominator == index);
        styles.push(StyleRow {
            style: id.style.clone(),
            single_threaded: catalog::find(&id.style)
                .is_some_and(|entry| entry.cpu_threads == CpuThreads::One),
            iterations_per_sample: iterations[index],
            samples: samples.len(),
            wall_ns: stats::median(&wall).unwrap_or(f64::NAN),
            cpu_ns: stats::median(&cpu).unwrap_or(f64::NAN),
            cpu_per_wall: stats::median(&utilisation).unwrap_or(f64::NAN),
            speedup: pair.and_then(|pair| outcome.pairs[pair].interval),
        });
    }
    let gauge_rows: Vec<&StyleRow> = styles
        .iter()
        .filter(|row| row.single_threaded && row.style != reference)
        .collect();
    let gauge = (!gauge_rows.is_empty()
        && catalog::find(reference).is_some_and(|entry| entry.cpu_threads == CpuThreads::One))
    .then(|| NoiseGauge {
        styles: gauge_rows.iter().map(|row| row.style.clone()).collect(),
        spread: gauge_rows
            .iter()
            .filter_map(|row| row.speedup)
            .map(|interval| (interval.point - 1.0).abs())
            .fold(0.0, f64::max),
        widest_half_width: gauge_rows
            .iter()
            .filter_map(|row| row.speedup)
            .map(|interval| interval.relative_half_width())
            .fold(0.0, f64::max),
    });
    Ok(CohortRow {
        group: first.group.clone(),
        parameter: first.parameter.clone(),
        reference: reference.to_owned(),
        rounds: outcome.rounds,
        stop: outcome.stop,
        elapsed_s: outcome.elapsed.as_secs_f64(),
        styles,
        gauge,
    })
}

/// Compares two builds on the benchmarks of `groups` that both run: a worker of each
/// build per benchmark, base and head sampled back to back in alternating order, pairs
/// in shuffled order each round; the change is head ÷ base − 1 per round, with its
/// interval. Benchmarks only one build runs are listed as not compared.
pub fn compare(
    base: &WorkerProgram,
    head: &WorkerProgram,
    groups: &str,
    plan: &Plan,
    progress: &mut dyn FnMut(&Progress),
) -> Result<CompareRun, MeasureError> {
    let base_list = base.list(groups)?;
    let head_list = head.list(groups)?;
    let mut ids = Vec::new();
    let mut not_compared = Vec::new();
    for listed in &head_list {
        let in_base = base_list.iter().find(|other| other.id == listed.id);
        let reason = match (in_base, &listed.skipped) {
            (None, _) => Some("not in the base build".to_owned()),
            (_, Some(reason)) => Some(format!("head: {reason}")),
            (Some(base_listed), None) => base_listed
                .skipped
                .as_ref()
                .map(|reason| format!("base: {reason}")),
        };
        match (reason, BenchmarkId::parse(&listed.id)) {
            (None, Some(id)) => ids.push(id),
            (Some(reason), _) => not_compared.push(NotCompared {
                id: listed.id.clone(),
                reason,
            }),
            (None, None) => not_compared.push(NotCompared {
                id: listed.id.clone(),
                reason: "not a group/style/parameter id".into(),
            }),
        }
    }
    for listed in base_list
        .iter()
        .filter(|listed| !head_list.iter().any(|other| other.id == listed.id))
    {
        not_compared.push(NotCompared {
            id: listed.id.clone(),
            reason: "not in the head build".into(),
        });
    }
    // Only real skips are worth a line; n/a cells are the matrix's business.
    not_compared.retain(|row| !row.reason.contains("n/a:"));
    if ids.is_empty() {
        return Err(MeasureError::Unusable(format!(
            "base and head run no benchmark of `{groups}` in common"
        )));
    }

    let mut base_workers = start_all(base, &ids, Side::Base)?;
    let mut head_workers = start_all(head, &ids, Side::Head)?;
    let mut iterations = Vec::with_capacity(ids.len() * 2);
    for (base_worker, head_worker) in base_workers.iter_mut().zip(head_workers.iter_mut()) {
        // The base decides k; the head does the same number of iterations, after the
        // same two warm-up samples.
        let k = engine::calibrate(base_worker, plan.sample_target)?;
        head_worker.sample(1)?;
        if k > 1 {
            head_worker.sample(k)?;
        }
        iterations.extend([k, k]);
    }
    let mut contenders: Vec<&mut dyn Contender> = Vec::with_capacity(ids.len() * 2);
    for (base_worker, head_worker) in base_workers.iter_mut().zip(head_workers.iter_mut()) {
        contenders.push(base_worker);
        contenders.push(head_worker);
    }
    let pairs: Vec<Pair> = (0..ids.len())
        .map(|index| Pair {
            numerator: 2 * index + 1,
            denominator: 2 * index,
        })
        .collect();
    let schedule = Schedule {
        design: Design::AbPairs,
        pairs,
        iterations: iterations.clone(),
        stopping: plan.stopping,
        seed: plan.seed,
    };
    let outcome = engine::run(&mut contenders, &schedule, progress)?;
    drop(contenders);
    drop(base_workers);
    drop(head_workers);

    let median_of = |index: usize, cpu: bool| {
        let values: Vec<f64> = outcome.samples[index]
            .iter()
            .map(|sample| if cpu { sample.cpu_ns } else { sample.wall_ns })
            .collect();
        stats::median(&values).unwrap_or(f64::NAN)
    };
    let rows = ids
        .iter()
        .enumerate()
        .map(|(index, id)| {
            let pair = &outcome.pairs[index];
            CompareRow {
                id: id.to_string(),
                rounds: pair.log_ratios.len(),
                iterations_per_sample: iterations[2 * index],
                base_ns: median_of(2 * index, false),
                head_ns: median_of(2 * index + 1, false),
                base_cpu_ns: median_of(2 * index, true),
                head_cpu_ns: median_of(2 * index + 1, true),
                change: pair.interval.map(|interval| interval.as_change()),
                stop: pair.stop,
            }
        })
        .collect();
    Ok(CompareRun {
        schema_version: rows::SCHEMA_VERSION,
        base: base.program.display().to_string(),
        head: head.program.display().to_string(),
        seed: plan.seed,
        workers: head.workers.get(),
        stopping: plan.stopping,
        rounds: outcome.rounds,
        stop: outcome.stop,
        elapsed_s: outcome.elapsed.as_secs_f64(),
        rows,
        not_compared,
    })
}

/// Starts a worker per benchmark, all at once (they build their styles in parallel),
/// then waits for each to be ready. A benchmark the build does not run is unusable
/// input here: callers ask the build's list first.
fn start_all(
    program: &WorkerProgram,
    ids: &[BenchmarkId],
    side: Side,
) -> Result<Vec<WorkerProcess>, MeasureError> {
    let mut workers = Vec::with_capacity(ids.len());
    for id in ids {
        workers.push(program.spawn(id, side)?);
    }
    for worker in &mut workers {
        if let Readiness::Unknown(message) = worker.wait_ready()? {
            return Err(MeasureError::Unusable(message));
        }
    }
    Ok(workers)
}
