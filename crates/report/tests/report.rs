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
        "cpu_frequency",
    ] {
        assert!(!machine[field].is_null(), "machine.json lacks {field}");
    }
    // Present, though the kernel (or the absent measure.json) may leave them null.
    for field in ["cpus_allowed_list", "engine"] {
        assert!(machine.get(field).is_some(), "machine.json lacks {field}");
    }
    assert!(
        machine["engine"].is_null(),
        "no measure.json, no engine settings"
    );
    // The scenarios' rows come along unchanged.
    let copied: Vec<scenarios::BeazleyRow> =
        scenarios::read_rows_file(&written.folder.join("beazley.json")).expect("beazley.json");
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
    // The connections and io scenarios: a heading, and the command that fills it.
    for line in [
        "## Many connections (C10K)\n\n_No connections rows in `",
        "connections.json`: run `concbench scenario connections` first._",
        "## Waiting on a backend (io_wait)\n\n_No io rows in `",
        "io.json`: run `concbench scenario io` first._",
    ] {
        assert!(summary.contains(line), "{line} missing: {summary}");
    }
    assert!(loaded.connections.is_none() && loaded.io.is_none());
    for absent in [
        "connections.json",
        "io.json",
        "connections_bytes.svg",
        "io_efficiency.svg",
    ] {
        assert!(
            !written.files.iter().any(|file| file == absent),
            "{absent} written without rows: {:?}",
            written.files
        );
    }
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

/// The engine's run of `fib_batch` at `workers` workers: the fixture's numbers, with
/// rayon's speedup and efficiency given.
fn engine_run(
    workers: usize,
    oversubscribed: bool,
    rayon: ((f64, f64, f64), (f64, f64, f64)),
) -> measure::rows::MeasureRun {
    use measure::rows::{CohortRow, MeasureRun, NoiseGauge, StyleRow};
    use measure::stats::{Interval, StopReason, Stopping};
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
    MeasureRun {
        schema_version: measure::rows::SCHEMA_VERSION,
        command: "concbench measure --groups fib_batch".into(),
        seed: 17,
        workers,
        oversubscribed,
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
                style("rayon", false, Some(rayon.0), Some(rayon.1)),
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
            not_attempted: Vec::new(),
        }],
    }
}

/// rayon at 2 workers on 2 cores, as the fixture has it.
const RAYON_AT_2: ((f64, f64, f64), (f64, f64, f64)) =
    ((1.912, 1.880, 1.950), (0.981, 0.962, 0.999));

/// The fixture's scenarios plus a `measure.json` of the engine, in a temporary folder:
/// one bare run at 2 workers (`schema_version` 2, or another to be refused).
fn scenarios_with_engine_rows(test: &str, schema_version: u32) -> PathBuf {
    let dir = copied_scenarios(test);
    let run = measure::rows::MeasureRun {
        schema_version,
        ..engine_run(2, false, RAYON_AT_2)
    };
    std::fs::write(
        dir.join(measure::rows::MEASURE_ROWS),
        serde_json::to_string(&run).expect("json"),
    )
    .expect("write measure.json");
    dir
}

