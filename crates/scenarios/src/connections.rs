//! The connections scenario (C10K): what holding N connections costs each server.
//!
//! For each N (ascending) and each server, in a freshly shuffled order per N, a fresh
//! server child process is started, so that no measurement inherits another's memory:
//!
//! 1. a short warm-up (a few connections, a thousand `fib(1)`, closed), so that what a
//!    server builds once on its first requests (its worker threads' allocator arenas, a
//!    runtime's lazily built parts) is in the baseline rather than charged to the
//!    connections; then, after a short settle, the server's process tree's memory
//!    (`Pss`) is read: the idle baseline;
//! 2. N connections are opened from this process by a [`loadgen::Fleet`], timed;
//! 3. for the phase, N − active of them are held and each sends one `fib(1)` a second
//!    (open loop, staggered across the second), while `active` connections are driven
//!    closed loop by [`loadgen::run`], as the Beazley throughput phase drives its own;
//!    the `active` connections are opened with the others, so that the connect time and
//!    the established count cover all N, and handed over to the load generator (closed,
//!    and reopened by it) as the phase starts;
//! 4. near the phase's end, with all N open, the tree's memory and threads are read
//!    again: `(rss − idle) / established` is what a held connection costs;
//! 5. every connection is closed and the server stopped.
//!
//! A (server, N) that this machine cannot hold safely ([`Limits`]: descriptors on either
//! side, local ports, threads for a server with a thread per connection, memory) is not
//! attempted, and its row says why.

use std::net::SocketAddr;
use std::thread;
use std::time::{Duration, Instant};

use loadgen::{Fleet, IdlePhase, LoadConfig, LoadReport, OpenLimits, RequestSpec, StopAfter};
use workloads::tasks::{UnitKind, UnitLimit, unit_limit};

use crate::child::{ChildRegistry, ServerChild, ServerCommand};
use crate::procfs::{self, TreeMemory};
use crate::rows::ConnectionsRow;

/// The servers that serve each connection on a thread of its own (an acceptor and a
/// thread per connection; the CPU work may run elsewhere), so that N connections are N
/// threads and N must fit under the machine's thread limit: `threads`, `pool`,
/// `process`, `rayon` and `crossbeam` (all `workloads::server::spawn_thread_per_connection`),
/// and the Python peers `python-threads` and `python-processpool`. The catalog has no
/// field for it; a test checks that every name here is a style or peer that runs the
/// connections workload.
pub const THREAD_PER_CONNECTION: [&str; 7] = [
    "threads",
    "pool",
    "process",
    "rayon",
    "crossbeam",
    "python-threads",
    "python-processpool",
];

/// How a server holds its connections, which sets what limits them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionModel {
    /// A thread per connection: limited by the machine's threads too.
    ThreadPerConnection,
    /// Connections multiplexed over a few threads (an event loop, async tasks).
    Multiplexed,
}

/// The connection model of the server named `name` ([`THREAD_PER_CONNECTION`]).
pub fn connection_model(name: &str) -> ConnectionModel {
    if THREAD_PER_CONNECTION.contains(&name) {
        ConnectionModel::ThreadPerConnection
    } else {
        ConnectionModel::Multiplexed
    }
}

/// A server to measure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Server {
    /// How to start it; it must answer the concbench protocol.
    pub command: ServerCommand,
    /// What it is written in, for the rows: `rust`, `python`.
    pub language: String,
    /// How it holds connections.
    pub model: ConnectionModel,
}

/// Descriptors, threads and ports kept free for everything that is not a measured
/// connection: the processes' own files and pipes, the load generator's first check
/// connection, server threads that are not connection threads.
pub const MARGIN: usize = 64;

/// One limit on the connections this machine can hold safely.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limit {
    /// The most connections to attempt under it.
    pub max_connections: usize,
    /// What sets it, for "not attempted" lines.
    pub reason: String,
    /// Whether it binds only servers with a thread per connection.
    pub thread_per_connection_only: bool,
}

/// What this machine can hold safely, read once before the scenario.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Limits {
    /// Every limit that applies.
    pub limits: Vec<Limit>,
}

