//! The load generator against deliberately broken servers: silence, garbage, a server
//! that hangs up at once, one that half-closes, one that floods answers nobody asked
//! for, and one that sends an endless line. Each run must end by itself, count honestly (never a right answer that
//! was not asked for) and keep the client's memory bounded.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use loadgen::{LoadConfig, LoadReport, RequestSpec, StopAfter};
use workloads::server::{self, ServeConfig};

/// What a stand-in server does with each connection.
#[derive(Debug, Clone, Copy)]
enum Misbehaviour {
    /// Reads every request, never answers.
    Silent,
    /// Answers every request line with a line that is not a number.
    Garbage,
    /// Closes every connection as soon as it is accepted.
    HangsUp,
    /// Shuts down its sending side at once and keeps reading: the client sees end of
    /// file while its own side stays open.
    HalfCloses,
    /// Writes right answers (`55\n`, fib(10)) as fast as it can, without reading.
    Floods,
    /// Writes digits without ever ending the line.
    EndlessLine,
}

/// A stand-in server on loopback; dropping it stops its threads, also when a test
/// fails.
struct StandIn {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    acceptor: Option<JoinHandle<()>>,
}

impl StandIn {
    fn start(misbehaviour: Misbehaviour) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let stop = Arc::new(AtomicBool::new(false));
        let acceptor = {
            let stop = Arc::clone(&stop);
            thread::spawn(move || {
                let mut handlers = Vec::new();
                for stream in listener.incoming() {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let Ok(stream) = stream else { continue };
                    let stop = Arc::clone(&stop);
                    handlers.push(thread::spawn(move || serve(stream, misbehaviour, &stop)));
                }
                for handler in handlers {
                    let _ = handler.join();
                }
            })
        };
        Self {
            addr,
            stop,
            acceptor: Some(acceptor),
        }
    }
}

impl Drop for StandIn {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Wake the acceptor, blocked in accept.
        let _ = TcpStream::connect(self.addr);
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
    }
}

/// One connection of a stand-in. Every loop ends when the client goes away (a read of
/// 0 or a failed write) or the stand-in stops; reads time out so that the stop flag is
/// seen.
fn serve(stream: TcpStream, misbehaviour: Misbehaviour, stop: &AtomicBool) {
    let _ = stream.set_read_timeout(Some(Duration::from_millis(50)));
    let mut writer = match stream.try_clone() {
        Ok(writer) => writer,
        Err(_) => return,
    };
    match misbehaviour {
        Misbehaviour::HangsUp => {}
        Misbehaviour::HalfCloses => {
            let _ = stream.shutdown(std::net::Shutdown::Write);
            let mut sink = [0u8; 256];
            let mut reader = &stream;
            while !stop.load(Ordering::Relaxed) {
                match std::io::Read::read(&mut reader, &mut sink) {
                    Ok(0) => break,
                    Ok(_) => {}
                    Err(error)
                        if matches!(
                            error.kind(),
                            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                        ) => {}
                    Err(_) => break,
                }
            }
        }
        Misbehaviour::Silent | Misbehaviour::Garbage => {
            let mut reader = BufReader::new(stream);
            let mut line = String::new();
            while !stop.load(Ordering::Relaxed) {
                line.clear();
                match reader.read_line(&mut line) {
                    Ok(0) => break,
                    Ok(_) => {
                        if matches!(misbehaviour, Misbehaviour::Garbage)
                            && writer.write_all(b"banana\n").is_err()
                        {
                            break;
                        }
                    }
                    Err(error)
                        if matches!(
                            error.kind(),
                            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                        ) => {}
                    Err(_) => break,
                }
            }
        }
        Misbehaviour::Floods | Misbehaviour::EndlessLine => {
            // One write of many lines (or of a line's middle): the client sees them
            // arrive together, as a flooding server's would.
            let chunk: Vec<u8> = match misbehaviour {
                Misbehaviour::Floods => b"55\n".repeat(1_000),
                _ => b"5".repeat(16 * 1024),
            };
            while !stop.load(Ordering::Relaxed) {
                if writer.write_all(&chunk).is_err() {
                    break;
                }
            }
        }
    }
}

fn load(addr: SocketAddr, connections: usize, duration: Duration) -> LoadConfig {
    LoadConfig {
        ramp: Duration::ZERO,
        addr,
        connections,
        threads: 1,
        stop: StopAfter {
            duration: Some(duration),
            requests: None,
            max_duration: Duration::from_secs(30),
            settle: Duration::ZERO,
        },
        rate: None,
        request: RequestSpec::Fib { n: 10 },
        request_timeout: Duration::from_millis(500),
    }
}

/// Runs `config` and checks what every run against a broken server must show: it ended
/// by itself, soon after its duration, and no right answer was counted.
fn run_against(config: &LoadConfig) -> LoadReport {
    let start = Instant::now();
    let report = loadgen::run(config, |_| {}).expect("a broken server is measured, not fatal");
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "the run must end by itself: {report:?}"
    );
    assert_eq!(report.right, 0, "{report:?}");
    assert!(!report.all_right(), "{report:?}");
    report
}