/// The fixture's scenarios plus a version-3 `measure.json`: a sweep at 1, 2 and 4
/// (oversubscribed) workers on 2 cores.
fn scenarios_with_sweep(test: &str) -> PathBuf {
    let dir = copied_scenarios(test);
    let sweep = measure::rows::MeasureFile {
        schema_version: measure::rows::SCHEMA_VERSION,
        default_workers: 2,
        cores: 2,
        runs: vec![
            engine_run(2, false, RAYON_AT_2),
            engine_run(1, false, ((0.97, 0.95, 0.99), (0.96, 0.94, 0.98))),
            engine_run(4, true, ((1.8, 1.75, 1.85), (0.92, 0.9, 0.94))),
        ],
    };
    std::fs::write(
        dir.join(measure::rows::MEASURE_ROWS),
        serde_json::to_string_pretty(&sweep).expect("json"),
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
    // A version-2 file (one bare run) reads as a sweep of one.
    let scenarios = scenarios_with_engine_rows("engine", 2);
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
    // One worker count: no scaling chart, and the copy is a version-3 sweep of one.
    assert_eq!(loaded.sweep.as_ref().map(|sweep| sweep.runs.len()), Some(1));
    assert!(
        !written
            .files
            .iter()
            .any(|file| file.ends_with("_scaling.svg"))
    );
    let copy = std::fs::read_to_string(written.folder.join("measure.json")).expect("copy");
    let copy = measure::rows::MeasureFile::parse(&copy).expect("the copy parses");
    assert_eq!(copy.schema_version, 3);
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
        error.to_string().contains("schema version 999")
            && error.to_string().contains("measure.json"),
        "{error}"
    );
}

/// The fixture's scenarios copied into `out_dir(test)/scenarios`, for tests that add rows.
fn copied_scenarios(test: &str) -> PathBuf {
    let dir = out_dir(test).join("scenarios");
    std::fs::create_dir_all(&dir).expect("scenarios dir");
    for entry in std::fs::read_dir(fixture("scenarios")).expect("fixture") {
        let entry = entry.expect("entry");
        std::fs::copy(entry.path(), dir.join(entry.file_name())).expect("copy");
    }
    dir
}

/// Saves `rows` and their run record as `scenarios::save_run` does: `<name>.json` and
/// `<name>.meta.json`.
fn save_rows(dir: &Path, name: &str, rows: &impl serde::Serialize) {
    let meta = scenarios::RunMeta {
        command: format!("concbench scenario {name}"),
        workers: 2,
        recorded_at: 2,
    };
    for (file, json) in [
        // The envelope of today's files (the fixture's own rows are bare arrays, as older
        // reports wrote them).
        (
            format!("{name}.json"),
            scenarios::rows_json(rows).map(|json| json.trim_end().to_owned()),
        ),
        (
            format!("{name}.meta.json"),
            serde_json::to_string_pretty(&meta),
        ),
    ] {
        std::fs::write(dir.join(file), json.expect("json") + "\n").expect("write rows");
    }
}

fn connections_row(style: &str, connections: usize, bytes: f64) -> scenarios::ConnectionsRow {
    let idle: u64 = 6 << 20;
    scenarios::ConnectionsRow {
        style: style.into(),
        language: "rust".into(),
        connections,
        active: 8,
        established: connections,
        connect_ms: Some(connections as f64 / 10.0),
        idle_rss_bytes: Some(idle),
        rss_bytes: Some(idle + (bytes * connections as f64) as u64),
        bytes_per_connection: Some(bytes),
        server_threads: Some(if style == "threads" {
            connections as u64 + 2
        } else {
            1
        }),
        rps: 30_000.0,
        p50_us: Some(250),
        p99_us: Some(1_200),
        requests: 90_000,
        errors: 0,
        failed: 0,
        idle_answered: (connections as u64 - 8) * 3,
        idle_due: (connections as u64 - 8) * 3,
        not_attempted: None,
    }
}

fn io_row(style: &str, concurrency: usize, rps: f64) -> scenarios::IoRow {
    // A 50 ms backend: the ideal is 20 replies per second per connection.
    let ideal_rps = concurrency as f64 / 0.05;
    scenarios::IoRow {
        style: style.into(),
        language: "rust".into(),
        concurrency,
        delay_ms: 50.0,
        ideal_rps,
        rps,
        efficiency: rps / ideal_rps,
        p50_us: Some(50_400),
        p99_us: Some(52_000),
        max_us: Some(60_000),
        requests: (rps * 5.0) as u64,
        errors: 0,
        failed: 0,
        latency_lower_bounds: 0,
        server_threads: Some(3),
        rss_bytes: Some(8 << 20),
        server_cpu_us: Some(11.5),
        not_attempted: None,
    }
}

