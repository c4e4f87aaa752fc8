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

/// Removes its directories when dropped: at the end of a test, also a failing one.
struct Cleanup(Vec<PathBuf>);

impl Drop for Cleanup {
    fn drop(&mut self) {
        for dir in &self.0 {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
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
        "bench-server.json",
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
    // The throughput bench beside the scenario: both rates and ranks, the bench's
    // spread per connection and CPU per request, and a client-bound row flagged.
    for line in [
        "| `threads` | 80000 | 96000 | 90000–100000 | 0.83 | 2 | 2 | 40–85 (even 62) | 9.0 µs on 2 thread(s) | 36 % / — | 11.0 µs |",
        "| `evloop` | 160000 | 156000 | — | 1.03 | 1 | 1 | 55–70 (even 62) | 11.5 µs on 2 thread(s) | 92 % / 62 % | 5.0 µs |",
        "> c=32: too few servers measured by both to compare rankings.",
        "> **Client-bound at c=32:** the client used more than 90 % of its threads' time against `evloop`",
    ] {
        assert!(summary.contains(line), "{line} missing: {summary}");
    }
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
        "| `python-asyncio` | python | 12000 | 600.0 µs | 50000 | 600.0 µs | 0.32× | 15.0 µs | 9.0 µs |\n",
        // The hog phases in a table of their own; a probe that got no reply is not 0 µs.
        "| server | hogs: probe p99 | answered / due |",
        "| `python-asyncio` | no reply | 0 / — |",
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

/// The fixture's scenarios plus a `measure.json` of the engine, in a temporary folder.
fn scenarios_with_engine_rows(test: &str, schema_version: u32) -> PathBuf {
    use measure::rows::{CohortRow, MeasureRun, NoiseGauge, StyleRow};
    use measure::stats::{Interval, StopReason, Stopping};
    let dir = out_dir(test).join("scenarios");
    std::fs::create_dir_all(&dir).expect("scenarios dir");
    for entry in std::fs::read_dir(fixture("scenarios")).expect("fixture") {
        let entry = entry.expect("entry");
        std::fs::copy(entry.path(), dir.join(entry.file_name())).expect("copy");
    }
    let interval = |(point, lower, upper): (f64, f64, f64)| Interval {
        point,
        lower,
        upper,
    };
    let style = |style: &str,
                 single_threaded,
                 speedup: Option<(f64, f64, f64)>,
                 efficiency: Option<(f64, f64, f64)>| StyleRow {
        style: style.into(),
        single_threaded,
        iterations_per_sample: 3,
        samples: 40,
        wall_ns: 2e7,
        cpu_ns: 3.9e7,
        cpu_per_wall: if single_threaded { 1.0 } else { 1.95 },
        speedup: speedup.map(interval),
        efficiency: efficiency.map(interval),
    };
    let run = MeasureRun {
        schema_version,
        command: "concbench measure --groups fib_batch".into(),
        seed: 17,
        workers: 2,
        stopping: Stopping::default(),
        sample_target_ms: 90.0,
        address_layout: "fixed".into(),
        recorded_at: 1,
        cohorts: vec![CohortRow {
            group: "fib_batch".into(),
            parameter: "64x27".into(),
            reference: "seq".into(),
            rounds: 40,
            stop: StopReason::Budget,
            elapsed_s: 88.0,
            styles: vec![
                style("seq", true, None, Some((0.512, 0.503, 0.521))),
                style(
                    "evloop",
                    true,
                    Some((0.988, 0.975, 1.001)),
                    Some((0.506, 0.497, 0.515)),
                ),
                style(
                    "rayon",
                    false,
                    Some((1.912, 1.880, 1.950)),
                    Some((0.981, 0.962, 0.999)),
                ),
                style(
                    "tokio",
                    false,
                    Some((1.901, 1.870, 1.930)),
                    Some((0.973, 0.954, 0.991)),
                ),
            ],
            capacity: Some(style("capacity", false, Some((1.952, 1.903, 1.991)), None)),
            gauge: Some(NoiseGauge {
                replica: Some(interval((1.004, 0.995, 1.013))),
                spread: 0.004,
                widest_half_width: 0.009,
                styles: vec!["evloop".into()],
            }),
        }],
    };
    std::fs::write(
        dir.join(measure::rows::MEASURE_ROWS),
        serde_json::to_string(&run).expect("json"),
    )
    .expect("write measure.json");
    dir
}

#[test]
fn the_engines_paired_speedups_take_the_ratio_columns() {
    let _cleanup = Cleanup(
        ["engine", "engine-out", "engine-foreign"]
            .map(out_dir)
            .to_vec(),
    );
    let scenarios = scenarios_with_engine_rows("engine", measure::rows::SCHEMA_VERSION);
    let engine_inputs = Inputs {
        scenarios_dir: scenarios.clone(),
        ..inputs("criterion", "scenarios")
    };
    let loaded = report::load(&engine_inputs).expect("load");
    let out = out_dir("engine-out");
    let written = report::write(&engine_inputs, &loaded, &machine(&loaded), &out).expect("write");
    assert!(written.files.iter().any(|file| file == "measure.json"));
    let summary = std::fs::read_to_string(written.folder.join("summary.md")).expect("summary");
    // criterion's median beside the engine's speedup; the reference says so.
    for cell in [
        "| `rayon` | 64x27 | 1.91× (1.88–1.95) | 98 % (96–100) | 1.95 | 15.00 ms |",
        "| `seq` | 64x27 | 1.00× (reference) | 51 % (50–52) | 1.00 |",
        // Measured by the engine only: criterion's columns are empty.
        "| `tokio` | 64x27 | 1.90× (1.87–1.93) | 97 % (95–99) | 1.95 | — | — | |",
        // The instrument has its own row, with no efficiency against itself.
        "| `capacity` | 64x27 | 1.95× (1.90–1.99) | — | 1.95 | — | — | |",
        "ran 1.95× (1.90–1.99) faster than `seq` in the same rounds",
        "> Noise gauge (paired): `seq` against a second worker process of itself, 1.004× (0.995–1.013), \
         0.4 % from the ideal 1.00: differences between styles within that are noise.",
        "(`evloop` 0.988×)",
        "`concbench measure --groups fib_batch`",
    ] {
        assert!(summary.contains(cell), "{cell} missing:\n{summary}");
    }
    // criterion's own gauge gives way to the engine's in the groups the engine measured;
    // groups it did not measure keep criterion's ratios.
    assert!(!summary.contains("their medians are"), "{summary}");
    assert!(summary.contains("| `tokio` | 100 |"), "{summary}");
    let mut csv = csv::Reader::from_path(written.folder.join("results.csv")).expect("csv");
    let rayon = csv
        .records()
        .map(|record| record.expect("record"))
        .find(|record| &record[0] == "fib_batch" && &record[1] == "rayon")
        .expect("rayon row");
    assert_eq!(
        (&rayon[11], &rayon[12], &rayon[13]),
        ("1.9120", "1.8800", "1.9500")
    );
    assert_eq!(
        (&rayon[14], &rayon[15], &rayon[16], &rayon[17]),
        ("0.9810", "0.9620", "0.9990", "1.950")
    );

    let foreign = scenarios_with_engine_rows("engine-foreign", 999);
    let error = report::load(&Inputs {
        scenarios_dir: foreign,
        ..inputs("criterion", "scenarios")
    })
    .expect_err("another schema version");
    assert!(
        error.to_string().contains("schema version Some(999)"),
        "{error}"
    );
}
