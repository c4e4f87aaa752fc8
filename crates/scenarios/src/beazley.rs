//! The Beazley scenario: the seed's two clients against every server.
//!
//! Every server runs in a child process of its own; all are started first and stay up,
//! idle, while the others are measured:
//!
//! 1. **throughput** (the seed's `perf2`): `fib(1)` requests, closed loop, at each
//!    connection count — requests per second and latency. Measured in interleaved
//!    rounds: each round gives every server a slice of the phase, in a freshly shuffled
//!    order, so servers are compared over the same minutes of a drifting host;
//! 2. **hog** (the seed's `perf1`, inverted): for each hog count of the sweep, that many
//!    connections loop a long `fib(n)` while the probe connections send `fib(1)` at a
//!    fixed rate, open loop — does one slow request stall the others? The sweep runs
//!    below, at and above the server's worker count, since a fixed pool with as many
//!    hogs as workers is saturated by construction. The probe's latency counts from each
//!    request's due time, and a probe that fell due but was never sent or answered still
//!    counts (with a lower-bound latency), so a stalled server is charged for every probe
//!    it delayed.
//!
//! A server that speaks only `PING` (redis-server, the loopback ceiling) runs the
//! throughput phase with `PING` requests and skips the hog phase.
//!
//! The throughput phase runs in every [`Arrangement`]: `shared` (client and servers on
//! whatever CPUs the kernel gives them) and `isolated` (every server pinned to CPUs of
//! its own, the client to the rest), each with a set of servers started under its
//! pinning, all of them interleaved in the same shuffled rounds. The hog phases run in
//! the shared arrangement only. Every server command can
//! be started under a launcher prefix (`ip netns exec NS`, `ssh host`), so that client
//! and server sit on two hosts or in two network namespaces.

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread;
use std::time::Duration;

use loadgen::{LoadConfig, LoadReport, RequestSpec, StopAfter};

use crate::ScenarioError;
use crate::child::{ChildRegistry, CpuTime, ServerChild, ServerCommand, run_bounded};
use crate::cpus::{self, CpuList};
use crate::rows::{BeazleyRow, Phase};

/// A server to measure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Contender {
    /// How to start it.
    pub command: ServerCommand,
    /// What it is written in, for the rows: `rust`, `python`, `c`.
    pub language: String,
    /// What it answers.
    pub protocol: Protocol,
    /// For a [`Protocol::Ping`] server: `redis-benchmark`, run after the load generator
    /// at each connection count, so that the rows show whether the load generator keeps
    /// up with redis's own client.
    pub redis_benchmark: Option<PathBuf>,
    /// How it is pinned to a CPU set.
    pub pin_with: PinWith,
    /// The worker threads or processes its command gives it, when it has a worker count
    /// (redis-server has none); recorded in its rows.
    pub workers: Option<usize>,
    /// A point of the core-count sweep at another worker count than the default: it runs
    /// in the shared arrangement's throughput rounds only (no hog phases, no isolated
    /// arrangement), and its rows say so.
    pub sweep_point: bool,
}

impl Contender {
    /// Whether it runs in `arrangement`: every contender in a shared one, only those at
    /// the default worker count in an isolated one.
    fn runs_in(&self, arrangement: &Arrangement) -> bool {
        !self.sweep_point || arrangement.kind == ArrangementKind::Shared
    }
}

/// How a contender is pinned to the server's CPU set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PinWith {
    /// `--cpus LIST` appended to its arguments (`concbench serve`, which pins itself
    /// before it builds any thread).
    CpusOption,
    /// Started under `taskset -c LIST` (the Python peers, redis-server).
    Taskset,
}

/// How client and server share the machine during a throughput phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArrangementKind {
    /// Neither pinned (unless sets are given): they compete for every CPU.
    Shared,
    /// Server and client each on CPUs of their own.
    Isolated,
}

impl ArrangementKind {
    /// The name the rows carry: `shared`, `isolated`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Shared => "shared",
            Self::Isolated => "isolated",
        }
    }
}

