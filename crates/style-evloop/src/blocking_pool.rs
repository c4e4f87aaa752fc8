//! An elastic pool of blocking threads, where `evloop-offload` sends CPU work.
//!
//! It follows the policy of tokio's blocking pool, which `tokio-offload` uses, so the
//! two offload variants differ in their loops, not in their pools: a job runs on an idle
//! thread if there is one, else on a new thread (up to [`MAX_THREADS`]), and a thread
//! idle for [`KEEP_ALIVE`] exits.

use std::collections::VecDeque;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::Duration;

/// The most threads the pool starts (tokio's default for its blocking pool).
pub(crate) const MAX_THREADS: usize = 512;

/// How long a thread waits for a job before it exits (tokio's default).
pub(crate) const KEEP_ALIVE: Duration = Duration::from_secs(10);

type Job = Box<dyn FnOnce() + Send + 'static>;

/// The pool. Dropping it discards queued jobs and waits for running ones.
#[derive(Debug)]
pub(crate) struct BlockingPool {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    state: Mutex<State>,
    job_ready: Condvar,
    all_exited: Condvar,
}

struct State {
    queue: VecDeque<Job>,
    /// Threads waiting for a job.
    idle: usize,
    /// Threads alive.
    threads: usize,
    shutting_down: bool,
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("State")
            .field("queued", &self.queue.len())
            .field("idle", &self.idle)
            .field("threads", &self.threads)
            .finish()
    }
}

impl BlockingPool {
    pub(crate) fn new() -> Self {
        Self {
            shared: Arc::new(Shared {
                state: Mutex::new(State {
                    queue: VecDeque::new(),
                    idle: 0,
                    threads: 0,
                    shutting_down: false,
                }),
                job_ready: Condvar::new(),
                all_exited: Condvar::new(),
            }),
        }
    }

    /// Runs `job` on a pool thread, starting one if every thread is busy.
    pub(crate) fn execute(&self, job: impl FnOnce() + Send + 'static) {
        let mut state = self.shared.lock();
        if state.shutting_down {
            return;
        }
        state.queue.push_back(Box::new(job));
        // More queued jobs than idle threads to take them: one more thread. The thread
        // is counted under the lock, so no two callers start one for the same job, and
        // started outside it, so that no other caller or pool thread waits on the lock
        // for the tens of microseconds a thread takes to start.
        let start_thread = state.queue.len() > state.idle && state.threads < MAX_THREADS;
        if start_thread {
            state.threads += 1;
        }
        drop(state);
        self.shared.job_ready.notify_one();
        if start_thread {
            let shared = Arc::clone(&self.shared);
            let spawned = thread::Builder::new()
                .name("evloop-blocking".into())
                .spawn(move || run_thread(&shared));
            // Out of threads: the job waits for a running thread to take it.
            if spawned.is_err() {
                let mut state = self.shared.lock();
                state.threads -= 1;
                if state.threads == 0 {
                    self.shared.all_exited.notify_all();
                }
            }
        }
    }
}

impl Shared {
    /// Jobs run outside the lock and panics are caught: poisoning cannot leave the
    /// state inconsistent.
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn run_thread(shared: &Shared) {
    let mut state = shared.lock();
    loop {
        if let Some(job) = state.queue.pop_front() {
            drop(state);
            // A panicking job must not take its thread down; its result channel,
            // dropped by the unwind, tells whoever waited for it.
            let _ = catch_unwind(AssertUnwindSafe(job));
            state = shared.lock();
            continue;
        }
        if state.shutting_down {
            break;
        }
        state.idle += 1;
        let (woken, wait) = shared
            .job_ready
            .wait_timeout(state, KEEP_ALIVE)
            .unwrap_or_else(PoisonError::into_inner);
        state = woken;
        state.idle -= 1;
        if wait.timed_out() && state.queue.is_empty() {
            break;
        }
    }
    state.threads -= 1;
    if state.threads == 0 {
        shared.all_exited.notify_all();
    }
}

impl Drop for BlockingPool {
    fn drop(&mut self) {
        let mut state = self.shared.lock();
        state.shutting_down = true;
        let discarded = std::mem::take(&mut state.queue);
        self.shared.job_ready.notify_all();
        while state.threads > 0 {
            state = self
                .shared
                .all_exited
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
        drop(state);
        drop(discarded);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    #[test]
    fn a_blocked_job_does_not_hold_up_the_next() {
        let pool = BlockingPool::new();
        let (release, blocked) = mpsc::channel::<()>();
        pool.execute(move || {
            let _ = blocked.recv();
        });
        // With the first job blocked, the second must get a thread of its own.
        let (sender, receiver) = mpsc::channel();
        pool.execute(move || sender.send("ran").unwrap());
        assert_eq!(receiver.recv_timeout(Duration::from_secs(10)), Ok("ran"));
        release.send(()).unwrap();
    }

    #[test]
    fn idle_threads_are_reused() {
        let pool = BlockingPool::new();
        for _ in 0..20 {
            let (sender, receiver) = mpsc::channel();
            pool.execute(move || sender.send(()).unwrap());
            receiver.recv().unwrap();
            // Wait until the thread is idle again, so the next job finds it idle.
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            while pool.shared.lock().idle == 0 {
                assert!(
                    std::time::Instant::now() < deadline,
                    "the thread never went idle"
                );
                thread::sleep(Duration::from_millis(1));
            }
        }
        assert_eq!(pool.shared.lock().threads, 1);
    }

    #[test]
    fn drop_waits_for_running_jobs() {
        let pool = BlockingPool::new();
        let (started_sender, started) = mpsc::channel();
        let (finished_sender, finished) = mpsc::channel();
        pool.execute(move || {
            started_sender.send(()).unwrap();
            thread::sleep(Duration::from_millis(20));
            finished_sender.send(()).unwrap();
        });
        started.recv().unwrap();
        drop(pool);
        assert_eq!(finished.try_recv(), Ok(()));
    }
}
