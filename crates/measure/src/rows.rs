//! The engine's JSON rows, written by `concbench measure` and `concbench compare` and
//! read by `concbench report`.
//!
//! Schema version 2 (bump [`SCHEMA_VERSION`] on any change a reader would notice; 2
//! added the capacity probe, the efficiencies and the replica gauge):
//!
//! - [`MeasureRun`]: `schema_version`, `command`, `seed`, `workers`, `stopping`
//!   (`target`, `min_rounds`, `max_rounds`, `budget` in seconds), `sample_target_ms`,
//!   `address_layout` (`fixed`, or `randomized: <why>`), `recorded_at` (Unix seconds),
//!   `cohorts`: a list of [`CohortRow`];
//! - [`CohortRow`]: `group`, `parameter`, `reference`, `rounds`, `stop`
//!   (`converged` | `budget` | `max_rounds`), `elapsed_s`, `styles` ([`StyleRow`]),
//!   `capacity` (the capacity probe as a [`StyleRow`] whose `speedup` is the parallel
//!   capacity the host offered, reference time ÷ probe time; `null` outside the CPU
//!   groups), `gauge` ([`NoiseGauge`]);
//! - [`StyleRow`]: `style`, `single_threaded`, `iterations_per_sample`, `samples`,
//!   `wall_ns` and `cpu_ns` (medians per iteration), `cpu_per_wall` (median CPU ÷ wall:
//!   cores kept busy; far above the useful work's share means spinning), `speedup`
//!   (reference time ÷ style time, `{point, lower, upper}` with a 95 % interval, `null`
//!   for the reference itself), `efficiency` (probe time ÷ style time, paired the same
//!   way: the share of the host's parallel capacity the style turned into speed; `null`
//!   without a probe);
//! - [`NoiseGauge`]: `replica` (reference time ÷ the time of a second worker process of
//!   the reference, ideal 1.00), `spread` (`|replica − 1|`), `widest_half_width` (the
//!   replica interval's), `styles` (the single-threaded styles, whose distance from 1.00
//!   beyond the gauge is their own per-task cost);
//! - [`CompareRun`]: `schema_version`, `base`, `head` (binaries), `seed`, `workers`,
//!   `stopping`, `address_layout`, `rounds`, `stop`, `elapsed_s`, `rows` ([`CompareRow`]), `not_compared`
//!   ([`NotCompared`]);
//! - [`CompareRow`]: `id`, `rounds`, `iterations_per_sample`, `base_ns`, `head_ns`,
//!   `base_cpu_ns`, `head_cpu_ns` (medians per iteration), `change` (head ÷ base − 1,
//!   `{point, lower, upper}`, `+0.05` is 5 % slower), `stop`.

use serde::{Deserialize, Serialize};

use crate::stats::{Interval, StopReason, Stopping};

/// The version of every row type here.
pub const SCHEMA_VERSION: u32 = 2;

/// The file, in the scenarios' results directory, that `concbench measure` writes.
pub const MEASURE_ROWS: &str = "measure.json";

/// One `concbench measure` run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MeasureRun {
    /// [`SCHEMA_VERSION`].
    pub schema_version: u32,
    /// The command line that produced it.
    pub command: String,
    /// The seed of every shuffle and bootstrap.
    pub seed: u64,
    /// Workers per style.
    pub workers: usize,
    /// The stopping rule every cohort ran under.
    pub stopping: Stopping,
    /// The aimed length of one sample, milliseconds.
    pub sample_target_ms: f64,
    /// How the workers were laid out in memory ([`crate::process::address_layout`]):
    /// `fixed`, or `randomized: <why>`.
    #[serde(default)]
    pub address_layout: String,
    /// When it ended, Unix seconds.
    pub recorded_at: u64,
    /// One row per workload and size.
    pub cohorts: Vec<CohortRow>,
}

