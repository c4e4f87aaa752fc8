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
//! Every `spawn` and `sleepers` unit is a fresh worker process, sent one request (echo
//! its index, or sleep) on its stdin; at most a few hundred are started at once
//! ([`workloads::tasks::PROCESS_CAP`]). `ping_pong` exchanges messages with one worker
//! process over its pipes.
//!
//! The server is the seed's: a thread per connection reads requests and sends each
//! `fib` to the process pool, waiting for the answer. (A prefork server, with workers
//! sharing one listening socket, would let one idle client hold a whole worker process;
//! threads plus a pool is what the seed's `ProcessPoolExecutor` server does.)

#![forbid(unsafe_code)]

mod message;
mod pool;
mod unit;
mod worker;

pub use pool::{Pending, ProcessPool, ProcessPoolError};
use std::io;
use std::net::TcpListener;
use std::sync::Arc;
use std::time::{Duration, Instant};
pub use worker::run_worker;

use message::Request;
use unit::UnitProcess;
use workloads::server::{self, Compute, ServeConfig, ServerHandle};
use workloads::tasks::{self, PingPong, Receiver, Sleepers, UnitKind, UnitLimit};
use workloads::{
    CpuThreads, ForkJoin, ServerModel, Style, StyleConfig, StyleEntry, StyleError, Support,
    WorkerCommand, Workload,
};

/// The `process` row of the catalog.
pub const ENTRY: StyleEntry = StyleEntry {
    name: "process",
    summary: "pre-started worker processes fed over pipes (`ProcessPoolExecutor`)",
    support,
    build,
    server_model: ServerModel::Concurrent,
    cpu_threads: CpuThreads::Workers,
    unit: UnitKind::Process,
};

fn support(workload: Workload) -> Support {
    match workload {
        Workload::FibBatch
        | Workload::FibSkewed
        | Workload::FibForkJoin
        | Workload::Spawn
        | Workload::PingPong
        | Workload::Sleepers
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
    /// Starts the unit processes of `spawn`, `ping_pong` and `sleepers`.
    command: WorkerCommand,
    /// How many unit processes may run at once on this machine.
    unit_limit: UnitLimit,
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
            command: command.clone(),
            unit_limit: tasks::unit_limit(UnitKind::Process),
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

    fn spawn(&self, n_units: usize) -> Result<Vec<u64>, StyleError> {
        tasks::ensure_within(&self.unit_limit, n_units)?;
        let units = (0..n_units)
            .map(|index| {
                UnitProcess::start_with(
                    &self.command,
                    &Request::Echo(vec![tasks::spawn_unit(index)]),
                )
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(StyleError::io("starting a unit process"))?;
        units
            .into_iter()
            .map(|unit| unit.finish().map_err(StyleError::io("a unit process")))
            .collect()
    }

    fn ping_pong(&self, n_messages: u64) -> Result<PingPong, StyleError> {
        // This thread pings; the worker process pongs by echoing each message back.
        let mut ponger =
            UnitProcess::start(&self.command).map_err(StyleError::io("starting the ponger"))?;
        let mut pongs = Receiver::default();
        for message in 0..n_messages {
            ponger
                .send(&Request::Echo(vec![message]))
                .map_err(StyleError::io("sending a ping"))?;
            pongs.receive(
                ponger
                    .receive()
                    .map_err(StyleError::io("receiving a pong"))?,
            );
        }
        // An echoing worker receives exactly what it answers: its pings are our pongs.
        Ok(PingPong::from_sides(pongs, pongs))
    }

    fn sleepers(&self, n_units: usize, sleep: Duration) -> Result<Sleepers, StyleError> {
        tasks::ensure_within(&self.unit_limit, n_units)?;
        let start = Instant::now();
        let micros = u64::try_from(sleep.as_micros()).unwrap_or(u64::MAX);
        let units = (0..n_units)
            .map(|_| UnitProcess::start_with(&self.command, &Request::Sleep(micros)))
            .collect::<Result<Vec<_>, _>>()
            .map_err(StyleError::io("starting a unit process"))?;
        let spawned_in = start.elapsed();
        let slept = units
            .into_iter()
            .map(|unit| unit.finish().map(|slept| slept >= micros))
            .collect::<Result<Vec<_>, _>>()
            .map_err(StyleError::io("a sleeping unit process"))?;
        Ok(Sleepers::tally(slept, spawned_in, start.elapsed()))
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
