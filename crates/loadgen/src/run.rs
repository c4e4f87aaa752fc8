//! A bounded load run: closed or open loop, over one or more client threads.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::Duration;

use hdrhistogram::Histogram;
use tokio::time::Instant;

use crate::LoadError;
use crate::connection::{Connection, Exchange};
use crate::pacing::Pacer;
use crate::report::{LoadReport, Recording, SharedTally, Tally};

/// What each request is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestSpec {
    /// The concbench protocol: `n\n`, answered by `fib(n)`.
    Fib {
        /// The requested Fibonacci index.
        n: u32,
    },
    /// The concbench protocol's second form: `wait n\n`, answered by `fib(n)` after the
    /// server asked its backend (the `io_wait` workload).
    Wait {
        /// The requested Fibonacci index.
        n: u32,
    },
    /// Any one-line protocol: `line\r\n`, answered by a line starting with `expect_prefix`
    /// (for redis: `PING` and `+PONG`).
    Raw {
        /// The request, without line ending.
        line: String,
        /// What a right reply starts with.
        expect_prefix: String,
    },
}

/// When a run stops: after `duration`, after `requests` replies, or whichever comes
/// first when both are set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StopAfter {
    /// Stop sending once this much time has passed.
    pub duration: Option<Duration>,
    /// Stop sending once this many requests have been sent.
    pub requests: Option<u64>,
    /// The hard limit on the whole run, whatever else is set.
    pub max_duration: Duration,
    /// With a `duration`: requests sent (closed loop) or due (open loop) in the run's
    /// first `settle` are neither counted nor timed, and the rate is taken over the rest
    /// of the duration, so that opening thousands of connections and the first round
    /// trips are not in the steady state's numbers. Every request due after it still
    /// counts, sent or not. Zero: every request counts, the rate is over the whole run.
    pub settle: Duration,
}

/// A load run's configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadConfig {
    /// The server's address.
    pub addr: SocketAddr,
    /// Concurrent connections, each with at most one request outstanding.
    pub connections: usize,
    /// Client threads (each a tokio current-thread runtime); connections are spread over
    /// them.
    pub threads: usize,
    /// When to stop.
    pub stop: StopAfter,
    /// Open loop: requests per second over all connections. `None`: closed loop.
    pub rate: Option<f64>,
    /// What to send and expect.
    pub request: RequestSpec,
    /// A request not answered within this long counts as failed, and its connection is
    /// replaced.
    pub request_timeout: Duration,
    /// Closed loop: connection `i` of `n` opens and sends its first request
    /// `ramp × i / n` after the start, so that many connections' round trips are spread
    /// over time instead of in step (with a slow server, in-step connections send and
    /// receive in bursts, and a short window holds a whole number of their cycles, not
    /// the rate). Set it to about one round trip, inside the settle. Zero: every
    /// connection starts at once. Open loop staggers its schedule anyway.
    pub ramp: Duration,
}

/// Progress of a running load, reported about ten times a second.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Progress {
    /// Replies received so far.
    pub replies: u64,
    /// Time since the start.
    pub elapsed: Duration,
}

/// Runs the load described by `config`, calling `on_progress` about every 100 ms, and
/// returns what was measured.
///
/// Fails only when nothing could be measured: a bad configuration, or no connection to
/// the server at all. Individual failed requests are counted in the report.
pub fn run(
    config: &LoadConfig,
    on_progress: impl FnMut(Progress),
) -> Result<LoadReport, LoadError> {
    record(config, on_progress).map(|recording| recording.report())
}

/// Runs the load like [`run`], and returns the recording itself, so that several runs
/// can be merged before they are summarised.
pub fn record(
    config: &LoadConfig,
    mut on_progress: impl FnMut(Progress),
) -> Result<Recording, LoadError> {
    validate(config)?;
    let exchange = Exchange::new(&config.request)?;
    // Fail early, with a clear error, when the server is not there at all.
    std::net::TcpStream::connect_timeout(&config.addr, config.request_timeout).map_err(
        |source| LoadError::Connect {
            addr: config.addr,
            source,
        },
    )?;

    let replies = Arc::new(AtomicU64::new(0));
    let sent = Arc::new(AtomicU64::new(0));
    let start = std::time::Instant::now();
    let threads = config.threads.min(config.connections);
    let clients: Vec<_> = (0..threads)
        .map(|thread_idx| {
            // Connection i goes to thread i % threads.
            let connection_ids: Vec<usize> =
                (thread_idx..config.connections).step_by(threads).collect();
            let (config, exchange) = (config.clone(), exchange.clone());
            let (replies, sent) = (Arc::clone(&replies), Arc::clone(&sent));
            thread::Builder::new()
                .name(format!("loadgen-{thread_idx}"))
                .spawn(move || {
                    run_client_thread(&config, &exchange, &connection_ids, &replies, &sent)
                })
                .map_err(LoadError::Runtime)
        })
        .collect::<Result<_, _>>()?;

    while !clients.iter().all(thread::JoinHandle::is_finished) {
        thread::sleep(Duration::from_millis(100));
        on_progress(Progress {
            replies: replies.load(Ordering::Relaxed),
            elapsed: start.elapsed(),
        });
    }
    let mut total = Tally::new();
    for client in clients {
        let tally = client
            .join()
            .map_err(|_| LoadError::Runtime(std::io::Error::other("a client thread panicked")))??;
        total.merge(&tally);
    }
    // A settled run's rate is over the window its recorded requests were sent in.
    let elapsed = recorded_window(config).unwrap_or_else(|| start.elapsed());
    Ok(Recording::new(config, total, elapsed))
}

