//! crossbeam: scoped worker threads fed by crossbeam's queues.
//!
//! Batches use a `crossbeam-channel` work queue: the caller fills it, `workers` scoped
//! threads drain it and send answers back on a second channel. Fork-join uses
//! `crossbeam-deque` work stealing, the pattern of the crate's documentation: each
//! worker pushes new tasks on its own deque, pops from it LIFO, and when empty steals
//! from the global injector or from other workers' deques; a worker that finds nothing
//! backs off (`crossbeam::utils::Backoff`) and, once the back-off is completed, parks
//! until a push wakes it, so idle workers do not spin.
//!
//! crossbeam has no pool of its own, so the threads are spawned per call with
//! `std::thread::scope`, the std successor of `crossbeam::scope`; a spawn costs tens of
//! microseconds against milliseconds of work.
//!
//! Tasks use crossbeam's own pieces: every `spawn` and `sleepers` unit is a thread of a
//! `crossbeam::scope`, sleepers wait on a `crossbeam-channel` timer (`channel::after`),
//! and `ping_pong` runs over two `crossbeam-channel` channels.
//!
//! The server is an acceptor with a thread per connection for reading, and `workers`
//! compute threads that take `(n, reply)` jobs from one `crossbeam-channel` queue and
//! answer on a one-slot channel; they live as long as the server.

#![forbid(unsafe_code)]

use std::io;
use std::iter;
use std::net::TcpListener;
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicUsize, Ordering, fence};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use crossbeam::channel;
use crossbeam::deque::{Injector, Stealer, Worker};
use crossbeam::utils::Backoff;
use workloads::server::{self, Job, JobRunner, ServeConfig, ServerHandle};
use workloads::tasks::{self, PingPong, Receiver, Sleepers, UnitKind, UnitLimit};
use workloads::{
    CpuThreads, ForkJoin, ServerModel, Step, Style, StyleConfig, StyleEntry, StyleError, Support,
    Workload, fib,
};

/// The `crossbeam` row of the catalog.
pub const ENTRY: StyleEntry = StyleEntry {
    name: "crossbeam",
    summary: "scoped threads: a `crossbeam-channel` queue for batches, `crossbeam-deque` stealing for fork-join",
    support,
    build,
    server_model: ServerModel::Concurrent,
    cpu_threads: CpuThreads::Workers,
    unit: UnitKind::Thread,
};

fn support(workload: Workload) -> Support {
    match workload {
        Workload::FibBatch
        | Workload::FibSkewed
        | Workload::FibForkJoin
        | Workload::Spawn
        | Workload::PingPong
        | Workload::Sleepers
        | Workload::Throughput
        | Workload::HogLatency
        | Workload::Connections
        | Workload::IoWait => Support::Runs,
    }
}

fn build(config: &StyleConfig) -> Result<Box<dyn Style>, StyleError> {
    Ok(Box::new(Crossbeam {
        workers: config.workers,
        unit_limit: tasks::unit_limit(UnitKind::Thread),
    }))
}

/// Spawns `workers` scoped threads per call and feeds them through crossbeam queues.
#[derive(Debug, Clone)]
pub struct Crossbeam {
    workers: NonZeroUsize,
    /// How many threads may run at once on this machine.
    unit_limit: UnitLimit,
}

impl Style for Crossbeam {
    fn fib_batch(&self, inputs: &[u32]) -> Result<Vec<u64>, StyleError> {
        let (job_sender, jobs) = channel::unbounded();
        for job in inputs.iter().copied().enumerate() {
            // Cannot fail: `jobs` is alive.
            let _ = job_sender.send(job);
        }
        // Closing the queue is how the workers learn there is no more work.
        drop(job_sender);
        let (answer_sender, answers) = channel::unbounded();
        thread::scope(|scope| {
            for _ in 0..self.workers.get() {
                let (jobs, answer_sender) = (jobs.clone(), answer_sender.clone());
                scope.spawn(move || {
                    for (index, n) in jobs {
                        let _ = answer_sender.send((index, fib(n)));
                    }
                });
            }
        });
        drop(answer_sender);
        let mut ordered = vec![0; inputs.len()];
        for (index, answer) in answers {
            ordered[index] = answer;
        }
        Ok(ordered)
    }

