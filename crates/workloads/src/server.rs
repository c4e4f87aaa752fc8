//! What every server shares: its configuration, its handle, and the blocking
//! connection loop and acceptors of the std-thread styles.
//!
//! The protocol itself is [`crate::protocol::Session`]; this module only moves bytes
//! between a blocking [`TcpStream`] and a session, and owns the acceptor threads. Styles
//! differ in where `fib` runs, which they pass in as a [`Compute`] function.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use crate::protocol::{Action, DEFAULT_MAX_N, Session};
use crate::style::{Support, Workload};

/// How a server is configured; the same for every style in one comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServeConfig {
    /// The largest `n` accepted; larger ones get `error: out of range …`.
    pub max_n: u32,
}

impl Default for ServeConfig {
    fn default() -> Self {
        Self {
            max_n: DEFAULT_MAX_N,
        }
    }
}

/// Computes `fib(n)` for one request, wherever the style runs it; an error closes the
/// connection (a worker process died, a pool shut down).
pub type Compute = Arc<dyn Fn(u32) -> io::Result<u64> + Send + Sync>;

/// Computes `fib(n)` inline, on the thread that serves the connection.
pub fn inline_compute() -> Compute {
    Arc::new(|n| Ok(crate::fib(n)))
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
/// line too long, or `compute` fails.
pub fn serve_connection(
    mut stream: TcpStream,
    config: ServeConfig,
    compute: &Compute,
) -> io::Result<()> {
    let mut session = Session::new(config.max_n);
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
                Action::Compute(n) => session.answer(compute(n)?),
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
        Workload::Throughput | Workload::HogLatency => Support::Runs,
    }
}

/// Serves one connection of an async server until the client disconnects or sends a
/// line too long.
///
/// `compute` is awaited for every request in turn, so requests are answered in order;
/// whether it computes inline or offloads is the style's choice.
pub async fn serve_async_connection<S, F, Fut>(
    mut stream: S,
    config: ServeConfig,
    mut compute: F,
) -> io::Result<()>
where
    S: AsyncStream,
    F: FnMut(u32) -> Fut,
    Fut: Future<Output = io::Result<u64>>,
{
    let mut session = Session::new(config.max_n);
    let mut buffer = [0u8; 4096];
    loop {
        let read = stream.read(&mut buffer).await?;
        if read == 0 {
            return Ok(());
        }
        session.receive(&buffer[..read]);
        loop {
            match session.next_action() {
                Action::Compute(n) => session.answer(compute(n).await?),
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
    compute: Compute,
) -> io::Result<ServerHandle> {
    spawn_acceptor(listener, "acceptor", move |stream, tracked| {
        let compute = Arc::clone(&compute);
        let spawned = thread::Builder::new()
            .name("connection".into())
            .spawn(move || {
                let _tracked = tracked;
                serve_connection(stream, config, &compute)
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
    compute: Compute,
) -> io::Result<ServerHandle> {
    spawn_acceptor(listener, "iterative", move |stream, _tracked| {
        // A failed connection ends; the next one is accepted.
        let _ = serve_connection(stream, config, &compute);
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
