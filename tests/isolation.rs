//! Client and server apart: `concbench serve --cpus` pins the server and every thread it
//! starts, and `scenario beazley --arrangements shared,isolated` measures both ways,
//! each row stating its CPU sets.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::Command;

/// `Cpus_allowed_list` of a `/proc/.../status` file.
fn cpus_allowed(status_path: &std::path::Path) -> String {
    let status = std::fs::read_to_string(status_path)
        .unwrap_or_else(|error| panic!("{}: {error}", status_path.display()));
    status
        .lines()
        .find_map(|line| line.strip_prefix("Cpus_allowed_list:"))
        .unwrap_or_else(|| panic!("no Cpus_allowed_list in {}", status_path.display()))
        .trim()
        .to_owned()
}

/// The CPUs this test process may use, as `Cpus_allowed_list` says.
fn usable_cpus() -> Vec<usize> {
    let list = cpus_allowed("/proc/self/status".as_ref());
    let mut cpus = Vec::new();
    for part in list.split(',') {
        match part.split_once('-') {
            Some((first, last)) => {
                cpus.extend(first.parse::<usize>().expect("cpu")..=last.parse().expect("cpu"))
            }
            None => cpus.push(part.parse().expect("cpu")),
        }
    }
    cpus
}

#[test]
fn serve_with_cpus_pins_the_server_and_every_thread() {
    let cpu = usable_cpus()[0].to_string();
    let server = common::ServerProcess::start_server_with(
        common::Server::Style("threads"),
        30,
        &["--cpus", &cpu],
    );
    // A connection, so the thread-per-connection server has started a thread for it.
    let mut stream = std::net::TcpStream::connect(server.addr()).expect("connect");
    stream.write_all(b"10\n").expect("write");
    let mut reply = String::new();
    BufReader::new(&stream)
        .read_line(&mut reply)
        .expect("reply");
    assert_eq!(reply.trim(), "55");
    let proc_dir = std::path::PathBuf::from(format!("/proc/{}", server.pid()));
    assert_eq!(cpus_allowed(&proc_dir.join("status")), cpu);
    let mut threads = 0;
    for task in std::fs::read_dir(proc_dir.join("task")).expect("tasks") {
        let task = task.expect("task").path();
        assert_eq!(
            cpus_allowed(&task.join("status")),
            cpu,
            "thread {}",
            task.display()
        );
        threads += 1;
    }
    assert!(
        threads >= 2,
        "only {threads} thread(s): none was started to serve"
    );
    drop(stream);
}

#[test]
fn serve_refuses_a_bad_cpu_list() {
    let output = Command::new(common::concbench_binary())
        .args(["serve", "--style", "threads", "--cpus", "1-0"])
        .output()
        .expect("run concbench");
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("bad CPU list"),
        "{output:?}"
    );
}

