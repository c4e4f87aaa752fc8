//! A fleet of held connections (C10K): many connections opened at once and kept open,
//! each sending a request now and then, open loop.
//!
//! The fleet's connections are the load generator's own [`Connection`]s, and every
//! request goes through [`Connection::exchange`], so a fleet is as hard to fool as a load
//! run: a reply line is read only up to its bound ([`crate::MAX_FIB_REPLY_BYTES`]), bytes
//! nobody asked for are never an answer, and a connection whose stream is out of step is
//! dropped. What a phase measured is a [`LoadReport`] with the open loop's rules: latency
//! from each request's due time, and every request that fell due counted somewhere.

use std::io;
use std::net::SocketAddr;

use std::thread;
use std::time::Duration;

use tokio::runtime::Runtime;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::LoadError;
use crate::connection::{Connection, Exchange};
use crate::report::{LoadReport, Recording, SharedTally, Tally};
use crate::run::{LoadConfig, RequestSpec, StopAfter};

/// Connection attempts in flight at once, over all the fleet's client threads: enough to
/// open ten thousand connections in well under a second against a server that accepts
/// promptly, few enough that the client alone never overruns a listener's SYN or accept
/// queue, which would make the kernel drop SYNs and the connect time that of its
/// one-second SYN retransmission timer instead of the server's.
pub const CONNECTS_IN_FLIGHT: usize = 64;

/// The shortest interval between one connection's requests that a phase accepts: it
/// bounds the requests of a phase to `duration / interval` per connection.
pub const MIN_IDLE_INTERVAL: Duration = Duration::from_millis(1);

/// How long a request still in flight when a phase stops sending may take to be
/// answered before it counts as unanswered (as in a load run).
const DRAIN_GRACE: Duration = Duration::from_secs(1);

/// How long opening may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenLimits {
    /// One connection not established within this long counts as timed out.
    pub connect_timeout: Duration,
    /// The whole opening: connections not yet established when it has passed count as
    /// timed out, and no more are attempted.
    pub open_limit: Duration,
}

/// Why connections could not be opened, counted by cause.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OpenFailures {
    /// Out of file descriptors, in this process (`EMFILE`) or the system (`ENFILE`).
    pub out_of_descriptors: usize,
    /// Refused or reset by the server's side.
    pub refused: usize,
    /// Not established within [`OpenLimits::connect_timeout`], or not attempted before
    /// [`OpenLimits::open_limit`].
    pub timed_out: usize,
    /// Any other error (no free local port, say).
    pub other: usize,
    /// The first error seen, for messages.
    pub first_error: Option<String>,
}

impl OpenFailures {
    /// Every connection that could not be opened.
    pub fn total(&self) -> usize {
        self.out_of_descriptors + self.refused + self.timed_out + self.other
    }

    fn count(&mut self, error: &io::Error) {
        // Linux's EMFILE and ENFILE: std has no stable `ErrorKind` for them.
        const EMFILE: i32 = 24;
        const ENFILE: i32 = 23;
        let raw = error.raw_os_error();
        if raw == Some(EMFILE) || raw == Some(ENFILE) {
            self.out_of_descriptors += 1;
        } else if matches!(
            error.kind(),
            io::ErrorKind::ConnectionRefused | io::ErrorKind::ConnectionReset
        ) {
            self.refused += 1;
        } else if error.kind() == io::ErrorKind::TimedOut {
            self.timed_out += 1;
        } else {
            self.other += 1;
        }
        self.first_error.get_or_insert_with(|| error.to_string());
    }

    fn merge(&mut self, other: OpenFailures) {
        self.out_of_descriptors += other.out_of_descriptors;
        self.refused += other.refused;
        self.timed_out += other.timed_out;
        self.other += other.other;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
    }
}

/// One phase of a fleet: every held connection sends `request` once every `interval`,
/// staggered across the interval so that the load is smooth, for `duration`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdlePhase {
    /// What each request is.
    pub request: RequestSpec,
    /// How long requests fall due.
    pub duration: Duration,
    /// Between one connection's requests; at least [`MIN_IDLE_INTERVAL`].
    pub interval: Duration,
    /// A request not answered within this long counts as timed out.
    pub request_timeout: Duration,
}

