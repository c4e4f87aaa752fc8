//! `concbench compare`: the CI gate on two builds, measured side by side.

use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use measure::process;

use super::Exit;
use super::measure::{RoundProgress, StoppingArgs, engine_error};

/// Options of `concbench compare`.
#[derive(Debug, clap::Args)]
pub(crate) struct CompareArgs {
    /// The base build's `concbench` binary.
    #[arg(long)]
    base: PathBuf,
    /// The head build's `concbench` binary.
    #[arg(long)]
    head: PathBuf,
    /// Groups to compare, comma-separated: group names, or `cpu` and `tasks`.
    #[arg(long, default_value = "cpu")]
    groups: String,
    /// A benchmark regressed when its whole 95 % interval is above +this many percent
    /// (improved when wholly below −this).
    #[arg(long, default_value_t = 3.0, value_parser = super::regress::parse_percent)]
    threshold: f64,
    /// A short budget for pull requests: 60 s of rounds unless --budget says otherwise.
    #[arg(long)]
    quick: bool,
    #[command(flatten)]
    stopping: StoppingArgs,
    /// Workers per style [default: CONCBENCH_WORKERS, else the available cores].
    #[arg(long)]
    workers: Option<NonZeroUsize>,
    /// Also write the table to this file (markdown, for a pull-request comment).
    #[arg(long)]
    markdown: Option<PathBuf>,
    /// Also write the rows to this file (JSON, schema in `measure::rows`).
    #[arg(long)]
    json: Option<PathBuf>,
}

const COMPARE_BUDGET: Duration = Duration::from_secs(240);
const QUICK_BUDGET: Duration = Duration::from_secs(60);

pub(crate) fn run(args: &CompareArgs) -> anyhow::Result<()> {
    measure::suite::parse_groups(&args.groups).map_err(Exit::usage)?;
    let mut plan = args.stopping.plan(if args.quick {
        QUICK_BUDGET
    } else {
        COMPARE_BUDGET
    })?;
    plan.stopping.settle = Some(args.threshold / 100.0);
    let workers = match args.workers {
        Some(workers) => workers,
        None => workloads::StyleConfig::default_workers()?,
    };
    let program = |path: &PathBuf, side: &str| {
        process::program_at(path, workers)
            .map_err(|error| anyhow::Error::from(Exit::usage(format!("--{side}: {error}"))))
    };
    let base = program(&args.base, "base")?;
    let head = program(&args.head, "head")?;
    eprintln!(
        "comparing {} and {} on {}: {workers} workers per style, seed {}, target ±{:.1} %, budget {:?}",
        base.program.display(),
        head.program.display(),
        args.groups,
        plan.seed,
        plan.stopping.target * 100.0,
        plan.stopping.budget
    );
    let progress = RoundProgress::new("compare");
    let run = measure::compare(&base, &head, &args.groups, &plan, &mut |p| {
        progress.update(p)
    })
    .map_err(|error| engine_error("compare", error))?;
    progress.finish(&format!(
        "compare: {} rounds in {:.0} s, {}",
        run.rounds,
        run.elapsed_s,
        run.stop.describe()
    ));
    let outcome = regress::paired(&run, args.threshold / 100.0);
    // The rows first: a regression still leaves them for the job's artifacts.
    if let Some(path) = &args.json {
        let json = serde_json::to_string_pretty(&run)? + "\n";
        std::fs::write(path, json).with_context(|| format!("cannot write {}", path.display()))?;
    }
    super::regress::publish(&outcome, args.markdown.as_deref())
}