#[test]
fn beazley_runs_shared_and_isolated_and_each_row_says_which() {
    let usable = usable_cpus();
    let arrangements = if usable.len() >= 2 {
        "shared,isolated"
    } else {
        println!(
            "only {} usable CPU(s): the isolated half needs two; measuring shared only",
            usable.len()
        );
        "shared"
    };
    let dir = std::env::temp_dir().join(format!("concbench-isolation-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let json = dir.join("rows.json");
    let output = Command::new(common::concbench_binary())
        .args([
            "scenario",
            "beazley",
            "--styles",
            "tokio",
            "--connections",
            "1",
        ])
        .args([
            "--duration",
            "1s",
            "--rounds",
            "1",
            "--hogs",
            "1",
            "--hog-n",
            "20",
        ])
        .args([
            "--no-redis",
            "--peers",
            "none",
            "--workers",
            "2",
            "--arrangements",
            arrangements,
        ])
        .arg("--json")
        .arg(&json)
        // The scenario's "last run" goes to this test's own directory.
        .env("CARGO_TARGET_DIR", &dir)
        .output()
        .expect("run the scenario");
    let table = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(output.status.success(), "{output:?}");
    let rows: Vec<serde_json::Value> = scenarios::read_rows_file(&json).expect("JSON rows");
    let _ = std::fs::remove_dir_all(&dir);
    let throughput: Vec<&serde_json::Value> = rows
        .iter()
        .filter(|row| row["phase"] == "throughput")
        .collect();
    let shared = throughput
        .iter()
        .find(|row| row["arrangement"] == "shared")
        .unwrap_or_else(|| panic!("no shared row: {rows:#?}"));
    assert!(shared["server_cpus"].is_null() && shared["client_cpus"].is_null());
    assert!(shared["rps"].as_f64().expect("rps") > 0.0, "{shared}");
    // The hog phase runs in the shared arrangement only.
    let hogs: Vec<&serde_json::Value> = rows.iter().filter(|row| row["phase"] == "hog").collect();
    assert_eq!(hogs.len(), 1, "{rows:#?}");
    assert_eq!(hogs[0]["arrangement"], "shared");
    assert!(
        table.contains("hog phases in the shared arrangement only"),
        "{table}"
    );
    if usable.len() < 2 {
        return;
    }
    let isolated = throughput
        .iter()
        .find(|row| row["arrangement"] == "isolated")
        .unwrap_or_else(|| panic!("no isolated row: {rows:#?}"));
    let half = usable.len() / 2;
    let list = |cpus: &[usize]| {
        cpus.iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(",")
    };
    // Compare as sets: the rows write ranges (`0-1`), the lists here each CPU.
    let expand = |value: &serde_json::Value| {
        let text = value.as_str().expect("a CPU list");
        let mut cpus = Vec::new();
        for part in text.split(',') {
            match part.split_once('-') {
                Some((a, b)) => {
                    cpus.extend(a.parse::<usize>().expect("cpu")..=b.parse().expect("cpu"))
                }
                None => cpus.push(part.parse().expect("cpu")),
            }
        }
        list(&cpus)
    };
    assert_eq!(
        expand(&isolated["server_cpus"]),
        list(&usable[..half]),
        "{isolated}"
    );
    assert_eq!(
        expand(&isolated["client_cpus"]),
        list(&usable[half..]),
        "{isolated}"
    );
    assert!(isolated["rps"].as_f64().expect("rps") > 0.0, "{isolated}");
    assert_eq!(isolated["errors"], 0, "{isolated}");
    assert!(table.contains("isolated/shared"), "{table}");
    assert_eq!(rows.len(), 3, "{rows:#?}");
}

#[test]
fn beazley_refuses_overlapping_cpu_sets() {
    let output = Command::new(common::concbench_binary())
        .args([
            "scenario",
            "beazley",
            "--styles",
            "tokio",
            "--peers",
            "none",
            "--no-redis",
        ])
        .args(["--server-cpus", "0", "--client-cpus", "0"])
        .output()
        .expect("run concbench");
    assert!(!output.status.success(), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("disjoint") || stderr.contains("needs CPUs"),
        "{stderr}"
    );
}

/// `--workers 1,2`: every server at both counts, the sweep point's rows throughput only,
/// marked, and the default count's with the hog phase; the table has the sweep.
#[test]
fn beazley_sweeps_worker_counts_in_the_same_rounds() {
    let dir = std::env::temp_dir().join(format!("concbench-sweep-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let json = dir.join("rows.json");
    let output = Command::new(common::concbench_binary())
        .args(["scenario", "beazley", "--styles", "tokio,pool"])
        .args(["--connections", "4", "--duration", "600ms", "--rounds", "2"])
        .args(["--hogs", "1", "--hog-n", "20", "--workers", "1,2"])
        .args(["--no-redis", "--peers", "none", "--arrangements", "shared"])
        .arg("--json")
        .arg(&json)
        .env("CARGO_TARGET_DIR", &dir)
        .output()
        .expect("run concbench");
    let table = String::from_utf8_lossy(&output.stdout).into_owned();
    let rows: Vec<serde_json::Value> = scenarios::read_rows_file(&json).expect("JSON rows");
    let _ = std::fs::remove_dir_all(&dir);
    assert!(output.status.success(), "{output:?}");
    // Exactly one of the counts is the default (2 on a host of 2 or more cores).
    let defaults: Vec<u64> = rows
        .iter()
        .filter(|row| row.get("sweep_point").is_none())
        .map(|row| row["workers"].as_u64().expect("workers"))
        .collect();
    let default = defaults[0];
    assert!(
        defaults.iter().all(|&workers| workers == default),
        "{rows:#?}"
    );
    for style in ["tokio", "pool"] {
        for workers in [1, 2] {
            let of: Vec<&serde_json::Value> = rows
                .iter()
                .filter(|row| row["style"] == style && row["workers"] == workers)
                .collect();
            let phases: Vec<&str> = of
                .iter()
                .map(|row| row["phase"].as_str().expect("phase"))
                .collect();
            if workers == default {
                assert_eq!(
                    phases,
                    ["throughput", "hog"],
                    "{style} w={workers}: {of:#?}"
                );
            } else {
                assert_eq!(phases, ["throughput"], "{style} w={workers}: {of:#?}");
                assert_eq!(of[0]["sweep_point"], true, "{of:#?}");
            }
            assert!(of[0]["rps"].as_f64().expect("rps") > 0.0, "{of:#?}");
            assert_eq!(of[0]["errors"], 0, "{of:#?}");
        }
    }
    assert!(table.contains("core-count sweep"), "{table}");
    assert!(
        table.contains("c=4 w=1") && table.contains("c=4 w=2"),
        "{table}"
    );
}

/// A server that cannot bind port 0 (redis-server) is started twice in one scenario, once
/// per arrangement. Each start must get a port of its own: on a shared one the second
/// fails to bind while the first answers in its place, and its "isolated" rows measure the
/// other server.
#[test]
fn each_start_of_a_server_ready_on_connect_gets_a_port_of_its_own() {
    use scenarios::{ChildRegistry, FREE_PORT, ReadyBy, ServerChild, ServerCommand};
    use std::time::Duration;

    let host = std::net::IpAddr::from([127, 0, 0, 1]);
    let command = ServerCommand {
        name: "seq on a port found free".into(),
        program: common::concbench_binary().into(),
        args: ["serve", "--style", "seq", "--workers", "1", "--addr"]
            .into_iter()
            .map(Into::into)
            .chain([format!("127.0.0.1:{FREE_PORT}").into()])
            .collect(),
        ready: ReadyBy::ConnectOnFreePort(host),
    };
    let registry = ChildRegistry::default();
    let first = ServerChild::start(&command, &registry, Duration::from_secs(20)).expect("first");
    let second = ServerChild::start(&command, &registry, Duration::from_secs(20)).expect("second");
    assert_ne!(first.addr(), second.addr());
    for server in [&first, &second] {
        // Each answers on its own address, and it is the process started for it.
        let mut stream = std::net::TcpStream::connect(server.addr()).expect("connect");
        stream.write_all(b"10\n").expect("send");
        let mut reply = String::new();
        BufReader::new(&stream)
            .read_line(&mut reply)
            .expect("reply");
        assert_eq!(reply.trim(), "55", "{:?}", server.addr());
        assert!(common::is_our_child(server.pid()));
    }
    assert!(first.stop(Duration::from_secs(5)));
    assert!(second.stop(Duration::from_secs(5)));
}
