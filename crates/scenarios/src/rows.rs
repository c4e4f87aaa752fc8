//! The JSON rows the scenarios write, and `concbench report` reads.

use serde::{Deserialize, Serialize};

/// Which part of the Beazley scenario a row measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// `fib(1)` requests as fast as the server answers, closed loop.
    Throughput,
    /// A `fib(1)` probe while other connections loop a long `fib(n)`.
    Hog,
}

/// One measurement of one server in the Beazley scenario.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BeazleyRow {
    /// The server: a concbench style, a Python peer, or `redis-server`.
    pub style: String,
    /// What the server is written in: `rust`, `python`, or `c` (redis).
    pub language: String,
    /// The phase measured.
    pub phase: Phase,
    /// Connections measured: the load's, or the probe's in the hog phase.
    pub connections: usize,
    /// Replies per second on the measured connections.
    pub rps: f64,
    /// Median latency, µs; `null` when no latency was recorded (the server never
    /// answered and nothing was given up on), never 0.
    pub p50_us: Option<u64>,
    /// 99th-percentile latency, µs.
    pub p99_us: Option<u64>,
    /// Largest latency, µs.
    pub max_us: Option<u64>,
    /// Replies received on the measured connections.
    pub requests: u64,
    /// Replies that were an error or a wrong answer.
    pub errors: u64,
    /// Requests that failed, timed out, were never answered, or (open loop) fell due
    /// and were never sent.
    pub failed: u64,
    /// Every request the client owed on the measured connections (open loop: every
    /// request that fell due), answered or not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub due: Option<u64>,
    /// How many of the latencies behind the percentiles are lower bounds (requests given
    /// up on, counted from their due time to the end): when not 0, the true p99 and max
    /// are at least what the row says.
    #[serde(default)]
    pub latency_lower_bounds: u64,
    /// CPU time the server (and its worker processes) spent per reply during the phase,
    /// µs: what a request costs the server, even when the client sets the rate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_cpu_us: Option<f64>,
    /// The part of `server_cpu_us` spent in user space, µs per reply: the server's own
    /// code, without the kernel's socket work, which every server pays alike.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_user_us: Option<f64>,
    /// Throughput phase: the client's threads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_threads: Option<usize>,
    /// Throughput phase: the client's CPU time per reply, µs (this process's, while the
    /// server ran apart): with the rate and the threads, how busy the client was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_cpu_us: Option<f64>,
    /// Throughput phase: the rate of each round's slice, in round order (the phase runs
    /// in interleaved rounds; `rps` is over all of them together).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub round_rps: Vec<f64>,
    /// A `PING` server's throughput row: its rate through `redis-benchmark` with the
    /// same connection count, right after the load generator's phase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redis_benchmark_rps: Option<f64>,
    /// Hog phase: the `n` the hog connections loop on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hog_n: Option<u32>,
    /// Hog phase: how many hog connections looped `fib(hog_n)`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hogs: Option<usize>,
    /// Hog phase: the hog connections' completed requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hog_requests: Option<u64>,
    /// How client and server shared the machine: `shared` (neither pinned) or
    /// `isolated` (each pinned to its own CPUs); absent in rows written before the
    /// arrangements, which were shared.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arrangement: Option<String>,
    /// The CPUs the server was pinned to (`0-1,3`), when it was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_cpus: Option<String>,
    /// The CPUs the client (the load generator) was pinned to, when it was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_cpus: Option<String>,
    /// The prefix every server command was started under (`ip netns exec bench-srv`,
    /// `ssh host`), when one was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_launcher: Option<String>,
    /// The server's worker threads or processes, when it has a worker count (absent in
    /// rows written before the core-count sweep, and for redis-server).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workers: Option<usize>,
    /// Measured only for the core-count sweep, at another worker count than the run's
    /// default: a throughput row of the shared arrangement, left out of every table but
    /// the sweep's.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub sweep_point: bool,
}

impl BeazleyRow {
    /// Whether the row was measured with client and server on CPUs of their own (the
    /// `isolated` arrangement); every other row shares the machine.
    pub fn is_isolated(&self) -> bool {
        self.arrangement.as_deref() == Some("isolated")
    }

    /// Whether the row belongs to the run's main tables: measured at the default worker
    /// count, with client and server sharing the machine (not an isolated row, not a
    /// point of the core-count sweep).
    pub fn is_main(&self) -> bool {
        !self.is_isolated() && !self.sweep_point
    }

