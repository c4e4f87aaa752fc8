//! The load generator against small in-process servers whose behaviour is known: every
//! answer right, every answer wrong, refused connections, stalls.

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::Duration;

use loadgen::{ClosedLoop, LoadConfig, LoadError, RequestSpec, StopAfter};
use workloads::server::{self, Job, JobRunner, ServeConfig, ServerHandle};

fn start_server(jobs: JobRunner) -> ServerHandle {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    server::spawn_thread_per_connection(listener, ServeConfig::default(), jobs).expect("serve")
}

/// A server's jobs that answer every request (either form) with `answer(n)`.
fn answering(answer: impl Fn(u32) -> u64 + Send + Sync + 'static) -> JobRunner {
    Arc::new(move |job| match job {
        Job::Fib(n) | Job::AskBackend(n) => Ok(Ok(answer(n))),
    })
}

fn config(addr: SocketAddr, connections: usize, stop: StopAfter) -> LoadConfig {
    LoadConfig {
        ramp: Duration::ZERO,
        addr,
        connections,
        threads: 1,
        stop,
        rate: None,
        request: RequestSpec::Fib { n: 10 },
        request_timeout: Duration::from_secs(10),
    }
}

fn requests(count: u64) -> StopAfter {
    StopAfter {
        duration: None,
        requests: Some(count),
        max_duration: Duration::from_secs(60),
        settle: Duration::ZERO,
    }
}

#[test]
fn counts_every_right_answer_and_stops_at_the_request_limit() {
    let server = start_server(server::inline_jobs(&ServeConfig::default()));
    for (connections, threads) in [(1, 1), (4, 1), (5, 2)] {
        let mut config = config(server.local_addr(), connections, requests(1_000));
        config.threads = threads;
        let report = loadgen::run(&config, |_| {}).expect("load");
        assert_eq!(
            report.requests, 1_000,
            "{connections} connections, {threads} threads"
        );
        assert_eq!(report.right, 1_000);
        assert!(report.all_right(), "{report:?}");
        let (p50, p99, max) = (
            report.latency.p50_us.expect("replies recorded"),
            report.latency.p99_us.expect("replies recorded"),
            report.latency.max_us.expect("replies recorded"),
        );
        assert!(p50 <= p99 && p99 <= max, "{report:?}");
        assert!(report.rps > 0.0);
        assert_eq!(
            report.send_lateness, None,
            "a closed loop never waits to send"
        );
    }
}

#[test]
fn counts_wrong_answers() {
    let server = start_server(answering(|n| workloads::fib(n) + 1));
    let report = loadgen::run(&config(server.local_addr(), 2, requests(50)), |_| {}).expect("load");
    assert_eq!(report.wrong, 50, "{report:?}");
    assert_eq!(report.right, 0);
    assert!(!report.all_right());
}

#[test]
fn counts_server_errors() {
    let server = start_server(server::inline_jobs(&ServeConfig::default()));
    let mut config = config(server.local_addr(), 1, requests(20));
    // Above the server's max-n: every reply is `error: out of range`.
    config.request = RequestSpec::Fib { n: 41 };
    let report = loadgen::run(&config, |_| {}).expect("load");
    assert_eq!(report.errors, 20, "{report:?}");
    assert_eq!(report.wrong, 0);
}

#[test]
fn raw_mode_judges_by_prefix() {
    let server = start_server(server::inline_jobs(&ServeConfig::default()));
    let mut config = config(server.local_addr(), 1, requests(10));
    config.request = RequestSpec::Raw {
        line: "12".into(),
        expect_prefix: "14".into(), // fib(12) = 144
    };
    assert_eq!(loadgen::run(&config, |_| {}).expect("load").right, 10);
    config.request = RequestSpec::Raw {
        line: "12".into(),
        expect_prefix: "+PONG".into(),
    };
    assert_eq!(loadgen::run(&config, |_| {}).expect("load").wrong, 10);
}