/// The window a run with a settle records: from the end of the settle to
/// the end of sending; `None` when the run records everything.
fn recorded_window(config: &LoadConfig) -> Option<Duration> {
    let duration = config.stop.duration?.min(config.stop.max_duration);
    (!config.stop.settle.is_zero() && config.stop.settle < duration)
        .then(|| duration - config.stop.settle)
}

fn validate(config: &LoadConfig) -> Result<(), LoadError> {
    if config.connections == 0 {
        return Err(LoadError::Config("at least one connection".into()));
    }
    if config.threads == 0 {
        return Err(LoadError::Config("at least one client thread".into()));
    }
    if config.stop.duration.is_none() && config.stop.requests.is_none() {
        return Err(LoadError::Config(
            "give a duration or a request count".into(),
        ));
    }
    if let Some(rate) = config.rate
        && !(rate.is_finite() && rate > 0.0)
    {
        return Err(LoadError::Config(format!(
            "rate must be a positive number, not {rate}"
        )));
    }
    Ok(())
}

/// One client thread: its share of the connections on a current-thread runtime.
fn run_client_thread(
    config: &LoadConfig,
    exchange: &Exchange,
    connection_ids: &[usize],
    replies: &Arc<AtomicU64>,
    sent: &Arc<AtomicU64>,
) -> Result<Tally, LoadError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(LoadError::Runtime)?;
    if config.rate.is_some() {
        crate::pacing::tighten_timer_slack();
    }
    runtime.block_on(async {
        let start = Instant::now();
        let tally = SharedTally::new();
        let mut tasks = tokio::task::JoinSet::new();
        for &connection_idx in connection_ids {
            let plan = Plan::new(config, start, connection_idx);
            let (addr, exchange, tally) = (config.addr, exchange.clone(), tally.clone());
            let (replies, sent) = (Arc::clone(replies), Arc::clone(sent));
            let (request_limit, request_timeout) = (config.stop.requests, config.request_timeout);
            tasks.spawn(async move {
                drive_connection(
                    addr,
                    &exchange,
                    plan,
                    Limits {
                        requests: request_limit,
                        request_timeout,
                    },
                    &tally,
                    Counters {
                        replies: &replies,
                        sent: &sent,
                    },
                )
                .await;
            });
        }
        while let Some(joined) = tasks.join_next().await {
            joined.map_err(|error| LoadError::Runtime(std::io::Error::other(error)))?;
        }
        Ok(tally.take())
    })
}

/// How long requests still in flight when sending stops may take to be answered before
/// they count as unanswered.
const DRAIN_GRACE: Duration = Duration::from_secs(1);

/// How long a connection waits before it reconnects after a failure or a broken reply.
const RECONNECT_BACK_OFF: Duration = Duration::from_millis(10);

/// When one connection sends, and until when.
#[derive(Debug, Clone, Copy)]
struct Plan {
    /// No request is sent after this instant.
    send_until: Instant,
    /// Open loop: the first request's due time and the interval between requests.
    schedule: Option<(Instant, Duration)>,
    /// Requests sent (closed loop) or due (open loop) before this instant are not
    /// recorded: the settle.
    record_from: Instant,
    /// Closed loop: the connection's first request waits until then (the ramp).
    first_send: Instant,
}

