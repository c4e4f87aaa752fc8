//! The one module that reads criterion's output.
//!
//! criterion calls these files private: their shape may change in any release, which is
//! why the workspace pins criterion to an exact version ([`CRITERION_VERSION`]) and why
//! nothing else in the project reads them. Per benchmark, criterion writes
//! `<group>/<function>/<value>/new/benchmark.json` (the ids) and `new/estimates.json`
//! (per-iteration statistics in nanoseconds, each with a 95 % confidence interval);
//! after `--baseline NAME`, `change/estimates.json` holds the relative change.

use std::fs;
use std::path::{Path, PathBuf};

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

impl Benchmark {
    /// `group/function/value`, as criterion prints it.
    pub fn id(&self) -> String {
        match &self.value {
            Some(value) => format!("{}/{}/{value}", self.group, self.function),
            None => format!("{}/{}", self.group, self.function),
        }
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

/// Every benchmark's change against the baseline `baseline`: what `cargo bench --
/// --baseline NAME` left. A benchmark without `change/estimates.json` is left out.
pub fn read_changes(criterion_dir: &Path, baseline: &str) -> Result<Vec<Change>, ReportError> {
    let mut changes = Vec::new();
    for directory in benchmark_directories(criterion_dir)? {
        let change_file = directory.join("change/estimates.json");
        if !change_file.is_file() {
            continue;
        }
        let benchmark = read_benchmark(&directory)?;
        let change: EstimatesFile = parse(&change_file)?;
        let baseline_file = directory.join(baseline).join("estimates.json");
        let baseline_median = if baseline_file.is_file() {
            Some(parse::<EstimatesFile>(&baseline_file)?.median.into())
        } else {
            None
        };
        changes.push(Change {
            benchmark,
            median: change.median.into(),
            baseline_median,
        });
    }
    changes.sort_by_key(|change| change.benchmark.id());
    Ok(changes)
}

/// Whether any benchmark under `criterion_dir` has a saved baseline called `baseline`.
pub fn has_baseline(criterion_dir: &Path, baseline: &str) -> Result<bool, ReportError> {
    Ok(benchmark_directories(criterion_dir)?
        .iter()
        .any(|directory| directory.join(baseline).join("estimates.json").is_file()))
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
