//! The one module that reads criterion's output.
//!
//! criterion calls these files private: their shape may change in any release, which is
//! why the workspace pins criterion to an exact version ([`CRITERION_VERSION`]) and why
//! nothing else in the project reads them. Per benchmark, criterion writes
//! `<group>/<function>/<value>/new/benchmark.json` (the ids) and `new/estimates.json`
//! (per-iteration statistics in nanoseconds, each with a 95 % confidence interval);
//! after `--baseline NAME`, `change/estimates.json` holds the relative change.
//!
//! criterion never removes a `change/` directory, so a cached `target/` keeps the
//! comparisons of every earlier run, of every suite. [`read_comparisons`] tells the
//! latest run's comparisons from those by their modification times. criterion 0.8.2
//! writes, per benchmark, `new/estimates.json`, then (when `<NAME>/` exists) the
//! comparison into `change/estimates.json`, then `new/benchmark.json`; with
//! `--save-baseline NAME` it then copies `new/` to `<NAME>/`, so the `change/` of a save
//! run is never newer than its `<NAME>/`; with `--baseline NAME` it leaves `<NAME>/`
//! alone, so the `change/` of a comparison run is newer than it.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::Deserialize;

use crate::ReportError;

/// The criterion release whose output this module reads (pinned in the workspace).
pub const CRITERION_VERSION: &str = "0.8.2";

/// One benchmark's identity and its timing statistics.
#[derive(Debug, Clone, PartialEq)]
pub struct Benchmark {
    /// The criterion group: a workload name.
    pub group: String,
    /// The function id: a style name.
    pub function: String,
    /// The parameter (`64x27`, `c32`), if any.
    pub value: Option<String>,
    /// Elements per iteration, when the group declared them.
    pub elements: Option<u64>,
    /// Median time per iteration, ns.
    pub median: Estimate,
    /// Mean time per iteration, ns.
    pub mean: Estimate,
    /// The directory the files were read from.
    pub directory: PathBuf,
}

/// A point estimate with its confidence interval.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
pub struct Estimate {
    /// The estimate.
    pub point: f64,
    /// Lower bound of the confidence interval.
    pub lower: f64,
    /// Upper bound of the confidence interval.
    pub upper: f64,
    /// The interval's confidence level (0.95).
    pub confidence: f64,
}

/// A relative change (`-0.05` is 5 % faster) measured against a saved baseline.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    /// The benchmark's identity and current timing.
    pub benchmark: Benchmark,
    /// Relative change of the median time.
    pub median: Estimate,
    /// The baseline's median time, ns, with its interval (from
    /// `<baseline>/estimates.json`), when criterion kept it.
    pub baseline_median: Option<Estimate>,
}

/// What the latest `cargo bench -- --baseline NAME` run compared with the baseline, and
/// what else criterion's directory holds for it: see [`read_comparisons`].
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Comparisons {
    /// The benchmarks the latest run compared with the baseline, sorted by id.
    pub compared: Vec<Change>,
    /// The benchmarks with a saved baseline or a `change/` that the latest run did not
    /// compare, sorted by id.
    pub not_compared: Vec<NotCompared>,
}

/// A benchmark that the latest comparison run did not compare with the baseline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotCompared {
    /// `group/function/value`, as criterion prints it.
    pub id: String,
    /// Why, in a few words: ``no baseline `NAME` ``, `not measured since the baseline
    /// was saved` or `no comparison`.
    pub reason: String,
}

impl Benchmark {
    /// `group/function/value`, as criterion prints it.
    pub fn id(&self) -> String {
        benchmark_id(&self.group, &self.function, self.value.as_deref())
    }
}

fn benchmark_id(group: &str, function: &str, value: Option<&str>) -> String {
    match value {
        Some(value) => format!("{group}/{function}/{value}"),
        None => format!("{group}/{function}"),
    }
}

#[derive(Deserialize)]
struct BenchmarkFile {
    group_id: String,
    function_id: Option<String>,
    value_str: Option<String>,
    throughput: Option<ThroughputFile>,
}

#[derive(Deserialize)]
enum ThroughputFile {
    Elements(u64),
    #[serde(other)]
    Other,
}

#[derive(Deserialize)]
struct EstimatesFile {
    mean: EstimateFile,
    median: EstimateFile,
}

#[derive(Deserialize)]
struct EstimateFile {
    confidence_interval: IntervalFile,
    point_estimate: f64,
}

#[derive(Deserialize)]
struct IntervalFile {
    confidence_level: f64,
    lower_bound: f64,
    upper_bound: f64,
}

impl From<EstimateFile> for Estimate {
    fn from(file: EstimateFile) -> Self {
        Self {
            point: file.point_estimate,
            lower: file.confidence_interval.lower_bound,
            upper: file.confidence_interval.upper_bound,
            confidence: file.confidence_interval.confidence_level,
        }
    }
}

/// Every benchmark under `criterion_dir` with a `new/benchmark.json`, sorted by id.
///
/// A missing directory is an empty list (nothing has been benchmarked yet); a file that
/// cannot be read or parsed is an error naming the file.
pub fn read_benchmarks(criterion_dir: &Path) -> Result<Vec<Benchmark>, ReportError> {
    let mut benchmarks = Vec::new();
    for directory in benchmark_directories(criterion_dir)? {
        benchmarks.push(read_benchmark(&directory)?);
    }
    benchmarks.sort_by_key(Benchmark::id);
    Ok(benchmarks)
}

/// The changes against the baseline `baseline` that the latest `cargo bench --
/// --baseline NAME` run measured: [`read_comparisons`]'s `compared`.
pub fn read_changes(criterion_dir: &Path, baseline: &str) -> Result<Vec<Change>, ReportError> {
    Ok(read_comparisons(criterion_dir, baseline)?.compared)
}

