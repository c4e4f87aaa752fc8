//! Thread-per-core styles on completion-based (io_uring) runtimes: what compio and
//! monoio share, written once.
//!
//! Both runtimes are written the same way by their own examples: one runtime per
//! thread, nothing shared between them, tasks that never leave the thread that spawned
//! them (`!Send` futures), and I/O through buffers the caller owns and hands to the
//! kernel until the operation completes. A style crate says how its runtime does each
//! of those things ([`CompletionRuntime`], [`CompletionStream`]); this module runs the
//! workloads on `workers` such threads ([`ThreadPerCore`]):
//!
//! - **Work reaches a thread** through its job queue: a closure, sent to worker
//!   `index % workers`, that spawns a local task there. `fib_batch` sends input `i` to
//!   worker `i % workers` (no thread steals another's work: a skewed batch shows it);
//!   `fib_forkjoin` is the same task tree as every other style's — every split spawns
//!   its left child and carries on down the right one — with the left children of the
//!   first few levels sent to the workers in turn ([`spread_levels`]) and every one
//!   below spawned on its own thread.
//! - **Units** (`spawn`, `sleepers`) are local tasks, each worker spawning and joining
//!   its share; `ping_pong`'s two units are two tasks on one thread.
//! - **The server**: every worker accepts on a duplicate of the one listening socket it
//!   is given (the contract hands over a socket already bound, so the workers cannot
//!   each bind one with `SO_REUSEPORT`; the kernel hands each connection to one waiting
//!   accept), and serves each connection in a local task. `fib` runs inline in that task
//!   (a long request holds its thread and every connection on it), or, in an `-offload`
//!   variant, on the runtime's blocking pool.

use std::cell::RefCell;
use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::marker::PhantomData;
use std::net::{SocketAddr, TcpListener};
use std::num::NonZeroUsize;
use std::os::fd::RawFd;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock, mpsc};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crate::backend::{
    BACKEND_REPLY_TIMEOUT, BackendError, MAX_BACKEND_REPLY_BYTES, ReplyParser, backend_request,
};
use crate::inputs::{ForkJoin, Step};
use crate::protocol::Action;
use crate::server::{
    ASYNC_READ_BYTES, Placement, SERVER_VARIANT, ServeConfig, ServerHandle,
    is_transient_accept_error,
};
use crate::style::{Style, StyleConfig, StyleError, Support, Workload};
use crate::tasks::{self, PingPong, Sleepers};

/// The environment variable that makes every completion-based style report io_uring
/// unavailable, as on a kernel or container without it: set to anything but empty, the
/// styles build as not applicable instead of probing the kernel. Tests use it to check
/// that the suite still runs there.
pub const NO_IO_URING_ENV: &str = "CONCBENCH_NO_IO_URING";

/// How every reason of [`io_uring_unavailable`] starts, so that a test can tell a
/// style that cannot run on this machine from one that never runs a workload.
pub const UNAVAILABLE: &str = "io_uring unavailable";

/// One thread's runtime, and how its tasks, timers, sockets and blocking pool are used.
///
/// Every method but [`build`](Self::build) is called on a thread inside that runtime's
/// [`block_on`](Self::block_on).
pub trait CompletionRuntime: Sized + 'static {
    /// The runtime's listening socket.
    type Listener: 'static;
    /// The runtime's connected socket.
    type Stream: CompletionStream;
    /// The prefix of its worker threads' names.
    const THREAD_NAME: &'static str;

    /// This runtime's cell for [`io_uring_unavailable`]'s verdict, probed once per
    /// process (a `static` of the implementing crate: generic code cannot own one).
    fn probed() -> &'static OnceLock<Option<&'static str>>;

    /// Builds this thread's runtime: io_uring only (an error where the kernel refuses
    /// it, never a silent fallback to another driver), with its timer, and with a
    /// blocking pool when `offload` is set.
    fn build(offload: bool) -> io::Result<Self>;
    /// Runs `future` to completion on this thread, with the tasks it spawns.
    fn block_on(self, future: impl Future<Output = ()>);
    /// Spawns `future` as a task of this thread's runtime, left to run on its own.
    fn spawn_detached(future: impl Future<Output = ()> + 'static);
    /// Spawns `future` as a task of this thread's runtime; the returned future is its
    /// join handle (`None`: the task panicked).
    fn spawn_joined<T: 'static>(
        future: impl Future<Output = T> + 'static,
    ) -> impl Future<Output = Option<T>> + 'static;
    /// Completes after `duration`, on the runtime's timer.
    fn sleep(duration: Duration) -> impl Future<Output = ()>;
    /// Registers a listening socket with this thread's runtime.
    fn listen(listener: TcpListener) -> io::Result<Self::Listener>;
    /// Accepts one connection (no Nagle delay on it).
    fn accept(listener: &Self::Listener) -> impl Future<Output = io::Result<Self::Stream>>;
    /// Connects to `addr` (no Nagle delay).
    fn connect(addr: SocketAddr) -> impl Future<Output = io::Result<Self::Stream>>;
    /// Runs `work` on the runtime's blocking pool (built when [`build`](Self::build)
    /// was asked for one) while the calling task waits without holding its thread.
    fn unblock<T: Send + 'static>(
        work: impl FnOnce() -> T + Send + 'static,
    ) -> impl Future<Output = io::Result<T>>;
}

