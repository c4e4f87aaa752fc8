//! tokio: a runtime built once with the worker count.
//!
//! `tokio` is the multi-thread runtime with `workers` worker threads; `tokio-current`
//! is the current-thread runtime, which runs everything on the thread that calls
//! `block_on`. On the multi-thread runtime the measured work is spawned onto the workers
//! and the calling thread only waits for its handle: `block_on` itself runs on the
//! caller, not on a worker, so work done inside it would measure one thread, not the
//! runtime (tokio#5440 shows how large that artefact is).
//!
//! Batches spawn one task per input and let tokio's work-stealing scheduler balance
//! them; fork-join spawns the left child of every split and awaits the right one inline.

#![forbid(unsafe_code)]

use std::future::Future;
use std::pin::Pin;

use tokio::runtime::{Builder, Runtime};
use tokio::task::JoinHandle;
use workloads::{
    ForkJoin, Step, Style, StyleConfig, StyleEntry, StyleError, Support, Workload, fib,
};

/// The `tokio` row of the catalog: the multi-thread runtime.
pub const ENTRY: StyleEntry = StyleEntry {
    name: "tokio",
    summary: "tokio multi-thread runtime: a task per input or split, on the workers",
    support,
    build: build_multi_thread,
};

/// The `tokio-current` row of the catalog: the current-thread runtime.
pub const ENTRY_CURRENT: StyleEntry = StyleEntry {
    name: "tokio-current",
    summary: "tokio current-thread runtime: every task on the calling thread",
    support,
    build: build_current_thread,
};

fn support(workload: Workload) -> Support {
    match workload {
        Workload::FibBatch | Workload::FibSkewed | Workload::FibForkJoin => Support::Runs,
    }
}

fn build_multi_thread(config: &StyleConfig) -> Result<Box<dyn Style>, StyleError> {
    let runtime = Builder::new_multi_thread()
        .worker_threads(config.workers.get())
        .thread_name("tokio-style")
        .enable_all()
        .build()
        .map_err(StyleError::io("building the tokio runtime"))?;
    Ok(Box::new(Tokio {
        runtime,
        flavor: Flavor::MultiThread,
    }))
}

fn build_current_thread(_config: &StyleConfig) -> Result<Box<dyn Style>, StyleError> {
    let runtime = Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(StyleError::io("building the tokio runtime"))?;
    Ok(Box::new(Tokio {
        runtime,
        flavor: Flavor::CurrentThread,
    }))
}

/// Which tokio scheduler runs the work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flavor {
    MultiThread,
    CurrentThread,
}

/// A tokio runtime, built once.
#[derive(Debug)]
pub struct Tokio {
    runtime: Runtime,
    flavor: Flavor,
}

impl Tokio {
    /// Runs `work` to completion on the runtime's workers and returns its output.
    fn run<T: Send + 'static>(
        &self,
        work: impl Future<Output = Result<T, StyleError>> + Send + 'static,
    ) -> Result<T, StyleError> {
        match self.flavor {
            // The caller only waits; the work runs on a worker thread.
            Flavor::MultiThread => {
                let handle = self.runtime.spawn(work);
                self.runtime.block_on(handle).map_err(join_failed)?
            }
            // A current-thread runtime runs its tasks inside `block_on`, on the caller:
            // that single thread is what this variant measures.
            Flavor::CurrentThread => self.runtime.block_on(work),
        }
    }
}

impl Style for Tokio {
    fn fib_batch(&self, inputs: &[u32]) -> Result<Vec<u64>, StyleError> {
        let inputs = inputs.to_vec();
        self.run(async move {
            let tasks: Vec<JoinHandle<u64>> = inputs
                .into_iter()
                .map(|n| tokio::spawn(async move { fib(n) }))
                .collect();
            let mut answers = Vec::with_capacity(tasks.len());
            for task in tasks {
                answers.push(task.await.map_err(join_failed)?);
            }
            Ok(answers)
        })
    }

    fn fib_forkjoin(&self, job: ForkJoin) -> Result<u64, StyleError> {
        self.run(spawn_fib(job, job.n))
    }
}

/// `fib(n)` as a task tree: spawn the left child of every split, await the right one
/// inline. Boxed because an `async fn` cannot recurse into itself unboxed.
fn spawn_fib(
    job: ForkJoin,
    n: u32,
) -> Pin<Box<dyn Future<Output = Result<u64, StyleError>> + Send>> {
    Box::pin(async move {
        match job.step(n) {
            Step::Leaf(value) => Ok(value),
            Step::Split(left, right) => {
                let left = tokio::spawn(spawn_fib(job, left));
                let right = spawn_fib(job, right).await?;
                Ok(left.await.map_err(join_failed)?? + right)
            }
        }
    })
}

fn join_failed(error: tokio::task::JoinError) -> StyleError {
    StyleError::WorkerFailed(format!("a tokio task failed: {error}"))
}
