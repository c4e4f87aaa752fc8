//! `concbench scenario rate-sweep`: latency against offered load, open loop at
//! fractions of each server's own closed-loop maximum.

use std::io::{self, Write};
use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use scenarios::rate_sweep::{self, KNEE_P99_US, RateSweepConfig, RateSweepOutcome};
use scenarios::{ChildRegistry, RateRow};
use workloads::{ServerModel, Support, Workload};

use super::scenario::{Peers, PythonPeers};
use super::table::Table;

/// Options of `concbench scenario rate-sweep`.
#[derive(Debug, clap::Args)]
pub(crate) struct RateSweepArgs {
    /// Servers to measure, comma-separated [default: every style that runs `throughput`,
    /// except those that serve one connection at a time].
    #[arg(long, value_delimiter = ',', value_parser = super::style_name_parser())]
    styles: Vec<String>,
    /// The offered rates, in percent of each server's closed-loop maximum,
    /// comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "10,50,80,95,100,110")]
    fractions: Vec<f64>,
    /// Client connections, for the maximum and every open-loop phase.
    #[arg(long, default_value_t = 32)]
    connections: usize,
    /// How long each open-loop phase is recorded (after a 500 ms settle).
    #[arg(long, default_value = "2s", value_parser = super::load::parse_duration)]
    duration: Duration,
    /// Worker threads or processes of every server [default: $CONCBENCH_WORKERS, else the available cores].
    #[arg(long)]
    workers: Option<NonZeroUsize>,
    /// Servers in other languages measured beside the styles [default: python when
    /// python3 is on PATH].
    #[arg(long, value_enum)]
    peers: Option<Peers>,
    /// Write every phase's latency histogram to DIR/<server>-<percent>.hgrm
    /// (HdrHistogram's percentile distribution, milliseconds), for HdrHistogram's plotter.
    #[arg(long, value_name = "DIR")]
    hgrm: Option<PathBuf>,
    /// The seed of each server's order of fractions [default: from the clock; printed].
    #[arg(long)]
    seed: Option<u64>,
    /// Also write the rows as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
}

/// The closed-loop maximum's recorded window.
const MAX_WINDOW: Duration = Duration::from_secs(2);

/// The unrecorded start of the maximum and of every phase.
const SETTLE: Duration = Duration::from_millis(500);

pub(crate) fn run(args: &RateSweepArgs, registry: &ChildRegistry) -> anyhow::Result<()> {
    if args.fractions.is_empty()
        || args
            .fractions
            .iter()
            .any(|percent| !(percent.is_finite() && *percent > 0.0))
    {
        bail!("--fractions needs positive percentages");
    }
    if args.connections == 0 {
        bail!("--connections needs at least one connection");
    }
    if args.duration.is_zero() {
        bail!("--duration must be positive");
    }
    let workers = match args.workers {
        Some(workers) => workers,
        None => workloads::StyleConfig::default_workers()?,
    };
    let concbench = std::env::current_exe().context("cannot find the concbench binary")?;
    let mut left_out: Vec<&str> = Vec::new();
    let styles: Vec<&str> = if args.styles.is_empty() {
        catalog::STYLES
            .iter()
            .filter(|entry| (entry.support)(Workload::Throughput) == Support::Runs)
            .filter(|entry| {
                // An iterative server serves one connection at a time: over many
                // connections its open-loop latency is the others' wait, not service.
                let iterative = entry.server_model == ServerModel::Iterative;
                if iterative {
                    left_out.push(entry.name);
                }
                !iterative
            })
            .map(|entry| entry.name)
            .collect()
    } else {
        args.styles.iter().map(String::as_str).collect()
    };
    let (contenders, python) = super::scenario::contenders_for(
        &concbench,
        &styles,
        Workload::Throughput,
        args.peers,
        workers,
    )?;
    if let Some(dir) = &args.hgrm {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create the --hgrm folder {}", dir.display()))?;
    }
    let mut fractions: Vec<f64> = args
        .fractions
        .iter()
        .map(|percent| percent / 100.0)
        .collect();
    fractions.sort_by(f64::total_cmp);
    fractions.dedup();
    let config = RateSweepConfig {
        contenders,
        fractions,
        connections: args.connections,
        duration: args.duration,
        max_window: MAX_WINDOW,
        settle: SETTLE,
        client_threads: loadgen::THROUGHPUT_CLIENT_THREADS,
        start_timeout: Duration::from_secs(20),
        seed: args.seed.unwrap_or_else(super::seed_from_clock),
        hgrm_dir: args.hgrm.clone(),
    };
    let bar = super::progress::scenario_bar("rate-sweep");
    let outcome = rate_sweep::run(&config, registry, |step| {
        bar.set_length(step.total as u64);
        bar.set_position(step.done as u64);
        bar.set_message(format!("{}: {}", step.name, step.activity));
    });
    bar.finish_and_clear();

    let mut stdout = io::stdout().lock();
    write!(
        stdout,
        "{}",
        rate_table(&config, workers, &outcome, python, &left_out)
    )?;
    stdout.flush()?;
    if let Some(path) = &args.json {
        super::scenario::write_json(path, &outcome.rows)?;
    }
    super::scenario::save_last_run("rate-sweep", workers, &outcome.rows)?;
    if outcome.rows.is_empty() {
        bail!("no server could be measured");
    }
    super::scenario::fail_on_failures(&outcome.failures)
}