#[test]
fn a_duration_bounds_the_run_and_progress_is_reported() {
    let server = start_server(server::inline_jobs(&ServeConfig::default()));
    let stop = StopAfter {
        duration: Some(Duration::from_millis(400)),
        requests: None,
        max_duration: Duration::from_secs(60),
        settle: Duration::ZERO,
    };
    let mut progress_calls = 0;
    let report = loadgen::run(&config(server.local_addr(), 2, stop), |_| {
        progress_calls += 1
    })
    .expect("load");
    assert!(report.requests > 0);
    // Generous bound: a shared machine may be slow, but the run must end by itself.
    assert!(report.elapsed_s < 10.0, "{report:?}");
    assert!(progress_calls > 0);
}

#[test]
fn open_loop_sends_at_the_target_rate() {
    let server = start_server(server::inline_jobs(&ServeConfig::default()));
    let mut config = config(
        server.local_addr(),
        2,
        StopAfter {
            duration: Some(Duration::from_secs(1)),
            requests: None,
            max_duration: Duration::from_secs(60),
            settle: Duration::ZERO,
        },
    );
    config.rate = Some(100.0);
    let report = loadgen::run(&config, |_| {}).expect("load");
    // 100 requests are due in the second: never more are sent. A loaded machine may
    // send fewer (a request due after the end is not sent late), but not half as many.
    assert!((50..=101).contains(&report.requests), "{report:?}");
    // The client says how late it sent: a lateness for every run that paced requests.
    let lateness = report
        .send_lateness
        .expect("an open loop records send lateness");
    assert!(lateness.p50_us <= lateness.p99_us && lateness.p99_us <= lateness.max_us);
}

#[test]
fn a_stalled_server_is_charged_from_the_due_time() {
    // Every request takes 50 ms: an open loop at 100/s on one connection falls behind,
    // and the latency of later requests includes the wait for their turn.
    let server = start_server(answering(|n| {
        std::thread::sleep(Duration::from_millis(50));
        workloads::fib(n)
    }));
    let mut config = config(
        server.local_addr(),
        1,
        StopAfter {
            duration: Some(Duration::from_millis(500)),
            requests: None,
            max_duration: Duration::from_secs(60),
            settle: Duration::ZERO,
        },
    );
    config.rate = Some(100.0);
    let report = loadgen::run(&config, |_| {}).expect("load");
    assert!(report.requests >= 2, "{report:?}");
    // The last answered request was due long before it was sent.
    assert!(
        report.latency.max_us.is_some_and(|max| max >= 150_000),
        "{report:?}"
    );
    // …but that wait was the server's: the client sent each request as soon as the
    // previous reply let it, so its own lateness is far below the 50 ms service time.
    let lateness = report
        .send_lateness
        .expect("an open loop records send lateness");
    assert!(lateness.p50_us < 25_000, "{report:?}");
}

#[test]
fn no_server_is_a_clear_error() {
    let addr = {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("addr")
    };
    match loadgen::run(&config(addr, 1, requests(1)), |_| {}) {
        Err(LoadError::Connect { addr: refused, .. }) => assert_eq!(refused, addr),
        other => panic!("expected a connect error, got {other:?}"),
    }
}

#[test]
fn bad_configurations_are_refused() {
    let addr: SocketAddr = "127.0.0.1:9".parse().expect("addr");
    let mut no_connections = config(addr, 0, requests(1));
    assert!(matches!(
        loadgen::run(&no_connections, |_| {}),
        Err(LoadError::Config(_))
    ));
    no_connections.connections = 1;
    no_connections.rate = Some(-5.0);
    assert!(matches!(
        loadgen::run(&no_connections, |_| {}),
        Err(LoadError::Config(_))
    ));
    let mut unbounded = config(addr, 1, requests(1));
    unbounded.stop.requests = None;
    assert!(matches!(
        loadgen::run(&unbounded, |_| {}),
        Err(LoadError::Config(_))
    ));
    let mut multiline = config(addr, 1, requests(1));
    multiline.request = RequestSpec::Raw {
        line: "PING\nPING".into(),
        expect_prefix: "+PONG".into(),
    };
    assert!(matches!(
        loadgen::run(&multiline, |_| {}),
        Err(LoadError::Config(_))
    ));
}

