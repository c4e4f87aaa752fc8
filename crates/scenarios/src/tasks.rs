//! The tasks scenario: what N sleeping units cost, N from a thousand to a million.
//!
//! Each (style, N) runs in a fresh child process (`concbench tasks-probe`), so that one
//! measurement's memory cannot leak into the next: the probe builds the style, notes its
//! resident memory, runs `sleepers(N)`, and reports the kernel's peak (`VmHWM`); for a
//! style whose units are processes, it also samples the private memory of its unit
//! processes while they sleep. A size above what the machine can safely hold
//! ([`workloads::tasks::unit_limit`]) is not attempted, and says why.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use workloads::tasks::{self, UnitKind, memory};
use workloads::{Style, StyleError};

use crate::child::{ChildRegistry, run_bounded};
use crate::procfs;
use crate::rows::TaskRow;

/// What one probe measured, printed by the probe as one line of JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProbeReport {
    /// Units run.
    pub n_units: usize,
    /// Time until every unit was spawned, ms.
    pub spawn_ms: f64,
    /// Time until every unit had finished, ms.
    pub wall_ms: f64,
    /// Resident memory before the units, bytes.
    pub baseline_rss_bytes: u64,
    /// Peak resident memory of the probe process (`VmHWM`), bytes.
    pub peak_rss_bytes: u64,
    /// Peak private memory of the probe's unit processes, summed, bytes (0 when units
    /// are not processes).
    pub unit_process_bytes: u64,
    /// How many unit processes were alive at that peak: a process that has exited
    /// holds no memory, so the cost per process is the peak over this count.
    pub unit_processes_at_peak: usize,
}

/// Runs `sleepers(n_units, sleep)` on `style` in this process and measures it: the body
/// of `concbench tasks-probe`.
pub fn probe(
    style: &dyn Style,
    unit: UnitKind,
    n_units: usize,
    sleep: Duration,
) -> Result<ProbeReport, StyleError> {
    // One unit first, so that lazily built parts of the runtime (timer wheels, blocking
    // pools) count in the baseline, not in the units.
    tasks::check_sleepers(1, &style.sleepers(1, Duration::from_millis(1))?)
        .map_err(|wrong| StyleError::WorkerFailed(wrong.to_string()))?;
    let baseline_rss_bytes = memory::resident_bytes().unwrap_or(0);
    let children_peak = Mutex::new(ChildrenSample::default());
    let done = AtomicBool::new(false);
    let observed = thread::scope(|scope| {
        if unit == UnitKind::Process {
            scope.spawn(|| sample_children(&children_peak, &done));
        }
        let observed = style.sleepers(n_units, sleep);
        done.store(true, Ordering::Relaxed);
        observed
    })?;
    tasks::check_sleepers(n_units, &observed)
        .map_err(|wrong| StyleError::WorkerFailed(wrong.to_string()))?;
    Ok(ProbeReport {
        n_units,
        spawn_ms: observed.spawned_in.as_secs_f64() * 1e3,
        wall_ms: observed.finished_in.as_secs_f64() * 1e3,
        baseline_rss_bytes,
        peak_rss_bytes: memory::peak_resident_bytes().unwrap_or(0),
        unit_process_bytes: children_peak.lock().map_or(0, |peak| peak.bytes),
        unit_processes_at_peak: children_peak.lock().map_or(0, |peak| peak.processes),
    })
}

/// The children's summed private memory at one instant.
#[derive(Debug, Clone, Copy, Default)]
struct ChildrenSample {
    bytes: u64,
    processes: usize,
}

/// Samples the summed private memory of this process's children every few
/// milliseconds until `done`, keeping the sample with the most memory.
fn sample_children(peak: &Mutex<ChildrenSample>, done: &AtomicBool) {
    let me = std::process::id();
    while !done.load(Ordering::Relaxed) {
        let sizes: Vec<u64> = procfs::child_pids(me)
            .into_iter()
            .filter_map(memory::private_resident_bytes)
            .collect();
        let sample = ChildrenSample {
            bytes: sizes.iter().sum(),
            processes: sizes.len(),
        };
        if let Ok(mut peak) = peak.lock()
            && sample.bytes > peak.bytes
        {
            *peak = sample;
        }
        thread::sleep(Duration::from_millis(2));
    }
}

/// A style to measure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subject {
    /// Its catalog name.
    pub name: String,
    /// What its units are.
    pub unit: UnitKind,
}

