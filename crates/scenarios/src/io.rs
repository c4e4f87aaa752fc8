//! The `io` scenario: the I/O-bound half of the seed. Every request (`wait 1`) is one
//! the server answers by asking a slow backend, so the server spends almost no CPU on
//! it, and how many it can have in flight is set by its concurrency model alone.
//!
//! With C closed-loop connections and a backend that answers after `delay`, Little's
//! law gives the ideal rate C / delay: a server that keeps every request in flight at
//! once reaches it; a fixed pool of `workers` threads that block on the backend stalls
//! at `workers / delay`; an iterative server at `1 / delay`; a thread per connection
//! reaches it by paying a thread per waiting request, which the rows show as threads
//! and memory.
//!
//! The backend is a child process of its own (`concbench backend --delay D`), shared by
//! every server. Before any server is measured it is driven directly at each
//! concurrency, and with [`BACKEND_CHECK_IN_FLIGHT`] requests in flight (see
//! [`check_backend_in_flight`]): its `backend` rows show it is not what limits any
//! server. Every server is started up front; at each
//! concurrency the servers are visited in a freshly shuffled (seeded) order.

use std::ffi::OsString;
use std::path::PathBuf;
use std::thread;
use std::time::Duration;

use loadgen::{LoadConfig, LoadReport, RequestSpec, StopAfter};

use crate::ScenarioError;
use crate::beazley::Contender;
use crate::child::{ChildRegistry, ReadyBy, ServerChild, ServerCommand};
use crate::procfs::{self, TreeMemory};
use crate::rows::IoRow;

/// Requests the backend holds in flight in its own check: C10K's worth.
pub const BACKEND_CHECK_IN_FLIGHT: usize = 10_000;

/// The scenario's settings.
#[derive(Debug, Clone, PartialEq)]
pub struct IoConfig {
    /// The `concbench` binary, which runs the backend.
    pub concbench: PathBuf,
    /// The servers, in the order of the table. Their commands get `--backend ADDR`.
    pub contenders: Vec<Contender>,
    /// Concurrencies C: closed-loop connections, each with one request outstanding.
    pub concurrencies: Vec<usize>,
    /// The backend's delay.
    pub delay: Duration,
    /// How long each (server, C) phase sends.
    pub duration: Duration,
    /// Closed-loop warm-up of each server, not recorded.
    pub warm_up: Duration,
    /// The start of each phase that is not recorded (connections opening, the first
    /// round trips): the phase sends for `settle + duration` and its rate and
    /// percentiles are those of the requests sent in the last `duration`.
    pub settle: Duration,
    /// Client threads of the load generator.
    pub client_threads: usize,
    /// Drive the backend alone at [`BACKEND_CHECK_IN_FLIGHT`] in flight too.
    pub check_backend_in_flight: bool,
    /// How long a server may take to start.
    pub start_timeout: Duration,
    /// Seeds the order in which servers are visited at each concurrency.
    pub seed: u64,
}

/// What happened.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct IoOutcome {
    /// Every measurement, the backend's own first.
    pub rows: Vec<IoRow>,
    /// Servers that could not be measured (fully), with the reason.
    pub failures: Vec<(String, String)>,
}

/// A step of the scenario, for progress reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IoStep<'a> {
    /// The server.
    pub name: &'a str,
    /// What runs.
    pub activity: &'a str,
    /// Steps done so far, of `total`.
    pub done: usize,
    /// All steps.
    pub total: usize,
}

/// A request unanswered this long counts as timed out: longer than any phase, so a
/// request still waiting at a phase's end counts as unanswered, with a lower bound.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// The settle of the backend's check at [`BACKEND_CHECK_IN_FLIGHT`].
const IN_FLIGHT_CHECK_SETTLE: Duration = Duration::from_secs(3);

/// The backend's delay in its check at [`BACKEND_CHECK_IN_FLIGHT`].
const IN_FLIGHT_CHECK_DELAY: Duration = Duration::from_secs(1);

