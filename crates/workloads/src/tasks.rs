//! Tasks and messaging: what one unit of concurrency costs in each style.
//!
//! - `spawn`: spawn N trivial units (unit `i` returns `i`) and wait for all of them;
//! - `ping_pong`: two units exchange M messages over the style's own channel, each side
//!   checking that every message arrives in order;
//! - `sleepers`: N units each wait on a timer and finish; every one must wake, none
//!   early.
//!
//! A "unit" is whatever the style spawns ([`UnitKind`]): a task, an OS thread, an OS
//! process. [`unit_limit`] says how many of them a style may hold at once on this
//! machine, so that nothing here exhausts threads, processes or memory.

use std::time::{Duration, Instant};

use crate::check::WrongAnswer;
use crate::style::StyleError;

/// What one unit of concurrency is in a style.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnitKind {
    /// A function call on the calling thread (the sequential baseline).
    Call,
    /// A task, job or callback multiplexed onto a few threads: heap memory only.
    Task,
    /// An operating-system thread.
    Thread,
    /// An operating-system process.
    Process,
}

impl UnitKind {
    /// The unit's name, plural, for tables.
    pub fn plural(self) -> &'static str {
        match self {
            Self::Call => "calls",
            Self::Task => "tasks",
            Self::Thread => "threads",
            Self::Process => "processes",
        }
    }
}

/// What a `ping_pong` run observed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PingPong {
    /// Pings the ponging unit received.
    pub pings: u64,
    /// Pongs the pinging unit received.
    pub pongs: u64,
    /// Messages that arrived with a value other than the next expected one.
    pub out_of_order: u64,
}

/// What a `sleepers` run observed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Sleepers {
    /// Units that woke up and finished.
    pub woke: usize,
    /// Units that woke before their timer had run its full duration.
    pub early: usize,
    /// Time from the start until the last unit was spawned.
    pub spawned_in: Duration,
    /// Time from the start until the last unit finished.
    pub finished_in: Duration,
}

/// One side of a `ping_pong` exchange: counts what it receives and whether each value is
/// the one expected next (pings and pongs both count up from zero).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Receiver {
    next: u64,
    received: u64,
    out_of_order: u64,
}

impl Receiver {
    /// A receiver that has already received `received` messages, `out_of_order` of them
    /// out of order: the tally of a receiving side that ran elsewhere (in another
    /// process) and reported its counts.
    pub fn from_counts(received: u64, out_of_order: u64) -> Self {
        Self {
            next: received,
            received,
            out_of_order,
        }
    }

    /// Messages received so far.
    pub fn received(&self) -> u64 {
        self.received
    }

    /// Messages received so far that were not the next one expected.
    pub fn out_of_order(&self) -> u64 {
        self.out_of_order
    }

    /// Records one received message.
    pub fn receive(&mut self, value: u64) {
        if value != self.next {
            self.out_of_order += 1;
        }
        self.next = value.wrapping_add(1);
        self.received += 1;
    }
}

impl PingPong {
    /// Combines what the ponging side (`pings`) and the pinging side (`pongs`) received.
    pub fn from_sides(pings: Receiver, pongs: Receiver) -> Self {
        Self {
            pings: pings.received,
            pongs: pongs.received,
            out_of_order: pings.out_of_order + pongs.out_of_order,
        }
    }
}

impl Sleepers {
    /// Tallies the units' reports (`true`: the unit slept its full duration) with the
    /// run's two timings.
    pub fn tally(
        slept_full: impl IntoIterator<Item = bool>,
        spawned_in: Duration,
        finished_in: Duration,
    ) -> Self {
        let mut tally = Self {
            spawned_in,
            finished_in,
            ..Self::default()
        };
        for full in slept_full {
            tally.woke += 1;
            tally.early += usize::from(!full);
        }
        tally
    }
}

/// The ponging unit of a `ping_pong` over `std::sync::mpsc` (the std styles' channel):
/// answers every ping with itself until the pinger drops its sender, and returns what it
/// received.
pub fn std_ponger(
    pings: std::sync::mpsc::Receiver<u64>,
    pongs: std::sync::mpsc::Sender<u64>,
) -> Receiver {
    let mut received = Receiver::default();
    for ping in pings {
        received.receive(ping);
        if pongs.send(ping).is_err() {
            break;
        }
    }
    received
}

