//! `concbench scenario`: the measurements criterion cannot express, as tables and JSON.

use std::ffi::OsString;
use std::io::{self, Write};
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use scenarios::beazley::{
    self, Arrangement, ArrangementKind, BeazleyConfig, BeazleyOutcome, Contender, PinWith, Protocol,
};
use scenarios::cpus::CpuList;
use scenarios::tasks::{Subject, TasksConfig};
use scenarios::{BeazleyRow, ChildRegistry, FREE_PORT, Phase, ReadyBy, ServerCommand, TaskRow};
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;
use workloads::protocol::DEFAULT_MAX_N;
use workloads::{ServerModel, Support, Workload};

use super::table::Table;

/// Options of `concbench scenario`.
#[derive(Debug, clap::Args)]
pub(crate) struct ScenarioArgs {
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Debug, clap::Subcommand)]
enum Scenario {
    /// The seed's experiment: fib(1) throughput, then fib(1) latency while hogs loop a long fib(n).
    Beazley(Box<BeazleyArgs>),
    /// What N sleeping units cost in each style, N up to a million, each N in a fresh process.
    Tasks(TasksArgs),
    /// C10K: N connections held open per server, most idle, a few active: memory per
    /// connection, threads, and the active ones' rate and tail as N grows.
    Connections(super::scenario_connections::ConnectionsArgs),
    /// The I/O-bound workload: requests the server answers by asking a slow backend, at
    /// rising concurrency, against the Little's-law ideal.
    Io(super::scenario_io::IoArgs),
    /// Latency against offered load: open loop at fractions of each server's own
    /// closed-loop maximum, p50/p99/p99.9 per rate, and the knee (p99 under 1 ms).
    RateSweep(super::scenario_rate::RateSweepArgs),
}

/// Options of `concbench scenario tasks`.
#[derive(Debug, clap::Args)]
struct TasksArgs {
    /// Styles to measure, comma-separated [default: every style that runs `sleepers`].
    #[arg(long, value_delimiter = ',', value_parser = super::style_name_parser())]
    styles: Vec<String>,
    /// Unit counts, comma-separated; each runs in a fresh process.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "100,1000,10000,100000,1000000"
    )]
    sizes: Vec<usize>,
    /// How long each unit sleeps.
    #[arg(long, default_value = "10ms", value_parser = super::load::parse_duration)]
    sleep: Duration,
    /// Worker threads of every style [default: $CONCBENCH_WORKERS, else the available cores].
    #[arg(long)]
    workers: Option<NonZeroUsize>,
    /// A size still running after this long is killed and counted as failed.
    #[arg(long, default_value = "120s", value_parser = super::load::parse_duration)]
    probe_timeout: Duration,
    /// Also write the rows as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
}

/// Options of `concbench scenario beazley`.
#[derive(Debug, clap::Args)]
struct BeazleyArgs {
    /// Servers to measure, comma-separated [default: every style with a server].
    #[arg(long, value_delimiter = ',', value_parser = super::style_name_parser())]
    styles: Vec<String>,
    /// How long each phase sends, e.g. `3s`.
    #[arg(long, default_value = "3s", value_parser = super::load::parse_duration)]
    duration: Duration,
    /// Connection counts of the throughput phase, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1,32")]
    connections: Vec<usize>,
    /// Rounds of the throughput phase: every server gets `duration / rounds` at each
    /// connection count per round, servers in a freshly shuffled order each round, so
    /// that they are compared over the same minutes of a drifting host.
    #[arg(long, default_value_t = 6)]
    rounds: usize,
    /// The seed of the rounds' order [default: from the clock; printed].
    #[arg(long)]
    seed: Option<u64>,
    /// Hog counts of the hog phase, comma-separated: one phase per count [default:
    /// workers − 1, workers, 2 × workers; a fixed pool with as many hogs as workers is
    /// saturated by construction, so the sweep shows below, at and above it].
    #[arg(long, value_delimiter = ',')]
    hogs: Vec<usize>,
    /// Probe connections in the hog phase; the probe rate is spread over them.
    #[arg(long, default_value_t = 4)]
    probe_connections: usize,
    /// The n the hogs loop on (fib(35) takes tens of milliseconds in Rust).
    #[arg(long, default_value_t = 35)]
    hog_n: u32,
    /// The probe's rate during the hog phase, requests per second (open loop).
    #[arg(long, default_value_t = 200.0)]
    probe_rate: f64,
    /// Worker threads or processes of every server: one count, or a comma-separated
    /// core-count sweep (`1,2,4`) whose other counts run the shared throughput rounds
    /// only, interleaved with the rest [default: the sweep 1, 2, … up to the cores
    /// ($CONCBENCH_WORKERS, else the available cores), then 2 × the cores,
    /// oversubscribed; the cores are the default count, with the hog phases].
    #[arg(long)]
    workers: Option<String>,
    /// Servers in other languages measured beside the styles [default: python when
    /// python3 is on PATH]: the seed's own servers, run by python3.
    #[arg(long, value_enum)]
    peers: Option<Peers>,
    /// Where the Python peers live [default: peers/python of this checkout].
    #[arg(long)]
    peers_dir: Option<PathBuf>,
    /// Skip the redis-server `PING` ceiling even when redis-server is on PATH.
    #[arg(long)]
    no_redis: bool,
    /// Also write the rows as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// How client and servers share the CPUs in the throughput phase, comma-separated:
    /// `shared` (neither pinned), `isolated` (each on CPUs of its own); the phase runs once
    /// per arrangement, the hog phases in the shared one only [default: both where at
    /// least 2 CPUs are usable, else shared].
    #[arg(long, value_enum, value_delimiter = ',')]
    arrangements: Vec<ArrangementArg>,
    /// The isolated arrangement's server CPUs (`0`, `0-1,3`) [default: the first half of
    /// the usable CPUs].
    #[arg(long)]
    server_cpus: Option<CpuList>,
    /// The isolated arrangement's client CPUs, disjoint from the server's [default: the
    /// usable CPUs the server does not get].
    #[arg(long)]
    client_cpus: Option<CpuList>,
    /// A prefix for every server command, split on whitespace (`ssh host`,
    /// `ip netns exec bench-srv`, `taskset -c 1`); the `listening on ADDR` line is read
    /// through it.
    #[arg(long)]
    server_launcher: Option<String>,
    /// The IP address the servers bind (port 0; redis-server a free port); the client
    /// connects to the address each server prints [default: 127.0.0.1].
    #[arg(long)]
    server_host: Option<IpAddr>,
    /// The name the rows are saved under in the results directory, for `concbench
    /// report` (`NAME.json`, `NAME.meta.json`).
    #[arg(long, default_value = "beazley")]
    save_as: String,
}

