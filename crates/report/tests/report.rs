//! `concbench report` on small fixture directories: parsing, ratios, missing and corrupt
//! inputs, and the files written.

use std::path::{Path, PathBuf};

use report::{CSV_COLUMNS, Inputs, MachineInfo, ReportError};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn inputs(criterion: &str, scenarios: &str) -> Inputs {
    Inputs {
        criterion_dir: fixture(criterion),
        scenarios_dir: fixture(scenarios),
        baseline: "seq".into(),
        single_threaded: vec!["seq".into(), "evloop".into()],
    }
}

/// A fresh, empty output directory for one test.
fn out_dir(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("concbench-report-{}-{test}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn machine(loaded: &report::Loaded) -> MachineInfo {
    report::describe_machine(loaded, Path::new("."), "concbench report".into())
}

#[test]
fn parses_every_benchmark_of_the_criterion_directory() {
    let benchmarks = report::criterion::read_benchmarks(&fixture("criterion")).expect("read");
    let ids: Vec<String> = benchmarks.iter().map(|benchmark| benchmark.id()).collect();
    assert_eq!(
        ids,
        [
            "fib_batch/evloop/64x27",
            "fib_batch/rayon/64x27",
            "fib_batch/seq/64x27",
            "spawn/seq/100",
            "spawn/tokio/100",
            "throughput/evloop/c32",
            "throughput/threads/c32",
        ]
    );
    let rayon = &benchmarks[1];
    assert_eq!(rayon.median.point, 15e6);
    assert!(rayon.median.lower < rayon.median.point && rayon.median.point < rayon.median.upper);
    assert_eq!(rayon.median.confidence, 0.95);
    assert_eq!(rayon.elements, Some(64));
}

#[test]
fn writes_a_complete_report() {
    let inputs = inputs("criterion", "scenarios");
    let loaded = report::load(&inputs).expect("load");
    let out = out_dir("complete");
    let written = report::write(&inputs, &loaded, &machine(&loaded), &out).expect("write");
    for file in [
        "summary.md",
        "results.csv",
        "machine.json",
        "fib_batch.svg",
        "spawn.svg",
        "throughput.svg",
        "hog_latency_p99.svg",
        "bytes_per_task.svg",
        "beazley.json",
        "tasks.json",
    ] {
        assert!(
            written.files.iter().any(|written| written == file),
            "{file} missing: {:?}",
            written.files
        );
        assert!(written.folder.join(file).is_file(), "{file} not on disk");
    }
    let summary = std::fs::read_to_string(written.folder.join("summary.md")).expect("summary");
    // Ratios: rayon is twice seq's speed, evloop slightly slower; network rows are to the best.
    assert!(
        summary.contains("| `rayon` | 64x27 | 15.00 ms |"),
        "{summary}"
    );
    assert!(summary.contains("| 2.00× |"), "{summary}");
    assert!(
        summary.contains("| `threads` | c32 | 25.00 ms |") && summary.contains("| 0.50× |"),
        "{summary}"
    );
    // The Beazley table, with the redis ceiling ratio, and the task table.
    assert!(summary.contains("Best server at 32 connections / `redis-server` `PING` through the same client: **0.97×**"), "{summary}");
    // The load generator checked against redis-benchmark, at every connection count.
    assert!(
        summary.contains(
            "1 connection(s): 16600 against 17000 req/s, **0.98×**; \
             32 connection(s): 160000 against 160000 req/s, **1.00×**"
        ),
        "{summary}"
    );
    // Rust against Python: by rate, by server CPU, and by the CPU in user space alone.
    for comparison in [
        "Best Rust server (`evloop`) / best python server (`python-asyncio`) at 32 connections: **3.12×** the rate.",
        "Least server CPU per reply: `evloop` 6.0 µs, `python-asyncio` 15.0 µs: **2.5×** less in Rust.",
        "`evloop` 1.5 µs, `python-asyncio` 9.0 µs: **6.0×** less in Rust.",
        "| `python-asyncio` | python | 12000 | 600.0 µs | 50000 | 600.0 µs | 0.32× | 15.0 µs | 9.0 µs | no reply |",
    ] {
        assert!(
            summary.contains(comparison),
            "{comparison} missing: {summary}"
        );
    }
    assert!(
        summary.contains("| `tokio` | tasks | 1000000 |"),
        "{summary}"
    );
    assert!(summary.contains("above 16382 threads"), "{summary}");
    // How it was produced, and relative links only.
    assert!(
        summary.contains("cargo bench --bench cpu")
            && summary.contains("concbench scenario beazley"),
        "{summary}"
    );
    assert!(
        summary.contains("](fib_batch.svg)") && !summary.contains("](/"),
        "{summary}"
    );
    let machine: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(written.folder.join("machine.json")).expect("machine.json"),
    )
    .expect("machine.json is JSON");
    for field in [
        "cpu_model",
        "logical_cpus",
        "memory_bytes",
        "kernel",
        "rustc",
        "criterion_version",
        "date",
        "commands",
    ] {
        assert!(!machine[field].is_null(), "machine.json lacks {field}");
    }
    // The scenarios' rows come along unchanged.
    let copied: Vec<scenarios::BeazleyRow> = serde_json::from_str(
        &std::fs::read_to_string(written.folder.join("beazley.json")).expect("beazley.json"),
    )
    .expect("beazley.json parses");
    assert_eq!(Some(copied), loaded.beazley);
    let _ = std::fs::remove_dir_all(out);
}

