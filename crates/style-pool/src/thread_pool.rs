//! A fixed-size thread pool built from a `Mutex<VecDeque>` and a `Condvar`.

use std::collections::VecDeque;
use std::io;
use std::num::NonZeroUsize;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::{self, JoinHandle};

/// A unit of work for the pool.
type Job = Box<dyn FnOnce() + Send + 'static>;

/// A fixed number of worker threads taking jobs, first in first out, from one shared
/// queue.
///
/// The threads start in [`ThreadPool::new`] and live until the pool is dropped, so a
/// caller pays thread creation once, not per job. Dropping the pool discards jobs that
/// have not started, waits for running ones to finish and joins every thread.
#[derive(Debug)]
pub struct ThreadPool {
    spawner: Spawner,
    threads: Vec<JoinHandle<()>>,
}

/// A cheap, cloneable handle that queues jobs on a [`ThreadPool`], also from inside a
/// running job.
#[derive(Clone)]
pub struct Spawner {
    shared: Arc<Shared>,
}

struct Shared {
    state: Mutex<State>,
    /// Signalled when a job is queued or the pool shuts down.
    job_ready: Condvar,
}

struct State {
    queue: VecDeque<Job>,
    shutting_down: bool,
}

impl ThreadPool {
    /// Starts `workers` threads, named `pool-<index>`.
    pub fn new(workers: NonZeroUsize) -> io::Result<Self> {
        let spawner = Spawner {
            shared: Arc::new(Shared {
                state: Mutex::new(State {
                    queue: VecDeque::new(),
                    shutting_down: false,
                }),
                job_ready: Condvar::new(),
            }),
        };
        let mut pool = Self {
            spawner,
            threads: Vec::with_capacity(workers.get()),
        };
        for worker_idx in 0..workers.get() {
            let shared = Arc::clone(&pool.spawner.shared);
            // On error, `pool` is dropped here, which stops the threads already started.
            let thread = thread::Builder::new()
                .name(format!("pool-{worker_idx}"))
                .spawn(move || run_worker(&shared))?;
            pool.threads.push(thread);
        }
        Ok(pool)
    }

    /// Queues `job` to run on one of the workers.
    pub fn execute(&self, job: impl FnOnce() + Send + 'static) {
        self.spawner.execute(job);
    }

    /// A handle that queues jobs on this pool.
    pub fn spawner(&self) -> Spawner {
        self.spawner.clone()
    }

    /// Number of worker threads.
    pub fn workers(&self) -> usize {
        self.threads.len()
    }
}

impl Spawner {
    /// Queues `job` to run on one of the workers. After the pool is dropped the job is
    /// discarded without running (its captured values are dropped).
    pub fn execute(&self, job: impl FnOnce() + Send + 'static) {
        let mut state = self.shared.lock();
        if state.shutting_down {
            return;
        }
        state.queue.push_back(Box::new(job));
        drop(state);
        self.shared.job_ready.notify_one();
    }
}

impl std::fmt::Debug for Spawner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Spawner").finish_non_exhaustive()
    }
}

impl Shared {
    /// Jobs run outside the lock and panics are caught, so a poisoned lock can only
    /// come from a bug in this module; the queue stays consistent either way.
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn run_worker(shared: &Shared) {
    loop {
        let mut state = shared.lock();
        let job = loop {
            if state.shutting_down {
                return;
            }
            if let Some(job) = state.queue.pop_front() {
                break job;
            }
            state = shared
                .job_ready
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        };
        drop(state);
        // A panicking job must not take its worker with it: the pool keeps its size.
        // The job's own result channel (dropped by the unwind) tells its submitter.
        let _ = catch_unwind(AssertUnwindSafe(job));
    }
}

impl Drop for ThreadPool {
    fn drop(&mut self) {
        let discarded = {
            let mut state = self.spawner.shared.lock();
            state.shutting_down = true;
            // Queued jobs may hold spawners (an `Arc` back to this state); dropping them
            // here, outside the lock, breaks that cycle.
            std::mem::take(&mut state.queue)
        };
        drop(discarded);
        self.spawner.shared.job_ready.notify_all();
        for thread in self.threads.drain(..) {
            // Workers catch job panics, so a join error cannot carry one of ours.
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    fn pool(workers: usize) -> ThreadPool {
        ThreadPool::new(NonZeroUsize::new(workers).unwrap()).unwrap()
    }

    #[test]
    fn runs_every_job_once() {
        let pool = pool(3);
        let (sender, receiver) = mpsc::channel();
        for job_idx in 0..100 {
            let sender = sender.clone();
            pool.execute(move || sender.send(job_idx).unwrap());
        }
        drop(sender);
        let mut seen: Vec<i32> = receiver.iter().take(100).collect();
        seen.sort_unstable();
        assert_eq!(seen, (0..100).collect::<Vec<_>>());
    }

    #[test]
    fn survives_a_panicking_job() {
        let pool = pool(1);
        pool.execute(|| panic!("job panics on purpose"));
        let (sender, receiver) = mpsc::channel();
        pool.execute(move || sender.send("still running").unwrap());
        assert_eq!(receiver.recv().unwrap(), "still running");
        assert_eq!(pool.workers(), 1);
    }

    #[test]
    fn jobs_can_queue_jobs() {
        let pool = pool(2);
        let spawner = pool.spawner();
        let (sender, receiver) = mpsc::channel();
        pool.execute(move || spawner.execute(move || sender.send(42).unwrap()));
        assert_eq!(receiver.recv().unwrap(), 42);
    }

    #[test]
    fn drop_waits_for_running_jobs() {
        let pool = pool(1);
        let finished = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (started_tx, started_rx) = mpsc::channel();
        let job_finished = Arc::clone(&finished);
        pool.execute(move || {
            started_tx.send(()).unwrap();
            thread::sleep(std::time::Duration::from_millis(20));
            job_finished.store(true, std::sync::atomic::Ordering::SeqCst);
        });
        started_rx.recv().unwrap();
        drop(pool);
        assert!(finished.load(std::sync::atomic::Ordering::SeqCst));
    }

    #[test]
    fn jobs_queued_after_drop_are_discarded() {
        let pool = pool(2);
        let spawner = pool.spawner();
        drop(pool);
        let (sender, receiver) = mpsc::channel::<()>();
        spawner.execute(move || sender.send(()).unwrap());
        // The job was dropped unrun, so its sender is gone.
        assert!(receiver.recv().is_err());
    }
}
