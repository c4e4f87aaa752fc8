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
//! and for the criterion benches alike. [`sweep`] is the core-count sweep: which worker
//! counts `concbench measure` runs.

#![forbid(unsafe_code)]

pub mod capacity;
pub mod cpu;
pub mod engine;
pub mod process;
pub mod protocol;
pub mod rows;
pub mod stats;
pub mod suite;
pub mod sweep;
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
/// Two instruments join every round beside the styles ([`CohortLayout`]):
///
/// - a **replica** of the reference, a second worker process of the same benchmark:
///   its ratio to the reference, ideal 1.00, is the cohort's noise gauge;
/// - in the CPU groups, the **capacity probe** ([`capacity`]): its speedup over the
///   reference is the parallel capacity the host offered, and each style's time against
///   the probe's in the same round is its efficiency, which does not move when the host
///   gives the workers more or less of a core.
///
/// Each style's row carries its speedup over the reference (reference time ÷ style time
/// per round) and its efficiency, with their intervals, and its median wall and CPU
/// time per iteration.
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
    let capacity_id = BenchmarkId {
        style: capacity::CAPACITY_PROBE.to_owned(),
        ..first.clone()
    };
    let with_capacity =
        suite::find(&capacity_id).is_some_and(|(entry, case)| case.applies_to(entry).is_ok());
    let mut ids = cohort.to_vec();
    ids.push(cohort[reference_index].clone());
    if with_capacity {
        ids.push(capacity_id);
    }
    // A style may refuse this cohort's configuration when its worker starts (see
    // `worker::serve`): it is left out with its reason, the rest are measured. The
    // reference and the instruments must run.
    let mut workers = Vec::with_capacity(ids.len());
    let mut measured = Vec::with_capacity(cohort.len());
    let mut not_attempted = Vec::new();
    for (index, started) in start_each(program, &ids, Side::Only)?
        .into_iter()
        .enumerate()
    {
        match started {
            Ok(worker) => {
                if index < cohort.len() {
                    measured.push(cohort[index].clone());
                }
                workers.push(worker);
            }
            Err(reason) if index < cohort.len() && index != reference_index => {
                not_attempted.push(rows::NotAttempted {
                    style: cohort[index].style.clone(),
                    reason,
                });
            }
            Err(reason) => return Err(MeasureError::Unusable(reason)),
        }
    }
    let cohort = measured.as_slice();
    let reference_index = cohort
        .iter()
        .position(|id| id.style == reference)
        .unwrap_or(reference_index);
    let layout = CohortLayout::new(cohort.len(), reference_index, with_capacity);
    let mut iterations = Vec::with_capacity(workers.len());
    for worker in &mut workers {
        iterations.push(engine::calibrate(worker, plan.sample_target)?);
    }
    // The replica does exactly the reference's iterations, so the two samples are the
    // same work and their ratio is noise alone.
    iterations[layout.replica] = iterations[reference_index];
    let schedule = Schedule {
        design: Design::Cohort,
        pairs: layout.pairs.clone(),
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
    let mut row = cohort_row(cohort, reference, &layout, &iterations, &outcome);
    row.not_attempted = not_attempted;
    Ok(row)
}

/// Where each contender of a cohort run stands, and which ratios the run estimates.
///
/// Contenders `0..n_styles` are the cohort's styles, then the replica of the reference,
/// then the capacity probe when there is one. Every ratio is `time(numerator) ÷
/// time(denominator)` within a round ([`Pair`]).
#[derive(Debug, Clone, PartialEq)]
pub struct CohortLayout {
    /// The styles' count.
    pub n_styles: usize,
    /// The reference's index among the styles.
    pub reference: usize,
    /// The replica's index (`n_styles`).
    pub replica: usize,
    /// The capacity probe's index (`n_styles + 1`), when the cohort has one.
    pub capacity: Option<usize>,
    /// Every ratio estimated: speedups, the gauge, capacity and efficiencies.
    pub pairs: Vec<Pair>,
    /// Per style, its speedup's pair (reference ÷ style); `None` for the reference.
    speedup_pairs: Vec<Option<usize>>,
    /// Per style, its efficiency's pair (probe ÷ style); `None` without a probe.
    efficiency_pairs: Vec<Option<usize>>,
    /// Reference ÷ replica.
    replica_pair: usize,
    /// Reference ÷ probe.
    capacity_pair: Option<usize>,
}

impl CohortLayout {
    /// The layout of `n_styles` styles, the reference at `reference`, with or without
    /// the capacity probe.
    pub fn new(n_styles: usize, reference: usize, with_capacity: bool) -> Self {
        let replica = n_styles;
        let capacity = with_capacity.then_some(n_styles + 1);
        let mut pairs = Vec::new();
        let mut add = |numerator, denominator| {
            pairs.push(Pair {
                numerator,
                denominator,
            });
            pairs.len() - 1
        };
        let speedup_pairs = (0..n_styles)
            .map(|index| (index != reference).then(|| add(reference, index)))
            .collect();
        let replica_pair = add(reference, replica);
        let capacity_pair = capacity.map(|probe| add(reference, probe));
        let efficiency_pairs = (0..n_styles)
            .map(|index| capacity.map(|probe| add(probe, index)))
            .collect();
        Self {
            n_styles,
            reference,
            replica,
            capacity,
            pairs,
            speedup_pairs,
            efficiency_pairs,
            replica_pair,
            capacity_pair,
        }
    }

