//! `concbench`: the command line of the paired concurrency benchmarks.
//!
//! Each subcommand lives in its own module under `cli/`; this file only parses the
//! command line, runs the chosen subcommand and turns its error into one line on
//! stderr and an exit code: 2 for usage errors and unusable input, 1 for everything
//! else (a failed gate, a broken server).

#![forbid(unsafe_code)]

mod cli;

use std::io::{self, Write};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Paired concurrency benchmarks: the same workloads in every Rust concurrency style.
#[derive(Debug, Parser)]
#[command(name = "concbench", version, about, long_about = None)]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print the style × workload matrix, with the reason for every n/a cell.
    List(cli::list::ListArgs),
    /// Run one style's fib server until SIGINT or SIGTERM.
    Serve(cli::serve::ServeArgs),
    /// Run the slow backend that answers `wait N` requests, until SIGINT or SIGTERM.
    Backend(cli::backend::BackendArgs),
    /// Drive a server with load and report its rate and latency percentiles.
    Load(cli::load::LoadArgs),
    /// Run a scenario criterion cannot express (servers in child processes, task costs).
    Scenario(cli::scenario::ScenarioArgs),
    /// Build reports/<date>-<host>/ from the last benches and scenarios.
    Report(cli::report::ReportArgs),
    /// Gate CI on confirmed regressions against a criterion baseline (exit 1 if any).
    Regress(cli::regress::RegressArgs),
    /// Paired ratios of every style to a reference, in shuffled rounds of worker processes.
    Measure(cli::measure::MeasureArgs),
    /// Gate CI on two builds measured side by side, base and head alternating (exit 1 on a regression).
    Compare(cli::compare::CompareArgs),
    /// Serve one benchmark to the measurement engine on stdin/stdout (started by it).
    #[command(name = measure::process::WORKER_SUBCOMMAND, hide = true)]
    MeasureWorker(cli::measure::WorkerArgs),
    /// Measure one (style, N) of the tasks scenario and print it as JSON (started by it).
    #[command(hide = true)]
    TasksProbe(cli::tasks_probe::TasksProbeArgs),
    /// Serve worker-process requests on stdin/stdout (started by the process style).
    #[command(name = catalog::WORKER_SUBCOMMAND, hide = true)]
    Worker,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let result = match args.command {
        Command::List(list_args) => cli::list::run(&list_args),
        Command::Serve(serve_args) => cli::serve::run(&serve_args),
        Command::Backend(backend_args) => cli::backend::run(&backend_args),
        Command::Load(load_args) => cli::load::run(&load_args),
        Command::Scenario(scenario_args) => cli::scenario::run(&scenario_args),
        Command::Report(report_args) => cli::report::run(&report_args),
        Command::Regress(regress_args) => cli::regress::run(&regress_args),
        Command::Measure(measure_args) => cli::measure::run(&measure_args),
        Command::Compare(compare_args) => cli::compare::run(&compare_args),
        Command::MeasureWorker(worker_args) => cli::measure::run_worker(&worker_args),
        Command::TasksProbe(probe_args) => cli::tasks_probe::run(&probe_args),
        Command::Worker => style_process::run_worker(io::stdin().lock(), io::stdout().lock())
            .map_err(anyhow::Error::from),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) if is_broken_pipe(&error) => ExitCode::SUCCESS,
        Err(error) if error.is::<cli::Exit>() => {
            let code = error
                .downcast_ref::<cli::Exit>()
                .map_or(1, |exit| exit.code);
            let _ = writeln!(io::stderr(), "concbench: {error}");
            ExitCode::from(code)
        }
        Err(error) => {
            let _ = writeln!(io::stderr(), "concbench: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// Whether the error is a closed stdout (`concbench list | head`), which is not an error.
fn is_broken_pipe(error: &anyhow::Error) -> bool {
    error
        .downcast_ref::<io::Error>()
        .is_some_and(|error| error.kind() == io::ErrorKind::BrokenPipe)
}
