//! What machine, toolchain and commit produced a report: `machine.json`.

use std::path::Path;

use measure::rows::MeasureFile;
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::criterion::CRITERION_VERSION;

/// The facts every report records, so that its numbers can be traced and compared.
///
/// The fields added after the first reports (`cpu_frequency`, `cpus_allowed_list`,
/// `engine`) default when an older `machine.json` is read (`--compare`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MachineInfo {
    /// The day the report was built, `YYYY-MM-DD` (UTC).
    pub date: String,
    /// The machine's hostname.
    pub hostname: String,
    /// CPU model name, from `/proc/cpuinfo`.
    pub cpu_model: String,
    /// Logical CPUs the kernel lists.
    pub logical_cpus: usize,
    /// CPUs this process may run on (affinity and cgroup quotas included).
    pub available_parallelism: usize,
    /// Total memory, bytes.
    pub memory_bytes: u64,
    /// Kernel name and release.
    pub kernel: String,
    /// `rustc -vV`, verbatim.
    pub rustc: String,
    /// The criterion release that measured the benches.
    pub criterion_version: String,
    /// `git rev-parse HEAD` of the measured tree.
    pub git_commit: Option<String>,
    /// Whether the tree had uncommitted changes.
    pub git_dirty: Option<bool>,
    /// Worker count the runs used, when they recorded it.
    pub workers: Option<usize>,
    /// The commands that produced the report's inputs, and the report itself.
    pub commands: Vec<String>,
    /// Per CPU the kernel lists under `/sys/devices/system/cpu/`, its frequency
    /// governor and frequencies (`cpufreq/`); a value the kernel does not expose is
    /// `null`, and a machine without those directories has an empty list.
    #[serde(default)]
    pub cpu_frequency: Vec<CpuFrequency>,
    /// The CPUs this process may run on, `Cpus_allowed_list` of `/proc/self/status`
    /// (`0-1`); `null` where the kernel does not say.
    #[serde(default)]
    pub cpus_allowed_list: Option<String>,
    /// The measurement engine's settings, from the report's `measure.json`; `null`
    /// without one.
    #[serde(default)]
    pub engine: Option<EngineSettings>,
}

/// One CPU's frequency scaling, from `/sys/devices/system/cpu/cpu<N>/cpufreq/`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CpuFrequency {
    /// The CPU's number.
    pub cpu: usize,
    /// `scaling_governor` (`performance`, `powersave`, `schedutil`, …).
    pub governor: Option<String>,
    /// `scaling_cur_freq`, kHz, when the report was written.
    pub current_khz: Option<u64>,
    /// `scaling_min_freq`, kHz: the lowest the governor may choose.
    pub min_khz: Option<u64>,
    /// `scaling_max_freq`, kHz: the highest the governor may choose.
    pub max_khz: Option<u64>,
}

/// How the engine measured: the settings of `measure.json`'s runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EngineSettings {
    /// Per-cohort budget of the run at the default worker count, seconds.
    pub budget_s: f64,
    /// Per-cohort budget of the sweep's other worker counts, seconds; `null` without a
    /// sweep.
    pub sweep_budget_s: Option<f64>,
    /// The stopping target, a fraction (`0.01`: ±1 %).
    pub target: f64,
    /// Rounds before the intervals are first judged.
    pub min_rounds: usize,
    /// Rounds at most.
    pub max_rounds: usize,
    /// The worker count of the per-group tables.
    pub default_workers: usize,
    /// The sweep's cores (points above are oversubscribed).
    pub cores: usize,
    /// Every worker count measured, in order.
    pub workers: Vec<usize>,
}

impl EngineSettings {
    /// The settings of `sweep`: its default run's rule, the other runs' budget.
    pub fn of(sweep: &MeasureFile) -> Self {
        let primary = sweep.primary();
        let stopping = primary.map(|run| run.stopping).unwrap_or_default();
        Self {
            budget_s: stopping.budget.as_secs_f64(),
            sweep_budget_s: sweep
                .runs
                .iter()
                .find(|run| Some(run.workers) != primary.map(|primary| primary.workers))
                .map(|run| run.stopping.budget.as_secs_f64()),
            target: stopping.target,
            min_rounds: stopping.min_rounds,
            max_rounds: stopping.max_rounds,
            default_workers: sweep.default_workers,
            cores: sweep.cores,
            workers: sweep.runs.iter().map(|run| run.workers).collect(),
        }
    }
}

