//! The capacity probe: what the machine's workers could do in this round, sampled
//! beside the styles so that a change in the host's parallel capacity pairs away.
//!
//! On a shared host the second core is sometimes worth less than the first (a
//! neighbour takes part of it), and that can change within minutes. A style's speedup
//! over the single-threaded reference then moves with the host, not with the style:
//! two runs of `concbench measure` 47 minutes apart saw every parallel style of
//! `fib_skewed` lose 4–5 % against `seq` while the single-threaded styles held
//! (`reports/2026-12-02-vm/reproducibility-aligned.md`). No single-threaded reference
//! can pair that away.
//!
//! The probe is an instrument, not a style: it is never in the catalog, the matrix or
//! criterion's suites. It does a CPU case's work the way a scheduler with perfect
//! knowledge would, on `workers` plain threads kept warm for its life: the work items (a
//! batch's inputs, or every leaf of the fork-join tree) ordered largest first by their
//! known cost, handed out through one atomic index, no other coordination. Its speedup over the reference
//! in a round is what the host offered in that round; a style's *efficiency*, its time
//! against the probe's in the same round, is what the style made of it, and that is the
//! figure that reproduces across runs and hosts.

use std::cmp::Reverse;
use std::net::TcpListener;
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use workloads::server::{ServeConfig, ServerHandle};
use workloads::tasks::{PingPong, Sleepers, UnitKind};
use workloads::{
    CpuThreads, ForkJoin, ServerModel, Style, StyleEntry, StyleError, Support, Workload, fib,
};

/// The probe's name where a style's would stand (`fib_batch/capacity/64x27`). No catalog
/// style may take it (a test keeps it so).
pub const CAPACITY_PROBE: &str = "capacity";

const NOT_A_STYLE: &str = "the capacity probe is an instrument of the engine for the CPU groups";

/// The probe as the worker process builds it, beside the catalog's entries.
pub static ENTRY: StyleEntry = StyleEntry {
    name: CAPACITY_PROBE,
    summary: "instrument: work items largest first from one atomic index on `workers` \
              threads kept warm (the parallel capacity the host offered)",
    support: |workload| match workload {
        Workload::FibBatch | Workload::FibSkewed | Workload::FibForkJoin => Support::Runs,
        _ => Support::NotApplicable(NOT_A_STYLE),
    },
    build: |config| Ok(Box::new(CapacityProbe::new(config.workers))),
    server_model: ServerModel::Concurrent,
    cpu_threads: CpuThreads::Workers,
    unit: UnitKind::Thread,
};

/// How long an idle probe thread watches for the next job before it sleeps: long enough
/// to catch the next iteration of a sample (microseconds away), short enough that
/// between samples, while other contenders run, the probe uses no CPU.
const SPIN: Duration = Duration::from_millis(1);

/// The probe: the calling thread and `workers − 1` helper threads kept for the probe's
/// life, so no iteration pays for starting a thread or for waking a sleeping core (on a
/// virtual machine that can cost more than the scheduling being measured). Between
/// iterations the threads watch for the next job for [`SPIN`], then sleep.
#[derive(Debug)]
pub struct CapacityProbe {
    shared: Arc<Shared>,
    helpers: Vec<JoinHandle<()>>,
}

/// What the caller and the helpers share.
#[derive(Debug, Default)]
struct Shared {
    /// The latest job, its generation, and whether the probe is being dropped.
    slot: Mutex<Slot>,
    /// Signalled when a job is posted or the probe stops.
    posted: Condvar,
    /// The latest generation, for watching without the lock.
    generation: AtomicU64,
    /// Held while a helper reports a finished job, so the caller's wait cannot miss it.
    finished: Mutex<()>,
    /// Signalled when a helper finishes a job.
    finished_signal: Condvar,
}

#[derive(Debug, Default)]
struct Slot {
    generation: u64,
    job: Option<Arc<Job>>,
    stop: bool,
}

/// One call's work items, handed out largest first through `next`.
#[derive(Debug)]
struct Job {
    items: Items,
    next: AtomicUsize,
    helpers_done: AtomicUsize,
}

#[derive(Debug)]
enum Items {
    /// A batch: `order` lists input indexes largest first; answers in input order.
    Batch {
        inputs: Vec<u32>,
        order: Vec<usize>,
        answers: Vec<AtomicU64>,
    },
    /// The fork-join tree's leaves, largest first, summed.
    Leaves { leaves: Vec<u32>, sum: AtomicU64 },
}