#[test]
fn the_connections_and_io_scenarios_get_sections_and_charts() {
    let _cleanup = Cleanup(["c10k", "c10k-out"].map(out_dir).to_vec());
    let scenarios_dir = copied_scenarios("c10k");
    let connections = vec![
        connections_row("threads", 100, 24_576.0),
        connections_row("evloop", 100, 1_536.0),
        connections_row("threads", 1_000, 20_480.0),
        connections_row("evloop", 1_000, 1_024.0),
        scenarios::ConnectionsRow {
            established: 0,
            connect_ms: None,
            idle_rss_bytes: None,
            rss_bytes: None,
            bytes_per_connection: None,
            server_threads: None,
            rps: 0.0,
            p50_us: None,
            p99_us: None,
            requests: 0,
            idle_answered: 0,
            idle_due: 0,
            not_attempted: Some("10002 threads are above the safe limit of 8000".into()),
            ..connections_row("threads", 10_000, 0.0)
        },
    ];
    let io = vec![
        io_row("backend", 10, 198.0),
        io_row("backend", 100, 1_980.0),
        io_row("tokio", 10, 180.0),
        io_row("threads", 10, 196.0),
        io_row("tokio", 100, 1_960.0),
        scenarios::IoRow {
            latency_lower_bounds: 40,
            failed: 40,
            p99_us: Some(4_100_000),
            ..io_row("threads", 100, 1_000.0)
        },
    ];
    save_rows(&scenarios_dir, "connections", &connections);
    save_rows(&scenarios_dir, "io", &io);
    let inputs = Inputs {
        scenarios_dir,
        ..inputs("criterion", "scenarios")
    };
    let loaded = report::load(&inputs).expect("load");
    assert_eq!(loaded.connections.as_ref(), Some(&connections));
    assert_eq!(loaded.io.as_ref(), Some(&io));
    let written =
        report::write(&inputs, &loaded, &machine(&loaded), &out_dir("c10k-out")).expect("write");
    let summary = std::fs::read_to_string(written.folder.join("summary.md")).expect("summary");
    for expected in [
        "## Many connections (C10K)\n",
        // Grouped by server, in the order the servers first appear, by N within each.
        "| `threads` | rust | 100 | 100 | 10.0 | 6.0 | 8.3 | 24576 | 102 | 30000 | 1.20 ms | 276 / 276 |\n\
         | `threads` | rust | 1000 | 1000 | 100.0 | 6.0 | 25.5 | 20480 | 1002 | 30000 | 1.20 ms | 2976 / 2976 |\n\
         | `threads` | rust | 10000 | not attempted: 10002 threads are above the safe limit of 8000 | | | | | | | | |\n\
         | `evloop` | rust | 100 |",
        "Bytes per connection at the largest N each server reached: `threads` 20.0 KiB at N = 1000, \
         `evloop` 1.0 KiB at N = 1000.",
        "At N = 1000, `evloop` holds a connection in the least memory: **1.0 KiB** per connection \
         (the most: `threads`, 20.0 KiB).",
        "proportional resident memory (PSS, `smaps_rollup`) of the server's process tree, \
         read from `/proc`, above the same server's idle baseline",
        "![bytes per connection against connections held](connections_bytes.svg)",
        "## Waiting on a backend (io_wait)\n",
        "### C = 10\n\nBackend delay 50.00 ms.\n",
        // The backend first in each table, labelled; 180 of an ideal 200 is 90 %.
        "|---:|\n| `backend` (driven directly, no server) | rust | 200 | 198 | 99 % |",
        "| `tokio` | rust | 200 | 180 | 90 % | 50.40 ms | 52.00 ms | 0 | 0 | 3 | 8.0 | 11.5 µs |",
        // Requests given up on: the percentiles are lower bounds.
        "| `threads` | rust | 2000 | 1000 | 50 % | ≥ 50.40 ms | ≥ 4.10 s | 0 | 40 |",
        "At the largest concurrency, C = 100 (ideal 2000 req/s), `tokio` reaches ≥ 90 % of the \
         ideal; the lowest: `threads` 50 %.",
        "The backend driven directly reached at least 99 % of its ideal at every C measured",
        "![achieved ÷ ideal rate against concurrency](io_efficiency.svg)",
        // How produced: both runs' commands.
        "concbench scenario connections\nconcbench scenario io\n",
    ] {
        assert!(summary.contains(expected), "{expected} missing:\n{summary}");
    }
    for file in [
        "connections_bytes.svg",
        "io_efficiency.svg",
        "connections.json",
        "io.json",
    ] {
        assert!(
            written.files.iter().any(|written| written == file),
            "{file} missing: {:?}",
            written.files
        );
        let size = std::fs::metadata(written.folder.join(file))
            .map(|meta| meta.len())
            .unwrap_or(0);
        assert!(size > 0, "{file} is missing or empty on disk");
    }
    let chart = std::fs::read_to_string(written.folder.join("io_efficiency.svg")).expect("svg");
    assert!(
        chart.contains("ideal (C / delay)") && chart.contains("backend (driven directly)"),
        "{chart}"
    );
    // The rows come along unchanged.
    let copied: Vec<scenarios::ConnectionsRow> =
        scenarios::read_rows_file(&written.folder.join("connections.json")).expect("json");
    assert_eq!(copied, connections);
    let copied: Vec<scenarios::IoRow> =
        scenarios::read_rows_file(&written.folder.join("io.json")).expect("json");
    assert_eq!(copied, io);
}

