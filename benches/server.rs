//! The Beazley server under load: `fib(1)` requests, closed loop.
//!
//! - `throughput` — each style's server, in a child process of its own started once per
//!   style, answers batches of `BATCH` `fib(1)` requests sent closed loop over 1 and over
//!   32 connections by this process's client. Reveals the per-request cost of each
//!   server model (a thread per connection, a hand-off to a pool or a process, a
//!   readiness loop, an async runtime) when the work itself is trivial. The iterative
//!   `seq` server serves one connection at a time, so it runs with one connection only.
//!
//! What it does not claim: latency under mixed load (that is `concbench scenario
//! beazley`, whose hog phase criterion cannot express), or anything about a network:
//! client and server share this machine's loopback and cores, so the client's own cost
//! is in every number, the same for every style. Every reply is checked; a wrong answer
//! or a failed request fails the benchmark.

mod common;

use std::ffi::OsString;
use std::num::NonZeroUsize;
use std::time::Duration;

use criterion::{
    BenchmarkId, Criterion, SamplingMode, Throughput, criterion_group, criterion_main,
};
use loadgen::{ClosedLoop, RequestSpec};
use scenarios::{ChildRegistry, ReadyBy, ServerChild, ServerCommand};
use workloads::{ServerModel, StyleConfig, StyleEntry, Support, Workload};

/// Client connections: one (a request's round trip) and many (the server's concurrency).
const CONNECTIONS: [usize; 2] = [1, 32];
/// Requests per timed iteration, spread over the connections.
const BATCH: u64 = 2_000;
/// The request: the seed's `perf2` sends `fib(1)`.
const FIB_N: u32 = 1;

fn throughput(criterion: &mut Criterion) {
    common::record_run("server");
    let mut group = criterion.benchmark_group(Workload::Throughput.name());
    group.sampling_mode(SamplingMode::Flat);
    group.throughput(Throughput::Elements(BATCH));
    let workers = StyleConfig::default_workers().unwrap_or_else(|error| panic!("{error}"));
    let registry = ChildRegistry::default();
    for entry in catalog::STYLES {
        if let Support::NotApplicable(reason) = (entry.support)(Workload::Throughput) {
            eprintln!("throughput/{}: n/a: {reason}", entry.name);
            continue;
        }
        let command = serve_command(entry.name, workers);
        let server = ServerChild::start(&command, &registry, Duration::from_secs(20))
            .unwrap_or_else(|error| panic!("{error}"));
        for connections in CONNECTIONS {
            if connections > 1 && entry.server_model == ServerModel::Iterative {
                eprintln!(
                    "throughput/{}/c{connections}: n/a: one connection at a time",
                    entry.name
                );
                continue;
            }
            bench_connections(&mut group, entry, &server, connections);
        }
        let stopped = server.stop(Duration::from_secs(5));
        assert!(stopped, "{} did not stop cleanly after SIGTERM", entry.name);
    }
    group.finish();
}

/// Times batches over `connections` connections opened once, outside the timed region.
fn bench_connections(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    entry: &StyleEntry,
    server: &ServerChild,
    connections: usize,
) {
    let request = RequestSpec::Fib { n: FIB_N };
    let mut client = ClosedLoop::connect(
        server.addr(),
        connections,
        &request,
        Duration::from_secs(10),
    )
    .unwrap_or_else(|error| panic!("{}: {error}", entry.name));
    let id = BenchmarkId::new(entry.name, format!("c{connections}"));
    group.bench_function(id, |bencher| {
        bencher.iter_custom(|iters| {
            (0..iters)
                .map(|_| {
                    let batch = client
                        .run_batch(BATCH)
                        .unwrap_or_else(|error| panic!("{}: {error}", entry.name));
                    assert_eq!(
                        batch.right, BATCH,
                        "{}: not every reply right: {batch:?}",
                        entry.name
                    );
                    batch.elapsed
                })
                .sum()
        });
    });
}

fn serve_command(style: &str, workers: NonZeroUsize) -> ServerCommand {
    let args = [
        "serve",
        "--style",
        style,
        "--addr",
        "127.0.0.1:0",
        "--workers",
        &workers.to_string(),
    ];
    ServerCommand {
        name: style.to_owned(),
        program: env!("CARGO_BIN_EXE_concbench").into(),
        args: args.iter().map(OsString::from).collect(),
        ready: ReadyBy::ListeningLine,
    }
}

criterion_group! {
    name = server;
    // See benches/cpu.rs for why 10 000 resamples.
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(10)
        .nresamples(10_000);
    targets = throughput
}
criterion_main!(server);
