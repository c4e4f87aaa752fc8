//! The load generator's own memory over many connections: what it keeps per connection
//! must be small, or a C10K run measures the client's page faults instead of the
//! server (a latency histogram per connection once held 1.8 GB at 10 000 connections,
//! and the first seconds of every run went to zeroing it).
//!
//! Alone in its own test binary, so that no other test's allocations move the
//! process's peak resident memory while it is read.

use std::net::TcpListener;
use std::time::Duration;

use loadgen::{LoadConfig, RequestSpec, StopAfter};
use workloads::server::{self, ServeConfig};

/// The process's peak resident memory, from the kernel.
fn peak_rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let kib: u64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse().ok())
        .expect("VmHWM in kB in /proc/self/status");
    kib * 1024
}

#[test]
fn a_thousand_closed_loop_connections_keep_the_client_small() {
    const CONNECTIONS: usize = 1_000;
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let server = server::spawn_thread_per_connection(
        listener,
        ServeConfig::default(),
        server::inline_jobs(&ServeConfig::default()),
    )
    .expect("serve");
    let config = LoadConfig {
        // Spread the connects, so that the server's accept queue never overflows.
        ramp: Duration::from_millis(500),
        addr: server.local_addr(),
        connections: CONNECTIONS,
        threads: 2,
        stop: StopAfter {
            duration: Some(Duration::from_secs(2)),
            requests: None,
            max_duration: Duration::from_secs(30),
            // A settle: settling requests once had a histogram of their own, too.
            settle: Duration::from_secs(1),
        },
        rate: None,
        request: RequestSpec::Fib { n: 1 },
        request_timeout: Duration::from_secs(10),
    };
    let before = peak_rss_bytes();
    let report = loadgen::run(&config, |_| {}).expect("load");
    let grown = peak_rss_bytes().saturating_sub(before);
    assert!(report.all_right(), "{report:?}");
    assert!(report.right > CONNECTIONS as u64, "{report:?}");
    // Two histograms per connection were about 180 MB here; the shared per-thread tally,
    // the connections' buffers and the server's thousand threads' stacks stay far below.
    assert!(
        grown < 64 * 1024 * 1024,
        "the client and its server grew by {} MiB over {CONNECTIONS} connections",
        grown / (1024 * 1024)
    );
}