/// Many open connections to one server, spread over a few client threads (a tokio
/// current-thread runtime each), held until the fleet is dropped.
///
/// Guarantees: opening and every phase end by themselves, within their limits
/// ([`OpenLimits`], the phase's duration plus a second's grace); a connection is never
/// replaced (a fleet measures what holding connections costs, not reconnecting), so a
/// connection the server breaks is dropped and its later requests count as failed;
/// dropping the fleet closes every connection.
#[derive(Debug)]
pub struct Fleet {
    addr: SocketAddr,
    parts: Vec<Part>,
    attempted: usize,
    established: usize,
    connect_time: Duration,
    failures: OpenFailures,
}

/// One client thread's share: its runtime and the connections registered with it.
#[derive(Debug)]
struct Part {
    /// Declared before the runtime, so the connections close while it still runs.
    connections: Vec<Connection>,
    runtime: Runtime,
}

impl Fleet {
    /// Opens `connections` connections to `addr`, over `threads` client threads, at most
    /// [`CONNECTS_IN_FLIGHT`] attempts in flight at once. Connections that cannot be
    /// opened are counted ([`Fleet::open_failures`]), not fatal: the fleet holds the
    /// others.
    ///
    /// Fails only when the fleet cannot run at all: no client thread, or a runtime or
    /// thread that cannot start.
    pub fn open(
        addr: SocketAddr,
        connections: usize,
        threads: usize,
        limits: OpenLimits,
    ) -> Result<Self, LoadError> {
        if threads == 0 {
            return Err(LoadError::Config("at least one client thread".into()));
        }
        let threads = threads.min(connections.max(1));
        let parts = (0..threads)
            .map(|_| {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(LoadError::Runtime)?;
                Ok(Part {
                    connections: Vec::new(),
                    runtime,
                })
            })
            .collect::<Result<Vec<_>, LoadError>>()?;
        let mut fleet = Self {
            addr,
            parts,
            attempted: connections,
            established: 0,
            connect_time: Duration::ZERO,
            failures: OpenFailures::default(),
        };
        let in_flight = (CONNECTS_IN_FLIGHT / threads).max(1);
        let start = std::time::Instant::now();
        let deadline = Instant::now() + limits.open_limit;
        let opened = thread::scope(|scope| {
            let handles = fleet
                .parts
                .iter_mut()
                .enumerate()
                .map(|(index, part)| {
                    // Connection i goes to thread i % threads.
                    let share = connections / threads + usize::from(index < connections % threads);
                    thread::Builder::new()
                        .name(format!("fleet-open-{index}"))
                        .spawn_scoped(scope, move || {
                            let opened = part.runtime.block_on(open_share(
                                addr,
                                share,
                                in_flight,
                                limits.connect_timeout,
                                deadline,
                            ));
                            part.connections = opened.0;
                            opened.1
                        })
                        .map_err(LoadError::Runtime)
                })
                .collect::<Result<Vec<_>, LoadError>>()?;
            let mut failures = OpenFailures::default();
            for handle in handles {
                let share = handle
                    .join()
                    .map_err(|_| LoadError::Runtime(io::Error::other("a fleet thread panicked")))?;
                failures.merge(share);
            }
            Ok::<_, LoadError>(failures)
        })?;
        fleet.connect_time = start.elapsed();
        fleet.failures = opened;
        fleet.established = fleet.open_connections();
        Ok(fleet)
    }

    /// The connections [`Fleet::open`] was asked for.
    pub fn attempted(&self) -> usize {
        self.attempted
    }

    /// The connections [`Fleet::open`] established: `attempted` less the failures.
    pub fn established(&self) -> usize {
        self.established
    }

    /// The connections held now: `established` less those released or lost since.
    pub fn open_connections(&self) -> usize {
        self.parts.iter().map(|part| part.connections.len()).sum()
    }

    /// The time [`Fleet::open`] took, from the first attempt until every attempt had
    /// ended (established, failed or timed out).
    pub fn connect_time(&self) -> Duration {
        self.connect_time
    }

    /// Why the connections that could not be opened were not.
    pub fn open_failures(&self) -> &OpenFailures {
        &self.failures
    }