/// The styles of one workload at one size, measured together.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CohortRow {
    /// The workload.
    pub group: String,
    /// The size.
    pub parameter: String,
    /// The style every speedup is relative to.
    pub reference: String,
    /// Rounds run.
    pub rounds: usize,
    /// Why it stopped.
    pub stop: StopReason,
    /// Seconds in rounds.
    pub elapsed_s: f64,
    /// Every style, in catalog order.
    pub styles: Vec<StyleRow>,
    /// The capacity probe ([`crate::capacity`]): its `speedup` is the parallel capacity
    /// the host offered in this run; `None` outside the CPU groups.
    pub capacity: Option<StyleRow>,
    /// The reference against a replica of itself: the run's noise.
    pub gauge: Option<NoiseGauge>,
}

/// One style in a cohort.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StyleRow {
    /// The style.
    pub style: String,
    /// Whether its CPU work runs on one thread ([`workloads::CpuThreads::One`]).
    pub single_threaded: bool,
    /// Iterations per sample, calibrated once.
    pub iterations_per_sample: u64,
    /// Samples taken.
    pub samples: usize,
    /// Median wall time per iteration, nanoseconds.
    pub wall_ns: f64,
    /// Median CPU time per iteration (user + system, child processes included), ns.
    pub cpu_ns: f64,
    /// Median CPU time ÷ wall time of its samples.
    pub cpu_per_wall: f64,
    /// Reference time ÷ this style's time, paired per round; `None` for the reference.
    pub speedup: Option<Interval>,
    /// Capacity probe time ÷ this style's time, paired per round: the share of what the
    /// host offered that the style used. `None` without a probe.
    pub efficiency: Option<Interval>,
}

/// The run's noise, measured: the reference against a second worker process of the
/// same benchmark, the same work sampled in the same rounds, so its ideal ratio is 1.00
/// exactly and any distance from it is the host's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NoiseGauge {
    /// Reference time ÷ replica time, with its interval; `None` with fewer than two rounds.
    pub replica: Option<Interval>,
    /// `|replica − 1|`.
    pub spread: f64,
    /// The replica interval's relative half-width.
    pub widest_half_width: f64,
    /// The single-threaded styles besides the reference ([`workloads::CpuThreads::One`]):
    /// in a CPU group they do the reference's work on one thread, so their distance from
    /// 1.00 beyond the gauge is their own cost per task or callback.
    pub styles: Vec<String>,
}

/// One `concbench compare` run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CompareRun {
    /// [`SCHEMA_VERSION`].
    pub schema_version: u32,
    /// The base binary.
    pub base: String,
    /// The head binary.
    pub head: String,
    /// The seed of every shuffle and bootstrap.
    pub seed: u64,
    /// Workers per style.
    pub workers: usize,
    /// The stopping rule.
    pub stopping: Stopping,
    /// How the workers were laid out in memory, as in [`MeasureRun`].
    #[serde(default)]
    pub address_layout: String,
    /// Rounds run (the longest pair's).
    pub rounds: usize,
    /// Why the run stopped.
    pub stop: StopReason,
    /// Seconds in rounds.
    pub elapsed_s: f64,
    /// One row per benchmark both builds ran.
    pub rows: Vec<CompareRow>,
    /// Benchmarks only one build runs here, and why.
    pub not_compared: Vec<NotCompared>,
}

/// One benchmark of a comparison.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CompareRow {
    /// `group/style/parameter`.
    pub id: String,
    /// Rounds this pair was sampled in.
    pub rounds: usize,
    /// Iterations per sample, the same for both sides.
    pub iterations_per_sample: u64,
    /// The base's median wall time per iteration, ns.
    pub base_ns: f64,
    /// The head's median wall time per iteration, ns.
    pub head_ns: f64,
    /// The base's median CPU time per iteration, ns.
    pub base_cpu_ns: f64,
    /// The head's median CPU time per iteration, ns.
    pub head_cpu_ns: f64,
    /// Head ÷ base − 1 with its interval; `None` with fewer than two rounds.
    pub change: Option<Interval>,
    /// Why this pair stopped being sampled.
    pub stop: StopReason,
}

/// A benchmark left out of a comparison.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotCompared {
    /// `group/style/parameter`.
    pub id: String,
    /// Why.
    pub reason: String,
}