/// One arrangement of client and servers on the machine's CPUs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Arrangement {
    /// Which.
    pub kind: ArrangementKind,
    /// The CPUs every server is pinned to; `None`: not pinned.
    pub server_cpus: Option<CpuList>,
    /// The CPUs this process (and so the load generator's threads) is pinned to.
    pub client_cpus: Option<CpuList>,
}

impl Arrangement {
    /// Client and servers on every usable CPU, unpinned.
    pub fn shared() -> Self {
        Self {
            kind: ArrangementKind::Shared,
            server_cpus: None,
            client_cpus: None,
        }
    }

    /// The server on `server`, the client on `client`.
    pub fn isolated(server: CpuList, client: CpuList) -> Self {
        Self {
            kind: ArrangementKind::Isolated,
            server_cpus: Some(server),
            client_cpus: Some(client),
        }
    }
}

/// The requests a contender understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// The concbench wire protocol: both phases.
    Fib,
    /// redis's `PING`: the throughput phase only, as a ceiling for the loopback path.
    Ping,
}

/// The scenario's settings.
#[derive(Debug, Clone, PartialEq)]
pub struct BeazleyConfig {
    /// The servers, in the order of the table.
    pub contenders: Vec<Contender>,
    /// How long each measured phase sends.
    pub duration: Duration,
    /// Closed-loop warm-up before the first phase, not recorded.
    pub warm_up: Duration,
    /// Connection counts of the throughput phase.
    pub connections: Vec<usize>,
    /// Hog connections in the hog phase: one phase per count, in this order.
    pub hog_counts: Vec<usize>,
    /// Probe connections in the hog phase; the probe rate is spread over them.
    pub probe_connections: usize,
    /// The `n` the hogs loop on.
    pub hog_n: u32,
    /// The probe's rate in the hog phase, requests per second.
    pub probe_rate: f64,
    /// How long a server may take to start.
    pub start_timeout: Duration,
    /// Rounds of the throughput phase: each contender gets `duration / rounds` per
    /// connection count per round, in a freshly shuffled order each round.
    pub rounds: usize,
    /// Seeds the rounds' order; recorded in the outcome so that a run can be repeated.
    pub seed: u64,
    /// The arrangements the throughput phase runs in, in this order (empty: shared);
    /// the hog phases run in the first shared one only.
    pub arrangements: Vec<Arrangement>,
    /// A prefix for every server command (`ip netns exec NS`, `ssh host`); empty: none.
    pub server_launcher: Vec<OsString>,
}

impl BeazleyConfig {
    /// The arrangements to run: those configured, or shared alone.
    fn arrangements(&self) -> Vec<Arrangement> {
        if self.arrangements.is_empty() {
            vec![Arrangement::shared()]
        } else {
            self.arrangements.clone()
        }
    }

    /// Index of the arrangement that runs the hog phases: the first shared one.
    fn hog_arrangement(&self) -> Option<usize> {
        self.arrangements()
            .iter()
            .position(|arrangement| arrangement.kind == ArrangementKind::Shared)
    }

    /// The launcher as the rows record it, words joined by spaces.
    fn launcher_text(&self) -> Option<String> {
        (!self.server_launcher.is_empty()).then(|| {
            self.server_launcher
                .iter()
                .map(|word| word.to_string_lossy())
                .collect::<Vec<_>>()
                .join(" ")
        })
    }
}

/// The command that starts `contender` in `arrangement`: under the launcher, pinned to
/// the arrangement's server CPUs.
pub fn server_command(
    contender: &Contender,
    arrangement: &Arrangement,
    launcher: &[OsString],
) -> ServerCommand {
    let mut command = contender.command.clone();
    let mut prefix: Vec<OsString> = launcher.to_vec();
    if let Some(cpus) = &arrangement.server_cpus {
        let list = OsString::from(cpus.to_string());
        match contender.pin_with {
            PinWith::CpusOption => command.args.extend([OsString::from("--cpus"), list]),
            PinWith::Taskset => prefix.extend([OsString::from("taskset"), "-c".into(), list]),
        }
    }
    if !prefix.is_empty() {
        let program = prefix.remove(0);
        let mut args = prefix;
        args.push(command.program.into_os_string());
        args.append(&mut command.args);
        command.program = PathBuf::from(program);
        command.args = args;
    }
    command
}

