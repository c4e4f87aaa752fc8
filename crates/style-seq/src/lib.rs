//! The sequential baseline: every workload runs on the calling thread, one step after
//! another. Every other style's time is reported as a ratio to this one.

#![forbid(unsafe_code)]

use workloads::{ForkJoin, Style, StyleConfig, StyleEntry, StyleError, Support, Workload, fib};

/// The `seq` row of the catalog.
pub const ENTRY: StyleEntry = StyleEntry {
    name: "seq",
    summary: "the calling thread, one item after another (the baseline)",
    support,
    build,
};

fn support(workload: Workload) -> Support {
    match workload {
        Workload::FibBatch | Workload::FibSkewed | Workload::FibForkJoin => Support::Runs,
    }
}

fn build(_config: &StyleConfig) -> Result<Box<dyn Style>, StyleError> {
    Ok(Box::new(Sequential))
}

/// Runs everything on the calling thread; the worker count does not apply.
#[derive(Debug, Clone, Copy, Default)]
pub struct Sequential;

impl Style for Sequential {
    fn fib_batch(&self, inputs: &[u32]) -> Result<Vec<u64>, StyleError> {
        Ok(inputs.iter().map(|&n| fib(n)).collect())
    }

    fn fib_forkjoin(&self, job: ForkJoin) -> Result<u64, StyleError> {
        // The baseline is the plain recursion, with no task tree at all: the parallel
        // styles' ratios then include what their splitting costs.
        Ok(fib(job.n))
    }
}
