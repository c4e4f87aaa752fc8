//! CPU-bound workloads: the same naive `fib` work, scheduled by every style.
//!
//! - `fib_batch` — a parallel map over equal inputs. Reveals each style's overhead
//!   when any split is a good split: every parallel style should approach
//!   `workers ×` the `seq` baseline; `evloop` and `tokio-current` stay near `1 ×`
//!   because one thread runs all the work (that is the lesson, not a bug).
//! - `fib_skewed` — the same map over heavy-tailed inputs (most small, a few large).
//!   Reveals static chunking (`threads` splits the list into one chunk per worker, and
//!   the chunk holding the large inputs sets the time) against dynamic queues and work
//!   stealing.
//! - `fib_forkjoin` — one recursive `fib(n)` split down to a sequential cutoff, a task
//!   per split. Reveals what a task costs in each style (spawn, queue, steal, join).
//!
//! The sizes, the calls and the checks are `measure::suite`'s, shared with the
//! measurement engine (`concbench measure`), whose interleaved, paired rounds are what
//! the report quotes; criterion measures each style contiguously, in one process, and
//! its HTML is for reading, not for ratios on a noisy machine.
//!
//! What it does not claim: anything about I/O, memory-bound work or machines with more
//! cores than the one it ran on. Every style gets the same worker count (the available
//! cores, or `CONCBENCH_WORKERS`); every answer is checked, before timing and after each
//! timed iteration, and a wrong answer fails the benchmark.

mod common;

use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use workloads::Workload;

fn fib_batch(criterion: &mut Criterion) {
    common::record_run("cpu");
    common::bench_workload(criterion, Workload::FibBatch);
}

fn fib_skewed(criterion: &mut Criterion) {
    common::bench_workload(criterion, Workload::FibSkewed);
}

fn fib_forkjoin(criterion: &mut Criterion) {
    common::bench_workload(criterion, Workload::FibForkJoin);
}

criterion_group! {
    name = cpu;
    // Each iteration takes milliseconds to tens of milliseconds: ten flat samples of a
    // few iterations each keep the suite within minutes and give criterion ten points.
    // 10 000 bootstrap resamples instead of 100 000: criterion draws a density plot of
    // every resampled statistic, and at 100 000 those plots cost seconds per benchmark
    // on two cores, more than the measurement itself; ten samples do not support the
    // extra resolution anyway.
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(10)
        .nresamples(10_000);
    targets = fib_batch, fib_skewed, fib_forkjoin
}
criterion_main!(cpu);
