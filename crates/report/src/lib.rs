//! Reports people can cite: `concbench report` turns criterion's results and the
//! scenarios' JSON rows into `reports/<YYYY-MM-DD>-<hostname>/`:
//!
//! - `summary.md` — per workload, every style's criterion median with its 95 %
//!   confidence interval and throughput, and beside it the measurement engine's paired
//!   speedup over the reference and efficiency against the capacity probe, with their
//!   intervals, and CPU ÷ wall (`concbench measure`), with the host's capacity and the
//!   noise gauge (the reference against a replica of itself); where the engine did not
//!   run, criterion's own ratio to the baseline (or to the best, for network rows); the
//!   throughput bench beside the scenario (rankings, fairness per connection, client
//!   and server CPU, [`throughput`]); the Beazley table; the task-cost table; the
//!   `connections` scenario (C10K: memory per held connection, and service with N open);
//!   the `io` scenario (requests waiting on a backend, against the ideal C / delay); how
//!   it was produced;
//! - `results.csv` — one row per benchmark, the same columns;
//! - `*.svg` — one chart per criterion group, the hog-latency chart, memory per unit,
//!   memory per connection, achieved ÷ ideal rate per concurrency, and per CPU group
//!   the paired speedup against the worker count of the engine's core-count sweep
//!   (`<group>_scaling.svg`, [`scaling`]);
//! - `beazley.json`, `tasks.json`, `connections.json`, `io.json`, `measure.json`,
//!   `bench-server.json` — the scenarios',
//!   the engine's and the throughput bench's rows, as measured;
//! - `machine.json` — CPU, cores, memory, kernel, `rustc -vV`, criterion version, git
//!   commit and dirtiness, date, worker count, commands, the CPU frequency governor and
//!   frequencies, the CPUs this process may use, the engine's settings;
//! - `compare-<other>.md`, with `--compare OTHER` — this report's paired ratios beside
//!   another report's ([`compare`]).
//!
//! Missing inputs become a line in the summary, not a failure; a file that exists but
//! cannot be read or parsed is an error that names it. The scenarios' row files are read
//! through [`scenarios::read_rows`] (the versioned envelope, or an older bare array), the
//! engine's through [`measure::rows::MeasureFile::parse`] (schema 3, or 2 as one run). [`criterion`] is the only module
//! that reads criterion's (private, pinned) files.

#![forbid(unsafe_code)]

mod charts;
pub mod compare;
mod connections;
pub mod criterion;
mod io_wait;
mod isolation;
pub mod machine;
mod rate_sweep;
pub mod results;
pub mod scaling;
mod summary;
pub mod throughput;

use std::fs;
use std::path::{Path, PathBuf};

use measure::rows::{MEASURE_ROWS, MeasureFile, MeasureRun};
use scenarios::{
    BeazleyRow, ConnectionsRow, IoRow, RateRow, RunMeta, THROUGHPUT_BENCH_ROWS, TaskRow,
    ThroughputBenchRow,
};

pub use machine::MachineInfo;
pub use summary::CSV_COLUMNS;

/// Why a report could not be written.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// A file or directory could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The path.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A file was read but is not what it should be (half-written, or foreign).
    #[error("{} is not a valid input: {message}", path.display())]
    Parse {
        /// The path.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// An output could not be written.
    #[error("cannot write {}: {source}", path.display())]
    Write {
        /// The path.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A chart could not be drawn.
    #[error("cannot draw {}: {message}", path.display())]
    Chart {
        /// The chart's path.
        path: PathBuf,
        /// plotters' error.
        message: String,
    },
}

/// Where the inputs are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inputs {
    /// criterion's output directory (`target/criterion`).
    pub criterion_dir: PathBuf,
    /// Where the scenarios saved their last rows (`target/concbench`): `beazley.json`,
    /// `tasks.json`, `connections.json`, `io.json`, and a `*.meta.json` per run.
    pub scenarios_dir: PathBuf,
    /// The style whose times the others are compared with.
    pub baseline: String,
    /// The styles whose CPU workloads run on one thread, as the baseline's do
    /// ([`workloads::CpuThreads::One`]): their times in a CPU group gauge the run's noise.
    pub single_threaded: Vec<String>,
}