/// A connected socket of a completion-based runtime: every read and write takes its
/// buffer and gives it back with the result.
pub trait CompletionStream: 'static {
    /// Reads at most `buffer.capacity()` bytes into `buffer`, replacing what it held;
    /// returns how many (0: end of stream) and the buffer, whose length is that many.
    fn read(&mut self, buffer: Vec<u8>) -> impl Future<Output = (io::Result<usize>, Vec<u8>)>;
    /// Writes all of `buffer`; gives it back.
    fn write_all(&mut self, buffer: Vec<u8>) -> impl Future<Output = (io::Result<()>, Vec<u8>)>;
    /// Shuts the writing half down.
    fn close(&mut self) -> impl Future<Output = io::Result<()>>;
    /// The socket, to look at without an operation in flight ([`bytes_waiting`]).
    fn socket(&self) -> RawFd;
}

/// Whether `socket` has bytes to read, or its peer has closed it, right now: a `recv`
/// that peeks and does not wait. A kept backend connection with either is stale.
/// Peeking needs no buffer handed to the kernel and leaves nothing in flight, which a
/// read polled once and dropped would.
pub fn bytes_waiting(socket: RawFd) -> bool {
    use nix::sys::socket::{MsgFlags, recv};
    let mut byte = [0u8; 1];
    match recv(
        socket,
        &mut byte,
        MsgFlags::MSG_PEEK | MsgFlags::MSG_DONTWAIT,
    ) {
        // 0: the peer closed it; more: bytes nobody asked for.
        Ok(_) => true,
        Err(nix::errno::Errno::EAGAIN) => false,
        Err(_) => true,
    }
}

/// Why io_uring cannot be used here, probed once per process into `R`'s
/// [`probed`](CompletionRuntime::probed) cell by building `R`'s runtime on a scratch
/// thread: `None` where it works, else `io_uring unavailable (<the error>)`.
/// [`NO_IO_URING_ENV`] forces the second answer.
pub fn io_uring_unavailable<R: CompletionRuntime>() -> Option<&'static str> {
    *R::probed().get_or_init(|| {
        let reason = if std::env::var_os(NO_IO_URING_ENV).is_some_and(|value| !value.is_empty()) {
            format!("{UNAVAILABLE} (forced by {NO_IO_URING_ENV})")
        } else {
            let built = thread::Builder::new()
                .name("io-uring-probe".into())
                .spawn(|| R::build(false).map(drop))
                .map(|probe| probe.join());
            match built {
                Ok(Ok(Ok(()))) => return None,
                Ok(Ok(Err(error))) => format!("{UNAVAILABLE} ({error})"),
                Ok(Err(_)) => format!("{UNAVAILABLE} (building the runtime panicked)"),
                Err(error) => format!("{UNAVAILABLE} (no thread to probe it: {error})"),
            }
        };
        // Once per process and runtime: the matrix's reasons are `&'static str`.
        Some(Box::leak(reason.into_boxed_str()))
    })
}

/// The support of a thread-per-core style on `R` with every fib inline: every
/// workload runs, unless io_uring is unavailable, which makes every one not applicable
/// with that reason.
pub fn inline_support<R: CompletionRuntime>(_workload: Workload) -> Support {
    match io_uring_unavailable::<R>() {
        Some(reason) => Support::NotApplicable(reason),
        None => Support::Runs,
    }
}

