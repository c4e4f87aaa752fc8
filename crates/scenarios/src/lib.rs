//! The scenarios that criterion cannot express, and the JSON rows they produce.
//!
//! - [`beazley`]: each style's server in a child process of its own, driven by the load
//!   generator: `fib(1)` throughput at several connection counts, then the latency of a
//!   `fib(1)` probe while other connections loop a long `fib(n)`.
//!
//! - [`io`]: requests each server answers by asking a slow backend, at rising
//!   concurrency, against the Little's-law ideal (the I/O-bound workload).
//!
//! - [`tasks`]: for each style and each N, a fresh child process holds N sleeping units
//!   and reports its wall times and the kernel's accounting of its memory.
//!
//! Child processes are held by [`ServerChild`], which kills and reaps its process when
//! dropped, and registers it with [`ChildRegistry`] so that a signal handler can kill
//! every child before the scenario process exits.

#![forbid(unsafe_code)]

pub mod beazley;
mod child;
pub mod connections;
pub mod io;
pub mod procfs;
mod rows;
pub mod tasks;

pub use child::{
    BoundedOutput, ChildRegistry, CpuTime, ReadyBy, ServerChild, ServerCommand, TrackedChild,
    run_bounded,
};
pub use rows::{
    BeazleyRow, ConnectionsRow, IoRow, Phase, RunMeta, THROUGHPUT_BENCH_ROWS, TaskRow,
    ThroughputBenchRow,
};

/// Why a scenario could not run.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    /// A server did not start.
    #[error("{name}: {message}")]
    ServerStart {
        /// The server's name.
        name: String,
        /// What went wrong, with whatever the server printed on stderr.
        message: String,
    },
    /// The load generator could not run.
    #[error("{name}: {source}")]
    Load {
        /// The server's name.
        name: String,
        /// The load generator's error.
        source: loadgen::LoadError,
    },
    /// A reference client (`redis-benchmark`) could not measure a server.
    #[error("{name}: {message}")]
    ReferenceClient {
        /// The server's name.
        name: String,
        /// What went wrong.
        message: String,
    },
}

/// Where runs keep their last results for `concbench report`: `$CARGO_TARGET_DIR/concbench`,
/// or `target/concbench` under the current directory.
pub fn results_dir() -> std::path::PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| "target".into(), std::path::PathBuf::from);
    target.join("concbench")
}

/// Saves a run's record as `<results_dir>/<name>.meta.json`, and its rows, when given,
/// as `<results_dir>/<name>.json`: the "last run" that `concbench report` reads.
pub fn save_run(
    name: &str,
    meta: &RunMeta,
    rows: Option<&impl serde::Serialize>,
) -> std::io::Result<()> {
    let directory = results_dir();
    std::fs::create_dir_all(&directory)?;
    let write = |file: String, value: serde_json::Result<String>| {
        std::fs::write(
            directory.join(file),
            value.map_err(std::io::Error::other)? + "\n",
        )
    };
    if let Some(rows) = rows {
        write(format!("{name}.json"), serde_json::to_string_pretty(rows))?;
    }
    write(
        format!("{name}.meta.json"),
        serde_json::to_string_pretty(meta),
    )
}