/// `--arrangements`, for clap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum ArrangementArg {
    /// Client and servers unpinned, competing for every CPU.
    Shared,
    /// Servers pinned to CPUs of their own, the client to the rest.
    Isolated,
}

/// The arrangements to run, from the options and the CPUs this process may use.
fn arrangements(args: &BeazleyArgs) -> anyhow::Result<Vec<Arrangement>> {
    let usable = scenarios::cpus::usable().context("cannot read the CPUs this process may use")?;
    let pinned = args.server_cpus.is_some() || args.client_cpus.is_some();
    let kinds = if args.arrangements.is_empty() {
        if usable.len() >= 2 || pinned {
            vec![ArrangementArg::Shared, ArrangementArg::Isolated]
        } else {
            vec![ArrangementArg::Shared]
        }
    } else {
        let mut kinds = args.arrangements.clone();
        kinds.dedup();
        kinds
    };
    if pinned && !kinds.contains(&ArrangementArg::Isolated) {
        bail!(
            "--server-cpus and --client-cpus set the isolated arrangement: add isolated to --arrangements"
        );
    }
    kinds
        .into_iter()
        .map(|kind| match kind {
            ArrangementArg::Shared => Ok(Arrangement::shared()),
            ArrangementArg::Isolated => {
                let (server, client) = isolated_cpus(
                    &usable,
                    args.server_cpus.as_ref(),
                    args.client_cpus.as_ref(),
                )?;
                Ok(Arrangement::isolated(server, client))
            }
        })
        .collect()
}

/// The isolated arrangement's server and client CPUs: those given, or the first half of
/// the usable CPUs for the server and the rest for the client (on 2 CPUs: 0 and 1).
fn isolated_cpus(
    usable: &CpuList,
    server: Option<&CpuList>,
    client: Option<&CpuList>,
) -> anyhow::Result<(CpuList, CpuList)> {
    let (default_server, _) = scenarios::cpus::isolation_split(usable).unwrap_or_default();
    let server = server.cloned().unwrap_or_else(|| match client {
        Some(client) => CpuList::new(
            usable
                .iter()
                .filter(|cpu| !client.iter().any(|c| c == *cpu)),
        ),
        None => default_server,
    });
    let client = client.cloned().unwrap_or_else(|| {
        CpuList::new(
            usable
                .iter()
                .filter(|cpu| !server.iter().any(|s| s == *cpu)),
        )
    });
    if server.is_empty() || client.is_empty() {
        bail!(
            "the isolated arrangement needs CPUs for server and client apart, and this process may use only {usable}: run --arrangements shared"
        );
    }
    if !server.is_disjoint(&client) {
        bail!(
            "--server-cpus {server} and --client-cpus {client} overlap: the sets must be disjoint"
        );
    }
    for (option, set) in [("--server-cpus", &server), ("--client-cpus", &client)] {
        if !set.is_subset(usable) {
            bail!("{option} {set} is not inside the CPUs this process may use ({usable})");
        }
    }
    Ok((server, client))
}

/// Points a contender started with `--addr 127.0.0.1:0` at `host` instead.
fn bind_to(contender: &mut Contender, host: IpAddr) {
    let args = &mut contender.command.args;
    if let Some(position) = args.iter().position(|arg| arg == "--addr")
        && let Some(addr) = args.get_mut(position + 1)
    {
        *addr = SocketAddr::new(host, 0).to_string().into();
    }
}

pub(crate) fn run(args: &ScenarioArgs) -> anyhow::Result<()> {
    let registry = ChildRegistry::default();
    kill_children_on_signal(&registry)?;
    match &args.scenario {
        Scenario::Beazley(beazley_args) => run_beazley(beazley_args, &registry),
        Scenario::Tasks(tasks_args) => run_tasks(tasks_args, &registry),
        Scenario::Connections(connections_args) => {
            super::scenario_connections::run(connections_args, &registry)
        }
        Scenario::Io(io_args) => super::scenario_io::run(io_args, &registry),
        Scenario::RateSweep(rate_args) => super::scenario_rate::run(rate_args, &registry),
    }
}