/// The support of an `-offload` variant on `R`:
/// [`crate::server::server_variant_support`], unless io_uring is unavailable.
pub fn offload_support<R: CompletionRuntime>(workload: Workload) -> Support {
    match io_uring_unavailable::<R>() {
        Some(reason) => Support::NotApplicable(reason),
        None => crate::server::server_variant_support(workload),
    }
}

/// Builds the style on `R` with every fib inline; see [`build`].
pub fn build_inline<R: CompletionRuntime>(
    config: &StyleConfig,
) -> Result<Box<dyn Style>, StyleError> {
    build::<R>(config, Placement::Inline, io_uring_unavailable::<R>())
}

/// Builds the `-offload` variant on `R`; see [`build`].
pub fn build_offload<R: CompletionRuntime>(
    config: &StyleConfig,
) -> Result<Box<dyn Style>, StyleError> {
    build::<R>(config, Placement::Offload, io_uring_unavailable::<R>())
}

/// Builds the style on `R`: [`ThreadPerCore`], or where io_uring is unavailable a
/// style that refuses every workload with that reason (so that building never fails
/// the suite, and what it refuses matches the entry's support).
fn build<R: CompletionRuntime>(
    config: &StyleConfig,
    placement: Placement,
    unavailable: Option<&'static str>,
) -> Result<Box<dyn Style>, StyleError> {
    match unavailable {
        Some(reason) => Ok(Box::new(Unavailable(reason))),
        None => Ok(Box::new(ThreadPerCore::<R>::start(config, placement)?)),
    }
}

/// A job for a worker thread: runs there, inside its runtime, and spawns what it needs.
type Job = Box<dyn FnOnce() + Send>;

/// `workers` threads, each running its own runtime and taking jobs from a queue of its
/// own. Dropping it closes the queues and joins the threads (each runtime drops the
/// tasks it still holds).
struct Workers {
    queues: Vec<async_channel::Sender<Job>>,
    /// The next worker [`Workers::next`] hands out.
    next: AtomicUsize,
    threads: Vec<JoinHandle<()>>,
}

impl Workers {
    fn start<R: CompletionRuntime>(count: NonZeroUsize, offload: bool) -> Result<Self, StyleError> {
        let mut workers = Workers {
            queues: Vec::with_capacity(count.get()),
            next: AtomicUsize::new(0),
            threads: Vec::with_capacity(count.get()),
        };
        for worker_idx in 0..count.get() {
            let (queue, jobs) = async_channel::unbounded::<Job>();
            let (ready, built) = mpsc::channel::<io::Result<()>>();
            // On error, `workers` is dropped, which stops the threads already started.
            let thread = thread::Builder::new()
                .name(format!("{}-{worker_idx}", R::THREAD_NAME))
                .spawn(move || {
                    let runtime = match R::build(offload) {
                        Ok(runtime) => runtime,
                        Err(error) => return drop(ready.send(Err(error))),
                    };
                    let _ = ready.send(Ok(()));
                    runtime.block_on(async move {
                        while let Ok(job) = jobs.recv().await {
                            job();
                        }
                    });
                })
                .map_err(StyleError::io("starting runtime threads"))?;
            workers.queues.push(queue);
            workers.threads.push(thread);
            match built.recv() {
                Ok(Ok(())) => {}
                Ok(Err(source)) => {
                    return Err(StyleError::Io {
                        context: "building a runtime",
                        source,
                    });
                }
                Err(_) => return Err(StyleError::WorkerFailed("a runtime thread died".into())),
            }
        }
        Ok(workers)
    }

    fn count(&self) -> usize {
        self.queues.len()
    }

    /// A worker index for the next piece of work, in turn.
    fn next(&self) -> usize {
        self.next.fetch_add(1, Ordering::Relaxed)
    }

    /// Runs `job` on worker `index % count`.
    fn run_on(&self, index: usize, job: impl FnOnce() + Send + 'static) -> Result<(), StyleError> {
        let worker = index % self.count();
        self.queues[worker]
            .try_send(Box::new(job))
            .map_err(|_| StyleError::WorkerFailed(format!("runtime thread {worker} has stopped")))
    }

