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
//! The server reads each connection on a thread of its own (std has no other way to
//! wait on many sockets) and hands every request's `fib` to the pool. A pool sized to
//! the cores is a queue: long requests that fill it make short ones wait their turn.

#![forbid(unsafe_code)]

mod thread_pool;

use std::io;
use std::net::TcpListener;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError, mpsc};

pub use thread_pool::{Spawner, ThreadPool};
use workloads::server::{self, Compute, ServeConfig, ServerHandle};
use workloads::{
    ForkJoin, ServerModel, Step, Style, StyleConfig, StyleEntry, StyleError, Support, Workload, fib,
};

/// The `pool` row of the catalog.
pub const ENTRY: StyleEntry = StyleEntry {
    name: "pool",
    summary: "hand-built fixed pool (`Mutex<VecDeque>` + `Condvar`): a job per input or split",
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
    let pool = ThreadPool::new(config.workers).map_err(StyleError::io("starting pool threads"))?;
    Ok(Box::new(Pool { pool }))
}

/// The pool style: a [`ThreadPool`] of `workers` threads.
#[derive(Debug)]
pub struct Pool {
    pool: ThreadPool,
}

impl Style for Pool {
    fn fib_batch(&self, inputs: &[u32]) -> Result<Vec<u64>, StyleError> {
        let answers: Arc<[AtomicU64]> = inputs.iter().map(|_| AtomicU64::new(0)).collect();
        let countdown = Arc::new(Countdown::new(inputs.len()));
        for (index, &n) in inputs.iter().enumerate() {
            let (answers, countdown) = (Arc::clone(&answers), Arc::clone(&countdown));
            self.pool.execute(move || {
                let guard = PanicGuard(&countdown);
                answers[index].store(fib(n), Ordering::Relaxed);
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

    fn serve(
        &self,
        listener: TcpListener,
        config: ServeConfig,
    ) -> Result<ServerHandle, StyleError> {
        let spawner = self.pool.spawner();
        let compute: Compute = Arc::new(move |n| {
            let (sender, receiver) = mpsc::sync_channel(1);
            spawner.execute(move || {
                let _ = sender.send(fib(n));
            });
            receiver
                .recv()
                .map_err(|_| io::Error::other("the pool shut down before answering"))
        });
        server::spawn_thread_per_connection(listener, config, compute)
            .map_err(StyleError::io("starting the server"))
    }
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