fn rate_table(
    config: &RateSweepConfig,
    workers: NonZeroUsize,
    outcome: &RateSweepOutcome,
    python: PythonPeers,
    left_out: &[&str],
) -> String {
    let mut table = Table::new([
        "server",
        "lang",
        "of max",
        "offered/s",
        "achieved/s",
        "p50",
        "p99",
        "p99.9",
        "answered/due",
    ]);
    for row in &outcome.rows {
        table.push(rate_cells(row));
    }
    let mut out = format!(
        "rate-sweep scenario: fib(1) over {} connections, {workers} workers per server; per server (started once) \
         its closed-loop maximum over {:?} after {:?} of settling, then open loop at {} % of it, {:?} each after \
         {:?} of settling, in a shuffled order per server (seed {})\n\
         latency counts from each request's due time; ≥: some requests were never sent or answered and count with \
         the time they had waited, so the true value is at least that\n\n",
        config.connections,
        config.max_window,
        config.settle,
        config
            .fractions
            .iter()
            .map(|fraction| rate_sweep::percent(*fraction))
            .collect::<Vec<_>>()
            .join(", "),
        config.duration,
        config.settle,
        config.seed,
    );
    out.push_str(&table.render());
    out.push_str(&format!(
        "\nknee: the highest offered rate up to which the p99 stays under {} with every request answered\n",
        super::format_micros(KNEE_P99_US)
    ));
    for server in rate_sweep::servers(&outcome.rows) {
        let rows = outcome.rows.iter().filter(|row| row.style == server);
        out.push_str(&format!("  {server}: {}\n", knee_text(rows)));
    }
    for name in left_out {
        out.push_str(&format!(
            "{name} serves one connection at a time: left out (over {} connections its latency is the others' wait); \
             name it in --styles to measure it anyway.\n",
            config.connections
        ));
    }
    match python {
        PythonPeers::Measured => out.push_str(
            "python-* rows: the seed's servers in Python (peers/python), with the same requests.\n",
        ),
        PythonPeers::NotFound => {
            out.push_str("python3 or peers/python not found: no Python rows.\n");
        }
        PythonPeers::Skipped => {}
    }
    if let Some(dir) = &config.hgrm_dir {
        out.push_str(&format!(
            "{} .hgrm files (values in ms) in {}\n",
            outcome.hgrm_files.len(),
            dir.display()
        ));
    }
    for (name, failure) in &outcome.failures {
        out.push_str(&format!("FAILED: {name}: {failure}\n"));
    }
    out
}

/// `80 % of max, 41234 req/s (p99 612µs)`, or `none (…)`.
fn knee_text<'a>(rows: impl Iterator<Item = &'a RateRow> + Clone) -> String {
    match rate_sweep::knee(rows.clone()) {
        Some(row) => format!(
            "{} % of max, {:.0} req/s (p99 {})",
            rate_sweep::percent(row.fraction),
            row.offered_rps,
            row.p99_us
                .map_or_else(|| "—".to_owned(), super::format_micros)
        ),
        None => {
            let lowest = rows.min_by(|a, b| a.offered_rps.total_cmp(&b.offered_rps));
            match lowest {
                Some(row) => format!(
                    "none (at the lowest, {} % of max, the p99 was {}{})",
                    rate_sweep::percent(row.fraction),
                    bound(row),
                    row.p99_us
                        .map_or_else(|| "—".to_owned(), super::format_micros)
                ),
                None => "none".to_owned(),
            }
        }
    }
}

fn bound(row: &RateRow) -> &'static str {
    if row.latency_lower_bounds > 0 {
        "≥"
    } else {
        ""
    }
}

fn rate_cells(row: &RateRow) -> Vec<String> {
    let micros = |us: Option<u64>| {
        us.map_or_else(
            || "—".to_owned(),
            |us| format!("{}{}", bound(row), super::format_micros(us)),
        )
    };
    vec![
        row.style.clone(),
        row.language.clone(),
        format!("{}%", rate_sweep::percent(row.fraction)),
        format!("{:.0}", row.offered_rps),
        format!("{:.0}", row.achieved_rps),
        micros(row.p50_us),
        micros(row.p99_us),
        micros(row.p999_us),
        format!("{}/{}", row.answered, row.due),
    ]
}