/// The pinging unit of a `ping_pong` over `std::sync::mpsc`: sends `n_messages` pings,
/// each after the pong of the one before, then drops its sender (which ends the ponger),
/// and returns what it received.
pub fn std_pinger(
    n_messages: u64,
    pings: std::sync::mpsc::Sender<u64>,
    pongs: std::sync::mpsc::Receiver<u64>,
) -> Receiver {
    let mut received = Receiver::default();
    for message in 0..n_messages {
        if pings.send(message).is_err() {
            break;
        }
        match pongs.recv() {
            Ok(pong) => received.receive(pong),
            Err(std::sync::mpsc::RecvError) => break,
        }
    }
    received
}

/// The ponging unit of a `ping_pong` over `async-channel` (smol's channel, and the
/// io_uring runtimes', which have none of their own): [`std_ponger`], awaiting.
pub async fn async_ponger(
    pings: async_channel::Receiver<u64>,
    pongs: async_channel::Sender<u64>,
) -> Receiver {
    let mut received = Receiver::default();
    // Ends when the pinger drops its sender.
    while let Ok(ping) = pings.recv().await {
        received.receive(ping);
        if pongs.send(ping).await.is_err() {
            break;
        }
    }
    received
}

/// The pinging unit of a `ping_pong` over `async-channel`: [`std_pinger`], awaiting.
pub async fn async_pinger(
    n_messages: u64,
    pings: async_channel::Sender<u64>,
    pongs: async_channel::Receiver<u64>,
) -> Receiver {
    let mut received = Receiver::default();
    for message in 0..n_messages {
        if pings.send(message).await.is_err() {
            break;
        }
        match pongs.recv().await {
            Ok(pong) => received.receive(pong),
            Err(_) => break,
        }
    }
    received
}

/// What a sleeping unit reports: whether it slept at least `sleep` since `began`.
pub fn slept_full(began: Instant, sleep: Duration) -> bool {
    began.elapsed() >= sleep
}

/// What unit `index` of a `spawn` run returns.
pub fn spawn_unit(index: usize) -> u64 {
    index as u64
}

/// Checks a `spawn` run: unit `i` ran exactly once and returned `i`.
pub fn check_spawn(n_units: usize, answers: &[u64]) -> Result<(), WrongAnswer> {
    if answers.len() != n_units {
        return Err(WrongAnswer::Count {
            expected: n_units,
            got: answers.len(),
        });
    }
    match answers
        .iter()
        .enumerate()
        .find(|&(index, &answer)| answer != spawn_unit(index))
    {
        Some((index, &got)) => Err(WrongAnswer::Unit {
            index,
            expected: spawn_unit(index),
            got,
        }),
        None => Ok(()),
    }
}

/// Checks a `ping_pong` run of `n_messages` round trips.
pub fn check_ping_pong(n_messages: u64, observed: &PingPong) -> Result<(), WrongAnswer> {
    if observed.pings == n_messages && observed.pongs == n_messages && observed.out_of_order == 0 {
        Ok(())
    } else {
        Err(WrongAnswer::Messages {
            expected: n_messages,
            pings: observed.pings,
            pongs: observed.pongs,
            out_of_order: observed.out_of_order,
        })
    }
}

/// Checks a `sleepers` run of `n_units` units.
pub fn check_sleepers(n_units: usize, observed: &Sleepers) -> Result<(), WrongAnswer> {
    if observed.woke == n_units && observed.early == 0 {
        Ok(())
    } else {
        Err(WrongAnswer::Sleepers {
            expected: n_units,
            woke: observed.woke,
            early: observed.early,
        })
    }
}

/// How many units of a kind may exist at once here, and why no more.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitLimit {
    /// The most units to attempt.
    pub max_units: usize,
    /// What sets the limit, for "not attempted" lines.
    pub reason: String,
}

/// Refuses to run `n_units` units at once when that is above `limit`: the caller says
/// "not attempted" instead of bringing the machine near its limits.
pub fn ensure_within(limit: &UnitLimit, n_units: usize) -> Result<(), StyleError> {
    if n_units > limit.max_units {
        Err(StyleError::TooManyUnits {
            requested: n_units,
            max_units: limit.max_units,
            reason: limit.reason.clone(),
        })
    } else {
        Ok(())
    }
}

