//! The command line: `concbench list`, usage errors, and the README's matrix.

mod common;

use std::process::Command;

fn concbench(args: &[&str]) -> std::process::Output {
    Command::new(common::concbench_binary())
        .args(args)
        .output()
        .expect("run concbench")
}

#[test]
fn list_prints_every_style_and_workload() {
    let output = concbench(&["list"]);
    assert!(output.status.success(), "{output:?}");
    let text = String::from_utf8(output.stdout).expect("utf-8");
    for name in catalog::names() {
        assert!(
            text.lines().any(|line| line.starts_with(name)),
            "{name} missing:\n{text}"
        );
    }
    for workload in workloads::Workload::ALL {
        assert!(
            text.lines()
                .next()
                .is_some_and(|header| header.contains(workload.name()))
        );
    }
}

#[test]
fn readme_matrix_is_the_output_of_list_markdown() {
    // The README shows what every style runs where io_uring works; on a kernel that
    // refuses it, the io_uring styles' rows say so instead.
    if let Some(refused) = catalog::STYLES.iter().find_map(|entry| {
        match (entry.support)(workloads::Workload::Throughput) {
            workloads::Support::NotApplicable(reason)
                if reason.starts_with(workloads::completion::UNAVAILABLE) =>
            {
                Some(reason)
            }
            _ => None,
        }
    }) {
        return eprintln!("skipped: the matrix here differs from the README's: {refused}");
    }
    let output = concbench(&["list", "--markdown"]);
    assert!(output.status.success(), "{output:?}");
    let matrix = String::from_utf8(output.stdout).expect("utf-8");
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("README.md");
    let start = "<!-- matrix:start -->\n";
    let (_, after_start) = readme
        .split_once(start)
        .expect("README has a matrix:start marker");
    let (in_readme, _) = after_start
        .split_once("<!-- matrix:end -->")
        .expect("README has a matrix:end marker");
    assert_eq!(
        in_readme, matrix,
        "README.md's matrix is stale: replace it with `cargo run -- list --markdown`"
    );
}

#[test]
fn io_uring_styles_are_not_applicable_where_io_uring_is_refused() {
    let forced = |args: &[&str]| {
        Command::new(common::concbench_binary())
            .args(args)
            .env(workloads::completion::NO_IO_URING_ENV, "1")
            .output()
            .expect("run concbench")
    };
    let reason = "io_uring unavailable (forced by CONCBENCH_NO_IO_URING)";
    let listed = forced(&["list"]);
    assert!(listed.status.success(), "{listed:?}");
    let text = String::from_utf8(listed.stdout).expect("utf-8");
    for style in ["compio", "compio-offload", "monoio", "monoio-offload"] {
        for workload in workloads::Workload::ALL {
            assert!(
                text.contains(&format!("{style} × {workload}: {reason}")),
                "{style} × {workload} is not n/a with the reason:\n{text}"
            );
        }
    }
    // The styles that need no io_uring are untouched.
    assert!(
        text.lines()
            .any(|line| line.starts_with("tokio ") && !line.contains("n/a")),
        "{text}"
    );
    // A server that cannot start says why, in one line, and fails.
    let served = forced(&["serve", "--style", "monoio", "--addr", "127.0.0.1:0"]);
    assert!(!served.status.success(), "{served:?}");
    let error = String::from_utf8_lossy(&served.stderr);
    assert!(error.contains(reason), "{error}");
}

#[test]
fn usage_errors_exit_with_2() {
    let output = concbench(&["no-such-subcommand"]);
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    assert!(!output.stderr.is_empty());
}

#[test]
fn load_drives_a_server_and_reports_json() {
    let server = common::ServerProcess::start("threads", 30);
    let output = concbench(&[
        "load",
        "--addr",
        &server.addr().to_string(),
        "--connections",
        "3",
        "--requests",
        "300",
        "--n",
        "12",
        "--json",
    ]);
    assert!(output.status.success(), "{output:?}");
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON");
    assert_eq!(report["requests"], 300);
    assert_eq!(report["right"], 300);
    assert_eq!(report["errors"], 0);
    for field in ["rps", "p50_us", "p99_us", "p999_us", "max_us"] {
        assert!(report[field].is_number(), "{field} missing: {report}");
    }
}

