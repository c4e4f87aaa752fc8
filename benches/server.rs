//! The Beazley server under load: `fib(1)` requests, closed loop.
//!
//! - `throughput` — each style's server, in a child process of its own started once per
//!   style, answers `fib(1)` requests sent closed loop over 1 and over 32 connections by
//!   this process's client, on `CLIENT_THREADS` threads. Each timed iteration is a
//!   steady-state window of `BATCH` requests: every connection keeps one request
//!   outstanding and claims the next from a shared count, so the window ends one round
//!   trip after its last request, whichever connection sent it — the rate a server
//!   sustains, the same quantity the Beazley scenario's throughput phase measures over a
//!   fixed time. Reveals the per-request cost of each server model (a thread per
//!   connection, a hand-off to a pool or a process, a readiness loop, an async runtime)
//!   when the work itself is trivial. The iterative `seq` server serves one connection at
//!   a time, so it runs with one connection only.
//! - **Where client and server sit.** Over one connection the rate is one round trip
//!   at a time, and on a virtual machine a round trip costs several times more when
//!   client and server are on two CPUs (each request wakes an idle vCPU) than when the
//!   scheduler happens to put them on one (a context switch): measured on the 2-core
//!   VM of the reports, `fib(1)` over one connection ran at about 50 000 req/s with both
//!   pinned to CPU 0 and about 11 000 with the client on CPU 1, whatever the server. Left
//!   to the scheduler, the c=1 rate is a lottery of placement, not a property of the
//!   server. So at c=1 the server (`serve --cpus`) and the client are pinned apart, the
//!   first half of the CPUs for the server and the rest for the client
//!   (`scenarios::cpus::isolation_split`, the Beazley scenario's `isolated`
//!   arrangement, which is the row it is compared with), as a client on another host
//!   would be. At c=32 neither is pinned (`shared`): the server needs every CPU, and a
//!   busy server's round trips rarely wait for an idle CPU. On a one-CPU machine both
//!   are shared.
//!
//! Printed beside criterion's numbers, and saved for `concbench report` as
//! `target/concbench/bench-server.json`, per benchmark: how evenly the connections were
//! served (the fewest and most replies one connection got in a window: a server that
//! starves some connections is worse, whatever its total rate), and the CPU time per
//! request of the client (this process) and of the server (its process tree), so that
//! a reader can see the client is not what limits the rate.
//!
//! What it does not claim: latency under mixed load (that is `concbench scenario
//! beazley`, whose hog phase criterion cannot express), or anything about a network:
//! client and server share this machine's loopback and cores, so the client's own cost
//! is in every number, the same for every style. Every reply is checked; a wrong answer,
//! a reply not asked for or a failed request fails the benchmark.

mod common;

use std::ffi::OsString;
use std::num::NonZeroUsize;
use std::time::Duration;

use criterion::{
    BenchmarkId, Criterion, SamplingMode, Throughput, criterion_group, criterion_main,
};
use loadgen::{ClosedLoop, RequestSpec};
use scenarios::cpus::{self, CpuList};
use scenarios::{ChildRegistry, ReadyBy, ServerChild, ServerCommand, ThroughputBenchRow};
use workloads::{ServerModel, StyleConfig, StyleEntry, Support, Workload};

/// Client connections: one (a request's round trip) and many (the server's concurrency).
const CONNECTIONS: [usize; 2] = [1, 32];
/// Requests per timed iteration (one steady-state window), over all the connections.
const BATCH: u64 = 2_000;
/// The client's threads, the same as the Beazley scenario's throughput phase.
const CLIENT_THREADS: usize = loadgen::THROUGHPUT_CLIENT_THREADS;
/// The request: the seed's `perf2` sends `fib(1)`.
const FIB_N: u32 = 1;

fn throughput(criterion: &mut Criterion) {
    common::record_run("server");
    let mut group = criterion.benchmark_group(Workload::Throughput.name());
    group.sampling_mode(SamplingMode::Flat);
    group.throughput(Throughput::Elements(BATCH));
    let workers = StyleConfig::default_workers().unwrap_or_else(|error| panic!("{error}"));
    let registry = ChildRegistry::default();
    let usable = cpus::usable().unwrap_or_else(|error| panic!("cannot read usable CPUs: {error}"));
    let mut rows = Vec::new();
    for entry in catalog::STYLES {
        if let Support::NotApplicable(reason) = (entry.support)(Workload::Throughput) {
            eprintln!("throughput/{}: n/a: {reason}", entry.name);
            continue;
        }
        for connections in CONNECTIONS {
            if connections > 1 && entry.server_model == ServerModel::Iterative {
                eprintln!(
                    "throughput/{}/c{connections}: n/a: one connection at a time",
                    entry.name
                );
                continue;
            }
            // See the header: one connection's round trips are measured between two CPUs.
            let placement = if connections == 1 {
                cpus::isolation_split(&usable)
            } else {
                None
            };
            let command = serve_command(entry.name, workers, placement.as_ref().map(|(s, _)| s));
            let server = ServerChild::start(&command, &registry, Duration::from_secs(20))
                .unwrap_or_else(|error| panic!("{error}"));
            if let Some((_, client)) = &placement {
                // The client's threads inherit the set from this thread.
                cpus::pin_to(client)
                    .unwrap_or_else(|error| panic!("cannot pin the client: {error}"));
            }
            let row = bench_connections(&mut group, entry, &server, connections);
            if placement.is_some() {
                cpus::pin_to(&usable)
                    .unwrap_or_else(|error| panic!("cannot unpin the client: {error}"));
            }
            rows.extend(row.map(|row| match &placement {
                Some((server_cpus, client_cpus)) => ThroughputBenchRow {
                    arrangement: Some("isolated".to_owned()),
                    server_cpus: Some(server_cpus.to_string()),
                    client_cpus: Some(client_cpus.to_string()),
                    ..row
                },
                None => ThroughputBenchRow {
                    arrangement: Some("shared".to_owned()),
                    ..row
                },
            }));
            let stopped = server.stop(Duration::from_secs(5));
            assert!(stopped, "{} did not stop cleanly after SIGTERM", entry.name);
        }
    }
    group.finish();
    if !rows.is_empty() {
        common::save_run_rows("server", Some(&rows));
    }
}

