//! What a load run measured.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::connection::Verdict;
use crate::run::{LoadConfig, new_histogram};

/// One client thread's tally, shared by its connections' tasks: a latency histogram is
/// hundreds of kilobytes, too much to allocate (and zero) once per connection — ten
/// thousand connections with a histogram each held 1.8 GB and spent their first seconds
/// in page faults, which delayed the replies they were timing. The thread's runtime runs
/// one task at a time, so the lock is never contended, and it is never held across an
/// await.
#[derive(Clone)]
pub(crate) struct SharedTally(Arc<Mutex<Tally>>);

impl SharedTally {
    /// An empty tally.
    pub(crate) fn new() -> Self {
        Self(Arc::new(Mutex::new(Tally::new())))
    }

    /// Applies `change` to the tally.
    pub(crate) fn update(&self, change: impl FnOnce(&mut Tally)) {
        change(&mut self.0.lock().unwrap_or_else(PoisonError::into_inner));
    }

    /// What has been gathered, leaving the tally empty.
    pub(crate) fn take(&self) -> Tally {
        std::mem::replace(
            &mut *self.0.lock().unwrap_or_else(PoisonError::into_inner),
            Tally::new(),
        )
    }
}

/// Counts and latencies gathered by one connection or merged over many.
#[derive(Debug, Clone)]
pub(crate) struct Tally {
    pub(crate) latencies: Histogram<u64>,
    pub(crate) right: u64,
    pub(crate) server_errors: u64,
    /// Every reply that was not right: wrong answers, unasked bytes, overlong lines.
    pub(crate) wrong: u64,
    /// Of `wrong`: bytes the client had not asked for.
    pub(crate) unasked: u64,
    /// Of `wrong`: reply lines over the bound.
    pub(crate) overlong: u64,
    /// Connections refused or reset, replies cut short.
    pub(crate) failed: u64,
    /// Requests not answered within the request timeout.
    pub(crate) timed_out: u64,
    /// Requests still unanswered when the run ended.
    pub(crate) unanswered: u64,
    /// Open loop: requests that fell due but were never sent before the run ended.
    pub(crate) unsent: u64,
    /// Latencies in the histogram that are lower bounds: timed out, unanswered, unsent.
    pub(crate) lower_bounds: u64,
    /// Open loop: how long after it could first be sent (its due time, or the previous
    /// reply when that came later) each request went out, µs: the client's own delay,
    /// which is inside every latency it times from the due time.
    pub(crate) send_lateness: Histogram<u64>,
}

impl Tally {
    pub(crate) fn new() -> Self {
        Self {
            latencies: new_histogram(),
            right: 0,
            server_errors: 0,
            wrong: 0,
            unasked: 0,
            overlong: 0,
            failed: 0,
            timed_out: 0,
            unanswered: 0,
            unsent: 0,
            lower_bounds: 0,
            send_lateness: new_histogram(),
        }
    }

    /// An open-loop request due `lateness` before it was sent.
    pub(crate) fn record_send_lateness(&mut self, lateness: Duration) {
        let micros = u64::try_from(lateness.as_micros()).unwrap_or(u64::MAX);
        self.send_lateness.saturating_record(micros);
    }

    pub(crate) fn record(&mut self, verdict: Verdict, latency: Duration) {
        self.record_latency(latency);
        match verdict {
            Verdict::Right => self.right += 1,
            Verdict::ServerError => self.server_errors += 1,
            Verdict::Wrong => self.wrong += 1,
            Verdict::Unasked => {
                self.wrong += 1;
                self.unasked += 1;
            }
            Verdict::Overlong => {
                self.wrong += 1;
                self.overlong += 1;
            }
        }
    }

    /// A request given up on after `latency` at least: its true latency is longer.
    pub(crate) fn record_lower_bound(&mut self, latency: Duration) {
        self.record_latency(latency);
        self.lower_bounds += 1;
    }

    fn record_latency(&mut self, latency: Duration) {
        let micros = u64::try_from(latency.as_micros())
            .unwrap_or(u64::MAX)
            .max(1);
        self.latencies.saturating_record(micros);
    }

