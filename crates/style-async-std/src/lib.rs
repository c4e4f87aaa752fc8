//! async-std: its global executor, sized explicitly.
//!
//! async-std is deprecated upstream in favour of smol; it stays here because users
//! still compare against it. Its executor is process-global (`async-global-executor`)
//! and sizes itself from `ASYNC_STD_THREAD_COUNT` or the core count unless configured
//! before first use, so this style configures it with exactly `workers` threads when it
//! is built. The global executor can be sized once per process: building the style
//! again with another worker count is an error rather than a silent mismatch.
//!
//! Work is spawned with `async_std::task::spawn` and the caller waits in
//! `task::block_on`, which runs only the caller's own future, not the spawned tasks.

#![forbid(unsafe_code)]

use std::future::Future;
use std::num::NonZeroUsize;
use std::pin::Pin;
use std::sync::OnceLock;

use async_std::task;
use workloads::{
    ForkJoin, Step, Style, StyleConfig, StyleEntry, StyleError, Support, Workload, fib,
};

/// The `async-std` row of the catalog.
pub const ENTRY: StyleEntry = StyleEntry {
    name: "async-std",
    summary: "async-std's global executor, sized to the workers: a task per input or split",
    support,
    build,
};

fn support(workload: Workload) -> Support {
    match workload {
        Workload::FibBatch | Workload::FibSkewed | Workload::FibForkJoin => Support::Runs,
    }
}

/// The thread count the global executor was started with, in this process.
static EXECUTOR_THREADS: OnceLock<NonZeroUsize> = OnceLock::new();

fn build(config: &StyleConfig) -> Result<Box<dyn Style>, StyleError> {
    let threads = *EXECUTOR_THREADS.get_or_init(|| {
        async_global_executor::init_with_config(
            async_global_executor::GlobalExecutorConfig::default()
                .with_min_threads(config.workers.get())
                .with_max_threads(config.workers.get()),
        );
        config.workers
    });
    if threads != config.workers {
        return Err(StyleError::Config(format!(
            "async-std's global executor already runs {threads} threads in this process; \
             it cannot be resized to {}",
            config.workers
        )));
    }
    Ok(Box::new(AsyncStd))
}

/// A handle to async-std's global executor, started with the configured thread count.
#[derive(Debug, Clone, Copy)]
pub struct AsyncStd;

impl Style for AsyncStd {
    fn fib_batch(&self, inputs: &[u32]) -> Result<Vec<u64>, StyleError> {
        let inputs = inputs.to_vec();
        run(async move {
            let tasks: Vec<_> = inputs
                .into_iter()
                .map(|n| task::spawn(async move { fib(n) }))
                .collect();
            let mut answers = Vec::with_capacity(tasks.len());
            for task in tasks {
                answers.push(task.await);
            }
            answers
        })
    }

    fn fib_forkjoin(&self, job: ForkJoin) -> Result<u64, StyleError> {
        run(spawn_fib(job, job.n))
    }
}

/// Runs `work` as a task on the executor's threads; the caller only waits.
fn run<T: Send + 'static>(work: impl Future<Output = T> + Send + 'static) -> Result<T, StyleError> {
    // A panic inside a task resurfaces here when its handle is awaited.
    Ok(task::block_on(task::spawn(work)))
}

/// `fib(n)` as a task tree: spawn the left child of every split, await the right one
/// inline.
fn spawn_fib(job: ForkJoin, n: u32) -> Pin<Box<dyn Future<Output = u64> + Send>> {
    Box::pin(async move {
        match job.step(n) {
            Step::Leaf(value) => value,
            Step::Split(left, right) => {
                let left = task::spawn(spawn_fib(job, left));
                let right = spawn_fib(job, right).await;
                left.await + right
            }
        }
    })
}