/// What happened to each contender.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct BeazleyOutcome {
    /// Every measurement made.
    pub rows: Vec<BeazleyRow>,
    /// Contenders that could not be measured (fully), with the reason.
    pub failures: Vec<(String, String)>,
    /// The seed of the rounds' order.
    pub seed: u64,
}

/// A step of the scenario, for progress reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Step<'a> {
    /// The contender.
    pub name: &'a str,
    /// What is running.
    pub activity: &'a str,
    /// Steps done so far, of `total`.
    pub done: usize,
    /// All steps of the scenario.
    pub total: usize,
}

/// How long the hogs run alone before the probe starts, so that they are at full load.
const HOG_SETTLE: Duration = Duration::from_millis(300);

/// Requests unanswered this long count as timed out.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a server has to exit after SIGTERM.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// Runs the scenario; a contender that fails is recorded in the outcome, stopped, and
/// the scenario carries on with the others.
///
/// Every contender is started first, once per arrangement (pinned as the arrangement
/// says), and stays up, idle, while the others are measured. The throughput phase then
/// runs in [`BeazleyConfig::rounds`] rounds: each round visits every (contender,
/// arrangement) once, in a freshly shuffled order (seeded by [`BeazleyConfig::seed`]),
/// with the client pinned to that arrangement's CPUs, for a slice of `duration / rounds`
/// at each connection count, so a host that drifts over minutes moves every contender
/// and arrangement alike instead of whichever happened to run during a slow minute. A contender's rate and percentiles
/// are those of all its slices together. The hog phases, which load one server for
/// seconds, follow per contender.
pub fn run(
    config: &BeazleyConfig,
    registry: &ChildRegistry,
    mut on_step: impl FnMut(Step<'_>),
) -> BeazleyOutcome {
    let total = total_steps(config);
    let mut done = 0;
    let mut step = |name: &str, activity: &str| {
        on_step(Step {
            name,
            activity,
            done,
            total,
        });
        done += 1;
    };
    let mut outcome = BeazleyOutcome {
        seed: config.seed,
        ..BeazleyOutcome::default()
    };
    let arrangements = config.arrangements();
    let hog_arrangement = config.hog_arrangement();
    let label = |contender: &Contender, arrangement: &Arrangement| {
        let name = &contender.command.name;
        let name = match (contender.sweep_point, contender.workers) {
            (true, Some(workers)) => format!("{name} ({workers} workers)"),
            _ => name.clone(),
        };
        match arrangement.kind {
            ArrangementKind::Shared => name,
            ArrangementKind::Isolated => format!("{name} (isolated)"),
        }
    };
    // The client's own CPUs before any arrangement pinned it: a slice of a shared
    // arrangement without client CPUs runs on these.
    let unpinned = cpus::usable().ok();
    let pin_client = |arrangement: &Arrangement| -> Result<(), String> {
        match (&arrangement.client_cpus, &unpinned) {
            (Some(client), _) => cpus::pin_to(client)
                .map_err(|error| format!("cannot pin the client to CPUs {client}: {error}")),
            (None, Some(unpinned)) => cpus::pin_to(unpinned)
                .map_err(|error| format!("cannot unpin the client (CPUs {unpinned}): {error}")),
            (None, None) => Ok(()),
        }
    };

    // Every server of every arrangement is started up front, so that the rounds can
    // interleave arrangements as well as servers: shared and isolated rates of one
    // server are then seconds apart, not minutes.
    let mut alive: Vec<Measured<'_>> = Vec::new();
    for (index, arrangement) in arrangements.iter().enumerate() {
        for contender in config
            .contenders
            .iter()
            .filter(|contender| contender.runs_in(arrangement))
        {
            let name = label(contender, arrangement);
            step(&name, "starting");
            let command = server_command(contender, arrangement, &config.server_launcher);
            let started = pin_client(arrangement)
                .map_err(|message| ScenarioError::ServerStart {
                    name: name.clone(),
                    message,
                })
                .and_then(|()| ServerChild::start(&command, registry, config.start_timeout))
                .and_then(|server| {
                    // Warm up: connections, threads, caches, before any slice is timed.
                    let busiest = config.connections.iter().copied().max().unwrap_or(1);
                    let warm_up = throughput_config(&server, contender, busiest, config.warm_up);
                    loadgen::record(&warm_up, |_| {}).map_err(|source| ScenarioError::Load {
                        name: name.clone(),
                        source,
                    })?;
                    Ok(server)
                });
            match started {
                Ok(server) => alive.push(Measured::new(contender, index, server, config)),
                Err(error) => outcome.failures.push((name, error.to_string())),
            }
        }
    }

    let mut rng = measure::stats::run_rng(config.seed);
    let rounds = config.rounds.max(1);
    let slice = config.duration / u32::try_from(rounds).unwrap_or(u32::MAX);
    for round in 0..rounds {
        for index in measure::stats::round_order(&mut rng, alive.len()) {
            let measured = &mut alive[index];
            let arrangement = &arrangements[measured.arrangement];
            let name = label(measured.contender, arrangement);
            step(
                &name,
                &format!("throughput, round {} of {rounds}", round + 1),
            );
            if measured.failure.is_some() {
                continue;
            }
            let sliced = pin_client(arrangement)
                .and_then(|()| measured.slice(slice).map_err(|error| error.to_string()));
            if let Err(error) = sliced {
                measured.failure = Some(error);
            }
        }
    }

    let placements: Vec<Placement> = arrangements
        .iter()
        .enumerate()
        .map(|(index, arrangement)| Placement {
            arrangement: arrangement.kind.name(),
            server_cpus: arrangement.server_cpus.as_ref().map(ToString::to_string),
            client_cpus: arrangement.client_cpus.as_ref().map(ToString::to_string),
            server_launcher: config.launcher_text(),
            with_hogs: hog_arrangement == Some(index),
        })
        .collect();
    for measured in alive {
        let arrangement = &arrangements[measured.arrangement];
        let name = label(measured.contender, arrangement);
        let placement = &placements[measured.arrangement];
        // `redis-benchmark` and the hog phases run on the arrangement's client CPUs too.
        let result = match pin_client(arrangement) {
            Ok(()) => measured.finish(config, placement, registry, &mut outcome.rows, |activity| {
                step(&name, activity)
            }),
            Err(error) => {
                let _ = measured.server.stop(STOP_GRACE);
                Err(error)
            }
        };
        if let Err(error) = result {
            outcome.failures.push((name, error));
        }
    }
    if let Some(unpinned) = &unpinned {
        let _ = cpus::pin_to(unpinned);
    }
    on_step(Step {
        name: "",
        activity: "done",
        done: total,
        total,
    });
    outcome
}

/// What every row of an arrangement records about where it ran.
struct Placement {
    arrangement: &'static str,
    server_cpus: Option<String>,
    client_cpus: Option<String>,
    server_launcher: Option<String>,
    with_hogs: bool,
}

impl Placement {
    fn stamp(&self, contender: &Contender, row: &mut BeazleyRow) {
        row.workers = contender.workers;
        row.sweep_point = contender.sweep_point;
        row.arrangement = Some(self.arrangement.to_owned());
        row.server_cpus.clone_from(&self.server_cpus);
        row.client_cpus.clone_from(&self.client_cpus);
        row.server_launcher.clone_from(&self.server_launcher);
    }
}

/// The progress steps of the scenario, per arrangement: each contender's start, its
/// visit in each round, its `redis-benchmark` runs and (in the hog arrangement) its hog
/// phases, and a stop.
fn total_steps(config: &BeazleyConfig) -> usize {
    let arrangements = config.arrangements();
    let with_hogs = usize::from(config.hog_arrangement().is_some());
    config
        .contenders
        .iter()
        .map(|contender| {
            let hog = if contender.protocol == Protocol::Fib && !contender.sweep_point {
                config.hog_counts.len()
            } else {
                0
            };
            let redis = config.connections.len() * usize::from(contender.redis_benchmark.is_some());
            let runs_in = arrangements
                .iter()
                .filter(|arrangement| contender.runs_in(arrangement))
                .count();
            runs_in * (1 + config.rounds.max(1) + redis + 1) + with_hogs * hog
        })
        .sum()
}

/// One running contender and what its throughput slices have added up to so far.
struct Measured<'a> {
    contender: &'a Contender,
    /// Index of its arrangement in [`BeazleyConfig::arrangements`].
    arrangement: usize,
    server: ServerChild,
    /// Per connection count, in the order of [`BeazleyConfig::connections`].
    counts: Vec<CountTally>,
    /// The first error of a slice: the contender is measured no further.
    failure: Option<String>,
}

