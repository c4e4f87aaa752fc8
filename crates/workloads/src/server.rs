//! What every server shares: its configuration, its handle, and the blocking
//! connection loop and acceptors of the std-thread styles.
//!
//! The protocol itself is [`crate::protocol::Session`]; this module only moves bytes
//! between a blocking [`TcpStream`] and a session, and owns the acceptor threads. Styles
//! differ in where a request runs — `fib`, and the backend call of a `wait` request —
//! which they pass in as a [`JobRunner`].

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use crate::backend::{self, AsyncBackend, BackendConnector, BackendError};
use crate::protocol::{Action, DEFAULT_MAX_N, Framing, Session};
use crate::style::{Support, Workload};

/// How a server is configured; the same for every style in one comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServeConfig {
    /// The largest `n` accepted; larger ones get `error: out of range …`.
    pub max_n: u32,
    /// How requests are cut from the bytes read.
    pub framing: Framing,
    /// The backend that answers `wait N` requests; `None`: they are answered
    /// `error: backend: no backend configured …`.
    pub backend: Option<SocketAddr>,
}

impl Default for ServeConfig {
    fn default() -> Self {
        Self {
            max_n: DEFAULT_MAX_N,
            framing: Framing::Line,
            backend: None,
        }
    }
}

impl ServeConfig {
    /// A new protocol session for one connection of this server.
    pub fn session(&self) -> Session {
        Session::new(self.max_n, self.framing)
    }
}

/// One request a blocking server hands to wherever its style runs requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Job {
    /// Compute `fib(n)`.
    Fib(u32),
    /// Ask the backend for `fib(n)`.
    AskBackend(u32),
}

impl Job {
    /// Runs the job on the calling thread: `fib` inline, or the backend asked over this
    /// thread's own connection ([`backend::ask_on_this_thread`]), blocking it meanwhile.
    pub fn run_here(self, backend: Option<SocketAddr>) -> Result<u64, BackendError> {
        match self {
            Self::Fib(n) => Ok(crate::fib(n)),
            Self::AskBackend(n) => backend::ask_on_this_thread(backend, n),
        }
    }
}

/// Runs one request's [`Job`] wherever the style runs it, and returns its answer (or
/// why the backend gave none, which the client reads as `error: backend: …`); an
/// `Err` closes the connection (a worker process died, a pool shut down).
pub type JobRunner = Arc<dyn Fn(Job) -> io::Result<Result<u64, BackendError>> + Send + Sync>;

/// Runs every job inline, on the thread that serves the connection.
pub fn inline_jobs(config: &ServeConfig) -> JobRunner {
    let backend = config.backend;
    Arc::new(move |job| Ok(job.run_here(backend)))
}

/// A running server. Dropping it (or calling [`ServerHandle::stop`]) stops accepting
/// connections, closes the open ones where the style can reach them (a request being
/// computed finishes first), and returns once the acceptor has stopped. Whatever else
/// the server holds — pools, runtimes, worker processes — is released when its style is
/// dropped.
pub struct ServerHandle {
    local_addr: SocketAddr,
    stop: Option<Box<dyn FnOnce() + Send>>,
}

impl ServerHandle {
    /// A handle for a server listening on `local_addr`, stopped by calling `stop`.
    pub fn new(local_addr: SocketAddr, stop: impl FnOnce() + Send + 'static) -> Self {
        Self {
            local_addr,
            stop: Some(Box::new(stop)),
        }
    }

    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops accepting connections.
    pub fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            stop();
        }
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            stop();
        }
    }
}

impl std::fmt::Debug for ServerHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerHandle")
            .field("local_addr", &self.local_addr)
            .finish_non_exhaustive()
    }
}

/// Serves one connection on the calling thread until the client disconnects, sends a
/// line too long, or `jobs` fails.
pub fn serve_connection(
    mut stream: TcpStream,
    config: ServeConfig,
    jobs: &JobRunner,
) -> io::Result<()> {
    let mut session = config.session();
    let mut buffer = [0u8; 4096];
    loop {
        let read = match stream.read(&mut buffer) {
            Ok(0) => return Ok(()),
            Ok(read) => read,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(error) => return Err(error),
        };
        session.receive(&buffer[..read]);
        loop {
            match session.next_action() {
                Action::Compute(n) => session.answer_backend(jobs(Job::Fib(n))?),
                Action::AskBackend(n) => session.answer_backend(jobs(Job::AskBackend(n))?),
                Action::Read => break,
                Action::Close => {
                    stream.write_all(session.output())?;
                    return stream.shutdown(Shutdown::Both);
                }
            }
        }
        // Every reply to what was read goes out in one write.
        stream.write_all(session.output())?;
        let written = session.output().len();
        session.consume_output(written);
    }
}