/// The scenario's settings.
#[derive(Debug, Clone, PartialEq)]
pub struct TasksConfig {
    /// The `concbench` binary, which runs the probes.
    pub concbench: PathBuf,
    /// The styles, in table order.
    pub subjects: Vec<Subject>,
    /// The unit counts, in increasing order.
    pub sizes: Vec<usize>,
    /// How long each unit sleeps.
    pub sleep: Duration,
    /// Worker threads of each style.
    pub workers: usize,
    /// A probe still running after this long is killed and its size marked failed.
    pub probe_timeout: Duration,
}

/// A step of the scenario, for progress reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Step<'a> {
    /// The style.
    pub name: &'a str,
    /// The unit count being measured.
    pub n_units: usize,
    /// Steps done so far, of `total`.
    pub done: usize,
    /// All steps.
    pub total: usize,
}

/// Runs every (style, size) probe in turn. A size above the machine's safe limit, or
/// any size after one that failed, is recorded as not attempted.
pub fn run(
    config: &TasksConfig,
    registry: &ChildRegistry,
    mut on_step: impl FnMut(Step<'_>),
) -> Vec<TaskRow> {
    let total = config.subjects.len() * config.sizes.len();
    let mut rows = Vec::with_capacity(total);
    for (subject_idx, subject) in config.subjects.iter().enumerate() {
        let limit = tasks::unit_limit(subject.unit);
        let mut failed: Option<String> = None;
        for (size_idx, &n_units) in config.sizes.iter().enumerate() {
            on_step(Step {
                name: &subject.name,
                n_units,
                done: subject_idx * config.sizes.len() + size_idx,
                total,
            });
            let skip = if let Some(failure) = &failed {
                Some(format!("a smaller size failed: {failure}"))
            } else if n_units > limit.max_units {
                Some(format!(
                    "above {} {} ({})",
                    limit.max_units,
                    subject.unit.plural(),
                    limit.reason
                ))
            } else {
                None
            };
            let row = match skip {
                Some(reason) => not_attempted(subject, n_units, reason),
                None => match run_probe(config, subject, n_units, registry) {
                    Ok(report) => measured(subject, &report),
                    Err(failure) => {
                        failed = Some(failure.clone());
                        not_attempted(subject, n_units, format!("failed: {failure}"))
                    }
                },
            };
            rows.push(row);
        }
    }
    rows
}

fn measured(subject: &Subject, report: &ProbeReport) -> TaskRow {
    let peak = report.peak_rss_bytes + report.unit_process_bytes;
    let in_process = report
        .peak_rss_bytes
        .saturating_sub(report.baseline_rss_bytes) as f64
        / report.n_units.max(1) as f64;
    // A unit process costs its own private memory, measured while alive, plus what the
    // parent holds for it.
    let per_unit = if report.unit_processes_at_peak > 0 {
        report.unit_process_bytes as f64 / report.unit_processes_at_peak as f64 + in_process
    } else {
        in_process
    };
    TaskRow {
        style: subject.name.clone(),
        unit: subject.unit.plural().into(),
        n_tasks: report.n_units,
        spawn_ms: Some(report.spawn_ms),
        wall_ms: Some(report.wall_ms),
        peak_rss_bytes: Some(peak),
        baseline_rss_bytes: Some(report.baseline_rss_bytes),
        bytes_per_task: Some(per_unit),
        not_attempted: None,
    }
}

fn not_attempted(subject: &Subject, n_units: usize, reason: String) -> TaskRow {
    TaskRow {
        style: subject.name.clone(),
        unit: subject.unit.plural().into(),
        n_tasks: n_units,
        spawn_ms: None,
        wall_ms: None,
        peak_rss_bytes: None,
        baseline_rss_bytes: None,
        bytes_per_task: None,
        not_attempted: Some(reason),
    }
}

/// Runs one probe child process and parses its report.
fn run_probe(
    config: &TasksConfig,
    subject: &Subject,
    n_units: usize,
    registry: &ChildRegistry,
) -> Result<ProbeReport, String> {
    let args: Vec<OsString> = [
        "tasks-probe".to_owned(),
        "--style".into(),
        subject.name.clone(),
        "--units".into(),
        n_units.to_string(),
        "--sleep-us".into(),
        config.sleep.as_micros().to_string(),
        "--workers".into(),
        config.workers.to_string(),
    ]
    .into_iter()
    .map(OsString::from)
    .collect();
    let output = run_bounded(
        Command::new(&config.concbench).args(&args),
        registry,
        config.probe_timeout,
    )?;
    if !output.status.success() {
        let err = output.stderr.trim();
        return Err(if err.is_empty() {
            format!("the probe exited with {}", output.status)
        } else {
            err.to_owned()
        });
    }
    let out = output.stdout;
    serde_json::from_str(out.trim())
        .map_err(|error| format!("unreadable probe output {out:?}: {error}"))
}
