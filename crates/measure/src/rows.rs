//! The engine's JSON rows, written by `concbench measure` and `concbench compare` and
//! read by `concbench report`.
//!
//! Schema version 3 (bump [`SCHEMA_VERSION`] on any change a reader would notice; 2
//! added the capacity probe, the efficiencies and the replica gauge; 3 made
//! `measure.json` an envelope of one run per worker count, the core-count sweep):
//!
//! - [`MeasureFile`] (`measure.json`, and `concbench measure --json`): `schema_version`
//!   (3), `default_workers` (the worker count whose run the report's per-group tables
//!   use: the default worker count, `CONCBENCH_WORKERS` or the available cores),
//!   `cores` (the sweep's top without oversubscription, the same count), `runs`: one
//!   [`MeasureRun`] per worker count, in the order measured. Version 2 files are one bare
//!   [`MeasureRun`]; [`MeasureFile::parse`] reads both, a version-2 file as a sweep of one;
//! - [`MeasureRun`]: `schema_version`, `command`, `seed`, `workers`, `oversubscribed`
//!   (more workers than `cores`), `stopping` (`target`, `min_rounds`, `max_rounds`,
//!   `budget` in seconds: per cohort; the sweep's other points run with the smaller
//!   `--sweep-budget`), `sample_target_ms`, `address_layout` (`fixed`, or
//!   `randomized: <why>`), `recorded_at` (Unix seconds), `cohorts`: a list of
//!   [`CohortRow`];
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
//! - [`CompareRun`] (`concbench compare --json`, unchanged in version 3 but for its
//!   number): `schema_version`, `base`, `head` (binaries), `seed`, `workers`,
//!   `stopping`, `address_layout`, `rounds`, `stop`, `elapsed_s`, `rows` ([`CompareRow`]), `not_compared`
//!   ([`NotCompared`]);
//! - [`CompareRow`]: `id`, `rounds`, `iterations_per_sample`, `base_ns`, `head_ns`,
//!   `base_cpu_ns`, `head_cpu_ns` (medians per iteration), `change` (head ÷ base − 1,
//!   `{point, lower, upper}`, `+0.05` is 5 % slower), `stop`.

use serde::{Deserialize, Serialize};

use crate::stats::{Interval, StopReason, Stopping};

/// The version of every row type here.
pub const SCHEMA_VERSION: u32 = 3;

/// The earlier `measure.json` layout that [`MeasureFile::parse`] still reads: one bare
/// [`MeasureRun`].
pub const SINGLE_RUN_SCHEMA_VERSION: u32 = 2;

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
    /// Whether `workers` is more than the sweep's cores (the oversubscribed point, two
    /// workers per core). `false` in version-2 files.
    #[serde(default)]
    pub oversubscribed: bool,
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

/// `measure.json`: one [`MeasureRun`] per worker count of the sweep.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MeasureFile {
    /// [`SCHEMA_VERSION`].
    pub schema_version: u32,
    /// The worker count whose run the report's per-group tables use.
    pub default_workers: usize,
    /// The cores the sweep counted up to (`CONCBENCH_WORKERS`, else the available
    /// parallelism): points above it are oversubscribed.
    pub cores: usize,
    /// One run per worker count, in the order measured.
    pub runs: Vec<MeasureRun>,
}

impl MeasureFile {
    /// The run at [`Self::default_workers`], else the first.
    pub fn primary(&self) -> Option<&MeasureRun> {
        self.runs
            .iter()
            .find(|run| run.workers == self.default_workers)
            .or_else(|| self.runs.first())
    }

    /// The runs by worker count, smallest first.
    pub fn by_workers(&self) -> Vec<&MeasureRun> {
        let mut runs: Vec<&MeasureRun> = self.runs.iter().collect();
        runs.sort_by_key(|run| run.workers);
        runs
    }

    /// A version-2 file's one run as a sweep of one (its workers are its cores).
    pub fn from_single(mut run: MeasureRun) -> Self {
        run.schema_version = SCHEMA_VERSION;
        Self {
            schema_version: SCHEMA_VERSION,
            default_workers: run.workers,
            cores: run.workers,
            runs: vec![run],
        }
    }

    /// Reads `measure.json` text of version 3, or of version 2 (one bare run, read as a
    /// sweep of one); any other version is an error that says which it found.
    pub fn parse(text: &str) -> Result<Self, String> {
        let value: serde_json::Value =
            serde_json::from_str(text).map_err(|error| error.to_string())?;
        let found = value
            .get("schema_version")
            .and_then(serde_json::Value::as_u64);
        match found {
            Some(version) if version == u64::from(SCHEMA_VERSION) => {
                serde_json::from_value(value).map_err(|error| error.to_string())
            }
            Some(version) if version == u64::from(SINGLE_RUN_SCHEMA_VERSION) => {
                serde_json::from_value(value)
                    .map(Self::from_single)
                    .map_err(|error| error.to_string())
            }
            _ => Err(format!(
                "schema version {}; this build reads versions {SINGLE_RUN_SCHEMA_VERSION} and \
                 {SCHEMA_VERSION}",
                found.map_or_else(|| "missing".to_owned(), |version| version.to_string())
            )),
        }
    }
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
    /// Styles of the cohort that refused this configuration when their worker started
    /// (the pool's `ping_pong` needs two workers, so a 1-worker point of the core-count
    /// sweep has no pool row), with the reason; absent in files that had none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_attempted: Vec<NotAttempted>,
}

/// A style left out of one cohort, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotAttempted {
    /// The style.
    pub style: String,
    /// Its worker's reason, `not attempted: …`.
    pub reason: String,
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

#[cfg(test)]
mod tests {
    use super::*;

    fn run(workers: usize, oversubscribed: bool) -> MeasureRun {
        MeasureRun {
            schema_version: SCHEMA_VERSION,
            command: "concbench measure".into(),
            seed: 7,
            workers,
            oversubscribed,
            stopping: Stopping::default(),
            sample_target_ms: 90.0,
            address_layout: "fixed".into(),
            recorded_at: 1,
            cohorts: Vec::new(),
        }
    }

    #[test]
    fn a_sweep_round_trips_as_version_3() {
        let file = MeasureFile {
            schema_version: SCHEMA_VERSION,
            default_workers: 2,
            cores: 2,
            runs: vec![run(1, false), run(2, false), run(4, true)],
        };
        let text = serde_json::to_string_pretty(&file).expect("serializes");
        let value: serde_json::Value = serde_json::from_str(&text).expect("JSON");
        assert_eq!(value["schema_version"], 3);
        assert_eq!(value["runs"][2]["oversubscribed"], true);
        let read = MeasureFile::parse(&text).expect("parses");
        assert_eq!(read, file);
        assert_eq!(read.primary().map(|run| run.workers), Some(2));
    }

    #[test]
    fn a_version_2_run_reads_as_a_sweep_of_one_and_others_are_refused() {
        let mut single = serde_json::to_value(run(2, false)).expect("serializes");
        single["schema_version"] = 2.into();
        single
            .as_object_mut()
            .expect("an object")
            .remove("oversubscribed");
        let read = MeasureFile::parse(&single.to_string()).expect("parses");
        assert_eq!(
            (read.default_workers, read.cores, read.runs.len()),
            (2, 2, 1)
        );
        assert!(!read.runs[0].oversubscribed);
        single["schema_version"] = 1.into();
        let error = MeasureFile::parse(&single.to_string()).unwrap_err();
        assert!(error.contains("schema version 1"), "{error}");
        assert!(MeasureFile::parse("{}").unwrap_err().contains("missing"));
    }
}
