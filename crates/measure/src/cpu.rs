//! CPU time of a worker and everything it started, read from inside the worker.
//!
//! `getrusage(RUSAGE_SELF)` covers every thread of the worker at the kernel's full
//! resolution; `RUSAGE_CHILDREN` covers child processes that were started and reaped
//! (the process style's `spawn` units); child processes that stay alive across samples
//! (the process style's pool) are read from `/proc/<pid>/stat`, in clock ticks, and
//! found through `/proc/<pid>/task/<tid>/children`.

use std::time::Duration;

use nix::sys::resource::{UsageWho, getrusage};

/// CPU time used so far by this process, its reaped children and its live descendants.
pub fn process_tree_cpu() -> Duration {
    let usage = |who| {
        getrusage(who).map_or(Duration::ZERO, |usage| {
            timeval(usage.user_time()) + timeval(usage.system_time())
        })
    };
    usage(UsageWho::RUSAGE_SELF)
        + usage(UsageWho::RUSAGE_CHILDREN)
        + live_descendants_cpu(std::process::id())
}

/// CPU time used so far by this process's own threads alone (no children): what a
/// client in this process spent, apart from the server it drives in a child.
pub fn self_cpu() -> Duration {
    getrusage(UsageWho::RUSAGE_SELF).map_or(Duration::ZERO, |usage| {
        timeval(usage.user_time()) + timeval(usage.system_time())
    })
}

fn timeval(value: nix::sys::time::TimeVal) -> Duration {
    Duration::from_secs(value.tv_sec().max(0) as u64)
        + Duration::from_micros(value.tv_usec().max(0) as u64)
}

/// The CPU time of `pid`'s live descendants (not `pid` itself), from `/proc`.
pub fn live_descendants_cpu(pid: u32) -> Duration {
    let tick = clock_tick();
    let mut total = Duration::ZERO;
    let mut pending = children_of(pid);
    while let Some(child) = pending.pop() {
        total += tick * stat_ticks(child).unwrap_or(0) as u32;
        pending.extend(children_of(child));
    }
    total
}

/// `utime + stime` of process `pid` (all its threads), in clock ticks.
pub fn stat_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: count fields after the last ')'.
    let (_, after_name) = stat.rsplit_once(')')?;
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // utime and stime are the 14th and 15th fields of the line, 12th and 13th here.
    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
}

/// The CPU time of process `pid` and its live descendants, from `/proc`, in clock-tick
/// resolution: what an outside observer (a test, the engine) can see.
pub fn observed_tree_cpu(pid: u32) -> Option<Duration> {
    Some(clock_tick() * stat_ticks(pid)? as u32 + live_descendants_cpu(pid))
}

fn children_of(pid: u32) -> Vec<u32> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    tasks
        .flatten()
        .filter_map(|task| std::fs::read_to_string(task.path().join("children")).ok())
        .flat_map(|text| {
            text.split_whitespace()
                .filter_map(|pid| pid.parse().ok())
                .collect::<Vec<u32>>()
        })
        .collect()
}

fn clock_tick() -> Duration {
    let ticks_per_second = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .filter(|&ticks| ticks > 0)
        .unwrap_or(100);
    Duration::from_secs(1) / ticks_per_second as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spinning_shows_up_and_a_child_is_found() {
        let before = process_tree_cpu();
        let start = std::time::Instant::now();
        let mut spins = 0u64;
        while start.elapsed() < Duration::from_millis(60) {
            spins = std::hint::black_box(spins + 1);
        }
        let used = process_tree_cpu() - before;
        assert!(
            used >= Duration::from_millis(30),
            "spun 60 ms, counted {used:?}"
        );

        let mut child = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .expect("sleep");
        assert!(children_of(std::process::id()).contains(&child.id()));
        assert!(observed_tree_cpu(std::process::id()).is_some());
        child.kill().expect("kill");
        child.wait().expect("reap");
        assert!(!children_of(std::process::id()).contains(&child.id()));
    }
}