    pub(crate) fn merge(&mut self, other: &Tally) {
        // Both histograms have the same bounds, so adding cannot fail.
        let _ = self.latencies.add(&other.latencies);
        let _ = self.send_lateness.add(&other.send_lateness);
        self.right += other.right;
        self.server_errors += other.server_errors;
        self.wrong += other.wrong;
        self.unasked += other.unasked;
        self.overlong += other.overlong;
        self.failed += other.failed;
        self.timed_out += other.timed_out;
        self.unanswered += other.unanswered;
        self.unsent += other.unsent;
        self.lower_bounds += other.lower_bounds;
    }
}

/// Latency percentiles in microseconds, from an HdrHistogram (three significant digits).
/// Every field is `None` (JSON `null`) when no latency was recorded at all — no reply and
/// no request given up on — never a 0 µs latency for a server that did not answer.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct LatencySummary {
    /// Median.
    pub p50_us: Option<u64>,
    /// 90th percentile.
    pub p90_us: Option<u64>,
    /// 99th percentile.
    pub p99_us: Option<u64>,
    /// 99.9th percentile.
    pub p999_us: Option<u64>,
    /// Largest latency seen.
    pub max_us: Option<u64>,
    /// Mean latency.
    pub mean_us: Option<f64>,
}

/// What a load run measured. Serialised as the JSON of `concbench load --json`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LoadReport {
    /// The server's address.
    pub addr: String,
    /// Concurrent connections.
    pub connections: usize,
    /// Open-loop target rate, if any.
    pub target_rate: Option<f64>,
    /// Replies received (right, error and wrong).
    pub requests: u64,
    /// Replies that were the expected answer.
    pub right: u64,
    /// Replies that were `error: …`.
    pub errors: u64,
    /// Replies that were neither the answer nor an error: a broken server. Includes
    /// `unasked` and `overlong`.
    pub wrong: u64,
    /// Of `wrong`: bytes the client had not asked for (sent before the request, or left
    /// after the reply): never counted as an answer.
    pub unasked: u64,
    /// Of `wrong`: reply lines longer than the bound (256 bytes in fib mode, 64 KiB in
    /// raw mode); the connection is dropped and nothing more is read from it.
    pub overlong: u64,
    /// Requests that failed on the connection (refused, reset, cut short).
    pub failed: u64,
    /// Requests not answered within the request timeout.
    pub timed_out: u64,
    /// Requests still unanswered when the run ended.
    pub unanswered: u64,
    /// Open loop: requests that fell due but were never sent (the connection was still
    /// waiting on an earlier reply when the run ended).
    pub unsent: u64,
    /// Every request the client owed: replies, failed, timed out, unanswered and
    /// unsent. Open loop: every request that fell due.
    pub due: u64,
    /// Of the latencies behind the percentiles, how many are lower bounds (timed out,
    /// unanswered, unsent: counted from their due time to when the client gave up).
    /// When it is not 0, the percentiles are at least what they say.
    pub latency_lower_bounds: u64,
    /// Wall time of the run, in seconds.
    pub elapsed_s: f64,
    /// Replies per second.
    pub rps: f64,
    /// Latency of every reply, and of every request given up on (as a lower bound); open
    /// loop: from the time the request was due.
    #[serde(flatten)]
    pub latency: LatencySummary,
    /// Open loop: how late the client itself sent its requests, over every request it
    /// sent; `None` in a closed loop (which never waits to send). Counted from when a
    /// request could first be sent: its due time, or the previous reply on its
    /// connection when that came after it (a wait that is the server's, and in the
    /// latency anyway). This delay is inside every latency above, so a latency near it
    /// measures the client, not the server.
    pub send_lateness: Option<SendLateness>,
}

/// How late an open-loop client sent its requests, µs from when each could first be
/// sent.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct SendLateness {
    /// Median.
    pub p50_us: u64,
    /// 99th percentile.
    pub p99_us: u64,
    /// Largest.
    pub max_us: u64,
}

/// What a load run recorded before it is summarised: its counts and the whole latency
/// histogram. Several recordings of one configuration (the slices of an interleaved
/// scenario, say) [`merge`](Self::merge) into one whose [`report`](Self::report) has the
/// percentiles of all their requests together and the rate over all their time —
/// never an average of percentiles.
#[derive(Debug, Clone)]
pub struct Recording {
    config: LoadConfig,
    tally: Tally,
    elapsed: Duration,
}

impl Recording {
    pub(crate) fn new(config: &LoadConfig, tally: Tally, elapsed: Duration) -> Self {
        Self {
            config: config.clone(),
            tally,
            elapsed,
        }
    }