#[test]
fn corrupt_connections_or_io_rows_are_errors_naming_the_file() {
    let _cleanup = Cleanup(["corrupt-io", "corrupt-connections"].map(out_dir).to_vec());
    for (test, file) in [
        ("corrupt-io", "io.json"),
        ("corrupt-connections", "connections.json"),
    ] {
        let scenarios_dir = copied_scenarios(test);
        // Half-written: cut off in the middle of a row.
        std::fs::write(
            scenarios_dir.join(file),
            r#"[{"style": "tokio", "language": "rust", "concurrency": 10, "#,
        )
        .expect("write");
        let error = report::load(&Inputs {
            scenarios_dir,
            ..inputs("criterion", "scenarios")
        })
        .expect_err("must fail");
        assert!(matches!(error, ReportError::Parse { .. }), "{error:?}");
        assert!(error.to_string().contains(file), "{file}: {error}");
    }
}

#[test]
fn a_sweep_draws_speedup_against_workers_with_its_efficiency_table() {
    let _cleanup = Cleanup(["sweep", "sweep-out"].map(out_dir).to_vec());
    let sweep_inputs = Inputs {
        scenarios_dir: scenarios_with_sweep("sweep"),
        ..inputs("criterion", "scenarios")
    };
    let loaded = report::load(&sweep_inputs).expect("load");
    // The per-group tables use the run at the default worker count.
    assert_eq!(loaded.measure.as_ref().map(|run| run.workers), Some(2));
    let machine = machine(&loaded);
    let written =
        report::write(&sweep_inputs, &loaded, &machine, &out_dir("sweep-out")).expect("write");
    assert!(
        written
            .files
            .iter()
            .any(|file| file == "fib_batch_scaling.svg"),
        "{:?}",
        written.files
    );
    let chart = std::fs::read_to_string(written.folder.join("fib_batch_scaling.svg")).expect("svg");
    assert!(
        chart.contains("4: oversubscribed") && chart.contains("ideal: speedup = workers"),
        "{chart}"
    );
    let summary = std::fs::read_to_string(written.folder.join("summary.md")).expect("summary");
    for line in [
        "![fib_batch scaling](fib_batch_scaling.svg)",
        "(1, 2, 4 (oversubscribed)), on 2 cores; the tables above are the run at 2 workers",
        "**speedup ÷ min(workers, cores)**",
        "| `seq` | 64x27 | 1 | 1.00× (reference) | 100 % | 51 % |",
        "| `seq` | 64x27 | 2 | 1.00× (reference) | 50 % | 51 % |",
        "| `rayon` | 64x27 | 1 | 0.97× (0.95–0.99) | 97 % | 96 % |",
        "| `rayon` | 64x27 | 2 | 1.91× (1.88–1.95) | 96 % | 98 % |",
        "| `rayon` | 64x27 | 4 (oversubscribed) | 1.80× (1.75–1.85) | 90 % | 92 % |",
        "| `capacity (probe)` | 64x27 | 4 (oversubscribed) | 1.95× (1.90–1.99) | 98 % | — |",
        // The per-group table is still the 2-worker run's.
        "| `rayon` | 64x27 | 1.91× (1.88–1.95) | 98 % (96–100) | 1.95 | 15.00 ms |",
    ] {
        assert!(summary.contains(line), "{line} missing:\n{summary}");
    }
    let rows = report::scaling::rows(loaded.sweep.as_ref().expect("a sweep"), "fib_batch");
    let rayon: Vec<(usize, bool, f64)> = rows
        .iter()
        .filter(|row| row.style == "rayon")
        .map(|row| (row.workers, row.oversubscribed, row.per_core))
        .collect();
    assert_eq!(rayon, [(1, false, 0.97), (2, false, 0.956), (4, true, 0.9)]);
    // machine.json carries the engine's settings of the sweep.
    let machine: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(written.folder.join("machine.json")).expect("machine.json"),
    )
    .expect("JSON");
    assert_eq!(machine["engine"]["workers"], serde_json::json!([2, 1, 4]));
    assert_eq!(machine["engine"]["default_workers"], 2);
    assert!(machine["engine"]["budget_s"].is_number(), "{machine}");
    for field in ["sweep_budget_s", "target", "min_rounds", "max_rounds"] {
        assert!(machine["engine"].get(field).is_some(), "{field}: {machine}");
    }
    // The copy in the report is the whole sweep.
    let copy = std::fs::read_to_string(written.folder.join("measure.json")).expect("copy");
    let copy = measure::rows::MeasureFile::parse(&copy).expect("parses");
    assert_eq!(copy.runs.len(), 3);
}

