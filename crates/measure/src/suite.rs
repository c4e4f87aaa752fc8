//! The benchmarks, defined once: which workload, at which size, run how and checked how.
//!
//! The criterion benches (`benches/cpu.rs`, `benches/tasks.rs`) and the engine's worker
//! processes both take their cases from here, so the two paths cannot drift apart: the
//! same inputs, the same call into the style, the same check of the answer.

use std::fmt;
use std::time::Duration;

use workloads::tasks::{self, PingPong, Sleepers};
use workloads::{FibBatch, ForkJoin, Style, StyleEntry, StyleError, Support, Workload};

/// `fib_batch`: this many inputs, all equal to [`FIB_BATCH_N`].
pub const FIB_BATCH_LEN: usize = 64;
/// See [`FIB_BATCH_LEN`].
pub const FIB_BATCH_N: u32 = 27;
/// `fib_skewed`: this many inputs between [`SKEWED_N_MIN`] and [`SKEWED_N_MAX`].
pub const SKEWED_LEN: usize = 256;
/// See [`SKEWED_LEN`].
pub const SKEWED_N_MIN: u32 = 20;
/// See [`SKEWED_LEN`].
pub const SKEWED_N_MAX: u32 = 34;
/// The seed of the skewed inputs.
pub const SKEWED_SEED: u64 = 0x5eed;
/// `fib_forkjoin`: `fib(FORKJOIN_N)` with a task for every node above [`FORKJOIN_CUTOFF`].
pub const FORKJOIN_N: u32 = 34;
/// See [`FORKJOIN_N`].
pub const FORKJOIN_CUTOFF: u32 = 20;
/// `spawn`: units per iteration.
pub const SPAWN_UNITS: [usize; 2] = [100, 10_000];
/// `ping_pong`: round trips per iteration.
pub const PING_PONG_MESSAGES: u64 = 10_000;
/// `sleepers`: units per iteration.
pub const SLEEPER_UNITS: [usize; 2] = [1_000, 10_000];
/// `sleepers`: how long each unit sleeps.
pub const SLEEP: Duration = Duration::from_millis(10);

/// The CPU-bound groups.
pub const CPU_GROUPS: [Workload; 3] = [
    Workload::FibBatch,
    Workload::FibSkewed,
    Workload::FibForkJoin,
];
/// The task and messaging groups.
pub const TASK_GROUPS: [Workload; 3] = [Workload::Spawn, Workload::PingPong, Workload::Sleepers];

/// One workload at one size: what an iteration does, independent of the style.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Case {
    /// `fib_batch` or `fib_skewed`: `fib` over a batch of inputs.
    Batch {
        /// Which of the two groups.
        workload: Workload,
        /// The inputs.
        batch: FibBatch,
    },
    /// `fib_forkjoin`.
    ForkJoin(ForkJoin),
    /// `spawn` of this many units.
    Spawn(usize),
    /// `ping_pong` of this many round trips.
    PingPong(u64),
    /// `sleepers` with this many units, each sleeping [`SLEEP`].
    Sleepers(usize),
}

/// What one iteration returned, kept until the sample's timing is over and then checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// One `fib` answer per input.
    Batch(Vec<u64>),
    /// The fork-join sum.
    ForkJoin(u64),
    /// One answer per spawned unit.
    Spawn(Vec<u64>),
    /// What the two units saw.
    PingPong(PingPong),
    /// What the sleepers reported.
    Sleepers(Sleepers),
}

impl Case {
    /// The cases of `workload`, at the sizes the benches use (one, or one per size).
    /// Empty for workloads that are not one of the CPU or task groups.
    pub fn all(workload: Workload) -> Vec<Case> {
        match workload {
            Workload::FibBatch => vec![Case::Batch {
                workload,
                batch: FibBatch::equal(FIB_BATCH_LEN, FIB_BATCH_N),
            }],
            Workload::FibSkewed => vec![Case::Batch {
                workload,
                batch: FibBatch::skewed(SKEWED_LEN, SKEWED_N_MIN, SKEWED_N_MAX, SKEWED_SEED),
            }],
            Workload::FibForkJoin => {
                vec![Case::ForkJoin(ForkJoin::new(FORKJOIN_N, FORKJOIN_CUTOFF))]
            }
            Workload::Spawn => SPAWN_UNITS.into_iter().map(Case::Spawn).collect(),
            Workload::PingPong => vec![Case::PingPong(PING_PONG_MESSAGES)],
            Workload::Sleepers => SLEEPER_UNITS.into_iter().map(Case::Sleepers).collect(),
            Workload::Throughput
            | Workload::HogLatency
            | Workload::Connections
            | Workload::IoWait => Vec::new(),
        }
    }

    /// The workload (criterion group) this case belongs to.
    pub fn workload(&self) -> Workload {
        match self {
            Case::Batch { workload, .. } => *workload,
            Case::ForkJoin(_) => Workload::FibForkJoin,
            Case::Spawn(_) => Workload::Spawn,
            Case::PingPong(_) => Workload::PingPong,
            Case::Sleepers(_) => Workload::Sleepers,
        }
    }