    /// Runs the future `make` returns as a task on worker `index % count`; the receiver
    /// gets its output (or is closed, if the task was dropped before it finished).
    fn spawn_on<R, T, F, Fut>(
        &self,
        index: usize,
        make: F,
    ) -> Result<async_channel::Receiver<T>, StyleError>
    where
        R: CompletionRuntime,
        T: Send + 'static,
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = T> + 'static,
    {
        let (answer, answered) = async_channel::bounded(1);
        self.run_on(index, move || {
            R::spawn_detached(async move {
                let _ = answer.try_send(make().await);
            });
        })?;
        Ok(answered)
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        self.queues.clear();
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

/// A thread-per-core style: `workers` threads, each with its own `R` runtime.
pub struct ThreadPerCore<R> {
    workers: Arc<Workers>,
    placement: Placement,
    runtime: PhantomData<fn() -> R>,
}

impl<R> std::fmt::Debug for ThreadPerCore<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ThreadPerCore")
            .field("workers", &self.workers.count())
            .field("placement", &self.placement)
            .finish_non_exhaustive()
    }
}

impl<R: CompletionRuntime> ThreadPerCore<R> {
    /// Starts `config.workers` threads, each building its runtime; fails if any cannot.
    pub fn start(config: &StyleConfig, placement: Placement) -> Result<Self, StyleError> {
        let workers = Workers::start::<R>(config.workers, placement == Placement::Offload)?;
        Ok(Self {
            workers: Arc::new(workers),
            placement,
            runtime: PhantomData,
        })
    }

    /// Refuses the CPU and task workloads in an `-offload` variant.
    fn inline_only(&self) -> Result<(), StyleError> {
        match self.placement {
            Placement::Inline => Ok(()),
            Placement::Offload => Err(StyleError::NotApplicable(SERVER_VARIANT)),
        }
    }

    /// Runs `make(worker, share)` as a task on every worker, and waits for all of them;
    /// their outputs in worker order.
    fn on_every_worker<T, F, Fut>(&self, make: F) -> Result<Vec<T>, StyleError>
    where
        T: Send + 'static,
        F: Fn(usize) -> Fut + Send + Sync + Clone + 'static,
        Fut: Future<Output = T> + 'static,
    {
        let answers = (0..self.workers.count())
            .map(|worker| {
                let make = make.clone();
                self.workers
                    .spawn_on::<R, _, _, _>(worker, move || make(worker))
            })
            .collect::<Result<Vec<_>, _>>()?;
        answers
            .into_iter()
            .map(|answer| answer.recv_blocking().map_err(|_| task_lost()))
            .collect()
    }
}

fn task_lost() -> StyleError {
    StyleError::WorkerFailed("a task ended without an answer".into())
}

impl<R: CompletionRuntime> Style for ThreadPerCore<R> {
    fn fib_batch(&self, inputs: &[u32]) -> Result<Vec<u64>, StyleError> {
        self.inline_only()?;
        let (answer, answers) = mpsc::channel();
        for (index, &n) in inputs.iter().enumerate() {
            let answer = answer.clone();
            self.workers.run_on(index, move || {
                R::spawn_detached(async move {
                    let _ = answer.send((index, crate::fib(n)));
                });
            })?;
        }
        drop(answer);
        let mut ordered = vec![0; inputs.len()];
        for _ in inputs {
            let (index, value) = answers.recv().map_err(|_| task_lost())?;
            ordered[index] = value;
        }
        Ok(ordered)
    }

    fn fib_forkjoin(&self, job: ForkJoin) -> Result<u64, StyleError> {
        self.inline_only()?;
        let workers = Arc::clone(&self.workers);
        let root = self.workers.next();
        let answer = self.workers.spawn_on::<R, _, _, _>(root, move || {
            let spread = spread_levels(workers.count());
            fork_join::<R>(workers, job, job.n, spread)
        })?;
        answer.recv_blocking().ok().flatten().ok_or_else(task_lost)
    }

    fn spawn(&self, n_units: usize) -> Result<Vec<u64>, StyleError> {
        self.inline_only()?;
        let workers = self.workers.count();
        let shares = self.on_every_worker(move |worker| async move {
            // Spawn the whole share first, then join: every unit exists at once.
            let units: Vec<_> = (worker..n_units)
                .step_by(workers)
                .map(|index| R::spawn_joined(async move { tasks::spawn_unit(index) }))
                .collect();
            let mut answers = Vec::with_capacity(units.len());
            for unit in units {
                answers.push(unit.await);
            }
            answers
        })?;
        let mut ordered = vec![0; n_units];
        for (worker, share) in shares.into_iter().enumerate() {
            for (index, answer) in (worker..n_units).step_by(workers).zip(share) {
                ordered[index] = answer.ok_or_else(task_lost)?;
            }
        }
        Ok(ordered)
    }

