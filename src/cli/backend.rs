//! `concbench backend`: the slow backend of the `io_wait` workload, until SIGINT or
//! SIGTERM.

use std::io::{self, Write};
use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::time::Duration;

use anyhow::Context;
use backend::{Backend, BackendConfig};
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

/// Options of `concbench backend`.
#[derive(Debug, clap::Args)]
pub(crate) struct BackendArgs {
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:0")]
    addr: SocketAddr,
    /// How long after it arrives each request is answered, e.g. `50ms`.
    #[arg(long, default_value = "50ms", value_parser = super::load::parse_duration)]
    delay: Duration,
    /// Threads of the backend's runtime (its requests wait on a timer, not a thread).
    #[arg(long, default_value_t = NonZeroUsize::MIN)]
    threads: NonZeroUsize,
}

pub(crate) fn run(args: &BackendArgs) -> anyhow::Result<()> {
    let mut signals = Signals::new([SIGINT, SIGTERM]).context("cannot handle SIGINT/SIGTERM")?;
    super::raise_open_files_limit();
    let listener = super::bind_listener(args.addr)?;
    let backend = Backend::start(
        listener,
        BackendConfig {
            delay: args.delay,
            threads: args.threads,
        },
    )
    .context("cannot start the backend")?;
    let mut stdout = io::stdout().lock();
    writeln!(stdout, "listening on {}", backend.local_addr())?;
    stdout.flush()?;
    drop(stdout);
    let _signal = signals.forever().next();
    backend.stop();
    Ok(())
}
