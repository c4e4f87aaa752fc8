//! OS processes: a pool of worker processes started once and fed over pipes, the
//! `ProcessPoolExecutor` of the seed (std only).
//!
//! A worker process is any program that calls [`run_worker`] on its stdin and stdout;
//! the `concbench` binary does so in its hidden `worker` subcommand, and the style is
//! built from a [`workloads::WorkerCommand`] that names it. Batches are cut into
//! `len / (4 × workers)`-sized chunks, as `multiprocessing.Pool.map` does by default,
//! so the pipe round trip is paid a few times per worker rather than once per input.
//! Fork-join sends whole subtrees (about four per worker) rather than single nodes: a
//! process per node would cost far more than the node.

#![forbid(unsafe_code)]

mod message;
mod pool;
mod worker;

pub use pool::{Pending, ProcessPool, ProcessPoolError};
pub use worker::run_worker;
use workloads::{ForkJoin, Style, StyleConfig, StyleEntry, StyleError, Support, Workload};

/// The `process` row of the catalog.
pub const ENTRY: StyleEntry = StyleEntry {
    name: "process",
    summary: "pre-started worker processes fed over pipes (`ProcessPoolExecutor`)",
    support,
    build,
};

fn support(workload: Workload) -> Support {
    match workload {
        Workload::FibBatch | Workload::FibSkewed | Workload::FibForkJoin => Support::Runs,
    }
}

fn build(config: &StyleConfig) -> Result<Box<dyn Style>, StyleError> {
    Ok(Box::new(Processes::start(config)?))
}

/// The process style: a [`ProcessPool`] of `workers` processes.
#[derive(Debug)]
pub struct Processes {
    pool: ProcessPool,
    workers: usize,
}

impl Processes {
    /// Starts `config.workers` worker processes from `config.worker_command`.
    pub fn start(config: &StyleConfig) -> Result<Self, StyleError> {
        let command = config.worker_command.as_ref().ok_or_else(|| {
            StyleError::Config(
                "the process style needs a worker command (the concbench binary)".into(),
            )
        })?;
        let pool = ProcessPool::start(command, config.workers).map_err(worker_failed)?;
        Ok(Self {
            pool,
            workers: config.workers.get(),
        })
    }

    /// The worker processes' ids, for tests that check none is left behind.
    pub fn worker_pids(&self) -> Vec<u32> {
        self.pool.worker_pids()
    }
}

impl Style for Processes {
    fn fib_batch(&self, inputs: &[u32]) -> Result<Vec<u64>, StyleError> {
        let chunk_len = inputs.len().div_ceil(4 * self.workers).max(1);
        let pending = inputs
            .chunks(chunk_len)
            .map(|chunk| self.pool.submit_fib(chunk.to_vec()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(worker_failed)?;
        let mut answers = Vec::with_capacity(inputs.len());
        for chunk in pending {
            answers.extend(chunk.wait().map_err(worker_failed)?);
        }
        Ok(answers)
    }

    fn fib_forkjoin(&self, job: ForkJoin) -> Result<u64, StyleError> {
        // Largest subtrees first, so the smallest ones fill in at the end.
        let pending = job
            .leaves(4 * self.workers)
            .into_iter()
            .map(|leaf| self.pool.submit_fib(vec![leaf]))
            .collect::<Result<Vec<_>, _>>()
            .map_err(worker_failed)?;
        let mut sum = 0;
        for leaf in pending {
            sum += leaf.wait().map_err(worker_failed)?.iter().sum::<u64>();
        }
        Ok(sum)
    }
}

fn worker_failed(error: ProcessPoolError) -> StyleError {
    StyleError::WorkerFailed(error.to_string())
}