/// What the slices at one connection count added up to.
struct CountTally {
    connections: usize,
    recording: Option<loadgen::Recording>,
    round_rps: Vec<f64>,
    server_cpu: Option<CpuTime>,
    client_cpu: Duration,
}

impl<'a> Measured<'a> {
    fn new(
        contender: &'a Contender,
        arrangement: usize,
        server: ServerChild,
        config: &BeazleyConfig,
    ) -> Self {
        let counts = config
            .connections
            .iter()
            .map(|&connections| CountTally {
                connections,
                recording: None,
                round_rps: Vec::new(),
                server_cpu: Some(CpuTime::default()),
                client_cpu: Duration::ZERO,
            })
            .collect();
        Self {
            contender,
            arrangement,
            server,
            counts,
            failure: None,
        }
    }

    /// One slice of `slice` at every connection count.
    fn slice(&mut self, slice: Duration) -> Result<(), ScenarioError> {
        let name = self.contender.command.name.as_str();
        for count in &mut self.counts {
            let load = throughput_config(&self.server, self.contender, count.connections, slice);
            let cpu_before = self.server.cpu_time();
            let client_before = client_cpu();
            let recording =
                loadgen::record(&load, |_| {}).map_err(|source| ScenarioError::Load {
                    name: name.to_owned(),
                    source,
                })?;
            count.client_cpu += client_cpu().saturating_sub(client_before);
            count.server_cpu = match (
                count.server_cpu,
                cpu_spent(cpu_before, self.server.cpu_time()),
            ) {
                (Some(sum), Some(spent)) => Some(CpuTime {
                    user: sum.user + spent.user,
                    system: sum.system + spent.system,
                }),
                _ => None,
            };
            count.round_rps.push(recording.rps());
            match &mut count.recording {
                Some(sum) => sum.merge(&recording),
                None => count.recording = Some(recording),
            }
        }
        Ok(())
    }