/// On SIGINT or SIGTERM, kills every server child and exits: no child outlives us.
fn kill_children_on_signal(registry: &ChildRegistry) -> anyhow::Result<()> {
    let mut signals = Signals::new([SIGINT, SIGTERM]).context("cannot handle SIGINT/SIGTERM")?;
    let registry = registry.clone();
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            if let Some(signal) = signals.forever().next() {
                registry.kill_all();
                eprintln!("\ninterrupted: every server stopped");
                std::process::exit(128 + signal);
            }
        })
        .context("cannot start the signal thread")?;
    Ok(())
}

/// Peer servers written in other languages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(super) enum Peers {
    /// The seed's servers in Python (peers/python): threads, processpool, asyncio.
    Python,
    /// Rust styles only.
    None,
}

/// The Python peers, as (row name, script) pairs, in table order.
pub(super) const PYTHON_PEERS: [(&str, &str); 4] = [
    ("python-threads", "threads.py"),
    ("python-processpool", "processpool.py"),
    ("python-asyncio", "asyncio_inline.py"),
    ("python-asyncio-offload", "asyncio_offload.py"),
];

/// Where this checkout keeps the Python peers.
pub(super) const PYTHON_PEERS_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/peers/python");

/// What happened to the Python peer rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum PythonPeers {
    Measured,
    NotFound,
    Skipped,
}

/// The Python peers as contenders, when `requested` (default: when python3 is on PATH
/// and `dir` holds them); `--peers python` without them is an error.
pub(super) fn python_peers(
    requested: Option<Peers>,
    dir: &Path,
    max_n: u32,
    workers: NonZeroUsize,
) -> anyhow::Result<(Vec<Contender>, PythonPeers)> {
    if requested == Some(Peers::None) {
        return Ok((Vec::new(), PythonPeers::Skipped));
    }
    match find_on_path("python3") {
        Some(python) if dir.is_dir() => Ok((
            python_contenders(dir, &python, max_n, workers),
            PythonPeers::Measured,
        )),
        _ if requested == Some(Peers::Python) => bail!(
            "--peers python needs python3 on PATH and the peers in {}",
            dir.display()
        ),
        _ => Ok((Vec::new(), PythonPeers::NotFound)),
    }
}

pub(super) fn python_contenders(
    dir: &Path,
    python: &Path,
    max_n: u32,
    workers: NonZeroUsize,
) -> Vec<Contender> {
    PYTHON_PEERS
        .iter()
        .map(|(name, script)| {
            let mut args = vec![dir.join(script).into_os_string()];
            let options = [
                "--addr",
                "127.0.0.1:0",
                "--max-n",
                &max_n.to_string(),
                "--workers",
                &workers.to_string(),
            ];
            args.extend(options.iter().map(OsString::from));
            Contender {
                command: ServerCommand {
                    name: (*name).to_owned(),
                    program: python.to_path_buf(),
                    args,
                    ready: ReadyBy::ListeningLine,
                },
                language: "python".into(),
                protocol: Protocol::Fib,
                redis_benchmark: None,
                pin_with: PinWith::Taskset,
                workers: Some(workers.get()),
                sweep_point: false,
            }
        })
        .collect()
}

/// The hog sweep's default: below, at and above the worker count (`workers − 1` left out
/// when it is 0).
fn default_hog_counts(workers: usize) -> Vec<usize> {
    let mut counts: Vec<usize> = [workers.saturating_sub(1), workers, 2 * workers]
        .into_iter()
        .filter(|&count| count > 0)
        .collect();
    counts.dedup();
    counts
}

