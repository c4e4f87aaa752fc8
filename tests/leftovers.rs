//! What a style leaves behind in a process that `cargo bench` shares between styles.
//!
//! criterion measures every style in one bench process, one after another. Some styles
//! cannot take everything with them when they are dropped: async-std's global executor
//! and the `async-io` reactor it shares with smol live as long as the process. This test
//! runs every style's task and CPU workloads in one process, in the catalog's order (the
//! benches' order), drops each, and then checks that what is left uses no CPU while the
//! process idles, so it cannot slow the styles measured after it. (The measurement
//! engine, whose numbers the reports quote, runs every style in a process of its own.)
//!
//! This file holds one test, so nothing else runs in its process while it measures.

mod common;

use std::time::Duration;

use workloads::{Style, Support, Workload};

/// CPU time of this whole process (every thread), in clock ticks.
fn process_ticks() -> u64 {
    measure::cpu::stat_ticks(std::process::id()).expect("this process's /proc stat")
}

fn exercise(style: &dyn Style, supports: impl Fn(Workload) -> bool, name: &str) {
    let inputs = [18u32; 8];
    if supports(Workload::FibBatch) {
        let answers = style.fib_batch(&inputs).expect("fib_batch");
        assert_eq!(answers, [2584u64; 8], "{name}");
    }
    if supports(Workload::Spawn) {
        assert_eq!(style.spawn(50).expect("spawn").len(), 50, "{name}");
    }
    if supports(Workload::PingPong) {
        let observed = style.ping_pong(50).expect("ping_pong");
        assert_eq!(
            workloads::tasks::check_ping_pong(50, &observed),
            Ok(()),
            "{name}"
        );
    }
    if supports(Workload::Sleepers) {
        let observed = style
            .sleepers(20, Duration::from_millis(2))
            .expect("sleepers");
        assert_eq!(
            workloads::tasks::check_sleepers(20, &observed),
            Ok(()),
            "{name}"
        );
    }
}

#[test]
fn what_every_style_leaves_behind_idles() {
    let config = common::style_config();
    for entry in catalog::STYLES {
        let supports = |workload| (entry.support)(workload) == Support::Runs;
        if !supports(Workload::FibBatch) && !supports(Workload::Spawn) {
            // Server-only variants: their executors are their base style's.
            continue;
        }
        let style = (entry.build)(&config).expect("builds");
        exercise(&*style, supports, entry.name);
        drop(style);
    }
    // Let runtimes park their threads after their last task (tokio and async-io keep
    // a thread awake for a few milliseconds).
    std::thread::sleep(Duration::from_millis(300));
    let before = process_ticks();
    std::thread::sleep(Duration::from_secs(1));
    let used = process_ticks() - before;
    // 100 ticks a second per busy core: one spinning leftover would show 100 here.
    assert!(
        used <= 3,
        "threads left behind by the styles used {used} clock ticks in one idle second"
    );
}
