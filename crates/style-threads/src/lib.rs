//! Plain `std::thread`: scoped threads spawned for each call, no pool.
//!
//! A batch runs on `workers` scoped threads that take inputs one at a time from a shared
//! `AtomicUsize` index, as a std programmer hands out uneven work: no thread sits idle
//! while another has a long tail. The `threads-static` variant splits the batch into one
//! contiguous chunk per worker instead, so on heavy-tailed inputs the slowest chunk sets
//! the time; that imbalance is what `fib_skewed` shows beside the main row. Fork-join
//! spawns a scoped thread for one half of every split, down to the same cutoff as every
//! other style (about a thousand threads for the bench's tree): what a task costs when
//! a task is a thread.
//!
//! Every `spawn` and `sleepers` unit is a thread of its own (`thread::sleep` is its
//! timer); `ping_pong` runs between two threads over `std::sync::mpsc` channels.
//!
//! The server is thread-per-connection, computing inline: the operating system's
//! scheduler time-slices a long request against the others.

#![forbid(unsafe_code)]

use std::net::TcpListener;
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::thread::{self, Scope, ScopedJoinHandle};
use std::time::{Duration, Instant};

use workloads::server::{self, ServeConfig, ServerHandle};
use workloads::tasks::{self, PingPong, Sleepers, UnitKind, UnitLimit};
use workloads::{
    CpuThreads, ForkJoin, ServerModel, Step, Style, StyleConfig, StyleEntry, StyleError, Support,
    Workload, fib,
};

/// The `threads` row of the catalog.
pub const ENTRY: StyleEntry = StyleEntry {
    name: "threads",
    summary: "`std::thread::scope`: workers take inputs from an atomic index, a thread per fork-join split",
    support,
    build,
    server_model: ServerModel::Concurrent,
    cpu_threads: CpuThreads::Workers,
    unit: UnitKind::Thread,
};

/// The `threads-static` row: the same threads with the batch cut into one contiguous chunk
/// per worker, a deliberate strawman for the skewed batch.
pub const ENTRY_STATIC: StyleEntry = StyleEntry {
    name: "threads-static",
    summary: "variant: `threads` with one contiguous chunk per worker (static split)",
    support: support_static,
    build: build_static,
    server_model: ServerModel::Concurrent,
    cpu_threads: CpuThreads::Workers,
    unit: UnitKind::Thread,
};

/// Why `threads-static` has only the batch rows.
const STATIC_ONLY_BATCHES: &str =
    "a batch-splitting variant: its other workloads are the `threads` row's";

fn support_static(workload: Workload) -> Support {
    match workload {
        Workload::FibBatch | Workload::FibSkewed => Support::Runs,
        Workload::FibForkJoin
        | Workload::Spawn
        | Workload::PingPong
        | Workload::Sleepers
        | Workload::Throughput
        | Workload::HogLatency
        | Workload::Connections
        | Workload::IoWait => Support::NotApplicable(STATIC_ONLY_BATCHES),
    }
}

fn build_static(config: &StyleConfig) -> Result<Box<dyn Style>, StyleError> {
    Ok(Box::new(StaticChunks {
        workers: config.workers,
    }))
}

/// `threads-static`: a scoped thread per contiguous chunk of the batch.
#[derive(Debug, Clone)]
pub struct StaticChunks {
    workers: NonZeroUsize,
}

impl Style for StaticChunks {
    fn fib_batch(&self, inputs: &[u32]) -> Result<Vec<u64>, StyleError> {
        let mut answers = vec![0; inputs.len()];
        let chunk_len = inputs.len().div_ceil(self.workers.get()).max(1);
        thread::scope(|scope| {
            for (inputs, answers) in inputs.chunks(chunk_len).zip(answers.chunks_mut(chunk_len)) {
                scope.spawn(move || {
                    for (answer, &n) in answers.iter_mut().zip(inputs) {
                        *answer = fib(n);
                    }
                });
            }
        });
        Ok(answers)
    }

    fn fib_forkjoin(&self, _job: ForkJoin) -> Result<u64, StyleError> {
        Err(StyleError::NotApplicable(STATIC_ONLY_BATCHES))
    }

    fn spawn(&self, _n_units: usize) -> Result<Vec<u64>, StyleError> {
        Err(StyleError::NotApplicable(STATIC_ONLY_BATCHES))
    }

    fn ping_pong(&self, _n_messages: u64) -> Result<PingPong, StyleError> {
        Err(StyleError::NotApplicable(STATIC_ONLY_BATCHES))
    }

    fn sleepers(&self, _n_units: usize, _sleep: Duration) -> Result<Sleepers, StyleError> {
        Err(StyleError::NotApplicable(STATIC_ONLY_BATCHES))
    }

    fn serve(
        &self,
        _listener: TcpListener,
        _config: ServeConfig,
    ) -> Result<ServerHandle, StyleError> {
        Err(StyleError::NotApplicable(STATIC_ONLY_BATCHES))
    }
}

fn support(workload: Workload) -> Support {
    match workload {
        Workload::FibBatch
        | Workload::FibSkewed
        | Workload::FibForkJoin
        | Workload::Spawn
        | Workload::PingPong
        | Workload::Sleepers
        | Workload::Throughput
        | Workload::HogLatency
        | Workload::Connections
        | Workload::IoWait => Support::Runs,
    }
}

