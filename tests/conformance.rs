//! Every style against the reference answers: one test per (style, workload), stamped
//! out by `conformance!` so that a failure names both.
//!
//! A workload that a style's entry declares not applicable must be refused by the built
//! style with the same reason; one that it declares supported must be answered right,
//! including the edge cases (empty batches, fewer inputs than workers, inputs at or
//! below the cutoff).

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

use workloads::server::ServeConfig;
use workloads::tasks;
use workloads::{FibBatch, ForkJoin, ServerModel, Style, StyleError, Support, Workload};

/// Runs `workload` on `style` with every test input set and checks each answer.
fn check_workload(style: &str, workload: Workload) {
    let entry = catalog::find(style).unwrap_or_else(|| panic!("{style} is not in the catalog"));
    let built =
        (entry.build)(&common::style_config()).unwrap_or_else(|error| panic!("{style}: {error}"));
    match (entry.support)(workload) {
        Support::Runs => run_and_check(built.as_ref(), workload),
        // One `serve` answers every network workload, so it cannot refuse one of them:
        // the only honest reason a server cannot hold many connections is that it
        // serves one at a time.
        Support::NotApplicable(_)
            if workload == Workload::Connections
                && (entry.support)(Workload::Throughput) == Support::Runs =>
        {
            assert_eq!(entry.server_model, ServerModel::Iterative, "{style}");
        }
        Support::NotApplicable(declared) => match run_once(built.as_ref(), workload) {
            Err(StyleError::NotApplicable(refused)) => assert_eq!(refused, declared),
            other => panic!("{style} declares {workload} n/a but returned {other:?}"),
        },
    }
}

fn run_and_check(style: &dyn Style, workload: Workload) {
    match workload {
        Workload::FibBatch => {
            for batch in [
                FibBatch::equal(24, 18),
                FibBatch::equal(0, 10),
                FibBatch::equal(1, 20),
                // Fewer inputs than workers, and the two base cases.
                FibBatch::equal(2, 0),
                FibBatch::equal(2, 1),
            ] {
                let answers = style.fib_batch(batch.inputs()).expect("fib_batch");
                batch
                    .check(&answers)
                    .unwrap_or_else(|wrong| panic!("{batch:?}: {wrong}"));
            }
        }
        Workload::FibSkewed => {
            for seed in [1, 2, 3] {
                let batch = FibBatch::skewed(100, 10, 24, seed);
                let answers = style.fib_batch(batch.inputs()).expect("fib_skewed");
                batch
                    .check(&answers)
                    .unwrap_or_else(|wrong| panic!("seed {seed}: {wrong}"));
            }
        }
        Workload::FibForkJoin => {
            for job in [
                ForkJoin::new(24, 10),
                ForkJoin::new(20, 1),
                // At or below the cutoff: no split at all.
                ForkJoin::new(12, 12),
                ForkJoin::new(0, 5),
                ForkJoin::new(1, 5),
            ] {
                let answer = style.fib_forkjoin(job).expect("fib_forkjoin");
                job.check(answer)
                    .unwrap_or_else(|wrong| panic!("{job:?}: {wrong}"));
            }
        }
        Workload::Spawn => {
            for n_units in [0, 1, 3, 100] {
                let answers = style.spawn(n_units).expect("spawn");
                tasks::check_spawn(n_units, &answers)
                    .unwrap_or_else(|wrong| panic!("{n_units} units: {wrong}"));
            }
        }
        Workload::PingPong => {
            for n_messages in [0, 1, 500] {
                let observed = style.ping_pong(n_messages).expect("ping_pong");
                tasks::check_ping_pong(n_messages, &observed)
                    .unwrap_or_else(|wrong| panic!("{n_messages} messages: {wrong}"));
            }
        }
        Workload::Sleepers => {
            let sleep = Duration::from_millis(5);
            for n_units in [0, 1, 50] {
                let observed = style.sleepers(n_units, sleep).expect("sleepers");
                tasks::check_sleepers(n_units, &observed)
                    .unwrap_or_else(|wrong| panic!("{n_units} sleepers: {wrong}"));
                assert!(observed.spawned_in <= observed.finished_in, "{observed:?}");
                if n_units > 0 {
                    assert!(
                        observed.finished_in >= sleep,
                        "finished before the timer: {observed:?}"
                    );
                }
            }
        }
        // The protocol itself is tested against every server in `tests/protocol.rs`,
        // through the binary; this checks the in-process contract: serve, answer, stop.
        Workload::Throughput => serve_and_ask(style, b"1\n10\n", &["1", "55"]),
        Workload::HogLatency => serve_and_ask(style, b"25\n1\n", &["75025", "1"]),
        Workload::Connections => hold_many_connections(style, 200),
        Workload::IoWait => {
            let listener = TcpListener::bind("127.0.0.1:0").expect("bind the backend");
            let backend = backend::Backend::start(
                listener,
                backend::BackendConfig {
                    delay: Duration::from_millis(10),
                    threads: std::num::NonZeroUsize::MIN,
                },
            )
            .expect("start the backend");
            let config = ServeConfig {
                backend: Some(backend.local_addr()),
                ..ServeConfig::default()
            };
            serve_and_ask_with(style, config, b"wait 10\n3\nwait 1\n", &["55", "2", "1"]);
            assert_eq!(backend.answered(), 2, "one backend request per wait");
        }
    }
}

