//! `concbench measure` (the engine's paired ratios, for the report) and the hidden
//! `concbench measure-worker` (one benchmark in a process of its own).

use std::io::{self, Write};
use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use measure::engine::{Progress, SAMPLE_TARGET};
use measure::process::WorkerProgram;
use measure::rows::{CohortRow, MEASURE_ROWS, MeasureFile, MeasureRun, SCHEMA_VERSION};
use measure::stats::Stopping;
use measure::suite::{self, BenchmarkId};
use measure::{MeasureError, Plan};
use workloads::Workload;

use super::Exit;
use super::table::Table;

/// Options of `concbench measure`.
#[derive(Debug, clap::Args)]
pub(crate) struct MeasureArgs {
    /// Groups to measure, comma-separated: group names, or `cpu` and `tasks`.
    #[arg(long, default_value = "cpu,tasks")]
    groups: String,
    /// Only these styles (the references are always measured).
    #[arg(long, value_delimiter = ',', value_parser = super::style_name_parser())]
    styles: Vec<String>,
    /// The reference of the CPU groups.
    #[arg(long, default_value = catalog::BASELINE, value_parser = super::style_name_parser())]
    reference: String,
    /// The reference of the task groups (`seq` has no second unit and cannot sleep in
    /// parallel, so it cannot be one).
    #[arg(long, default_value = "tokio", value_parser = super::style_name_parser())]
    task_reference: String,
    #[command(flatten)]
    stopping: StoppingArgs,
    /// Workers per style, one count or a comma-separated list (`1,2,4`), each a full run
    /// of every cohort [default: the sweep 1, 2, … up to the cores (CONCBENCH_WORKERS,
    /// else the available cores), then 2 × the cores, oversubscribed].
    #[arg(long)]
    workers: Option<String>,
    /// Time in rounds at most per cohort at the sweep's points other than the default
    /// worker count (which keeps --budget).
    #[arg(long, default_value = "20s", value_parser = super::load::parse_duration)]
    sweep_budget: Duration,
    /// Also write the rows to this file (they always go to target/concbench/measure.json).
    #[arg(long)]
    json: Option<PathBuf>,
}

/// The stopping rule's options, shared by `measure` and `compare`.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct StoppingArgs {
    /// Stop once every 95 % interval is within ±this many percent of its estimate.
    #[arg(long, default_value_t = 1.0, value_parser = super::regress::parse_percent)]
    pub(crate) target: f64,
    /// Rounds before the intervals are first judged.
    #[arg(long, default_value_t = 10)]
    pub(crate) min_rounds: usize,
    /// Rounds at most.
    #[arg(long, default_value_t = 400)]
    pub(crate) max_rounds: usize,
    /// Time in rounds at most: per cohort for `measure`, for the whole run for `compare`
    /// [default: measure 90s, compare 240s, compare --quick 60s].
    #[arg(long, value_parser = super::load::parse_duration)]
    pub(crate) budget: Option<Duration>,
    /// The seed of every shuffle and bootstrap [default: from the clock; printed].
    #[arg(long)]
    pub(crate) seed: Option<u64>,
}

impl StoppingArgs {
    /// The plan, with `default_budget` when none was given.
    pub(crate) fn plan(&self, default_budget: Duration) -> anyhow::Result<Plan> {
        if self.min_rounds < 2 || self.max_rounds < self.min_rounds {
            return Err(Exit::usage(format!(
                "--min-rounds {} and --max-rounds {}: need 2 ≤ min ≤ max",
                self.min_rounds, self.max_rounds
            ))
            .into());
        }
        let seed = self.seed.unwrap_or_else(super::seed_from_clock);
        Ok(Plan {
            stopping: Stopping {
                target: self.target / 100.0,
                min_rounds: self.min_rounds,
                max_rounds: self.max_rounds,
                budget: self.budget.unwrap_or(default_budget),
                settle: None,
            },
            seed,
            sample_target: SAMPLE_TARGET,
        })
    }
}

/// Per cohort, when no `--budget` is given.
const MEASURE_BUDGET: Duration = Duration::from_secs(90);