/// How long a server has to exit after SIGTERM.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// Runs the scenario. Fails only when the backend cannot start; a server that fails is
/// recorded and the scenario carries on.
pub fn run(
    config: &IoConfig,
    registry: &ChildRegistry,
    mut on_step: impl FnMut(IoStep<'_>),
) -> Result<IoOutcome, ScenarioError> {
    let backend_checks = config.concurrencies.len() + usize::from(config.check_backend_in_flight);
    let total = backend_checks
        + config.contenders.len() * (1 + config.concurrencies.len())
        + config.contenders.len();
    let mut done = 0;
    let mut step = |name: &str, activity: &str| {
        on_step(IoStep {
            name,
            activity,
            done,
            total,
        });
        done += 1;
    };
    let mut outcome = IoOutcome::default();
    let backend = start_backend(config, config.delay, registry)?;

    // The backend alone, first: the ceiling every server's row is read against.
    for &concurrency in &config.concurrencies {
        step("backend", &format!("alone, C = {concurrency}"));
        let row = measure_backend(config, &backend, concurrency, config.delay)?;
        outcome.rows.push(row);
    }
    if config.check_backend_in_flight {
        step(
            "backend",
            &format!("alone, {BACKEND_CHECK_IN_FLIGHT} in flight"),
        );
        let row = check_backend_in_flight(config, registry)?;
        outcome.rows.push(row);
    }

    let backend_arg: OsString = backend.addr().to_string().into();
    let mut servers: Vec<(&Contender, Option<ServerChild>)> = Vec::new();
    for contender in &config.contenders {
        let name = contender.command.name.as_str();
        step(name, "starting");
        let mut command = contender.command.clone();
        command
            .args
            .extend([OsString::from("--backend"), backend_arg.clone()]);
        let started =
            ServerChild::start(&command, registry, config.start_timeout).and_then(|server| {
                // Warm up: connections, threads, the backend connections, caches.
                let mut warm_up =
                    load_config(config, server.addr(), 4, config.warm_up, config.delay);
                warm_up.stop.settle = Duration::ZERO;
                loadgen::run(&warm_up, |_| {}).map_err(|source| ScenarioError::Load {
                    name: name.to_owned(),
                    source,
                })?;
                Ok(server)
            });
        match started {
            Ok(server) => servers.push((contender, Some(server))),
            Err(error) => outcome.failures.push((name.to_owned(), error.to_string())),
        }
    }

    let mut rng = measure::stats::run_rng(config.seed);
    let mut rows: Vec<Vec<IoRow>> = vec![Vec::new(); servers.len()];
    for &concurrency in &config.concurrencies {
        for index in measure::stats::round_order(&mut rng, servers.len()) {
            let (contender, server) = &mut servers[index];
            let name = contender.command.name.as_str();
            step(name, &format!("C = {concurrency}"));
            let Some(live) = server.as_ref() else {
                continue;
            };
            match measure_server(config, live, contender, concurrency) {
                Ok(row) => rows[index].push(row),
                Err(error) => {
                    outcome.failures.push((name.to_owned(), error.to_string()));
                    // A server that failed once is not measured again, and stops now.
                    if let Some(failed) = server.take() {
                        failed.stop(STOP_GRACE);
                    }
                }
            }
        }
    }
    for ((contender, server), server_rows) in servers.into_iter().zip(rows) {
        let name = contender.command.name.as_str();
        step(name, "stopping");
        outcome.rows.extend(server_rows);
        if let Some(server) = server
            && !server.stop(STOP_GRACE)
        {
            outcome.failures.push((
                name.to_owned(),
                format!("did not stop within {STOP_GRACE:?} of SIGTERM and was killed"),
            ));
        }
    }
    backend.stop(STOP_GRACE);
    on_step(IoStep {
        name: "",
        activity: "done",
        done: total,
        total,
    });
    Ok(outcome)
}

fn start_backend(
    config: &IoConfig,
    delay: Duration,
    registry: &ChildRegistry,
) -> Result<ServerChild, ScenarioError> {
    let delay_ms = format!("{}ms", delay.as_secs_f64() * 1e3);
    let command = ServerCommand {
        name: "backend".into(),
        program: config.concbench.clone(),
        args: ["backend", "--addr", "127.0.0.1:0", "--delay", &delay_ms]
            .iter()
            .map(OsString::from)
            .collect(),
        ready: ReadyBy::ListeningLine,
    };
    ServerChild::start(&command, registry, config.start_timeout)
}

/// The backend alone with [`BACKEND_CHECK_IN_FLIGHT`] requests in flight: that many
/// closed-loop connections against a backend whose delay is [`IN_FLIGHT_CHECK_DELAY`],
/// so the ideal is [`BACKEND_CHECK_IN_FLIGHT`] replies a second — a rate a small
/// machine's client can drive over that many connections, where the delay of the
/// scenario's own would ask for more than it can (the rows at each C check the rate).
/// Ten thousand connects at once overflow any accept queue, and the kernel retries the
/// dropped ones after a second or three: the check settles past that.
fn check_backend_in_flight(
    config: &IoConfig,
    registry: &ChildRegistry,
) -> Result<IoRow, ScenarioError> {
    let backend = start_backend(config, IN_FLIGHT_CHECK_DELAY, registry)?;
    let check = IoConfig {
        settle: config.settle.max(IN_FLIGHT_CHECK_SETTLE),
        ..config.clone()
    };
    let row = measure_backend(
        &check,
        &backend,
        BACKEND_CHECK_IN_FLIGHT,
        IN_FLIGHT_CHECK_DELAY,
    );
    backend.stop(STOP_GRACE);
    row
}

fn measure_backend(
    config: &IoConfig,
    backend: &ServerChild,
    concurrency: usize,
    delay: Duration,
) -> Result<IoRow, ScenarioError> {
    let mut load = load_config(config, backend.addr(), concurrency, config.duration, delay);
    // The backend speaks the first form only: `1\n` is what a server sends it.
    load.request = RequestSpec::Fib { n: 1 };
    let (report, memory, cpu_us) = measured_phase(&load, backend, "backend")?;
    Ok(row(
        "backend",
        "rust",
        concurrency,
        delay,
        &report,
        memory,
        cpu_us,
    ))
}

fn measure_server(
    config: &IoConfig,
    server: &ServerChild,
    contender: &Contender,
    concurrency: usize,
) -> Result<IoRow, ScenarioError> {
    let load = load_config(
        config,
        server.addr(),
        concurrency,
        config.duration,
        config.delay,
    );
    let name = contender.command.name.as_str();
    let (report, memory, cpu_us) = measured_phase(&load, server, name)?;
    Ok(row(
        name,
        &contender.language,
        concurrency,
        config.delay,
        &report,
        memory,
        cpu_us,
    ))
}

/// Runs `load` against `server`, reading the server's memory and threads at 80 % of the
/// phase (while every connection is open) and its CPU over the whole phase.
fn measured_phase(
    load: &LoadConfig,
    server: &ServerChild,
    name: &str,
) -> Result<(LoadReport, Option<TreeMemory>, Option<f64>), ScenarioError> {
    let settle = load.stop.settle;
    let duration = load
        .stop
        .duration
        .unwrap_or_default()
        .saturating_sub(settle);
    let (report, memory, cpu) = thread::scope(|scope| {
        let sampler = scope.spawn(|| {
            // CPU over the recorded window; memory and threads at 80 % of it, while
            // every connection is open.
            thread::sleep(settle);
            let before = server.cpu_time();
            thread::sleep(duration.mul_f64(0.8));
            let memory = procfs::tree_memory(server.pid());
            thread::sleep(duration.mul_f64(0.2));
            (memory, before, server.cpu_time())
        });
        let report = loadgen::run(load, |_| {});
        let (memory, before, after) = sampler.join().unwrap_or((None, None, None));
        (report, memory, (before, after))
    });
    let report = report.map_err(|source| ScenarioError::Load {
        name: name.to_owned(),
        source,
    })?;
    let cpu_us = match cpu {
        (Some(before), Some(after)) if report.requests > 0 => after
            .total()
            .checked_sub(before.total())
            .map(|spent| spent.as_secs_f64() * 1e6 / report.requests as f64),
        _ => None,
    };
    Ok((report, memory, cpu_us))
}

fn row(
    style: &str,
    language: &str,
    concurrency: usize,
    delay: Duration,
    report: &LoadReport,
    memory: Option<TreeMemory>,
    server_cpu_us: Option<f64>,
) -> IoRow {
    let ideal_rps = ideal_rate(concurrency, delay);
    IoRow {
        style: style.to_owned(),
        language: language.to_owned(),
        concurrency,
        delay_ms: delay.as_secs_f64() * 1e3,
        ideal_rps,
        rps: report.rps,
        efficiency: if ideal_rps > 0.0 {
            report.rps / ideal_rps
        } else {
            0.0
        },
        p50_us: report.latency.p50_us,
        p99_us: report.latency.p99_us,
        max_us: report.latency.max_us,
        requests: report.right,
        errors: report.errors + report.wrong,
        failed: report.failed + report.timed_out + report.unanswered + report.unsent,
        latency_lower_bounds: report.latency_lower_bounds,
        server_threads: memory.map(|memory| memory.threads),
        rss_bytes: memory.map(|memory| memory.pss_bytes),
        server_cpu_us,
        not_attempted: None,
    }
}

/// Little's law: `concurrency` requests always in flight, each taking `delay`.
pub fn ideal_rate(concurrency: usize, delay: Duration) -> f64 {
    let delay = delay.as_secs_f64();
    if delay > 0.0 {
        concurrency as f64 / delay
    } else {
        f64::INFINITY
    }
}

/// Closed-loop `wait 1` over `connections`, the connections' first requests spread over
/// one backend `delay` (within the settle): in-step connections would send and receive in
/// bursts of all C at once, and a window holds a whole number of their round trips (with
/// a 1 s delay and a 3 s window, two or three: 67 % to 100 % of the ideal by phase alone).
fn load_config(
    config: &IoConfig,
    addr: std::net::SocketAddr,
    connections: usize,
    duration: Duration,
    delay: Duration,
) -> LoadConfig {
    LoadConfig {
        ramp: delay.min(config.settle),
        addr,
        connections,
        threads: config.client_threads.max(1),
        stop: StopAfter {
            duration: Some(config.settle + duration),
            requests: None,
            max_duration: config.settle + duration + REQUEST_TIMEOUT,
            settle: config.settle,
        },
        rate: None,
        request: RequestSpec::Wait { n: 1 },
        request_timeout: REQUEST_TIMEOUT,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ideal_is_littles_law() {
        assert_eq!(ideal_rate(1000, Duration::from_millis(50)), 20_000.0);
        assert_eq!(ideal_rate(10, Duration::from_millis(50)), 200.0);
        assert!(ideal_rate(10, Duration::ZERO).is_infinite());
    }
}
