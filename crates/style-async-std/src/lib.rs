//! async-std: its global executor, sized explicitly.
//!
//! async-std is deprecated upstream in favour of smol; it stays here because users
//! still compare against it. Its executor is process-global (`async-global-executor`)
//! and sizes itself from `ASYNC_GLOBAL_EXECUTOR_THREADS` or the core count unless
//! configured before first use, so this style configures it with exactly `workers`
//! threads when it is built, reading its count from a variable of this project's own so
//! that the public one cannot override it. The executor and the `async-io` reactor it
//! shares with smol live as long as the process: the measurement engine runs every
//! style in a process of its own; in `cargo bench`, where styles share one process,
//! they idle beside the styles measured after it. The global executor can be sized once per process: building the style
//! again with another worker count is an error rather than a silent mismatch.
//!
//! Work is spawned with `async_std::task::spawn` and the caller waits in
//! `task::block_on`, which runs only the caller's own future, not the spawned tasks.
//!
//! A `spawn` unit is a task; `ping_pong` runs between two tasks over async-std's
//! channels (`async-channel`); `sleepers` are tasks waiting on `task::sleep`.
//!
//! The server is `async_std::net` with a task per connection; `async-std` computes `fib`
//! inline in the connection's task, `async-std-offload` on async-std's blocking pool
//! (`task::spawn_blocking`).

#![forbid(unsafe_code)]

use std::future::Future;
use std::io;
use std::net::TcpListener;
use std::num::NonZeroUsize;
use std::pin::Pin;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use async_std::task;
use workloads::backend::BackendConnector;
use workloads::server::{self, FuturesIo, Placement, SERVER_VARIANT, ServeConfig, ServerHandle};
use workloads::tasks::{self, PingPong, Receiver, Sleepers, UnitKind};
use workloads::{
    CpuThreads, ForkJoin, ServerModel, Step, Style, StyleConfig, StyleEntry, StyleError, Support,
    Workload, fib,
};

/// The `async-std` row of the catalog.
pub const ENTRY: StyleEntry = StyleEntry {
    name: "async-std",
    summary: "async-std's global executor, sized to the workers: a task per input, split or connection, fib inline",
    support: support_executor,
    build: build_inline,
    server_model: ServerModel::Concurrent,
    cpu_threads: CpuThreads::Workers,
    unit: UnitKind::Task,
};

/// The `async-std-offload` row of the catalog: the server with every `fib` on the
/// blocking pool.
pub const ENTRY_OFFLOAD: StyleEntry = StyleEntry {
    name: "async-std-offload",
    summary: "async-std's global executor, each request's fib on `task::spawn_blocking`",
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
    start_executor(config)?;
    Ok(Box::new(AsyncStd {
        placement: Placement::Inline,
    }))
}

fn build_offload(config: &StyleConfig) -> Result<Box<dyn Style>, StyleError> {
    start_executor(config)?;
    Ok(Box::new(AsyncStd {
        placement: Placement::Offload,
    }))
}

/// The thread count the global executor was started with, in this process.
static EXECUTOR_THREADS: OnceLock<NonZeroUsize> = OnceLock::new();

/// The environment variable `async-global-executor` reads its thread count from. Its
/// default, `ASYNC_GLOBAL_EXECUTOR_THREADS`, would silently override the configured
/// count (the crate prefers the variable to `with_min_threads`), so a user's shell
/// could give async-std more threads than every other style; this name is the
/// project's own, and setting it is refused.
const PRIVATE_THREADS_VARIABLE: &str = "CONCBENCH_PRIVATE_ASYNC_STD_THREADS";

/// Starts the global executor with `config.workers` threads, once per process.
fn start_executor(config: &StyleConfig) -> Result<(), StyleError> {
    if std::env::var_os(PRIVATE_THREADS_VARIABLE).is_some() {
        return Err(StyleError::Config(format!(
            "{PRIVATE_THREADS_VARIABLE} is set: it would override the worker count; unset it"
        )));
    }
    let threads = *EXECUTOR_THREADS.get_or_init(|| {
        async_global_executor::init_with_config(
            async_global_executor::GlobalExecutorConfig::default()
                .with_env_var(PRIVATE_THREADS_VARIABLE)
                .with_min_threads(config.workers.get())
                .with_max_threads(config.workers.get()),
        );
        config.workers
    });
    if threads != config.workers {
        return Err(StyleError::Config(format!(
            "async-std's global executor already runs {threads} threads in this process; \
             it cannot be resized to {}",
            config.workers
        )));
    }
    Ok(())
}

/// A handle to async-std's global executor, started with the configured thread count,
/// and where its server computes `fib`.
#[derive(Debug, Clone, Copy)]
pub struct AsyncStd {
    placement: Placement,
}

impl AsyncStd {
    /// Runs `work` as a task on the executor's threads; the caller only waits.
    fn run<T: Send + 'static>(
        &self,
        work: impl Future<Output = T> + Send + 'static,
    ) -> Result<T, StyleError> {
        if self.placement == Placement::Offload {
            return Err(StyleError::NotApplicable(SERVER_VARIANT));
        }
        // A panic inside a task resurfaces here when its handle is awaited.
        Ok(task::block_on(task::spawn(work)))
    }
}