impl Job {
    fn new(items: Items) -> Self {
        Self {
            items,
            next: AtomicUsize::new(0),
            helpers_done: AtomicUsize::new(0),
        }
    }

    /// Takes items from the shared index until none is left.
    fn work(&self) {
        let n_items = match &self.items {
            Items::Batch { order, .. } => order.len(),
            Items::Leaves { leaves, .. } => leaves.len(),
        };
        loop {
            let slot = self.next.fetch_add(1, Ordering::Relaxed);
            if slot >= n_items {
                return;
            }
            match &self.items {
                Items::Batch {
                    inputs,
                    order,
                    answers,
                } => {
                    let index = order[slot];
                    answers[index].store(fib(inputs[index]), Ordering::Relaxed);
                }
                Items::Leaves { leaves, sum } => {
                    sum.fetch_add(fib(leaves[slot]), Ordering::Relaxed);
                }
            }
        }
    }
}

impl CapacityProbe {
    /// A probe with `workers` threads in all: the caller's and `workers − 1` helpers.
    pub fn new(workers: NonZeroUsize) -> Self {
        let shared = Arc::new(Shared::default());
        let helpers = (1..workers.get())
            .map(|_| {
                let shared = Arc::clone(&shared);
                std::thread::spawn(move || helper(&shared))
            })
            .collect();
        Self { shared, helpers }
    }

    /// `fib(n)` of every input, answers in input order; larger inputs are handed out
    /// first, so no thread is left with a large input at the end while the others idle
    /// (as far as the items' sizes allow).
    pub fn fib_batch(&self, inputs: &[u32]) -> Vec<u64> {
        let mut order: Vec<usize> = (0..inputs.len()).collect();
        // `fib`'s cost grows with n, so largest n is largest cost.
        order.sort_by_key(|&index| Reverse(inputs[index]));
        let job = self.run(Items::Batch {
            inputs: inputs.to_vec(),
            order,
            answers: inputs.iter().map(|_| AtomicU64::new(0)).collect(),
        });
        match &job.items {
            Items::Batch { answers, .. } => answers
                .iter()
                .map(|answer| answer.load(Ordering::Relaxed))
                .collect(),
            Items::Leaves { .. } => Vec::new(),
        }
    }

    /// `fib(job.n)` as the sum of `fib` over every leaf of the common fork-join tree (the
    /// nodes at or below the cutoff), leaves largest first.
    pub fn fib_forkjoin(&self, job: ForkJoin) -> u64 {
        // Leaves come sorted largest first; no limit on their number splits the whole
        // tree down to the cutoff, as the styles do.
        let job = self.run(Items::Leaves {
            leaves: job.leaves(usize::MAX),
            sum: AtomicU64::new(0),
        });
        match &job.items {
            Items::Leaves { sum, .. } => sum.load(Ordering::Relaxed),
            Items::Batch { .. } => 0,
        }
    }

    /// Posts `items` to the helpers, works on them too, and returns once every helper
    /// has finished with them.
    fn run(&self, items: Items) -> Arc<Job> {
        let job = Arc::new(Job::new(items));
        if !self.helpers.is_empty() {
            let mut slot = lock(&self.shared.slot);
            slot.generation += 1;
            slot.job = Some(Arc::clone(&job));
            self.shared
                .generation
                .store(slot.generation, Ordering::Release);
            drop(slot);
            self.shared.posted.notify_all();
        }
        job.work();
        let all_done = || job.helpers_done.load(Ordering::Acquire) == self.helpers.len();
        let watch_from = Instant::now();
        while !all_done() && watch_from.elapsed() < SPIN {
            std::hint::spin_loop();
        }
        let mut finished = lock(&self.shared.finished);
        while !all_done() {
            finished = self
                .shared
                .finished_signal
                .wait(finished)
                .unwrap_or_else(PoisonError::into_inner);
        }
        drop(finished);
        job
    }
}

impl Drop for CapacityProbe {
    fn drop(&mut self) {
        lock(&self.shared.slot).stop = true;
        self.shared.posted.notify_all();
        for helper in self.helpers.drain(..) {
            // A helper cannot panic (its work is `fib` and atomics); nothing to report.
            let _ = helper.join();
        }
    }
}