    /// How many contenders a round visits.
    pub fn n_contenders(&self) -> usize {
        self.n_styles + 1 + usize::from(self.capacity.is_some())
    }
}

/// The cohort's row from a run laid out as `layout`.
pub fn cohort_row(
    cohort: &[BenchmarkId],
    reference: &str,
    layout: &CohortLayout,
    iterations: &[u64],
    outcome: &engine::RunOutcome,
) -> CohortRow {
    let interval_of = |pair: Option<usize>| pair.and_then(|pair| outcome.pairs[pair].interval);
    let row_of = |index: usize, style: &str| {
        let samples = &outcome.samples[index];
        let wall: Vec<f64> = samples.iter().map(|sample| sample.wall_ns).collect();
        let cpu: Vec<f64> = samples.iter().map(|sample| sample.cpu_ns).collect();
        let utilisation: Vec<f64> = samples
            .iter()
            .map(|sample| sample.cpu_ns / sample.wall_ns)
            .collect();
        StyleRow {
            style: style.to_owned(),
            single_threaded: catalog::find(style)
                .is_some_and(|entry| entry.cpu_threads == CpuThreads::One),
            iterations_per_sample: iterations[index],
            samples: samples.len(),
            wall_ns: stats::median(&wall).unwrap_or(f64::NAN),
            cpu_ns: stats::median(&cpu).unwrap_or(f64::NAN),
            cpu_per_wall: stats::median(&utilisation).unwrap_or(f64::NAN),
            speedup: None,
            efficiency: None,
        }
    };
    let styles: Vec<StyleRow> = cohort
        .iter()
        .enumerate()
        .map(|(index, id)| StyleRow {
            speedup: interval_of(layout.speedup_pairs[index]),
            efficiency: interval_of(layout.efficiency_pairs[index]),
            ..row_of(index, &id.style)
        })
        .collect();
    let capacity = layout.capacity.map(|probe| StyleRow {
        speedup: interval_of(layout.capacity_pair),
        ..row_of(probe, capacity::CAPACITY_PROBE)
    });
    let replica = interval_of(Some(layout.replica_pair));
    let gauge = NoiseGauge {
        replica,
        spread: replica.map_or(f64::NAN, |interval| (interval.point - 1.0).abs()),
        widest_half_width: replica.map_or(f64::NAN, |interval| interval.relative_half_width()),
        styles: styles
            .iter()
            .filter(|row| row.single_threaded && row.style != reference)
            .map(|row| row.style.clone())
            .collect(),
    };
    CohortRow {
        group: cohort
            .first()
            .map(|id| id.group.clone())
            .unwrap_or_default(),
        parameter: cohort
            .first()
            .map(|id| id.parameter.clone())
            .unwrap_or_default(),
        reference: reference.to_owned(),
        rounds: outcome.rounds,
        stop: outcome.stop,
        elapsed_s: outcome.elapsed.as_secs_f64(),
        styles,
        capacity,
        gauge: Some(gauge),
        not_attempted: Vec::new(),
    }
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
        address_layout: process::address_layout().to_owned(),
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
    start_each(program, ids, side)?
        .into_iter()
        .map(|started| started.map_err(MeasureError::Unusable))
        .collect()
}

