//! smol: an `async-executor` [`Executor`] run on exactly `workers` threads.
//!
//! smol's global executor (`smol::spawn`) runs on one thread unless `SMOL_THREADS` is
//! set, so this style owns its executor instead, and runs it on `workers` threads the
//! way smol's documentation shows: each thread blocks on `executor.run(shutdown)`.
//! Work is spawned onto the executor and the caller only waits for its task.
//!
//! A `spawn` unit is a task; `ping_pong` runs between two tasks over `smol::channel`;
//! `sleepers` are tasks waiting on `smol::Timer`.
//!
//! The server is `smol::net` with a task per connection; `smol` computes `fib` inline in
//! the connection's task, `smol-offload` on the `blocking` crate's thread pool through
//! `smol::unblock`, smol's own answer to blocking work.

#![forbid(unsafe_code)]

use std::future::Future;
use std::io;
use std::net::TcpListener;
use std::pin::Pin;
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use smol::Executor;
use smol::channel::{self, Sender};
use workloads::backend::BackendConnector;
use workloads::server::{self, FuturesIo, Placement, SERVER_VARIANT, ServeConfig, ServerHandle};
use workloads::tasks::{self, PingPong, Sleepers, UnitKind};
use workloads::{
    CpuThreads, ForkJoin, ServerModel, Step, Style, StyleConfig, StyleEntry, StyleError, Support,
    Workload, fib,
};

/// The `smol` row of the catalog.
pub const ENTRY: StyleEntry = StyleEntry {
    name: "smol",
    summary: "smol `Executor` on `workers` threads: a task per input, split or connection, fib inline",
    support: support_executor,
    build: build_inline,
    server_model: ServerModel::Concurrent,
    cpu_threads: CpuThreads::Workers,
    unit: UnitKind::Task,
};

/// The `smol-offload` row of the catalog: the server with every `fib` on smol's
/// blocking pool.
pub const ENTRY_OFFLOAD: StyleEntry = StyleEntry {
    name: "smol-offload",
    summary: "smol `Executor` on `workers` threads, each request's fib on `smol::unblock`",
    support: server::server_variant_support,
    build: build_offload,
    server_model: ServerModel::Concurrent,
    cpu_threads: CpuThreads::Workers,
    unit: UnitKind::Task,
};

fn support_executor(workload: Workload) -> Support {
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

fn build_inline(config: &StyleConfig) -> Result<Box<dyn Style>, StyleError> {
    Ok(Box::new(Smol::start(config, Placement::Inline)?))
}

fn build_offload(config: &StyleConfig) -> Result<Box<dyn Style>, StyleError> {
    Ok(Box::new(Smol::start(config, Placement::Offload)?))
}

impl Smol {
    /// Starts an executor on `config.workers` threads.
    fn start(config: &StyleConfig, placement: Placement) -> Result<Self, StyleError> {
        let executor = Arc::new(Executor::new());
        let (shutdown, shutdown_signal) = channel::bounded::<()>(1);
        let mut smol = Smol {
            executor,
            shutdown: Some(shutdown),
            threads: Vec::with_capacity(config.workers.get()),
            placement,
        };
        for worker_idx in 0..config.workers.get() {
            let (executor, shutdown_signal) = (Arc::clone(&smol.executor), shutdown_signal.clone());
            // On error, `smol` is dropped, which stops the threads already started.
            let thread = thread::Builder::new()
                .name(format!("smol-{worker_idx}"))
                .spawn(move || smol::block_on(executor.run(shutdown_signal.recv())))
                .map_err(StyleError::io("starting smol executor threads"))?;
            smol.threads.push(thread);
        }
        Ok(smol)
    }
}

/// An executor and the threads that run it; dropping it stops and joins the threads.
#[derive(Debug)]
pub struct Smol {
    executor: Arc<Executor<'static>>,
    /// Dropped to stop the threads: every `recv` on the other end then completes.
    shutdown: Option<Sender<()>>,
    threads: Vec<JoinHandle<Result<(), channel::RecvError>>>,
    placement: Placement,
}

impl Smol {
    /// Runs `work` as a task on the executor's threads; the caller only waits.
    fn run<T: Send + 'static>(
        &self,
        work: impl Future<Output = T> + Send + 'static,
    ) -> Result<T, StyleError> {
        if self.placement == Placement::Offload {
            return Err(StyleError::NotApplicable(SERVER_VARIANT));
        }
        Ok(smol::block_on(self.executor.spawn(work)))
    }
}

impl Style for Smol {
    fn fib_batch(&self, inputs: &[u32]) -> Result<Vec<u64>, StyleError> {
        let inputs = inputs.to_vec();
        let executor = Arc::clone(&self.executor);
        self.run(async move {
            let tasks: Vec<_> = inputs
                .into_iter()
                .map(|n| executor.spawn(async move { fib(n) }))
                .collect();
            let mut answers = Vec::with_capacity(tasks.len());
            for task in tasks {
                answers.push(task.await);
            }
            answers
        })
    }

    fn fib_forkjoin(&self, job: ForkJoin) -> Result<u64, StyleError> {
        self.run(spawn_fib(Arc::clone(&self.executor), job, job.n))
    }