impl Plan {
    fn new(config: &LoadConfig, start: Instant, connection_idx: usize) -> Self {
        let limit = config
            .stop
            .duration
            .map_or(config.stop.max_duration, |duration| {
                duration.min(config.stop.max_duration)
            });
        let schedule = config.rate.map(|rate| {
            let interval = Duration::from_secs_f64(config.connections as f64 / rate);
            // Stagger the connections across one interval so the load is smooth.
            let offset = interval.mul_f64(connection_idx as f64 / config.connections as f64);
            (start + offset, interval)
        });
        let settle = recorded_window(config).map_or(Duration::ZERO, |_| config.stop.settle);
        let ramp = match config.rate {
            None => config
                .ramp
                .mul_f64(connection_idx as f64 / config.connections.max(1) as f64),
            Some(_) => Duration::ZERO,
        };
        Self {
            send_until: start + limit,
            schedule,
            record_from: start + settle,
            first_send: start + ramp,
        }
    }

    /// The last instant a request due at `due` may still be sent, the connection having
    /// become free at `free_at`.
    ///
    /// Open loop, a request that fell due inside the window on an idle connection is the
    /// client's to send: when its wake-up comes after the end (timer slack, a busy client
    /// thread), it is sent late, with the lateness recorded, rather than counted against
    /// the server as unsent. One that fell due while the connection still waited on an
    /// earlier reply had its chance only until the end, as does every closed-loop request.
    fn last_send(&self, free_at: Instant, due: Instant) -> Instant {
        match self.schedule {
            Some(_) if free_at <= due && due < self.send_until => self.send_until + DRAIN_GRACE,
            _ => self.send_until,
        }
    }
}

/// Sends requests on one connection until the plan's end or the shared request limit,
/// reconnecting after a failure.
///
/// Every request the connection owed is counted somewhere: answered (by verdict),
/// failed, timed out, unanswered when the run ended, or, open loop, fallen due but never
/// sent because the connection was still waiting on an earlier one. The last three get a
/// latency too, from their due time to when they were given up on, recorded as a lower
/// bound (wrk2's rule: a stall makes the percentiles worse, never invisible).
async fn drive_connection(
    addr: SocketAddr,
    exchange: &Exchange,
    plan: Plan,
    limits: Limits,
    kept: &SharedTally,
    counters: Counters<'_>,
) {
    let Limits {
        requests: request_limit,
        request_timeout,
    } = limits;
    let Counters { replies, sent } = counters;
    let mut connection: Option<Connection> = None;
    let mut request_idx: u32 = 0;
    // Open loop, when the run ended on time: the first request that fell due and was
    // never sent.
    let mut first_unsent: Option<u32> = None;
    // Only an open loop waits to send; a closed loop needs no timer of its own.
    let pacer = match plan.schedule {
        Some(_) => Pacer::precise(),
        None => Pacer::Coarse,
    };
    if plan.first_send > Instant::now() {
        tokio::time::sleep_until(plan.first_send.min(plan.send_until)).await;
    }
    loop {
        // When this connection became free to send: the previous reply, or the start.
        let mut free_at = Instant::now();
        // Open loop: wait until this request is due. Its latency counts from then.
        let due = match plan.schedule {
            Some((first, interval)) => {
                let due = first + interval * request_idx;
                request_idx = request_idx.saturating_add(1);
                if due >= plan.send_until {
                    break;
                }
                pacer.sleep_until(due).await;
                due
            }
            None => Instant::now(),
        };
        let last_send = plan.last_send(free_at, due);
        if Instant::now() >= last_send {
            first_unsent = Some(request_idx.saturating_sub(1));
            break;
        }
        // Settling: what this request does is not recorded (a failure still reconnects).
        let tally = if due < plan.record_from {
            Sink::Settling
        } else {
            Sink::Kept(kept)
        };
        if request_limit.is_some_and(|limit| sent.fetch_add(1, Ordering::Relaxed) >= limit) {
            break;
        }
        let open = match connection.as_mut() {
            Some(open) => open,
            None => match tokio::time::timeout_at(last_send, Connection::open(addr)).await {
                Ok(Ok(opened)) => {
                    // Opening waited on the server's accept: not the client's delay.
                    free_at = Instant::now();
                    connection.insert(opened)
                }
                Ok(Err(_)) => {
                    tally.update(|tally| tally.failed += 1);
                    // Refused or reset: back off briefly rather than spin on connect.
                    tokio::time::sleep(RECONNECT_BACK_OFF).await;
                    continue;
                }
                Err(_) => {
                    first_unsent = Some(request_idx.saturating_sub(1));
                    break;
                }
            },
        };
        if plan.schedule.is_some() {
            // The client's own delay: from when the request could first be sent (its due
            // time, or, when the previous reply or a reconnect ended later, then) to now.
            let lateness = free_at.max(due).elapsed();
            tally.update(|tally| tally.record_send_lateness(lateness));
        }
        // A request sent before `send_until` may finish up to DRAIN_GRACE after it.
        let cutoff = (Instant::now() + request_timeout).min(plan.send_until + DRAIN_GRACE);
        match tokio::time::timeout_at(cutoff, open.exchange(exchange)).await {
            Ok(Ok(verdict)) => {
                let latency = due.elapsed();
                tally.update(|tally| tally.record(verdict, latency));
                replies.fetch_add(1, Ordering::Relaxed);
                if !verdict.keeps_connection() {
                    // A wrong answer may mean a desynchronised stream: start afresh,
                    // after a pause, so a broken server is not hammered with connects.
                    connection = None;
                    tokio::time::sleep(RECONNECT_BACK_OFF).await;
                }
            }
            Ok(Err(_)) => {
                tally.update(|tally| tally.failed += 1);
                connection = None;
                tokio::time::sleep(RECONNECT_BACK_OFF).await;
            }
            Err(_) if Instant::now() >= plan.send_until => {
                // Still waiting when the run ended (a server serving someone else).
                let waited = due.elapsed();
                tally.update(|tally| {
                    tally.unanswered += 1;
                    tally.record_lower_bound(waited);
                });
                first_unsent = Some(request_idx);
                break;
            }
            Err(_) => {
                let waited = due.elapsed();
                tally.update(|tally| {
                    tally.timed_out += 1;
                    tally.record_lower_bound(waited);
                });
                connection = None;
            }
        }
    }
    if let (Some((first, interval)), Some(first_unsent)) = (plan.schedule, first_unsent) {
        let given_up = Instant::now();
        let mut idx = first_unsent;
        loop {
            let due = first + interval * idx;
            if due >= plan.send_until {
                break;
            }
            // Due while settling: not recorded, like the requests that were sent then.
            if due >= plan.record_from {
                kept.update(|tally| {
                    tally.unsent += 1;
                    tally.record_lower_bound(given_up.saturating_duration_since(due));
                });
            }
            let Some(next) = idx.checked_add(1) else {
                break;
            };
            idx = next;
        }
    }
}