/// A helper thread: runs each posted job once, until the probe stops.
fn helper(shared: &Shared) {
    let mut seen = 0;
    loop {
        let watch_from = Instant::now();
        while shared.generation.load(Ordering::Acquire) == seen && watch_from.elapsed() < SPIN {
            std::hint::spin_loop();
        }
        let job = {
            let mut slot = lock(&shared.slot);
            while slot.generation == seen && !slot.stop {
                slot = shared
                    .posted
                    .wait(slot)
                    .unwrap_or_else(PoisonError::into_inner);
            }
            if slot.stop {
                return;
            }
            seen = slot.generation;
            slot.job.clone()
        };
        if let Some(job) = job {
            job.work();
            let finished = lock(&shared.finished);
            job.helpers_done.fetch_add(1, Ordering::Release);
            drop(finished);
            shared.finished_signal.notify_all();
        }
    }
}

/// Locks `mutex`; a poisoned lock is still usable here (nothing it guards can be left
/// half-written by a panic).
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Style for CapacityProbe {
    fn fib_batch(&self, inputs: &[u32]) -> Result<Vec<u64>, StyleError> {
        Ok(CapacityProbe::fib_batch(self, inputs))
    }

    fn fib_forkjoin(&self, job: ForkJoin) -> Result<u64, StyleError> {
        Ok(CapacityProbe::fib_forkjoin(self, job))
    }

    fn spawn(&self, _n_units: usize) -> Result<Vec<u64>, StyleError> {
        Err(StyleError::NotApplicable(NOT_A_STYLE))
    }

    fn ping_pong(&self, _n_messages: u64) -> Result<PingPong, StyleError> {
        Err(StyleError::NotApplicable(NOT_A_STYLE))
    }

    fn sleepers(&self, _n_units: usize, _sleep: Duration) -> Result<Sleepers, StyleError> {
        Err(StyleError::NotApplicable(NOT_A_STYLE))
    }

    fn serve(
        &self,
        _listener: TcpListener,
        _config: ServeConfig,
    ) -> Result<ServerHandle, StyleError> {
        Err(StyleError::NotApplicable(NOT_A_STYLE))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use workloads::{FibBatch, StyleConfig};

    fn probe(workers: usize) -> CapacityProbe {
        CapacityProbe::new(NonZeroUsize::new(workers).expect("> 0"))
    }

    #[test]
    fn answers_every_batch_in_input_order() {
        let batch = FibBatch::skewed(256, 5, 22, 9);
        for workers in [1, 2, 3] {
            let answers = probe(workers).fib_batch(batch.inputs());
            assert_eq!(batch.check(&answers), Ok(()), "{workers} workers");
        }
        assert!(probe(2).fib_batch(&[]).is_empty());
    }

    #[test]
    fn a_kept_probe_answers_call_after_call_and_stops_its_helpers() {
        let probe = probe(3);
        let batch = FibBatch::equal(7, 15);
        for _ in 0..200 {
            assert_eq!(batch.check(&probe.fib_batch(batch.inputs())), Ok(()));
        }
        let job = ForkJoin::new(22, 12);
        assert_eq!(job.check(probe.fib_forkjoin(job)), Ok(()));
        // Dropping joins the helpers; a hang here fails the test run.
        drop(probe);
    }

    #[test]
    fn sums_the_whole_forkjoin_tree() {
        for (n, cutoff) in [(25, 10), (20, 20), (18, 1)] {
            let job = ForkJoin::new(n, cutoff);
            assert_eq!(job.check(probe(2).fib_forkjoin(job)), Ok(()), "{job:?}");
        }
    }

    #[test]
    fn runs_only_the_cpu_groups_and_no_style_takes_its_name() {
        assert!(catalog::find(CAPACITY_PROBE).is_none());
        for workload in Workload::ALL {
            let cpu = crate::suite::CPU_GROUPS.contains(&workload);
            assert_eq!(
                (ENTRY.support)(workload) == Support::Runs,
                cpu,
                "{workload}"
            );
        }
        let style = (ENTRY.build)(&StyleConfig::new(NonZeroUsize::MIN)).expect("builds");
        assert!(style.spawn(3).is_err());
    }
}
