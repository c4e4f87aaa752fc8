//! `concbench regress`: the CI regression gate over criterion's baseline comparison.

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;
use regress::{Mode, RegressError};

use super::Exit;

/// Options of `concbench regress`.
#[derive(Debug, clap::Args)]
pub(crate) struct RegressArgs {
    /// The baseline the new run was compared with (`cargo bench -- --baseline NAME`).
    /// Only the benchmarks that run compared decide the exit code: comparisons left by
    /// earlier runs (a cached target/) are listed below the table as not compared.
    #[arg(long)]
    baseline: String,
    /// A benchmark regressed when its whole 95 % interval is above this many percent.
    #[arg(long, default_value_t = 5.0, value_parser = parse_percent)]
    threshold: f64,
    /// criterion's output directory [default: $CARGO_TARGET_DIR/criterion, else target/criterion].
    #[arg(long)]
    criterion_dir: Option<PathBuf>,
    /// Also write the table to this file (markdown, for a pull-request comment).
    #[arg(long)]
    markdown: Option<PathBuf>,
    /// Gate on each benchmark's ratio to the reference style within each run, instead
    /// of on absolute times: robust to a machine that is uniformly slower or faster.
    #[arg(long)]
    ratios: bool,
    /// The reference style of --ratios.
    #[arg(long, default_value = catalog::BASELINE, requires = "ratios")]
    reference: String,
}

pub(crate) fn run(args: &RegressArgs) -> anyhow::Result<()> {
    let criterion_dir = args
        .criterion_dir
        .clone()
        .unwrap_or_else(|| scenarios::results_dir().with_file_name("criterion"));
    let mode = if args.ratios {
        Mode::Ratio {
            reference: args.reference.clone(),
        }
    } else {
        Mode::Change
    };
    let outcome = match regress::compare(
        &criterion_dir,
        &args.baseline,
        &mode,
        args.threshold / 100.0,
    ) {
        Ok(outcome) => outcome,
        Err(
            error @ (RegressError::NoBaseline { .. }
            | RegressError::NoChange { .. }
            | RegressError::NoReference(_)
            | RegressError::NotCriterion),
        ) => {
            return Err(Exit::usage(error.to_string()).into());
        }
        Err(RegressError::Read(error)) => return Err(Exit::usage(error.to_string()).into()),
    };
    publish(&outcome, args.markdown.as_deref())
}

/// Prints a gate's table, also to `markdown` when given, and fails with exit code 1 when
/// anything regressed: the end of `regress` and of `compare` alike.
pub(crate) fn publish(outcome: &regress::Outcome, markdown: Option<&Path>) -> anyhow::Result<()> {
    let table = outcome.markdown();
    let mut stdout = io::stdout().lock();
    stdout.write_all(table.as_bytes())?;
    stdout.flush()?;
    if let Some(path) = markdown {
        std::fs::write(path, &table).with_context(|| format!("cannot write {}", path.display()))?;
    }
    if outcome.regressed() {
        return Err(Exit {
            code: 1,
            message: "confirmed regressions (see the table)".into(),
        }
        .into());
    }
    Ok(())
}

pub(crate) fn parse_percent(text: &str) -> Result<f64, String> {
    text.trim()
        .trim_end_matches('%')
        .parse::<f64>()
        .ok()
        .filter(|percent| percent.is_finite() && *percent >= 0.0)
        .ok_or_else(|| format!("{text:?} is not a percentage (try 5 or 5%)"))
}
