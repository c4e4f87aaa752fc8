//! The engine's JSON rows, written by `concbench measure` and `concbench compare` and
//! read by `concbench report`.
//!
//! Schema version 1 (bump [`SCHEMA_VERSION`] on any change a reader would notice):
//!
//! - [`MeasureRun`]: `schema_version`, `command`, `seed`, `workers`, `stopping`
//!   (`target`, `min_rounds`, `max_rounds`, `budget` in seconds), `sample_target_ms`,
//!   `recorded_at` (Unix seconds), `cohorts`: a list of [`CohortRow`];
//! - [`CohortRow`]: `group`, `parameter`, `reference`, `rounds`, `stop`
//!   (`converged` | `budget` | `max_rounds`), `elapsed_s`, `styles` ([`StyleRow`]),
//!   `gauge` ([`NoiseGauge`] or `null`);
//! - [`StyleRow`]: `style`, `single_threaded`, `iterations_per_sample`, `samples`,
//!   `wall_ns` and `cpu_ns` (medians per iteration), `cpu_per_wall` (median CPU ÷ wall:
//!   cores kept busy; far above the useful work's share means spinning), `speedup`
//!   (reference time ÷ style time, `{point, lower, upper}` with a 95 % interval, `null`
//!   for the reference itself);
//! - [`CompareRun`]: `schema_version`, `base`, `head` (binaries), `seed`, `workers`,
//!   `stopping`, `rounds`, `stop`, `elapsed_s`, `rows` ([`CompareRow`]), `not_compared`
//!   ([`NotCompared`]);
//! - [`CompareRow`]: `id`, `rounds`, `iterations_per_sample`, `base_ns`, `head_ns`,
//!   `base_cpu_ns`, `head_cpu_ns` (medians per iteration), `change` (head ÷ base − 1,
//!   `{point, lower, upper}`, `+0.05` is 5 % slower), `stop`.

use serde::{Deserialize, Serialize};

use crate::stats::{Interval, StopReason, Stopping};

/// The version of every row type here.
pub const SCHEMA_VERSION: u32 = 1;

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
    /// The single-threaded styles' agreement with the reference, when the reference is
    /// single-threaded too (the CPU groups).
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
}

/// The single-threaded styles measured against a single-threaded reference: the same
/// sequential work, so their ideal speedup is 1.00.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NoiseGauge {
    /// The styles.
    pub styles: Vec<String>,
    /// The largest `|speedup − 1|` among them: noise plus each style's own overhead.
    pub spread: f64,
    /// The widest relative half-width of their intervals: the noise alone.
    pub widest_half_width: f64,
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
