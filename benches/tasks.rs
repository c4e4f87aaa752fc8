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
//! What it does not claim: the memory of a unit (that is `concbench scenario tasks`,
//! which runs each size in a fresh process and reads the kernel's accounting), or
//! anything about units that do real work. Styles whose units are threads or processes
//! run only the sizes this machine can hold safely (`workloads::tasks::unit_limit`);
//! the others are skipped with the reason.

mod common;

use std::time::Duration;

use criterion::{Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use workloads::tasks;
use workloads::{StyleEntry, Workload};

/// `spawn`: units per iteration.
const SPAWN_UNITS: [usize; 2] = [100, 10_000];
/// `ping_pong`: round trips per iteration.
const PING_PONG_MESSAGES: u64 = 10_000;
/// `sleepers`: units per iteration, and how long each sleeps.
const SLEEPER_UNITS: [usize; 2] = [1_000, 10_000];
const SLEEP: Duration = Duration::from_millis(10);

fn spawn(criterion: &mut Criterion) {
    common::record_run("tasks");
    let mut group = criterion.benchmark_group(Workload::Spawn.name());
    group.sampling_mode(SamplingMode::Flat);
    for entry in catalog::STYLES {
        let Some(style) = common::build(entry, Workload::Spawn) else {
            continue;
        };
        for n_units in SPAWN_UNITS
            .into_iter()
            .filter(|&n| within_limit(entry, Workload::Spawn, n))
        {
            group.throughput(Throughput::Elements(n_units as u64));
            common::bench_checked(
                &mut group,
                entry,
                n_units,
                || style.spawn(n_units),
                |answers| tasks::check_spawn(n_units, answers),
            );
        }
    }
    group.finish();
}

fn ping_pong(criterion: &mut Criterion) {
    let mut group = criterion.benchmark_group(Workload::PingPong.name());
    group.sampling_mode(SamplingMode::Flat);
    group.throughput(Throughput::Elements(PING_PONG_MESSAGES));
    for entry in catalog::STYLES {
        let Some(style) = common::build(entry, Workload::PingPong) else {
            continue;
        };
        common::bench_checked(
            &mut group,
            entry,
            PING_PONG_MESSAGES,
            || style.ping_pong(PING_PONG_MESSAGES),
            |observed| tasks::check_ping_pong(PING_PONG_MESSAGES, observed),
        );
    }
    group.finish();
}

fn sleepers(criterion: &mut Criterion) {
    let mut group = criterion.benchmark_group(Workload::Sleepers.name());
    group.sampling_mode(SamplingMode::Flat);
    for entry in catalog::STYLES {
        let Some(style) = common::build(entry, Workload::Sleepers) else {
            continue;
        };
        for n_units in SLEEPER_UNITS
            .into_iter()
            .filter(|&n| within_limit(entry, Workload::Sleepers, n))
        {
            group.throughput(Throughput::Elements(n_units as u64));
            common::bench_checked(
                &mut group,
                entry,
                n_units,
                || style.sleepers(n_units, SLEEP),
                |observed| tasks::check_sleepers(n_units, observed),
            );
        }
    }
    group.finish();
}

/// Whether `n_units` of this style's units fit this machine's limits; says why not.
fn within_limit(entry: &StyleEntry, workload: Workload, n_units: usize) -> bool {
    let limit = tasks::unit_limit(entry.unit);
    let fits = n_units <= limit.max_units;
    if !fits {
        eprintln!(
            "{workload}/{}/{n_units}: not attempted: more {} than {} ({})",
            entry.name,
            entry.unit.plural(),
            limit.max_units,
            limit.reason
        );
    }
    fits
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