    fn ping_pong(&self, n_messages: u64) -> Result<PingPong, StyleError> {
        self.inline_only()?;
        let worker = self.workers.next();
        let answer = self
            .workers
            .spawn_on::<R, _, _, _>(worker, move || async move {
                // Two tasks of one thread: where a thread-per-core runtime's units talk.
                let (ping_sender, pings) = async_channel::bounded::<u64>(1);
                let (pong_sender, pongs) = async_channel::bounded::<u64>(1);
                let ponger = R::spawn_joined(tasks::async_ponger(pings, pong_sender));
                let pinger = R::spawn_joined(tasks::async_pinger(n_messages, ping_sender, pongs));
                Some(PingPong::from_sides(ponger.await?, pinger.await?))
            })?;
        answer.recv_blocking().ok().flatten().ok_or_else(task_lost)
    }

    fn sleepers(&self, n_units: usize, sleep: Duration) -> Result<Sleepers, StyleError> {
        self.inline_only()?;
        let workers = self.workers.count();
        let start = Instant::now();
        let shares = self.on_every_worker(move |worker| async move {
            let units: Vec<_> = (worker..n_units)
                .step_by(workers)
                .map(|_| {
                    R::spawn_joined(async move {
                        let began = Instant::now();
                        R::sleep(sleep).await;
                        tasks::slept_full(began, sleep)
                    })
                })
                .collect();
            let spawned_by = start.elapsed();
            let mut slept_full = Vec::with_capacity(units.len());
            for unit in units {
                // A unit that panicked did not sleep its full time.
                slept_full.push(unit.await.unwrap_or(false));
            }
            (spawned_by, slept_full)
        })?;
        let spawned_in = shares
            .iter()
            .map(|(spawned_by, _)| *spawned_by)
            .max()
            .unwrap_or_default();
        let slept_full = shares.into_iter().flat_map(|(_, share)| share);
        Ok(Sleepers::tally(slept_full, spawned_in, start.elapsed()))
    }

    fn serve(
        &self,
        listener: TcpListener,
        config: ServeConfig,
    ) -> Result<ServerHandle, StyleError> {
        let local_addr = listener
            .local_addr()
            .map_err(StyleError::io("reading the listener's address"))?;
        let server_id = NEXT_SERVER_ID.fetch_add(1, Ordering::Relaxed);
        let (acceptor_done, acceptors_done) = mpsc::channel::<()>();
        let placement = self.placement;
        for worker in 0..self.workers.count() {
            let listener = listener
                .try_clone()
                .map_err(StyleError::io("duplicating the listener"))?;
            let done = acceptor_done.clone();
            self.workers.run_on(worker, move || {
                // Closed (its sender dropped, on this thread) to stop: every acceptor
                // and connection task of this server on this thread races its work
                // against it. One channel per thread, closed by a job on that thread,
                // so that stopping wakes each task from its own thread: waking
                // thousands from another one overflows compio's queue of remote wakes,
                // whose sender spins until the runtime drains it.
                let (stop, stopped) = async_channel::bounded::<()>(1);
                RUNNING_SERVERS.with(|servers| servers.borrow_mut().insert(server_id, stop));
                R::spawn_detached(async move {
                    // Tells `stop` this acceptor has ended, however it ends.
                    let _done = done;
                    let listener = match R::listen(listener) {
                        Ok(listener) => listener,
                        Err(error) => return eprintln!("cannot register the listener: {error}"),
                    };
                    let accepting =
                        accept_connections::<R>(listener, config, placement, stopped.clone());
                    futures_lite::future::or(accepting, until_closed(stopped)).await;
                });
            })?;
        }
        drop(acceptor_done);
        let workers = Arc::clone(&self.workers);
        Ok(ServerHandle::new(local_addr, move || {
            let acceptors = workers.count();
            for worker in 0..acceptors {
                // A worker that is gone has dropped this server with its thread.
                let _ = workers.run_on(worker, move || {
                    RUNNING_SERVERS.with(|servers| servers.borrow_mut().remove(&server_id));
                });
            }
            // Each acceptor's sender is dropped when it ends, or when its runtime
            // thread does: this cannot wait for one that is gone.
            for _ in 0..acceptors {
                if acceptors_done.recv().is_err() {
                    break;
                }
            }
        }))
    }
}

