//! Every style, in matrix order. The only crate that depends on all style crates, so
//! that the CLI, the benches and the tests iterate one list instead of naming styles.

#![forbid(unsafe_code)]

use std::path::Path;

use workloads::{StyleEntry, WorkerCommand};

/// Every style and variant, in the order of the matrix's rows: the sequential baseline
/// first, then std-only styles, then the ecosystem's.
pub const STYLES: &[StyleEntry] = &[
    style_seq::ENTRY,
    style_threads::ENTRY,
    style_threads::ENTRY_STATIC,
    style_pool::ENTRY,
    style_process::ENTRY,
    style_evloop::ENTRY,
    style_evloop::ENTRY_OFFLOAD,
    style_rayon::ENTRY,
    style_crossbeam::ENTRY,
    style_tokio::ENTRY,
    style_tokio::ENTRY_CURRENT,
    style_tokio::ENTRY_OFFLOAD,
    style_async_std::ENTRY,
    style_async_std::ENTRY_OFFLOAD,
    style_smol::ENTRY,
    style_smol::ENTRY_OFFLOAD,
    style_compio::ENTRY,
    style_compio::ENTRY_OFFLOAD,
    style_monoio::ENTRY,
    style_monoio::ENTRY_OFFLOAD,
];

/// The `concbench` subcommand that turns the binary into a worker process.
pub const WORKER_SUBCOMMAND: &str = "worker";

/// The command that starts `concbench_binary` as a worker process of the process style.
pub fn worker_command(concbench_binary: &Path) -> WorkerCommand {
    WorkerCommand {
        program: concbench_binary.to_path_buf(),
        args: vec![WORKER_SUBCOMMAND.into()],
    }
}

/// The name of the baseline style that ratios are computed against.
pub const BASELINE: &str = "seq";

/// The entry named `name`, if there is one.
pub fn find(name: &str) -> Option<&'static StyleEntry> {
    STYLES.iter().find(|entry| entry.name == name)
}

/// Every style's name, in matrix order.
pub fn names() -> impl Iterator<Item = &'static str> {
    STYLES.iter().map(|entry| entry.name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_the_baseline_is_listed() {
        let mut names: Vec<_> = names().collect();
        names.sort_unstable();
        let count = names.len();
        names.dedup();
        assert_eq!(names.len(), count, "duplicate style names");
        assert!(find(BASELINE).is_some());
        assert!(find("no-such-style").is_none());
    }
}
