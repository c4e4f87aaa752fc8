//! A hand-built fixed thread pool (std only), built once and reused by every call.
//!
//! [`ThreadPool`] is the textbook design: `workers` threads taking boxed jobs from one
//! `Mutex<VecDeque>` queue, woken by a `Condvar`. Batches queue one job per input, so
//! the shared queue balances heavy-tailed inputs by itself; each job stores its answer
//! in place and only the last one wakes the caller (a countdown latch, not a message
//! per answer). Fork-join cannot block a worker waiting for a child (with every worker
//! waiting, nothing would run the children), so a node's job queues its left child and
//! carries on down its right child; leaves add their value to a shared sum, and the
//! last one to finish wakes the caller.
//!
//! A `spawn` unit is a job. `ping_pong` is two jobs blocked on each other's `mpsc`
//! channel, as in every other style: each holds a pool worker for the whole exchange,
//! so it needs two workers (with one, it is an error, not a deadlock). `sleepers` does
//! not apply: a fixed pool runs `workers` jobs at a time,
//! so N sleeping jobs are not N concurrent units.
//!
//! The server reads each connection on a thread of its own (std has no other way to
//! wait on many sockets) and hands every request's `fib` to the pool. A pool sized to
//! the cores is a queue: long requests that fill it make short ones wait their turn.

#![forbid(unsafe_code)]

mod thread_pool;

use std::io;
use std::net::TcpListener;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError, mpsc};
use std::time::Duration;

pub use thread_pool::{Spawner, ThreadPool};
use workloads::server::{self, Job, JobRunner, ServeConfig, ServerHandle};
use workloads::tasks::{self, PingPong, Receiver, Sleepers, UnitKind};
use workloads::{
    CpuThreads, ForkJoin, ServerModel, Step, Style, StyleConfig, StyleEntry, StyleError, Support,
    Workload, fib,
};

/// The `pool` row of the catalog.
pub const ENTRY: StyleEntry = StyleEntry {
    name: "pool",
    summary: "hand-built fixed pool (`Mutex<VecDeque>` + `Condvar`): a job per input or split",
    support,
    build,
    server_model: ServerModel::Concurrent,
    cpu_threads: CpuThreads::Workers,
    unit: UnitKind::Task,
};

const FIXED_POOL_SLEEPERS: &str = "a fixed pool runs `workers` jobs at a time: N sleeping jobs would take turns, not wait together";

fn support(workload: Workload) -> Support {
    match workload {
        Workload::FibBatch
        | Workload::FibSkewed
        | Workload::FibForkJoin
        | Workload::Spawn
        | Workload::PingPong
        | Workload::Throughput
        | Workload::HogLatency
        | Workload::Connections
        | Workload::IoWait => Support::Runs,
        Workload::Sleepers => Support::NotApplicable(FIXED_POOL_SLEEPERS),
    }
}

fn build(config: &StyleConfig) -> Result<Box<dyn Style>, StyleError> {
    let pool = ThreadPool::new(config.workers).map_err(StyleError::io("starting pool threads"))?;
    Ok(Box::new(Pool {
        pool,
        workers: config.workers.get(),
    }))
}

/// The pool style: a [`ThreadPool`] of `workers` threads.
#[derive(Debug)]
pub struct Pool {
    pool: ThreadPool,
    workers: usize,
}

impl Style for Pool {
    fn fib_batch(&self, inputs: &[u32]) -> Result<Vec<u64>, StyleError> {
        let inputs: Arc<[u32]> = inputs.into();
        self.map_jobs(inputs.len(), move |index| fib(inputs[index]))
    }

    fn fib_forkjoin(&self, job: ForkJoin) -> Result<u64, StyleError> {
        let tree = Arc::new(Tree {
            job,
            sum: AtomicU64::new(0),
            pending: Countdown::new(1),
        });
        let spawner = self.pool.spawner();
        let root = Arc::clone(&tree);
        self.pool.execute(move || run_node(&spawner, root, job.n));
        tree.pending.wait()?;
        Ok(tree.sum.load(Ordering::Relaxed))
    }

    fn spawn(&self, n_units: usize) -> Result<Vec<u64>, StyleError> {
        self.map_jobs(n_units, tasks::spawn_unit)
    }

    fn ping_pong(&self, n_messages: u64) -> Result<PingPong, StyleError> {
        if self.workers < 2 {
            return Err(StyleError::Config(POOL_PING_PONG_WORKERS.into()));
        }
        // Two jobs, each holding a pool worker for the whole exchange, blocked on each
        // other's channel: the same two units on a channel as every other style's.
        let (ping_sender, pings) = mpsc::channel::<u64>();
        let (pong_sender, pongs) = mpsc::channel::<u64>();
        let sides = Arc::new(Sides {
            ponger: Mutex::default(),
            pinger: Mutex::default(),
            done: Countdown::new(2),
        });
        let ponger = Arc::clone(&sides);
        self.pool.execute(move || {
            let guard = PanicGuard(&ponger.done);
            *lock(&ponger.ponger) = tasks::std_ponger(pings, pong_sender);
            std::mem::forget(guard);
            ponger.done.count_down();
        });
        let pinger = Arc::clone(&sides);
        self.pool.execute(move || {
            let guard = PanicGuard(&pinger.done);
            *lock(&pinger.pinger) = tasks::std_pinger(n_messages, ping_sender, pongs);
            std::mem::forget(guard);
            pinger.done.count_down();
        });
        sides.done.wait()?;
        Ok(PingPong::from_sides(
            *lock(&sides.ponger),
            *lock(&sides.pinger),
        ))
    }