/// The processes a style may start at once, whatever the machine allows: each is a
/// whole `concbench` process (megabytes, milliseconds to start).
pub const PROCESS_CAP: usize = 512;

/// Rough resident cost of one unit, used to keep a run within half the available memory.
fn bytes_per_unit(kind: UnitKind) -> u64 {
    match kind {
        UnitKind::Call | UnitKind::Task => 4 << 10,
        // Stack pages touched, the kernel stack and task struct.
        UnitKind::Thread => 64 << 10,
        // A process's private pages and page tables.
        UnitKind::Process => 8 << 20,
    }
}

/// The most units of `kind` to attempt at once on this machine: half of every limit that
/// applies (`ulimit -u`, `kernel.threads-max`, `vm.max_map_count`, available memory), so
/// that a run never brings the machine near one.
pub fn unit_limit(kind: UnitKind) -> UnitLimit {
    let mut limits: Vec<(u64, String)> = Vec::new();
    if let Some(available) = linux::mem_available_bytes() {
        let units = available / 2 / bytes_per_unit(kind);
        limits.push((
            units,
            format!(
                "half the available memory ({} MiB) at about {} KiB per unit",
                available >> 20,
                bytes_per_unit(kind) >> 10
            ),
        ));
    }
    if matches!(kind, UnitKind::Thread | UnitKind::Process) {
        if let Some(max_processes) = linux::max_user_processes() {
            limits.push((
                max_processes / 2,
                format!("half of `ulimit -u` ({max_processes})"),
            ));
        }
        if let Some(threads_max) = linux::read_number("/proc/sys/kernel/threads-max") {
            limits.push((
                threads_max / 2,
                format!("half of kernel.threads-max ({threads_max})"),
            ));
        }
    }
    if kind == UnitKind::Thread
        && let Some(map_count) = linux::read_number("/proc/sys/vm/max_map_count")
    {
        // Every thread stack is a mapping plus its guard page.
        limits.push((
            map_count / 4,
            format!("a quarter of vm.max_map_count ({map_count}): two mappings per thread stack"),
        ));
    }
    if kind == UnitKind::Process {
        limits.push((
            PROCESS_CAP as u64,
            format!("the process style's cap of {PROCESS_CAP}"),
        ));
    }
    let (max_units, reason) = limits
        .into_iter()
        .min_by_key(|(units, _)| *units)
        .unwrap_or((u64::MAX, "no limit found".into()));
    UnitLimit {
        max_units: usize::try_from(max_units).unwrap_or(usize::MAX),
        reason,
    }
}

/// Memory accounting of the current process, from the kernel.
pub mod memory {
    /// Resident set size now, in bytes (`VmRSS`).
    pub fn resident_bytes() -> Option<u64> {
        super::linux::status_kib("VmRSS:").map(|kib| kib << 10)
    }

    /// Peak resident set size since the process started, in bytes (`VmHWM`).
    pub fn peak_resident_bytes() -> Option<u64> {
        super::linux::status_kib("VmHWM:").map(|kib| kib << 10)
    }

    /// Private resident bytes of process `pid` (`Private_Clean + Private_Dirty` from
    /// `smaps_rollup`): what its pages cost beyond those it shares with other processes
    /// running the same binary.
    pub fn private_resident_bytes(pid: u32) -> Option<u64> {
        let rollup = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok()?;
        let field = |name: &str| -> Option<u64> {
            rollup
                .lines()
                .find_map(|line| line.strip_prefix(name))
                .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
        };
        Some((field("Private_Clean:")? + field("Private_Dirty:")?) << 10)
    }
}

/// Readers of the kernel's own numbers, from `/proc`.
mod linux {
    pub(super) fn read_number(path: &str) -> Option<u64> {
        std::fs::read_to_string(path).ok()?.trim().parse().ok()
    }

    pub(super) fn mem_available_bytes() -> Option<u64> {
        let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
        let kib: u64 = meminfo
            .lines()
            .find_map(|line| line.strip_prefix("MemAvailable:"))?
            .split_whitespace()
            .next()?
            .parse()
            .ok()?;
        Some(kib << 10)
    }

