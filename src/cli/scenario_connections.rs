//! `concbench scenario connections`: C10K, per server — N connections held open, most
//! idle, a few active; the server's memory per connection, its threads, and the active
//! connections' rate and tail as N grows.

use std::io::{self, Write};
use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use scenarios::ChildRegistry;
use scenarios::connections::{self, ConnectionsConfig, ConnectionsOutcome, Limits, Server};
use workloads::protocol::DEFAULT_MAX_N;
use workloads::{Support, Workload};

use super::scenario::{
    PYTHON_PEERS_DIR, Peers, PythonPeers, rust_contender, save_last_run, write_json,
};
use super::table::Table;

/// Options of `concbench scenario connections`.
#[derive(Debug, clap::Args)]
pub(crate) struct ConnectionsArgs {
    /// Servers to measure, comma-separated [default: every style that runs the
    /// connections workload].
    #[arg(long, value_delimiter = ',', value_parser = super::style_name_parser())]
    styles: Vec<String>,
    /// Connection counts (N), comma-separated; each (server, N) runs on a fresh server.
    #[arg(long, value_delimiter = ',', default_value = "100,1000,10000")]
    counts: Vec<usize>,
    /// Of each N, the connections driven closed loop with fib(1) (all of N when N is
    /// smaller); the others each send one fib(1) a second.
    #[arg(long, default_value_t = 32)]
    active: usize,
    /// How long the phase with all N connections open sends, e.g. `3s`.
    #[arg(long, default_value = "3s", value_parser = super::load::parse_duration)]
    duration: Duration,
    /// Worker threads or processes of every server [default: $CONCBENCH_WORKERS, else the available cores].
    #[arg(long)]
    workers: Option<NonZeroUsize>,
    /// Servers in other languages measured beside the styles [default: python when
    /// python3 is on PATH]: the seed's own servers, run by python3.
    #[arg(long, value_enum)]
    peers: Option<Peers>,
    /// Where the Python peers live [default: peers/python of this checkout].
    #[arg(long)]
    peers_dir: Option<PathBuf>,
    /// The seed of each N's order of servers [default: from the clock; printed].
    #[arg(long)]
    seed: Option<u64>,
    /// Also write the rows as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
}

/// Between one idle connection's requests.
const IDLE_INTERVAL: Duration = Duration::from_secs(1);

/// Client threads of the fleet of held connections: as many as the load generator's
/// throughput threads, so the idle side is not one thread's speed.
const FLEET_THREADS: usize = loadgen::THROUGHPUT_CLIENT_THREADS;

pub(crate) fn run(args: &ConnectionsArgs, registry: &ChildRegistry) -> anyhow::Result<()> {
    if args.counts.is_empty() || args.counts.contains(&0) {
        bail!("--counts needs positive connection counts");
    }
    if args.duration.is_zero() {
        bail!("--duration must be positive");
    }
    let workers = match args.workers {
        Some(workers) => workers,
        None => workloads::StyleConfig::default_workers()?,
    };
    let styles = styles(&args.styles)?;
    // Before the limits are read, and before any server starts: they inherit it.
    super::raise_open_files_limit();
    let concbench = std::env::current_exe().context("cannot find the concbench binary")?;
    let mut contenders: Vec<_> = styles
        .iter()
        .map(|style| rust_contender(&concbench, style, DEFAULT_MAX_N, workers))
        .collect();
    let peers_dir = args
        .peers_dir
        .clone()
        .unwrap_or_else(|| PYTHON_PEERS_DIR.into());
    let (peers, python) =
        super::scenario::python_peers(args.peers, &peers_dir, DEFAULT_MAX_N, workers)?;
    contenders.extend(peers);
    let servers = contenders
        .into_iter()
        .map(|contender| Server {
            model: connections::connection_model(&contender.command.name),
            command: contender.command,
            language: contender.language,
        })
        .collect();
    let config = ConnectionsConfig {
        servers,
        counts: args.counts.clone(),
        active: args.active,
        duration: args.duration,
        idle_interval: IDLE_INTERVAL,
        fleet_threads: FLEET_THREADS,
        start_timeout: Duration::from_secs(20),
        connect_timeout: Duration::from_secs(5),
        limits: Limits::of_this_machine(),
        seed: args.seed.unwrap_or_else(super::seed_from_clock),
    };

    let bar = super::progress::scenario_bar("connections");
    let outcome = connections::run(&config, registry, |step| {
        bar.set_length(step.total as u64);
        bar.set_position(step.done as u64);
        bar.set_message(format!("{}: {} connections", step.name, step.connections));
    });
    bar.finish_and_clear();

    let mut stdout = io::stdout().lock();
    write!(stdout, "{}", table(&config, workers, &outcome, python))?;
    stdout.flush()?;
    if let Some(path) = &args.json {
        write_json(path, &outcome.rows)?;
    }
    save_last_run("connections", workers, &outcome.rows)?;
    if outcome.rows.iter().all(|row| row.not_attempted.is_some()) {
        bail!("no (server, N) could be measured");
    }
    Ok(())
}

