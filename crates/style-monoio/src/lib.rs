//! monoio: one io_uring runtime per worker thread, thread-per-core, the way monoio's
//! own examples build a server.
//!
//! `workers` threads each run a `RuntimeBuilder::<IoUringDriver>` runtime with its
//! timer; tasks never leave the thread that spawned them, and every read and write
//! hands its buffer to the kernel until it completes. What the workloads do on those
//! threads is written once, in [`workloads::completion`]: a task per input, split or
//! connection, sent to the workers in turn; every worker accepting on a duplicate of
//! the listening socket.
//!
//! `monoio` computes `fib` inline in the connection's task — a long request holds its
//! thread and every connection on it. `monoio-offload` sends it to `spawn_blocking`,
//! monoio's blocking-work hand-off, on a pool attached to every runtime: the
//! [`blocking`] crate's (grown on demand up to 500 threads, like tokio's and smol's
//! pools; monoio's own `DefaultThreadPool` starts all its threads up front).
//!
//! monoio has no channel of its own: `ping_pong` uses `async-channel`, the
//! runtime-agnostic channel smol is built on.

#![forbid(unsafe_code)]

use std::future::Future;
use std::io;
use std::net::{SocketAddr, TcpListener};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::OnceLock;
use std::time::Duration;

use monoio::io::{AsyncReadRent, AsyncWriteRent, AsyncWriteRentExt};
use workloads::completion::{self, CompletionRuntime, CompletionStream};
use workloads::tasks::UnitKind;
use workloads::{CpuThreads, ServerModel, StyleEntry};

/// The `monoio` row of the catalog.
pub const ENTRY: StyleEntry = StyleEntry {
    name: "monoio",
    summary: "monoio io_uring runtime on each of `workers` threads (thread-per-core): a task per input, split or connection, fib inline",
    support: completion::inline_support::<Monoio>,
    build: completion::build_inline::<Monoio>,
    server_model: ServerModel::Concurrent,
    cpu_threads: CpuThreads::Workers,
    unit: UnitKind::Task,
};

/// The `monoio-offload` row of the catalog: the server with every `fib` on
/// `spawn_blocking`.
pub const ENTRY_OFFLOAD: StyleEntry = StyleEntry {
    name: "monoio-offload",
    summary: "monoio io_uring runtime on each of `workers` threads, each request's fib on `spawn_blocking`",
    support: completion::offload_support::<Monoio>,
    build: completion::build_offload::<Monoio>,
    server_model: ServerModel::Concurrent,
    cpu_threads: CpuThreads::Workers,
    unit: UnitKind::Task,
};

/// One thread's monoio runtime: the io_uring driver under its timer.
pub struct Monoio(monoio::Runtime<monoio::time::TimeDriver<monoio::IoUringDriver>>);

/// `spawn_blocking`'s pool: each blocking task on the [`blocking`] crate's threads.
struct BlockingPool;

impl monoio::blocking::ThreadPool for BlockingPool {
    fn schedule_task(&self, task: monoio::blocking::BlockingTask) {
        blocking::unblock(move || task.run()).detach();
    }
}

impl CompletionRuntime for Monoio {
    type Listener = monoio::net::TcpListener;
    type Stream = MonoioStream;
    const THREAD_NAME: &'static str = "monoio";

    fn probed() -> &'static OnceLock<Option<&'static str>> {
        static PROBED: OnceLock<Option<&'static str>> = OnceLock::new();
        &PROBED
    }

    fn build(offload: bool) -> io::Result<Self> {
        let builder = monoio::RuntimeBuilder::<monoio::IoUringDriver>::new().enable_timer();
        let builder = if offload {
            builder.attach_thread_pool(Box::new(BlockingPool))
        } else {
            builder
        };
        Ok(Self(builder.build()?))
    }

    fn block_on(mut self, future: impl Future<Output = ()>) {
        self.0.block_on(future);
    }

    fn spawn_detached(future: impl Future<Output = ()> + 'static) {
        // Dropping a monoio join handle detaches its task.
        drop(monoio::spawn(future));
    }

    fn spawn_joined<T: 'static>(
        future: impl Future<Output = T> + 'static,
    ) -> impl Future<Output = Option<T>> + 'static {
        // monoio does not catch a task's panic (it ends the runtime's thread), so a
        // joined task always has its output.
        let task = monoio::spawn(future);
        async move { Some(task.await) }
    }

    fn sleep(duration: Duration) -> impl Future<Output = ()> {
        monoio::time::sleep(duration)
    }

    fn listen(listener: TcpListener) -> io::Result<Self::Listener> {
        monoio::net::TcpListener::from_std(listener)
    }

    async fn accept(listener: &Self::Listener) -> io::Result<Self::Stream> {
        let (stream, _peer) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        Ok(MonoioStream(stream))
    }

    async fn connect(addr: SocketAddr) -> io::Result<Self::Stream> {
        let stream = monoio::net::TcpStream::connect_addr(addr).await?;
        stream.set_nodelay(true)?;
        Ok(MonoioStream(stream))
    }

    async fn unblock<T: Send + 'static>(
        work: impl FnOnce() -> T + Send + 'static,
    ) -> io::Result<T> {
        monoio::spawn_blocking(work)
            .await
            .map_err(|_| io::Error::other("the blocking pool dropped the task"))
    }
}

/// A monoio connection.
pub struct MonoioStream(monoio::net::TcpStream);

impl CompletionStream for MonoioStream {
    async fn read(&mut self, buffer: Vec<u8>) -> (io::Result<usize>, Vec<u8>) {
        // monoio reads a `Vec` from index 0 into its whole capacity and sets its length.
        self.0.read(buffer).await
    }

    async fn write_all(&mut self, buffer: Vec<u8>) -> (io::Result<()>, Vec<u8>) {
        let (written, buffer) = self.0.write_all(buffer).await;
        (written.map(drop), buffer)
    }

    async fn close(&mut self) -> io::Result<()> {
        self.0.shutdown().await
    }

    fn socket(&self) -> RawFd {
        self.0.as_raw_fd()
    }
}