    fn fib_forkjoin(&self, job: ForkJoin) -> Result<u64, StyleError> {
        let injector = Injector::new();
        injector.push(job.n);
        // Tasks pushed and not yet finished; workers stop when it reaches zero.
        let pending = AtomicUsize::new(1);
        let idle = IdleWorkers::default();
        let deques: Vec<Worker<u32>> = (0..self.workers.get())
            .map(|_| Worker::new_lifo())
            .collect();
        let stealers: Vec<Stealer<u32>> = deques.iter().map(Worker::stealer).collect();
        let sum = thread::scope(|scope| {
            let threads: Vec<_> = deques
                .into_iter()
                .map(|local| {
                    let (injector, stealers, pending, idle) =
                        (&injector, &stealers, &pending, &idle);
                    scope.spawn(move || run_worker(job, &local, injector, stealers, pending, idle))
                })
                .collect();
            threads
                .into_iter()
                .map(|thread| {
                    thread
                        .join()
                        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
                })
                .sum()
        });
        Ok(sum)
    }

    fn spawn(&self, n_units: usize) -> Result<Vec<u64>, StyleError> {
        tasks::ensure_within(&self.unit_limit, n_units)?;
        crossbeam::scope(|scope| {
            let units = (0..n_units)
                .map(|index| scope.builder().spawn(move |_| tasks::spawn_unit(index)))
                .collect::<Result<Vec<_>, _>>()
                .map_err(StyleError::io("spawning a thread"))?;
            units
                .into_iter()
                .map(|unit| unit.join().map_err(|_| unit_panicked()))
                .collect()
        })
        .map_err(|_| unit_panicked())?
    }

    fn ping_pong(&self, n_messages: u64) -> Result<PingPong, StyleError> {
        let (ping_sender, pings) = channel::unbounded::<u64>();
        let (pong_sender, pongs) = channel::unbounded::<u64>();
        crossbeam::scope(|scope| {
            let ponger = scope.spawn(move |_| {
                let mut received = Receiver::default();
                // Ends when the pinger drops its sender.
                for ping in pings {
                    received.receive(ping);
                    if pong_sender.send(ping).is_err() {
                        break;
                    }
                }
                received
            });
            let pinger = scope.spawn(move |_| {
                let mut received = Receiver::default();
                for message in 0..n_messages {
                    if ping_sender.send(message).is_err() {
                        break;
                    }
                    match pongs.recv() {
                        Ok(pong) => received.receive(pong),
                        Err(channel::RecvError) => break,
                    }
                }
                received
            });
            let pings = ponger.join().map_err(|_| unit_panicked())?;
            let pongs = pinger.join().map_err(|_| unit_panicked())?;
            Ok(PingPong::from_sides(pings, pongs))
        })
        .map_err(|_| unit_panicked())?
    }

    fn sleepers(&self, n_units: usize, sleep: Duration) -> Result<Sleepers, StyleError> {
        tasks::ensure_within(&self.unit_limit, n_units)?;
        let start = Instant::now();
        crossbeam::scope(|scope| {
            let units = (0..n_units)
                .map(|_| {
                    scope.builder().spawn(move |_| {
                        let began = Instant::now();
                        // crossbeam's timer: a channel that delivers once `sleep` has passed.
                        let _ = channel::after(sleep).recv();
                        tasks::slept_full(began, sleep)
                    })
                })
                .collect::<Result<Vec<_>, _>>()
                .map_err(StyleError::io("spawning a thread"))?;
            let spawned_in = start.elapsed();
            let slept_full = units
                .into_iter()
                .map(|unit| unit.join().map_err(|_| unit_panicked()))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(Sleepers::tally(slept_full, spawned_in, start.elapsed()))
        })
        .map_err(|_| unit_panicked())?
    }

    fn serve(
        &self,
        listener: TcpListener,
        config: ServeConfig,
    ) -> Result<ServerHandle, StyleError> {
        // Every request runs on the compute threads, `wait` requests too: a worker asks
        // the backend over its own connection and blocks until it answers.
        type Reply = Result<u64, workloads::backend::BackendError>;
        let (job_sender, jobs) = channel::unbounded::<(Job, channel::Sender<Reply>)>();
        let backend = config.backend;
        for worker_idx in 0..self.workers.get() {
            let jobs = jobs.clone();
            // The workers stop when every sender is gone: the server's and those held by
            // connection threads still open.
            thread::Builder::new()
                .name(format!("crossbeam-worker-{worker_idx}"))
                .spawn(move || {
                    for (job, reply) in jobs {
                        let _ = reply.send(Job::run_here(job, backend));
                    }
                })
                .map_err(StyleError::io("starting server workers"))?;
        }
        let jobs: JobRunner = Arc::new(move |job| {
            let (reply, answer) = channel::bounded(1);
            job_sender
                .send((job, reply))
                .map_err(|_| io::Error::other("the server's workers have stopped"))?;
            answer
                .recv()
                .map_err(|_| io::Error::other("a server worker dropped the request"))
        });
        server::spawn_thread_per_connection(listener, config, jobs)
            .map_err(StyleError::io("starting the server"))
    }
}