/// Hands out the ids under which a worker thread keeps its servers' stop channels.
static NEXT_SERVER_ID: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// This worker thread's running servers, by id: removing one's sender closes its
    /// channel, which stops its acceptor and connections on this thread.
    static RUNNING_SERVERS: RefCell<HashMap<u64, async_channel::Sender<()>>> =
        RefCell::new(HashMap::new());
}

/// Completes when `stopped`'s sender is dropped.
async fn until_closed(stopped: async_channel::Receiver<()>) {
    while stopped.recv().await.is_ok() {}
}

/// Accepts connections on this thread's duplicate of the listener and serves each in a
/// local task, raced against `stopped` so that stopping the server closes it.
async fn accept_connections<R: CompletionRuntime>(
    listener: R::Listener,
    config: ServeConfig,
    placement: Placement,
    stopped: async_channel::Receiver<()>,
) {
    loop {
        match R::accept(&listener).await {
            Ok(stream) => {
                let serving = async move {
                    // A failed connection concerns its client only.
                    let _ = serve_connection::<R>(stream, config, placement).await;
                };
                R::spawn_detached(futures_lite::future::or(
                    serving,
                    until_closed(stopped.clone()),
                ));
            }
            Err(error) if is_transient_accept_error(&error) => {
                R::sleep(Duration::from_millis(10)).await;
            }
            Err(error) => return eprintln!("accept failed, the server stops accepting: {error}"),
        }
    }
}

/// Serves one connection until the client disconnects or sends a line too long:
/// [`crate::server::serve_async_connection`]'s loop, with owned buffers.
async fn serve_connection<R: CompletionRuntime>(
    mut stream: R::Stream,
    config: ServeConfig,
    placement: Placement,
) -> io::Result<()> {
    let mut session = config.session();
    let mut backend = Backend::<R> {
        addr: config.backend,
        stream: None,
    };
    let mut input = Vec::with_capacity(ASYNC_READ_BYTES);
    let mut output = Vec::with_capacity(64);
    loop {
        let (read, buffer) = stream.read(input).await;
        input = buffer;
        if read? == 0 {
            return Ok(());
        }
        session.receive(&input);
        let close = loop {
            match session.next_action() {
                Action::Compute(n) => session.answer(compute::<R>(n, placement).await?),
                Action::AskBackend(n) => session.answer_backend(backend.ask(n).await),
                Action::Read => break false,
                Action::Close => break true,
            }
        };
        if session.has_output() {
            output.clear();
            output.extend_from_slice(session.output());
            let (written, buffer) = stream.write_all(output).await;
            output = buffer;
            written?;
            session.consume_output(output.len());
        }
        if close {
            return stream.close().await;
        }
    }
}

/// `fib(n)` in the connection's task, or on the runtime's blocking pool.
async fn compute<R: CompletionRuntime>(n: u32, placement: Placement) -> io::Result<u64> {
    match placement {
        Placement::Inline => Ok(crate::fib(n)),
        Placement::Offload => R::unblock(move || crate::fib(n)).await,
    }
}

/// A connection's backend client: one connection, opened on first use and kept while
/// it works ([`crate::backend::AsyncBackend`], with owned buffers).
struct Backend<R: CompletionRuntime> {
    addr: Option<SocketAddr>,
    stream: Option<R::Stream>,
}

impl<R: CompletionRuntime> Backend<R> {
    /// Asks for `fib(n)` and awaits the answer, at most [`BACKEND_REPLY_TIMEOUT`]
    /// (connecting included), without holding the thread.
    async fn ask(&mut self, n: u32) -> Result<u64, BackendError> {
        let addr = self.addr.ok_or(BackendError::NotConfigured)?;
        if self
            .stream
            .as_ref()
            .is_some_and(|stream| bytes_waiting(stream.socket()))
        {
            self.stream = None;
        }
        let exchange = async {
            let stream = match &mut self.stream {
                Some(stream) => stream,
                None => {
                    let stream = R::connect(addr)
                        .await
                        .map_err(|error| BackendError::Connect(error.to_string()))?;
                    self.stream.insert(stream)
                }
            };
            exchange::<R>(stream, n).await
        };
        let timeout = async {
            R::sleep(BACKEND_REPLY_TIMEOUT).await;
            Err(BackendError::TimedOut)
        };
        // A timed-out exchange is dropped with its operation in flight: the runtime
        // keeps the buffer until the kernel is done with it.
        let answer = futures_lite::future::or(exchange, timeout).await;
        if answer.is_err() {
            self.stream = None;
        }
        answer
    }
}

