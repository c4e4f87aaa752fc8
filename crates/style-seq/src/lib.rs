//! The sequential baseline: every workload runs on the calling thread, one step after
//! another. Every other style's time is reported as a ratio to this one.
//!
//! A `spawn` unit is a plain function call: the cost every other style's unit is
//! measured against. Messaging and sleeping need a second unit that runs while the first
//! waits, which one thread does not have.
//!
//! Its server is iterative: one thread accepts a connection and serves it until the
//! client leaves, then accepts the next. A second client waits for the first, so an
//! idle client blocks everyone; that is the baseline's lesson, not an oversight.

#![forbid(unsafe_code)]

use std::hint::black_box;
use std::net::TcpListener;
use std::time::Duration;

use workloads::server::{self, ServeConfig, ServerHandle};
use workloads::tasks::{self, PingPong, Sleepers, UnitKind};
use workloads::{
    CpuThreads, ForkJoin, ServerModel, Style, StyleConfig, StyleEntry, StyleError, Support,
    Workload, fib,
};

/// The `seq` row of the catalog.
pub const ENTRY: StyleEntry = StyleEntry {
    name: "seq",
    summary: "the calling thread, one item after another (the baseline)",
    support,
    build,
    server_model: ServerModel::Iterative,
    cpu_threads: CpuThreads::One,
    unit: UnitKind::Call,
};

const NO_SECOND_UNIT: &str = "one thread has no second unit to exchange messages with";
const SLEEPS_IN_TURN: &str = "one thread would sleep N times in turn, not N units at once";
const ONE_CONNECTION_AT_A_TIME: &str = "an iterative server holds one connection at a time: the other N − 1 wait in the listen backlog, unserved";

fn support(workload: Workload) -> Support {
    match workload {
        Workload::FibBatch
        | Workload::FibSkewed
        | Workload::FibForkJoin
        | Workload::Spawn
        | Workload::Throughput
        | Workload::HogLatency
        | Workload::IoWait => Support::Runs,
        Workload::PingPong => Support::NotApplicable(NO_SECOND_UNIT),
        Workload::Connections => Support::NotApplicable(ONE_CONNECTION_AT_A_TIME),
        Workload::Sleepers => Support::NotApplicable(SLEEPS_IN_TURN),
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

    fn spawn(&self, n_units: usize) -> Result<Vec<u64>, StyleError> {
        // `black_box` keeps each call a call, rather than a loop the compiler rewrites.
        Ok((0..n_units)
            .map(|index| black_box(tasks::spawn_unit(black_box(index))))
            .collect())
    }

    fn ping_pong(&self, _n_messages: u64) -> Result<PingPong, StyleError> {
        Err(StyleError::NotApplicable(NO_SECOND_UNIT))
    }

    fn sleepers(&self, _n_units: usize, _sleep: Duration) -> Result<Sleepers, StyleError> {
        Err(StyleError::NotApplicable(SLEEPS_IN_TURN))
    }

    fn serve(
        &self,
        listener: TcpListener,
        config: ServeConfig,
    ) -> Result<ServerHandle, StyleError> {
        server::spawn_iterative(listener, config, server::inline_jobs(&config))
            .map_err(StyleError::io("starting the iterative server"))
    }
}