/// A connection as an async server sees it: read some bytes, write all bytes, close.
///
/// Implemented for `futures-io` streams through [`FuturesIo`] (async-std, smol) and by
/// each runtime whose streams have traits of their own (tokio), so that
/// [`serve_async_connection`] is written once.
pub trait AsyncStream: Send {
    /// Reads some bytes; `Ok(0)` at end of stream.
    fn read(&mut self, buffer: &mut [u8]) -> impl Future<Output = io::Result<usize>> + Send;
    /// Writes all of `bytes`.
    fn write_all(&mut self, bytes: &[u8]) -> impl Future<Output = io::Result<()>> + Send;
    /// Flushes and shuts the stream down.
    fn close(&mut self) -> impl Future<Output = io::Result<()>> + Send;
}

/// Adapts a `futures-io` stream (async-std's or smol's `TcpStream`) to [`AsyncStream`].
#[derive(Debug)]
pub struct FuturesIo<S>(pub S);

impl<S> AsyncStream for FuturesIo<S>
where
    S: futures_lite::AsyncRead + futures_lite::AsyncWrite + Unpin + Send,
{
    async fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
        futures_lite::AsyncReadExt::read(&mut self.0, buffer).await
    }

    async fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        futures_lite::AsyncWriteExt::write_all(&mut self.0, bytes).await
    }

    async fn close(&mut self) -> io::Result<()> {
        futures_lite::AsyncWriteExt::close(&mut self.0).await
    }
}

/// Where an async or event-loop server computes a request's `fib`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// On the thread that serves the connection: a long request holds that thread, and
    /// every connection it serves waits (the seed's blocked event loop).
    Inline,
    /// On a pool of blocking threads, while the connection's task or callback waits
    /// without holding its thread (the seed's fix).
    Offload,
}

/// The matrix's reason for an offload variant's CPU and task cells.
pub const SERVER_VARIANT: &str = "server variant: it only moves each request's fib off the loop; its other numbers are its base style's";

/// The support of every server-only variant: the network workloads run, the others are
/// [`SERVER_VARIANT`].
pub fn server_variant_support(workload: Workload) -> Support {
    match workload {
        Workload::FibBatch
        | Workload::FibSkewed
        | Workload::FibForkJoin
        | Workload::Spawn
        | Workload::PingPong
        | Workload::Sleepers => Support::NotApplicable(SERVER_VARIANT),
        Workload::Throughput | Workload::HogLatency | Workload::Connections | Workload::IoWait => {
            Support::Runs
        }
    }
}

/// How many bytes an async connection reads at a time: two of the longest requests.
///
/// The buffer lives inside the connection's future for as long as the connection is
/// open, idle or not, so its size is paid once per connection (a 4 KiB buffer made a
/// tokio connection cost about 6 KiB at 10 000 connections); two lines' worth still
/// takes a whole request, or a score of pipelined short ones, per read.
pub const ASYNC_READ_BYTES: usize = 2 * crate::protocol::MAX_LINE_LEN;

/// Serves one connection of an async server until the client disconnects or sends a
/// line too long.
///
/// `compute` is awaited for every `fib` request in turn, so requests are answered in
/// order; whether it computes inline or offloads is the style's choice. A `wait`
/// request is answered through one backend connection that this connection opens with
/// `connector` (the runtime's own `net` types) on first use and keeps: the task awaits
/// the backend without holding its thread.
pub async fn serve_async_connection<S, C, F, Fut>(
    mut stream: S,
    config: ServeConfig,
    connector: C,
    mut compute: F,
) -> io::Result<()>
where
    S: AsyncStream,
    C: BackendConnector,
    F: FnMut(u32) -> Fut,
    Fut: Future<Output = io::Result<u64>>,
{
    let mut session = config.session();
    let mut backend = AsyncBackend::new(connector, config.backend);
    let mut buffer = [0u8; ASYNC_READ_BYTES];
    loop {
        let read = stream.read(&mut buffer).await?;
        if read == 0 {
            return Ok(());
        }
        session.receive(&buffer[..read]);
        loop {
            match session.next_action() {
                Action::Compute(n) => session.answer(compute(n).await?),
                Action::AskBackend(n) => session.answer_backend(backend.ask(n).await),
                Action::Read => break,
                Action::Close => {
                    stream.write_all(session.output()).await?;
                    return stream.close().await;
                }
            }
        }
        stream.write_all(session.output()).await?;
        let written = session.output().len();
        session.consume_output(written);
    }
}

/// Starts a thread-per-connection server: an acceptor thread, and a new thread for every
/// accepted connection running [`serve_connection`].
pub fn spawn_thread_per_connection(
    listener: TcpListener,
    config: ServeConfig,
    jobs: JobRunner,
) -> io::Result<ServerHandle> {
    spawn_acceptor(listener, "acceptor", move |stream, tracked| {
        let jobs = Arc::clone(&jobs);
        let spawned = thread::Builder::new()
            .name("connection".into())
            .spawn(move || {
                let _tracked = tracked;
                serve_connection(stream, config, &jobs)
            });
        if let Err(error) = spawned {
            // Out of threads: this connection is dropped (the client sees it closed),
            // the server carries on.
            eprintln!("cannot start a connection thread: {error}");
        }
    })
}

