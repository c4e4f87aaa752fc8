//! `concbench scenario io`: requests that wait on a slow backend, at rising concurrency.

use std::io::{self, Write};
use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use scenarios::io::{self as io_scenario, BACKEND_CHECK_IN_FLIGHT, IoConfig, IoOutcome};
use scenarios::{ChildRegistry, IoRow};
use workloads::{Support, Workload};

use super::scenario::{Peers, PythonPeers};
use super::table::Table;

/// Options of `concbench scenario io`.
#[derive(Debug, clap::Args)]
pub(crate) struct IoArgs {
    /// Servers to measure, comma-separated [default: every style that runs `io_wait`].
    #[arg(long, value_delimiter = ',', value_parser = super::style_name_parser())]
    styles: Vec<String>,
    /// Concurrencies C, comma-separated: closed-loop connections, one request each.
    #[arg(long, value_delimiter = ',', default_value = "10,100,1000")]
    concurrency: Vec<usize>,
    /// The backend's delay per request.
    #[arg(long, default_value = "50ms", value_parser = super::load::parse_duration)]
    delay: Duration,
    /// How long each (server, C) phase is recorded.
    #[arg(long, default_value = "3s", value_parser = super::load::parse_duration)]
    duration: Duration,
    /// How long each phase runs before it is recorded: C connections opening and the
    /// first round trips are not the steady state.
    #[arg(long, default_value = "1s", value_parser = super::load::parse_duration)]
    settle: Duration,
    /// Worker threads or processes of every server [default: $CONCBENCH_WORKERS, else the available cores].
    #[arg(long)]
    workers: Option<NonZeroUsize>,
    /// Servers in other languages measured beside the styles [default: python when
    /// python3 is on PATH].
    #[arg(long, value_enum)]
    peers: Option<Peers>,
    /// Skip the backend's own check at 10 000 requests in flight.
    #[arg(long)]
    no_backend_check: bool,
    /// The seed of the order servers are visited in at each C [default: from the clock; printed].
    #[arg(long)]
    seed: Option<u64>,
    /// Also write the rows as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
}

pub(crate) fn run(args: &IoArgs, registry: &ChildRegistry) -> anyhow::Result<()> {
    if args.concurrency.is_empty() || args.concurrency.contains(&0) {
        bail!("--concurrency needs positive counts");
    }
    if args.delay.is_zero() {
        bail!("--delay must be positive: the ideal rate is concurrency / delay");
    }
    // Thousands of client connections, and as many to the backend in its own check.
    super::raise_open_files_limit();
    let workers = match args.workers {
        Some(workers) => workers,
        None => workloads::StyleConfig::default_workers()?,
    };
    let concbench = std::env::current_exe().context("cannot find the concbench binary")?;
    let styles: Vec<&str> = if args.styles.is_empty() {
        catalog::STYLES
            .iter()
            .filter(|entry| (entry.support)(Workload::IoWait) == Support::Runs)
            .map(|entry| entry.name)
            .collect()
    } else {
        args.styles.iter().map(String::as_str).collect()
    };
    let (contenders, python) = super::scenario::contenders_for(
        &concbench,
        &styles,
        Workload::IoWait,
        args.peers,
        workers,
    )?;
    let seed = args.seed.unwrap_or_else(super::seed_from_clock);
    let config = IoConfig {
        concbench,
        contenders,
        concurrencies: args.concurrency.clone(),
        delay: args.delay,
        duration: args.duration,
        warm_up: Duration::from_millis(300),
        settle: args.settle,
        client_threads: loadgen::THROUGHPUT_CLIENT_THREADS,
        check_backend_in_flight: !args.no_backend_check,
        start_timeout: Duration::from_secs(20),
        seed,
    };
    let bar = super::progress::scenario_bar("io");
    let outcome = io_scenario::run(&config, registry, |step| {
        bar.set_length(step.total as u64);
        bar.set_position(step.done as u64);
        bar.set_message(format!("{}: {}", step.name, step.activity));
    })
    .context("the io scenario could not run")?;
    bar.finish_and_clear();

    let mut stdout = io::stdout().lock();
    write!(stdout, "{}", io_table(&config, workers, &outcome, python))?;
    stdout.flush()?;
    if let Some(path) = &args.json {
        super::scenario::write_json(path, &outcome.rows)?;
    }
    super::scenario::save_last_run("io", workers, &outcome.rows)?;
    if outcome.rows.iter().all(|row| row.style == "backend") {
        bail!("no server could be measured");
    }
    super::scenario::fail_on_failures(&outcome.failures)
}

fn io_table(
    config: &IoConfig,
    workers: NonZeroUsize,
    outcome: &IoOutcome,
    python: PythonPeers,
) -> String {
    let mut table = Table::new([
        "server", "lang", "C", "ideal/s", "req/s", "of ideal", "p50", "p99", "errors", "failed",
        "threads", "RSS", "cpu/req",
    ]);
    let mut concurrencies: Vec<usize> = outcome.rows.iter().map(|row| row.concurrency).collect();
    concurrencies.sort_unstable();
    concurrencies.dedup();
    for concurrency in concurrencies {
        for row in outcome
            .rows
            .iter()
            .filter(|row| row.concurrency == concurrency)
        {
            table.push(io_cells(row));
        }
    }
    let mut out = format!(
        "io scenario: every request is `wait 1`, answered by the server asking a backend that replies after {:?}; \
         {workers} workers per server, {:?} recorded per (server, C) after {:?} of settling, closed loop, servers in shuffled order at each C (seed {})\n\
         ideal/s = C / delay (Little's law); `backend` rows drive the backend alone (at each C, and with {BACKEND_CHECK_IN_FLIGHT} \
         in flight at a 1 s delay): the check that it is not the bottleneck\n\
         p99 with ≥: requests still waiting when the phase ended count with the time they had waited\n\n",
        config.delay, config.duration, config.settle, config.seed,
    );
    out.push_str(&table.render());
    match python {
        PythonPeers::Measured => out.push_str(
            "python-* rows: the seed's servers in Python (peers/python), with the same request form.\n",
        ),
        PythonPeers::NotFound => out.push_str("python3 or peers/python not found: no Python rows.\n"),
        PythonPeers::Skipped => {}
    }
    for (name, failure) in &outcome.failures {
        out.push_str(&format!("FAILED: {name}: {failure}\n"));
    }
    out
}

fn io_cells(row: &IoRow) -> Vec<String> {
    let bound = if row.latency_lower_bounds > 0 {
        "≥"
    } else {
        ""
    };
    let micros = |us: Option<u64>| {
        us.map_or_else(
            || "—".to_owned(),
            |us| format!("{bound}{}", super::format_micros(us)),
        )
    };
    vec![
        row.style.clone(),
        row.language.clone(),
        row.concurrency.to_string(),
        format!("{:.0}", row.ideal_rps),
        format!("{:.0}", row.rps),
        format!("{:.0}%", row.efficiency * 100.0),
        micros(row.p50_us),
        micros(row.p99_us),
        row.errors.to_string(),
        row.failed.to_string(),
        row.server_threads
            .map_or_else(|| "—".to_owned(), |threads| threads.to_string()),
        row.rss_bytes.map_or_else(
            || "—".to_owned(),
            |bytes| format!("{:.1}MiB", bytes as f64 / f64::from(1 << 20)),
        ),
        row.server_cpu_us
            .map_or_else(|| "—".to_owned(), |micros| format!("{micros:.1}µs")),
    ]
}
