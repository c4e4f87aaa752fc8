//! Tasks and messaging: what each style pays per unit of concurrency.
//!
//! - `spawn` — spawn N trivial units (unit `i` returns `i`) and wait for all, at
//!   N = 100 and 10 000: the cost of creating, scheduling and joining a thread, a
//!   process, a job, a callback or a task. `seq`'s units are plain calls: the floor.
//! - `ping_pong` — two units exchange M = 10 000 messages over the style's own channel,
//!   one at a time: the cost of a wake-up and a hand-off.
//! - `sleepers` — N = 1 000 and 10 000 units each wait 10 ms on the style's timer: how
//!   timers and wake-ups scale (the ideal is 10 ms whatever N).
//!
//! The sizes, calls and checks are `measure::suite`'s, shared with the measurement
//! engine (`concbench measure --groups tasks`).
//!
//! What it does not claim: the memory of a unit (that is `concbench scenario tasks`,
//! which runs each size in a fresh process and reads the kernel's accounting), or
//! anything about units that do real work. Styles whose units are threads or processes
//! run only the sizes this machine can hold safely (`workloads::tasks::unit_limit`);
//! the others are skipped with the reason.

mod common;

use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use workloads::Workload;

fn spawn(criterion: &mut Criterion) {
    common::record_run("tasks");
    common::bench_workload(criterion, Workload::Spawn);
}

fn ping_pong(criterion: &mut Criterion) {
    common::bench_workload(criterion, Workload::PingPong);
}

fn sleepers(criterion: &mut Criterion) {
    common::bench_workload(criterion, Workload::Sleepers);
}

criterion_group! {
    name = tasks_group;
    // See benches/cpu.rs for why 10 000 resamples. Shorter phases than `cpu`: the
    // units are cheap, and there are many (style, size) pairs.
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(10)
        .nresamples(10_000);
    targets = spawn, ping_pong, sleepers
}
criterion_main!(tasks_group);