/// The process's peak resident memory, from the kernel.
fn peak_rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let line = status
        .lines()
        .find(|line| line.starts_with("VmHWM:"))
        .expect("VmHWM in /proc/self/status");
    let kib: u64 = line
        .split_whitespace()
        .nth(1)
        .and_then(|kib| kib.parse().ok())
        .expect("VmHWM in kB");
    kib * 1024
}

#[test]
fn a_silent_server_times_out_and_its_requests_are_charged() {
    let server = StandIn::start(Misbehaviour::Silent);
    let report = run_against(&load(server.addr, 2, Duration::from_millis(1_500)));
    assert_eq!(report.requests, 0, "{report:?}");
    assert!(report.timed_out + report.unanswered >= 2, "{report:?}");
    // Every request given up on still has a latency, at least the time it waited.
    assert!(report.latency_lower_bounds >= 2, "{report:?}");
    assert!(
        report.latency.max_us.is_some_and(|max| max >= 400_000),
        "{report:?}"
    );
}

#[test]
fn garbage_counts_as_wrong() {
    let server = StandIn::start(Misbehaviour::Garbage);
    let report = run_against(&load(server.addr, 2, Duration::from_millis(500)));
    assert!(report.wrong > 0, "{report:?}");
    assert_eq!(report.wrong, report.requests, "{report:?}");
    assert_eq!((report.unasked, report.overlong), (0, 0), "{report:?}");
}

#[test]
fn a_server_that_hangs_up_is_a_failure_with_back_off() {
    let server = StandIn::start(Misbehaviour::HangsUp);
    let report = run_against(&load(server.addr, 2, Duration::from_millis(500)));
    assert_eq!(report.requests, 0, "{report:?}");
    assert!(report.failed > 0, "{report:?}");
    // A back-off between attempts: not a spin of thousands of connects per second.
    assert!(
        (report.failed as f64) < 2.0 * 0.5 * 1_000.0,
        "reconnects without back-off: {report:?}"
    );
}

#[test]
fn a_server_that_half_closes_is_a_failure_not_a_hang() {
    let server = StandIn::start(Misbehaviour::HalfCloses);
    let report = run_against(&load(server.addr, 2, Duration::from_millis(500)));
    assert_eq!(report.requests, 0, "{report:?}");
    assert!(report.failed > 0, "{report:?}");
    assert!(
        (report.failed as f64) < 2.0 * 0.5 * 1_000.0,
        "reconnects without back-off: {report:?}"
    );
}

#[test]
fn answers_nobody_asked_for_are_never_right() {
    let server = StandIn::start(Misbehaviour::Floods);
    let report = run_against(&load(server.addr, 2, Duration::from_millis(500)));
    assert!(report.unasked > 0, "{report:?}");
    assert_eq!(report.wrong, report.requests, "{report:?}");
}

#[test]
fn an_endless_line_is_cut_off_and_memory_stays_bounded() {
    let server = StandIn::start(Misbehaviour::EndlessLine);
    let before = peak_rss_bytes();
    let report = run_against(&load(server.addr, 4, Duration::from_secs(2)));
    let grown = peak_rss_bytes().saturating_sub(before);
    assert!(report.overlong > 0, "{report:?}");
    assert_eq!(report.wrong, report.requests, "{report:?}");
    // The stand-in writes hundreds of megabytes a second; the client keeps at most a
    // reply line's bound and a read buffer per connection.
    assert!(
        grown < 64 * 1024 * 1024,
        "the client grew by {grown} bytes: {report:?}"
    );
}

#[test]
fn open_loop_counts_the_requests_it_never_got_to_send() {
    // Every request takes 300 ms; an open loop at 100/s on one connection for a second
    // owes 100 requests but can send only a handful. The rest fell due all the same.
    let server = server::spawn_thread_per_connection(
        TcpListener::bind("127.0.0.1:0").expect("bind"),
        ServeConfig::default(),
        Arc::new(|job| {
            thread::sleep(Duration::from_millis(300));
            Ok(job.run_here(None))
        }),
    )
    .expect("serve");
    let mut config = load(server.local_addr(), 1, Duration::from_secs(1));
    config.rate = Some(100.0);
    config.request_timeout = Duration::from_secs(5);
    let report = loadgen::run(&config, |_| {}).expect("load");
    assert!((95..=101).contains(&report.due), "{report:?}");
    assert!(report.requests <= 5, "{report:?}");
    assert!(report.unsent >= 80, "{report:?}");
    assert!(report.latency_lower_bounds >= report.unsent, "{report:?}");
    // The first request was due at the start and the run gave up on the last ones at
    // its end: the worst latency is at least most of the second, whatever was answered.
    assert!(
        report.latency.max_us.is_some_and(|max| max >= 700_000),
        "{report:?}"
    );
    assert!(
        report.latency.p99_us.is_some_and(|p99| p99 >= 500_000),
        "{report:?}"
    );
}