pub(crate) fn run(args: &MeasureArgs) -> anyhow::Result<()> {
    let groups = suite::parse_groups(&args.groups).map_err(Exit::usage)?;
    let plan = args.stopping.plan(MEASURE_BUDGET)?;
    let cores = match (workloads::StyleConfig::default_workers(), &args.workers) {
        (Ok(cores), _) => cores.get(),
        (Err(error), None) => return Err(Exit::usage(error.to_string()).into()),
        // An explicit list needs the cores only to label oversubscription.
        (Err(_), Some(_)) => std::thread::available_parallelism().map_or(1, NonZeroUsize::get),
    };
    let counts = match &args.workers {
        Some(text) => measure::sweep::parse_workers(text).map_err(Exit::usage)?,
        None => measure::sweep::default_counts(cores),
    };
    let points = measure::sweep::plan(&counts, cores);
    let listed = suite::list(&groups);
    let mut cohorts: Vec<(Workload, String, Vec<BenchmarkId>)> = Vec::new();
    for workload in &groups {
        let reference = reference_of(*workload, args);
        for case in suite::Case::all(*workload) {
            let parameter = case.parameter();
            let ids: Vec<BenchmarkId> = listed
                .iter()
                .filter(|listed| {
                    listed.id.group == workload.name() && listed.id.parameter == parameter
                })
                .filter(|listed| {
                    let wanted = args.styles.is_empty()
                        || args.styles.contains(&listed.id.style)
                        || listed.id.style == reference;
                    // n/a cells are the matrix's (`concbench list`); a size this
                    // machine cannot hold is worth a line.
                    if let (true, Err(reason)) = (wanted, &listed.runs)
                        && !reason.starts_with("n/a")
                    {
                        eprintln!("{}: {reason}", listed.id);
                    }
                    wanted && listed.runs.is_ok()
                })
                .map(|listed| listed.id.clone())
                .collect();
            cohorts.push((*workload, parameter, ids));
        }
    }
    let command = std::iter::once("concbench".to_owned())
        .chain(std::env::args().skip(1))
        .collect::<Vec<_>>()
        .join(" ");
    if points.len() > 1 {
        eprintln!(
            "core-count sweep on {cores} cores: {}; the default worker count gets {:?} per cohort, \
             the others {:?}",
            points
                .iter()
                .map(|point| point.label(cores))
                .collect::<Vec<_>>()
                .join(", "),
            plan.stopping.budget,
            args.sweep_budget
        );
    }
    let mut runs = Vec::with_capacity(points.len());
    let mut stdout = io::stdout().lock();
    for point in &points {
        let workers = NonZeroUsize::new(point.workers).unwrap_or(NonZeroUsize::MIN);
        let mut plan = plan;
        plan.stopping.budget = point.budget(plan.stopping.budget, args.sweep_budget);
        let config = super::style_config(Some(workers))?;
        let program = WorkerProgram {
            program: std::env::current_exe().context("cannot find the concbench binary")?,
            workers: config.workers,
            timeouts: measure::process::Timeouts::default(),
        };
        eprintln!(
            "measuring {} cohorts, {}, seed {}, target ±{:.1} %, budget {:?} each, \
             worker memory layout {}",
            cohorts.len(),
            point.label(cores),
            plan.seed,
            plan.stopping.target * 100.0,
            plan.stopping.budget,
            measure::process::address_layout()
        );
        if points.len() > 1 {
            writeln!(stdout, "== {} ==\n", point.label(cores))?;
        }
        let mut rows = Vec::new();
        for (workload, parameter, ids) in &cohorts {
            let reference = reference_of(*workload, args);
            let label = format!("{workload}/{parameter}");
            let progress = RoundProgress::new(&label);
            let row = measure::measure_cohort(&program, ids, reference, &plan, &mut |p| {
                progress.update(p)
            })
            .map_err(|error| engine_error(&label, error))?;
            progress.finish(&format!(
                "{label} ({}): {} rounds in {:.0} s, {}",
                point.label(cores),
                row.rounds,
                row.elapsed_s,
                row.stop.describe()
            ));
            stdout.write_all(cohort_table(&row).as_bytes())?;
            stdout.flush()?;
            rows.push(row);
        }
        let recorded_at = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| since.as_secs());
        runs.push(MeasureRun {
            schema_version: SCHEMA_VERSION,
            command: command.clone(),
            seed: plan.seed,
            workers: point.workers,
            oversubscribed: point.oversubscribed,
            stopping: plan.stopping,
            sample_target_ms: plan.sample_target.as_secs_f64() * 1e3,
            address_layout: measure::process::address_layout().to_owned(),
            recorded_at,
            cohorts: rows,
        });
    }
    let default_workers = points
        .iter()
        .find(|point| point.primary)
        .map_or(cores, |point| point.workers);
    let measured = MeasureFile {
        schema_version: SCHEMA_VERSION,
        default_workers,
        cores,
        runs,
    };
    let meta = scenarios::RunMeta::now(command, default_workers);
    let name = MEASURE_ROWS.trim_end_matches(".json");
    scenarios::save_run_file(name, &meta, Some(&measured)).context("cannot save the rows")?;
    if let Some(path) = &args.json {
        let json = serde_json::to_string_pretty(&measured)? + "\n";
        std::fs::write(path, json).with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}

fn reference_of(workload: Workload, args: &MeasureArgs) -> &str {
    if suite::CPU_GROUPS.contains(&workload) {
        &args.reference
    } else {
        &args.task_reference
    }
}

/// An engine error as the binary reports it: unusable input exits 2, a failed worker
/// (a wrong answer, a crash) exits 1.
pub(crate) fn engine_error(label: &str, error: MeasureError) -> anyhow::Error {
    match error {
        MeasureError::Unusable(message) => Exit::usage(format!("{label}: {message}")).into(),
        MeasureError::Spawn { .. } => Exit::usage(format!("{label}: {error}")).into(),
        other => anyhow::Error::from(other).context(label.to_owned()),
    }
}

