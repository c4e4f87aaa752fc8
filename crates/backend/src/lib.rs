//! The backend of the `io_wait` workload: a server of the backend protocol
//! ([`workloads::backend`]) that answers every request `N\n` with `fib(N)\n` after a
//! fixed delay, however many requests are in flight.
//!
//! It stands for the slow service (a database, another microservice) that a server
//! waits on: the server under test spends almost no CPU on a `wait` request, so how many
//! of them it can have in flight is set by its concurrency model alone. For that to
//! hold, the backend itself must never be what limits the rate: its requests wait on
//! tokio's timer, not on a thread, a connection's pipelined requests wait concurrently
//! (each is due `delay` after it arrived, and the replies leave in order), and the
//! `io` scenario checks it alone at 10 000 requests in flight.
//!
//! The backend trusts no client: a line longer than [`MAX_BACKEND_LINE`] closes the
//! connection, a bad line is answered `error: …`, and each connection holds at most
//! [`MAX_PENDING_PER_CONNECTION`] unanswered requests (beyond that it stops reading), so
//! a flood cannot grow its memory.

#![forbid(unsafe_code)]

use std::collections::VecDeque;
use std::io;
use std::net::{SocketAddr, TcpListener};
use std::num::NonZeroUsize;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::oneshot;
use tokio::task::JoinSet;
use tokio::time::Instant;

/// The longest request line the backend accepts, in bytes.
pub const MAX_BACKEND_LINE: usize = 64;

/// Unanswered requests one connection may have before the backend stops reading it.
pub const MAX_PENDING_PER_CONNECTION: usize = 1024;

/// How the backend runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackendConfig {
    /// How long after it arrived each request is answered.
    pub delay: Duration,
    /// Threads of the backend's tokio runtime.
    pub threads: NonZeroUsize,
}