impl Limits {
    /// This machine's limits, as seen from this process: the client's soft
    /// `RLIMIT_NOFILE` less the descriptors open now (the caller raises it to the hard
    /// limit first), the server's (a child inherits the limit, and every server raises
    /// its soft limit to the hard one), the local port range (one port per connection to
    /// one server), half the available memory at a task's cost a connection, and for a
    /// thread per connection [`unit_limit`] of threads (`ulimit -u`,
    /// `kernel.threads-max`, `vm.max_map_count`, memory). Each less [`MARGIN`].
    pub fn of_this_machine() -> Self {
        let mut limits = Vec::new();
        let less_margin = |units: u64| {
            usize::try_from(units)
                .unwrap_or(usize::MAX)
                .saturating_sub(MARGIN)
        };
        if let Ok((soft, hard)) =
            nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
        {
            let open_now = std::fs::read_dir("/proc/self/fd").map_or(0, Iterator::count) as u64;
            limits.push(Limit {
                max_connections: less_margin(soft.saturating_sub(open_now)),
                reason: format!(
                    "the client's open-file limit (`ulimit -n` {soft}, {open_now} open now, \
                     {MARGIN} kept free)"
                ),
                thread_per_connection_only: false,
            });
            limits.push(Limit {
                max_connections: less_margin(hard),
                reason: format!(
                    "the server's open-file limit (hard `ulimit -n` {hard}, {MARGIN} kept free)"
                ),
                thread_per_connection_only: false,
            });
        }
        if let Some((low, high)) = local_port_range() {
            limits.push(Limit {
                max_connections: less_margin((high + 1).saturating_sub(low)),
                reason: format!(
                    "the local port range ({low}–{high}, net.ipv4.ip_local_port_range, \
                     {MARGIN} kept free)"
                ),
                thread_per_connection_only: false,
            });
        }
        let from_units = |limit: UnitLimit, what: &str, thread_per_connection_only| Limit {
            max_connections: limit.max_units.saturating_sub(MARGIN),
            reason: format!("{} ({what}, {MARGIN} kept free)", limit.reason),
            thread_per_connection_only,
        };
        limits.push(from_units(
            unit_limit(UnitKind::Task),
            "a connection costs at least a task",
            false,
        ));
        limits.push(from_units(
            unit_limit(UnitKind::Thread),
            "a thread per connection",
            true,
        ));
        Self { limits }
    }

    /// `Ok` when `connections` connections to a server of `model` fit under every limit
    /// that applies; otherwise the reason the first one that does not gives.
    pub fn check(&self, connections: usize, model: ConnectionModel) -> Result<(), String> {
        match self.limits.iter().find(|limit| {
            (!limit.thread_per_connection_only || model == ConnectionModel::ThreadPerConnection)
                && connections > limit.max_connections
        }) {
            Some(limit) => Err(format!(
                "{connections} connections are more than this machine holds safely: at most {} under {}",
                limit.max_connections, limit.reason
            )),
            None => Ok(()),
        }
    }
}

/// `net.ipv4.ip_local_port_range`: the ports a client's connections get.
fn local_port_range() -> Option<(u64, u64)> {
    let text = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").ok()?;
    let mut ports = text.split_whitespace().map(str::parse::<u64>);
    Some((ports.next()?.ok()?, ports.next()?.ok()?))
}

/// The scenario's settings.
#[derive(Debug, Clone, PartialEq)]
pub struct ConnectionsConfig {
    /// The servers, in the order of the table.
    pub servers: Vec<Server>,
    /// Connection counts (N); measured in ascending order.
    pub counts: Vec<usize>,
    /// Of each N, the connections driven closed loop (all of them when N is smaller).
    pub active: usize,
    /// How long the phase sends.
    pub duration: Duration,
    /// Between one idle connection's requests.
    pub idle_interval: Duration,
    /// Client threads of the fleet of held connections.
    pub fleet_threads: usize,
    /// How long a server may take to start.
    pub start_timeout: Duration,
    /// One connection not established within this long counts as failed.
    pub connect_timeout: Duration,
    /// What this machine can hold.
    pub limits: Limits,
    /// Seeds each N's order of servers; recorded in the outcome.
    pub seed: u64,
}

/// What the scenario measured.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ConnectionsOutcome {
    /// A row per (server, N), in the servers' order, then N's; not attempted ones too.
    pub rows: Vec<ConnectionsRow>,
    /// What went wrong around a measurement: connections that could not be opened, a
    /// server that did not stop cleanly.
    pub notes: Vec<String>,
    /// The seed of the servers' order.
    pub seed: u64,
}

/// A step of the scenario, for progress reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Step<'a> {
    /// The server.
    pub name: &'a str,
    /// Its N.
    pub connections: usize,
    /// Steps done so far, of `total`.
    pub done: usize,
    /// All steps: servers × counts.
    pub total: usize,
}