#[test]
fn the_csv_has_one_row_per_benchmark_and_the_documented_columns() {
    let inputs = inputs("criterion", "scenarios");
    let loaded = report::load(&inputs).expect("load");
    let out = out_dir("csv");
    let written = report::write(&inputs, &loaded, &machine(&loaded), &out).expect("write");
    let mut reader = csv::Reader::from_path(written.folder.join("results.csv")).expect("csv");
    let header: Vec<String> = reader
        .headers()
        .expect("header")
        .iter()
        .map(str::to_owned)
        .collect();
    assert_eq!(header, CSV_COLUMNS);
    let records: Vec<csv::StringRecord> =
        reader.records().collect::<Result<_, _>>().expect("records");
    assert_eq!(records.len(), loaded.benchmarks.len());
    let tokio = records
        .iter()
        .find(|record| &record[1] == "tokio")
        .expect("tokio row");
    assert_eq!(&tokio[0], "spawn");
    // 100 units in 40 µs: 2.5 million per second; seq's calls are 40 times faster.
    assert_eq!(&tokio[10], "2500000.0");
    assert_eq!(&tokio[7], "0.0250");
    assert_eq!(&tokio[8], "baseline");
    let _ = std::fs::remove_dir_all(out);
}

#[test]
fn missing_inputs_are_lines_in_the_summary_not_failures() {
    let inputs = inputs("no-such-criterion-dir", "no-such-scenarios-dir");
    let loaded = report::load(&inputs).expect("missing inputs are not errors");
    assert!(loaded.benchmarks.is_empty() && loaded.beazley.is_none() && loaded.tasks.is_none());
    let out = out_dir("missing");
    let written = report::write(&inputs, &loaded, &machine(&loaded), &out).expect("write");
    let summary = std::fs::read_to_string(written.folder.join("summary.md")).expect("summary");
    assert!(summary.contains("No criterion results"), "{summary}");
    assert!(
        summary.contains("run `concbench scenario beazley` first"),
        "{summary}"
    );
    assert!(
        summary.contains("run `concbench scenario tasks` first"),
        "{summary}"
    );
    assert!(written.folder.join("results.csv").is_file());
    let _ = std::fs::remove_dir_all(out);
}

#[test]
fn corrupt_or_foreign_files_are_errors_naming_the_file() {
    for (criterion, scenarios, file) in [
        ("criterion-corrupt", "scenarios", "estimates.json"),
        ("criterion-foreign", "scenarios", "benchmark.json"),
        ("criterion", "scenarios-corrupt", "beazley.json"),
    ] {
        let error = report::load(&inputs(criterion, scenarios)).expect_err("must fail");
        assert!(matches!(error, ReportError::Parse { .. }), "{error:?}");
        assert!(
            error.to_string().contains(file),
            "{criterion}/{scenarios}: {error}"
        );
    }
}