/// A running backend. Dropping it (or [`Backend::stop`]) stops it and closes every
/// connection.
#[derive(Debug)]
pub struct Backend {
    local_addr: SocketAddr,
    answered: Arc<AtomicU64>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Backend {
    /// Serves the backend protocol on `listener` in the background, on a tokio runtime
    /// of its own.
    pub fn start(listener: TcpListener, config: BackendConfig) -> io::Result<Self> {
        let local_addr = listener.local_addr()?;
        listener.set_nonblocking(true)?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(config.threads.get())
            .thread_name("backend")
            .enable_all()
            .build()?;
        let answered = Arc::new(AtomicU64::new(0));
        let (stop, stopped) = oneshot::channel();
        let server_answered = Arc::clone(&answered);
        let thread = thread::Builder::new()
            .name("backend-main".into())
            .spawn(move || {
                runtime.block_on(async move {
                    let listener = match tokio::net::TcpListener::from_std(listener) {
                        Ok(listener) => listener,
                        Err(error) => return eprintln!("backend: cannot listen: {error}"),
                    };
                    tokio::select! {
                        () = accept(listener, config.delay, server_answered) => {}
                        _ = stopped => {}
                    }
                });
                // Dropping the runtime here aborts every connection task.
            })?;
        Ok(Self {
            local_addr,
            answered,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// The address the backend listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Replies the backend has given so far (answers and error lines), each counted as it
    /// is written.
    pub fn answered(&self) -> u64 {
        self.answered.load(Ordering::Relaxed)
    }

    /// Stops the backend and waits until it has.
    pub fn stop(mut self) {
        self.shut_down();
    }

    fn shut_down(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.shut_down();
    }
}

async fn accept(listener: tokio::net::TcpListener, delay: Duration, answered: Arc<AtomicU64>) {
    let mut connections = JoinSet::new();
    loop {
        while connections.try_join_next().is_some() {}
        match listener.accept().await {
            Ok((stream, _peer)) => {
                let _ = stream.set_nodelay(true);
                connections.spawn(serve(stream, delay, Arc::clone(&answered)));
            }
            // Out of descriptors, or a connection reset before accept: back off, go on.
            Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    }
}

/// One connection, in one task: each request is stamped with the time it is due (its
/// arrival plus the delay) and queued; the task sleeps until the first reply is due or
/// more bytes arrive, whichever comes first, so pipelined requests wait together and
/// their replies leave in order.
async fn serve(mut stream: tokio::net::TcpStream, delay: Duration, answered: Arc<AtomicU64>) {
    let mut pending: VecDeque<(Instant, Vec<u8>)> = VecDeque::new();
    let mut input: Vec<u8> = Vec::with_capacity(2 * MAX_BACKEND_LINE);
    let mut buffer = [0u8; 4096];
    // The client closed its side, or sent a line too long: answer what is queued, then
    // close.
    let mut closing = false;
    loop {
        if closing && pending.is_empty() {
            return;
        }
        let next_due = pending.front().map(|(due, _)| *due);
        let reading = !closing && pending.len() < MAX_PENDING_PER_CONNECTION;
        tokio::select! {
            biased;
            () = tokio::time::sleep_until(next_due.unwrap_or_else(Instant::now)), if next_due.is_some() => {
                let Some((_, reply)) = pending.pop_front() else { continue };
                // Counted before it is written, so that a client that has read a reply
                // always finds it counted.
                answered.fetch_add(1, Ordering::Relaxed);
                if stream.write_all(&reply).await.is_err() {
                    return;
                }
            }
            read = stream.read(&mut buffer), if reading => {
                let arrived = Instant::now();
                let read = match read {
                    Ok(0) | Err(_) => {
                        closing = true;
                        continue;
                    }
                    Ok(read) => read,
                };
                input.extend_from_slice(&buffer[..read]);
                let mut consumed = 0;
                while let Some(end) = input[consumed..].iter().position(|&byte| byte == b'\n') {
                    let line = &input[consumed..consumed + end];
                    pending.push_back((arrived + delay, answer(line)));
                    consumed += end + 1;
                }
                input.drain(..consumed);
                if input.len() > MAX_BACKEND_LINE {
                    pending.push_back((arrived, b"error: line too long\n".to_vec()));
                    input.clear();
                    closing = true;
                }
            }
            else => return,
        }
    }
}

/// The reply to one request line (without its `\n`).
fn answer(line: &[u8]) -> Vec<u8> {
    let request = line.strip_suffix(b"\r").unwrap_or(line);
    let value = std::str::from_utf8(request)
        .ok()
        .filter(|digits| !digits.is_empty() && digits.bytes().all(|byte| byte.is_ascii_digit()))
        .and_then(|digits| digits.parse::<u32>().ok())
        .and_then(workloads::fib_reference);
    match value {
        Some(value) => format!("{value}\n").into_bytes(),
        None => b"error: not a fib index this backend can answer\n".to_vec(),
    }
}

#[cfg(test)]
mod tests {
    use std::io::{BufRead, BufReader as StdBufReader, Read, Write};
    use std::net::TcpStream;
    use std::time::Instant as StdInstant;

    use super::*;

    fn start(delay: Duration) -> Backend {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        Backend::start(
            listener,
            BackendConfig {
                delay,
                threads: NonZeroUsize::MIN,
            },
        )
        .expect("start")
    }

    fn connect(backend: &Backend) -> StdBufReader<TcpStream> {
        let stream = TcpStream::connect(backend.local_addr()).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        StdBufReader::new(stream)
    }

    fn line(reader: &mut StdBufReader<TcpStream>) -> String {
        let mut line = String::new();
        reader.read_line(&mut line).expect("a reply");
        line
    }

    #[test]
    fn answers_after_the_delay_in_order_and_concurrently() {
        let delay = Duration::from_millis(100);
        let backend = start(delay);
        let mut client = connect(&backend);
        let start = StdInstant::now();
        // Pipelined: each is due `delay` after it arrived, so all three come at ~delay.
        client.get_mut().write_all(b"10\n3\r\n90\n").expect("write");
        assert_eq!(line(&mut client), "55\n");
        assert_eq!(line(&mut client), "2\n");
        assert_eq!(line(&mut client), "2880067194370816120\n");
        let elapsed = start.elapsed();
        assert!(elapsed >= delay, "answered before its delay: {elapsed:?}");
        assert!(
            elapsed < 3 * delay,
            "pipelined requests waited in turn: {elapsed:?}"
        );
        // Many connections at once wait together, not in turn.
        let start = StdInstant::now();
        let mut clients: Vec<_> = (0..100).map(|_| connect(&backend)).collect();
        for client in &mut clients {
            client.get_mut().write_all(b"1\n").expect("write");
        }
        for client in &mut clients {
            assert_eq!(line(client), "1\n");
        }
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "{:?}",
            start.elapsed()
        );
        assert_eq!(backend.answered(), 103);
    }

    #[test]
    fn refuses_bad_lines_and_closes_on_an_endless_one() {
        let backend = start(Duration::ZERO);
        let mut client = connect(&backend);
        client.get_mut().write_all(b"x\n94\n\n5\n").expect("write");
        for _ in 0..3 {
            assert!(line(&mut client).starts_with("error: "));
        }
        assert_eq!(line(&mut client), "5\n");
        client.get_mut().write_all(&[b'7'; 10_000]).expect("write");
        assert_eq!(line(&mut client), "error: line too long\n");
        let mut rest = Vec::new();
        // Closed: end of stream (or a reset, for the bytes it never read).
        let _ = client.read_to_end(&mut rest);
        assert!(rest.is_empty());
        backend.stop();
    }
}