/// Every `cpu<N>` under `cpu_dir` (`/sys/devices/system/cpu`) with its `cpufreq/`
/// files, by CPU number; a missing file is `None`, a missing directory no CPUs.
pub fn cpu_frequencies(cpu_dir: &Path) -> Vec<CpuFrequency> {
    let Ok(entries) = std::fs::read_dir(cpu_dir) else {
        return Vec::new();
    };
    let mut cpus: Vec<CpuFrequency> = entries
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name();
            let cpu: usize = name.to_str()?.strip_prefix("cpu")?.parse().ok()?;
            let cpufreq = entry.path().join("cpufreq");
            let text = |file: &str| {
                std::fs::read_to_string(cpufreq.join(file))
                    .ok()
                    .map(|text| text.trim().to_owned())
                    .filter(|text| !text.is_empty())
            };
            let khz = |file: &str| text(file)?.parse::<u64>().ok();
            Some(CpuFrequency {
                cpu,
                governor: text("scaling_governor"),
                current_khz: khz("scaling_cur_freq"),
                min_khz: khz("scaling_min_freq"),
                max_khz: khz("scaling_max_freq"),
            })
        })
        .collect();
    cpus.sort_by_key(|cpu| cpu.cpu);
    cpus
}

/// `Cpus_allowed_list` of a `/proc/<pid>/status` text.
pub fn cpus_allowed_list(status: &str) -> Option<String> {
    status
        .lines()
        .find_map(|line| line.strip_prefix("Cpus_allowed_list:"))
        .map(|list| list.trim().to_owned())
}

impl MachineInfo {
    /// Reads the machine's facts now; `repo` is the measured git tree.
    pub fn collect(repo: &Path, workers: Option<usize>, commands: Vec<String>) -> Self {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        Self {
            date: today(),
            hostname: hostname(),
            cpu_model: cpuinfo
                .lines()
                .find_map(|line| line.strip_prefix("model name"))
                .and_then(|rest| rest.split_once(':'))
                .map_or_else(
                    || "unknown".to_owned(),
                    |(_, model)| model.trim().to_owned(),
                ),
            logical_cpus: cpuinfo
                .lines()
                .filter(|line| line.starts_with("processor"))
                .count(),
            available_parallelism: std::thread::available_parallelism().map_or(1, usize::from),
            memory_bytes: std::fs::read_to_string("/proc/meminfo")
                .ok()
                .and_then(|meminfo| {
                    meminfo
                        .lines()
                        .find_map(|line| line.strip_prefix("MemTotal:"))?
                        .split_whitespace()
                        .next()?
                        .parse::<u64>()
                        .ok()
                })
                .map_or(0, |kib| kib << 10),
            kernel: format!(
                "{} {}",
                read_trimmed("/proc/sys/kernel/ostype").unwrap_or_else(|| "unknown".into()),
                read_trimmed("/proc/sys/kernel/osrelease").unwrap_or_default()
            ),
            rustc: run(Command::new("rustc").arg("-vV")).unwrap_or_else(|| "unavailable".into()),
            criterion_version: CRITERION_VERSION.to_owned(),
            git_commit: run(Command::new("git")
                .arg("-C")
                .arg(repo)
                .args(["rev-parse", "HEAD"])),
            git_dirty: run(Command::new("git")
                .arg("-C")
                .arg(repo)
                .args(["status", "--porcelain"]))
            .map(|status| !status.is_empty()),
            workers,
            commands,
            cpu_frequency: cpu_frequencies(Path::new("/sys/devices/system/cpu")),
            cpus_allowed_list: std::fs::read_to_string("/proc/self/status")
                .ok()
                .as_deref()
                .and_then(cpus_allowed_list),
            engine: None,
        }
    }

