//! `concbench scenario io` at small sizes, through the binary: the backend checked alone,
//! every server's rows, and the structural lessons that hold by construction — a fixed
//! pool cannot have more than `workers` requests waiting, an iterative server one, a
//! thread per connection pays a thread per waiting request — with every answer right.

mod common;

use std::path::PathBuf;
use std::process::Command;

use scenarios::IoRow;

/// A scratch folder removed on drop, also when the test fails.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Self {
        let path = std::env::temp_dir().join(format!("concbench-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("scratch folder");
        Self(path)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

const WORKERS: f64 = 2.0;
const DELAY_S: f64 = 0.05;

#[test]
fn io_scenario_measures_every_server_against_littles_law() {
    let scratch = Scratch::new("io-scenario");
    let json = scratch.0.join("io.json");
    let output = Command::new(common::concbench_binary())
        .args([
            "scenario",
            "io",
            "--styles",
            "seq,threads,pool,tokio,evloop",
        ])
        .args([
            "--concurrency",
            "4,16",
            "--delay",
            "50ms",
            "--duration",
            "1s",
        ])
        .args(["--settle", "300ms", "--workers", "2", "--peers", "none"])
        .args(["--no-backend-check", "--seed", "7", "--json"])
        .arg(&json)
        // The scenario keeps its rows as the last run for `concbench report`: here, not
        // in the user's target folder.
        .env("CARGO_TARGET_DIR", &scratch.0)
        .output()
        .expect("run concbench");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{output:?}");
    assert!(stdout.contains("of ideal"), "{stdout}");
    let rows: Vec<IoRow> = scenarios::read_rows_file(&json).expect("rows");
    assert!(scratch.0.join("concbench/io.json").is_file());

    let row = |style: &str, concurrency: usize| -> &IoRow {
        rows.iter()
            .find(|row| row.style == style && row.concurrency == concurrency)
            .unwrap_or_else(|| panic!("no row for {style} at C = {concurrency}: {rows:?}"))
    };
    for concurrency in [4, 16] {
        let ideal = concurrency as f64 / DELAY_S;
        for style in ["backend", "seq", "threads", "pool", "tokio", "evloop"] {
            let row = row(style, concurrency);
            assert_eq!(row.errors, 0, "{row:?}");
            assert!(row.requests > 0, "{row:?}");
            assert!((row.ideal_rps - ideal).abs() < 1e-6, "{row:?}");
            assert!((row.efficiency - row.rps / ideal).abs() < 1e-9, "{row:?}");
            // Nothing can beat Little's law: every request takes the backend's delay.
            assert!(row.rps <= ideal * 1.05, "{row:?}");
            assert!(row.p50_us.is_some_and(|p50| p50 >= 50_000), "{row:?}");
        }
        // One connection at a time: at most one request waits.
        assert!(row("seq", concurrency).rps <= 1.1 / DELAY_S, "{rows:?}");
        // `workers` pool threads each block on the backend: at most that many wait.
        assert!(
            row("pool", concurrency).rps <= 1.1 * WORKERS / DELAY_S,
            "{rows:?}"
        );
        // A thread per connection: a thread per waiting request.
        let threads = row("threads", concurrency).server_threads.expect("threads");
        assert!(threads >= concurrency as u64, "{rows:?}");
        // The async styles hold every waiting request on their few threads.
        for style in ["tokio", "evloop"] {
            let threads = row(style, concurrency).server_threads.expect("threads");
            assert!(threads <= 4, "{style}: {threads} threads");
        }
    }
    // At 16 in flight the pool and seq are capped below what the others reach.
    assert!(row("pool", 16).rps < row("tokio", 16).rps, "{rows:?}");
    assert!(row("seq", 16).rps < row("pool", 16).rps, "{rows:?}");
}

#[test]
fn io_scenario_refuses_bad_options() {
    for args in [
        &["scenario", "io", "--concurrency", "0"][..],
        &["scenario", "io", "--delay", "0ms"][..],
    ] {
        let output = Command::new(common::concbench_binary())
            .args(args)
            .output()
            .expect("run concbench");
        assert!(!output.status.success(), "{args:?}: {output:?}");
        assert!(!output.stderr.is_empty(), "{args:?}");
    }
}
