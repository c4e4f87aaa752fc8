//! tokio: a runtime built once with the worker count.
//!
//! `tokio` is the multi-thread runtime with `workers` worker threads; `tokio-current`
//! is the current-thread runtime, which runs everything on the thread that calls
//! `block_on`. On the multi-thread runtime the measured work is spawned onto the workers
//! and the calling thread only waits for its handle: `block_on` itself runs on the
//! caller, not on a worker, so work done inside it would measure one thread, not the
//! runtime (tokio#5440 shows how large that artefact is).
//!
//! Batches spawn one task per input and let tokio's work-stealing scheduler balance
//! them; fork-join spawns the left child of every split and awaits the right one inline.
//!
//! A `spawn` unit is a task; `ping_pong` runs between two tasks over `tokio::sync::mpsc`
//! channels; `sleepers` are tasks waiting on `tokio::time::sleep`.
//!
//! The server is `tokio::net` with a task per connection. `tokio` and `tokio-current`
//! compute `fib` inline, in the connection's task, on purpose: a long request holds its
//! worker thread. `tokio-offload` sends every `fib` to tokio's blocking pool with
//! `spawn_blocking`, unbounded: each request gets a blocking thread of its own, up to
//! the pool's limit of 512. tokio's documentation accepts `spawn_blocking` for CPU-bound
//! work but says that for much of it a dedicated, bounded pool (rayon, or a semaphore in
//! front) is better, since hundreds of threads then share the cores; the variant is
//! that simple, unbounded offload, labelled as such, not the bounded design.

#![forbid(unsafe_code)]

use std::future::Future;
use std::io;
use std::net::TcpListener;
use std::pin::Pin;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::runtime::{Builder, Runtime};
use tokio::sync::{mpsc, oneshot};
use tokio::task::{JoinHandle, JoinSet};
use workloads::backend::BackendConnector;
use workloads::server::{self, AsyncStream, Placement, SERVER_VARIANT, ServeConfig, ServerHandle};
use workloads::tasks::{self, PingPong, Receiver, Sleepers, UnitKind};
use workloads::{
    CpuThreads, ForkJoin, ServerModel, Step, Style, StyleConfig, StyleEntry, StyleError, Support,
    Workload, fib,
};

/// The `tokio` row of the catalog: the multi-thread runtime.
pub const ENTRY: StyleEntry = StyleEntry {
    name: "tokio",
    summary: "tokio multi-thread runtime: a task per input, split or connection, fib inline",
    support: support_runtime,
    build: build_multi_thread,
    server_model: ServerModel::Concurrent,
    cpu_threads: CpuThreads::Workers,
    unit: UnitKind::Task,
};

/// The `tokio-current` row of the catalog: the current-thread runtime.
pub const ENTRY_CURRENT: StyleEntry = StyleEntry {
    name: "tokio-current",
    summary: "tokio current-thread runtime: every task on one thread, fib inline",
    support: support_runtime,
    build: build_current_thread,
    server_model: ServerModel::Concurrent,
    cpu_threads: CpuThreads::One,
    unit: UnitKind::Task,
};

/// The `tokio-offload` row of the catalog: the multi-thread runtime's server with every
/// `fib` sent to the blocking pool.
pub const ENTRY_OFFLOAD: StyleEntry = StyleEntry {
    name: "tokio-offload",
    summary: "tokio multi-thread runtime, each request's fib on `spawn_blocking` (unbounded)",
    support: server::server_variant_support,
    build: build_offload,
    server_model: ServerModel::Concurrent,
    cpu_threads: CpuThreads::Workers,
    unit: UnitKind::Task,
};

fn support_runtime(workload: Workload) -> Support {
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

fn build_multi_thread(config: &StyleConfig) -> Result<Box<dyn Style>, StyleError> {
    Tokio::multi_thread(config, Placement::Inline)
}

fn build_offload(config: &StyleConfig) -> Result<Box<dyn Style>, StyleError> {
    Tokio::multi_thread(config, Placement::Offload)
}

fn build_current_thread(_config: &StyleConfig) -> Result<Box<dyn Style>, StyleError> {
    let runtime = Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(StyleError::io("building the tokio runtime"))?;
    Ok(Box::new(Tokio {
        runtime: Arc::new(runtime),
        flavor: Flavor::CurrentThread,
        placement: Placement::Inline,
    }))
}

/// Which tokio scheduler runs the work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flavor {
    MultiThread,
    CurrentThread,
}

/// A tokio runtime, built once, and where its server computes `fib`.
#[derive(Debug)]
pub struct Tokio {
    /// Shared with the thread that drives a current-thread runtime's server.
    runtime: Arc<Runtime>,
    flavor: Flavor,
    placement: Placement,
}