    /// The parameter as criterion's `BenchmarkId` shows it (`64x27`, `34-cutoff20`, `100`).
    pub fn parameter(&self) -> String {
        match self {
            Case::Batch { workload, batch } if *workload == Workload::FibBatch => {
                format!("{}x{FIB_BATCH_N}", batch.len())
            }
            Case::Batch { batch, .. } => format!("{}x{SKEWED_N_MIN}-{SKEWED_N_MAX}", batch.len()),
            Case::ForkJoin(job) => format!("{}-cutoff{}", job.n, job.cutoff),
            Case::Spawn(n_units) | Case::Sleepers(n_units) => n_units.to_string(),
            Case::PingPong(n_messages) => n_messages.to_string(),
        }
    }

    /// Elements per iteration (inputs, units or messages), for criterion's throughput;
    /// `None` for fork-join, whose one answer is not a count of anything.
    pub fn elements(&self) -> Option<u64> {
        match self {
            Case::Batch { batch, .. } => Some(batch.len() as u64),
            Case::ForkJoin(_) => None,
            Case::Spawn(n_units) | Case::Sleepers(n_units) => Some(*n_units as u64),
            Case::PingPong(n_messages) => Some(*n_messages),
        }
    }

    /// How many units at once the case asks a style for (0 for the CPU cases, which do
    /// not scale their units with a size), to compare with [`tasks::unit_limit`].
    fn units_at_once(&self) -> usize {
        match self {
            Case::Spawn(n_units) | Case::Sleepers(n_units) => *n_units,
            Case::Batch { .. } | Case::ForkJoin(_) | Case::PingPong(_) => 0,
        }
    }

    /// Whether `entry` runs this case here, or why not: the workload is not applicable
    /// to the style, or it needs more units than this machine may safely hold.
    pub fn applies_to(&self, entry: &StyleEntry) -> Result<(), String> {
        if let Support::NotApplicable(reason) = (entry.support)(self.workload()) {
            return Err(format!("n/a: {reason}"));
        }
        let limit = tasks::unit_limit(entry.unit);
        if self.units_at_once() > limit.max_units {
            return Err(format!(
                "not attempted: more {} than {} ({})",
                entry.unit.plural(),
                limit.max_units,
                limit.reason
            ));
        }
        Ok(())
    }

    /// Runs one iteration on `style`; the answer is unchecked (see [`Case::check`]).
    pub fn run(&self, style: &dyn Style) -> Result<Answer, StyleError> {
        Ok(match self {
            Case::Batch { batch, .. } => Answer::Batch(style.fib_batch(batch.inputs())?),
            Case::ForkJoin(job) => Answer::ForkJoin(style.fib_forkjoin(*job)?),
            Case::Spawn(n_units) => Answer::Spawn(style.spawn(*n_units)?),
            Case::PingPong(n_messages) => Answer::PingPong(style.ping_pong(*n_messages)?),
            Case::Sleepers(n_units) => Answer::Sleepers(style.sleepers(*n_units, SLEEP)?),
        })
    }

    /// Checks one iteration's answer against the known right one.
    pub fn check(&self, answer: &Answer) -> Result<(), String> {
        let result = match (self, answer) {
            (Case::Batch { batch, .. }, Answer::Batch(answers)) => batch.check(answers),
            (Case::ForkJoin(job), Answer::ForkJoin(answer)) => job.check(*answer),
            (Case::Spawn(n_units), Answer::Spawn(answers)) => tasks::check_spawn(*n_units, answers),
            (Case::PingPong(n_messages), Answer::PingPong(observed)) => {
                tasks::check_ping_pong(*n_messages, observed)
            }
            (Case::Sleepers(n_units), Answer::Sleepers(observed)) => {
                tasks::check_sleepers(*n_units, observed)
            }
            (case, answer) => {
                return Err(format!("{case:?} cannot have answered {answer:?}"));
            }
        };
        result.map_err(|wrong| wrong.to_string())
    }
}

/// A benchmark's identity: `group/style/parameter`, as criterion names it.
#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct BenchmarkId {
    /// The workload (criterion group).
    pub group: String,
    /// The style (criterion function).
    pub style: String,
    /// The size (criterion value).
    pub parameter: String,
}

impl BenchmarkId {
    /// Parses `group/style/parameter`.
    pub fn parse(text: &str) -> Option<Self> {
        let mut parts = text.splitn(3, '/');
        let (group, style, parameter) = (parts.next()?, parts.next()?, parts.next()?);
        if group.is_empty() || style.is_empty() || parameter.is_empty() {
            return None;
        }
        Some(Self {
            group: group.to_owned(),
            style: style.to_owned(),
            parameter: parameter.to_owned(),
        })
    }