    /// A row from a load report.
    pub fn from_report(
        style: &str,
        language: &str,
        phase: Phase,
        report: &loadgen::LoadReport,
    ) -> Self {
        Self {
            style: style.to_owned(),
            language: language.to_owned(),
            phase,
            connections: report.connections,
            rps: report.rps,
            p50_us: report.latency.p50_us,
            p99_us: report.latency.p99_us,
            max_us: report.latency.max_us,
            requests: report.requests,
            errors: report.errors + report.wrong,
            failed: report.failed + report.timed_out + report.unanswered + report.unsent,
            due: Some(report.due),
            latency_lower_bounds: report.latency_lower_bounds,
            server_cpu_us: None,
            server_user_us: None,
            client_threads: None,
            client_cpu_us: None,
            round_rps: Vec::new(),
            redis_benchmark_rps: None,
            hog_n: None,
            hogs: None,
            hog_requests: None,
            arrangement: None,
            server_cpus: None,
            client_cpus: None,
            server_launcher: None,
            workers: None,
            sweep_point: false,
        }
    }
}

/// One measurement of the tasks scenario: one style holding `n_tasks` sleeping units.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskRow {
    /// The style.
    pub style: String,
    /// What a unit is in it: `tasks`, `threads`, `processes`.
    pub unit: String,
    /// Units asked for.
    pub n_tasks: usize,
    /// Time until every unit was spawned, ms; `None` when not measured.
    pub spawn_ms: Option<f64>,
    /// Time until every unit had woken and finished, ms.
    pub wall_ms: Option<f64>,
    /// Peak resident memory of the measuring process, plus (for processes) the peak
    /// private memory of its unit processes, bytes.
    pub peak_rss_bytes: Option<u64>,
    /// Resident memory of the measuring process before the units, bytes.
    pub baseline_rss_bytes: Option<u64>,
    /// Memory per unit: `(peak - baseline) / n_tasks`; for processes, each unit
    /// process's own private memory (measured while alive) plus the parent's share.
    pub bytes_per_task: Option<f64>,
    /// Why this size was not measured (above a safe limit, a failure).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_attempted: Option<String>,
}

/// One (server, N) of the `connections` scenario (C10K): N connections held open, most
/// of them idle, a few driven closed loop.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConnectionsRow {
    /// The server: a concbench style or a Python peer.
    pub style: String,
    /// What the server is written in: `rust` or `python`.
    pub language: String,
    /// Connections asked for (N).
    pub connections: usize,
    /// Of them, driven closed loop with `fib(1)` during the phase; the rest each send
    /// one `fib(1)` a second.
    pub active: usize,
    /// Connections that were open when the phase began.
    pub established: usize,
    /// Time to open all N, ms.
    pub connect_ms: Option<f64>,
    /// The server's process tree's proportional resident memory before any connection,
    /// bytes.
    pub idle_rss_bytes: Option<u64>,
    /// The same, with the N connections open, at the phase's end, bytes.
    pub rss_bytes: Option<u64>,
    /// `(rss_bytes - idle_rss_bytes) / established`: what a held connection costs.
    pub bytes_per_connection: Option<f64>,
    /// The server's threads, over its processes, with the N connections open.
    pub server_threads: Option<u64>,
    /// The active connections' replies per second.
    pub rps: f64,
    /// The active connections' median latency, µs.
    pub p50_us: Option<u64>,
    /// The active connections' 99th-percentile latency, µs.
    pub p99_us: Option<u64>,
    /// The active connections' replies.
    pub requests: u64,
    /// Error or wrong replies, on any connection.
    pub errors: u64,
    /// Requests that failed, timed out or were never answered, on any connection.
    pub failed: u64,
    /// The idle connections' requests that were answered …
    pub idle_answered: u64,
    /// … of those that fell due.
    pub idle_due: u64,
    /// Why this (server, N) was not measured: above what the machine can hold safely,
    /// or the server could not be started or reached.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_attempted: Option<String>,
}

/// One (server, concurrency) of the `io` scenario: closed-loop clients whose every
/// request (`wait 1`) the server answers by asking a backend that takes `delay_ms`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IoRow {
    /// The server: a concbench style, a Python peer, or `backend` (the backend alone,
    /// driven directly: the check that it is not the bottleneck).
    pub style: String,
    /// What the server is written in: `rust` or `python`.
    pub language: String,
    /// Client connections, each with one request outstanding (C).
    pub concurrency: usize,
    /// The backend's delay, ms.
    pub delay_ms: f64,
    /// The Little's-law ideal: C / delay, replies per second.
    pub ideal_rps: f64,
    /// Replies per second achieved.
    pub rps: f64,
    /// `rps / ideal_rps`.
    pub efficiency: f64,
    /// Median latency, µs.
    pub p50_us: Option<u64>,
    /// 99th-percentile latency, µs.
    pub p99_us: Option<u64>,
    /// Largest latency, µs.
    pub max_us: Option<u64>,
    /// Right replies.
    pub requests: u64,
    /// Error or wrong replies.
    pub errors: u64,
    /// Requests that failed, timed out or were never answered.
    pub failed: u64,
    /// How many latencies are lower bounds (requests given up on).
    #[serde(default)]
    pub latency_lower_bounds: u64,
    /// The server's threads, over its processes, at the phase's end.
    pub server_threads: Option<u64>,
    /// The server's process tree's proportional resident memory at the phase's end.
    pub rss_bytes: Option<u64>,
    /// The server's CPU time per reply during the phase, µs.
    pub server_cpu_us: Option<f64>,
    /// Why this (server, C) was not measured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_attempted: Option<String>,
}

