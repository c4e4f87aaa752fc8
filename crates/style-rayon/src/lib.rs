//! rayon: a work-stealing pool built once with the worker count; batches use
//! `par_iter`, fork-join uses `rayon::join` down to the cutoff.
//!
//! The pool is a private [`rayon::ThreadPool`], never the global one, so its size is
//! exactly the configured worker count whatever else in the process uses rayon.
//!
//! A `spawn` unit is a `rayon::Scope::spawn` job. rayon has no channels and no timers:
//! its jobs are meant to run to completion, not to wait on one another, so `ping_pong`
//! and `sleepers` do not apply.
//!
//! rayon does no I/O, so its server reads each connection on a thread of its own and
//! runs every request's `fib` on the pool with `install`, which blocks the connection
//! thread until a pool worker has run it.

#![forbid(unsafe_code)]

use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rayon::prelude::*;
use workloads::server::{self, Job, JobRunner, ServeConfig, ServerHandle};
use workloads::tasks::{self, PingPong, Sleepers, UnitKind};
use workloads::{
    CpuThreads, ForkJoin, ServerModel, Step, Style, StyleConfig, StyleEntry, StyleError, Support,
    Workload,
};

/// The `rayon` row of the catalog.
pub const ENTRY: StyleEntry = StyleEntry {
    name: "rayon",
    summary: "a private rayon pool: `par_iter` for batches, `join` for fork-join",
    support,
    build,
    server_model: ServerModel::Concurrent,
    cpu_threads: CpuThreads::Workers,
    unit: UnitKind::Task,
};

const NO_CHANNELS: &str =
    "rayon has no channels: its jobs run to completion, and one blocked on another holds a worker";
const NO_TIMERS: &str =
    "rayon has no timers: a sleeping job holds a worker, so N sleepers would take turns";

fn support(workload: Workload) -> Support {
    match workload {
        Workload::FibBatch
        | Workload::FibSkewed
        | Workload::FibForkJoin
        | Workload::Spawn
        | Workload::Throughput
        | Workload::HogLatency
        | Workload::Connections
        | Workload::IoWait => Support::Runs,
        Workload::PingPong => Support::NotApplicable(NO_CHANNELS),
        Workload::Sleepers => Support::NotApplicable(NO_TIMERS),
    }
}

fn build(config: &StyleConfig) -> Result<Box<dyn Style>, StyleError> {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(config.workers.get())
        .thread_name(|worker_idx| format!("rayon-style-{worker_idx}"))
        .build()
        .map_err(|error| {
            StyleError::WorkerFailed(format!("cannot build the rayon pool: {error}"))
        })?;
    Ok(Box::new(Rayon {
        pool: Arc::new(pool),
    }))
}

/// A rayon pool of exactly `workers` threads, built once and reused by every call.
#[derive(Debug)]
pub struct Rayon {
    pool: Arc<rayon::ThreadPool>,
}

impl Style for Rayon {
    fn fib_batch(&self, inputs: &[u32]) -> Result<Vec<u64>, StyleError> {
        // `install` runs the closure on a pool worker and blocks the caller until the
        // whole parallel iterator has finished.
        Ok(self
            .pool
            .install(|| inputs.par_iter().map(|&n| workloads::fib(n)).collect()))
    }

    fn fib_forkjoin(&self, job: ForkJoin) -> Result<u64, StyleError> {
        Ok(self.pool.install(|| join_fib(job, job.n)))
    }

    fn spawn(&self, n_units: usize) -> Result<Vec<u64>, StyleError> {
        let answers: Vec<AtomicU64> = (0..n_units).map(|_| AtomicU64::new(0)).collect();
        // `scope` returns once every job spawned in it has finished.
        self.pool.scope(|scope| {
            for (index, answer) in answers.iter().enumerate() {
                scope.spawn(move |_| answer.store(tasks::spawn_unit(index), Ordering::Relaxed));
            }
        });
        Ok(answers.into_iter().map(AtomicU64::into_inner).collect())
    }

    fn ping_pong(&self, _n_messages: u64) -> Result<PingPong, StyleError> {
        Err(StyleError::NotApplicable(NO_CHANNELS))
    }

    fn sleepers(&self, _n_units: usize, _sleep: Duration) -> Result<Sleepers, StyleError> {
        Err(StyleError::NotApplicable(NO_TIMERS))
    }

    fn serve(
        &self,
        listener: TcpListener,
        config: ServeConfig,
    ) -> Result<ServerHandle, StyleError> {
        let pool = Arc::clone(&self.pool);
        let backend = config.backend;
        // fib runs on the pool; a `wait` request blocks only its connection's thread,
        // never a rayon worker (rayon's pool is for CPU work, not for waiting on I/O).
        let jobs: JobRunner = Arc::new(move |job| match job {
            Job::Fib(n) => Ok(Ok(pool.install(|| workloads::fib(n)))),
            Job::AskBackend(_) => Ok(job.run_here(backend)),
        });
        server::spawn_thread_per_connection(listener, config, jobs)
            .map_err(StyleError::io("starting the server"))
    }
}

/// `fib(n)` by `rayon::join` on every split node of the job's tree.
fn join_fib(job: ForkJoin, n: u32) -> u64 {
    match job.step(n) {
        Step::Leaf(value) => value,
        Step::Split(left, right) => {
            let (left, right) = rayon::join(|| join_fib(job, left), || join_fib(job, right));
            left + right
        }
    }
}