    /// The `group/parameter` cohort whose styles are compared with each other.
    pub fn cohort(&self) -> String {
        format!("{}/{}", self.group, self.parameter)
    }
}

impl fmt::Display for BenchmarkId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.group, self.style, self.parameter)
    }
}

/// A benchmark this build can run, or one it skips and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    /// The benchmark.
    pub id: BenchmarkId,
    /// `Ok` when it runs here, else the reason it does not (`n/a: …`, `not attempted: …`).
    pub runs: Result<(), String>,
}

/// Every (style, case) of `groups`, in catalog order, each with whether it runs here.
pub fn list(groups: &[Workload]) -> Vec<Listed> {
    let mut listed = Vec::new();
    for &workload in groups {
        for case in Case::all(workload) {
            for entry in catalog::STYLES {
                listed.push(Listed {
                    id: BenchmarkId {
                        group: workload.name().to_owned(),
                        style: entry.name.to_owned(),
                        parameter: case.parameter(),
                    },
                    runs: case.applies_to(entry),
                });
            }
        }
    }
    listed
}

/// The style entry and case of `id`, when this build has both.
/// The engine's capacity probe ([`crate::capacity`]) is found by its name too, though it
/// is in no list.
pub fn find(id: &BenchmarkId) -> Option<(&'static StyleEntry, Case)> {
    let entry = catalog::find(&id.style).or_else(|| {
        (id.style == crate::capacity::CAPACITY_PROBE).then_some(&crate::capacity::ENTRY)
    })?;
    let workload = workloads::Workload::ALL
        .into_iter()
        .find(|workload| workload.name() == id.group)?;
    let case = Case::all(workload)
        .into_iter()
        .find(|case| case.parameter() == id.parameter)?;
    Some((entry, case))
}

/// Parses a group name (`fib_batch`), or the shorthands `cpu` and `tasks`.
pub fn parse_groups(text: &str) -> Result<Vec<Workload>, String> {
    let mut groups = Vec::new();
    for name in text
        .split(',')
        .map(str::trim)
        .filter(|name| !name.is_empty())
    {
        match name {
            "cpu" => groups.extend(CPU_GROUPS),
            "tasks" => groups.extend(TASK_GROUPS),
            _ => {
                let workload = CPU_GROUPS
                    .into_iter()
                    .chain(TASK_GROUPS)
                    .find(|workload| workload.name() == name)
                    .ok_or_else(|| {
                        format!(
                            "unknown group `{name}`: try cpu, tasks, or one of fib_batch, \
                             fib_skewed, fib_forkjoin, spawn, ping_pong, sleepers"
                        )
                    })?;
                groups.push(workload);
            }
        }
    }
    groups.dedup();
    if groups.is_empty() {
        return Err("no group named".to_owned());
    }
    Ok(groups)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_match_the_benches_names() {
        let parameters: Vec<String> = CPU_GROUPS
            .into_iter()
            .chain(TASK_GROUPS)
            .flat_map(Case::all)
            .map(|case| format!("{}/{}", case.workload(), case.parameter()))
            .collect();
        assert_eq!(
            parameters,
            [
                "fib_batch/64x27",
                "fib_skewed/256x20-34",
                "fib_forkjoin/34-cutoff20",
                "spawn/100",
                "spawn/10000",
                "ping_pong/10000",
                "sleepers/1000",
                "sleepers/10000"
            ]
        );
    }

    #[test]
    fn every_listed_benchmark_is_found_again_by_its_id() {
        for listed in list(&CPU_GROUPS) {
            let parsed = BenchmarkId::parse(&listed.id.to_string()).expect("parses");
            assert_eq!(parsed, listed.id);
            let (entry, case) = find(&parsed).expect("found");
            assert_eq!(entry.name, parsed.style);
            assert_eq!(case.parameter(), parsed.parameter);
        }
        assert!(BenchmarkId::parse("fib_batch/seq").is_none());
        assert!(find(&BenchmarkId::parse("fib_batch/seq/65x27").expect("parses")).is_none());
    }

    #[test]
    fn a_wrong_answer_is_caught() {
        let case = &Case::all(Workload::FibBatch)[0];
        let style = style_seq::Sequential;
        let answer = case.run(&style).expect("runs");
        assert_eq!(case.check(&answer), Ok(()));
        let Answer::Batch(mut answers) = answer else {
            panic!("a batch answer");
        };
        answers[3] += 1;
        assert!(case.check(&Answer::Batch(answers)).is_err());
        assert!(case.check(&Answer::ForkJoin(1)).is_err());
    }

    #[test]
    fn groups_parse_with_shorthands_and_reject_unknown_names() {
        assert_eq!(parse_groups("cpu"), Ok(CPU_GROUPS.to_vec()));
        assert_eq!(
            parse_groups("fib_batch, spawn"),
            Ok(vec![Workload::FibBatch, Workload::Spawn])
        );
        assert!(parse_groups("throughput").is_err());
        assert!(parse_groups("").is_err());
    }
}