fn run_beazley(args: &BeazleyArgs, registry: &ChildRegistry) -> anyhow::Result<()> {
    if args.connections.is_empty() || args.connections.contains(&0) {
        bail!("--connections needs positive counts");
    }
    if args.save_as.is_empty()
        || !args
            .save_as
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        bail!(
            "--save-as {:?}: a file name of letters, digits, `-` and `_` (it becomes NAME.json in the results folder)",
            args.save_as
        );
    }
    let sweep = worker_sweep(args.workers.as_deref())?;
    let workers = sweep.default;
    if args.hogs.contains(&0) {
        bail!("--hogs needs positive counts");
    }
    if args.probe_connections == 0 {
        bail!("--probe-connections needs at least one connection");
    }
    if args.rounds == 0 {
        bail!("--rounds needs at least one round");
    }
    let hog_counts = if args.hogs.is_empty() {
        default_hog_counts(workers.get())
    } else {
        args.hogs.clone()
    };
    let arrangements = arrangements(args)?;
    let server_launcher: Vec<OsString> = args
        .server_launcher
        .as_deref()
        .unwrap_or_default()
        .split_whitespace()
        .map(OsString::from)
        .collect();
    let host = args.server_host.unwrap_or(IpAddr::from([127, 0, 0, 1]));
    let concbench = std::env::current_exe().context("cannot find the concbench binary")?;
    let max_n = args.hog_n.max(DEFAULT_MAX_N);
    let styles: Vec<&str> = if args.styles.is_empty() {
        catalog::STYLES
            .iter()
            .filter(|entry| (entry.support)(Workload::HogLatency) == Support::Runs)
            .map(|entry| entry.name)
            .collect()
    } else {
        args.styles.iter().map(String::as_str).collect()
    };
    let peers_dir = args
        .peers_dir
        .clone()
        .unwrap_or_else(|| PYTHON_PEERS_DIR.into());
    // Every server at every worker count of the sweep; the default count's are the main
    // rows, the others are sweep points.
    let mut contenders: Vec<Contender> = Vec::new();
    let mut python = PythonPeers::Skipped;
    for &count in &sweep.counts {
        let mut at_count: Vec<Contender> = styles
            .iter()
            .map(|style| rust_contender(&concbench, style, max_n, count))
            .collect();
        let (peers, found) = python_peers(args.peers, &peers_dir, max_n, count)?;
        python = found;
        at_count.extend(peers);
        for contender in &mut at_count {
            contender.sweep_point = count != workers;
        }
        contenders.extend(at_count);
    }
    let redis = if args.no_redis {
        RedisCeiling::Skipped
    } else {
        match find_on_path("redis-server") {
            Some(program) => {
                contenders.push(redis_contender(program, host));
                RedisCeiling::Measured
            }
            None => RedisCeiling::NotOnPath,
        }
    };
    for contender in &mut contenders {
        bind_to(contender, host);
    }
    let pins_with_taskset = arrangements
        .iter()
        .any(|arrangement| arrangement.server_cpus.is_some())
        && contenders
            .iter()
            .any(|contender| contender.pin_with == PinWith::Taskset);
    if pins_with_taskset && find_on_path("taskset").is_none() {
        bail!(
            "the isolated arrangement starts the Python peers and redis-server under `taskset -c`, and taskset is not on PATH: install util-linux, or run --arrangements shared, or --peers none --no-redis"
        );
    }
    let config = BeazleyConfig {
        contenders,
        duration: args.duration,
        warm_up: Duration::from_millis(500),
        connections: args.connections.clone(),
        hog_counts,
        probe_connections: args.probe_connections,
        hog_n: args.hog_n,
        probe_rate: args.probe_rate,
        start_timeout: Duration::from_secs(20),
        rounds: args.rounds,
        seed: args.seed.unwrap_or_else(super::seed_from_clock),
        arrangements,
        server_launcher,
    };

    let bar = super::progress::scenario_bar("beazley");
    let outcome = beazley::run(&config, registry, |step| {
        bar.set_length(step.total as u64);
        bar.set_position(step.done as u64);
        bar.set_message(format!("{}: {}", step.name, step.activity));
    });
    bar.finish_and_clear();

    let mut stdout = io::stdout().lock();
    write!(
        stdout,
        "{}{}",
        beazley_table(&config, workers, &outcome, redis, python),
        sweep_table(&config, &sweep, &outcome)
    )?;
    stdout.flush()?;
    if let Some(path) = &args.json {
        write_json(path, &outcome.rows)?;
    }
    save_last_run(&args.save_as, workers, &outcome.rows)?;
    if outcome.rows.is_empty() {
        bail!("no server could be measured");
    }
    fail_on_failures(&outcome.failures)
}

/// Fails, after every row measured has been written, when some servers could not be
/// measured fully: a run that lost rows must not pass for a whole one (in a script or a
/// CI gate, the exit status is all that is read).
pub(super) fn fail_on_failures(failures: &[(String, String)]) -> anyhow::Result<()> {
    if failures.is_empty() {
        return Ok(());
    }
    let names: Vec<&str> = failures.iter().map(|(name, _)| name.as_str()).collect();
    bail!(
        "{} could not be measured fully (see FAILED above); the rows that were measured are written",
        names.join(", ")
    )
}

/// The servers of a scenario that drives `workload` at the protocol's default bound:
/// the named styles, each checked to run it (one that cannot is a usage error giving its
/// reason), then the Python peers `requested`.
pub(super) fn contenders_for(
    concbench: &Path,
    styles: &[&str],
    workload: Workload,
    requested: Option<Peers>,
    workers: NonZeroUsize,
) -> anyhow::Result<(Vec<Contender>, PythonPeers)> {
    for style in styles {
        if let Some(entry) = catalog::find(style)
            && let Support::NotApplicable(reason) = (entry.support)(workload)
        {
            bail!("{style} does not run {workload}: {reason}");
        }
    }
    let mut contenders: Vec<_> = styles
        .iter()
        .map(|style| rust_contender(concbench, style, DEFAULT_MAX_N, workers))
        .collect();
    let (peers, python) = python_peers(
        requested,
        Path::new(PYTHON_PEERS_DIR),
        DEFAULT_MAX_N,
        workers,
    )?;
    contenders.extend(peers);
    Ok((contenders, python))
}

pub(super) fn rust_contender(
    concbench: &Path,
    style: &str,
    max_n: u32,
    workers: NonZeroUsize,
) -> Contender {
    let args = [
        "serve",
        "--style",
        style,
        "--addr",
        "127.0.0.1:0",
        "--max-n",
        &max_n.to_string(),
        "--workers",
        &workers.to_string(),
    ];
    Contender {
        command: ServerCommand {
            name: style.to_owned(),
            program: concbench.to_path_buf(),
            args: args.iter().map(OsString::from).collect(),
            ready: ReadyBy::ListeningLine,
        },
        language: "rust".into(),
        protocol: Protocol::Fib,
        redis_benchmark: None,
        pin_with: PinWith::CpusOption,
        workers: Some(workers.get()),
        sweep_point: false,
    }
}

