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
//!
//! The server is the seed's: a thread per connection reads requests and sends each
//! `fib` to the process pool, waiting for the answer. (A prefork server, with workers
//! sharing one listening socket, would let one idle client hold a whole worker process;
//! threads plus a pool is what the seed's `ProcessPoolExecutor` server does.)

#![forbid(unsafe_code)]

mod message;
mod pool;
mod worker;

pub use pool::{Pending, ProcessPool, ProcessPoolError};
use std::io;
use std::net::TcpListener;
use std::sync::Arc;
pub use worker::run_worker;

use workloads::server::{self, Compute, ServeConfig, ServerHandle};
use workloads::{
    ForkJoin, ServerModel, Style, StyleConfig, StyleEntry, StyleError, Support, Workload,
};

/// The `process` row of the catalog.
pub const ENTRY: StyleEntry = StyleEntry {
    name: "process",
    summary: "pre-started worker processes fed over pipes (`ProcessPoolExecutor`)",
    support,
    build,
    server_model: ServerModel::Concurrent,
};

fn support(workload: Workload) -> Support {
    match workload {
        Workload::FibBatch
        | Workload::FibSkewed
        | Workload::FibForkJoin
        | Workload::Throughput
        | Workload::HogLatency => Support::Runs,
    }
}

fn build(config: &StyleConfig) -> Result<Box<dyn Style>, StyleError> {
    Ok(Box::new(Processes::start(config)?))
}

/// The process style: a [`ProcessPool`] of `workers` processes.
#[derive(Debug)]
pub struct Processes {
    /// Shared with the server's connection threads; shut down explicitly on drop.
    pool: Arc<ProcessPool>,
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
            pool: Arc::new(pool),
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

    fn serve(
        &self,
        listener: TcpListener,
        config: ServeConfig,
    ) -> Result<ServerHandle, StyleError> {
        let pool = Arc::clone(&self.pool);
        let compute: Compute = Arc::new(move |n| pool.fib(n).map_err(io::Error::other));
        server::spawn_thread_per_connection(listener, config, compute)
            .map_err(StyleError::io("starting the server"))
    }
}

impl Drop for Processes {
    fn drop(&mut self) {
        // Connection threads may still hold the pool: kill the workers now regardless.
        self.pool.shutdown();
    }
}

fn worker_failed(error: ProcessPoolError) -> StyleError {
    StyleError::WorkerFailed(error.to_string())
}