    /// Writes the throughput rows, runs `redis-benchmark` and the hog phases, and stops
    /// the server; an error says what failed.
    fn finish(
        self,
        config: &BeazleyConfig,
        placement: &Placement,
        registry: &ChildRegistry,
        rows: &mut Vec<BeazleyRow>,
        mut step: impl FnMut(&str),
    ) -> Result<(), String> {
        let result = self.rows_and_hogs(config, placement, registry, rows, &mut step);
        step("stopping");
        let stopped = self.server.stop(STOP_GRACE);
        result?;
        if !stopped {
            return Err(ScenarioError::ServerStart {
                name: self.contender.command.name.clone(),
                message: "did not exit cleanly within 5 s of SIGTERM".into(),
            }
            .to_string());
        }
        Ok(())
    }

    fn rows_and_hogs(
        &self,
        config: &BeazleyConfig,
        placement: &Placement,
        registry: &ChildRegistry,
        rows: &mut Vec<BeazleyRow>,
        step: &mut impl FnMut(&str),
    ) -> Result<(), String> {
        if let Some(failure) = &self.failure {
            return Err(failure.clone());
        }
        let contender = self.contender;
        let (name, language) = (contender.command.name.as_str(), contender.language.as_str());
        for count in &self.counts {
            let Some(recording) = &count.recording else {
                continue;
            };
            let report = recording.report();
            let mut row = BeazleyRow::from_report(name, language, Phase::Throughput, &report);
            row.client_threads = Some(client_threads(count.connections));
            row.client_cpu_us = per_reply(count.client_cpu, report.requests);
            if let Some(spent) = count.server_cpu {
                row.server_cpu_us = per_reply(spent.total(), report.requests);
                row.server_user_us = per_reply(spent.user, report.requests);
            }
            row.round_rps = count.round_rps.clone();
            placement.stamp(contender, &mut row);
            if let Some(program) = &contender.redis_benchmark {
                step(&format!(
                    "redis-benchmark, {} connections",
                    count.connections
                ));
                // As many requests as our client answered: about as long a run.
                let requests = report.requests.max(MIN_REDIS_BENCHMARK_REQUESTS);
                let rps = redis_benchmark_rps(
                    program,
                    registry,
                    self.server.addr(),
                    count.connections,
                    (requests, report.rps),
                )
                .map_err(|message| {
                    ScenarioError::ReferenceClient {
                        name: name.to_owned(),
                        message,
                    }
                    .to_string()
                })?;
                row.redis_benchmark_rps = Some(rps);
            }
            rows.push(row);
        }
        if contender.protocol == Protocol::Fib && placement.with_hogs && !contender.sweep_point {
            for &hog_count in &config.hog_counts {
                step(&format!(
                    "{hog_count} hogs of fib({}) + probe",
                    config.hog_n
                ));
                let (probe, hogs) = hog_phase(config, hog_count, self.server.addr(), name)
                    .map_err(|error| error.to_string())?;
                let mut row = BeazleyRow::from_report(name, language, Phase::Hog, &probe);
                row.hog_n = Some(config.hog_n);
                row.hogs = Some(hog_count);
                row.hog_requests = Some(hogs.requests);
                placement.stamp(contender, &mut row);
                rows.push(row);
            }
        }
        Ok(())
    }
}

