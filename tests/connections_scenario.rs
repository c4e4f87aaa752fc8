//! `concbench scenario connections` through the binary: its rows, its limits, the
//! thread-per-connection list it relies on, and that no server outlives it.

mod common;

use std::collections::HashSet;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use scenarios::ConnectionsRow;
use scenarios::connections::{ConnectionModel, THREAD_PER_CONNECTION, connection_model};
use workloads::{Support, Workload};

/// A directory of this test's own, removed when dropped, also when the test fails.
struct TempDir(PathBuf);

impl TempDir {
    fn new(test: &str) -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |since| since.subsec_nanos());
        let path =
            std::env::temp_dir().join(format!("concbench-{test}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&path).expect("temp dir");
        Self(path)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs `concbench scenario connections ARGS` with its results directory in `dir` (so
/// that a test never overwrites a user's last run), watching its children while it
/// runs; returns its output and every child it had.
fn run_scenario(dir: &TempDir, args: &[&str]) -> (Output, HashSet<u32>) {
    let mut scenario = Command::new(common::concbench_binary())
        .args(["scenario", "connections"])
        .args(args)
        .env("CARGO_TARGET_DIR", dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run the scenario");
    let mut children = HashSet::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    while scenario.try_wait().expect("try_wait").is_none() {
        children.extend(common::child_pids(scenario.id()));
        if Instant::now() > deadline {
            let _ = scenario.kill();
            let _ = scenario.wait();
            panic!("the scenario did not finish");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    (scenario.wait_with_output().expect("output"), children)
}

#[test]
fn measures_each_server_and_count_on_a_fresh_server_and_leaves_none() {
    let dir = TempDir::new("connections");
    let json = dir.path().join("rows.json");
    let json_arg = json.to_str().expect("a UTF-8 temp path");
    let (output, children) = run_scenario(
        &dir,
        &[
            "--styles",
            "tokio,threads",
            "--counts",
            "20,400",
            "--active",
            "4",
            "--duration",
            "1s",
            "--peers",
            "none",
            "--seed",
            "11",
            "--json",
            json_arg,
        ],
    );
    assert!(output.status.success(), "{output:?}");
    // A fresh server per (server, N).
    assert_eq!(children.len(), 4, "{children:?}");
    for pid in &children {
        assert!(
            !common::process_exists(*pid),
            "server {pid} outlived the scenario"
        );
    }
    let table = String::from_utf8_lossy(&output.stdout);
    assert!(table.contains("seed 11"), "{table}");

    let rows: Vec<ConnectionsRow> = scenarios::read_rows_file(&json).expect("connections rows");
    let saved: Vec<ConnectionsRow> =
        scenarios::read_rows_file(&dir.path().join("concbench/connections.json"))
            .expect("the saved last run");
    assert_eq!(rows, saved);
    // In the servers' order, then N's.
    let keys: Vec<(&str, usize)> = rows
        .iter()
        .map(|row| (row.style.as_str(), row.connections))
        .collect();
    assert_eq!(
        keys,
        [
            ("tokio", 20),
            ("tokio", 400),
            ("threads", 20),
            ("threads", 400)
        ],
        "{rows:#?}"
    );
    for row in &rows {
        assert_eq!(row.not_attempted, None, "{row:?}");
        assert_eq!(row.language, "rust");
        assert_eq!(row.established, row.connections, "{row:?}");
        assert_eq!(row.active, 4, "{row:?}");
        assert!(row.connect_ms.is_some(), "{row:?}");
        assert!(row.requests > 0 && row.rps > 0.0, "{row:?}");
        assert_eq!(row.errors, 0, "{row:?}");
        assert!(row.idle_answered > 0, "{row:?}");
        assert!(row.idle_answered <= row.idle_due, "{row:?}");
        // Each idle connection owes one request in a one-second phase.
        assert_eq!(
            row.idle_due,
            (row.connections - row.active) as u64,
            "{row:?}"
        );
    }
    // Enough connections that a task server's growth stands above the swing of its
    // proportional memory (PSS), which moves by pages as other processes map and unmap
    // the same binary: at 50, tokio's ~100 KB was lost in it, once even negative.
    let at_400 = |style: &str| {
        rows.iter()
            .find(|row| row.style == style && row.connections == 400)
            .expect("a row at N = 400")
    };
    let (tokio, threads) = (at_400("tokio"), at_400("threads"));
    let per_connection = |row: &ConnectionsRow| {
        row.bytes_per_connection
            .filter(|bytes| *bytes > 0.0)
            .unwrap_or_else(|| panic!("no memory per connection: {row:?}"))
    };
    assert!(
        per_connection(threads) > per_connection(tokio),
        "a thread per connection costs more than a task: {threads:?} {tokio:?}"
    );
    assert!(
        threads.server_threads.is_some_and(|threads| threads >= 400),
        "{threads:?}"
    );
    assert!(
        tokio.server_threads.is_some_and(|threads| threads < 400),
        "{tokio:?}"
    );
}

#[test]
fn a_style_that_cannot_hold_connections_is_a_usage_error_with_its_reason() {
    let Support::NotApplicable(reason) =
        (catalog::find("seq").expect("seq").support)(Workload::Connections)
    else {
        panic!("seq is iterative: the connections workload is n/a for it");
    };
    let dir = TempDir::new("connections-seq");
    let (output, children) = run_scenario(&dir, &["--styles", "seq", "--peers", "none"]);
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    assert!(children.is_empty(), "no server should start: {children:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains(reason), "{stderr}");
}

#[test]
fn a_count_above_the_machines_limits_is_not_attempted() {
    let dir = TempDir::new("connections-limit");
    let json = dir.path().join("rows.json");
    // More connections than any open-file limit or port range allows.
    let (output, children) = run_scenario(
        &dir,
        &[
            "--styles",
            "tokio",
            "--counts",
            "100000000",
            "--peers",
            "none",
            "--json",
            json.to_str().expect("a UTF-8 temp path"),
        ],
    );
    // Nothing could be measured: an error, but the rows say why.
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    assert!(children.is_empty(), "no server should start: {children:?}");
    let rows: Vec<ConnectionsRow> = scenarios::read_rows_file(&json).expect("connections rows");
    assert_eq!(rows.len(), 1, "{rows:?}");
    let reason = rows[0].not_attempted.as_deref().expect("not attempted");
    assert!(
        reason.contains("more than this machine holds safely"),
        "{reason}"
    );
    assert_eq!((rows[0].established, rows[0].rss_bytes), (0, None));
    let table = String::from_utf8_lossy(&output.stdout);
    assert!(table.contains("not attempted"), "{table}");
}

/// The scenario's list of servers with a thread per connection (which sets their
/// limit) must match what the servers do: each listed style runs the workload and
/// holds a thread per open connection, and no other style does; each listed Python peer
/// exists.
#[test]
fn the_thread_per_connection_list_matches_the_servers() {
    const HELD: usize = 40;
    for name in THREAD_PER_CONNECTION {
        if let Some(peer) = name.strip_prefix("python-") {
            let script = format!("{}/peers/python/{peer}.py", env!("CARGO_MANIFEST_DIR"));
            assert!(Path::new(&script).is_file(), "{name}: no {script}");
        } else {
            let entry = catalog::find(name).unwrap_or_else(|| panic!("{name} is no style"));
            assert_eq!(
                (entry.support)(Workload::Connections),
                Support::Runs,
                "{name}"
            );
        }
    }
    for entry in catalog::STYLES
        .iter()
        .filter(|entry| (entry.support)(Workload::Connections) == Support::Runs)
    {
        let server = common::ServerProcess::start(entry.name, 30);
        let connections: Vec<TcpStream> = (0..HELD)
            .map(|_| TcpStream::connect(server.addr()).expect("connect"))
            .collect();
        let threads = || {
            scenarios::procfs::tree_memory(server.pid())
                .expect("the server's tree")
                .threads
        };
        let per_connection = connection_model(entry.name) == ConnectionModel::ThreadPerConnection;
        // Threads start as connections are accepted: wait for them, or, for a server
        // that should start none, give it the time it would take.
        let settle = if per_connection { 5_000 } else { 300 };
        let settle_until = Instant::now() + Duration::from_millis(settle);
        let mut seen = threads();
        while seen < HELD as u64 && Instant::now() < settle_until {
            std::thread::sleep(Duration::from_millis(20));
            seen = threads();
        }
        assert_eq!(
            seen >= HELD as u64,
            per_connection,
            "{}: {seen} threads with {HELD} connections open",
            entry.name
        );
        drop(connections);
    }
}
