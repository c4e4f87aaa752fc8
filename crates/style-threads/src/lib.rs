//! Plain `std::thread`: scoped threads spawned for each call, no pool.
//!
//! Batches are split statically into one contiguous chunk per worker, so on heavy-tailed
//! inputs the slowest chunk sets the time; that imbalance is what `fib_skewed` shows.
//! Fork-join spawns a thread per split down to a small depth (about four leaves per
//! worker) and recurses sequentially below it, because a thread per task would cost far
//! more than the task.
//!
//! The server is thread-per-connection, computing inline: the operating system's
//! scheduler time-slices a long request against the others.

#![forbid(unsafe_code)]

use std::net::TcpListener;
use std::num::NonZeroUsize;
use std::thread;

use workloads::server::{self, ServeConfig, ServerHandle};
use workloads::{
    ForkJoin, ServerModel, Step, Style, StyleConfig, StyleEntry, StyleError, Support, Workload, fib,
};

/// The `threads` row of the catalog.
pub const ENTRY: StyleEntry = StyleEntry {
    name: "threads",
    summary: "`std::thread::scope`: a thread per chunk, depth-limited threads for fork-join",
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
    Ok(Box::new(Threads {
        workers: config.workers,
    }))
}

/// Spawns scoped threads on every call: `workers` threads for a batch, about
/// `4 × workers` for fork-join. Nothing is kept between calls.
#[derive(Debug, Clone, Copy)]
pub struct Threads {
    workers: NonZeroUsize,
}

impl Style for Threads {
    fn fib_batch(&self, inputs: &[u32]) -> Result<Vec<u64>, StyleError> {
        let mut answers = vec![0; inputs.len()];
        let chunk_len = inputs.len().div_ceil(self.workers.get()).max(1);
        thread::scope(|scope| {
            for (inputs, answers) in inputs.chunks(chunk_len).zip(answers.chunks_mut(chunk_len)) {
                scope.spawn(move || {
                    for (answer, &n) in answers.iter_mut().zip(inputs) {
                        *answer = fib(n);
                    }
                });
            }
        });
        Ok(answers)
    }

    fn fib_forkjoin(&self, job: ForkJoin) -> Result<u64, StyleError> {
        // ceil(log2(workers)) + 2 levels of splitting: about four leaves per worker, so
        // the unequal halves of the Fibonacci tree even out across the cores.
        let spawn_depth = self.workers.get().next_power_of_two().trailing_zeros() + 2;
        Ok(split_on_threads(job, job.n, spawn_depth))
    }

    fn serve(
        &self,
        listener: TcpListener,
        config: ServeConfig,
    ) -> Result<ServerHandle, StyleError> {
        server::spawn_thread_per_connection(listener, config, server::inline_compute())
            .map_err(StyleError::io("starting the server"))
    }
}

/// Splits `n` with one new thread per split until `depth` reaches zero, then finishes
/// sequentially.
fn split_on_threads(job: ForkJoin, n: u32, depth: u32) -> u64 {
    if depth == 0 {
        return fib(n);
    }
    match job.step(n) {
        Step::Leaf(value) => value,
        Step::Split(left, right) => thread::scope(|scope| {
            let left = scope.spawn(move || split_on_threads(job, left, depth - 1));
            let right = split_on_threads(job, right, depth - 1);
            // A panic in the left half is re-raised here, like one in the right half.
            left.join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
                + right
        }),
    }
}
