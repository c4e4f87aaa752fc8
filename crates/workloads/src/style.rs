//! The style contract: what every concurrency style must answer.

use std::ffi::OsString;
use std::fmt;
use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::time::Duration;

use std::net::TcpListener;

use crate::inputs::ForkJoin;
use crate::server::{ServeConfig, ServerHandle};
use crate::tasks::{PingPong, Sleepers, UnitKind};

/// A concurrency style, built and ready to run workloads.
///
/// A style owns its pool, runtime or processes: it builds them once, in
/// [`StyleEntry::build`], from [`StyleConfig::workers`], and releases them when dropped.
/// Every method runs the whole workload before returning — everything it spawned has
/// finished — and returns the answer unchecked; callers check it (see
/// [`crate::check_fib_answers`]).
///
/// Adding a workload adds a method here, so every style fails to compile until it has
/// an answer, or an explicit [`StyleError::NotApplicable`] whose reason its entry's
/// [`StyleEntry::support`] also gives.
pub trait Style: Send + Sync {
    /// `fib_batch` and `fib_skewed`: `fib(n)` for every input, answers in input order.
    fn fib_batch(&self, inputs: &[u32]) -> Result<Vec<u64>, StyleError>;

    /// `fib_forkjoin`: `fib(job.n)` by recursive splitting down to `job.cutoff`.
    fn fib_forkjoin(&self, job: ForkJoin) -> Result<u64, StyleError>;

    /// `spawn`: spawns `n_units` units, unit `i` returning
    /// [`spawn_unit(i)`](crate::tasks::spawn_unit), and waits for every one of them.
    /// Answers in unit order.
    fn spawn(&self, n_units: usize) -> Result<Vec<u64>, StyleError>;

    /// `ping_pong`: two units exchange `n_messages` pings and as many pongs over the
    /// style's own channel, each checking the order of what it receives.
    fn ping_pong(&self, n_messages: u64) -> Result<PingPong, StyleError>;

    /// `sleepers`: `n_units` units each wait `sleep` on the style's own timer, then
    /// finish; returns when all have.
    fn sleepers(&self, n_units: usize, sleep: Duration) -> Result<Sleepers, StyleError>;

    /// `throughput`, `hog_latency`, `connections` and `io_wait`: serves the wire protocol ([`crate::protocol`]) on
    /// `listener`, in the background, until the returned handle is stopped or dropped.
    /// Runs on the style's own pool or runtime, built in [`StyleEntry::build`].
    fn serve(&self, listener: TcpListener, config: ServeConfig)
    -> Result<ServerHandle, StyleError>;
}

/// A workload of the matrix that `concbench list` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Workload {
    /// Parallel map of naive `fib` over equal inputs.
    FibBatch,
    /// Parallel map of naive `fib` over heavy-tailed inputs.
    FibSkewed,
    /// One recursive parallel `fib(n)` with a sequential cutoff.
    FibForkJoin,
    /// Spawn N trivial units and wait for all.
    Spawn,
    /// Two units exchanging M messages over the style's channel.
    PingPong,
    /// N units each waiting on a timer.
    Sleepers,
    /// The seed's `perf2`: many connections sending `fib(1)`; requests per second.
    Throughput,
    /// The seed's `perf1`, inverted: connections looping a long `fib(n)` while a probe
    /// connection measures the latency of `fib(1)`.
    HogLatency,
    /// C10K: many open, mostly idle connections; server memory per connection, and the
    /// active connections' rate and tail as their number grows.
    Connections,
    /// Requests the server answers by asking a slow backend (`wait N`): the achieved
    /// rate against the Little's-law ideal, concurrency / backend delay.
    IoWait,
}

impl Workload {
    /// Every workload, in the order of the matrix's columns.
    pub const ALL: [Workload; 10] = [
        Self::FibBatch,
        Self::FibSkewed,
        Self::FibForkJoin,
        Self::Spawn,
        Self::PingPong,
        Self::Sleepers,
        Self::Throughput,
        Self::HogLatency,
        Self::Connections,
        Self::IoWait,
    ];

    /// The workload's name, as used by criterion groups and the matrix.
    pub fn name(self) -> &'static str {
        match self {
            Self::FibBatch => "fib_batch",
            Self::FibSkewed => "fib_skewed",
            Self::FibForkJoin => "fib_forkjoin",
            Self::Spawn => "spawn",
            Self::PingPong => "ping_pong",
            Self::Sleepers => "sleepers",
            Self::Throughput => "throughput",
            Self::HogLatency => "hog_latency",
            Self::Connections => "connections",
            Self::IoWait => "io_wait",
        }
    }
}

