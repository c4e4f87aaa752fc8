//! The sequential baseline: every workload runs on the calling thread, one step after
//! another. Every other style's time is reported as a ratio to this one.
//!
//! Its server is iterative: one thread accepts a connection and serves it until the
//! client leaves, then accepts the next. A second client waits for the first, so an
//! idle client blocks everyone; that is the baseline's lesson, not an oversight.

#![forbid(unsafe_code)]

use std::net::TcpListener;

use workloads::server::{self, ServeConfig, ServerHandle};
use workloads::{
    ForkJoin, ServerModel, Style, StyleConfig, StyleEntry, StyleError, Support, Workload, fib,
};

/// The `seq` row of the catalog.
pub const ENTRY: StyleEntry = StyleEntry {
    name: "seq",
    summary: "the calling thread, one item after another (the baseline)",
    support,
    build,
    server_model: ServerModel::Iterative,
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

    fn serve(
        &self,
        listener: TcpListener,
        config: ServeConfig,
    ) -> Result<ServerHandle, StyleError> {
        server::spawn_iterative(listener, config, server::inline_compute())
            .map_err(StyleError::io("starting the iterative server"))
    }
}