/// Opens `n_connections` connections to `style`'s server and asks a request on each
/// while all of them stay open: the server holds them at once.
fn hold_many_connections(style: &dyn Style, n_connections: usize) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let server = style
        .serve(listener, ServeConfig::default())
        .expect("serve");
    let mut clients: Vec<BufReader<TcpStream>> = (0..n_connections)
        .map(|_| {
            let stream = TcpStream::connect(server.local_addr()).expect("connect");
            stream
                .set_read_timeout(Some(Duration::from_secs(15)))
                .expect("timeout");
            BufReader::new(stream)
        })
        .collect();
    for round in 0..2 {
        for client in &mut clients {
            client.get_mut().write_all(b"12\n").expect("write");
        }
        for (connection_idx, client) in clients.iter_mut().enumerate() {
            let mut line = String::new();
            client.read_line(&mut line).unwrap_or_else(|error| {
                panic!("round {round}, connection {connection_idx}: {error}")
            });
            assert_eq!(line, "144\n", "round {round}, connection {connection_idx}");
        }
    }
    drop(clients);
    server.stop();
}

/// Starts `style`'s server in this process, sends `requests`, checks the `replies`, and
/// stops the server.
fn serve_and_ask(style: &dyn Style, requests: &[u8], replies: &[&str]) {
    serve_and_ask_with(style, ServeConfig::default(), requests, replies);
}

/// [`serve_and_ask`] with a server configuration of its own.
fn serve_and_ask_with(style: &dyn Style, config: ServeConfig, requests: &[u8], replies: &[&str]) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let server = style.serve(listener, config).expect("serve");
    let stream = TcpStream::connect(server.local_addr()).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(15)))
        .expect("timeout");
    let mut reader = BufReader::new(stream);
    reader.get_mut().write_all(requests).expect("write");
    for expected in replies {
        let mut line = String::new();
        reader.read_line(&mut line).expect("reply");
        assert_eq!(line.trim_end(), *expected);
    }
    // A connection still open when the server stops must be closed by it, not left to
    // a task or thread that outlives the server. (The first connection goes first: the
    // iterative server serves one at a time.)
    drop(reader);
    let idle = TcpStream::connect(server.local_addr()).expect("connect");
    idle.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let mut idle = BufReader::new(idle);
    idle.get_mut().write_all(b"1\n").expect("write");
    let mut line = String::new();
    idle.read_line(&mut line)
        .expect("the idle connection is served");
    server.stop();
    line.clear();
    match idle.read_line(&mut line) {
        Ok(0) => {}
        Err(error)
            if error.kind() != std::io::ErrorKind::WouldBlock
                && error.kind() != std::io::ErrorKind::TimedOut => {}
        other => panic!("a connection outlived the server's stop: {other:?} {line:?}"),
    }
}