impl Style for AsyncStd {
    fn fib_batch(&self, inputs: &[u32]) -> Result<Vec<u64>, StyleError> {
        let inputs = inputs.to_vec();
        self.run(async move {
            let tasks: Vec<_> = inputs
                .into_iter()
                .map(|n| task::spawn(async move { fib(n) }))
                .collect();
            let mut answers = Vec::with_capacity(tasks.len());
            for task in tasks {
                answers.push(task.await);
            }
            answers
        })
    }

    fn fib_forkjoin(&self, job: ForkJoin) -> Result<u64, StyleError> {
        self.run(spawn_fib(job, job.n))
    }

    fn spawn(&self, n_units: usize) -> Result<Vec<u64>, StyleError> {
        self.run(async move {
            let units: Vec<_> = (0..n_units)
                .map(|index| task::spawn(async move { tasks::spawn_unit(index) }))
                .collect();
            let mut answers = Vec::with_capacity(n_units);
            for unit in units {
                answers.push(unit.await);
            }
            answers
        })
    }

    fn ping_pong(&self, n_messages: u64) -> Result<PingPong, StyleError> {
        self.run(async move {
            let (ping_sender, pings) = async_std::channel::bounded::<u64>(1);
            let (pong_sender, pongs) = async_std::channel::bounded::<u64>(1);
            let ponger = task::spawn(async move {
                let mut received = Receiver::default();
                // Ends when the pinger drops its sender.
                while let Ok(ping) = pings.recv().await {
                    received.receive(ping);
                    if pong_sender.send(ping).await.is_err() {
                        break;
                    }
                }
                received
            });
            let pinger = task::spawn(async move {
                let mut received = Receiver::default();
                for message in 0..n_messages {
                    if ping_sender.send(message).await.is_err() {
                        break;
                    }
                    match pongs.recv().await {
                        Ok(pong) => received.receive(pong),
                        Err(_) => break,
                    }
                }
                received
            });
            PingPong::from_sides(ponger.await, pinger.await)
        })
    }

    fn sleepers(&self, n_units: usize, sleep: Duration) -> Result<Sleepers, StyleError> {
        self.run(async move {
            let start = Instant::now();
            let units: Vec<_> = (0..n_units)
                .map(|_| {
                    task::spawn(async move {
                        let began = Instant::now();
                        task::sleep(sleep).await;
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
        listener
            .set_nonblocking(true)
            .map_err(StyleError::io("making the listener non-blocking"))?;
        let listener = async_std::net::TcpListener::from(listener);
        // Closed on stop: every connection task waits on it beside its connection, so
        // stopping the server ends them and closes their connections (async-std's task
        // handles detach when dropped; they cannot be cancelled all at once otherwise).
        let (stopping, stopped) = async_std::channel::bounded::<()>(1);
        let server = task::spawn(accept_connections(
            listener,
            config,
            self.placement,
            stopped,
        ));
        Ok(ServerHandle::new(local_addr, move || {
            stopping.close();
            // Cancelling the accept task drops the listener.
            task::block_on(server.cancel());
        }))
    }
}

/// Accepts connections and serves each in a task of its own, until cancelled; each
/// connection's task also ends when `stopped` closes.
async fn accept_connections(
    listener: async_std::net::TcpListener,
    config: ServeConfig,
    placement: Placement,
    stopped: async_std::channel::Receiver<()>,
) {
    loop {
        match listener.accept().await {
            Ok((stream, _peer)) => {
                let _ = stream.set_nodelay(true);
                let stopped = stopped.clone();
                task::spawn(async move {
                    let compute = |n| compute_fib(n, placement);
                    let serve = server::serve_async_connection(
                        FuturesIo(stream),
                        config,
                        AsyncStdConnector,
                        compute,
                    );
                    let stop = async {
                        // Only ever closed, never sent on: the error is the signal.
                        let _ = stopped.recv().await;
                        Ok(())
                    };
                    // A failed connection concerns its client only.
                    let _ = futures_lite::future::or(serve, stop).await;
                });
            }
            Err(error) if server::is_transient_accept_error(&error) => {
                task::sleep(Duration::from_millis(10)).await;
            }
            Err(error) => return eprintln!("accept failed, the server stops accepting: {error}"),
        }
    }
}

/// A `wait` request's backend connection: `async_std::net` and its timer.
struct AsyncStdConnector;

impl BackendConnector for AsyncStdConnector {
    type Stream = FuturesIo<async_std::net::TcpStream>;

    async fn connect(&self, addr: std::net::SocketAddr) -> io::Result<Self::Stream> {
        let stream = async_std::net::TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(FuturesIo(stream))
    }

    async fn sleep(&self, duration: Duration) {
        task::sleep(duration).await;
    }
}

/// `fib(n)` in the connection's task, or on async-std's blocking pool.
async fn compute_fib(n: u32, placement: Placement) -> io::Result<u64> {
    match placement {
        Placement::Inline => Ok(fib(n)),
        Placement::Offload => Ok(task::spawn_blocking(move || fib(n)).await),
    }
}

/// `fib(n)` as a task tree: spawn the left child of every split, await the right one
/// inline.
fn spawn_fib(job: ForkJoin, n: u32) -> Pin<Box<dyn Future<Output = u64> + Send>> {
    Box::pin(async move {
        match job.step(n) {
            Step::Leaf(value) => value,
            Step::Split(left, right) => {
                let left = task::spawn(spawn_fib(job, left));
                let right = spawn_fib(job, right).await;
                left.await + right
            }
        }
    })
}