impl Tokio {
    fn multi_thread(
        config: &StyleConfig,
        placement: Placement,
    ) -> Result<Box<dyn Style>, StyleError> {
        let runtime = Builder::new_multi_thread()
            .worker_threads(config.workers.get())
            .thread_name("tokio-style")
            .enable_all()
            .build()
            .map_err(StyleError::io("building the tokio runtime"))?;
        Ok(Box::new(Self {
            runtime: Arc::new(runtime),
            flavor: Flavor::MultiThread,
            placement,
        }))
    }

    /// Runs `work` to completion on the runtime's workers and returns its output.
    fn run<T: Send + 'static>(
        &self,
        work: impl Future<Output = Result<T, StyleError>> + Send + 'static,
    ) -> Result<T, StyleError> {
        if self.placement == Placement::Offload {
            return Err(StyleError::NotApplicable(SERVER_VARIANT));
        }
        match self.flavor {
            // The caller only waits; the work runs on a worker thread.
            Flavor::MultiThread => {
                let handle = self.runtime.spawn(work);
                self.runtime.block_on(handle).map_err(join_failed)?
            }
            // A current-thread runtime runs its tasks inside `block_on`, on the caller:
            // that single thread is what this variant measures.
            Flavor::CurrentThread => self.runtime.block_on(work),
        }
    }
}

impl Style for Tokio {
    fn fib_batch(&self, inputs: &[u32]) -> Result<Vec<u64>, StyleError> {
        let inputs = inputs.to_vec();
        self.run(async move {
            let tasks: Vec<JoinHandle<u64>> = inputs
                .into_iter()
                .map(|n| tokio::spawn(async move { fib(n) }))
                .collect();
            let mut answers = Vec::with_capacity(tasks.len());
            for task in tasks {
                answers.push(task.await.map_err(join_failed)?);
            }
            Ok(answers)
        })
    }

    fn fib_forkjoin(&self, job: ForkJoin) -> Result<u64, StyleError> {
        self.run(spawn_fib(job, job.n))
    }

    fn spawn(&self, n_units: usize) -> Result<Vec<u64>, StyleError> {
        self.run(async move {
            let units: Vec<JoinHandle<u64>> = (0..n_units)
                .map(|index| tokio::spawn(async move { tasks::spawn_unit(index) }))
                .collect();
            let mut answers = Vec::with_capacity(n_units);
            for unit in units {
                answers.push(unit.await.map_err(join_failed)?);
            }
            Ok(answers)
        })
    }

    fn ping_pong(&self, n_messages: u64) -> Result<PingPong, StyleError> {
        self.run(async move {
            // Capacity 1, where the other styles' channels are unbounded: the same thing
            // here, since each side waits for the reply before sending again, so no
            // channel ever holds more than one message.
            let (ping_sender, mut pings) = mpsc::channel::<u64>(1);
            let (pong_sender, mut pongs) = mpsc::channel::<u64>(1);
            let ponger = tokio::spawn(async move {
                let mut received = Receiver::default();
                // Ends when the pinger drops its sender.
                while let Some(ping) = pings.recv().await {
                    received.receive(ping);
                    if pong_sender.send(ping).await.is_err() {
                        break;
                    }
                }
                received
            });
            let pinger = tokio::spawn(async move {
                let mut received = Receiver::default();
                for message in 0..n_messages {
                    if ping_sender.send(message).await.is_err() {
                        break;
                    }
                    match pongs.recv().await {
                        Some(pong) => received.receive(pong),
                        None => break,
                    }
                }
                received
            });
            let pings = ponger.await.map_err(join_failed)?;
            let pongs = pinger.await.map_err(join_failed)?;
            Ok(PingPong::from_sides(pings, pongs))
        })
    }