fn build(config: &StyleConfig) -> Result<Box<dyn Style>, StyleError> {
    Ok(Box::new(Threads {
        workers: config.workers,
        unit_limit: tasks::unit_limit(UnitKind::Thread),
    }))
}

/// Spawns scoped threads on every call: `workers` threads for a batch, one per split for
/// fork-join, one per unit for tasks. Nothing is kept between calls.
#[derive(Debug, Clone)]
pub struct Threads {
    workers: NonZeroUsize,
    /// How many threads may run at once on this machine.
    unit_limit: UnitLimit,
}

impl Style for Threads {
    fn fib_batch(&self, inputs: &[u32]) -> Result<Vec<u64>, StyleError> {
        let next = AtomicUsize::new(0);
        let workers = self.workers.get().min(inputs.len()).max(1);
        let computed: Vec<Vec<(usize, u64)>> = thread::scope(|scope| {
            let handles: Vec<_> = (0..workers)
                .map(|_| {
                    scope.spawn(|| {
                        // Each thread keeps its own (index, answer) pairs: no shared
                        // writes while computing, one merge at the end.
                        let mut mine = Vec::new();
                        loop {
                            let index = next.fetch_add(1, Ordering::Relaxed);
                            let Some(&n) = inputs.get(index) else {
                                break mine;
                            };
                            mine.push((index, fib(n)));
                        }
                    })
                })
                .collect();
            handles.into_iter().map(join_unit).collect::<Result<_, _>>()
        })?;
        let mut answers = vec![0; inputs.len()];
        for (index, answer) in computed.into_iter().flatten() {
            answers[index] = answer;
        }
        Ok(answers)
    }

    fn fib_forkjoin(&self, job: ForkJoin) -> Result<u64, StyleError> {
        Ok(split_on_threads(job, job.n))
    }

    fn spawn(&self, n_units: usize) -> Result<Vec<u64>, StyleError> {
        tasks::ensure_within(&self.unit_limit, n_units)?;
        thread::scope(|scope| {
            let units = spawn_units(scope, n_units, tasks::spawn_unit)?;
            units.into_iter().map(join_unit).collect()
        })
    }

    fn ping_pong(&self, n_messages: u64) -> Result<PingPong, StyleError> {
        let (ping_sender, pings) = mpsc::channel::<u64>();
        let (pong_sender, pongs) = mpsc::channel::<u64>();
        thread::scope(|scope| {
            let ponger = scope.spawn(move || tasks::std_ponger(pings, pong_sender));
            let pinger = scope.spawn(move || tasks::std_pinger(n_messages, ping_sender, pongs));
            Ok(PingPong::from_sides(join_unit(ponger)?, join_unit(pinger)?))
        })
    }

    fn sleepers(&self, n_units: usize, sleep: Duration) -> Result<Sleepers, StyleError> {
        tasks::ensure_within(&self.unit_limit, n_units)?;
        let start = Instant::now();
        thread::scope(|scope| {
            let units = spawn_units(scope, n_units, |_| {
                let began = Instant::now();
                thread::sleep(sleep);
                tasks::slept_full(began, sleep)
            })?;
            let spawned_in = start.elapsed();
            let slept_full = units
                .into_iter()
                .map(join_unit)
                .collect::<Result<Vec<_>, _>>()?;
            Ok(Sleepers::tally(slept_full, spawned_in, start.elapsed()))
        })
    }

    fn serve(
        &self,
        listener: TcpListener,
        config: ServeConfig,
    ) -> Result<ServerHandle, StyleError> {
        server::spawn_thread_per_connection(listener, config, server::inline_jobs(&config))
            .map_err(StyleError::io("starting the server"))
    }
}

/// Spawns `n_units` scoped threads, thread `i` running `unit(i)`. On failure the threads
/// already spawned are still joined, by the scope.
fn spawn_units<'scope, T: Send + 'scope>(
    scope: &'scope Scope<'scope, '_>,
    n_units: usize,
    unit: impl Fn(usize) -> T + Send + Copy + 'scope,
) -> Result<Vec<ScopedJoinHandle<'scope, T>>, StyleError> {
    (0..n_units)
        .map(|index| {
            thread::Builder::new()
                .spawn_scoped(scope, move || unit(index))
                .map_err(StyleError::io("spawning a thread"))
        })
        .collect()
}

fn join_unit<T>(unit: ScopedJoinHandle<'_, T>) -> Result<T, StyleError> {
    unit.join()
        .map_err(|_| StyleError::WorkerFailed("a unit's thread panicked".into()))
}

/// Splits `n` as the job's tree says, the left half of every split on a new scoped
/// thread and the right half on this one, down to the cutoff.
fn split_on_threads(job: ForkJoin, n: u32) -> u64 {
    match job.step(n) {
        Step::Leaf(value) => value,
        Step::Split(left, right) => thread::scope(|scope| {
            let left = scope.spawn(move || split_on_threads(job, left));
            let right = split_on_threads(job, right);
            // A panic in the left half is re-raised here, like one in the right half.
            left.join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
                + right
        }),
    }
}