/// Every benchmark's change against the baseline `baseline`, split into those the
/// latest `cargo bench -- --baseline NAME` run compared and those it did not.
///
/// A benchmark is compared when it has `<baseline>/estimates.json` and
/// `change/estimates.json`, and its change file is newer than its own baseline (so it
/// is not the one written by the run that saved the baseline) and at least as new as
/// the newest baseline of any benchmark (so it is not left from an earlier round of
/// saving and comparing). Every other benchmark with a baseline or a change file is
/// not compared, with the reason; one with neither is left out.
pub fn read_comparisons(criterion_dir: &Path, baseline: &str) -> Result<Comparisons, ReportError> {
    struct Found {
        directory: PathBuf,
        saved: Option<SystemTime>,
        compared: Option<SystemTime>,
    }
    let mut found = Vec::new();
    for directory in benchmark_directories(criterion_dir)? {
        let saved = modified(&directory.join(baseline).join("estimates.json"))?;
        let compared = modified(&directory.join("change/estimates.json"))?;
        if saved.is_some() || compared.is_some() {
            found.push(Found {
                directory,
                saved,
                compared,
            });
        }
    }
    let latest_save = found
        .iter()
        .filter_map(|found| found.saved)
        .max()
        .unwrap_or(SystemTime::UNIX_EPOCH);
    let mut comparisons = Comparisons::default();
    for Found {
        directory,
        saved,
        compared,
    } in found
    {
        let reason = match (saved, compared) {
            (Some(saved), Some(compared)) if compared > saved && compared >= latest_save => {
                comparisons
                    .compared
                    .push(read_change(&directory, baseline)?);
                continue;
            }
            (Some(_), Some(_)) => "not measured since the baseline was saved".to_owned(),
            (None, _) => format!("no baseline `{baseline}`"),
            (Some(_), None) => "no comparison".to_owned(),
        };
        comparisons.not_compared.push(NotCompared {
            id: read_id(&directory)?,
            reason,
        });
    }
    comparisons
        .compared
        .sort_by_key(|change| change.benchmark.id());
    comparisons.not_compared.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(comparisons)
}

/// Whether any benchmark under `criterion_dir` has a saved baseline called `baseline`.
pub fn has_baseline(criterion_dir: &Path, baseline: &str) -> Result<bool, ReportError> {
    Ok(benchmark_directories(criterion_dir)?
        .iter()
        .any(|directory| directory.join(baseline).join("estimates.json").is_file()))
}

fn read_change(directory: &Path, baseline: &str) -> Result<Change, ReportError> {
    let benchmark = read_benchmark(directory)?;
    let change: EstimatesFile = parse(&directory.join("change/estimates.json"))?;
    let baseline: EstimatesFile = parse(&directory.join(baseline).join("estimates.json"))?;
    Ok(Change {
        benchmark,
        median: change.median.into(),
        baseline_median: Some(baseline.median.into()),
    })
}

/// The id from `new/benchmark.json` alone (a benchmark left out needs no timings).
fn read_id(directory: &Path) -> Result<String, ReportError> {
    let ids: BenchmarkFile = parse(&directory.join("new/benchmark.json"))?;
    Ok(benchmark_id(
        &ids.group_id,
        ids.function_id.as_deref().unwrap_or_default(),
        ids.value_str.as_deref(),
    ))
}

/// A file's modification time; `None` when there is no such file.
fn modified(path: &Path) -> Result<Option<SystemTime>, ReportError> {
    let read_error = |source| ReportError::Read {
        path: path.to_path_buf(),
        source,
    };
    match fs::metadata(path) {
        Ok(metadata) if metadata.is_file() => metadata.modified().map(Some).map_err(read_error),
        Ok(_) => Ok(None),
        Err(error)
            if matches!(
                error.kind(),
                io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
            ) =>
        {
            Ok(None)
        }
        Err(error) => Err(read_error(error)),
    }
}

fn read_benchmark(directory: &Path) -> Result<Benchmark, ReportError> {
    let ids: BenchmarkFile = parse(&directory.join("new/benchmark.json"))?;
    let estimates: EstimatesFile = parse(&directory.join("new/estimates.json"))?;
    Ok(Benchmark {
        group: ids.group_id,
        function: ids.function_id.unwrap_or_default(),
        value: ids.value_str,
        elements: match ids.throughput {
            Some(ThroughputFile::Elements(elements)) => Some(elements),
            _ => None,
        },
        median: estimates.median.into(),
        mean: estimates.mean.into(),
        directory: directory.to_path_buf(),
    })
}

/// Directories holding a `new/benchmark.json`, at any depth below `root` (a benchmark
/// without a parameter sits one level higher than one with).
fn benchmark_directories(root: &Path) -> Result<Vec<PathBuf>, ReportError> {
    let mut found = Vec::new();
    if !root.is_dir() {
        return Ok(found);
    }
    let mut pending = vec![root.to_path_buf()];
    while let Some(directory) = pending.pop() {
        let entries = fs::read_dir(&directory).map_err(|source| ReportError::Read {
            path: directory.clone(),
            source,
        })?;
        for entry in entries.flatten() {
            let path = entry.path();
            if !path.is_dir() || entry.file_name() == "report" {
                continue;
            }
            if path.file_name().is_some_and(|name| name == "new") {
                if path.join("benchmark.json").is_file() {
                    found.push(directory.clone());
                }
            } else {
                pending.push(path);
            }
        }
    }
    found.sort();
    found.dedup();
    Ok(found)
}

fn parse<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, ReportError> {
    let text = fs::read_to_string(path).map_err(|source| ReportError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    serde_json::from_str(&text).map_err(|source| ReportError::Parse {
        path: path.to_path_buf(),
        message: source.to_string(),
    })
}
