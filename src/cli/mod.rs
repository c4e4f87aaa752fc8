//! One module per subcommand, and what they share.

pub(crate) mod backend;
pub(crate) mod compare;
pub(crate) mod list;
pub(crate) mod load;
pub(crate) mod measure;
mod progress;
pub(crate) mod regress;
pub(crate) mod report;
pub(crate) mod scenario;
mod scenario_connections;
mod scenario_io;
mod scenario_rate;
pub(crate) mod serve;
mod table;
pub(crate) mod tasks_probe;

use std::num::NonZeroUsize;

use anyhow::Context;
use workloads::StyleConfig;

/// The configuration every style is built from: `workers` (or `CONCBENCH_WORKERS`, or
/// the available cores) and this very binary as the process style's worker.
pub(crate) fn style_config(workers: Option<NonZeroUsize>) -> anyhow::Result<StyleConfig> {
    let workers = match workers {
        Some(workers) => workers,
        None => StyleConfig::default_workers()?,
    };
    let binary =
        std::env::current_exe().context("cannot find the concbench binary for worker processes")?;
    Ok(StyleConfig::new(workers).with_worker_command(catalog::worker_command(&binary)))
}

/// Raises this process's soft limit on open files to its hard limit, so that a server or
/// client can hold as many connections as the machine allows (the `connections`
/// workload); children inherit it. A failure leaves the limit as it was: the run then
/// reports what it could not open.
pub(crate) fn raise_open_files_limit() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE)
        && soft < hard
    {
        let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
    }
}

/// A listener on `addr` whose accept queue holds `SOMAXCONN` connections, not std's
/// 128: thousands of clients connecting at once (the `connections` and `io` scenarios)
/// would otherwise see their SYNs dropped and retried a second later, which measures
/// the queue, not the server. Every server gets the same listener.
pub(crate) fn bind_listener(addr: std::net::SocketAddr) -> anyhow::Result<std::net::TcpListener> {
    use nix::sys::socket::{Backlog, listen};
    let listener =
        std::net::TcpListener::bind(addr).with_context(|| format!("cannot listen on {addr}"))?;
    // Listening again on a listening socket only changes its queue's length.
    listen(&listener, Backlog::MAXCONN)
        .with_context(|| format!("cannot lengthen the accept queue of {addr}"))?;
    Ok(listener)
}

/// clap's parser for a style name: one of the catalog's, listed in `--help` and in the
/// error for any other.
pub(crate) fn style_name_parser() -> clap::builder::PossibleValuesParser {
    clap::builder::PossibleValuesParser::new(catalog::names())
}

/// A latency in microseconds as a short human string: `850µs`, `12.3ms`, `1.20s`.
pub(crate) fn format_micros(micros: u64) -> String {
    match micros {
        0..1_000 => format!("{micros}µs"),
        1_000..1_000_000 => format!("{:.1}ms", micros as f64 / 1e3),
        _ => format!("{:.2}s", micros as f64 / 1e6),
    }
}

/// An error that ends the process with its own exit code: 2 for input the user must
/// fix, 1 for a failed check.
#[derive(Debug)]
pub(crate) struct Exit {
    pub(crate) code: u8,
    pub(crate) message: String,
}

impl Exit {
    /// Unusable input (a missing baseline, say): exit code 2.
    pub(crate) fn usage(message: String) -> Self {
        Self { code: 2, message }
    }
}

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Exit {}

/// A seed for shuffled rounds when none is given: the clock's nanoseconds (printed with
/// the results, so that a run's order can be repeated).
fn seed_from_clock() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_nanos() as u64)
}
