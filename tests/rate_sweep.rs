//! `concbench scenario rate-sweep` at a small size: each server's maximum, then open-loop
//! phases at fractions of it, every phase's histogram written as an `.hgrm` file that
//! HdrHistogram's text format reader (`loadgen::hgrm`) reads back with the row's counts.

mod common;

use std::process::Command;

#[test]
fn rate_sweep_offers_fractions_of_each_maximum_and_writes_readable_hgrm_files() {
    let dir = std::env::temp_dir().join(format!("concbench-rate-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    let json = dir.join("rows.json");
    let hgrm = dir.join("hgrm");
    let output = Command::new(common::concbench_binary())
        .args(["scenario", "rate-sweep", "--styles", "tokio,threads"])
        .args(["--fractions", "10,50", "--connections", "4"])
        .args(["--duration", "500ms", "--peers", "none", "--seed", "3"])
        .arg("--hgrm")
        .arg(&hgrm)
        .arg("--json")
        .arg(&json)
        .env("CARGO_TARGET_DIR", &dir)
        .output()
        .expect("run concbench");
    let table = String::from_utf8_lossy(&output.stdout).into_owned();
    let outcome = || {
        assert!(output.status.success(), "{output:?}");
        let rows: Vec<scenarios::RateRow> = scenarios::read_rows_file(&json).expect("JSON rows");
        assert_eq!(rows.len(), 4, "{rows:#?}");
        for style in ["tokio", "threads"] {
            let of: Vec<&scenarios::RateRow> =
                rows.iter().filter(|row| row.style == style).collect();
            // In fraction order, both of one maximum.
            assert_eq!(
                of.iter().map(|row| row.fraction).collect::<Vec<_>>(),
                [0.1, 0.5],
                "{of:#?}"
            );
            for row in &of {
                assert!(row.max_rps > 0.0, "{row:?}");
                assert_eq!(row.max_rps, of[0].max_rps, "{of:#?}");
                assert!(
                    (row.offered_rps - row.fraction * row.max_rps).abs() < 1e-6,
                    "{row:?}"
                );
                // Far below the maximum, every request that fell due is answered, right.
                assert_eq!(row.errors, 0, "{row:?}");
                assert!(row.answered > 0 && row.answered <= row.due, "{row:?}");
                assert!(row.p50_us.is_some() && row.p99_us >= row.p50_us, "{row:?}");
                let file = hgrm.join(format!(
                    "{style}-{}.hgrm",
                    scenarios::rate_sweep::percent(row.fraction)
                ));
                let text = std::fs::read_to_string(&file)
                    .unwrap_or_else(|error| panic!("{}: {error}", file.display()));
                let distribution = loadgen::hgrm::parse_percentile_distribution(&text)
                    .unwrap_or_else(|error| panic!("{}: {error}", file.display()));
                // Every latency of the phase is in the file: answered ones and the lower
                // bounds of those never answered.
                assert_eq!(
                    distribution.total_count,
                    row.answered + row.latency_lower_bounds,
                    "{}: {row:?}",
                    file.display()
                );
                // Milliseconds: the row's p99 (µs) lies between the file's rows on either
                // side of the 99th percentile (the file has a row per tick, not one at
                // exactly 0.99), within the histogram's precision.
                let row_p99_ms = row.p99_us.expect("p99") as f64 / 1000.0;
                let below = distribution
                    .rows
                    .iter()
                    .rfind(|(_, percentile, _)| *percentile < 0.99)
                    .map_or(0.0, |(value, _, _)| *value);
                let above = distribution
                    .value_at_quantile(0.99)
                    .expect("a row past p99");
                assert!(
                    below * 0.999 <= row_p99_ms && row_p99_ms <= above * 1.001,
                    "{}: p99 {row_p99_ms} ms outside the file's {below}..{above} ms",
                    file.display()
                );
            }
        }
        assert!(table.contains("knee"), "{table}");
    };
    let result = std::panic::catch_unwind(outcome);
    let _ = std::fs::remove_dir_all(&dir);
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
}