/// redis-server on `host`, at a port found free for each start, with persistence off;
/// with `redis-benchmark` beside it when that is on PATH, to check the load generator
/// against redis's client.
fn redis_contender(program: PathBuf, host: IpAddr) -> Contender {
    let host_arg = host.to_string();
    let args = [
        "--port",
        FREE_PORT,
        "--bind",
        &host_arg,
        "--save",
        "",
        "--appendonly",
        "no",
    ];
    Contender {
        command: ServerCommand {
            name: "redis-server".into(),
            program,
            args: args.iter().map(OsString::from).collect(),
            ready: ReadyBy::ConnectOnFreePort(host),
        },
        language: "c".into(),
        protocol: Protocol::Ping,
        redis_benchmark: find_on_path("redis-benchmark"),
        pin_with: PinWith::Taskset,
        workers: None,
        sweep_point: false,
    }
}

/// What happened to the redis-server ceiling row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RedisCeiling {
    Measured,
    NotOnPath,
    Skipped,
}

/// A hog row's probe p99, marked `≥` when some of its latencies are lower bounds.
fn probe_p99(row: &BeazleyRow) -> String {
    let bound = if row.latency_lower_bounds > 0 {
        "≥"
    } else {
        ""
    };
    row.p99_us.map_or_else(
        || "no reply".to_owned(),
        |p99| format!("{bound}{}", super::format_micros(p99)),
    )
}

fn beazley_table(
    config: &BeazleyConfig,
    workers: NonZeroUsize,
    outcome: &BeazleyOutcome,
    redis: RedisCeiling,
    python: PythonPeers,
) -> String {
    let mut header = vec!["server".to_owned(), "lang".to_owned()];
    for connections in &config.connections {
        header.push(format!("c={connections} req/s"));
        header.push(format!("c={connections} p99"));
    }
    let busiest = config.connections.iter().copied().max().unwrap_or(1);
    header.push(format!("c={busiest} cpu/req"));
    header.push("of it user".to_owned());
    for hogs in &config.hog_counts {
        header.push(format!("h={hogs} probe p99"));
        header.push(format!("h={hogs} answered/due"));
    }
    let mut table = Table::new(header);
    let mut names: Vec<&str> = Vec::new();
    for row in &outcome.rows {
        if !names.contains(&row.style.as_str()) {
            names.push(&row.style);
        }
    }
    let mut notes = Vec::new();
    for name in names {
        let rows: Vec<&BeazleyRow> = outcome
            .rows
            .iter()
            .filter(|row| row.style == name && row.is_main())
            .collect();
        let Some(first) = rows.first() else {
            continue;
        };
        let mut cells = vec![name.to_owned(), first.language.clone()];
        for &connections in &config.connections {
            match rows
                .iter()
                .find(|row| row.phase == Phase::Throughput && row.connections == connections)
            {
                Some(row) => {
                    cells.push(format!("{:.0}", row.rps));
                    cells.push(
                        row.p99_us
                            .map_or_else(|| "—".to_owned(), super::format_micros),
                    );
                }
                None => cells.extend(["—".to_owned(), "—".to_owned()]),
            }
        }
        let busiest_row = rows
            .iter()
            .find(|row| row.phase == Phase::Throughput && row.connections == busiest);
        for cpu in [
            busiest_row.and_then(|row| row.server_cpu_us),
            busiest_row.and_then(|row| row.server_user_us),
        ] {
            cells.push(cpu.map_or_else(|| "—".to_owned(), |micros| format!("{micros:.1}µs")));
        }
        for &hogs in &config.hog_counts {
            match rows
                .iter()
                .find(|row| row.phase == Phase::Hog && row.hogs == Some(hogs))
            {
                Some(row) => {
                    cells.push(probe_p99(row));
                    cells.push(format!(
                        "{}/{}",
                        row.requests,
                        row.due.unwrap_or(row.requests)
                    ));
                }
                None => cells.extend(["—"; 2].map(String::from)),
            }
        }
        let iterative =
            catalog::find(name).is_some_and(|entry| entry.server_model == ServerModel::Iterative);
        if iterative
            && config
                .connections
                .iter()
                .any(|&connections| connections > 1)
        {
            notes.push(format!(
                "{name} serves one connection at a time: with more than one connection, one got every reply \
                 and the others waited for it to leave (their wait is in the max, not the p99)"
            ));
        }
        for row in &rows {
            if row.errors > 0 || row.failed > 0 {
                let phase = match row.phase {
                    Phase::Throughput => format!("throughput c={}", row.connections),
                    Phase::Hog => format!("hog probe h={}", row.hogs.unwrap_or(0)),
                };
                notes.push(format!(
                    "{name} {phase}: {} error replies, {} requests failed, timed out, unanswered or never sent",
                    row.errors, row.failed
                ));
            }
        }
        table.push(cells);
    }
    let mut out = format!(
        "Beazley scenario: {workers} workers per server, {:?} per phase (throughput: {} interleaved rounds, \
         servers in shuffled order, seed {}); hog phases: h = {} connections looping fib({}) \
         while {} probe connections send fib(1) at {} req/s in all (open loop)\n\
         cpu/req: CPU the server (with its worker processes) spent per reply, from the kernel's accounting; \
         of it user: the part in user space (the rest is the kernel's socket work)\n\
         probe p99 counts from each probe's due time; ≥: some probes were never sent or answered, and count with the \
         time they had waited when the phase ended, so the true p99 is at least that\n\n",
        config.duration,
        config.rounds,
        outcome.seed,
        config
            .hog_counts
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", "),
        config.hog_n,
        config.probe_connections,
        config.probe_rate
    );
    out.push_str(&table.render());
    out.push_str(&arrangements_table(config, outcome));
    match redis {
        RedisCeiling::Measured => {
            out.push_str("\nredis-server answers PING: the loopback ceiling for one-line request/response through this client.\n");
            for row in outcome
                .rows
                .iter()
                .filter(|row| row.phase == Phase::Throughput && row.is_main())
            {
                if let Some(reference) = row.redis_benchmark_rps {
                    out.push_str(&format!(
                        "{} at c={}: this client {:.0} req/s, redis-benchmark {reference:.0} req/s ({:.2}×).\n",
                        row.style,
                        row.connections,
                        row.rps,
                        row.rps / reference
                    ));
                }
            }
        }
        RedisCeiling::NotOnPath => out.push_str("\nredis-server is not on PATH: no loopback ceiling row (install redis-server to add it).\n"),
        RedisCeiling::Skipped => out.push_str("\nredis-server ceiling skipped (--no-redis).\n"),
    }
    match python {
        PythonPeers::Measured => out.push_str("python-* rows: the seed's servers in Python (peers/python), measured by the same client.\n"),
        PythonPeers::NotFound => out.push_str("python3 or peers/python not found: no Python rows.\n"),
        PythonPeers::Skipped => {}
    }
    for note in notes {
        out.push_str(&format!("note: {note}\n"));
    }
    for (name, failure) in &outcome.failures {
        out.push_str(&format!("FAILED: {name}: {failure}\n"));
    }
    out
}