async fn exchange<R: CompletionRuntime>(
    stream: &mut R::Stream,
    n: u32,
) -> Result<u64, BackendError> {
    let lost = |error: io::Error| BackendError::Lost(error.to_string());
    let (written, _) = stream.write_all(backend_request(n)).await;
    written.map_err(lost)?;
    let mut parser = ReplyParser::default();
    let mut buffer = Vec::with_capacity(MAX_BACKEND_REPLY_BYTES);
    loop {
        let (read, returned) = stream.read(buffer).await;
        buffer = returned;
        if read.map_err(lost)? == 0 {
            return Err(BackendError::Lost("closed by the backend".into()));
        }
        if let Some(verdict) = parser.push(&buffer) {
            return verdict;
        }
    }
}

/// How many levels of a fork-join tree hand their left child to another worker: about
/// four subtrees per worker, so that every thread gets work while few tasks are woken
/// from another thread (a parent waiting for a child that ran elsewhere). Each such
/// wake goes through the runtime's queue of remote wakes, which in compio is bounded:
/// threads that wake many tasks on each other at once spin on each other's full queues
/// and never drain their own.
fn spread_levels(workers: usize) -> u32 {
    workers.next_power_of_two().trailing_zeros() + 2
}

/// `fib(n)` as a task tree: every split spawns its left child as a task and goes down
/// the right one itself. In the first `spread` levels the left child goes to the next
/// worker in turn; below, it stays on this thread, as a thread-per-core runtime's tasks
/// do. `None`: a task was lost.
fn fork_join<R: CompletionRuntime>(
    workers: Arc<Workers>,
    job: ForkJoin,
    n: u32,
    spread: u32,
) -> Pin<Box<dyn Future<Output = Option<u64>>>> {
    Box::pin(async move {
        match job.step(n) {
            Step::Leaf(value) => Some(value),
            Step::Split(left, right) => {
                let below = spread.saturating_sub(1);
                let left: Pin<Box<dyn Future<Output = Option<u64>>>> = if spread > 0 {
                    let left_workers = Arc::clone(&workers);
                    let answer = workers
                        .spawn_on::<R, _, _, _>(workers.next(), move || {
                            fork_join::<R>(left_workers, job, left, below)
                        })
                        .ok()?;
                    Box::pin(async move { answer.recv().await.ok().flatten() })
                } else {
                    let task = R::spawn_joined(fork_join::<R>(Arc::clone(&workers), job, left, 0));
                    Box::pin(async move { task.await.flatten() })
                };
                let right = fork_join::<R>(workers, job, right, below).await?;
                Some(left.await? + right)
            }
        }
    })
}

