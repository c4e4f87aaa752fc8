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
//! What it does not claim: anything about I/O, memory-bound work or machines with more
//! cores than the one it ran on. Every style gets the same worker count (the available
//! cores, or `CONCBENCH_WORKERS`); every answer is checked, before timing and after each
//! timed iteration, and a wrong answer fails the benchmark.

mod common;

use std::time::Duration;

use criterion::{Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use workloads::{FibBatch, ForkJoin, Workload};

/// `fib_batch`: this many inputs, all equal to `FIB_BATCH_N`.
const FIB_BATCH_LEN: usize = 64;
const FIB_BATCH_N: u32 = 27;
/// `fib_skewed`: this many inputs between `SKEWED_N_MIN` and `SKEWED_N_MAX`.
const SKEWED_LEN: usize = 256;
const SKEWED_N_MIN: u32 = 20;
const SKEWED_N_MAX: u32 = 34;
const SKEWED_SEED: u64 = 0x5eed;
/// `fib_forkjoin`: `fib(FORKJOIN_N)` with a task for every node above `FORKJOIN_CUTOFF`.
const FORKJOIN_N: u32 = 34;
const FORKJOIN_CUTOFF: u32 = 20;

fn fib_batch(criterion: &mut Criterion) {
    common::record_run("cpu");
    let batch = FibBatch::equal(FIB_BATCH_LEN, FIB_BATCH_N);
    let parameter = format!("{FIB_BATCH_LEN}x{FIB_BATCH_N}");
    bench_batch(criterion, Workload::FibBatch, &batch, &parameter);
}

fn fib_skewed(criterion: &mut Criterion) {
    let batch = FibBatch::skewed(SKEWED_LEN, SKEWED_N_MIN, SKEWED_N_MAX, SKEWED_SEED);
    let parameter = format!("{SKEWED_LEN}x{SKEWED_N_MIN}-{SKEWED_N_MAX}");
    bench_batch(criterion, Workload::FibSkewed, &batch, &parameter);
}

fn bench_batch(criterion: &mut Criterion, workload: Workload, batch: &FibBatch, parameter: &str) {
    let mut group = criterion.benchmark_group(workload.name());
    group.sampling_mode(SamplingMode::Flat);
    group.throughput(Throughput::Elements(batch.len() as u64));
    for entry in catalog::STYLES {
        let Some(style) = common::build(entry, workload) else {
            continue;
        };
        common::bench_checked(
            &mut group,
            entry,
            parameter,
            || style.fib_batch(batch.inputs()),
            |answers| batch.check(answers),
        );
    }
    group.finish();
}

fn fib_forkjoin(criterion: &mut Criterion) {
    let job = ForkJoin::new(FORKJOIN_N, FORKJOIN_CUTOFF);
    let mut group = criterion.benchmark_group(Workload::FibForkJoin.name());
    group.sampling_mode(SamplingMode::Flat);
    for entry in catalog::STYLES {
        let Some(style) = common::build(entry, Workload::FibForkJoin) else {
            continue;
        };
        common::bench_checked(
            &mut group,
            entry,
            format!("{FORKJOIN_N}-cutoff{FORKJOIN_CUTOFF}"),
            || style.fib_forkjoin(job),
            |&answer| job.check(answer),
        );
    }
    group.finish();
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