/// The client threads of a throughput slice: the criterion bench's, so both measure one
/// thing.
fn client_threads(connections: usize) -> usize {
    loadgen::THROUGHPUT_CLIENT_THREADS.min(connections)
}

/// A closed-loop throughput load of `contender`'s request over `connections`.
fn throughput_config(
    server: &ServerChild,
    contender: &Contender,
    connections: usize,
    duration: Duration,
) -> LoadConfig {
    let request = match contender.protocol {
        Protocol::Fib => RequestSpec::Fib { n: 1 },
        Protocol::Ping => RequestSpec::Raw {
            line: "PING".into(),
            expect_prefix: "+PONG".into(),
        },
    };
    let mut config = load_config(server.addr(), connections, request, duration, None);
    config.threads = client_threads(connections);
    config
}

/// The CPU time (user + system) of this process, which during a phase is the client's:
/// the server under test is a child process, measured apart.
fn client_cpu() -> Duration {
    use nix::sys::resource::{UsageWho, getrusage};
    getrusage(UsageWho::RUSAGE_SELF).map_or(Duration::ZERO, |usage| {
        let micros = |time: nix::sys::time::TimeVal| {
            Duration::from_secs(time.tv_sec().max(0) as u64)
                + Duration::from_micros(time.tv_usec().max(0) as u64)
        };
        micros(usage.user_time()) + micros(usage.system_time())
    })
}

/// The fewest requests a `redis-benchmark` run sends, so that its rate means something.
const MIN_REDIS_BENCHMARK_REQUESTS: u64 = 10_000;

