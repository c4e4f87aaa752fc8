//! The `rate-sweep` scenario: latency against offered load.
//!
//! For each server, in a child process started once: its maximum closed-loop `fib(1)`
//! rate over the scenario's connections (after a settle, so the connections opening are
//! not in it), then open-loop phases at fractions of that maximum over the same
//! connections, in a freshly shuffled (seeded) order per server. Open loop, each
//! request's latency counts from when it fell due, and a request that fell due and was
//! never sent or answered counts with the time it had waited (a lower bound), so a server
//! that falls behind is charged for every request it delayed: below the maximum the
//! percentiles are the server's service time, near and above it they are the queue.
//!
//! The rows give, per server, the curve of p50/p99/p99.9 against the offered rate, and
//! its [`knee`]: the highest offered rate at which the p99 stays under [`KNEE_P99_US`].
//! With a folder for them, every phase's whole histogram is also written as an `.hgrm`
//! file (HdrHistogram's percentile distribution, in milliseconds), which HdrHistogram's
//! plotter draws.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use loadgen::{LoadConfig, LoadReport, RequestSpec, StopAfter};

use crate::ScenarioError;
use crate::beazley::Contender;
use crate::child::{ChildRegistry, ServerChild};
use crate::rows::RateRow;

/// The p99 a server's [`knee`] keeps under: 1 ms.
pub const KNEE_P99_US: u64 = 1_000;

/// The scenario's settings.
#[derive(Debug, Clone, PartialEq)]
pub struct RateSweepConfig {
    /// The servers, in the order of the table.
    pub contenders: Vec<Contender>,
    /// The shares of each server's maximum to offer (0.8 for 80 %), in table order; each
    /// server visits them in a shuffled order.
    pub fractions: Vec<f64>,
    /// Client connections, for the maximum and for every phase.
    pub connections: usize,
    /// How long each open-loop phase is recorded.
    pub duration: Duration,
    /// How long the closed-loop maximum is recorded.
    pub max_window: Duration,
    /// The start of every measurement that is not recorded: each sends for `settle` plus
    /// its window.
    pub settle: Duration,
    /// Client threads of the load generator.
    pub client_threads: usize,
    /// How long a server may take to start.
    pub start_timeout: Duration,
    /// Seeds the order of the fractions.
    pub seed: u64,
    /// Where to write each phase's `.hgrm` file, when anywhere.
    pub hgrm_dir: Option<PathBuf>,
}

/// What happened.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RateSweepOutcome {
    /// A row per (server, fraction), each server's in fraction order.
    pub rows: Vec<RateRow>,
    /// Servers that could not be measured (fully), with the reason.
    pub failures: Vec<(String, String)>,
    /// The `.hgrm` files written.
    pub hgrm_files: Vec<PathBuf>,
}

/// A step of the scenario, for progress reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateStep<'a> {
    /// The server.
    pub name: &'a str,
    /// What runs.
    pub activity: &'a str,
    /// Steps done so far, of `total`.
    pub done: usize,
    /// All steps.
    pub total: usize,
}