#[test]
fn load_without_a_server_fails_with_one_clear_line() {
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("free port");
    let output = concbench(&["load", "--addr", &addr.to_string(), "--requests", "1"]);
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("cannot connect"), "{stderr}");
}

#[test]
fn serve_refuses_an_unknown_style_as_a_usage_error() {
    let output = concbench(&["serve", "--style", "no-such-style"]);
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    assert!(String::from_utf8_lossy(&output.stderr).contains("possible values"));
}

#[test]
fn beazley_scenario_measures_every_phase_and_leaves_no_server() {
    let json = std::env::temp_dir().join(format!("concbench-beazley-{}.json", std::process::id()));
    let mut scenario = Command::new(common::concbench_binary())
        .args([
            "scenario",
            "beazley",
            "--styles",
            "threads,evloop",
            "--duration",
            "300ms",
        ])
        .args([
            "--hog-n",
            "22",
            "--hogs",
            "1,2",
            "--no-redis",
            "--peers",
            "none",
            "--arrangements",
            "shared",
            "--workers",
            "2",
            "--rounds",
            "3",
            "--seed",
            "7",
            "--json",
        ])
        .arg(&json)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("run the scenario");
    // Watch the scenario's children while it runs: every one must be gone when it exits,
    // and both servers are up at once while the throughput rounds interleave them.
    let mut servers = std::collections::HashSet::new();
    let mut most_at_once = 0;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while scenario.try_wait().expect("try_wait").is_none() {
        let children = common::child_pids(scenario.id());
        most_at_once = most_at_once.max(children.len());
        servers.extend(children);
        assert!(
            std::time::Instant::now() < deadline,
            "the scenario did not finish"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let output = scenario.wait_with_output().expect("output");
    assert!(output.status.success(), "{output:?}");
    assert!(!servers.is_empty(), "the scenario started no server");
    assert!(most_at_once >= 2, "the servers were never up together");
    for pid in servers {
        assert!(
            !common::process_exists(pid),
            "server {pid} outlived the scenario"
        );
    }
    let table = String::from_utf8_lossy(&output.stdout);
    assert!(
        table.contains("threads") && table.contains("evloop"),
        "{table}"
    );
    assert!(!table.contains("FAILED"), "{table}");
    assert!(
        table.contains("3 interleaved rounds") && table.contains("seed 7"),
        "{table}"
    );
    let rows: Vec<serde_json::Value> = scenarios::read_rows_file(&json).expect("JSON rows");
    let _ = std::fs::remove_file(&json);
    // Two styles × (throughput at 1 and 32 connections, hog phases with 1 and 2 hogs).
    assert_eq!(rows.len(), 8, "{rows:#?}");
    // Each throughput row is the sum of its three slices: its rate lies within theirs.
    for row in rows.iter().filter(|row| row["phase"] == "throughput") {
        let rounds: Vec<f64> = row["round_rps"]
            .as_array()
            .expect("the rounds' rates")
            .iter()
            .filter_map(serde_json::Value::as_f64)
            .collect();
        assert_eq!(rounds.len(), 3, "{row}");
        let rps = row["rps"].as_f64().expect("rps");
        let (low, high) = rounds
            .iter()
            .fold((f64::INFINITY, 0.0_f64), |(low, high), &rate| {
                (low.min(rate), high.max(rate))
            });
        assert!(
            low > 0.0 && low <= rps * 1.0001 && rps <= high * 1.0001,
            "{row}"
        );
    }
    for row in &rows {
        for field in [
            "style",
            "phase",
            "connections",
            "rps",
            "p50_us",
            "p99_us",
            "max_us",
        ] {
            assert!(!row[field].is_null(), "{field} missing in {row}");
        }
        assert_eq!(row["errors"], 0, "{row}");
    }
    for style in ["threads", "evloop"] {
        let hogs: Vec<u64> = rows
            .iter()
            .filter(|row| row["phase"] == "hog" && row["style"] == style)
            .filter_map(|row| row["hogs"].as_u64())
            .collect();
        assert_eq!(hogs, [1, 2], "{style}: {rows:#?}");
    }
    // The probe owes a request at every tick of its schedule, answered or not.
    for probe in rows.iter().filter(|row| row["phase"] == "hog") {
        let due = probe["due"]
            .as_u64()
            .expect("a probe row says how many fell due");
        let answered = probe["requests"].as_u64().expect("requests");
        assert!(answered <= due, "{probe}");
        assert!(due > 0, "{probe}");
    }
}

#[test]
fn tasks_scenario_measures_each_size_in_a_fresh_process() {
    let json = std::env::temp_dir().join(format!("concbench-tasks-{}.json", std::process::id()));
    let output = Command::new(common::concbench_binary())
        .args([
            "scenario",
            "tasks",
            "--styles",
            "evloop,tokio",
            "--sizes",
            "10,200",
            "--sleep",
            "2ms",
            "--json",
        ])
        .arg(&json)
        .output()
        .expect("run the scenario");
    assert!(output.status.success(), "{output:?}");
    let rows: Vec<serde_json::Value> = scenarios::read_rows_file(&json).expect("JSON rows");
    let _ = std::fs::remove_file(&json);
    assert_eq!(rows.len(), 4, "{rows:#?}");
    for row in &rows {
        assert!(row["not_attempted"].is_null(), "{row}");
        for field in [
            "style",
            "n_tasks",
            "wall_ms",
            "peak_rss_bytes",
            "bytes_per_task",
        ] {
            assert!(!row[field].is_null(), "{field} missing in {row}");
        }
        assert!(
            row["wall_ms"].as_f64().is_some_and(|ms| ms >= 2.0),
            "woke before the timer: {row}"
        );
        assert!(
            row["peak_rss_bytes"]
                .as_u64()
                .is_some_and(|bytes| bytes > 0),
            "{row}"
        );
    }
}

#[test]
fn tasks_scenario_does_not_attempt_sizes_above_the_machine_limit() {
    let limit = workloads::tasks::unit_limit(workloads::tasks::UnitKind::Thread).max_units;
    let output = Command::new(common::concbench_binary())
        .args(["scenario", "tasks", "--styles", "threads", "--sizes"])
        .arg((limit + 1).to_string())
        .output()
        .expect("run the scenario");
    assert!(output.status.success(), "{output:?}");
    let table = String::from_utf8_lossy(&output.stdout);
    assert!(table.contains("not attempted"), "{table}");
}

#[test]
fn regress_exits_1_on_a_confirmed_regression_2_on_unusable_input_0_otherwise() {
    // A copy of the fixtures, each `base/` saved a minute before the rest was written:
    // the gate tells the latest comparison by modification times, which a checkout
    // does not keep.
    let fixtures = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("cli-regress-fixtures-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&fixtures);
    copy_with_baseline_times(
        std::path::Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/crates/regress/tests/fixtures"
        )),
        &fixtures,
        false,
    )
    .expect("copy the regress fixtures");
    let regress = |fixture: &str, extra: &[&str]| {
        let dir = fixtures.join(fixture).display().to_string();
        let mut args = vec![
            "regress",
            "--baseline",
            "base",
            "--criterion-dir",
            dir.as_str(),
        ];
        args.extend_from_slice(extra);
        concbench(&args)
    };
    let regressed = regress("mixed", &[]);
    assert_eq!(regressed.status.code(), Some(1), "{regressed:?}");
    assert!(String::from_utf8_lossy(&regressed.stdout).contains("`fib_batch/rayon/64x27`"));
    let passed = regress("mixed", &["--threshold", "40"]);
    assert_eq!(passed.status.code(), Some(0), "{passed:?}");
    let missing = regress("missing-baseline", &[]);
    assert_eq!(missing.status.code(), Some(2), "{missing:?}");
    assert!(String::from_utf8_lossy(&missing.stderr).contains("--save-baseline base"));
    // Within-run ratios: the uniformly slower machine passes, the slower style does not.
    let ratios = regress("drift", &["--ratios", "--threshold", "5"]);
    assert_eq!(ratios.status.code(), Some(1), "{ratios:?}");
    let table = String::from_utf8_lossy(&ratios.stdout);
    assert!(
        table.contains("1 regressed") && table.contains("`fib_batch/tokio/64x27`"),
        "{table}"
    );
    let _ = std::fs::remove_dir_all(&fixtures);
}

/// Copies `source` to `target`, every file under a `base/` modified at a fixed time and
/// every other file a minute later, as `--save-baseline base` then `--baseline base`
/// leave them.
fn copy_with_baseline_times(
    source: &std::path::Path,
    target: &std::path::Path,
    in_baseline: bool,
) -> std::io::Result<()> {
    let saved = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000);
    std::fs::create_dir_all(target)?;
    for entry in std::fs::read_dir(source)? {
        let entry = entry?;
        let to = target.join(entry.file_name());
        let in_baseline = in_baseline || entry.file_name() == "base";
        if entry.file_type()?.is_dir() {
            copy_with_baseline_times(&entry.path(), &to, in_baseline)?;
        } else {
            std::fs::copy(entry.path(), &to)?;
            let written = if in_baseline {
                saved
            } else {
                saved + std::time::Duration::from_secs(60)
            };
            std::fs::File::options()
                .write(true)
                .open(&to)?
                .set_modified(written)?;
        }
    }
    Ok(())
}

