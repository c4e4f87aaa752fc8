//! `concbench tasks-probe` (hidden): one measurement of the tasks scenario, run by it in
//! a fresh process. Prints one line of JSON ([`scenarios::tasks::ProbeReport`]).

use std::io::{self, Write};
use std::num::NonZeroUsize;
use std::time::Duration;

use anyhow::Context;

/// Options of `concbench tasks-probe`.
#[derive(Debug, clap::Args)]
pub(crate) struct TasksProbeArgs {
    /// The style to measure.
    #[arg(long, value_parser = super::style_name_parser())]
    style: String,
    /// Sleeping units to hold at once.
    #[arg(long)]
    units: usize,
    /// How long each unit sleeps, in microseconds.
    #[arg(long)]
    sleep_us: u64,
    /// Worker threads of the style.
    #[arg(long)]
    workers: Option<NonZeroUsize>,
}

pub(crate) fn run(args: &TasksProbeArgs) -> anyhow::Result<()> {
    let entry = catalog::find(&args.style).context("unknown style")?;
    let config = super::style_config(args.workers)?;
    let style = (entry.build)(&config).with_context(|| format!("cannot start {}", entry.name))?;
    let report = scenarios::tasks::probe(
        style.as_ref(),
        entry.unit,
        args.units,
        Duration::from_micros(args.sleep_us),
    )
    .with_context(|| format!("{} with {} units", entry.name, args.units))?;
    let mut stdout = io::stdout().lock();
    serde_json::to_writer(&mut stdout, &report)?;
    writeln!(stdout)?;
    Ok(())
}