impl fmt::Display for Workload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Whether a style runs a workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Support {
    /// The style runs the workload for real.
    Runs,
    /// The style cannot run the workload in a way its experts would recognise; the
    /// reason is printed in the matrix.
    NotApplicable(&'static str),
}

/// A style as the catalog lists it: a name, a one-line description, what it supports
/// (known without building it) and how to build it.
#[derive(Clone, Copy)]
pub struct StyleEntry {
    /// Row name in the matrix and `BenchmarkId` function name: `<style>` or
    /// `<style>-<variant>`.
    pub name: &'static str,
    /// Where the work runs, in one line.
    pub summary: &'static str,
    /// Support for each workload. Must agree with what the built style returns; the
    /// conformance tests check that it does.
    pub support: fn(Workload) -> Support,
    /// Builds the style's pool, runtime or processes.
    pub build: fn(&StyleConfig) -> Result<Box<dyn Style>, StyleError>,
    /// How many connections its server serves at once.
    pub server_model: ServerModel,
    /// How many threads its CPU workloads run on.
    pub cpu_threads: CpuThreads,
    /// What one unit of `spawn` and `sleepers` is (a task, a thread, a process), which
    /// sets how many of them the machine can hold.
    pub unit: UnitKind,
}

/// How many threads a style's CPU workloads (`fib_batch`, `fib_skewed`, `fib_forkjoin`)
/// run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CpuThreads {
    /// One thread, whatever the worker count: the baseline, an event loop, a
    /// current-thread runtime. Such a style does the baseline's sequential work plus a
    /// small overhead, so within one run their times must agree; how far they do not is
    /// a gauge of the run's noise.
    One,
    /// [`StyleConfig::workers`] threads or processes.
    Workers,
}

/// How many connections a style's server serves at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerModel {
    /// One connection, served to its end before the next is accepted: a second client
    /// waits for the first to leave. Loads of more than one connection do not apply.
    Iterative,
    /// Every open connection, concurrently.
    Concurrent,
}

impl fmt::Debug for StyleEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StyleEntry")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// What every style is built from; the same for every style in one comparison.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StyleConfig {
    /// Worker threads, pool size or worker processes: every style gets this many.
    pub workers: NonZeroUsize,
    /// How to start a worker process, for styles that run work in other processes.
    pub worker_command: Option<WorkerCommand>,
}

/// The environment variable that overrides the default worker count.
pub const WORKERS_ENV: &str = "CONCBENCH_WORKERS";

impl StyleConfig {
    /// `workers` workers and no worker command.
    pub fn new(workers: NonZeroUsize) -> Self {
        Self {
            workers,
            worker_command: None,
        }
    }

    /// The worker count from `CONCBENCH_WORKERS` when set to a positive integer, else
    /// the available cores ([`std::thread::available_parallelism`], which honours CPU
    /// affinity and cgroup quotas). An unusable value is an error, not a silent default.
    pub fn default_workers() -> Result<NonZeroUsize, StyleError> {
        match std::env::var(WORKERS_ENV) {
            Ok(text) => text.trim().parse::<NonZeroUsize>().map_err(|_| {
                StyleError::Config(format!("{WORKERS_ENV}={text:?} is not a positive integer"))
            }),
            Err(std::env::VarError::NotPresent) => {
                Ok(std::thread::available_parallelism().unwrap_or(NonZeroUsize::MIN))
            }
            Err(std::env::VarError::NotUnicode(text)) => Err(StyleError::Config(format!(
                "{WORKERS_ENV}={text:?} is not a positive integer"
            ))),
        }
    }

    /// Adds the command that starts a worker process.
    pub fn with_worker_command(mut self, worker_command: WorkerCommand) -> Self {
        self.worker_command = Some(worker_command);
        self
    }
}

/// A program and arguments that, when run, serve as a worker process (for example the
/// `concbench` binary with its hidden `worker` subcommand).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerCommand {
    /// The executable.
    pub program: PathBuf,
    /// Arguments placed before any the style adds.
    pub args: Vec<OsString>,
}

/// Why a style could not produce an answer.
#[derive(Debug, thiserror::Error)]
pub enum StyleError {
    /// The style does not run this workload; the matrix prints the same reason.
    #[error("not applicable: {0}")]
    NotApplicable(&'static str),
    /// The style's configuration is unusable.
    #[error("configuration: {0}")]
    Config(String),
    /// An operating-system resource (thread, process, pipe, runtime) failed.
    #[error("{context}: {source}")]
    Io {
        /// What the style was doing.
        context: &'static str,
        /// The underlying error.
        source: std::io::Error,
    },
    /// More units were asked for than this machine can safely hold at once.
    #[error("not attempted: {requested} units exceed the limit of {max_units} ({reason})")]
    TooManyUnits {
        /// Units asked for.
        requested: usize,
        /// The most this machine may hold.
        max_units: usize,
        /// What sets that limit.
        reason: String,
    },
    /// A worker (thread, task or process) died or answered garbage.
    #[error("worker failed: {0}")]
    WorkerFailed(String),
}

impl StyleError {
    /// Wraps an I/O error with what the style was doing.
    pub fn io(context: &'static str) -> impl FnOnce(std::io::Error) -> Self {
        move |source| Self::Io { context, source }
    }
}