    fn sleepers(&self, n_units: usize, sleep: Duration) -> Result<Sleepers, StyleError> {
        self.run(async move {
            let start = Instant::now();
            let units: Vec<JoinHandle<bool>> = (0..n_units)
                .map(|_| {
                    tokio::spawn(async move {
                        let began = Instant::now();
                        tokio::time::sleep(sleep).await;
                        tasks::slept_full(began, sleep)
                    })
                })
                .collect();
            let spawned_in = start.elapsed();
            let mut slept_full = Vec::with_capacity(n_units);
            for unit in units {
                slept_full.push(unit.await.map_err(join_failed)?);
            }
            Ok(Sleepers::tally(slept_full, spawned_in, start.elapsed()))
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
        listener
            .set_nonblocking(true)
            .map_err(StyleError::io("making the listener non-blocking"))?;
        let placement = self.placement;
        let (stop, stopped) = oneshot::channel::<()>();
        let server = async move {
            // Registering with the reactor needs the runtime's context: do it in here.
            let listener = match tokio::net::TcpListener::from_std(listener) {
                Ok(listener) => listener,
                Err(error) => return eprintln!("cannot register the listener: {error}"),
            };
            tokio::select! {
                () = accept_connections(listener, config, placement) => {}
                _ = stopped => {}
            }
        };
        match self.flavor {
            Flavor::MultiThread => {
                let server = self.runtime.spawn(server);
                let runtime = self.runtime.handle().clone();
                Ok(ServerHandle::new(local_addr, move || {
                    let _ = stop.send(());
                    let _ = runtime.block_on(server);
                }))
            }
            Flavor::CurrentThread => {
                // A current-thread runtime only runs inside `block_on`: give the server
                // a thread to block on.
                let runtime = Arc::clone(&self.runtime);
                let driver = thread::Builder::new()
                    .name("tokio-current-server".into())
                    .spawn(move || {
                        runtime.block_on(server);
                        // Stopping dropped the accept loop's `JoinSet`, which aborts
                        // every connection task; a current-thread runtime drops an
                        // aborted task (and closes its connection) only when it runs
                        // again, so give it a few turns before this thread leaves.
                        runtime.block_on(async {
                            for _ in 0..16 {
                                tokio::task::yield_now().await;
                            }
                        });
                    })
                    .map_err(StyleError::io("starting the server thread"))?;
                Ok(ServerHandle::new(local_addr, move || {
                    let _ = stop.send(());
                    let _ = driver.join();
                }))
            }
        }
    }
}

/// Accepts connections and serves each in a task of its own, until dropped; dropping it
/// also aborts every connection task (they live in its `JoinSet`).
async fn accept_connections(
    listener: tokio::net::TcpListener,
    config: ServeConfig,
    placement: Placement,
) {
    let mut connections = JoinSet::new();
    loop {
        // Forget finished connections, so the set holds only open ones.
        while connections.try_join_next().is_some() {}
        match listener.accept().await {
            Ok((stream, _peer)) => {
                let _ = stream.set_nodelay(true);
                connections.spawn(async move {
                    let compute = |n| compute_fib(n, placement);
                    // A failed connection concerns its client only.
                    let _ = server::serve_async_connection(
                        TokioStream(stream),
                        config,
                        TokioConnector,
                        compute,
                    )
                    .await;
                });
            }
            Err(error) if server::is_transient_accept_error(&error) => {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            Err(error) => return eprintln!("accept failed, the server stops accepting: {error}"),
        }
    }
}

/// `fib(n)` in the connection's task, or on the blocking pool.
async fn compute_fib(n: u32, placement: Placement) -> io::Result<u64> {
    match placement {
        Placement::Inline => Ok(fib(n)),
        Placement::Offload => tokio::task::spawn_blocking(move || fib(n))
            .await
            .map_err(io::Error::other),
    }
}

/// A `wait` request's backend connection: `tokio::net` and tokio's timer.
struct TokioConnector;

impl BackendConnector for TokioConnector {
    type Stream = TokioStream;

    async fn connect(&self, addr: std::net::SocketAddr) -> io::Result<Self::Stream> {
        let stream = tokio::net::TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(TokioStream(stream))
    }

    async fn sleep(&self, duration: Duration) {
        tokio::time::sleep(duration).await;
    }
}

/// tokio's `TcpStream` as the shared connection loop sees it.
struct TokioStream(tokio::net::TcpStream);

impl AsyncStream for TokioStream {
    async fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
        self.0.read(buffer).await
    }

    async fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.0.write_all(bytes).await
    }

    async fn close(&mut self) -> io::Result<()> {
        self.0.shutdown().await
    }
}

/// `fib(n)` as a task tree: spawn the left child of every split, await the right one
/// inline. Boxed because an `async fn` cannot recurse into itself unboxed.
fn spawn_fib(
    job: ForkJoin,
    n: u32,
) -> Pin<Box<dyn Future<Output = Result<u64, StyleError>> + Send>> {
    Box::pin(async move {
        match job.step(n) {
            Step::Leaf(value) => Ok(value),
            Step::Split(left, right) => {
                let left = tokio::spawn(spawn_fib(job, left));
                let right = spawn_fib(job, right).await?;
                Ok(left.await.map_err(join_failed)?? + right)
            }
        }
    })
}

fn join_failed(error: tokio::task::JoinError) -> StyleError {
    StyleError::WorkerFailed(format!("a tokio task failed: {error}"))
}