/// Everything a report is built from, read and parsed.
#[derive(Debug, Clone, PartialEq)]
pub struct Loaded {
    /// criterion's benchmarks.
    pub benchmarks: Vec<criterion::Benchmark>,
    /// The Beazley scenario's rows, if it ran.
    pub beazley: Option<Vec<BeazleyRow>>,
    /// The tasks scenario's rows, if it ran.
    pub tasks: Option<Vec<TaskRow>>,
    /// The connections scenario's (C10K) rows, if it ran.
    pub connections: Option<Vec<ConnectionsRow>>,
    /// The io scenario's rows, if it ran.
    pub io: Option<Vec<IoRow>>,
    /// The rate-sweep scenario's rows (latency against offered load), if it ran.
    pub rate_sweep: Option<Vec<RateRow>>,
    /// The measurement engine's last run (`concbench measure`) at the default worker
    /// count, if any: the per-group tables' numbers.
    pub measure: Option<MeasureRun>,
    /// Every run of the engine's last core-count sweep, one per worker count (a
    /// version-2 file is a sweep of one), if any.
    pub sweep: Option<MeasureFile>,
    /// The throughput bench's fairness and CPU figures (`benches/server.rs`), if it ran.
    pub throughput_bench: Option<Vec<ThroughputBenchRow>>,
    /// The runs' own records, in the order they ran.
    pub runs: Vec<RunMeta>,
}

/// The file names, in the scenarios directory, of each scenario's last rows.
pub const BEAZLEY_ROWS: &str = "beazley.json";
/// See [`BEAZLEY_ROWS`].
pub const TASK_ROWS: &str = "tasks.json";
/// See [`BEAZLEY_ROWS`].
pub const CONNECTIONS_ROWS: &str = "connections.json";
/// See [`BEAZLEY_ROWS`].
pub const IO_ROWS: &str = "io.json";
/// See [`BEAZLEY_ROWS`].
pub const RATE_SWEEP_ROWS: &str = "rate-sweep.json";

/// The folder, in the scenarios directory and in a report, of the rate sweep's `.hgrm`
/// files (`concbench scenario rate-sweep --hgrm <scenarios dir>/hgrm`).
pub const HGRM_DIR: &str = "hgrm";

/// Copies every `*.hgrm` file of `from` into `to` (created), returning their names,
/// sorted.
fn copy_hgrm_files(from: &Path, to: &Path) -> Result<Vec<String>, ReportError> {
    let read = |source| ReportError::Read {
        path: from.to_path_buf(),
        source,
    };
    let mut names: Vec<String> = fs::read_dir(from)
        .map_err(read)?
        .filter_map(Result::ok)
        .filter_map(|entry| entry.file_name().into_string().ok())
        .filter(|name| name.ends_with(".hgrm"))
        .collect();
    names.sort();
    if names.is_empty() {
        return Ok(names);
    }
    fs::create_dir_all(to).map_err(|source| ReportError::Write {
        path: to.to_path_buf(),
        source,
    })?;
    for name in &names {
        fs::copy(from.join(name), to.join(name)).map_err(|source| ReportError::Write {
            path: to.join(name),
            source,
        })?;
    }
    Ok(names)
}

/// Reads every input; missing ones are `None` or empty, corrupt ones an error.
pub fn load(inputs: &Inputs) -> Result<Loaded, ReportError> {
    let mut runs = Vec::new();
    if inputs.scenarios_dir.is_dir() {
        let entries = fs::read_dir(&inputs.scenarios_dir).map_err(|source| ReportError::Read {
            path: inputs.scenarios_dir.clone(),
            source,
        })?;
        let mut metas: Vec<PathBuf> = entries
            .flatten()
            .map(|entry| entry.path())
            .filter(|path| path.to_string_lossy().ends_with(".meta.json"))
            .collect();
        metas.sort();
        for path in metas {
            runs.push(parse_json::<RunMeta>(&path)?);
        }
        // In the order they ran (records without a time keep their file-name order).
        runs.sort_by_key(|run| run.recorded_at);
    }
    let sweep = read_measure(&inputs.scenarios_dir.join(MEASURE_ROWS))?;
    Ok(Loaded {
        benchmarks: criterion::read_benchmarks(&inputs.criterion_dir)?,
        beazley: read_rows_optional(&inputs.scenarios_dir.join(BEAZLEY_ROWS))?,
        tasks: read_rows_optional(&inputs.scenarios_dir.join(TASK_ROWS))?,
        connections: read_rows_optional(&inputs.scenarios_dir.join(CONNECTIONS_ROWS))?,
        io: read_rows_optional(&inputs.scenarios_dir.join(IO_ROWS))?,
        rate_sweep: read_rows_optional(&inputs.scenarios_dir.join(RATE_SWEEP_ROWS))?,
        measure: sweep.as_ref().and_then(MeasureFile::primary).cloned(),
        sweep,
        throughput_bench: read_rows_optional(&inputs.scenarios_dir.join(THROUGHPUT_BENCH_ROWS))?,
        runs,
    })
}

