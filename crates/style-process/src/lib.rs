//! OS processes: a pool of worker processes started once and fed over pipes, the
//! `ProcessPoolExecutor` of the seed (std only).
//!
//! A worker process is any program that calls [`run_worker`] on its stdin and stdout;
//! the `concbench` binary does so in its hidden `worker` subcommand, and the style is
//! built from a [`workloads::WorkerCommand`] that names it. Batches are cut into
//! `len / (4 × workers)`-sized chunks, as `multiprocessing.Pool.map` does by default,
//! so the pipe round trip is paid a few times per worker rather than once per input.
//! Fork-join splits the same tree as every other style, down to the same cutoff, in the
//! parent, and sends every leaf to the pool as a task of its own (about a thousand for
//! the bench's tree): a process per node would cost far more than the node, but a task
//! per leaf on a pool of processes is what the seed's executor would do.
//!
//! Every `spawn` and `sleepers` unit is a fresh worker process, sent one request (echo
//! its index, or sleep) on its stdin; at most a few hundred are started at once
//! ([`workloads::tasks::PROCESS_CAP`]). `ping_pong` exchanges messages with one partner
//! worker process over its pipes: started with the style, outside any timed region, and
//! checking the order of its pings as this side checks its pongs.
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
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};
pub use worker::run_worker;

use message::Request;
use unit::UnitProcess;
use workloads::server::{self, Job, JobRunner, ServeConfig, ServerHandle};
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
        | Workload::HogLatency
        | Workload::Connections
        | Workload::IoWait => Support::Runs,
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
    /// The `ping_pong` partner, started with the style so that no exchange pays for a
    /// process start; replaced if an exchange fails.
    ponger: Mutex<Option<UnitProcess>>,
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
        let ponger = UnitProcess::start(command).map_err(StyleError::io("starting the ponger"))?;
        Ok(Self {
            pool: Arc::new(pool),
            workers: config.workers.get(),
            command: command.clone(),
            unit_limit: tasks::unit_limit(UnitKind::Process),
            ponger: Mutex::new(Some(ponger)),
        })
    }

    /// The worker processes' ids (the pool's and the ping-pong partner's), for tests
    /// that check none is left behind.
    pub fn worker_pids(&self) -> Vec<u32> {
        let mut pids = self.pool.worker_pids();
        let ponger = self.ponger.lock().unwrap_or_else(PoisonError::into_inner);
        pids.extend(ponger.as_ref().map(UnitProcess::pid));
        pids
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
        // Every leaf of the tree, at the cutoff: the same tasks as every other style's.
        let pending = job
            .leaves(usize::MAX)
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
        // This thread pings; the partner process, started with the style, checks the
        // order of its pings, answers each as the pong, and reports its tally at the end.
        let mut slot = self.ponger.lock().unwrap_or_else(PoisonError::into_inner);
        let mut ponger = match slot.take() {
            Some(ponger) => ponger,
            None => UnitProcess::start(&self.command)
                .map_err(StyleError::io("restarting the ponger"))?,
        };
        let mut pongs = Receiver::default();
        for message in 0..n_messages {
            ponger
                .send(&Request::Pong(message))
                .map_err(StyleError::io("sending a ping"))?;
            pongs.receive(
                ponger
                    .receive()
                    .map_err(StyleError::io("receiving a pong"))?,
            );
        }
        ponger
            .send(&Request::PongTally)
            .map_err(StyleError::io("asking the ponger for its tally"))?;
        let (received, out_of_order) = ponger
            .receive_tally()
            .map_err(StyleError::io("reading the ponger's tally"))?;
        // Only a partner that completed the exchange is kept; a failed one was dropped
        // (killed) above by the `?`.
        *slot = Some(ponger);
        Ok(PingPong::from_sides(
            Receiver::from_counts(received, out_of_order),
            pongs,
        ))
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
        let backend = config.backend;
        // fib goes to the worker processes; a `wait` request's backend I/O happens in the
        // connection's thread, as the seed's process-pool server does its I/O.
        let jobs: JobRunner = Arc::new(move |job| match job {
            Job::Fib(n) => pool.fib(n).map(Ok).map_err(io::Error::other),
            Job::AskBackend(_) => Ok(job.run_here(backend)),
        });
        server::spawn_thread_per_connection(listener, config, jobs)
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