/// Starts a worker per benchmark, all at once, and waits for each: ready, or the
/// reason it does not run here (`Err`, its worker already gone). A worker that fails
/// is an error.
fn start_each(
    program: &WorkerProgram,
    ids: &[BenchmarkId],
    side: Side,
) -> Result<Vec<Result<WorkerProcess, String>>, MeasureError> {
    let mut workers = Vec::with_capacity(ids.len());
    for id in ids {
        workers.push(program.spawn(id, side)?);
    }
    let mut started = Vec::with_capacity(workers.len());
    for mut worker in workers {
        started.push(match worker.wait_ready()? {
            Readiness::Ready => Ok(worker),
            Readiness::Unknown(message) => Err(message),
        });
    }
    Ok(started)
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;
    use std::rc::Rc;

    use super::*;
    use engine::Sample;

    /// A host with two cores whose speed drifts (±30 %, a sine over virtual time) and
    /// whose second core is worth `capacity − 1` of the first.
    struct Host {
        clock: Cell<f64>,
        capacity: f64,
    }

    impl Host {
        fn run(&self, seconds_at_full_speed: f64) -> Duration {
            let now = self.clock.get();
            let slowdown = 1.0 + 0.3 * (2.0 * std::f64::consts::PI * now / 7.0).sin();
            let took = seconds_at_full_speed * slowdown;
            self.clock.set(now + took);
            Duration::from_secs_f64(took)
        }
    }

    /// One contender on the host: `work` seconds of sequential work per iteration, of
    /// which it turns `efficiency` of the host's capacity into speed (`None`: it runs on
    /// one thread).
    struct OnHost {
        host: Rc<Host>,
        work: f64,
        efficiency: Option<f64>,
    }

    impl Contender for OnHost {
        fn label(&self) -> String {
            format!("{:?}", self.efficiency)
        }

        fn sample(&mut self, iterations: u64) -> Result<Sample, MeasureError> {
            let speed = self
                .efficiency
                .map_or(1.0, |efficiency| self.host.capacity * efficiency);
            let wall = self.host.run(self.work * iterations as f64 / speed);
            Ok(Sample { wall, cpu: wall })
        }
    }

    /// seq, evloop (3 % slower on one thread), rayon (95 % efficient), the replica and
    /// the probe, on a host of the given capacity.
    fn cohort_on(capacity: f64) -> CohortRow {
        let host = Rc::new(Host {
            clock: Cell::new(0.0),
            capacity,
        });
        let on_host = |work: f64, efficiency: Option<f64>| OnHost {
            host: Rc::clone(&host),
            work,
            efficiency,
        };
        let mut contenders = [
            on_host(0.1, None),
            on_host(0.103, None),
            on_host(0.1, Some(0.95)),
            on_host(0.1, None),
            on_host(0.1, Some(1.0)),
        ];
        let ids: Vec<BenchmarkId> = ["seq", "evloop", "rayon"]
            .map(|style| BenchmarkId {
                group: "fib_batch".into(),
                style: style.into(),
                parameter: "64x27".into(),
            })
            .to_vec();
        let layout = CohortLayout::new(ids.len(), 0, true);
        assert_eq!(layout.n_contenders(), contenders.len());
        let iterations = vec![1; contenders.len()];
        let schedule = Schedule {
            design: Design::Cohort,
            pairs: layout.pairs.clone(),
            iterations: iterations.clone(),
            stopping: Stopping {
                max_rounds: 60,
                ..Stopping::default()
            },
            seed: 11,
        };
        let mut contenders: Vec<&mut dyn Contender> = contenders
            .iter_mut()
            .map(|contender| contender as &mut dyn Contender)
            .collect();
        let outcome = engine::run(&mut contenders, &schedule, &mut |_| {}).expect("runs");
        cohort_row(&ids, "seq", &layout, &iterations, &outcome)
    }

    fn point(interval: Option<stats::Interval>) -> f64 {
        interval.expect("an interval").point
    }

    #[test]
    fn efficiency_holds_when_the_hosts_capacity_changes_and_the_speedup_does_not() {
        let full = cohort_on(1.9);
        let starved = cohort_on(1.6);
        let rayon = |row: &CohortRow| row.styles[2].clone();
        // The speedup over seq moves with the host: 1.9 × 0.95 against 1.6 × 0.95.
        let (fast, slow) = (point(rayon(&full).speedup), point(rayon(&starved).speedup));
        assert!((fast - 1.805).abs() < 0.02, "{fast}");
        assert!((slow - 1.52).abs() < 0.02, "{slow}");
        // The efficiency does not.
        for row in [&full, &starved] {
            let efficiency = point(rayon(row).efficiency);
            assert!((efficiency - 0.95).abs() < 0.01, "{efficiency}: {row:?}");
        }
        // The probe reports the capacity; seq's efficiency is its reciprocal.
        for (row, capacity) in [(&full, 1.9), (&starved, 1.6)] {
            let probe = row.capacity.as_ref().expect("a probe");
            assert_eq!(probe.style, capacity::CAPACITY_PROBE);
            assert!((point(probe.speedup) - capacity).abs() < 0.02, "{probe:?}");
            assert!((point(row.styles[0].efficiency) * capacity - 1.0).abs() < 0.01);
        }
    }

    #[test]
    fn the_replica_gauges_noise_and_the_single_threaded_styles_keep_their_cost() {
        let row = cohort_on(1.9);
        let gauge = row.gauge.expect("a gauge");
        assert!(gauge.spread < 0.005, "{gauge:?}");
        assert_eq!(gauge.styles, ["evloop"]);
        // evloop is 3 % slower than seq by construction: the gauge does not hide it.
        let evloop = point(row.styles[1].speedup);
        assert!((evloop - 1.0 / 1.03).abs() < 0.005, "{evloop}");
        assert_eq!(row.styles[0].speedup, None);
    }

    #[test]
    fn a_cohort_without_a_probe_has_no_efficiencies() {
        let layout = CohortLayout::new(3, 1, false);
        assert_eq!(layout.n_contenders(), 4);
        assert_eq!(layout.replica, 3);
        // Two speedups and the gauge.
        assert_eq!(layout.pairs.len(), 3);
        assert!(layout.efficiency_pairs.iter().all(Option::is_none));
        assert_eq!(layout.speedup_pairs[1], None);
    }
}