#[test]
fn compare_puts_two_reports_ratios_side_by_side() {
    let _cleanup = Cleanup(["cmp", "cmp-out", "cmp-other"].map(out_dir).to_vec());
    let this_inputs = Inputs {
        scenarios_dir: scenarios_with_sweep("cmp"),
        ..inputs("criterion", "scenarios")
    };
    let loaded = report::load(&this_inputs).expect("load");
    let this_machine = machine(&loaded);
    let written =
        report::write(&this_inputs, &loaded, &this_machine, &out_dir("cmp-out")).expect("write");

    // The other report: a version-2 run without tokio and with threads, on another host.
    let other = out_dir("cmp-other").join("2026-01-01-other-host");
    std::fs::create_dir_all(&other).expect("other folder");
    let mut run = measure::rows::MeasureRun {
        schema_version: 2,
        ..engine_run(2, false, ((1.7, 1.6, 1.8), (0.9, 0.85, 0.95)))
    };
    let styles = &mut run.cohorts[0].styles;
    styles.retain(|row| row.style != "tokio");
    let mut threads = styles[2].clone();
    threads.style = "threads".into();
    threads.speedup = Some(measure::stats::Interval {
        point: 1.5,
        lower: 1.4,
        upper: 1.6,
    });
    threads.efficiency = Some(measure::stats::Interval {
        point: 0.75,
        lower: 0.7,
        upper: 0.8,
    });
    styles.push(threads);
    std::fs::write(
        other.join("measure.json"),
        serde_json::to_string(&run).expect("json"),
    )
    .expect("write");
    let other_machine = MachineInfo {
        hostname: "other-host".into(),
        ..this_machine.clone()
    };
    std::fs::write(
        other.join("machine.json"),
        serde_json::to_string(&other_machine).expect("json"),
    )
    .expect("write");

    let name = report::compare::write_comparison(&written.folder, &loaded, &this_machine, &other)
        .expect("compare");
    assert_eq!(name, "compare-2026-01-01-other-host.md");
    let text = std::fs::read_to_string(written.folder.join(&name)).expect("the comparison");
    let this_line = format!(
        "- this report (`{}`): {}",
        written
            .folder
            .file_name()
            .expect("a name")
            .to_string_lossy(),
        this_machine.one_line()
    );
    let other_line = format!(
        "- other report (`2026-01-01-other-host`): {}",
        other_machine.one_line()
    );
    for line in [
        this_line.as_str(),
        other_line.as_str(),
        "| fib_batch | 64x27 | `rayon` | 1.91× | 98 % | 1.70× | 90 % | 1.125 | 1.090 |",
        "| fib_batch | 64x27 | `seq` | 1.00× | 51 % | 1.00× | 51 % | 1.000 | 1.000 |",
        "| fib_batch | 64x27 | `tokio` | 1.90× | 97 % | only in this report | — | — | — |",
        "| fib_batch | 64x27 | `threads` | only in the other report | — | 1.50× | 75 % | — | — |",
        "3 rows in both, 1 only in this report, 1 only in the other.",
    ] {
        assert!(text.contains(line), "{line} missing:\n{text}");
    }
    assert!(text.contains("other-host"), "{text}");

    // A foreign measure.json in the other folder is an error naming it.
    std::fs::write(other.join("measure.json"), r#"{"schema_version": 7}"#).expect("write");
    let error = report::compare::write_comparison(&written.folder, &loaded, &this_machine, &other)
        .expect_err("a foreign version");
    assert!(
        error.to_string().contains("measure.json")
            && error.to_string().contains("schema version 7"),
        "{error}"
    );
}

#[test]
fn row_files_are_read_as_envelopes_and_as_bare_arrays() {
    let _cleanup = Cleanup(["rows-both"].map(out_dir).to_vec());
    let dir = copied_scenarios("rows-both");
    // The fixture's beazley.json is a bare array (version 0); tasks.json becomes an
    // envelope of version 1.
    let bare = std::fs::read_to_string(dir.join("beazley.json")).expect("fixture");
    assert!(bare.trim_start().starts_with('['), "{bare}");
    let tasks: Vec<scenarios::TaskRow> =
        scenarios::read_rows_file(&dir.join("tasks.json")).expect("fixture tasks");
    scenarios::write_rows(&dir.join("tasks.json"), &tasks).expect("write");
    let envelope: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("tasks.json")).expect("tasks"))
            .expect("JSON");
    assert_eq!(envelope["schema_version"], scenarios::ROW_SCHEMA_VERSION);
    let loaded = report::load(&Inputs {
        scenarios_dir: dir.clone(),
        ..inputs("criterion", "scenarios")
    })
    .expect("both read");
    assert_eq!(loaded.tasks.as_ref(), Some(&tasks));
    assert!(loaded.beazley.as_ref().is_some_and(|rows| !rows.is_empty()));
    // Another envelope version is an error naming the file.
    std::fs::write(
        dir.join("tasks.json"),
        r#"{"schema_version": 9, "rows": []}"#,
    )
    .expect("write");
    let error = report::load(&Inputs {
        scenarios_dir: dir,
        ..inputs("criterion", "scenarios")
    })
    .expect_err("a foreign version");
    assert!(
        error.to_string().contains("tasks.json") && error.to_string().contains("version 9"),
        "{error}"
    );
}