/// A style whose runtime cannot start here: every workload is refused with the reason
/// its entry's support gives.
#[derive(Debug)]
struct Unavailable(&'static str);

impl Style for Unavailable {
    fn fib_batch(&self, _: &[u32]) -> Result<Vec<u64>, StyleError> {
        Err(StyleError::NotApplicable(self.0))
    }
    fn fib_forkjoin(&self, _: ForkJoin) -> Result<u64, StyleError> {
        Err(StyleError::NotApplicable(self.0))
    }
    fn spawn(&self, _: usize) -> Result<Vec<u64>, StyleError> {
        Err(StyleError::NotApplicable(self.0))
    }
    fn ping_pong(&self, _: u64) -> Result<PingPong, StyleError> {
        Err(StyleError::NotApplicable(self.0))
    }
    fn sleepers(&self, _: usize, _: Duration) -> Result<Sleepers, StyleError> {
        Err(StyleError::NotApplicable(self.0))
    }
    fn serve(&self, _: TcpListener, _: ServeConfig) -> Result<ServerHandle, StyleError> {
        Err(StyleError::NotApplicable(self.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::fd::AsRawFd;

    /// A runtime whose kernel refuses io_uring the way an old kernel does.
    struct Refused;

    struct NoStream;

    impl CompletionStream for NoStream {
        async fn read(&mut self, buffer: Vec<u8>) -> (io::Result<usize>, Vec<u8>) {
            (Ok(0), buffer)
        }
        async fn write_all(&mut self, buffer: Vec<u8>) -> (io::Result<()>, Vec<u8>) {
            (Ok(()), buffer)
        }
        async fn close(&mut self) -> io::Result<()> {
            Ok(())
        }
        fn socket(&self) -> RawFd {
            -1
        }
    }

    impl CompletionRuntime for Refused {
        type Listener = ();
        type Stream = NoStream;
        const THREAD_NAME: &'static str = "refused";

        fn probed() -> &'static OnceLock<Option<&'static str>> {
            static PROBED: OnceLock<Option<&'static str>> = OnceLock::new();
            &PROBED
        }

        fn build(_offload: bool) -> io::Result<Self> {
            Err(io::Error::from_raw_os_error(38))
        }
        fn block_on(self, _future: impl Future<Output = ()>) {}
        fn spawn_detached(_future: impl Future<Output = ()> + 'static) {}
        fn spawn_joined<T: 'static>(
            _future: impl Future<Output = T> + 'static,
        ) -> impl Future<Output = Option<T>> + 'static {
            std::future::ready(None)
        }
        fn sleep(_duration: Duration) -> impl Future<Output = ()> {
            std::future::ready(())
        }
        fn listen(_listener: TcpListener) -> io::Result<Self::Listener> {
            Ok(())
        }
        async fn accept(_listener: &Self::Listener) -> io::Result<Self::Stream> {
            Ok(NoStream)
        }
        async fn connect(_addr: SocketAddr) -> io::Result<Self::Stream> {
            Ok(NoStream)
        }
        async fn unblock<T: Send + 'static>(
            work: impl FnOnce() -> T + Send + 'static,
        ) -> io::Result<T> {
            Ok(work())
        }
    }

    #[test]
    fn a_refused_runtime_makes_every_workload_not_applicable_with_the_kernels_error() {
        let reason = io_uring_unavailable::<Refused>().expect("refused");
        assert!(reason.starts_with(UNAVAILABLE), "{reason}");
        assert!(reason.contains("os error 38"), "{reason}");
        for workload in Workload::ALL {
            assert_eq!(
                inline_support::<Refused>(workload),
                Support::NotApplicable(reason)
            );
            assert_eq!(
                offload_support::<Refused>(workload),
                Support::NotApplicable(reason)
            );
        }
        let config = StyleConfig::new(NonZeroUsize::MIN);
        let style = build_inline::<Refused>(&config).expect("builds");
        match style.fib_batch(&[1, 2]) {
            Err(StyleError::NotApplicable(refused)) => assert_eq!(refused, reason),
            other => panic!("{other:?}"),
        }
        // Without the probe's verdict, building it fails with the kernel's error.
        match ThreadPerCore::<Refused>::start(&config, Placement::Inline) {
            Err(StyleError::Io { source, .. }) => assert_eq!(source.raw_os_error(), Some(38)),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn bytes_waiting_sees_unasked_bytes_and_a_closed_peer_without_waiting() {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let mut peer =
            std::net::TcpStream::connect(listener.local_addr().expect("addr")).expect("connect");
        let (kept, _) = listener.accept().expect("accept");
        assert!(!bytes_waiting(kept.as_raw_fd()), "an idle connection");
        peer.write_all(b"x").expect("write");
        let deadline = Instant::now() + Duration::from_secs(5);
        while !bytes_waiting(kept.as_raw_fd()) {
            assert!(Instant::now() < deadline, "the byte never arrived");
            thread::sleep(Duration::from_millis(1));
        }
        // Peeking consumed nothing.
        assert!(bytes_waiting(kept.as_raw_fd()));
        let (other_peer, other) = {
            let peer = std::net::TcpStream::connect(listener.local_addr().expect("addr"))
                .expect("connect");
            (peer, listener.accept().expect("accept").0)
        };
        drop(other_peer);
        while !bytes_waiting(other.as_raw_fd()) {
            assert!(Instant::now() < deadline, "the close never arrived");
            thread::sleep(Duration::from_millis(1));
        }
    }
}
