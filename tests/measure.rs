//! The measurement engine through the binary: idle workers, `concbench measure`'s rows,
//! `concbench compare`'s exit codes, and a worker that breaks the protocol.

mod common;

use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use measure::process::{Readiness, Side, WorkerProgram};
use measure::rows::{CompareRun, MeasureFile, SCHEMA_VERSION};
use measure::suite::{self, BenchmarkId};

/// A scratch directory, removed when dropped (also when the test fails).
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Self {
        let path = std::env::temp_dir().join(format!("concbench-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("scratch directory");
        Self(path)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `concbench ARGS` with its results directory in `scratch`, so a test never overwrites
/// the rows a real run left for `concbench report`.
fn concbench(scratch: &Path, args: &[&str]) -> std::process::Output {
    Command::new(common::concbench_binary())
        .args(args)
        .env("CARGO_TARGET_DIR", scratch)
        .output()
        .expect("run concbench")
}

fn two_workers() -> NonZeroUsize {
    NonZeroUsize::new(2).expect("2 > 0")
}

#[test]
fn idle_workers_use_no_cpu() {
    let program = WorkerProgram {
        program: common::concbench_binary().into(),
        workers: two_workers(),
        timeouts: measure::process::Timeouts::default(),
    };
    // Every style that runs fib_batch (pools, runtimes and process pools included), and
    // a task group whose styles keep timers and reactors.
    let mut ids: Vec<BenchmarkId> =
        suite::list(&[workloads::Workload::FibBatch, workloads::Workload::Sleepers])
            .into_iter()
            .filter(|listed| listed.runs.is_ok())
            .map(|listed| listed.id)
            .filter(|id| id.group == "fib_batch" || id.parameter == "1000")
            .collect();
    // The capacity probe keeps its threads between samples: they must sleep too.
    ids.push(BenchmarkId {
        group: "fib_batch".into(),
        style: measure::capacity::CAPACITY_PROBE.into(),
        parameter: "64x27".into(),
    });
    let mut workers = Vec::new();
    for id in &ids {
        let mut worker = program.spawn(id, Side::Only).expect("spawn");
        assert_eq!(
            worker.wait_ready().expect("ready"),
            Readiness::Ready,
            "{id}"
        );
        workers.push(worker);
    }
    // Let every style settle (a runtime's threads park after their last task).
    std::thread::sleep(Duration::from_millis(300));
    let cpu = |pid| measure::cpu::observed_tree_cpu(pid).expect("a live worker");
    let before: Vec<Duration> = workers
        .iter()
        .map(|worker| cpu(worker.pid().expect("pid")))
        .collect();
    std::thread::sleep(Duration::from_secs(1));
    for ((worker, id), before) in workers.iter().zip(&ids).zip(before) {
        let used = cpu(worker.pid().expect("pid")) - before;
        assert!(
            used <= Duration::from_millis(30),
            "{id}: an idle worker used {used:?} of CPU in one second"
        );
    }
}

#[test]
fn measure_sweeps_a_list_of_worker_counts_into_one_file() {
    let scratch = Scratch::new("measure-sweep");
    let json = scratch.0.join("sweep.json");
    let output = concbench(
        &scratch.0,
        &[
            "measure",
            "--groups",
            "fib_forkjoin",
            "--styles",
            "rayon",
            "--budget",
            "2s",
            "--sweep-budget",
            "1s",
            "--min-rounds",
            "2",
            "--max-rounds",
            "3",
            "--seed",
            "5",
            "--workers",
            "1,4",
            "--json",
            json.to_str().expect("utf-8 path"),
        ],
    );
    assert!(output.status.success(), "{output:?}");
    let file = MeasureFile::parse(&std::fs::read_to_string(&json).expect("rows")).expect("parses");
    let cores = file.cores;
    let counts: Vec<(usize, bool)> = file
        .runs
        .iter()
        .map(|run| (run.workers, run.oversubscribed))
        .collect();
    assert_eq!(counts, [(1, 1 > cores), (4, 4 > cores)], "{file:?}");
    // The primary run (the largest count within the cores, here 1 unless there are 4)
    // keeps --budget; the other gets --sweep-budget.
    let primary = file.primary().expect("a primary run");
    assert_eq!(primary.stopping.budget, Duration::from_secs(2));
    for run in file
        .runs
        .iter()
        .filter(|run| run.workers != primary.workers)
    {
        assert_eq!(run.stopping.budget, Duration::from_secs(1), "{run:?}");
    }
    for run in &file.runs {
        assert_eq!(run.cohorts.len(), 1, "{run:?}");
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    if cores < 4 {
        assert!(stdout.contains("== 4 workers (oversubscribed"), "{stdout}");
    }
}

#[test]
fn measure_writes_versioned_rows_with_paired_intervals() {
    let scratch = Scratch::new("measure-rows");
    let json = scratch.0.join("rows.json");
    let output = concbench(
        &scratch.0,
        &[
            "measure",
            "--groups",
            "fib_forkjoin",
            "--styles",
            "rayon,evloop",
            "--budget",
            "3s",
            "--min-rounds",
            "3",
            "--seed",
            "7",
            "--workers",
            "2",
            "--json",
            json.to_str().expect("utf-8 path"),
        ],
    );
    assert!(output.status.success(), "{output:?}");
    let file = MeasureFile::parse(&std::fs::read_to_string(&json).expect("rows")).expect("parses");
    // The copy for `concbench report` went to the scratch results directory.
    assert!(scratch.0.join("concbench/measure.json").is_file());
    // One worker count: a sweep of one, at that count, with the full budget.
    assert_eq!(
        (file.schema_version, file.default_workers, file.runs.len()),
        (SCHEMA_VERSION, 2, 1)
    );
    let run = &file.runs[0];
    assert_eq!(
        (run.schema_version, run.seed, run.workers),
        (SCHEMA_VERSION, 7, 2)
    );
    assert_eq!(run.stopping.budget, Duration::from_secs(3));
    let [cohort] = &run.cohorts[..] else {
        panic!("one cohort: {run:?}");
    };
    assert_eq!(
        (cohort.group.as_str(), cohort.reference.as_str()),
        ("fib_forkjoin", "seq")
    );
    assert!(cohort.rounds >= 3, "{cohort:?}");
    let styles: Vec<&str> = cohort.styles.iter().map(|row| row.style.as_str()).collect();
    assert_eq!(styles, ["seq", "evloop", "rayon"]);
    for row in &cohort.styles {
        assert_eq!(row.samples, cohort.rounds, "{row:?}");
        assert!(
            row.wall_ns > 0.0 && row.cpu_ns > 0.0 && row.cpu_per_wall > 0.0,
            "{row:?}"
        );
        match (row.style.as_str(), row.speedup) {
            ("seq", None) => {}
            (_, Some(speedup)) => assert!(
                speedup.lower <= speedup.point && speedup.point <= speedup.upper,
                "{row:?}"
            ),
            _ => panic!("only the reference has no speedup: {row:?}"),
        }
        // Every style, the reference too, has its efficiency against the probe.
        let efficiency = row.efficiency.expect("an efficiency in a CPU group");
        assert!(
            efficiency.lower <= efficiency.point && efficiency.point <= efficiency.upper,
            "{row:?}"
        );
    }
    // The capacity probe ran in the same rounds: its speedup is the host's capacity, and
    // seq's efficiency is its reciprocal (the same rounds' ratios, turned over; no
    // bound on the values themselves: this test shares the machine with the others).
    let capacity = cohort.capacity.as_ref().expect("a probe in a CPU group");
    assert_eq!(
        (capacity.style.as_str(), capacity.samples),
        ("capacity", cohort.rounds)
    );
    let host = capacity.speedup.expect("the probe's speedup").point;
    assert!(host > 0.0 && host.is_finite(), "{capacity:?}");
    let seq_efficiency = cohort.styles[0].efficiency.expect("seq's efficiency").point;
    assert!(
        (seq_efficiency * host - 1.0).abs() < 0.05,
        "seq efficiency {seq_efficiency} × capacity {host}"
    );
    // The gauge is seq against a replica of itself, with its interval.
    let gauge = cohort.gauge.as_ref().expect("a replica gauge");
    assert_eq!(gauge.styles, ["evloop"]);
    let replica = gauge.replica.expect("the replica's ratio");
    assert!(
        replica.lower <= replica.point && replica.point <= replica.upper,
        "{gauge:?}"
    );
    assert!(
        (gauge.spread - (replica.point - 1.0).abs()).abs() < 1e-12,
        "{gauge:?}"
    );
    let table = String::from_utf8_lossy(&output.stdout);
    for needle in ["speedup over seq", "efficiency", "capacity", "noise gauge"] {
        assert!(table.contains(needle), "{needle}: {table}");
    }
}

#[test]
fn compare_exits_0_when_nothing_regressed_and_2_on_unusable_input() {
    let scratch = Scratch::new("compare-exit");
    let binary = common::concbench_binary();
    let json = scratch.0.join("compare.json");
    // The same binary on both sides, judged at a threshold no noise reaches: this test
    // is about the exit codes, not the gate's sensitivity (that is ci/sensitivity.sh's,
    // with release builds and full budgets). A debug build, a 4 s budget and a loaded
    // host once made a side +84 % slower for two rounds, so the bound is a 10× slowdown.
    let output = concbench(
        &scratch.0,
        &[
            "compare",
            "--base",
            binary,
            "--head",
            binary,
            "--groups",
            "fib_forkjoin",
            "--threshold",
            "1000",
            "--budget",
            "4s",
            "--min-rounds",
            "3",
            "--workers",
            "2",
            "--json",
            json.to_str().expect("utf-8 path"),
        ],
    );
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    let run: CompareRun =
        serde_json::from_slice(&std::fs::read(&json).expect("rows")).expect("parses");
    assert!(!run.rows.is_empty());
    assert!(
        run.rows
            .iter()
            .all(|row| row.iterations_per_sample >= 1 && row.rounds >= 1)
    );
    let table = String::from_utf8_lossy(&output.stdout);
    assert!(
        table.contains("**No regression**") && table.contains("fib_forkjoin/rayon"),
        "{table}"
    );

    for (base, expected) in [
        ("/no/such/concbench", "is not a file"),
        ("/bin/true", "benchmark list"),
    ] {
        let output = concbench(&scratch.0, &["compare", "--base", base, "--head", binary]);
        assert_eq!(output.status.code(), Some(2), "{base}: {output:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(expected), "{base}: {stderr}");
    }
}

/// A "build" that lists one benchmark, says it is ready, then answers a sample with
/// garbage: the engine must stop with an error that names it, not hang or count it.
#[test]
fn a_worker_that_breaks_the_protocol_fails_the_run_with_a_clear_error() {
    let scratch = Scratch::new("hostile-worker");
    let script = scratch.0.join("fake-concbench");
    std::fs::write(
        &script,
        r#"#!/bin/sh
case "$*" in
  *--list*) echo '[{"id":"fib_forkjoin/seq/34-cutoff20","skipped":null}]' ;;
  *) echo '{"ready":{"protocol":2,"id":"fib_forkjoin/seq/34-cutoff20","pid":1}}'
     read request
     echo 'sample? never heard of it' ;;
esac
"#,
    )
    .expect("script");
    let mut permissions = std::fs::metadata(&script).expect("metadata").permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut permissions, 0o755);
    std::fs::set_permissions(&script, permissions).expect("chmod");
    let output = concbench(
        &scratch.0,
        &[
            "compare",
            "--base",
            script.to_str().expect("utf-8 path"),
            "--head",
            common::concbench_binary(),
            "--groups",
            "fib_forkjoin",
        ],
    );
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("fib_forkjoin/seq/34-cutoff20 (base)")
            && stderr.contains("unreadable reply"),
        "{stderr}"
    );
}