/// Times batches over `connections` connections opened once, outside the timed region;
/// returns what the windows added up to, or `None` when criterion's filter left the
/// benchmark out.
fn bench_connections(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    entry: &StyleEntry,
    server: &ServerChild,
    connections: usize,
) -> Option<ThroughputBenchRow> {
    let request = RequestSpec::Fib { n: FIB_N };
    let mut client = ClosedLoop::connect(
        server.addr(),
        connections,
        CLIENT_THREADS.min(connections),
        &request,
        Duration::from_secs(10),
    )
    .unwrap_or_else(|error| panic!("{}: {error}", entry.name));
    let id = BenchmarkId::new(entry.name, format!("c{connections}"));
    let mut spent = Spent::default();
    group.bench_function(id, |bencher| {
        bencher.iter_custom(|iters| {
            let (client_before, server_before) = (measure::cpu::self_cpu(), server.cpu_time());
            let elapsed = (0..iters)
                .map(|_| {
                    let batch = client
                        .run_batch(BATCH)
                        .unwrap_or_else(|error| panic!("{}: {error}", entry.name));
                    assert_eq!(
                        batch.right, BATCH,
                        "{}: not every reply right: {batch:?}",
                        entry.name
                    );
                    spent.fewest = spent.fewest.min(batch.min_per_connection);
                    spent.most = spent.most.max(batch.max_per_connection);
                    batch.elapsed
                })
                .sum();
            spent.requests += iters * BATCH;
            spent.client += measure::cpu::self_cpu().saturating_sub(client_before);
            if let (Some(before), Some(after)) = (server_before, server.cpu_time()) {
                spent.server += after.total().saturating_sub(before.total());
                spent.server_measured = true;
            }
            elapsed
        });
    });
    if spent.requests == 0 {
        // Filtered out on criterion's command line: nothing was measured.
        return None;
    }
    let per_request = |time: Duration| time.as_secs_f64() * 1e6 / spent.requests as f64;
    let row = ThroughputBenchRow {
        style: entry.name.to_owned(),
        connections,
        client_threads: CLIENT_THREADS.min(connections),
        window: BATCH,
        requests: spent.requests,
        fewest_per_connection: spent.fewest,
        most_per_connection: spent.most,
        client_cpu_us: per_request(spent.client),
        server_cpu_us: spent.server_measured.then(|| per_request(spent.server)),
        arrangement: None,
        server_cpus: None,
        client_cpus: None,
    };
    eprintln!(
        "throughput/{}/c{connections}: replies per connection per window {}..{} (even: {}); \
         CPU per request: client {:.1} µs on {} thread(s), server {}",
        entry.name,
        row.fewest_per_connection,
        row.most_per_connection,
        row.even_share(),
        row.client_cpu_us,
        row.client_threads,
        row.server_cpu_us
            .map_or_else(|| "unknown".to_owned(), |micros| format!("{micros:.1} µs")),
    );
    Some(row)
}

/// What one benchmark's windows added up to, beside criterion's times.
struct Spent {
    requests: u64,
    client: Duration,
    server: Duration,
    server_measured: bool,
    fewest: u64,
    most: u64,
}

impl Default for Spent {
    fn default() -> Self {
        Self {
            requests: 0,
            client: Duration::ZERO,
            server: Duration::ZERO,
            server_measured: false,
            fewest: u64::MAX,
            most: 0,
        }
    }
}

/// `concbench serve` for `style`, pinned to `cpus` when given.
fn serve_command(style: &str, workers: NonZeroUsize, cpus: Option<&CpuList>) -> ServerCommand {
    let workers = workers.to_string();
    let mut args = vec![
        "serve",
        "--style",
        style,
        "--addr",
        "127.0.0.1:0",
        "--workers",
        &workers,
    ];
    let cpus = cpus.map(CpuList::to_string);
    if let Some(cpus) = &cpus {
        args.extend(["--cpus", cpus]);
    }
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
