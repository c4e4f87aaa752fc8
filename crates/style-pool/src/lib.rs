//! A hand-built fixed thread pool (std only), built once and reused by every call.
//!
//! [`ThreadPool`] is the textbook design: `workers` threads taking boxed jobs from one
//! `Mutex<VecDeque>` queue, woken by a `Condvar`. Batches queue one job per input, so
//! the shared queue balances heavy-tailed inputs by itself. Fork-join cannot block a
//! worker waiting for a child (with every worker waiting, nothing would run the
//! children), so a node's job queues its left child and carries on down its right
//! child; leaves add their value to a shared sum and the last one to finish wakes the
//! caller.

#![forbid(unsafe_code)]

mod thread_pool;

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError, mpsc};

pub use thread_pool::{Spawner, ThreadPool};
use workloads::{
    ForkJoin, Step, Style, StyleConfig, StyleEntry, StyleError, Support, Workload, fib,
};

/// The `pool` row of the catalog.
pub const ENTRY: StyleEntry = StyleEntry {
    name: "pool",
    summary: "hand-built fixed pool (`Mutex<VecDeque>` + `Condvar`): a job per input or split",
    support,
    build,
};

fn support(workload: Workload) -> Support {
    match workload {
        Workload::FibBatch | Workload::FibSkewed | Workload::FibForkJoin => Support::Runs,
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
        let (sender, receiver) = mpsc::channel();
        for (index, &n) in inputs.iter().enumerate() {
            let sender = sender.clone();
            self.pool.execute(move || {
                // The receiver outlives every job unless the caller is unwinding.
                let _ = sender.send((index, fib(n)));
            });
        }
        drop(sender);
        let mut answers = vec![0; inputs.len()];
        for _ in 0..inputs.len() {
            let (index, answer) = receiver
                .recv()
                .map_err(|_| StyleError::WorkerFailed("a pool job died before answering".into()))?;
            answers[index] = answer;
        }
        Ok(answers)
    }

    fn fib_forkjoin(&self, job: ForkJoin) -> Result<u64, StyleError> {
        let tree = Arc::new(Tree {
            job,
            sum: AtomicU64::new(0),
            pending: AtomicUsize::new(1),
            outcome: Mutex::new(None),
            finished: Condvar::new(),
        });
        let spawner = self.pool.spawner();
        let root = Arc::clone(&tree);
        self.pool.execute(move || run_node(&spawner, root, job.n));
        let mut outcome = tree.outcome.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            match *outcome {
                Some(Outcome::Done) => return Ok(tree.sum.load(Ordering::Acquire)),
                Some(Outcome::Panicked) => {
                    return Err(StyleError::WorkerFailed("a fork-join job panicked".into()));
                }
                None => {
                    outcome = tree
                        .finished
                        .wait(outcome)
                        .unwrap_or_else(PoisonError::into_inner);
                }
            }
        }
    }
}

/// The shared state of one fork-join computation.
struct Tree {
    job: ForkJoin,
    sum: AtomicU64,
    /// Nodes queued or running; the computation is done when it reaches zero.
    pending: AtomicUsize,
    outcome: Mutex<Option<Outcome>>,
    finished: Condvar,
}

#[derive(Clone, Copy)]
enum Outcome {
    Done,
    Panicked,
}

impl Tree {
    fn finish(&self, outcome: Outcome) {
        let mut slot = self.outcome.lock().unwrap_or_else(PoisonError::into_inner);
        slot.get_or_insert(outcome);
        self.finished.notify_all();
    }
}

/// Walks down the right spine from `n`, queueing every left child as a new job.
fn run_node(spawner: &Spawner, tree: Arc<Tree>, mut n: u32) {
    // If the job unwinds, `pending` never reaches zero: wake the caller with an error.
    let guard = PanicGuard(&tree);
    loop {
        match tree.job.step(n) {
            Step::Split(left, right) => {
                // One node becomes two: the left child's job and this job carrying on.
                tree.pending.fetch_add(1, Ordering::Relaxed);
                let child_spawner = spawner.clone();
                let child_tree = Arc::clone(&tree);
                spawner.execute(move || run_node(&child_spawner, child_tree, left));
                n = right;
            }
            Step::Leaf(value) => {
                tree.sum.fetch_add(value, Ordering::Relaxed);
                // AcqRel: the last leaf sees every other leaf's addition to `sum`.
                if tree.pending.fetch_sub(1, Ordering::AcqRel) == 1 {
                    tree.finish(Outcome::Done);
                }
                break;
            }
        }
    }
    std::mem::forget(guard);
}

struct PanicGuard<'a>(&'a Tree);

impl Drop for PanicGuard<'_> {
    fn drop(&mut self) {
        self.0.finish(Outcome::Panicked);
    }
}