/// `redis-benchmark`'s `PING_INLINE` rate against `addr`: `connections` connections,
/// one request outstanding on each (no pipelining) and one client thread, as the load
/// generator runs, for `requests` requests, which the load generator answered at
/// `expected_rps`. Registered with `registry` while it runs; killed after
/// [`REQUEST_TIMEOUT`] plus three times as long as those requests took the load
/// generator, so that a stuck server cannot hang the scenario. (A limit from the count
/// alone — a second per 10 000 — cut off a whole run at one connection, where a round
/// trip between two pinned CPUs holds the rate near 10 000 per second.)
fn redis_benchmark_rps(
    program: &Path,
    registry: &ChildRegistry,
    addr: SocketAddr,
    connections: usize,
    (requests, expected_rps): (u64, f64),
) -> Result<f64, String> {
    let limit = REQUEST_TIMEOUT + redis_benchmark_allowance(requests, expected_rps);
    let output = run_bounded(
        Command::new(program)
            .args(["-h", &addr.ip().to_string(), "-p", &addr.port().to_string()])
            .args(["-c", &connections.to_string(), "-n", &requests.to_string()])
            .args([
                "-P",
                "1",
                "--threads",
                "1",
                "-t",
                "ping_inline",
                "-q",
                "--csv",
            ]),
        registry,
        limit,
    )?;
    let stdout = &output.stdout;
    parse_redis_benchmark_csv(stdout).ok_or_else(|| {
        format!(
            "no PING_INLINE rate in redis-benchmark's output ({}): {:?}, stderr {:?}",
            output.status,
            stdout.trim(),
            output.stderr.trim()
        )
    })
}

/// How long `redis-benchmark` may take for `requests` beyond the request timeout: three
/// times what they took the load generator at `expected_rps` (at least 1 000 per second
/// is assumed, so a load generator that measured nearly nothing cannot stretch it
/// without bound), and at least a second.
fn redis_benchmark_allowance(requests: u64, expected_rps: f64) -> Duration {
    let rate = if expected_rps.is_finite() {
        expected_rps.max(1_000.0)
    } else {
        1_000.0
    };
    Duration::from_secs_f64(3.0 * requests as f64 / rate).max(Duration::from_secs(1))
}

/// The rate of the `PING_INLINE` line of `redis-benchmark --csv`: `"PING_INLINE","rps",…`
/// (redis 7 adds latency columns after the rate and a header line before it).
fn parse_redis_benchmark_csv(csv: &str) -> Option<f64> {
    csv.lines().find_map(|line| {
        let mut fields = line.split(',').map(|field| field.trim().trim_matches('"'));
        (fields.next()? == "PING_INLINE")
            .then(|| fields.next()?.parse::<f64>().ok())
            .flatten()
            .filter(|rps| rps.is_finite() && *rps > 0.0)
    })
}

/// The CPU time a server spent between two readings.
fn cpu_spent(before: Option<CpuTime>, after: Option<CpuTime>) -> Option<CpuTime> {
    let (before, after) = (before?, after?);
    Some(CpuTime {
        user: after.user.checked_sub(before.user)?,
        system: after.system.checked_sub(before.system)?,
    })
}

/// µs of `spent` per reply.
fn per_reply(spent: Duration, replies: u64) -> Option<f64> {
    (replies > 0).then(|| spent.as_secs_f64() * 1e6 / replies as f64)
}

/// Runs `hog_count` hogs in the background and the probe in the foreground; returns the
/// probe's report and the hogs'.
fn hog_phase(
    config: &BeazleyConfig,
    hog_count: usize,
    addr: SocketAddr,
    name: &str,
) -> Result<(LoadReport, LoadReport), ScenarioError> {
    let load_error = |source| ScenarioError::Load {
        name: name.to_owned(),
        source,
    };
    let hog_config = load_config(
        addr,
        hog_count,
        RequestSpec::Fib { n: config.hog_n },
        HOG_SETTLE + config.duration,
        None,
    );
    let probe_config = load_config(
        addr,
        config.probe_connections,
        RequestSpec::Fib { n: 1 },
        config.duration,
        Some(config.probe_rate),
    );
    thread::scope(|scope| {
        let hogs = scope.spawn(|| loadgen::run(&hog_config, |_| {}));
        thread::sleep(HOG_SETTLE);
        let probe = loadgen::run(&probe_config, |_| {}).map_err(load_error);
        let hogs = hogs
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            .map_err(load_error);
        Ok((probe?, hogs?))
    })
}