/// The styles to measure: those named, each of which must run the connections workload
/// (a usage error, exit code 2, with the catalog's reason, for one that does not), or by
/// default every style that does.
fn styles(named: &[String]) -> anyhow::Result<Vec<&'static str>> {
    if named.is_empty() {
        return Ok(catalog::STYLES
            .iter()
            .filter(|entry| (entry.support)(Workload::Connections) == Support::Runs)
            .map(|entry| entry.name)
            .collect());
    }
    named
        .iter()
        .map(|name| {
            let entry = catalog::find(name).context("unknown style")?;
            match (entry.support)(Workload::Connections) {
                Support::Runs => Ok(entry.name),
                Support::NotApplicable(reason) => Err(super::Exit::usage(format!(
                    "{} does not run the connections workload: {reason}",
                    entry.name
                ))
                .into()),
            }
        })
        .collect()
}

/// Bytes as a short human string: `812B`, `8.2KiB`, `12.3MiB`; negative when the memory
/// shrank.
fn format_bytes(bytes: f64) -> String {
    let magnitude = bytes.abs();
    if magnitude >= f64::from(1 << 20) {
        format!("{:.1}MiB", bytes / f64::from(1 << 20))
    } else if magnitude >= 1024.0 {
        format!("{:.1}KiB", bytes / 1024.0)
    } else {
        format!("{bytes:.0}B")
    }
}

fn table(
    config: &ConnectionsConfig,
    workers: NonZeroUsize,
    outcome: &ConnectionsOutcome,
    python: PythonPeers,
) -> String {
    let mut table = Table::new([
        "server",
        "lang",
        "N",
        "established",
        "connect",
        "idle RSS",
        "RSS",
        "bytes/conn",
        "threads",
        "active req/s",
        "active p99",
        "idle answered/due",
    ]);
    let mut notes = Vec::new();
    let dash = || "—".to_owned();
    for row in &outcome.rows {
        let measured = row.not_attempted.is_none();
        let bytes =
            |bytes: Option<u64>| bytes.map_or_else(dash, |bytes| format_bytes(bytes as f64));
        table.push(vec![
            row.style.clone(),
            row.language.clone(),
            row.connections.to_string(),
            if measured {
                row.established.to_string()
            } else {
                "not attempted".to_owned()
            },
            row.connect_ms.map_or_else(dash, |ms| format!("{ms:.0}ms")),
            bytes(row.idle_rss_bytes),
            bytes(row.rss_bytes),
            row.bytes_per_connection.map_or_else(dash, format_bytes),
            row.server_threads
                .map_or_else(dash, |threads| threads.to_string()),
            if measured && row.active > 0 {
                format!("{:.0}", row.rps)
            } else {
                dash()
            },
            row.p99_us.map_or_else(dash, super::format_micros),
            if measured && row.idle_due > 0 {
                format!("{}/{}", row.idle_answered, row.idle_due)
            } else {
                dash()
            },
        ]);
        if let Some(reason) = &row.not_attempted {
            notes.push(format!(
                "{} at N={}: not attempted: {reason}",
                row.style, row.connections
            ));
        } else if row.errors > 0 || row.failed > 0 || row.established < row.connections {
            notes.push(format!(
                "{} at N={}: {} of {} connections established, {} error replies, {} requests failed, \
                 timed out, unanswered or never sent",
                row.style, row.connections, row.established, row.connections, row.errors, row.failed
            ));
        }
    }
    let mut out = format!(
        "Connections scenario (C10K): N connections to each server, every (server, N) on a fresh server process \
         ({workers} workers), servers in a shuffled order per N (seed {}); for {:?}, {} of them send fib(1) \
         closed loop (active) and each of the others one fib(1) every {:?} (open loop, staggered)\n\
         RSS: the server's process tree's proportional resident memory (Pss), before any connection (idle) and \
         with all N open near the phase's end; bytes/conn = (RSS − idle RSS) / established; threads: the \
         server's, with all N open\n\n",
        outcome.seed, config.duration, config.active, config.idle_interval
    );
    out.push_str(&table.render());
    match python {
        PythonPeers::Measured => out.push_str(
            "python-* rows: the seed's servers in Python (peers/python), measured by the same client.\n",
        ),
        PythonPeers::NotFound => out.push_str("python3 or peers/python not found: no Python rows.\n"),
        PythonPeers::Skipped => {}
    }
    for note in notes.iter().chain(&outcome.notes) {
        out.push_str(&format!("note: {note}\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_bytes_in_the_largest_fitting_unit() {
        assert_eq!(format_bytes(812.0), "812B");
        assert_eq!(format_bytes(8_396.8), "8.2KiB");
        assert_eq!(format_bytes(-2_048.0), "-2.0KiB");
        assert_eq!(format_bytes(12.3 * f64::from(1 << 20)), "12.3MiB");
    }

    #[test]
    fn a_style_without_the_workload_is_a_usage_error_with_its_reason() {
        let error = styles(&["seq".to_owned()]).expect_err("seq serves one connection at a time");
        let exit = error.downcast_ref::<super::super::Exit>().expect("an Exit");
        assert_eq!(exit.code, 2);
        assert!(
            exit.message
                .contains("does not run the connections workload")
        );
        let default = styles(&[]).expect("the default styles");
        assert!(
            default.contains(&"tokio") && !default.contains(&"seq"),
            "{default:?}"
        );
    }
}