/// Runs `workload` once with a small input, for styles expected to refuse it.
fn run_once(style: &dyn Style, workload: Workload) -> Result<(), StyleError> {
    match workload {
        Workload::FibBatch | Workload::FibSkewed => style.fib_batch(&[5]).map(drop),
        Workload::FibForkJoin => style.fib_forkjoin(ForkJoin::new(10, 5)).map(drop),
        Workload::Spawn => style.spawn(1).map(drop),
        Workload::PingPong => style.ping_pong(1).map(drop),
        Workload::Sleepers => style.sleepers(1, Duration::from_millis(1)).map(drop),
        Workload::Throughput | Workload::HogLatency | Workload::Connections | Workload::IoWait => {
            let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
            style.serve(listener, ServeConfig::default()).map(drop)
        }
    }
}

macro_rules! conformance {
    ($($module:ident => $style:literal),* $(,)?) => {
        $(
            mod $module {
                use super::*;

                #[test]
                fn fib_batch() {
                    check_workload($style, Workload::FibBatch);
                }

                #[test]
                fn fib_skewed() {
                    check_workload($style, Workload::FibSkewed);
                }

                #[test]
                fn fib_forkjoin() {
                    check_workload($style, Workload::FibForkJoin);
                }

                #[test]
                fn spawn() {
                    check_workload($style, Workload::Spawn);
                }

                #[test]
                fn ping_pong() {
                    check_workload($style, Workload::PingPong);
                }

                #[test]
                fn sleepers() {
                    check_workload($style, Workload::Sleepers);
                }

                #[test]
                fn throughput() {
                    check_workload($style, Workload::Throughput);
                }

                #[test]
                fn hog_latency() {
                    check_workload($style, Workload::HogLatency);
                }

                #[test]
                fn connections() {
                    check_workload($style, Workload::Connections);
                }

                #[test]
                fn io_wait() {
                    check_workload($style, Workload::IoWait);
                }
            }
        )*

        /// Every style the macro stamped tests out for, in order.
        const TESTED_STYLES: &[&str] = &[$($style),*];
    };
}

conformance! {
    seq => "seq",
    threads => "threads",
    threads_static => "threads-static",
    pool => "pool",
    process => "process",
    evloop => "evloop",
    evloop_offload => "evloop-offload",
    rayon => "rayon",
    crossbeam => "crossbeam",
    tokio => "tokio",
    tokio_current => "tokio-current",
    tokio_offload => "tokio-offload",
    async_std => "async-std",
    async_std_offload => "async-std-offload",
    smol => "smol",
    smol_offload => "smol-offload",
    compio => "compio",
    compio_offload => "compio-offload",
    monoio => "monoio",
    monoio_offload => "monoio-offload",
}

#[test]
fn every_catalog_style_has_conformance_tests() {
    let listed: Vec<&str> = catalog::names().collect();
    assert_eq!(listed, TESTED_STYLES, "add the new style to conformance!");
}

#[test]
fn every_workload_has_a_conformance_test() {
    // A new workload must be added to the macro above and to `run_and_check`; this
    // match stops compiling until it is.
    for workload in Workload::ALL {
        match workload {
            Workload::FibBatch
            | Workload::FibSkewed
            | Workload::FibForkJoin
            | Workload::Spawn
            | Workload::PingPong
            | Workload::Sleepers
            | Workload::Throughput
            | Workload::HogLatency
            | Workload::Connections
            | Workload::IoWait => {}
        }
    }
}

#[test]
fn thread_and_process_units_above_the_machine_limit_are_refused_unstarted() {
    for entry in catalog::STYLES {
        let kind = entry.unit;
        if !matches!(kind, tasks::UnitKind::Thread | tasks::UnitKind::Process) {
            continue;
        }
        // A variant that does not run the task workloads has nothing to refuse.
        if !matches!((entry.support)(Workload::Spawn), Support::Runs) {
            continue;
        }
        let style = (entry.build)(&common::style_config()).expect("build");
        let too_many = tasks::unit_limit(kind).max_units + 1;
        for result in [
            style.spawn(too_many).map(drop),
            style.sleepers(too_many, Duration::from_millis(1)).map(drop),
        ] {
            assert!(
                matches!(result, Err(StyleError::TooManyUnits { .. })),
                "{}: {result:?}",
                entry.name
            );
        }
    }
}