fn load_config(
    addr: SocketAddr,
    connections: usize,
    request: RequestSpec,
    duration: Duration,
    rate: Option<f64>,
) -> LoadConfig {
    LoadConfig {
        ramp: Duration::ZERO,
        addr,
        connections,
        threads: 1,
        stop: StopAfter {
            duration: Some(duration),
            requests: None,
            max_duration: duration + REQUEST_TIMEOUT,
            settle: Duration::ZERO,
        },
        rate,
        request,
        request_timeout: REQUEST_TIMEOUT,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_ping_inline_rate_of_both_csv_layouts() {
        let redis_7 = "\"test\",\"rps\",\"avg_latency_ms\",\"min_latency_ms\"\n\
                       \"PING_INLINE\",\"166666.67\",\"0.103\",\"0.032\"\n";
        assert_eq!(parse_redis_benchmark_csv(redis_7), Some(166_666.67));
        let redis_5 = "\"PING_INLINE\",\"15931.18\"\n";
        assert_eq!(parse_redis_benchmark_csv(redis_5), Some(15_931.18));
    }

    #[test]
    fn redis_benchmark_gets_three_times_what_the_load_generator_took() {
        // 60 000 requests at one connection's 10 000 per second: 6 s, so 18 s allowed.
        assert_eq!(
            redis_benchmark_allowance(60_000, 10_000.0),
            Duration::from_secs(18)
        );
        // A load generator that measured nothing does not make the limit endless.
        assert_eq!(
            redis_benchmark_allowance(10_000, 0.0),
            Duration::from_secs(30)
        );
        assert_eq!(
            redis_benchmark_allowance(10_000, f64::NAN),
            Duration::from_secs(30)
        );
        assert_eq!(
            redis_benchmark_allowance(100, 100_000.0),
            Duration::from_secs(1)
        );
        assert_eq!(parse_redis_benchmark_csv("\"PING_MBULK\",\"1.0\"\n"), None);
        assert_eq!(parse_redis_benchmark_csv("\"PING_INLINE\",\"nan\"\n"), None);
        assert_eq!(parse_redis_benchmark_csv(""), None);
    }

    /// A stand-in for `redis-benchmark`: a shell script that prints `output` and exits
    /// with `status`, recording its arguments beside itself.
    fn fake_redis_benchmark(test: &str, output: &str, status: i32) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "concbench-fake-redis-benchmark-{}-{test}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let script = dir.join("redis-benchmark");
        let args = dir.join("args");
        std::fs::write(
            &script,
            format!(
                "#!/bin/sh\necho \"$@\" > '{}'\nprintf '%s\\n' '{output}'\necho oops >&2\nexit {status}\n",
                args.display()
            ),
        )
        .expect("script");
        let chmod = Command::new("chmod").arg("+x").arg(&script).status();
        assert!(chmod.is_ok_and(|status| status.success()));
        script
    }

    #[test]
    fn runs_redis_benchmark_like_the_load_generator_and_reads_its_rate() {
        let script = fake_redis_benchmark("ok", "\"PING_INLINE\",\"1234.50\"", 0);
        let addr: SocketAddr = "127.0.0.1:6390".parse().expect("addr");
        let registry = ChildRegistry::default();
        let rps = redis_benchmark_rps(&script, &registry, addr, 32, (20_000, 50_000.0));
        assert_eq!(rps, Ok(1234.5));
        let args = std::fs::read_to_string(script.with_file_name("args")).expect("args");
        assert_eq!(
            args.trim(),
            "-h 127.0.0.1 -p 6390 -c 32 -n 20000 -P 1 --threads 1 -t ping_inline -q --csv"
        );
        let broken = fake_redis_benchmark("broken", "", 1);
        let error =
            redis_benchmark_rps(&broken, &registry, addr, 1, (10, 10_000.0)).expect_err("no rate");
        assert!(
            error.contains("no PING_INLINE rate") && error.contains("oops"),
            "{error}"
        );
        for script in [script, broken] {
            let _ = std::fs::remove_dir_all(script.parent().expect("dir"));
        }
    }
}