/// A request unanswered this long counts as timed out (with a lower-bound latency).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a server has to exit after SIGTERM.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// Runs the scenario; a server that fails is recorded in the outcome, stopped, and the
/// scenario carries on with the next.
pub fn run(
    config: &RateSweepConfig,
    registry: &ChildRegistry,
    mut on_step: impl FnMut(RateStep<'_>),
) -> RateSweepOutcome {
    let per_server = 3 + config.fractions.len();
    let total = config.contenders.len() * per_server;
    let mut outcome = RateSweepOutcome::default();
    let mut rng = measure::stats::run_rng(config.seed);
    for (position, contender) in config.contenders.iter().enumerate() {
        let name = contender.command.name.as_str();
        // Drawn for every server, measured or not, so a server's order does not depend
        // on whether the ones before it started.
        let order = measure::stats::round_order(&mut rng, config.fractions.len());
        let mut done = position * per_server;
        let mut step = |activity: &str| {
            on_step(RateStep {
                name,
                activity,
                done,
                total,
            });
            done += 1;
        };
        sweep_server(config, registry, contender, &order, &mut outcome, &mut step);
    }
    on_step(RateStep {
        name: "",
        activity: "done",
        done: total,
        total,
    });
    outcome
}

/// One server: started, its maximum, a phase per fraction in `order`, stopped.
fn sweep_server(
    config: &RateSweepConfig,
    registry: &ChildRegistry,
    contender: &Contender,
    order: &[usize],
    outcome: &mut RateSweepOutcome,
    step: &mut dyn FnMut(&str),
) {
    let name = contender.command.name.as_str();
    step("starting");
    let server = match ServerChild::start(&contender.command, registry, config.start_timeout) {
        Ok(server) => server,
        Err(error) => {
            outcome.failures.push((name.to_owned(), error.to_string()));
            return;
        }
    };
    step("maximum, closed loop");
    let max_rps = match maximum(config, &server, name) {
        Ok(max_rps) => max_rps,
        Err(failure) => {
            outcome.failures.push((name.to_owned(), failure));
            server.stop(STOP_GRACE);
            return;
        }
    };
    let mut rows = Vec::new();
    for &index in order {
        let fraction = config.fractions[index];
        step(&format!("{} % of the maximum", percent(fraction)));
        match phase(config, &server, contender, max_rps, fraction) {
            Ok((row, hgrm)) => {
                rows.push(row);
                match hgrm {
                    Some(Ok(path)) => outcome.hgrm_files.push(path),
                    Some(Err(failure)) => outcome.failures.push((name.to_owned(), failure)),
                    None => {}
                }
            }
            Err(error) => {
                outcome.failures.push((name.to_owned(), error.to_string()));
                break;
            }
        }
    }
    rows.sort_by(|a, b| a.fraction.total_cmp(&b.fraction));
    outcome.rows.extend(rows);
    step("stopping");
    if !server.stop(STOP_GRACE) {
        outcome.failures.push((
            name.to_owned(),
            format!("did not stop within {STOP_GRACE:?} of SIGTERM and was killed"),
        ));
    }
}

/// The server's closed-loop `fib(1)` rate over the scenario's connections, after the
/// settle; every reply must be right.
fn maximum(config: &RateSweepConfig, server: &ServerChild, name: &str) -> Result<f64, String> {
    let load = load_config(config, server.addr(), config.max_window, None);
    let report = loadgen::run(&load, |_| {}).map_err(|source| {
        ScenarioError::Load {
            name: name.to_owned(),
            source,
        }
        .to_string()
    })?;
    if report.right == 0 || report.rps.partial_cmp(&0.0) != Some(std::cmp::Ordering::Greater) {
        return Err("no reply in the closed-loop maximum's measurement".to_owned());
    }
    if !report.all_right() {
        return Err(format!(
            "the closed-loop maximum's measurement was not all right: {} errors, {} wrong, {} failed, \
             {} timed out, {} unanswered",
            report.errors, report.wrong, report.failed, report.timed_out, report.unanswered
        ));
    }
    Ok(report.rps)
}

/// One open-loop phase at `fraction × max_rps`, with its `.hgrm` file when asked for
/// (the path written, or why it could not be).
fn phase(
    config: &RateSweepConfig,
    server: &ServerChild,
    contender: &Contender,
    max_rps: f64,
    fraction: f64,
) -> Result<(RateRow, Option<Result<PathBuf, String>>), ScenarioError> {
    let name = contender.command.name.as_str();
    let offered_rps = fraction * max_rps;
    let load = load_config(config, server.addr(), config.duration, Some(offered_rps));
    let recording = loadgen::record(&load, |_| {}).map_err(|source| ScenarioError::Load {
        name: name.to_owned(),
        source,
    })?;
    let hgrm = config.hgrm_dir.as_deref().map(|dir| {
        let path = dir.join(hgrm_file_name(name, fraction));
        write_hgrm(&path, &recording)
            .map(|()| path.clone())
            .map_err(|error| format!("cannot write {}: {error}", path.display()))
    });
    let report = recording.report();
    Ok((
        row(contender, max_rps, fraction, offered_rps, &report),
        hgrm,
    ))
}

fn write_hgrm(path: &Path, recording: &loadgen::Recording) -> std::io::Result<()> {
    let mut file = BufWriter::new(File::create(path)?);
    loadgen::write_percentile_distribution(
        recording.histogram(),
        &mut file,
        loadgen::hgrm::MICROS_TO_MILLIS,
    )?;
    file.flush()
}

fn row(
    contender: &Contender,
    max_rps: f64,
    fraction: f64,
    offered_rps: f64,
    report: &LoadReport,
) -> RateRow {
    RateRow {
        style: contender.command.name.clone(),
        language: contender.language.clone(),
        connections: report.connections,
        max_rps,
        fraction,
        offered_rps,
        achieved_rps: report.rps,
        p50_us: report.latency.p50_us,
        p90_us: report.latency.p90_us,
        p99_us: report.latency.p99_us,
        p999_us: report.latency.p999_us,
        max_us: report.latency.max_us,
        due: report.due,
        answered: report.right,
        errors: report.errors + report.wrong,
        failed: report.failed + report.timed_out + report.unanswered + report.unsent,
        latency_lower_bounds: report.latency_lower_bounds,
        send_lateness_p99_us: report.send_lateness.map(|lateness| lateness.p99_us),
        send_lateness_max_us: report.send_lateness.map(|lateness| lateness.max_us),
    }
}

fn load_config(
    config: &RateSweepConfig,
    addr: std::net::SocketAddr,
    window: Duration,
    rate: Option<f64>,
) -> LoadConfig {
    LoadConfig {
        ramp: Duration::ZERO,
        addr,
        connections: config.connections,
        threads: config.client_threads.max(1),
        stop: StopAfter {
            duration: Some(config.settle + window),
            requests: None,
            max_duration: config.settle + window + REQUEST_TIMEOUT,
            settle: config.settle,
        },
        rate,
        request: RequestSpec::Fib { n: 1 },
        request_timeout: REQUEST_TIMEOUT,
    }
}

/// `80`, `110`, `2.5`: a fraction as the percent the command line gave.
pub fn percent(fraction: f64) -> String {
    let percent = fraction * 100.0;
    if (percent - percent.round()).abs() < 1e-9 {
        format!("{}", percent.round())
    } else {
        format!("{percent}")
    }
}

/// The `.hgrm` file of `server`'s phase at `fraction`: `<server>-<percent>.hgrm`.
pub fn hgrm_file_name(server: &str, fraction: f64) -> String {
    format!("{server}-{}.hgrm", percent(fraction))
}

/// Whether a row's p99 is under [`KNEE_P99_US`] with nothing given up on: every request
/// that fell due was answered, right, so the p99 is not a lower bound.
fn keeps_up(row: &RateRow) -> bool {
    row.p99_us.is_some_and(|p99| p99 < KNEE_P99_US)
        && row.latency_lower_bounds == 0
        && row.errors == 0
        && row.failed == 0
}

/// One server's knee: of its rows (any order), the highest offered rate up to which the
/// p99 *stays* under [`KNEE_P99_US`] — that row and every row at a lower offered rate
/// keep up (a p99 under 1 ms with every request answered right). `None` when even the
/// lowest rate does not. A rate above a miss does not count: a p99 back under 1 ms
/// above a rate that missed it is noise, not headroom.
pub fn knee<'a>(rows: impl IntoIterator<Item = &'a RateRow>) -> Option<&'a RateRow> {
    let mut rows: Vec<&RateRow> = rows.into_iter().collect();
    rows.sort_by(|a, b| a.offered_rps.total_cmp(&b.offered_rps));
    rows.into_iter().take_while(|row| keeps_up(row)).last()
}