    /// Closes up to `count` held connections, taken evenly from the client threads, and
    /// returns how many it closed: for a caller that hands those connections over to
    /// another client, which opens its own.
    pub fn release(&mut self, count: usize) -> usize {
        let mut released = 0;
        while released < count {
            let Some(part) = self
                .parts
                .iter_mut()
                .max_by_key(|part| part.connections.len())
                .filter(|part| !part.connections.is_empty())
            else {
                break;
            };
            // Dropped inside its runtime, so its registration with the reactor ends
            // cleanly.
            let _guard = part.runtime.enter();
            drop(part.connections.pop());
            released += 1;
        }
        released
    }

    /// Runs `phase` over every held connection and returns what it measured, as an
    /// open-loop load run over these connections would report it: `connections` the
    /// connections driven, `due` every request that fell due, `right` the right replies,
    /// latencies from each request's due time.
    ///
    /// Connections whose server broke the protocol (a wrong, overlong or unasked reply)
    /// or failed them, or whose request was still unanswered when the phase ended, are
    /// dropped: their later requests count as failed (or, after an unanswered one, as
    /// unsent, with a lower-bound latency), and [`Fleet::open_connections`] no longer
    /// counts them.
    pub fn idle_phase(&mut self, phase: &IdlePhase) -> Result<LoadReport, LoadError> {
        if phase.interval < MIN_IDLE_INTERVAL {
            return Err(LoadError::Config(format!(
                "the interval between a held connection's requests must be at least {MIN_IDLE_INTERVAL:?}"
            )));
        }
        let exchange = Exchange::new(&phase.request)?;
        let total = self.open_connections();
        let start = Instant::now();
        let send_until = start + phase.duration;
        let std_start = std::time::Instant::now();
        let tally = thread::scope(|scope| {
            let mut first_index = 0;
            let handles = self
                .parts
                .iter_mut()
                .enumerate()
                .map(|(thread_index, part)| {
                    let offset = first_index;
                    first_index += part.connections.len();
                    let exchange = exchange.clone();
                    thread::Builder::new()
                        .name(format!("fleet-{thread_index}"))
                        .spawn_scoped(scope, move || {
                            let connections = std::mem::take(&mut part.connections);
                            let (kept, tally) = part.runtime.block_on(drive_share(
                                connections,
                                exchange,
                                Schedule {
                                    start,
                                    interval: phase.interval,
                                    send_until,
                                    request_timeout: phase.request_timeout,
                                    total,
                                },
                                offset,
                            ));
                            part.connections = kept;
                            tally
                        })
                        .map_err(LoadError::Runtime)
                })
                .collect::<Result<Vec<_>, LoadError>>()?;
            let mut total = Tally::new();
            for handle in handles {
                let tally = handle
                    .join()
                    .map_err(|_| LoadError::Runtime(io::Error::other("a fleet thread panicked")))?;
                total.merge(&tally);
            }
            Ok::<_, LoadError>(total)
        })?;
        let config = LoadConfig {
            ramp: Duration::ZERO,
            addr: self.addr,
            connections: total,
            threads: self.parts.len(),
            stop: StopAfter {
                duration: Some(phase.duration),
                requests: None,
                max_duration: phase.duration + DRAIN_GRACE,
                settle: Duration::ZERO,
            },
            rate: (total > 0).then(|| total as f64 / phase.interval.as_secs_f64()),
            request: phase.request.clone(),
            request_timeout: phase.request_timeout,
        };
        Ok(Recording::new(&config, tally, std_start.elapsed()).report())
    }
}

/// Opens `count` connections, `in_flight` attempts at a time, none started after
/// `deadline`; returns those established and why the others were not.
async fn open_share(
    addr: SocketAddr,
    count: usize,
    in_flight: usize,
    connect_timeout: Duration,
    deadline: Instant,
) -> (Vec<Connection>, OpenFailures) {
    let mut opened = Vec::with_capacity(count);
    let mut failures = OpenFailures::default();
    let mut pending = JoinSet::new();
    let mut started = 0;
    loop {
        while started < count && pending.len() < in_flight && Instant::now() < deadline {
            let cutoff = (Instant::now() + connect_timeout).min(deadline);
            pending.spawn(tokio::time::timeout_at(cutoff, Connection::open(addr)));
            started += 1;
        }
        match pending.join_next().await {
            Some(Ok(Ok(Ok(connection)))) => opened.push(connection),
            Some(Ok(Ok(Err(error)))) => failures.count(&error),
            Some(Ok(Err(_elapsed))) => {
                failures.timed_out += 1;
                failures
                    .first_error
                    .get_or_insert_with(|| "connect timed out".to_owned());
            }
            Some(Err(error)) => failures.count(&io::Error::other(error)),
            None => break,
        }
    }
    // Not attempted before the deadline.
    let unattempted = count - started;
    if unattempted > 0 {
        failures.timed_out += unattempted;
        failures.first_error.get_or_insert_with(|| {
            format!("{unattempted} connections not attempted before the open limit")
        });
    }
    (opened, failures)
}