/// The file, in the results directory, where `benches/server.rs` leaves its
/// [`ThroughputBenchRow`]s (beside `bench-server.meta.json`).
pub const THROUGHPUT_BENCH_ROWS: &str = "bench-server.json";

/// What the throughput bench measured beside criterion's times, for one server at one
/// connection count: how evenly its connections were served, and what a request cost
/// the client and the server, so a reader can see the client is not what limits the
/// rate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ThroughputBenchRow {
    /// The server's style.
    pub style: String,
    /// Client connections.
    pub connections: usize,
    /// The client's threads.
    pub client_threads: usize,
    /// Requests per timed window, over all the connections.
    pub window: u64,
    /// Requests in every timed window together.
    pub requests: u64,
    /// The fewest replies one connection got in any window.
    pub fewest_per_connection: u64,
    /// The most replies one connection got in any window.
    pub most_per_connection: u64,
    /// The client's CPU time (user + system) per request, µs.
    pub client_cpu_us: f64,
    /// The server's process tree's CPU time per request, µs; `None` when `/proc` could
    /// not be read.
    pub server_cpu_us: Option<f64>,
    /// How client and server sat on the CPUs, as the Beazley rows name it: `isolated`
    /// (each pinned to CPUs of its own, [`crate::cpus::isolation_split`]) or `shared`
    /// (neither pinned); absent in files written before 2026-12-03's second report,
    /// whose rows were all shared.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arrangement: Option<String>,
    /// The CPUs the server was pinned to, in `taskset -c` form, when it was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_cpus: Option<String>,
    /// The CPUs the client was pinned to, when it was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_cpus: Option<String>,
}

impl ThroughputBenchRow {
    /// The share each connection would get if the server were perfectly even.
    pub fn even_share(&self) -> u64 {
        self.window / self.connections.max(1) as u64
    }

    /// Whether client and server were pinned apart.
    pub fn is_isolated(&self) -> bool {
        self.arrangement.as_deref() == Some("isolated")
    }
}

/// What a scenario or bench run records about itself, saved beside its results as
/// `<name>.meta.json` so that a report can say how its numbers were produced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunMeta {
    /// The command, as a user would type it.
    pub command: String,
    /// The worker count every style got.
    pub workers: usize,
    /// When the run was recorded, seconds since the Unix epoch; orders a report's
    /// "how produced" list (0 when unknown).
    #[serde(default)]
    pub recorded_at: u64,
}

impl RunMeta {
    /// A record of `command`, run with `workers` workers, made now.
    pub fn now(command: String, workers: usize) -> Self {
        let recorded_at = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |since| since.as_secs());
        Self {
            command,
            workers,
            recorded_at,
        }
    }
}

/// One (server, fraction) of the `rate-sweep` scenario: open-loop `fib(1)` at a fraction
/// of the server's own closed-loop maximum over the same connections, latency counted
/// from each request's due time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RateRow {
    /// The server: a concbench style or a Python peer.
    pub style: String,
    /// What the server is written in: `rust` or `python`.
    pub language: String,
    /// Client connections, in the maximum's measurement and in every phase.
    pub connections: usize,
    /// The server's closed-loop `fib(1)` rate over `connections`, replies per second:
    /// what the fractions are of.
    pub max_rps: f64,
    /// The share of `max_rps` offered (0.8 for 80 %).
    pub fraction: f64,
    /// `fraction × max_rps`: the open-loop rate the client scheduled, requests per
    /// second.
    pub offered_rps: f64,
    /// Replies per second over the recorded window.
    pub achieved_rps: f64,
    /// Median latency from the due time, µs; `null` when none was recorded.
    pub p50_us: Option<u64>,
    /// 90th percentile, µs.
    pub p90_us: Option<u64>,
    /// 99th percentile, µs.
    pub p99_us: Option<u64>,
    /// 99.9th percentile, µs.
    pub p999_us: Option<u64>,
    /// Largest latency, µs.
    pub max_us: Option<u64>,
    /// Requests that fell due in the recorded window, answered or not.
    pub due: u64,
    /// Right replies.
    pub answered: u64,
    /// Error or wrong replies.
    pub errors: u64,
    /// Requests that failed, timed out, were never answered or fell due and were never
    /// sent.
    pub failed: u64,
    /// How many latencies are lower bounds (requests given up on, counted from their due
    /// time until the client gave up): when not 0, the percentiles are at least what the
    /// row says.
    pub latency_lower_bounds: u64,
    /// The client's send lateness at p99, µs from each sent request's due time: the part
    /// of every latency that is the client's, not the server's. Absent in rows written
    /// before the client paced with a timerfd (when it was up to 1 ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub send_lateness_p99_us: Option<u64>,
    /// The client's largest send lateness, µs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub send_lateness_max_us: Option<u64>,
}