/// How long a fresh server settles, after the warm-up, before its idle memory is read.
const IDLE_SETTLE: Duration = Duration::from_millis(300);

/// The warm-up's connections: more than a server's worker threads, so that each of
/// them serves some.
const WARM_UP_CONNECTIONS: usize = 8;

/// The warm-up's requests, over all its connections.
const WARM_UP_REQUESTS: u64 = 1_000;

/// When in the phase the memory with every connection open is read, as a fraction of
/// its duration: late, so that every connection has been served, and before the end,
/// when the load generator closes the active ones.
const MEMORY_SAMPLE_AT: f64 = 0.9;

/// Requests unanswered this long count as timed out.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// The whole opening of N connections, whatever the per-connection timeout.
const OPEN_LIMIT: Duration = Duration::from_secs(60);

/// How long a server has to exit after SIGTERM before it is killed: short, because a
/// server that fell behind N connections may still be working through what they sent
/// (a Python server with ten thousand threads takes many seconds), and the scenario has
/// a server per (server, N) to stop; the row is measured by then, and a note says so.
const STOP_GRACE: Duration = Duration::from_secs(2);

/// Runs the scenario: a row for every (server, N), measured or not attempted; a server
/// that fails is recorded and the scenario carries on with the others. Every server
/// child is stopped before the next starts (and killed on drop, on any path).
pub fn run(
    config: &ConnectionsConfig,
    registry: &ChildRegistry,
    mut on_step: impl FnMut(Step<'_>),
) -> ConnectionsOutcome {
    let mut counts = config.counts.clone();
    counts.sort_unstable();
    counts.dedup();
    let total = counts.len() * config.servers.len();
    let mut outcome = ConnectionsOutcome {
        seed: config.seed,
        ..ConnectionsOutcome::default()
    };
    let mut measured: Vec<(usize, usize, ConnectionsRow)> = Vec::with_capacity(total);
    let mut rng = measure::stats::run_rng(config.seed);
    let mut done = 0;
    for &connections in &counts {
        for index in measure::stats::round_order(&mut rng, config.servers.len()) {
            let server = &config.servers[index];
            on_step(Step {
                name: &server.command.name,
                connections,
                done,
                total,
            });
            let row = measure_one(config, server, connections, registry, &mut outcome.notes);
            measured.push((index, connections, row));
            done += 1;
        }
    }
    on_step(Step {
        name: "",
        connections: 0,
        done: total,
        total,
    });
    measured.sort_by_key(|(index, connections, _)| (*index, *connections));
    outcome.rows = measured.into_iter().map(|(_, _, row)| row).collect();
    outcome
}

/// A row for a (server, N) that was not measured, and why.
fn not_attempted(
    server: &Server,
    connections: usize,
    active: usize,
    reason: String,
) -> ConnectionsRow {
    ConnectionsRow {
        style: server.command.name.clone(),
        language: server.language.clone(),
        connections,
        active,
        established: 0,
        connect_ms: None,
        idle_rss_bytes: None,
        rss_bytes: None,
        bytes_per_connection: None,
        server_threads: None,
        rps: 0.0,
        p50_us: None,
        p99_us: None,
        requests: 0,
        errors: 0,
        failed: 0,
        idle_answered: 0,
        idle_due: 0,
        not_attempted: Some(reason),
    }
}

/// Measures one (server, N) on a fresh server child, stopped before returning.
fn measure_one(
    config: &ConnectionsConfig,
    server: &Server,
    connections: usize,
    registry: &ChildRegistry,
    notes: &mut Vec<String>,
) -> ConnectionsRow {
    let name = server.command.name.as_str();
    let active = config.active.min(connections);
    if let Err(reason) = config.limits.check(connections, server.model) {
        return not_attempted(server, connections, active, reason);
    }
    let child = match ServerChild::start(&server.command, registry, config.start_timeout) {
        Ok(child) => child,
        Err(error) => {
            return not_attempted(
                server,
                connections,
                active,
                format!("could not start: {error}"),
            );
        }
    };
    let row = measure_server(config, server, connections, &child, notes);
    if !child.stop(STOP_GRACE) {
        notes.push(format!(
            "{name} at N={connections}: did not exit cleanly within {STOP_GRACE:?} of SIGTERM (killed)"
        ));
    }
    row
}

/// Steps 1–4 against a started server; the fleet is closed before returning.
fn measure_server(
    config: &ConnectionsConfig,
    server: &Server,
    connections: usize,
    child: &ServerChild,
    notes: &mut Vec<String>,
) -> ConnectionsRow {
    let name = server.command.name.as_str();
    let warm_up = LoadConfig {
        ramp: Duration::ZERO,
        addr: child.addr(),
        connections: WARM_UP_CONNECTIONS,
        threads: 1,
        stop: StopAfter {
            duration: None,
            requests: Some(WARM_UP_REQUESTS),
            max_duration: REQUEST_TIMEOUT,
            settle: Duration::ZERO,
        },
        rate: None,
        request: RequestSpec::Fib { n: 1 },
        request_timeout: REQUEST_TIMEOUT,
    };
    if let Err(error) = loadgen::run(&warm_up, |_| {}) {
        return not_attempted(
            server,
            connections,
            config.active.min(connections),
            format!("the server could not be reached: {error}"),
        );
    }
    thread::sleep(IDLE_SETTLE);
    let pid = child.pid();
    let idle = procfs::tree_memory(pid);
    let limits = OpenLimits {
        connect_timeout: config.connect_timeout,
        open_limit: OPEN_LIMIT,
    };
    let mut fleet = match Fleet::open(child.addr(), connections, config.fleet_threads, limits) {
        Ok(fleet) => fleet,
        Err(error) => {
            return not_attempted(
                server,
                connections,
                config.active.min(connections),
                format!("the client could not run: {error}"),
            );
        }
    };
    let established = fleet.established();
    let failures = fleet.open_failures();
    if failures.total() > 0 {
        notes.push(format!(
            "{name} at N={connections}: {} connections could not be opened ({} out of descriptors, \
             {} refused or reset, {} timed out, {} other); first error: {}",
            failures.total(),
            failures.out_of_descriptors,
            failures.refused,
            failures.timed_out,
            failures.other,
            failures.first_error.as_deref().unwrap_or("none")
        ));
    }
    if established == 0 {
        return not_attempted(
            server,
            connections,
            config.active.min(connections),
            format!(
                "no connection could be opened: {}",
                failures.first_error.as_deref().unwrap_or("unknown error")
            ),
        );
    }
    let connect_ms = fleet.connect_time().as_secs_f64() * 1e3;
    // Handed over: the load generator opens its own.
    let active = fleet.release(config.active.min(established));
    let (active_report, idle_report, loaded) =
        run_phase(config, child.addr(), pid, active, &mut fleet);
    // Close every connection before the server is stopped.
    drop(fleet);

    let active_report = match active_report {
        Some(Ok(report)) => Some(report),
        Some(Err(error)) => {
            return not_attempted(
                server,
                connections,
                active,
                format!("the active connections could not run: {error}"),
            );
        }
        None => None,
    };
    let idle_report = match idle_report {
        Some(Ok(report)) => Some(report),
        Some(Err(error)) => {
            return not_attempted(
                server,
                connections,
                active,
                format!("the idle connections could not run: {error}"),
            );
        }
        None => None,
    };
    if let Some(report) = active_report
        .as_ref()
        .filter(|report| report.latency_lower_bounds > 0)
    {
        notes.push(format!(
            "{name} at N={connections}: the active p99 is a lower bound: {} of the active requests were \
             given up on (timed out or unanswered at the end) and count with the time they had waited",
            report.latency_lower_bounds
        ));
    }
    let bytes_per_connection = match (idle, loaded) {
        (Some(idle), Some(loaded)) => {
            Some((loaded.pss_bytes as f64 - idle.pss_bytes as f64) / established as f64)
        }
        _ => None,
    };
    let reports = || active_report.iter().chain(idle_report.iter());
    ConnectionsRow {
        style: name.to_owned(),
        language: server.language.clone(),
        connections,
        active,
        established,
        connect_ms: Some(connect_ms),
        idle_rss_bytes: idle.map(|memory| memory.pss_bytes),
        rss_bytes: loaded.map(|memory| memory.pss_bytes),
        bytes_per_connection,
        server_threads: loaded.map(|memory| memory.threads),
        rps: active_report.as_ref().map_or(0.0, |report| report.rps),
        p50_us: active_report
            .as_ref()
            .and_then(|report| report.latency.p50_us),
        p99_us: active_report
            .as_ref()
            .and_then(|report| report.latency.p99_us),
        requests: active_report.as_ref().map_or(0, |report| report.requests),
        errors: reports().map(|report| report.errors + report.wrong).sum(),
        failed: reports()
            .map(|report| report.failed + report.timed_out + report.unanswered + report.unsent)
            .sum(),
        idle_answered: idle_report.as_ref().map_or(0, |report| report.right),
        idle_due: idle_report.as_ref().map_or(0, |report| report.due),
        not_attempted: None,
    }
}

/// What one phase measured: the active connections' report, the idle ones', each `None`
/// when there were none, and the server's memory with every connection open.
type PhaseOutcome = (
    Option<Result<LoadReport, loadgen::LoadError>>,
    Option<Result<LoadReport, loadgen::LoadError>>,
    Option<TreeMemory>,
);

/// The phase: `active` connections closed loop through the load generator, the fleet's
/// held connections open loop, and the server's memory read near the end, all at once.
fn run_phase(
    config: &ConnectionsConfig,
    addr: SocketAddr,
    pid: u32,
    active: usize,
    fleet: &mut Fleet,
) -> PhaseOutcome {
    let duration = config.duration;
    let active_load = LoadConfig {
        ramp: Duration::ZERO,
        addr,
        connections: active,
        threads: loadgen::THROUGHPUT_CLIENT_THREADS.min(active.max(1)),
        stop: StopAfter {
            duration: Some(duration),
            requests: None,
            max_duration: duration + REQUEST_TIMEOUT,
            settle: Duration::ZERO,
        },
        rate: None,
        request: RequestSpec::Fib { n: 1 },
        request_timeout: REQUEST_TIMEOUT,
    };
    let idle_phase = IdlePhase {
        request: RequestSpec::Fib { n: 1 },
        duration,
        interval: config.idle_interval,
        request_timeout: REQUEST_TIMEOUT,
    };
    let start = Instant::now();
    thread::scope(|scope| {
        let active_run = (active > 0).then(|| scope.spawn(|| loadgen::run(&active_load, |_| {})));
        let memory = scope.spawn(move || {
            thread::sleep(
                duration
                    .mul_f64(MEMORY_SAMPLE_AT)
                    .saturating_sub(start.elapsed()),
            );
            procfs::tree_memory(pid)
        });
        let idle = (fleet.open_connections() > 0).then(|| fleet.idle_phase(&idle_phase));
        let active = active_run.map(|handle| {
            handle
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        });
        let loaded = memory
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        (active, idle, loaded)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limit(max_connections: usize, thread_per_connection_only: bool) -> Limit {
        Limit {
            max_connections,
            reason: format!("limit {max_connections}"),
            thread_per_connection_only,
        }
    }

    #[test]
    fn a_thread_limit_binds_only_servers_with_a_thread_per_connection() {
        let limits = Limits {
            limits: vec![limit(1_000, false), limit(100, true)],
        };
        assert_eq!(
            limits.check(100, ConnectionModel::ThreadPerConnection),
            Ok(())
        );
        let error = limits
            .check(101, ConnectionModel::ThreadPerConnection)
            .expect_err("above the thread limit");
        assert!(error.contains("at most 100 under limit 100"), "{error}");
        assert_eq!(limits.check(1_000, ConnectionModel::Multiplexed), Ok(()));
        let error = limits
            .check(1_001, ConnectionModel::Multiplexed)
            .expect_err("above the descriptor limit");
        assert!(error.contains("limit 1000"), "{error}");
    }

    #[test]
    fn this_machine_has_descriptor_and_thread_limits() {
        let limits = Limits::of_this_machine();
        assert!(
            limits
                .limits
                .iter()
                .any(|limit| limit.reason.contains("open-file limit")),
            "{limits:?}"
        );
        assert!(
            limits
                .limits
                .iter()
                .any(|limit| limit.thread_per_connection_only),
            "{limits:?}"
        );
        // Nothing fits a billion connections.
        assert!(limits.check(1 << 30, ConnectionModel::Multiplexed).is_err());
        assert_eq!(
            limits.check(1, ConnectionModel::ThreadPerConnection),
            Ok(())
        );
    }

    #[test]
    fn names_the_thread_per_connection_servers() {
        assert_eq!(
            connection_model("threads"),
            ConnectionModel::ThreadPerConnection
        );
        assert_eq!(
            connection_model("python-threads"),
            ConnectionModel::ThreadPerConnection
        );
        assert_eq!(connection_model("tokio"), ConnectionModel::Multiplexed);
        assert_eq!(connection_model("evloop"), ConnectionModel::Multiplexed);
    }
}