/// Starts an iterative server: one thread accepts a connection and serves it to the end
/// before accepting the next, so a second client waits for the first to leave.
pub fn spawn_iterative(
    listener: TcpListener,
    config: ServeConfig,
    jobs: JobRunner,
) -> io::Result<ServerHandle> {
    spawn_acceptor(listener, "iterative", move |stream, _tracked| {
        // A failed connection ends; the next one is accepted.
        let _ = serve_connection(stream, config, &jobs);
    })
}

/// The connections a blocking server has open, so that stopping it can shut them down
/// (which wakes the threads blocked reading them).
#[derive(Debug, Default)]
struct OpenConnections {
    streams: Mutex<HashMap<u64, TcpStream>>,
    next_id: AtomicU64,
}

/// Keeps a connection in [`OpenConnections`] while alive.
#[derive(Debug)]
struct TrackedConnection {
    id: u64,
    open: Arc<OpenConnections>,
}

impl OpenConnections {
    fn track(open: &Arc<Self>, stream: &TcpStream) -> Option<TrackedConnection> {
        let clone = stream.try_clone().ok()?;
        let id = open.next_id.fetch_add(1, Ordering::Relaxed);
        open.lock().insert(id, clone);
        Some(TrackedConnection {
            id,
            open: Arc::clone(open),
        })
    }

    fn shutdown_all(&self) {
        for stream in self.lock().values() {
            let _ = stream.shutdown(Shutdown::Both);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, TcpStream>> {
        self.streams
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Drop for TrackedConnection {
    fn drop(&mut self) {
        self.open.lock().remove(&self.id);
    }
}

/// Runs `on_connection` for every accepted connection on a new acceptor thread, until
/// the returned handle is stopped. Stopping shuts down every connection still open, so
/// threads blocked reading them return, and joins the acceptor.
fn spawn_acceptor(
    listener: TcpListener,
    name: &str,
    mut on_connection: impl FnMut(TcpStream, TrackedConnection) + Send + 'static,
) -> io::Result<ServerHandle> {
    let local_addr = listener.local_addr()?;
    let stopping = Arc::new(AtomicBool::new(false));
    let open = Arc::new(OpenConnections::default());
    let (acceptor_stopping, acceptor_open) = (Arc::clone(&stopping), Arc::clone(&open));
    let acceptor: JoinHandle<()> = thread::Builder::new().name(name.into()).spawn(move || {
        loop {
            let stream = match listener.accept() {
                Ok((stream, _peer)) => stream,
                Err(error) if is_transient_accept_error(&error) => {
                    // Out of descriptors or a connection reset before accept: back off
                    // briefly instead of spinning, then carry on serving.
                    thread::sleep(Duration::from_millis(10));
                    continue;
                }
                Err(error) => {
                    eprintln!("accept failed, the server stops accepting: {error}");
                    return;
                }
            };
            if acceptor_stopping.load(Ordering::Acquire) {
                return;
            }
            // Replies are small and answer a request each: don't let Nagle hold them.
            let _ = stream.set_nodelay(true);
            // A connection that cannot be tracked could not be closed by `stop`: refuse it.
            if let Some(tracked) = OpenConnections::track(&acceptor_open, &stream) {
                on_connection(stream, tracked);
            }
        }
    })?;
    Ok(ServerHandle::new(local_addr, move || {
        stopping.store(true, Ordering::Release);
        // Wakes an iterative acceptor that is serving a connection.
        open.shutdown_all();
        // A blocking accept() can only be woken by a connection: make one.
        let _ = TcpStream::connect_timeout(&wake_address(local_addr), Duration::from_secs(1));
        let _ = acceptor.join();
        // Connections accepted while the first shutdown ran.
        open.shutdown_all();
    }))
}

/// Where to connect to wake an acceptor bound to `local_addr` (loopback for a wildcard).
fn wake_address(local_addr: SocketAddr) -> SocketAddr {
    let mut address = local_addr;
    if address.ip().is_unspecified() {
        match address {
            SocketAddr::V4(_) => address.set_ip(std::net::Ipv4Addr::LOCALHOST.into()),
            SocketAddr::V6(_) => address.set_ip(std::net::Ipv6Addr::LOCALHOST.into()),
        }
    }
    address
}

/// Accept errors that concern one connection or a passing shortage, not the listener.
pub fn is_transient_accept_error(error: &io::Error) -> bool {
    use io::ErrorKind::{ConnectionAborted, ConnectionReset, Interrupted, WouldBlock};
    matches!(error.kind(), ConnectionAborted | ConnectionReset | Interrupted | WouldBlock)
        // EMFILE / ENFILE / ENOBUFS / ENOMEM: the process or system is out of something.
        || matches!(error.raw_os_error(), Some(23 | 24 | 105 | 12))
}
