//! smol: an `async-executor` [`Executor`] run on exactly `workers` threads.
//!
//! smol's global executor (`smol::spawn`) runs on one thread unless `SMOL_THREADS` is
//! set, so this style owns its executor instead, and runs it on `workers` threads the
//! way smol's documentation shows: each thread blocks on `executor.run(shutdown)`.
//! Work is spawned onto the executor and the caller only waits for its task.

#![forbid(unsafe_code)]

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::thread::{self, JoinHandle};

use smol::Executor;
use smol::channel::{self, Sender};
use workloads::{
    ForkJoin, Step, Style, StyleConfig, StyleEntry, StyleError, Support, Workload, fib,
};

/// The `smol` row of the catalog.
pub const ENTRY: StyleEntry = StyleEntry {
    name: "smol",
    summary: "smol `Executor` on `workers` threads: a task per input or split",
    support,
    build,
};

fn support(workload: Workload) -> Support {
    match workload {
        Workload::FibBatch | Workload::FibSkewed | Workload::FibForkJoin => Support::Runs,
    }
}

fn build(config: &StyleConfig) -> Result<Box<dyn Style>, StyleError> {
    let executor = Arc::new(Executor::new());
    let (shutdown, shutdown_signal) = channel::bounded::<()>(1);
    let mut smol = Smol {
        executor,
        shutdown: Some(shutdown),
        threads: Vec::with_capacity(config.workers.get()),
    };
    for worker_idx in 0..config.workers.get() {
        let (executor, shutdown_signal) = (Arc::clone(&smol.executor), shutdown_signal.clone());
        // On error, `smol` is dropped, which stops the threads already started.
        let thread = thread::Builder::new()
            .name(format!("smol-{worker_idx}"))
            .spawn(move || smol::block_on(executor.run(shutdown_signal.recv())))
            .map_err(StyleError::io("starting smol executor threads"))?;
        smol.threads.push(thread);
    }
    Ok(Box::new(smol))
}

/// An executor and the threads that run it; dropping it stops and joins the threads.
#[derive(Debug)]
pub struct Smol {
    executor: Arc<Executor<'static>>,
    /// Dropped to stop the threads: every `recv` on the other end then completes.
    shutdown: Option<Sender<()>>,
    threads: Vec<JoinHandle<Result<(), channel::RecvError>>>,
}

impl Smol {
    /// Runs `work` as a task on the executor's threads; the caller only waits.
    fn run<T: Send + 'static>(&self, work: impl Future<Output = T> + Send + 'static) -> T {
        smol::block_on(self.executor.spawn(work))
    }
}

impl Style for Smol {
    fn fib_batch(&self, inputs: &[u32]) -> Result<Vec<u64>, StyleError> {
        let inputs = inputs.to_vec();
        let executor = Arc::clone(&self.executor);
        Ok(self.run(async move {
            let tasks: Vec<_> = inputs
                .into_iter()
                .map(|n| executor.spawn(async move { fib(n) }))
                .collect();
            let mut answers = Vec::with_capacity(tasks.len());
            for task in tasks {
                answers.push(task.await);
            }
            answers
        }))
    }

    fn fib_forkjoin(&self, job: ForkJoin) -> Result<u64, StyleError> {
        Ok(self.run(spawn_fib(Arc::clone(&self.executor), job, job.n)))
    }
}

impl Drop for Smol {
    fn drop(&mut self) {
        self.shutdown = None;
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

/// `fib(n)` as a task tree: spawn the left child of every split, await the right one
/// inline.
fn spawn_fib(
    executor: Arc<Executor<'static>>,
    job: ForkJoin,
    n: u32,
) -> Pin<Box<dyn Future<Output = u64> + Send>> {
    Box::pin(async move {
        match job.step(n) {
            Step::Leaf(value) => value,
            Step::Split(left, right) => {
                let left = executor.spawn(spawn_fib(Arc::clone(&executor), job, left));
                let right = spawn_fib(executor, job, right).await;
                left.await + right
            }
        }
    })
}
