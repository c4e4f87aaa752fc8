//! A pool of pre-started worker processes fed over pipes: Python's
//! `ProcessPoolExecutor`, by hand.

use std::io::{self, BufReader, BufWriter};
use std::num::NonZeroUsize;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, mpsc};
use std::thread::{self, JoinHandle};

use workloads::WorkerCommand;

use crate::message::{Request, Response};

/// Why the pool could not answer.
#[derive(Debug, thiserror::Error)]
pub enum ProcessPoolError {
    /// A worker process could not be started.
    #[error("cannot start worker process {program}: {source}")]
    Spawn {
        /// The program that failed to start.
        program: String,
        /// The underlying error.
        source: io::Error,
    },
    /// A worker process died or broke the framing mid-request; the pool carries on
    /// with the others.
    #[error("worker process {worker_idx} failed: {source}")]
    WorkerDied {
        /// Which worker.
        worker_idx: usize,
        /// What went wrong on its pipes.
        source: io::Error,
    },
    /// A worker process answered with an error.
    #[error("worker process refused the request: {0}")]
    Refused(String),
    /// Every worker process has died.
    #[error("no worker process is left")]
    NoWorkers,
}

/// A fixed set of worker processes, started once and reused for every request.
///
/// Requests go into one queue. Each worker process has a feeder thread in this process
/// that takes the next request, writes it to the worker's stdin and reads the answer
/// from its stdout, so an idle worker always takes the next request (dynamic load
/// balancing, as with `ProcessPoolExecutor`).
///
/// [`ProcessPool::shutdown`], or dropping the pool, kills and reaps every worker
/// process, also while unwinding from a panic. A worker whose pool process dies without
/// either (killed, say) sees end of input on its stdin and exits by itself.
#[derive(Debug)]
pub struct ProcessPool {
    /// `None` once shut down. Behind a mutex so that a pool shared by many connection
    /// threads can be shut down through a shared reference.
    requests: Mutex<Option<mpsc::Sender<Job>>>,
    workers: Mutex<Vec<WorkerProcess>>,
}

/// A request in flight; [`Pending::wait`] blocks until its worker answers.
#[derive(Debug)]
pub struct Pending {
    reply: mpsc::Receiver<Result<Response, ProcessPoolError>>,
}

#[derive(Debug)]
struct Job {
    request: Request,
    reply: mpsc::Sender<Result<Response, ProcessPoolError>>,
}

#[derive(Debug)]
struct WorkerProcess {
    child: Child,
    feeder: Option<JoinHandle<()>>,
}

impl ProcessPool {
    /// Starts `workers` processes from `command`, each expected to run
    /// [`crate::run_worker`] on its stdin and stdout.
    pub fn start(command: &WorkerCommand, workers: NonZeroUsize) -> Result<Self, ProcessPoolError> {
        let (sender, receiver) = mpsc::channel();
        let receiver = Arc::new(Mutex::new(receiver));
        let pool = Self {
            requests: Mutex::new(Some(sender)),
            workers: Mutex::new(Vec::with_capacity(workers.get())),
        };
        let spawn_error = |source| ProcessPoolError::Spawn {
            program: command.program.display().to_string(),
            source,
        };
        for worker_idx in 0..workers.get() {
            // On error, `pool` is dropped, which kills the workers already started.
            let mut child = Command::new(&command.program)
                .args(&command.args)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .spawn()
                .map_err(spawn_error)?;
            let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
                unreachable!("both pipes were requested above");
            };
            let receiver = Arc::clone(&receiver);
            let feeder = thread::Builder::new()
                .name(format!("process-feeder-{worker_idx}"))
                .spawn(move || feed_worker(worker_idx, &receiver, stdin, stdout));
            let feeder = match feeder {
                Ok(feeder) => Some(feeder),
                Err(source) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(spawn_error(source));
                }
            };
            lock(&pool.workers).push(WorkerProcess { child, feeder });
        }
        Ok(pool)
    }

    /// Queues `fib(n)` for every `n` in `inputs` as one request to one worker.
    pub fn submit_fib(&self, inputs: Vec<u32>) -> Result<Pending, ProcessPoolError> {
        let (reply, receiver) = mpsc::channel();
        let job = Job {
            request: Request::Fib(inputs),
            reply,
        };
        lock(&self.requests)
            .as_ref()
            .ok_or(ProcessPoolError::NoWorkers)?
            .send(job)
            .map_err(|_| ProcessPoolError::NoWorkers)?;
        Ok(Pending { reply: receiver })
    }

    /// `fib(n)` on one of the workers; blocks until it answers.
    pub fn fib(&self, n: u32) -> Result<u64, ProcessPoolError> {
        let answers = self.submit_fib(vec![n])?.wait()?;
        answers
            .first()
            .copied()
            .ok_or_else(|| ProcessPoolError::Refused("a worker answered no value".into()))
    }

    /// The operating-system process ids of the workers, for tests and diagnostics.
    pub fn worker_pids(&self) -> Vec<u32> {
        lock(&self.workers)
            .iter()
            .map(|worker| worker.child.id())
            .collect()
    }

    /// Kills and reaps every worker process; later requests fail with
    /// [`ProcessPoolError::NoWorkers`]. Calling it again does nothing.
    pub fn shutdown(&self) {
        // No new requests: idle feeders see the queue close and return.
        lock(&self.requests).take();
        let mut workers = std::mem::take(&mut *lock(&self.workers));
        // Workers are stateless, so killing one mid-request loses nothing but that
        // request; its feeder then reads end of file and returns.
        for worker in &mut workers {
            let _ = worker.child.kill();
        }
        for worker in &mut workers {
            if let Some(feeder) = worker.feeder.take() {
                let _ = feeder.join();
            }
            // Reaping leaves no zombie behind.
            let _ = worker.child.wait();
        }
    }
}

impl Pending {
    /// Waits for the answers, one per submitted input, in order.
    pub fn wait(self) -> Result<Vec<u64>, ProcessPoolError> {
        match self.reply.recv() {
            Ok(Ok(Response::Answers(answers))) => Ok(answers),
            Ok(Ok(Response::Error(message))) => Err(ProcessPoolError::Refused(message)),
            Ok(Err(error)) => Err(error),
            // The feeder dropped the job: every worker is gone.
            Err(mpsc::RecvError) => Err(ProcessPoolError::NoWorkers),
        }
    }
}

impl Drop for ProcessPool {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Locks `mutex`, ignoring poisoning: the guarded values (a sender, a list of children,
/// a receiver) stay consistent whatever a panicking holder was doing.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One worker's feeder thread: moves requests from the shared queue to the worker and
/// answers back, until the queue closes or the worker dies.
fn feed_worker(
    worker_idx: usize,
    requests: &Mutex<mpsc::Receiver<Job>>,
    stdin: ChildStdin,
    stdout: ChildStdout,
) {
    let mut to_worker = BufWriter::new(stdin);
    let mut from_worker = BufReader::new(stdout);
    loop {
        // The lock is held while waiting, so idle feeders queue up behind it.
        let job = match lock(requests).recv() {
            Ok(job) => job,
            Err(mpsc::RecvError) => return,
        };
        let answer = job
            .request
            .write_to(&mut to_worker)
            .and_then(|()| Response::read_from(&mut from_worker));
        match answer {
            Ok(response) => {
                let _ = job.reply.send(Ok(response));
            }
            Err(source) => {
                let _ = job
                    .reply
                    .send(Err(ProcessPoolError::WorkerDied { worker_idx, source }));
                return;
            }
        }
    }
}