/// The machine facts for a report of `loaded`: the commands of every recorded run, then
/// `report_command`, and the worker count when every run used the same one.
pub fn describe_machine(loaded: &Loaded, repo: &Path, report_command: String) -> MachineInfo {
    let mut commands: Vec<String> = loaded.runs.iter().map(|run| run.command.clone()).collect();
    commands.push(report_command);
    let mut worker_counts: Vec<usize> = loaded.runs.iter().map(|run| run.workers).collect();
    worker_counts.sort_unstable();
    worker_counts.dedup();
    let workers = match worker_counts.as_slice() {
        [workers] => Some(*workers),
        _ => None,
    };
    let mut machine = MachineInfo::collect(repo, workers, commands);
    machine.engine = loaded.sweep.as_ref().map(machine::EngineSettings::of);
    machine
}

/// What [`write`] produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    /// The report folder.
    pub folder: PathBuf,
    /// Every file written, relative to the folder.
    pub files: Vec<String>,
}

/// Writes the report for `loaded` into `out_dir/<date>-<hostname>/`, replacing what an
/// earlier report of the same day wrote there.
pub fn write(
    inputs: &Inputs,
    loaded: &Loaded,
    machine: &MachineInfo,
    out_dir: &Path,
) -> Result<Written, ReportError> {
    let folder = out_dir.join(format!("{}-{}", machine.date, machine.hostname));
    fs::create_dir_all(&folder).map_err(|source| ReportError::Write {
        path: folder.clone(),
        source,
    })?;
    let mut files = Vec::new();
    let rows = results::result_rows(&loaded.benchmarks, &inputs.baseline);

    for (group, group_rows) in summary::by_group(&rows) {
        let name = format!("{group}.svg");
        let axis = group_rows.first().map_or_else(String::new, |row| {
            summary::ratio_axis(row.ratio_base, &inputs.baseline)
        });
        charts::group_chart(&folder.join(&name), group, &group_rows, &axis)?;
        files.push(name);
    }
    if let Some(beazley) = loaded.beazley.as_deref().filter(|rows| !rows.is_empty()) {
        charts::hog_chart(
            &folder.join(summary::HOG_CHART),
            &isolation::main_rows(beazley),
        )?;
        files.push(summary::HOG_CHART.to_owned());
    }
    if let Some(tasks) = loaded
        .tasks
        .as_deref()
        .filter(|rows| rows.iter().any(|row| row.bytes_per_task.is_some()))
    {
        charts::bytes_per_task_chart(&folder.join(summary::TASKS_CHART), tasks)?;
        files.push(summary::TASKS_CHART.to_owned());
    }
    if let Some(connections) = loaded.connections.as_deref().filter(|rows| {
        rows.iter()
            .any(|row| row.not_attempted.is_none() && row.bytes_per_connection.is_some())
    }) {
        charts::connections_chart(&folder.join(summary::CONNECTIONS_CHART), connections)?;
        files.push(summary::CONNECTIONS_CHART.to_owned());
    }
    if let Some(io) = loaded
        .io
        .as_deref()
        .filter(|rows| rows.iter().any(|row| row.not_attempted.is_none()))
    {
        charts::io_chart(&folder.join(summary::IO_CHART), io)?;
        files.push(summary::IO_CHART.to_owned());
    }
    if let Some(sweep) = &loaded.sweep {
        for group in scaling::groups(sweep) {
            let name = scaling::chart_name(&group);
            let rows = scaling::rows(sweep, &group);
            charts::scaling_chart(&folder.join(&name), &group, &rows, sweep.cores)?;
            files.push(name);
        }
    }
    if let Some(rates) = loaded.rate_sweep.as_deref().filter(|rows| !rows.is_empty()) {
        rate_sweep::chart(&folder.join(rate_sweep::RATE_SWEEP_CHART), rates)?;
        files.push(rate_sweep::RATE_SWEEP_CHART.to_owned());
    }

    // The rate sweep's histograms, when it wrote them where the scenarios keep their
    // rows, travel with the report (HdrHistogram's plotter reads them).
    let hgrm_dir = inputs.scenarios_dir.join(HGRM_DIR);
    if hgrm_dir.is_dir() {
        for name in copy_hgrm_files(&hgrm_dir, &folder.join(HGRM_DIR))? {
            files.push(format!("{HGRM_DIR}/{name}"));
        }
    }

    let csv_path = folder.join("results.csv");
    summary::write_csv(&csv_path, &rows, loaded.measure.as_ref())?;
    files.push("results.csv".to_owned());
    // The scenarios' rows as they were measured, for plots and spreadsheets of their own.
    if let Some(beazley) = &loaded.beazley {
        write_rows(&folder.join(BEAZLEY_ROWS), beazley)?;
        files.push(BEAZLEY_ROWS.to_owned());
    }
    if let Some(tasks) = &loaded.tasks {
        write_rows(&folder.join(TASK_ROWS), tasks)?;
        files.push(TASK_ROWS.to_owned());
    }
    if let Some(connections) = &loaded.connections {
        write_rows(&folder.join(CONNECTIONS_ROWS), connections)?;
        files.push(CONNECTIONS_ROWS.to_owned());
    }
    if let Some(io) = &loaded.io {
        write_rows(&folder.join(IO_ROWS), io)?;
        files.push(IO_ROWS.to_owned());
    }
    if let Some(rates) = &loaded.rate_sweep {
        write_rows(&folder.join(RATE_SWEEP_ROWS), rates)?;
        files.push(RATE_SWEEP_ROWS.to_owned());
    }
    if let Some(sweep) = &loaded.sweep {
        write_json(&folder.join(MEASURE_ROWS), sweep)?;
        files.push(MEASURE_ROWS.to_owned());
    }
    if let Some(bench) = &loaded.throughput_bench {
        write_rows(&folder.join(THROUGHPUT_BENCH_ROWS), bench)?;
        files.push(THROUGHPUT_BENCH_ROWS.to_owned());
    }

    let markdown = summary::markdown(inputs, loaded, &rows, machine, &files);
    write_file(&folder.join("summary.md"), markdown.as_bytes())?;
    files.push("summary.md".to_owned());

    write_json(&folder.join("machine.json"), machine)?;
    files.push("machine.json".to_owned());
    Ok(Written { folder, files })
}

