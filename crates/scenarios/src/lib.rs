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
pub mod cpus;
pub mod io;
pub mod procfs;
pub mod rate_sweep;
mod rows;
pub mod tasks;

pub use child::{
    BoundedOutput, ChildRegistry, CpuTime, FREE_PORT, ReadyBy, ServerChild, ServerCommand,
    TrackedChild, run_bounded,
};
pub use rows::{
    BeazleyRow, ConnectionsRow, IoRow, Phase, RateRow, RunMeta, THROUGHPUT_BENCH_ROWS, TaskRow,
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

/// The schema version of every row file the scenarios and benches write
/// (`beazley.json`, `tasks.json`, `connections.json`, `io.json`, `bench-server.json`,
/// and each `--json FILE`): an envelope `{ "schema_version": 1, "rows": [...] }`.
/// Files written before it are bare arrays of rows, version 0; [`read_rows`] reads both.
pub const ROW_SCHEMA_VERSION: u32 = 1;

/// A row file's envelope: [`ROW_SCHEMA_VERSION`] and the rows.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RowFile<R> {
    /// [`ROW_SCHEMA_VERSION`].
    pub schema_version: u32,
    /// The rows, in the order measured.
    pub rows: R,
}

/// `rows` as a row file's text: the envelope, pretty-printed, with a final newline. The
/// one place a row file's layout is decided.
pub fn rows_json(rows: &impl serde::Serialize) -> serde_json::Result<String> {
    let file = RowFile {
        schema_version: ROW_SCHEMA_VERSION,
        rows,
    };
    Ok(serde_json::to_string_pretty(&file)? + "\n")
}

/// Writes `rows` to `path` as a row file ([`rows_json`]).
pub fn write_rows(path: &std::path::Path, rows: &impl serde::Serialize) -> std::io::Result<()> {
    std::fs::write(path, rows_json(rows).map_err(std::io::Error::other)?)
}

/// Reads a row file's text: the envelope of [`ROW_SCHEMA_VERSION`], or a bare array of
/// rows (files written before the envelope, version 0). Another version, or anything
/// else, is an error that says what it found.
pub fn read_rows<T: serde::de::DeserializeOwned>(text: &str) -> Result<Vec<T>, String> {
    let value: serde_json::Value = serde_json::from_str(text).map_err(|error| error.to_string())?;
    let rows = match value {
        serde_json::Value::Array(_) => value,
        serde_json::Value::Object(mut object) => {
            let version = object
                .get("schema_version")
                .and_then(serde_json::Value::as_u64);
            if version != Some(u64::from(ROW_SCHEMA_VERSION)) {
                return Err(format!(
                    "row file schema version {}; this build reads version {ROW_SCHEMA_VERSION} \
                     and bare arrays (version 0)",
                    version.map_or_else(|| "missing".to_owned(), |version| version.to_string())
                ));
            }
            object
                .remove("rows")
                .ok_or_else(|| "a row file without `rows`".to_owned())?
        }
        _ => return Err("neither a row file nor an array of rows".to_owned()),
    };
    serde_json::from_value(rows).map_err(|error| error.to_string())
}

/// [`read_rows`] on the file at `path`; a malformed file is `InvalidData`, naming it.
pub fn read_rows_file<T: serde::de::DeserializeOwned>(
    path: &std::path::Path,
) -> std::io::Result<Vec<T>> {
    let text = std::fs::read_to_string(path)?;
    read_rows(&text).map_err(|message| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("{}: {message}", path.display()),
        )
    })
}

/// Saves a run's record as `<results_dir>/<name>.meta.json`, and its rows, when given,
/// as the row file `<results_dir>/<name>.json` ([`write_rows`]): the "last run" that
/// `concbench report` reads.
pub fn save_run(
    name: &str,
    meta: &RunMeta,
    rows: Option<&impl serde::Serialize>,
) -> std::io::Result<()> {
    let directory = results_dir();
    std::fs::create_dir_all(&directory)?;
    if let Some(rows) = rows {
        write_rows(&directory.join(format!("{name}.json")), rows)?;
    }
    write_meta(&directory, name, meta)
}

/// [`save_run`] for a file that carries its own schema version (`measure.json`,
/// [`measure`'s `MeasureFile`]): `value` is written as it is, not as a row file.
pub fn save_run_file(
    name: &str,
    meta: &RunMeta,
    value: Option<&impl serde::Serialize>,
) -> std::io::Result<()> {
    let directory = results_dir();
    std::fs::create_dir_all(&directory)?;
    if let Some(value) = value {
        let json = serde_json::to_string_pretty(value).map_err(std::io::Error::other)?;
        std::fs::write(directory.join(format!("{name}.json")), json + "\n")?;
    }
    write_meta(&directory, name, meta)
}

fn write_meta(directory: &std::path::Path, name: &str, meta: &RunMeta) -> std::io::Result<()> {
    let json = serde_json::to_string_pretty(meta).map_err(std::io::Error::other)?;
    std::fs::write(directory.join(format!("{name}.meta.json")), json + "\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn row_files_are_envelopes_and_bare_arrays_still_read() {
        let rows = vec![
            serde_json::json!({"style": "seq"}),
            serde_json::json!({"style": "rayon"}),
        ];
        let text = rows_json(&rows).expect("serializes");
        let value: serde_json::Value = serde_json::from_str(&text).expect("JSON");
        assert_eq!(value["schema_version"], ROW_SCHEMA_VERSION);
        assert_eq!(read_rows::<serde_json::Value>(&text), Ok(rows.clone()));
        let bare = serde_json::to_string(&rows).expect("serializes");
        assert_eq!(read_rows::<serde_json::Value>(&bare), Ok(rows));
        let error =
            read_rows::<serde_json::Value>(r#"{"schema_version": 2, "rows": []}"#).unwrap_err();
        assert!(error.contains("schema version 2"), "{error}");
        assert!(read_rows::<serde_json::Value>(r#"{"schema_version": 1}"#).is_err());
        assert!(read_rows::<serde_json::Value>("3").is_err());
    }
}