fn unit_panicked() -> StyleError {
    StyleError::WorkerFailed("a unit's thread panicked".into())
}

/// Where fork-join workers with nothing to steal sleep: `Backoff` spins, then yields,
/// and once it `is_completed` a worker parks here, as crossbeam's documentation advises,
/// instead of spinning and yielding for as long as another worker holds the last tasks.
#[derive(Debug, Default)]
struct IdleWorkers {
    /// Workers parked or about to park; pushers look at it before taking the lock.
    count: AtomicUsize,
    lock: Mutex<()>,
    wake: Condvar,
}

/// The longest a parked worker sleeps before it looks for work again by itself: a safety
/// net, never the way work is found (a push wakes it).
const IDLE_RECHECK: Duration = Duration::from_millis(1);

impl IdleWorkers {
    /// Parks the calling worker until new work may be there or the tree is finished.
    /// `work_visible` is checked after the worker has counted itself idle, under the lock,
    /// so a push that came before cannot be missed and one that comes after wakes it.
    fn park(&self, work_visible: impl Fn() -> bool) {
        let guard = self.lock.lock().unwrap_or_else(PoisonError::into_inner);
        self.count.fetch_add(1, Ordering::SeqCst);
        if !work_visible() {
            let _ = self
                .wake
                .wait_timeout(guard, IDLE_RECHECK)
                .unwrap_or_else(PoisonError::into_inner);
        }
        self.count.fetch_sub(1, Ordering::SeqCst);
    }

    /// Wakes one parked worker, if any: there is a new task.
    fn task_pushed(&self) {
        // Pairs with the count's increment in `park`: either the pusher sees the idle
        // worker, or the idle worker sees the pushed task.
        fence(Ordering::SeqCst);
        if self.count.load(Ordering::SeqCst) > 0 {
            let _guard = self.lock.lock().unwrap_or_else(PoisonError::into_inner);
            self.wake.notify_one();
        }
    }

    /// Wakes every parked worker: the tree is finished.
    fn finished(&self) {
        let _guard = self.lock.lock().unwrap_or_else(PoisonError::into_inner);
        self.wake.notify_all();
    }
}

/// One fork-join worker: runs tasks until every task in the tree has finished, and
/// returns the sum of the leaves it computed.
fn run_worker(
    job: ForkJoin,
    local: &Worker<u32>,
    injector: &Injector<u32>,
    stealers: &[Stealer<u32>],
    pending: &AtomicUsize,
    idle: &IdleWorkers,
) -> u64 {
    let mut sum = 0;
    let backoff = Backoff::new();
    while pending.load(Ordering::Acquire) > 0 {
        let Some(mut n) = find_task(local, injector, stealers) else {
            // Another worker holds the remaining tasks and will push more or finish.
            if backoff.is_completed() {
                idle.park(|| {
                    pending.load(Ordering::SeqCst) == 0
                        || !injector.is_empty()
                        || stealers.iter().any(|stealer| !stealer.is_empty())
                });
            } else {
                backoff.snooze();
            }
            continue;
        };
        backoff.reset();
        // Walk down the right spine; left children go on the local deque for thieves.
        loop {
            match job.step(n) {
                Step::Split(left, right) => {
                    pending.fetch_add(1, Ordering::Relaxed);
                    local.push(left);
                    idle.task_pushed();
                    n = right;
                }
                Step::Leaf(value) => {
                    sum += value;
                    if pending.fetch_sub(1, Ordering::AcqRel) == 1 {
                        idle.finished();
                    }
                    break;
                }
            }
        }
    }
    sum
}

/// The task-finding loop from crossbeam-deque's documentation: local deque first, then
/// a batch from the injector, then the other workers.
fn find_task<T>(local: &Worker<T>, global: &Injector<T>, stealers: &[Stealer<T>]) -> Option<T> {
    local.pop().or_else(|| {
        iter::repeat_with(|| {
            global
                .steal_batch_and_pop(local)
                .or_else(|| stealers.iter().map(Stealer::steal).collect())
        })
        .find(|steal| !steal.is_retry())
        .and_then(|steal| steal.success())
    })
}