#[test]
fn closed_loop_batches_reuse_their_connections() {
    let server = start_server(server::inline_jobs(&ServeConfig::default()));
    for client_threads in [1, 2] {
        let mut client = ClosedLoop::connect(
            server.local_addr(),
            3,
            client_threads,
            &RequestSpec::Fib { n: 5 },
            Duration::from_secs(10),
        )
        .expect("connect");
        for _ in 0..3 {
            let batch = client.run_batch(100).expect("batch");
            assert_eq!((batch.right, batch.server_errors, batch.wrong), (100, 0, 0));
            // Every request claimed once: the per-connection counts add up to the batch.
            assert!(batch.min_per_connection <= batch.max_per_connection);
            assert!(batch.max_per_connection <= 100);
            assert!(3 * batch.max_per_connection >= 100, "{batch:?}");
        }
    }
}

#[test]
fn a_closed_loop_batch_fails_on_a_reply_nobody_asked_for() {
    // The server answers each request twice: the second answer is not asked for.
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let server = std::thread::spawn(move || {
        use std::io::{BufRead, Write};
        let (stream, _) = listener.accept().expect("accept");
        let mut writer = stream.try_clone().expect("clone");
        let mut reader = std::io::BufReader::new(stream);
        let mut line = String::new();
        while reader.read_line(&mut line).is_ok_and(|read| read > 0) {
            if writer.write_all(b"5\n5\n").is_err() {
                break;
            }
            line.clear();
        }
    });
    let mut client = ClosedLoop::connect(
        addr,
        1,
        1,
        &RequestSpec::Fib { n: 5 },
        Duration::from_secs(10),
    )
    .expect("connect");
    let error = client
        .run_batch(10)
        .expect_err("a protocol violation fails the batch");
    assert_eq!(error.kind(), std::io::ErrorKind::InvalidData, "{error}");
    drop(client);
    server
        .join()
        .expect("the stand-in server ends when the client goes");
}

/// A server whose requests take 400 ms each for its first 300 ms (a slow start:
/// connects, cold caches), then none.
fn slow_start_server() -> ServerHandle {
    let started = std::time::Instant::now();
    start_server(answering(move |n| {
        if started.elapsed() < Duration::from_millis(300) {
            std::thread::sleep(Duration::from_millis(400));
        }
        workloads::fib(n)
    }))
}

fn for_a_while(duration_ms: u64, settle_ms: u64) -> StopAfter {
    StopAfter {
        duration: Some(Duration::from_millis(duration_ms)),
        requests: None,
        max_duration: Duration::from_secs(10),
        settle: Duration::from_millis(settle_ms),
    }
}

#[test]
fn a_settle_leaves_the_slow_start_out_of_the_numbers() {
    for rate in [None, Some(400.0)] {
        let server = slow_start_server();
        let mut config = config(server.local_addr(), 4, for_a_while(1600, 600));
        config.rate = rate;
        let report = loadgen::run(&config, |_| {}).expect("load");
        assert!(report.right > 0, "{report:?}");
        let max = report.latency.max_us.expect("latencies");
        assert!(max < 300_000, "a settled request was recorded: {report:?}");
        // The rate is over the recorded second, not the whole run.
        assert!((report.elapsed_s - 1.0).abs() < 1e-6, "{report:?}");
        if rate.is_some() {
            // Open loop: the requests due in the recorded second, ±1 per connection.
            assert!((396..=404).contains(&report.due), "{report:?}");
        }
    }
    // Without a settle, the slow start is in the numbers.
    let server = slow_start_server();
    let config = config(server.local_addr(), 4, for_a_while(500, 0));
    let report = loadgen::run(&config, |_| {}).expect("load");
    assert!(
        report.latency.max_us.expect("latencies") >= 300_000,
        "{report:?}"
    );
}