    /// One line for the top of a summary.
    pub fn one_line(&self) -> String {
        let rustc = self
            .rustc
            .lines()
            .next()
            .unwrap_or("rustc unavailable")
            .to_owned();
        let commit = match (&self.git_commit, self.git_dirty) {
            (Some(commit), Some(true)) => {
                format!("commit {} (with uncommitted changes)", short(commit))
            }
            (Some(commit), _) => format!("commit {}", short(commit)),
            (None, _) => "no git commit".to_owned(),
        };
        let workers = self.workers.map_or_else(String::new, |workers| {
            format!(", {workers} workers per style")
        });
        format!(
            "{} — {} ({} logical CPUs, {} available), {:.1} GiB, {}, {rustc}, criterion {}, {commit}{workers}",
            self.hostname,
            self.cpu_model,
            self.logical_cpus,
            self.available_parallelism,
            self.memory_bytes as f64 / f64::from(1 << 30),
            self.kernel,
            self.criterion_version,
        )
    }
}

fn short(commit: &str) -> &str {
    commit.get(..12).unwrap_or(commit)
}

/// The machine's hostname, safe to use in a folder name.
pub fn hostname() -> String {
    let raw = read_trimmed("/proc/sys/kernel/hostname").unwrap_or_else(|| "unknown-host".into());
    let safe: String = raw
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                c
            } else {
                '-'
            }
        })
        .collect();
    if safe.is_empty() {
        "unknown-host".into()
    } else {
        safe
    }
}

/// Today's date in UTC, `YYYY-MM-DD`.
pub fn today() -> String {
    let days = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs() / 86_400);
    let (year, month, day) = civil_from_days(days as i64);
    format!("{year:04}-{month:02}-{day:02}")
}

/// The proleptic Gregorian date `days` after 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * month_index + 2) / 5 + 1) as u32;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

fn read_trimmed(path: &str) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|text| text.trim().to_owned())
}

/// A command's stdout, trimmed, if it ran and succeeded.
fn run(command: &mut Command) -> Option<String> {
    let output = command.output().ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(59), (1970, 3, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(civil_from_days(20_417), (2025, 11, 25));
    }

    #[test]
    fn collects_this_machine() {
        let machine = MachineInfo::collect(Path::new("."), Some(2), vec!["cargo bench".into()]);
        assert_eq!(machine.date.len(), 10);
        assert!(
            machine.logical_cpus > 0 && machine.memory_bytes > 0,
            "{machine:?}"
        );
        assert!(machine.one_line().contains("2 workers per style"));
        assert!(!hostname().contains('/'));
    }

    #[test]
    fn cpu_frequencies_read_what_the_kernel_exposes_and_null_the_rest() {
        let dir = std::env::temp_dir().join(format!("concbench-cpufreq-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let cpufreq = dir.join("cpu0/cpufreq");
        std::fs::create_dir_all(&cpufreq).expect("fake sysfs");
        std::fs::create_dir_all(dir.join("cpu1")).expect("fake sysfs");
        std::fs::create_dir_all(dir.join("cpufreq")).expect("fake sysfs");
        for (file, text) in [
            ("scaling_governor", "performance\n"),
            ("scaling_cur_freq", "2400000\n"),
            ("scaling_max_freq", "3000000\n"),
        ] {
            std::fs::write(cpufreq.join(file), text).expect("fake file");
        }
        let cpus = cpu_frequencies(&dir);
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(
            cpus,
            [
                CpuFrequency {
                    cpu: 0,
                    governor: Some("performance".into()),
                    current_khz: Some(2_400_000),
                    min_khz: None,
                    max_khz: Some(3_000_000),
                },
                CpuFrequency {
                    cpu: 1,
                    governor: None,
                    current_khz: None,
                    min_khz: None,
                    max_khz: None,
                },
            ]
        );
        assert!(cpu_frequencies(Path::new("/nonexistent/cpu")).is_empty());
        assert_eq!(
            cpus_allowed_list("Name:\tx\nCpus_allowed_list:\t0-1\n").as_deref(),
            Some("0-1")
        );
        assert_eq!(cpus_allowed_list("Name:\tx\n"), None);
    }
}
