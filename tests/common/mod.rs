//! Helpers shared by the integration tests.

#![allow(dead_code, unreachable_pub)] // each test binary uses a different subset

use std::num::NonZeroUsize;

use workloads::StyleConfig;

/// The worker count the tests give every style: more than this machine's two cores and
/// not a power of two, so chunking remainders and oversubscription are exercised.
pub const TEST_WORKERS: usize = 3;

/// The configuration every style is built from in the tests.
pub fn style_config() -> StyleConfig {
    let workers = NonZeroUsize::new(TEST_WORKERS).expect("nonzero");
    StyleConfig::new(workers)
        .with_worker_command(catalog::worker_command(concbench_binary().as_ref()))
}

/// The path of the `concbench` binary that cargo built for these tests.
pub fn concbench_binary() -> &'static str {
    env!("CARGO_BIN_EXE_concbench")
}

/// Whether `pid` is a live or zombie child of this test process.
pub fn is_our_child(pid: u32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // The command name (field 2) may contain spaces; the fields after its ')' are fixed.
    let after_name = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let parent: Option<u32> = after_name
        .split_whitespace()
        .nth(1)
        .and_then(|ppid| ppid.parse().ok());
    parent == Some(std::process::id())
}