/// The worker counts of a server scenario's core-count sweep.
pub(super) struct WorkerSweep {
    /// Every count, in the order given (default: ascending).
    pub(super) counts: Vec<NonZeroUsize>,
    /// The default count: the main rows', with the hog phases.
    pub(super) default: NonZeroUsize,
    /// The cores the sweep is relative to.
    pub(super) cores: usize,
}

/// `--workers` of a server scenario: one count, a list, or the default sweep (1 up to
/// the cores, then 2 × the cores). The default count is the cores when listed, else the
/// largest listed count within them, else the first (as the engine's sweep decides).
pub(super) fn worker_sweep(text: Option<&str>) -> anyhow::Result<WorkerSweep> {
    let cores = workloads::StyleConfig::default_workers()?.get();
    let counts = match text {
        Some(text) => measure::sweep::parse_workers(text).map_err(anyhow::Error::msg)?,
        None => measure::sweep::default_counts(cores),
    };
    let points = measure::sweep::plan(&counts, cores);
    let default = points
        .iter()
        .find(|point| point.primary)
        .map_or(cores, |point| point.workers);
    let counts = counts.into_iter().filter_map(NonZeroUsize::new).collect();
    Ok(WorkerSweep {
        counts,
        default: NonZeroUsize::new(default).unwrap_or(NonZeroUsize::MIN),
        cores,
    })
}

/// The core-count sweep: each server's throughput rate at every worker count (shared
/// arrangement, interleaved in the same rounds), and its speedup over 1 worker; nothing
/// when the sweep has one count.
fn sweep_table(config: &BeazleyConfig, sweep: &WorkerSweep, outcome: &BeazleyOutcome) -> String {
    if sweep.counts.len() < 2 {
        return String::new();
    }
    let rows: Vec<&BeazleyRow> = outcome
        .rows
        .iter()
        .filter(|row| row.phase == Phase::Throughput && !row.is_isolated() && row.workers.is_some())
        .collect();
    let mut header = vec!["server".to_owned()];
    for connections in &config.connections {
        for count in &sweep.counts {
            header.push(format!("c={connections} w={count}"));
        }
        header.push(format!("c={connections} best/w=1"));
    }
    let mut table = Table::new(header);
    let mut names: Vec<&str> = Vec::new();
    for row in &rows {
        if !names.contains(&row.style.as_str()) {
            names.push(&row.style);
        }
    }
    for name in names {
        let mut cells = vec![name.to_owned()];
        for &connections in &config.connections {
            let rate = |count: NonZeroUsize| {
                rows.iter()
                    .find(|row| {
                        row.style == name
                            && row.connections == connections
                            && row.workers == Some(count.get())
                    })
                    .map(|row| row.rps)
            };
            for &count in &sweep.counts {
                cells.push(rate(count).map_or_else(|| "—".to_owned(), |rps| format!("{rps:.0}")));
            }
            let one = NonZeroUsize::MIN;
            let best = sweep
                .counts
                .iter()
                .filter_map(|&count| rate(count))
                .fold(None, |best: Option<f64>, rps| {
                    Some(best.map_or(rps, |b| b.max(rps)))
                });
            cells.push(match (rate(one), best) {
                (Some(single), Some(best)) if single > 0.0 => format!("{:.2}×", best / single),
                _ => "—".to_owned(),
            });
        }
        table.push(cells);
    }
    let oversubscribed: Vec<String> = sweep
        .counts
        .iter()
        .filter(|count| count.get() > sweep.cores)
        .map(ToString::to_string)
        .collect();
    let mut out = format!(
        "\ncore-count sweep (throughput req/s, shared arrangement, every worker count interleaved in the \
         same rounds; {} cores{}); best/w=1: the best count's rate over 1 worker's\n\n",
        sweep.cores,
        if oversubscribed.is_empty() {
            String::new()
        } else {
            format!(", w={} oversubscribed", oversubscribed.join(","))
        }
    );
    out.push_str(&table.render());
    out
}