    /// The soft `RLIMIT_NPROC` (`ulimit -u`); `None` when unlimited or unknown.
    pub(super) fn max_user_processes() -> Option<u64> {
        let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
        let line = limits
            .lines()
            .find(|line| line.starts_with("Max processes"))?;
        line.split_whitespace().nth(2)?.parse().ok()
    }

    pub(super) fn status_kib(field: &str) -> Option<u64> {
        let status = std::fs::read_to_string("/proc/self/status").ok()?;
        status
            .lines()
            .find_map(|line| line.strip_prefix(field))?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spawn_check_names_the_unit_that_went_wrong() {
        assert_eq!(check_spawn(3, &[0, 1, 2]), Ok(()));
        assert_eq!(check_spawn(0, &[]), Ok(()));
        assert!(matches!(
            check_spawn(3, &[0, 1]),
            Err(WrongAnswer::Count {
                expected: 3,
                got: 2
            })
        ));
        assert!(matches!(
            check_spawn(3, &[0, 0, 2]),
            Err(WrongAnswer::Unit {
                index: 1,
                expected: 1,
                got: 0
            })
        ));
    }

    #[test]
    fn ping_pong_check_wants_every_message_in_order() {
        let right = PingPong {
            pings: 10,
            pongs: 10,
            out_of_order: 0,
        };
        assert_eq!(check_ping_pong(10, &right), Ok(()));
        assert!(check_ping_pong(11, &right).is_err());
        assert!(
            check_ping_pong(
                10,
                &PingPong {
                    out_of_order: 1,
                    ..right
                }
            )
            .is_err()
        );
        assert!(check_ping_pong(10, &PingPong { pongs: 9, ..right }).is_err());
    }

    #[test]
    fn receivers_count_messages_out_of_order() {
        let mut in_order = Receiver::default();
        (0..5).for_each(|value| in_order.receive(value));
        let mut shuffled = Receiver::default();
        [0, 1, 3, 4]
            .into_iter()
            .for_each(|value| shuffled.receive(value));
        let observed = PingPong::from_sides(in_order, shuffled);
        assert_eq!(
            (observed.pings, observed.pongs, observed.out_of_order),
            (5, 4, 1)
        );
    }

    #[test]
    fn sleepers_tally_counts_early_units() {
        let tally = Sleepers::tally(
            [true, false, true],
            Duration::from_millis(1),
            Duration::from_millis(2),
        );
        assert_eq!((tally.woke, tally.early), (3, 1));
        assert!(slept_full(
            Instant::now() - Duration::from_millis(5),
            Duration::from_millis(1)
        ));
        assert!(!slept_full(Instant::now(), Duration::from_secs(60)));
    }

    #[test]
    fn sleepers_check_wants_every_unit_awake_and_none_early() {
        let right = Sleepers {
            woke: 5,
            ..Sleepers::default()
        };
        assert_eq!(check_sleepers(5, &right), Ok(()));
        assert!(check_sleepers(6, &right).is_err());
        assert!(check_sleepers(5, &Sleepers { early: 1, ..right }).is_err());
    }

    #[test]
    fn limits_are_positive_and_processes_are_capped() {
        for kind in [
            UnitKind::Call,
            UnitKind::Task,
            UnitKind::Thread,
            UnitKind::Process,
        ] {
            let limit = unit_limit(kind);
            assert!(limit.max_units > 0, "{kind:?}: {limit:?}");
            assert!(!limit.reason.is_empty());
        }
        assert!(unit_limit(UnitKind::Process).max_units <= PROCESS_CAP);
        assert!(unit_limit(UnitKind::Thread).max_units <= unit_limit(UnitKind::Task).max_units);
    }

    #[test]
    fn memory_is_read_from_the_kernel() {
        let resident = memory::resident_bytes().expect("VmRSS");
        let peak = memory::peak_resident_bytes().expect("VmHWM");
        assert!(resident > 0 && peak >= resident, "{resident} {peak}");
        assert!(memory::private_resident_bytes(std::process::id()).expect("smaps_rollup") > 0);
    }
}
