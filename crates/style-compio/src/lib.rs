//! compio: one io_uring runtime per worker thread, thread-per-core.
//!
//! `workers` threads each run a compio `Runtime` built with the io_uring driver alone
//! (no `polling` feature, so no silent fall-back to epoll); tasks never leave the
//! thread that spawned them, and every read and write hands its buffer to the kernel
//! until it completes. What the workloads do on those threads is written once, in
//! [`workloads::completion`]: a task per input, split or connection, sent to the workers
//! in turn; every worker accepting on a duplicate of the listening socket (compio's own
//! examples accept once and dispatch each stream to a worker, which needs its `sync`
//! feature to move a stream between threads; a listener per thread needs none, and
//! keeps every connection on the thread that accepted it).
//!
//! `compio` computes `fib` inline in the connection's task — a long request holds its
//! thread and every connection on it. `compio-offload` sends it to
//! `compio::runtime::spawn_blocking`, each runtime's own blocking pool (threads made on
//! demand, up to compio's default of 256).
//!
//! compio has no channel of its own: `ping_pong` uses `async-channel`, the
//! runtime-agnostic channel smol is built on.

#![forbid(unsafe_code)]

use std::future::Future;
use std::io;
use std::net::{SocketAddr, TcpListener};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::OnceLock;
use std::time::Duration;

use compio::BufResult;
use compio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use workloads::completion::{self, CompletionRuntime, CompletionStream};
use workloads::tasks::UnitKind;
use workloads::{CpuThreads, ServerModel, StyleEntry};

/// The `compio` row of the catalog.
pub const ENTRY: StyleEntry = StyleEntry {
    name: "compio",
    summary: "compio io_uring runtime on each of `workers` threads (thread-per-core): a task per input, split or connection, fib inline",
    support: completion::inline_support::<Compio>,
    build: completion::build_inline::<Compio>,
    server_model: ServerModel::Concurrent,
    cpu_threads: CpuThreads::Workers,
    unit: UnitKind::Task,
};

/// The `compio-offload` row of the catalog: the server with every `fib` on
/// `spawn_blocking`.
pub const ENTRY_OFFLOAD: StyleEntry = StyleEntry {
    name: "compio-offload",
    summary: "compio io_uring runtime on each of `workers` threads, each request's fib on `spawn_blocking`",
    support: completion::offload_support::<Compio>,
    build: completion::build_offload::<Compio>,
    server_model: ServerModel::Concurrent,
    cpu_threads: CpuThreads::Workers,
    unit: UnitKind::Task,
};

/// One thread's compio runtime.
pub struct Compio(compio::runtime::Runtime);

impl CompletionRuntime for Compio {
    type Listener = compio::net::TcpListener;
    type Stream = CompioStream;
    const THREAD_NAME: &'static str = "compio";

    fn probed() -> &'static OnceLock<Option<&'static str>> {
        static PROBED: OnceLock<Option<&'static str>> = OnceLock::new();
        &PROBED
    }

    fn build(_offload: bool) -> io::Result<Self> {
        // Every runtime has its blocking pool; it starts no thread until asked.
        Ok(Self(compio::runtime::Runtime::new()?))
    }

    fn block_on(self, future: impl Future<Output = ()>) {
        self.0.block_on(future);
    }

    fn spawn_detached(future: impl Future<Output = ()> + 'static) {
        // Dropping a compio join handle would cancel its task.
        compio::runtime::spawn(future).detach();
    }

    fn spawn_joined<T: 'static>(
        future: impl Future<Output = T> + 'static,
    ) -> impl Future<Output = Option<T>> + 'static {
        let task = compio::runtime::spawn(future);
        async move { task.await.ok() }
    }

    fn sleep(duration: Duration) -> impl Future<Output = ()> {
        compio::time::sleep(duration)
    }

    fn listen(listener: TcpListener) -> io::Result<Self::Listener> {
        compio::net::TcpListener::from_std(listener)
    }

    async fn accept(listener: &Self::Listener) -> io::Result<Self::Stream> {
        let (stream, _peer) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        Ok(CompioStream(stream))
    }

    async fn connect(addr: SocketAddr) -> io::Result<Self::Stream> {
        let stream = compio::net::TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(CompioStream(stream))
    }

    async fn unblock<T: Send + 'static>(
        work: impl FnOnce() -> T + Send + 'static,
    ) -> io::Result<T> {
        compio::runtime::spawn_blocking(work)
            .await
            .map_err(io::Error::from)
    }
}

/// A compio connection.
pub struct CompioStream(compio::net::TcpStream);

impl CompletionStream for CompioStream {
    async fn read(&mut self, mut buffer: Vec<u8>) -> (io::Result<usize>, Vec<u8>) {
        // compio reads from index 0 into the whole capacity, but only ever grows the
        // length: start from an empty one, so the length is what was read.
        buffer.clear();
        let BufResult(read, buffer) = self.0.read(buffer).await;
        (read, buffer)
    }

    async fn write_all(&mut self, buffer: Vec<u8>) -> (io::Result<()>, Vec<u8>) {
        let BufResult(written, buffer) = self.0.write_all(buffer).await;
        (written, buffer)
    }

    async fn close(&mut self) -> io::Result<()> {
        self.0.shutdown().await
    }

    fn socket(&self) -> RawFd {
        self.0.as_raw_fd()
    }
}