/// The share of its threads' time the client used in a throughput row, when recorded.
fn client_busy(row: &BeazleyRow) -> Option<f64> {
    let (micros, threads) = row.client_cpu_us.zip(row.client_threads)?;
    Some(micros * row.rps / 1e6 / threads.max(1) as f64)
}

/// Above this share of its threads' time, the client, not the server, may set the rate.
const CLIENT_BUSY_LIMIT: f64 = 0.9;

/// The arrangements: what each was, the throughput rate in each side by side with the
/// client's busy share, and a warning for every row where the client was the busier.
fn arrangements_table(config: &BeazleyConfig, outcome: &BeazleyOutcome) -> String {
    let mut out = String::new();
    let arrangements = if config.arrangements.is_empty() {
        vec![Arrangement::shared()]
    } else {
        config.arrangements.clone()
    };
    let describe = |arrangement: &Arrangement| {
        let cpus = |cpus: &Option<CpuList>| {
            cpus.as_ref()
                .map_or_else(|| "any CPU".to_owned(), |cpus| format!("CPUs {cpus}"))
        };
        format!(
            "{}: servers on {}, client on {}",
            arrangement.kind.name(),
            cpus(&arrangement.server_cpus),
            cpus(&arrangement.client_cpus)
        )
    };
    out.push_str(&format!(
        "\narrangements: {} (worker counts as --workers says in each; hog phases in the \
         shared arrangement only)\n",
        arrangements
            .iter()
            .map(describe)
            .collect::<Vec<_>>()
            .join("; ")
    ));
    if !config.server_launcher.is_empty() {
        let launcher: Vec<String> = config
            .server_launcher
            .iter()
            .map(|word| word.to_string_lossy().into_owned())
            .collect();
        out.push_str(&format!(
            "every server started under: {}\n",
            launcher.join(" ")
        ));
    }
    let throughput: Vec<&BeazleyRow> = outcome
        .rows
        .iter()
        .filter(|row| row.phase == Phase::Throughput && !row.sweep_point)
        .collect();
    let kinds = [ArrangementKind::Shared, ArrangementKind::Isolated];
    let both = kinds.iter().all(|kind| {
        arrangements
            .iter()
            .any(|arrangement| arrangement.kind == *kind)
    });
    if both {
        let mut header = vec!["server".to_owned()];
        for connections in &config.connections {
            header.extend([
                format!("c={connections} shared"),
                format!("c={connections} isolated"),
                "isolated/shared".to_owned(),
                "client busy sh/iso".to_owned(),
            ]);
        }
        let mut table = Table::new(header);
        let mut names: Vec<&str> = Vec::new();
        for row in &throughput {
            if !names.contains(&row.style.as_str()) {
                names.push(&row.style);
            }
        }
        let percent = |busy: Option<f64>| {
            busy.map_or_else(|| "—".to_owned(), |busy| format!("{:.0}%", busy * 100.0))
        };
        for name in names {
            let mut cells = vec![name.to_owned()];
            for &connections in &config.connections {
                let find = |isolated: bool| {
                    throughput.iter().find(|row| {
                        row.style == name
                            && row.connections == connections
                            && row.is_isolated() == isolated
                    })
                };
                let (shared, isolated) = (find(false), find(true));
                let rate = |row: Option<&&BeazleyRow>| {
                    row.map_or_else(|| "—".to_owned(), |row| format!("{:.0}", row.rps))
                };
                cells.push(rate(shared));
                cells.push(rate(isolated));
                cells.push(match (shared, isolated) {
                    (Some(shared), Some(isolated)) if shared.rps > 0.0 => {
                        format!("{:.2}×", isolated.rps / shared.rps)
                    }
                    _ => "—".to_owned(),
                });
                cells.push(format!(
                    "{} / {}",
                    percent(shared.and_then(|row| client_busy(row))),
                    percent(isolated.and_then(|row| client_busy(row)))
                ));
            }
            table.push(cells);
        }
        out.push_str(
            "\nthroughput (req/s) with client and servers sharing every CPU, and each on CPUs \
             of its own, interleaved in the same rounds; client busy: the share of its \
             threads' time the client used\n\n",
        );
        out.push_str(&table.render());
    }
    for row in throughput {
        if let Some(busy) = client_busy(row).filter(|busy| *busy > CLIENT_BUSY_LIMIT) {
            out.push_str(&format!(
                "warning: {} c={} ({}): the client used {:.0}% of its {} thread(s)' time: \
                 this row measures the client as much as the server\n",
                row.style,
                row.connections,
                row.arrangement.as_deref().unwrap_or("shared"),
                busy * 100.0,
                row.client_threads.unwrap_or(1)
            ));
        }
    }
    out
}