/// One cohort as a terminal table.
fn cohort_table(row: &CohortRow) -> String {
    let mut header = vec![
        format!("{}/{}", row.group, row.parameter),
        format!("speedup over {} (95 %)", row.reference),
    ];
    if row.capacity.is_some() {
        header.push("efficiency (95 %)".to_owned());
    }
    header.extend(["wall/iter", "CPU/iter", "CPU÷wall", "iters/sample"].map(str::to_owned));
    let mut table = Table::new(header);
    for style in row.styles.iter().chain(&row.capacity) {
        let mut cells = vec![
            style.style.clone(),
            style
                .speedup
                .map_or_else(|| "reference".to_owned(), |speedup| speedup.format_ratio(3)),
        ];
        if row.capacity.is_some() {
            cells.push(
                style
                    .efficiency
                    .map_or_else(|| "—".to_owned(), |efficiency| efficiency.format_ratio(3)),
            );
        }
        cells.extend([
            report::results::format_nanos(style.wall_ns),
            report::results::format_nanos(style.cpu_ns),
            format!("{:.2}", style.cpu_per_wall),
            style.iterations_per_sample.to_string(),
        ]);
        table.push(cells);
    }
    let mut out = table.render();
    if let Some(capacity) = row.capacity.as_ref().and_then(|probe| probe.speedup) {
        out.push_str(&format!(
            "capacity: the probe's speedup over {} is {} (what the host offered); \
             efficiency is a style's time against the probe's in the same round\n",
            row.reference,
            capacity.format_ratio(3)
        ));
    }
    if let Some(replica) = row.gauge.as_ref().and_then(|gauge| gauge.replica) {
        out.push_str(&format!(
            "noise gauge: {} against a replica of itself {} (ideal 1.000)\n",
            row.reference,
            replica.format_ratio(3)
        ));
    }
    for left_out in &row.not_attempted {
        out.push_str(&format!("{}: {}\n", left_out.style, left_out.reason));
    }
    out.push('\n');
    out
}

/// A spinner with the round count and the widest interval; on a terminal only, plus a
/// plain line every 20 rounds when stderr is not one (CI logs).
pub(crate) struct RoundProgress {
    bar: ProgressBar,
    label: String,
}

impl RoundProgress {
    pub(crate) fn new(label: &str) -> Self {
        let bar = ProgressBar::new_spinner().with_style(
            ProgressStyle::with_template("{spinner} {prefix} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        bar.set_prefix(label.to_owned());
        Self {
            bar,
            label: label.to_owned(),
        }
    }

    pub(crate) fn update(&self, progress: &Progress) {
        let widest = progress.widest.map_or_else(
            || "—".to_owned(),
            |widest| format!("±{:.1} %", widest * 100.0),
        );
        let message = format!(
            "round {}, {} open, widest interval {widest}, {:.0} s",
            progress.rounds,
            progress.open_pairs,
            progress.elapsed.as_secs_f64()
        );
        if self.bar.is_hidden() {
            if progress.rounds.is_multiple_of(20) {
                eprintln!("{}: {message}", self.label);
            }
        } else {
            self.bar.set_message(message);
            self.bar.tick();
        }
    }

    pub(crate) fn finish(&self, line: &str) {
        self.bar.finish_and_clear();
        eprintln!("{line}");
    }
}

/// Options of the hidden `concbench measure-worker`.
#[derive(Debug, clap::Args)]
pub(crate) struct WorkerArgs {
    /// The benchmark to serve, `group/style/parameter`.
    #[arg(long, required_unless_present = "list", conflicts_with = "list")]
    benchmark: Option<String>,
    /// Print the benchmarks of `--groups` this build knows, as JSON, and exit.
    #[arg(long)]
    list: bool,
    /// The groups for `--list`.
    #[arg(long, default_value = "cpu,tasks")]
    groups: String,
    /// Workers per style.
    #[arg(long)]
    workers: Option<NonZeroUsize>,
}

pub(crate) fn run_worker(args: &WorkerArgs) -> anyhow::Result<()> {
    if args.list {
        let groups = suite::parse_groups(&args.groups).map_err(Exit::usage)?;
        let listed: Vec<measure::process::ListedBenchmark> = suite::list(&groups)
            .into_iter()
            .map(|listed| measure::process::ListedBenchmark {
                id: listed.id.to_string(),
                skipped: listed.runs.err(),
            })
            .collect();
        let mut stdout = io::stdout().lock();
        serde_json::to_writer(&mut stdout, &listed)?;
        writeln!(stdout)?;
        return Ok(());
    }
    let text = args.benchmark.as_deref().unwrap_or_default();
    let id = BenchmarkId::parse(text)
        .ok_or_else(|| Exit::usage(format!("{text:?} is not group/style/parameter")))?;
    let config = super::style_config(args.workers)?;
    measure::worker::serve(&id, &config, io::stdin().lock(), io::stdout().lock())?;
    Ok(())
}
