//! `concbench report`: a dated report folder from the last runs.

use std::io::{self, Write};
use std::path::PathBuf;

use anyhow::Context;
use report::Inputs;

/// Options of `concbench report`.
#[derive(Debug, clap::Args)]
pub(crate) struct ReportArgs {
    /// criterion's output directory [default: $CARGO_TARGET_DIR/criterion, else target/criterion].
    #[arg(long)]
    criterion_dir: Option<PathBuf>,
    /// Where the scenarios saved their last rows [default: $CARGO_TARGET_DIR/concbench, else target/concbench].
    #[arg(long)]
    scenarios: Option<PathBuf>,
    /// Where report folders go; this report goes in `<out>/<YYYY-MM-DD>-<hostname>/`.
    #[arg(long, default_value = "reports")]
    out: PathBuf,
    /// The style every other style's time is compared with.
    #[arg(long, default_value = catalog::BASELINE)]
    baseline: String,
    /// Another report folder: also write `compare-<its name>.md`, this report's paired
    /// ratios beside its (`measure.json` of schema 2 or 3, and `machine.json`).
    #[arg(long, value_name = "OTHER_REPORT_DIR")]
    compare: Option<PathBuf>,
}

pub(crate) fn run(args: &ReportArgs) -> anyhow::Result<()> {
    let results_dir = scenarios::results_dir();
    let inputs = Inputs {
        criterion_dir: args
            .criterion_dir
            .clone()
            .unwrap_or_else(|| results_dir.with_file_name("criterion")),
        scenarios_dir: args.scenarios.clone().unwrap_or(results_dir),
        baseline: args.baseline.clone(),
        single_threaded: catalog::STYLES
            .iter()
            .filter(|entry| entry.cpu_threads == workloads::CpuThreads::One)
            .map(|entry| entry.name.to_owned())
            .collect(),
    };
    let loaded = report::load(&inputs).context("cannot read the report's inputs")?;
    let command = std::iter::once("concbench".to_owned())
        .chain(std::env::args().skip(1))
        .collect::<Vec<_>>()
        .join(" ");
    let machine = report::describe_machine(&loaded, &std::env::current_dir()?, command);
    let mut written =
        report::write(&inputs, &loaded, &machine, &args.out).context("cannot write the report")?;
    if let Some(other) = &args.compare {
        let name = report::compare::write_comparison(&written.folder, &loaded, &machine, other)
            .with_context(|| format!("cannot compare with {}", other.display()))?;
        written.files.push(name);
    }
    let mut stdout = io::stdout().lock();
    writeln!(stdout, "report written to {}", written.folder.display())?;
    for file in &written.files {
        writeln!(stdout, "  {file}")?;
    }
    Ok(())
}