/// The servers of `rows`, in the order they first appear.
pub fn servers(rows: &[RateRow]) -> Vec<&str> {
    let mut servers: Vec<&str> = Vec::new();
    for row in rows {
        if !servers.contains(&row.style.as_str()) {
            servers.push(&row.style);
        }
    }
    servers
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(fraction: f64, p99_us: Option<u64>, lower_bounds: u64) -> RateRow {
        RateRow {
            style: "tokio".into(),
            language: "rust".into(),
            connections: 32,
            max_rps: 10_000.0,
            fraction,
            offered_rps: fraction * 10_000.0,
            achieved_rps: fraction * 10_000.0,
            p50_us: p99_us.map(|p99| p99 / 4),
            p90_us: p99_us,
            p99_us,
            p999_us: p99_us,
            max_us: p99_us,
            due: 1_000,
            answered: 1_000 - lower_bounds,
            errors: 0,
            failed: lower_bounds,
            latency_lower_bounds: lower_bounds,
            send_lateness_p99_us: Some(40),
            send_lateness_max_us: Some(200),
        }
    }

    #[test]
    fn the_knee_is_the_highest_rate_up_to_which_the_p99_stays_under_1_ms() {
        let rows = [
            row(1.1, Some(250_000), 40),
            row(0.5, Some(300), 0),
            row(0.1, Some(120), 0),
            row(0.95, Some(4_000), 0),
            row(0.8, Some(999), 0),
            row(1.0, Some(20_000), 0),
        ];
        let knee = knee(&rows).expect("a knee");
        assert_eq!(knee.fraction, 0.8);
        assert_eq!(knee.offered_rps, 8_000.0);
    }

    #[test]
    fn a_rate_above_a_miss_is_not_the_knee() {
        // 80 % misses; 95 % is back under 1 ms by chance: the knee stays at 50 %.
        let rows = [
            row(0.1, Some(120), 0),
            row(0.5, Some(300), 0),
            row(0.8, Some(1_000), 0),
            row(0.95, Some(800), 0),
        ];
        assert_eq!(knee(&rows).map(|row| row.fraction), Some(0.5));
    }

    #[test]
    fn no_knee_when_the_lowest_rate_misses_or_is_a_lower_bound() {
        assert_eq!(
            knee(&[row(0.1, Some(1_500), 0), row(0.5, Some(200), 0)]),
            None
        );
        // Under 1 ms, but some requests were never answered: not kept up.
        assert_eq!(knee(&[row(0.1, Some(500), 3)]), None);
        assert_eq!(knee(&[row(0.1, None, 0)]), None);
        assert_eq!(knee(&[]), None);
    }

    #[test]
    fn files_are_named_by_server_and_percent() {
        assert_eq!(hgrm_file_name("tokio", 0.5), "tokio-50.hgrm");
        assert_eq!(
            hgrm_file_name("python-threads", 1.1),
            "python-threads-110.hgrm"
        );
        assert_eq!(hgrm_file_name("evloop", 0.025), "evloop-2.5.hgrm");
    }
}