/// A row file of the scenarios or benches, when present: the versioned envelope or a
/// bare array ([`scenarios::read_rows`]); anything else is an error naming the file.
fn read_rows_optional<T: serde::de::DeserializeOwned>(
    path: &Path,
) -> Result<Option<Vec<T>>, ReportError> {
    read_optional_with(path, scenarios::read_rows)
}

/// The engine's rows, when present: schema version 3 (a sweep), or 2 (one run, read as
/// a sweep of one); another version is an error naming the file, not a silent
/// misreading.
pub fn read_measure(path: &Path) -> Result<Option<MeasureFile>, ReportError> {
    read_optional_with(path, MeasureFile::parse)
}

/// `parse` applied to the text of `path`; `None` when there is no such file, and an
/// error naming the file when it cannot be read or parsed.
fn read_optional_with<T>(
    path: &Path,
    parse: impl FnOnce(&str) -> Result<T, String>,
) -> Result<Option<T>, ReportError> {
    if !path.exists() {
        return Ok(None);
    }
    let text = fs::read_to_string(path).map_err(|source| ReportError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse(&text)
        .map(Some)
        .map_err(|message| ReportError::Parse {
            path: path.to_path_buf(),
            message,
        })
}

fn write_rows(path: &Path, rows: &impl serde::Serialize) -> Result<(), ReportError> {
    let json = scenarios::rows_json(rows).map_err(|error| ReportError::Write {
        path: path.to_path_buf(),
        source: std::io::Error::other(error),
    })?;
    write_file(path, json.as_bytes())
}

pub(crate) fn parse_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, ReportError> {
    let text = fs::read_to_string(path).map_err(|source| ReportError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    serde_json::from_str(&text).map_err(|error| ReportError::Parse {
        path: path.to_path_buf(),
        message: error.to_string(),
    })
}

fn write_json(path: &Path, value: &impl serde::Serialize) -> Result<(), ReportError> {
    let json = serde_json::to_string_pretty(value).map_err(|error| ReportError::Write {
        path: path.to_path_buf(),
        source: std::io::Error::other(error),
    })?;
    write_file(path, (json + "\n").as_bytes())
}

pub(crate) fn write_file(path: &Path, contents: &[u8]) -> Result<(), ReportError> {
    fs::write(path, contents).map_err(|source| ReportError::Write {
        path: path.to_path_buf(),
        source,
    })
}