fn run_tasks(args: &TasksArgs, registry: &ChildRegistry) -> anyhow::Result<()> {
    if args.sizes.is_empty() || args.sizes.contains(&0) {
        bail!("--sizes needs positive unit counts");
    }
    let workers = match args.workers {
        Some(workers) => workers,
        None => workloads::StyleConfig::default_workers()?,
    };
    let entries: Vec<&workloads::StyleEntry> = if args.styles.is_empty() {
        catalog::STYLES
            .iter()
            .filter(|entry| (entry.support)(Workload::Sleepers) == Support::Runs)
            .collect()
    } else {
        args.styles
            .iter()
            .filter_map(|name| catalog::find(name))
            .collect()
    };
    for entry in &entries {
        if let Support::NotApplicable(reason) = (entry.support)(Workload::Sleepers) {
            bail!("{} does not run sleepers: {reason}", entry.name);
        }
    }
    let mut sizes = args.sizes.clone();
    sizes.sort_unstable();
    sizes.dedup();
    let config = TasksConfig {
        concbench: std::env::current_exe().context("cannot find the concbench binary")?,
        subjects: entries
            .iter()
            .map(|entry| Subject {
                name: entry.name.to_owned(),
                unit: entry.unit,
            })
            .collect(),
        sizes,
        sleep: args.sleep,
        workers: workers.get(),
        probe_timeout: args.probe_timeout,
    };
    let bar = super::progress::scenario_bar("tasks");
    let rows = scenarios::tasks::run(&config, registry, |step| {
        bar.set_length(step.total as u64);
        bar.set_position(step.done as u64);
        bar.set_message(format!("{}: {} units", step.name, step.n_units));
    });
    bar.finish_and_clear();

    let mut stdout = io::stdout().lock();
    write!(stdout, "{}", tasks_table(&config, &rows))?;
    stdout.flush()?;
    if let Some(path) = &args.json {
        write_json(path, &rows)?;
    }
    save_last_run("tasks", workers, &rows)
}

/// Keeps the rows as the last run of `scenario` for `concbench report`, with the command
/// that produced them.
pub(super) fn save_last_run(
    scenario: &str,
    workers: NonZeroUsize,
    rows: &[impl serde::Serialize],
) -> anyhow::Result<()> {
    let command = std::iter::once("concbench".to_owned())
        .chain(std::env::args().skip(1))
        .collect::<Vec<_>>()
        .join(" ");
    let meta = scenarios::RunMeta::now(command, workers.get());
    scenarios::save_run(scenario, &meta, Some(&rows)).with_context(|| {
        format!(
            "cannot save the rows in {}",
            scenarios::results_dir().display()
        )
    })
}

fn tasks_table(config: &TasksConfig, rows: &[TaskRow]) -> String {
    let mut table = Table::new([
        "style",
        "unit",
        "N",
        "spawn",
        "wall",
        "peak RSS",
        "bytes/unit",
    ]);
    let mut notes = Vec::new();
    for row in rows {
        let cell = |value: Option<f64>, format: fn(f64) -> String| {
            value.map_or_else(|| "—".to_owned(), format)
        };
        table.push(vec![
            row.style.clone(),
            row.unit.clone(),
            row.n_tasks.to_string(),
            cell(row.spawn_ms, |ms| format!("{ms:.1}ms")),
            cell(row.wall_ms, |ms| format!("{ms:.1}ms")),
            cell(row.peak_rss_bytes.map(|bytes| bytes as f64), |bytes| {
                format!("{:.1}MiB", bytes / f64::from(1 << 20))
            }),
            cell(row.bytes_per_task, |bytes| format!("{bytes:.0}")),
        ]);
        if let Some(reason) = &row.not_attempted {
            notes.push(format!(
                "{} at {}: not attempted: {reason}",
                row.style, row.n_tasks
            ));
        }
    }
    let mut out = format!(
        "Tasks scenario: N units each sleeping {:?}, every (style, N) in a fresh process, {} workers\n\
         bytes/unit = (peak RSS - RSS before the units) / N; for processes, each unit process's private memory while alive, plus that\n\n",
        config.sleep, config.workers
    );
    out.push_str(&table.render());
    for note in notes {
        out.push_str(&format!("note: {note}\n"));
    }
    out
}

pub(super) fn write_json(path: &Path, rows: &[impl serde::Serialize]) -> anyhow::Result<()> {
    scenarios::write_rows(path, &rows).with_context(|| format!("cannot write {}", path.display()))
}

/// The first executable called `name` in `$PATH`.
pub(super) fn find_on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|directory| directory.join(name))
        .find(|candidate| candidate.is_file())
}

#[cfg(test)]
mod tests {
    use super::fail_on_failures;

    #[test]
    fn a_run_that_lost_a_server_fails_and_names_it() {
        assert!(fail_on_failures(&[]).is_ok());
        let failures = [
            ("redis-server (isolated)".to_owned(), "no result".to_owned()),
            ("smol".to_owned(), "did not start".to_owned()),
        ];
        let message = fail_on_failures(&failures)
            .expect_err("lost rows")
            .to_string();
        assert!(
            message.contains("redis-server (isolated), smol"),
            "{message}"
        );
    }
}