#[test]
fn beazley_scenario_measures_the_python_peers_beside_the_styles() {
    if !common::Server::Python("threads").available() {
        return;
    }
    let json = std::env::temp_dir().join(format!("concbench-python-{}.json", std::process::id()));
    let output = Command::new(common::concbench_binary())
        .args([
            "scenario",
            "beazley",
            "--styles",
            "threads",
            "--peers",
            "python",
            "--duration",
            "300ms",
        ])
        .args([
            "--connections",
            "1,4",
            "--hog-n",
            "18",
            "--hogs",
            "2",
            "--no-redis",
            "--arrangements",
            "shared",
            "--workers",
            "2",
            "--json",
        ])
        .arg(&json)
        .output()
        .expect("run the scenario");
    assert!(output.status.success(), "{output:?}");
    let rows: Vec<serde_json::Value> = scenarios::read_rows_file(&json).expect("JSON rows");
    let _ = std::fs::remove_file(&json);
    for peer in [
        "python-threads",
        "python-processpool",
        "python-asyncio",
        "python-asyncio-offload",
    ] {
        let peer_rows: Vec<&serde_json::Value> =
            rows.iter().filter(|row| row["style"] == peer).collect();
        assert_eq!(peer_rows.len(), 3, "{peer}: {rows:#?}");
        assert!(
            peer_rows
                .iter()
                .all(|row| row["language"] == "python" && row["errors"] == 0),
            "{peer_rows:#?}"
        );
    }
    assert!(
        rows.iter()
            .any(|row| row["style"] == "threads" && row["language"] == "rust")
    );
}

#[test]
fn readme_results_link_to_a_committed_report() {
    let root = env!("CARGO_MANIFEST_DIR");
    let readme = std::fs::read_to_string(format!("{root}/README.md")).expect("README.md");
    // Every `reports/...` target of a markdown link or image in the README.
    let targets: Vec<&str> = readme
        .match_indices("](reports/")
        .map(|(start, _)| {
            let target = &readme[start + 2..];
            &target[..target.find(')').unwrap_or(target.len())]
        })
        .collect();
    assert!(
        targets.iter().any(|target| target.ends_with("summary.md")),
        "the README's Results section links no report summary"
    );
    assert!(
        targets.iter().any(|target| target.ends_with(".svg")),
        "the README embeds no chart"
    );
    for target in targets {
        assert!(
            std::path::Path::new(root).join(target).is_file(),
            "README links {target}, which is not committed"
        );
    }
}