/// A connection's bounds: the run's shared request limit and each request's timeout.
#[derive(Debug, Clone, Copy)]
struct Limits {
    requests: Option<u64>,
    request_timeout: Duration,
}

/// The run's progress counters, shared by every thread.
#[derive(Debug, Clone, Copy)]
struct Counters<'a> {
    replies: &'a AtomicU64,
    sent: &'a AtomicU64,
}

/// Where one request's outcome goes: the thread's tally, or nowhere while the run
/// settles.
#[derive(Clone, Copy)]
enum Sink<'a> {
    Kept(&'a SharedTally),
    Settling,
}

impl Sink<'_> {
    fn update(self, change: impl FnOnce(&mut Tally)) {
        if let Self::Kept(tally) = self {
            tally.update(change);
        }
    }
}

/// A fresh latency histogram: 1 µs to 10 minutes at three significant digits.
pub(crate) fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("static bounds are valid")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(rate: Option<f64>) -> (Plan, Instant) {
        let config = LoadConfig {
            addr: "127.0.0.1:1".parse().expect("addr"),
            connections: 1,
            threads: 1,
            stop: StopAfter {
                duration: Some(Duration::from_secs(1)),
                requests: None,
                max_duration: Duration::from_secs(30),
                settle: Duration::ZERO,
            },
            rate,
            request: RequestSpec::Fib { n: 1 },
            request_timeout: Duration::from_millis(500),
            ramp: Duration::ZERO,
        };
        let start = Instant::now();
        (Plan::new(&config, start, 0), start)
    }

    #[test]
    fn an_open_loop_request_due_on_an_idle_connection_may_be_sent_after_the_end() {
        let (plan, start) = plan(Some(100.0));
        let due = plan.send_until - Duration::from_micros(10);
        let free_at = due - Duration::from_millis(5);
        assert_eq!(plan.last_send(free_at, due), plan.send_until + DRAIN_GRACE);
        assert!(plan.send_until > start);
    }

    #[test]
    fn an_open_loop_request_that_fell_due_behind_a_slow_reply_has_until_the_end() {
        let (plan, _) = plan(Some(100.0));
        let due = plan.send_until - Duration::from_millis(500);
        let free_at = due + Duration::from_millis(300);
        assert_eq!(plan.last_send(free_at, due), plan.send_until);
    }

    #[test]
    fn a_closed_loop_request_has_until_the_end() {
        let (plan, _) = plan(None);
        let now = plan.send_until - Duration::from_millis(1);
        assert_eq!(plan.last_send(now, now), plan.send_until);
    }
}