    fn spawn(&self, n_units: usize) -> Result<Vec<u64>, StyleError> {
        let executor = Arc::clone(&self.executor);
        self.run(async move {
            let units: Vec<_> = (0..n_units)
                .map(|index| executor.spawn(async move { tasks::spawn_unit(index) }))
                .collect();
            let mut answers = Vec::with_capacity(n_units);
            for unit in units {
                answers.push(unit.await);
            }
            answers
        })
    }

    fn ping_pong(&self, n_messages: u64) -> Result<PingPong, StyleError> {
        let executor = Arc::clone(&self.executor);
        self.run(async move {
            let (ping_sender, pings) = smol::channel::bounded::<u64>(1);
            let (pong_sender, pongs) = smol::channel::bounded::<u64>(1);
            let ponger = executor.spawn(tasks::async_ponger(pings, pong_sender));
            let pinger = executor.spawn(tasks::async_pinger(n_messages, ping_sender, pongs));
            PingPong::from_sides(ponger.await, pinger.await)
        })
    }

    fn sleepers(&self, n_units: usize, sleep: Duration) -> Result<Sleepers, StyleError> {
        let executor = Arc::clone(&self.executor);
        self.run(async move {
            let start = Instant::now();
            let units: Vec<_> = (0..n_units)
                .map(|_| {
                    executor.spawn(async move {
                        let began = Instant::now();
                        smol::Timer::after(sleep).await;
                        tasks::slept_full(began, sleep)
                    })
                })
                .collect();
            let spawned_in = start.elapsed();
            let mut slept_full = Vec::with_capacity(n_units);
            for unit in units {
                slept_full.push(unit.await);
            }
            Sleepers::tally(slept_full, spawned_in, start.elapsed())
        })
    }

    fn serve(
        &self,
        listener: TcpListener,
        config: ServeConfig,
    ) -> Result<ServerHandle, StyleError> {
        let local_addr = listener
            .local_addr()
            .map_err(StyleError::io("reading the listener's address"))?;
        let listener = smol::net::TcpListener::try_from(listener)
            .map_err(StyleError::io("registering the listener"))?;
        let accepting =
            accept_connections(Arc::clone(&self.executor), listener, config, self.placement);
        let server = self.executor.spawn(accepting);
        // Cancelling the accept task drops the listener.
        Ok(ServerHandle::new(local_addr, move || {
            smol::block_on(server.cancel());
        }))
    }
}

impl Drop for Smol {
    fn drop(&mut self) {
        self.shutdown = None;
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

/// Accepts connections and serves each in a task of its own, until cancelled;
/// cancelling it also cancels every connection task (it holds their handles).
async fn accept_connections(
    executor: Arc<Executor<'static>>,
    listener: smol::net::TcpListener,
    config: ServeConfig,
    placement: Placement,
) {
    let mut connections: Vec<smol::Task<()>> = Vec::new();
    loop {
        // Forget finished connections, so the list holds only open ones.
        connections.retain(|connection| !connection.is_finished());
        match listener.accept().await {
            Ok((stream, _peer)) => {
                let _ = stream.set_nodelay(true);
                let connection = async move {
                    let compute = |n| compute_fib(n, placement);
                    // A failed connection concerns its client only.
                    let _ = server::serve_async_connection(
                        FuturesIo(stream),
                        config,
                        SmolConnector,
                        compute,
                    )
                    .await;
                };
                connections.push(executor.spawn(connection));
            }
            Err(error) if server::is_transient_accept_error(&error) => {
                smol::Timer::after(Duration::from_millis(10)).await;
            }
            Err(error) => return eprintln!("accept failed, the server stops accepting: {error}"),
        }
    }
}

/// A `wait` request's backend connection: `smol::net` (async-io's reactor) and its
/// timer.
struct SmolConnector;

impl BackendConnector for SmolConnector {
    type Stream = FuturesIo<smol::net::TcpStream>;

    async fn connect(&self, addr: std::net::SocketAddr) -> io::Result<Self::Stream> {
        let stream = smol::net::TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(FuturesIo(stream))
    }

    async fn sleep(&self, duration: Duration) {
        smol::Timer::after(duration).await;
    }
}

/// `fib(n)` in the connection's task, or on smol's blocking pool.
async fn compute_fib(n: u32, placement: Placement) -> io::Result<u64> {
    match placement {
        Placement::Inline => Ok(fib(n)),
        Placement::Offload => Ok(smol::unblock(move || fib(n)).await),
    }
}

/// `fib(n)` as a task tree: spawn the left child of every split, await the right one
/// inline.
fn spawn_fib(
    executor: Arc<Executor<'static>>,
    job: ForkJoin,
    n: u32,
) -> Pin<Box<dyn Future<Output = u64> + Send>> {
    Box::pin(async move {
        match job.step(n) {
            Step::Leaf(value) => value,
            Step::Split(left, right) => {
                let left = executor.spawn(spawn_fib(Arc::clone(&executor), job, left));
                let right = spawn_fib(executor, job, right).await;
                left.await + right
            }
        }
    })
}