/// When a phase's requests fall due.
#[derive(Debug, Clone, Copy)]
struct Schedule {
    start: Instant,
    interval: Duration,
    send_until: Instant,
    request_timeout: Duration,
    /// Connections over all threads: connection `i` of them is offset by
    /// `interval * i / total`.
    total: usize,
}

impl Schedule {
    fn first_due(&self, index: usize) -> Instant {
        self.start
            + self
                .interval
                .mul_f64(index as f64 / self.total.max(1) as f64)
    }
}

/// Drives one thread's connections through a phase; returns those still held and what
/// they measured.
async fn drive_share(
    connections: Vec<Connection>,
    exchange: Exchange,
    schedule: Schedule,
    first_index: usize,
) -> (Vec<Connection>, Tally) {
    let tally = SharedTally::new();
    let mut tasks = JoinSet::new();
    for (index, connection) in connections.into_iter().enumerate() {
        let (exchange, tally) = (exchange.clone(), tally.clone());
        let first_due = schedule.first_due(first_index + index);
        tasks.spawn(
            async move { drive_held(connection, &exchange, first_due, schedule, &tally).await },
        );
    }
    let mut kept = Vec::with_capacity(tasks.len());
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(connection) => kept.extend(connection),
            // A panicked task's connection is gone, and its request with it.
            Err(_) => tally.update(|tally| tally.failed += 1),
        }
    }
    (kept, tally.take())
}

/// Where one held connection stands in a phase.
enum Held {
    /// Usable.
    Open(Connection),
    /// Dropped after a failure or a broken reply: later requests fail.
    Lost,
    /// Dropped with a request unanswered when sending stopped, at this instant: later
    /// requests that fell due were never sent.
    GaveUp(Instant),
}

/// One held connection's requests: one due every interval from `first_due`, each sent
/// when due, or late (its thread busy, an earlier reply slow) until [`DRAIN_GRACE`] after
/// the end, and judged by [`Connection::exchange`]. Returns the connection if it is
/// still usable.
async fn drive_held(
    connection: Connection,
    exchange: &Exchange,
    first_due: Instant,
    schedule: Schedule,
    tally: &SharedTally,
) -> Option<Connection> {
    let mut held = Held::Open(connection);
    let mut request_index: u32 = 0;
    loop {
        let due = first_due + schedule.interval * request_index;
        if due >= schedule.send_until {
            break;
        }
        let next_state = match &mut held {
            Held::Lost => {
                tally.update(|tally| tally.failed += 1);
                None
            }
            Held::GaveUp(given_up) => {
                let waited = given_up.saturating_duration_since(due);
                tally.update(|tally| {
                    tally.unsent += 1;
                    tally.record_lower_bound(waited);
                });
                None
            }
            Held::Open(connection) => {
                let free_at = Instant::now();
                tokio::time::sleep_until(due).await;
                if Instant::now() >= schedule.send_until + DRAIN_GRACE {
                    let waited = due.elapsed();
                    tally.update(|tally| {
                        tally.unsent += 1;
                        tally.record_lower_bound(waited);
                    });
                    None
                } else {
                    // tokio's timer: up to its 1 ms tick late, recorded as such. Ten
                    // thousand held connections cannot each have a timerfd of their own
                    // (the descriptor limit), and a held connection's interval is at
                    // least `MIN_IDLE_INTERVAL` anyway.
                    let lateness = free_at.max(due).elapsed();
                    tally.update(|tally| tally.record_send_lateness(lateness));
                    exchange_held(connection, exchange, due, schedule, tally).await
                }
            }
        };
        if let Some(state) = next_state {
            held = state;
        }
        let Some(next) = request_index.checked_add(1) else {
            break;
        };
        request_index = next;
    }
    match held {
        Held::Open(connection) => Some(connection),
        Held::Lost | Held::GaveUp(_) => None,
    }
}