    fn sleepers(&self, _n_units: usize, _sleep: Duration) -> Result<Sleepers, StyleError> {
        Err(StyleError::NotApplicable(FIXED_POOL_SLEEPERS))
    }

    fn serve(
        &self,
        listener: TcpListener,
        config: ServeConfig,
    ) -> Result<ServerHandle, StyleError> {
        let spawner = self.pool.spawner();
        let backend = config.backend;
        // Every request runs on the pool, `wait` requests too: a worker asks the backend
        // over its own connection and blocks until it answers, so at most `workers`
        // requests wait at once (the fixed pool's lesson in `io_wait`).
        let jobs: JobRunner = Arc::new(move |job: Job| {
            let (sender, receiver) = mpsc::sync_channel(1);
            spawner.execute(move || {
                let _ = sender.send(job.run_here(backend));
            });
            receiver
                .recv()
                .map_err(|_| io::Error::other("the pool shut down before answering"))
        });
        server::spawn_thread_per_connection(listener, config, jobs)
            .map_err(StyleError::io("starting the server"))
    }
}

impl Pool {
    /// Runs `job(i)` for every `i` in `0..n_jobs` as one pool job each, and returns the
    /// answers in order. Each job stores its answer in place; only the last one to
    /// finish wakes the caller.
    fn map_jobs(
        &self,
        n_jobs: usize,
        job: impl Fn(usize) -> u64 + Send + Sync + 'static,
    ) -> Result<Vec<u64>, StyleError> {
        let job = Arc::new(job);
        let answers: Arc<[AtomicU64]> = (0..n_jobs).map(|_| AtomicU64::new(0)).collect();
        let countdown = Arc::new(Countdown::new(n_jobs));
        for index in 0..n_jobs {
            let (job, answers, countdown) = (
                Arc::clone(&job),
                Arc::clone(&answers),
                Arc::clone(&countdown),
            );
            self.pool.execute(move || {
                let guard = PanicGuard(&countdown);
                answers[index].store(job(index), Ordering::Relaxed);
                std::mem::forget(guard);
                countdown.count_down();
            });
        }
        countdown.wait()?;
        // `wait` synchronised with every job's `count_down`, so every store is visible.
        Ok(answers
            .iter()
            .map(|answer| answer.load(Ordering::Relaxed))
            .collect())
    }
}

/// What the two `ping_pong` jobs received, and the latch the caller waits on.
struct Sides {
    ponger: Mutex<Receiver>,
    pinger: Mutex<Receiver>,
    done: Countdown,
}

/// Why `ping_pong` needs two pool workers.
const POOL_PING_PONG_WORKERS: &str = "ping_pong on the pool needs at least 2 workers: its two units are two jobs, each holding a worker while it waits for the other";

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A countdown latch: the caller waits until the count reaches zero, or until a job
/// reports that it panicked (the count would then never reach zero).
struct Countdown {
    remaining: AtomicUsize,
    outcome: Mutex<Option<Outcome>>,
    finished: Condvar,
}

#[derive(Clone, Copy)]
enum Outcome {
    Done,
    Panicked,
}

impl Countdown {
    fn new(count: usize) -> Self {
        let countdown = Self {
            remaining: AtomicUsize::new(count),
            outcome: Mutex::new(None),
            finished: Condvar::new(),
        };
        if count == 0 {
            countdown.finish(Outcome::Done);
        }
        countdown
    }

    /// One more unit to wait for.
    fn count_up(&self) {
        self.remaining.fetch_add(1, Ordering::Relaxed);
    }

    /// One unit finished; the last one wakes the caller.
    fn count_down(&self) {
        // AcqRel: the last unit sees every other unit's writes, and hands them to the
        // caller through the mutex in `finish`.
        if self.remaining.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.finish(Outcome::Done);
        }
    }

    fn finish(&self, outcome: Outcome) {
        let mut slot = self.outcome.lock().unwrap_or_else(PoisonError::into_inner);
        slot.get_or_insert(outcome);
        self.finished.notify_all();
    }

    fn wait(&self) -> Result<(), StyleError> {
        let mut outcome = self.outcome.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            match *outcome {
                Some(Outcome::Done) => return Ok(()),
                Some(Outcome::Panicked) => {
                    return Err(StyleError::WorkerFailed("a pool job panicked".into()));
                }
                None => {
                    outcome = self
                        .finished
                        .wait(outcome)
                        .unwrap_or_else(PoisonError::into_inner);
                }
            }
        }
    }
}

/// Reports a panic to the waiting caller if dropped while unwinding; forgotten on
/// success.
struct PanicGuard<'a>(&'a Countdown);

impl Drop for PanicGuard<'_> {
    fn drop(&mut self) {
        self.0.finish(Outcome::Panicked);
    }
}

/// The shared state of one fork-join computation.
struct Tree {
    job: ForkJoin,
    sum: AtomicU64,
    /// Nodes queued or running.
    pending: Countdown,
}

/// Walks down the right spine from `n`, queueing every left child as a new job.
fn run_node(spawner: &Spawner, tree: Arc<Tree>, mut n: u32) {
    let guard = PanicGuard(&tree.pending);
    loop {
        match tree.job.step(n) {
            Step::Split(left, right) => {
                // One node becomes two: the left child's job and this job carrying on.
                tree.pending.count_up();
                let child_spawner = spawner.clone();
                let child_tree = Arc::clone(&tree);
                spawner.execute(move || run_node(&child_spawner, child_tree, left));
                n = right;
            }
            Step::Leaf(value) => {
                tree.sum.fetch_add(value, Ordering::Relaxed);
                break;
            }
        }
    }
    std::mem::forget(guard);
    tree.pending.count_down();
}
