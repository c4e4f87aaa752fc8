//! `concbench serve`: one style's server, until SIGINT or SIGTERM.

use std::io::{self, Write};
use std::net::SocketAddr;
use std::num::NonZeroUsize;

use anyhow::{Context, bail};
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;
use workloads::protocol::{DEFAULT_MAX_N, Framing};
use workloads::server::ServeConfig;
use workloads::{MAX_REFERENCE_N, Support, Workload};

/// Options of `concbench serve`.
#[derive(Debug, clap::Args)]
pub(crate) struct ServeArgs {
    /// The style whose server runs (`concbench list` shows them all).
    #[arg(long, value_parser = super::style_name_parser())]
    style: String,
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:0")]
    addr: SocketAddr,
    /// The largest n served; larger ones are answered `error: out of range`.
    #[arg(long, default_value_t = DEFAULT_MAX_N,
          value_parser = clap::value_parser!(u32).range(0..=i64::from(MAX_REFERENCE_N)))]
    max_n: u32,
    /// Worker threads or processes [default: $CONCBENCH_WORKERS, else the available cores].
    #[arg(long)]
    workers: Option<NonZeroUsize>,
    /// How requests are cut from what is read: `line` (the protocol's), or `seed` (one
    /// read is one request, newline optional, as the seed's server.py reads: for its
    /// unmodified perf1.py/perf2.py clients).
    #[arg(long, value_enum, default_value_t = FramingArg::Line)]
    framing: FramingArg,
    /// The backend that answers `wait N` requests (`concbench backend`); without it they
    /// are answered `error: backend: no backend configured …`.
    #[arg(long)]
    backend: Option<SocketAddr>,
    /// Pin the server to these CPUs (`0`, `0-1,3`) before it builds any thread, so that
    /// every thread and worker process of it inherits the set.
    #[arg(long)]
    cpus: Option<scenarios::cpus::CpuList>,
}

/// `--framing`, for clap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum FramingArg {
    /// A request is a line ending in `\n`.
    Line,
    /// One read is one request (the seed's server.py).
    Seed,
}

impl From<FramingArg> for Framing {
    fn from(framing: FramingArg) -> Self {
        match framing {
            FramingArg::Line => Self::Line,
            FramingArg::Seed => Self::Seed,
        }
    }
}

pub(crate) fn run(args: &ServeArgs) -> anyhow::Result<()> {
    // First, while this is the only thread: every thread and process started from here
    // inherits the set.
    if let Some(cpus) = &args.cpus {
        scenarios::cpus::pin_to(cpus)
            .with_context(|| format!("cannot pin the server to CPUs {cpus}"))?;
    }
    let entry = catalog::find(&args.style).context("unknown style")?;
    if let Support::NotApplicable(reason) = (entry.support)(Workload::Throughput) {
        bail!("{} has no server: {reason}", entry.name);
    }
    // Registered before anything starts, so a signal sent as soon as the address is
    // printed still stops the server cleanly.
    let mut signals = Signals::new([SIGINT, SIGTERM]).context("cannot handle SIGINT/SIGTERM")?;
    // Many connections (the `connections` workload) need many descriptors.
    super::raise_open_files_limit();
    let config = super::style_config(args.workers)?;
    let style = (entry.build)(&config).with_context(|| format!("cannot start {}", entry.name))?;
    let listener = super::bind_listener(args.addr)?;
    let server = style
        .serve(
            listener,
            ServeConfig {
                max_n: args.max_n,
                framing: args.framing.into(),
                backend: args.backend,
            },
        )
        .with_context(|| format!("cannot start the {} server", entry.name))?;
    let mut stdout = io::stdout().lock();
    writeln!(stdout, "listening on {}", server.local_addr())?;
    stdout.flush()?;
    drop(stdout);

    // Blocks until the first SIGINT or SIGTERM.
    let _signal = signals.forever().next();
    server.stop();
    // Dropping the style stops its pool, runtime or worker processes (and reaps them).
    drop(style);
    Ok(())
}