    /// Adds `other`'s requests, latencies and time to this recording.
    pub fn merge(&mut self, other: &Recording) {
        self.tally.merge(&other.tally);
        self.elapsed += other.elapsed;
    }

    /// Wall time recorded, summed over merged recordings.
    pub fn elapsed(&self) -> Duration {
        self.elapsed
    }

    /// Every latency recorded, µs: each reply's, and each request given up on (as a
    /// lower bound), merged over merged recordings; for an `.hgrm` file
    /// ([`crate::write_percentile_distribution`]).
    pub fn histogram(&self) -> &Histogram<u64> {
        &self.tally.latencies
    }

    /// Replies received (right, error and wrong).
    pub fn requests(&self) -> u64 {
        self.tally.right + self.tally.server_errors + self.tally.wrong
    }

    /// Replies per second over the recorded time.
    pub fn rps(&self) -> f64 {
        self.requests() as f64 / self.elapsed.as_secs_f64().max(f64::EPSILON)
    }

    /// The summary, as [`crate::run`] returns it.
    pub fn report(&self) -> LoadReport {
        LoadReport::new(&self.config, &self.tally, self.elapsed)
    }
}

impl LoadReport {
    pub(crate) fn new(config: &LoadConfig, tally: &Tally, elapsed: Duration) -> Self {
        let requests = tally.right + tally.server_errors + tally.wrong;
        let latencies = &tally.latencies;
        let recorded = latencies.len();
        let any = recorded > 0;
        let quantile = |q: f64| any.then(|| latencies.value_at_quantile(q));
        Self {
            addr: config.addr.to_string(),
            connections: config.connections,
            target_rate: config.rate,
            requests,
            right: tally.right,
            errors: tally.server_errors,
            wrong: tally.wrong,
            unasked: tally.unasked,
            overlong: tally.overlong,
            failed: tally.failed,
            timed_out: tally.timed_out,
            unanswered: tally.unanswered,
            unsent: tally.unsent,
            due: requests + tally.failed + tally.timed_out + tally.unanswered + tally.unsent,
            latency_lower_bounds: tally.lower_bounds,
            elapsed_s: elapsed.as_secs_f64(),
            rps: requests as f64 / elapsed.as_secs_f64().max(f64::EPSILON),
            latency: LatencySummary {
                p50_us: quantile(0.50),
                p90_us: quantile(0.90),
                p99_us: quantile(0.99),
                p999_us: quantile(0.999),
                max_us: any.then(|| latencies.max()),
                mean_us: any.then(|| latencies.mean()),
            },
            send_lateness: (config.rate.is_some() && !tally.send_lateness.is_empty()).then(|| {
                let lateness = &tally.send_lateness;
                SendLateness {
                    p50_us: lateness.value_at_quantile(0.50),
                    p99_us: lateness.value_at_quantile(0.99),
                    max_us: lateness.max(),
                }
            }),
        }
    }

    /// Whether every request got the expected answer (no error, wrong, failed, timed-out,
    /// unanswered or unsent request).
    pub fn all_right(&self) -> bool {
        self.right == self.requests
            && self.failed == 0
            && self.timed_out == 0
            && self.unanswered == 0
            && self.unsent == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{RequestSpec, StopAfter};

    #[test]
    fn a_run_that_recorded_no_latency_has_none_not_zero() {
        let config = LoadConfig {
            ramp: Duration::ZERO,
            addr: "127.0.0.1:9".parse().expect("an address"),
            connections: 1,
            threads: 1,
            stop: StopAfter {
                duration: None,
                requests: Some(1),
                max_duration: Duration::from_secs(1),
                settle: Duration::ZERO,
            },
            rate: None,
            request: RequestSpec::Fib { n: 1 },
            request_timeout: Duration::from_secs(1),
        };
        let mut tally = Tally::new();
        tally.failed = 3;
        let report = LoadReport::new(&config, &tally, Duration::from_secs(1));
        assert_eq!(report.latency.p50_us, None);
        assert_eq!(report.latency.p99_us, None);
        assert_eq!(report.latency.max_us, None);
        assert_eq!(report.latency.mean_us, None);

        tally.record_lower_bound(Duration::from_millis(40));
        let report = LoadReport::new(&config, &tally, Duration::from_secs(1));
        let p99 = report.latency.p99_us.expect("a lower bound is a latency");
        assert!((39_000..=41_000).contains(&p99), "{p99}");
    }
}
