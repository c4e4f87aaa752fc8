//! The process style leaves no worker process behind: not after a normal drop, not
//! after a panic in the code that owns the pool, not when its owner dies without
//! dropping it.

mod common;

use std::io::Write;
use std::panic;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use style_process::Processes;
use workloads::{FibBatch, Style};

#[test]
fn dropping_the_pool_reaps_every_worker() {
    let processes = Processes::start(&common::style_config()).expect("start the pool");
    let pids = processes.worker_pids();
    // The pool's workers and the ping-pong partner.
    assert_eq!(pids.len(), common::TEST_WORKERS + 1);
    assert!(
        pids.iter().all(|&pid| common::is_our_child(pid)),
        "workers are running"
    );
    // The workers did real work before the drop.
    let batch = FibBatch::equal(12, 15);
    batch
        .check(&processes.fib_batch(batch.inputs()).expect("fib_batch"))
        .expect("right answers");
    drop(processes);
    for pid in pids {
        assert!(!common::is_our_child(pid), "worker {pid} outlived its pool");
    }
}

#[test]
fn a_panic_in_the_owner_reaps_every_worker() {
    let (pid_sender, pid_receiver) = mpsc::channel();
    let outcome = panic::catch_unwind(move || {
        let processes = Processes::start(&common::style_config()).expect("start the pool");
        pid_sender.send(processes.worker_pids()).expect("send pids");
        panic!("the owner of the pool panics on purpose");
    });
    assert!(outcome.is_err(), "the closure panicked");
    let pids = pid_receiver
        .recv()
        .expect("pids were sent before the panic");
    assert_eq!(pids.len(), common::TEST_WORKERS + 1);
    for pid in pids {
        assert!(!common::is_our_child(pid), "worker {pid} outlived a panic");
    }
}

#[test]
fn a_worker_exits_when_its_pool_closes_the_pipe() {
    // What a worker sees when its pool process is killed: its stdin reaches end of file.
    let mut worker = Command::new(common::concbench_binary())
        .arg(catalog::WORKER_SUBCOMMAND)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start a worker");
    let mut stdin = worker.stdin.take().expect("piped stdin");
    stdin.write_all(&[]).expect("pipe open");
    drop(stdin);
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = worker.try_wait().expect("try_wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = worker.kill();
            let _ = worker.wait();
            panic!("the worker did not exit after end of input");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    assert!(status.success(), "clean exit on end of input: {status}");
}