/// Sends one request due at `due` on `connection` and records how it went; returns the
/// connection's new state when it can no longer be used.
async fn exchange_held(
    connection: &mut Connection,
    exchange: &Exchange,
    due: Instant,
    schedule: Schedule,
    tally: &SharedTally,
) -> Option<Held> {
    // A request sent before the end may finish up to DRAIN_GRACE after it.
    let cutoff = (Instant::now() + schedule.request_timeout).min(schedule.send_until + DRAIN_GRACE);
    let outcome = tokio::time::timeout_at(cutoff, connection.exchange(exchange)).await;
    let latency = due.elapsed();
    match outcome {
        Ok(Ok(verdict)) => {
            tally.update(|tally| tally.record(verdict, latency));
            (!verdict.keeps_connection()).then_some(Held::Lost)
        }
        Ok(Err(_)) => {
            tally.update(|tally| tally.failed += 1);
            Some(Held::Lost)
        }
        Err(_) if Instant::now() >= schedule.send_until => {
            // A reply may still come: the stream is out of step.
            tally.update(|tally| {
                tally.unanswered += 1;
                tally.record_lower_bound(latency);
            });
            Some(Held::GaveUp(Instant::now()))
        }
        Err(_) => {
            tally.update(|tally| {
                tally.timed_out += 1;
                tally.record_lower_bound(latency);
            });
            Some(Held::Lost)
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::net::{TcpListener, TcpStream};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    use workloads::server::{self, ServeConfig};

    use super::*;

    const LIMITS: OpenLimits = OpenLimits {
        connect_timeout: Duration::from_secs(5),
        open_limit: Duration::from_secs(30),
    };

    fn phase(duration: Duration, interval: Duration) -> IdlePhase {
        IdlePhase {
            request: RequestSpec::Fib { n: 1 },
            duration,
            interval,
            request_timeout: Duration::from_secs(2),
        }
    }

    #[test]
    fn holds_connections_and_answers_every_request_that_falls_due() {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let config = ServeConfig::default();
        let server =
            server::spawn_thread_per_connection(listener, config, server::inline_jobs(&config))
                .expect("serve");
        let mut fleet = Fleet::open(server.local_addr(), 50, 2, LIMITS).expect("fleet");
        assert_eq!(fleet.attempted(), 50);
        assert_eq!(fleet.established(), 50, "{:?}", fleet.open_failures());
        assert_eq!(fleet.open_failures().total(), 0);
        assert!(fleet.connect_time() > Duration::ZERO);

        let report = fleet
            .idle_phase(&phase(Duration::from_secs(1), Duration::from_millis(250)))
            .expect("phase");
        // Four requests fall due on each connection: at its offset, then every 250 ms.
        assert_eq!(report.due, 200, "{report:?}");
        assert_eq!(report.right, 200, "{report:?}");
        assert!(report.all_right(), "{report:?}");
        assert_eq!(report.connections, 50);
        assert_eq!(fleet.open_connections(), 50);

        assert_eq!(fleet.release(8), 8);
        assert_eq!(fleet.open_connections(), 42);
        assert_eq!(fleet.established(), 50);
        assert_eq!(fleet.release(100), 42);
        assert_eq!(fleet.open_connections(), 0);
    }

    #[test]
    fn counts_connections_that_cannot_be_opened() {
        // A port nobody listens on: bound, then closed.
        let addr = TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free port");
        let fleet = Fleet::open(addr, 10, 2, LIMITS).expect("fleet");
        assert_eq!(fleet.established(), 0);
        assert_eq!(
            fleet.open_failures().refused,
            10,
            "{:?}",
            fleet.open_failures()
        );
        assert!(fleet.open_failures().first_error.is_some());
    }

    #[test]
    fn rejects_an_interval_below_the_minimum() {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let mut fleet =
            Fleet::open(listener.local_addr().expect("addr"), 1, 1, LIMITS).expect("fleet");
        let error = fleet
            .idle_phase(&phase(Duration::from_secs(1), Duration::from_micros(10)))
            .expect_err("too short an interval");
        assert!(matches!(error, LoadError::Config(_)), "{error}");
    }

    /// A stand-in that writes `chunk` to every connection as fast as it can, from the
    /// start or once the first request has arrived, reading nothing else; stopped (its
    /// threads joined) on drop.
    struct Flooder {
        addr: SocketAddr,
        stop: Arc<AtomicBool>,
        acceptor: Option<thread::JoinHandle<()>>,
    }

    impl Flooder {
        fn start(chunk: Vec<u8>, after_first_request: bool) -> Self {
            let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
            let addr = listener.local_addr().expect("addr");
            let stop = Arc::new(AtomicBool::new(false));
            let acceptor = {
                let stop = Arc::clone(&stop);
                thread::spawn(move || {
                    let mut writers = Vec::new();
                    for stream in listener.incoming() {
                        if stop.load(Ordering::Relaxed) {
                            break;
                        }
                        let Ok(mut stream) = stream else { continue };
                        let (stop, chunk) = (Arc::clone(&stop), chunk.clone());
                        writers.push(thread::spawn(move || {
                            let _ = stream.set_write_timeout(Some(Duration::from_millis(50)));
                            let _ = stream.set_read_timeout(Some(Duration::from_millis(50)));
                            let mut byte = [0u8; 1];
                            while after_first_request && !stop.load(Ordering::Relaxed) {
                                match std::io::Read::read(&mut stream, &mut byte) {
                                    Ok(1) if byte[0] == b'\n' => break,
                                    Ok(0) => return,
                                    Ok(_) => {}
                                    Err(error)
                                        if matches!(
                                            error.kind(),
                                            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                                        ) => {}
                                    Err(_) => return,
                                }
                            }
                            while !stop.load(Ordering::Relaxed) {
                                match stream.write_all(&chunk) {
                                    Ok(()) => {}
                                    Err(error)
                                        if matches!(
                                            error.kind(),
                                            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                                        ) => {}
                                    Err(_) => break,
                                }
                            }
                        }));
                    }
                    for writer in writers {
                        let _ = writer.join();
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

    impl Drop for Flooder {
        fn drop(&mut self) {
            self.stop.store(true, Ordering::Relaxed);
            // Wake the acceptor, blocked in accept.
            let _ = TcpStream::connect(self.addr);
            if let Some(acceptor) = self.acceptor.take() {
                let _ = acceptor.join();
            }
        }
    }

    /// The process's peak resident memory, from the kernel.
    fn peak_rss_bytes() -> u64 {
        let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmHWM:"))
            .and_then(|rest| rest.split_whitespace().next()?.parse::<u64>().ok())
            .expect("VmHWM in kB")
            * 1024
    }

    #[test]
    fn unasked_answers_and_endless_lines_are_errors_with_bounded_memory() {
        // Right answers (fib(1) = 1) nobody asked for, sent from the start; and, once asked,
        // a line that never ends.
        for (chunk, unasked) in [
            (b"1\n".repeat(1_000), true),
            (b"1".repeat(16 * 1024), false),
        ] {
            let flooder = Flooder::start(chunk, !unasked);
            let mut fleet = Fleet::open(flooder.addr, 8, 2, LIMITS).expect("fleet");
            assert_eq!(fleet.established(), 8);
            let before = peak_rss_bytes();
            let started = std::time::Instant::now();
            let report = fleet
                .idle_phase(&phase(Duration::from_secs(1), Duration::from_millis(100)))
                .expect("phase");
            let grown = peak_rss_bytes().saturating_sub(before);
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "the phase must end by itself: {report:?}"
            );
            assert_eq!(report.right, 0, "{report:?}");
            assert!(!report.all_right(), "{report:?}");
            // Each connection's first request is judged wrong and the connection dropped;
            // the rest of its requests fail.
            assert_eq!(report.wrong, 8, "{report:?}");
            if unasked {
                assert_eq!(report.unasked, 8, "{report:?}");
            } else {
                assert_eq!(report.overlong, 8, "{report:?}");
            }
            assert_eq!(report.due, 80, "{report:?}");
            assert_eq!(report.failed, 72, "{report:?}");
            assert_eq!(fleet.open_connections(), 0);
            // The stand-in writes as fast as loopback goes; the client keeps at most a
            // read buffer per connection.
            assert!(grown < 32 << 20, "grew by {grown} bytes: {report:?}");
        }
    }
}
