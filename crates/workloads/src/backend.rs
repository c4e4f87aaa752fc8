//! The backend a server asks to answer `wait N` requests (the `io_wait` workload), and
//! the clients every server asks it with.
//!
//! The backend protocol is the fib protocol's first form, one request at a time per
//! connection: the server sends `N\n`, the backend (`concbench backend --delay D`)
//! answers `fib(N)\n` after `D`. A server relays the answer to its own client, or, when
//! the backend is not configured, unreachable, silent or broken, answers
//! `error: backend: <why>` and keeps the client's connection open.
//!
//! How a server holds its backend connections is part of its style, so this module
//! offers the pieces rather than one policy:
//!
//! - [`BlockingBackend`], one blocking connection, opened on first use and kept;
//!   [`ask_on_this_thread`] keeps one per thread, so a thread-per-connection server has
//!   one per client connection and a pool one per worker;
//! - [`AsyncBackend`], the same over any runtime's streams ([`BackendConnector`]), for a
//!   connection task that keeps one for its client's life;
//! - [`ReplyParser`], the sans-I/O reply check that both use, and that the hand-built
//!   event loop drives itself.
//!
//! Every reply is bounded ([`MAX_BACKEND_REPLY_BYTES`]) and checked; bytes the server
//! did not ask for make the connection unusable, and it is dropped and opened afresh on
//! the next request.

use std::cell::RefCell;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use crate::server::AsyncStream;

/// The longest backend reply accepted: 20 digits, a newline, and room for a short
/// `error: …` line.
pub const MAX_BACKEND_REPLY_BYTES: usize = 128;

/// How long a server waits for the backend to connect.
pub const BACKEND_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// How long a server waits for one backend reply before answering `error: backend:
/// timed out` (the backend's delay is milliseconds; this is for a silent backend).
pub const BACKEND_REPLY_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the backend gave no answer; the client reads `error: backend: <Display>`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BackendError {
    /// The server was started without `--backend`.
    #[error("no backend configured (serve --backend ADDR)")]
    NotConfigured,
    /// The backend could not be reached.
    #[error("cannot connect: {0}")]
    Connect(String),
    /// The connection failed, or the backend closed it before answering.
    #[error("connection lost: {0}")]
    Lost(String),
    /// No reply within [`BACKEND_REPLY_TIMEOUT`].
    #[error("timed out")]
    TimedOut,
    /// The backend answered something other than a number, too much, or more than asked.
    #[error("bad reply")]
    BadReply,
    /// The backend answered `error: …`.
    #[error("the backend refused: {0}")]
    Refused(String),
}

/// The bytes of the backend request for `fib(n)`.
pub fn backend_request(n: u32) -> Vec<u8> {
    format!("{n}\n").into_bytes()
}

/// The sans-I/O check of one backend reply: feed it what was read, until it has a
/// verdict.
#[derive(Debug, Default)]
pub struct ReplyParser {
    line: Vec<u8>,
}

impl ReplyParser {
    /// Adds bytes read from the backend: `None` while the reply line is incomplete,
    /// then the verdict. Bytes after the reply's newline are a verdict too
    /// ([`BackendError::BadReply`]): one request is outstanding, so nothing else may
    /// come.
    pub fn push(&mut self, bytes: &[u8]) -> Option<Result<u64, BackendError>> {
        if self.line.len() + bytes.len() > MAX_BACKEND_REPLY_BYTES {
            return Some(Err(BackendError::BadReply));
        }
        self.line.extend_from_slice(bytes);
        let end = self.line.iter().position(|&byte| byte == b'\n')?;
        if end + 1 != self.line.len() {
            return Some(Err(BackendError::BadReply));
        }
        let line = &self.line[..end];
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        Some(parse_reply(line))
    }
}

fn parse_reply(line: &[u8]) -> Result<u64, BackendError> {
    if let Some(reason) = line.strip_prefix(b"error: ") {
        return Err(BackendError::Refused(
            String::from_utf8_lossy(reason).into_owned(),
        ));
    }
    if line.is_empty() || !line.iter().all(u8::is_ascii_digit) {
        return Err(BackendError::BadReply);
    }
    std::str::from_utf8(line)
        .ok()
        .and_then(|digits| digits.parse().ok())
        .ok_or(BackendError::BadReply)
}

/// One blocking backend connection, opened on first use, kept while it works, and
/// dropped (to be opened afresh next time) after any failure.
#[derive(Debug)]
pub struct BlockingBackend {
    addr: SocketAddr,
    stream: Option<TcpStream>,
}

impl BlockingBackend {
    /// A client of the backend at `addr`; connects on the first [`ask`](Self::ask).
    pub fn new(addr: SocketAddr) -> Self {
        Self { addr, stream: None }
    }

    /// Asks for `fib(n)` and waits for the answer, at most
    /// [`BACKEND_REPLY_TIMEOUT`].
    pub fn ask(&mut self, n: u32) -> Result<u64, BackendError> {
        // A kept connection with bytes waiting was sent something not asked for (or was
        // closed): it is out of step, so it is dropped rather than read as this answer.
        if self.stream.as_ref().is_some_and(|stream| !is_quiet(stream)) {
            self.stream = None;
        }
        let stream = match &mut self.stream {
            Some(stream) => stream,
            None => self.stream.insert(connect_blocking(self.addr)?),
        };
        let answer = exchange_blocking(stream, n);
        if answer.is_err() {
            self.stream = None;
        }
        answer
    }
}

/// Whether nothing waits to be read on `stream`, looking without blocking: no bytes,
/// and not closed.
fn is_quiet(stream: &TcpStream) -> bool {
    if stream.set_nonblocking(true).is_err() {
        return false;
    }
    let mut byte = [0u8; 1];
    let quiet =
        matches!(stream.peek(&mut byte), Err(error) if error.kind() == io::ErrorKind::WouldBlock);
    quiet && stream.set_nonblocking(false).is_ok()
}

fn connect_blocking(addr: SocketAddr) -> Result<TcpStream, BackendError> {
    let connect = || -> io::Result<TcpStream> {
        let stream = TcpStream::connect_timeout(&addr, BACKEND_CONNECT_TIMEOUT)?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(BACKEND_REPLY_TIMEOUT))?;
        stream.set_write_timeout(Some(BACKEND_REPLY_TIMEOUT))?;
        Ok(stream)
    };
    connect().map_err(|error| BackendError::Connect(error.to_string()))
}

fn exchange_blocking(stream: &mut TcpStream, n: u32) -> Result<u64, BackendError> {
    let lost = |error: io::Error| match error.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => BackendError::TimedOut,
        _ => BackendError::Lost(error.to_string()),
    };
    stream.write_all(&backend_request(n)).map_err(lost)?;
    let mut parser = ReplyParser::default();
    let mut buffer = [0u8; MAX_BACKEND_REPLY_BYTES];
    loop {
        let read = match stream.read(&mut buffer) {
            Ok(0) => return Err(BackendError::Lost("closed by the backend".into())),
            Ok(read) => read,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(error) => return Err(lost(error)),
        };
        if let Some(verdict) = parser.push(&buffer[..read]) {
            return verdict;
        }
    }
}

thread_local! {
    /// This thread's backend connection, for [`ask_on_this_thread`].
    static THREAD_BACKEND: RefCell<Option<BlockingBackend>> = const { RefCell::new(None) };
}

/// Asks the backend at `addr` for `fib(n)` over this thread's own connection (opened on
/// first use and kept for the thread's life), blocking the thread while it waits: a
/// thread per client connection holds one backend connection each, a pool worker one
/// for every request it serves. `None`: no backend configured.
pub fn ask_on_this_thread(addr: Option<SocketAddr>, n: u32) -> Result<u64, BackendError> {
    let addr = addr.ok_or(BackendError::NotConfigured)?;
    THREAD_BACKEND.with(|backend| {
        let mut backend = backend.borrow_mut();
        match backend.as_mut() {
            Some(existing) if existing.addr == addr => existing.ask(n),
            _ => backend.insert(BlockingBackend::new(addr)).ask(n),
        }
    })
}

/// How an async runtime opens a backend connection and waits: each async style gives
/// its own `net` types and timer, so [`AsyncBackend`] is written once.
pub trait BackendConnector: Send + Sync {
    /// The runtime's connected stream.
    type Stream: AsyncStream;
    /// Connects to `addr` with the runtime's own `TcpStream` (no Nagle delay).
    fn connect(&self, addr: SocketAddr) -> impl Future<Output = io::Result<Self::Stream>> + Send;
    /// Completes after `duration`, on the runtime's own timer.
    fn sleep(&self, duration: Duration) -> impl Future<Output = ()> + Send;
}

/// One async backend connection, opened on first use and kept while it works: a
/// connection task holds one for its client's life.
#[derive(Debug)]
pub struct AsyncBackend<C: BackendConnector> {
    connector: C,
    addr: Option<SocketAddr>,
    stream: Option<C::Stream>,
}

impl<C: BackendConnector> AsyncBackend<C> {
    /// A client of the backend at `addr` (`None`: not configured); connects on the first
    /// [`ask`](Self::ask).
    pub fn new(connector: C, addr: Option<SocketAddr>) -> Self {
        Self {
            connector,
            addr,
            stream: None,
        }
    }

    /// Asks for `fib(n)` and awaits the answer, at most [`BACKEND_REPLY_TIMEOUT`]
    /// (connecting included), without holding the runtime's thread.
    pub async fn ask(&mut self, n: u32) -> Result<u64, BackendError> {
        let addr = self.addr.ok_or(BackendError::NotConfigured)?;
        let timeout = async {
            self.connector.sleep(BACKEND_REPLY_TIMEOUT).await;
            Err(BackendError::TimedOut)
        };
        // A kept connection with bytes waiting was sent something not asked for (or was
        // closed): drop it rather than read them as this answer. One poll of a read says
        // so without waiting.
        if let Some(stream) = &mut self.stream {
            let mut byte = [0u8; 1];
            if futures_lite::future::poll_once(stream.read(&mut byte))
                .await
                .is_some()
            {
                self.stream = None;
            }
        }
        let exchange = async {
            let stream = match &mut self.stream {
                Some(stream) => stream,
                None => {
                    let stream = self
                        .connector
                        .connect(addr)
                        .await
                        .map_err(|error| BackendError::Connect(error.to_string()))?;
                    self.stream.insert(stream)
                }
            };
            exchange_async(stream, n).await
        };
        let answer = futures_lite::future::or(exchange, timeout).await;
        if answer.is_err() {
            self.stream = None;
        }
        answer
    }
}

async fn exchange_async(stream: &mut impl AsyncStream, n: u32) -> Result<u64, BackendError> {
    let lost = |error: io::Error| BackendError::Lost(error.to_string());
    stream.write_all(&backend_request(n)).await.map_err(lost)?;
    let mut parser = ReplyParser::default();
    let mut buffer = [0u8; MAX_BACKEND_REPLY_BYTES];
    loop {
        let read = stream.read(&mut buffer).await.map_err(lost)?;
        if read == 0 {
            return Err(BackendError::Lost("closed by the backend".into()));
        }
        if let Some(verdict) = parser.push(&buffer[..read]) {
            return verdict;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reply_is_one_bounded_line_holding_a_number() {
        let mut parser = ReplyParser::default();
        assert_eq!(parser.push(b"83"), None);
        assert_eq!(parser.push(b"2040\n"), Some(Ok(832_040)));
        assert_eq!(ReplyParser::default().push(b"5\r\n"), Some(Ok(5)));
        assert_eq!(
            ReplyParser::default().push(b"5\n6\n"),
            Some(Err(BackendError::BadReply))
        );
        assert_eq!(
            ReplyParser::default().push(b"five\n"),
            Some(Err(BackendError::BadReply))
        );
        assert_eq!(
            ReplyParser::default().push(b"\n"),
            Some(Err(BackendError::BadReply))
        );
        assert_eq!(
            ReplyParser::default().push(b"99999999999999999999999\n"),
            Some(Err(BackendError::BadReply))
        );
        assert_eq!(
            ReplyParser::default().push(b"error: busy\n"),
            Some(Err(BackendError::Refused("busy".into())))
        );
        // An endless line is refused once it passes the bound, without growing.
        let mut parser = ReplyParser::default();
        let mut verdict = None;
        for _ in 0..1000 {
            verdict = parser.push(&[b'1'; 64]);
            if verdict.is_some() {
                break;
            }
        }
        assert_eq!(verdict, Some(Err(BackendError::BadReply)));
        assert!(parser.line.len() <= MAX_BACKEND_REPLY_BYTES);
    }

    #[test]
    fn no_backend_is_an_error_not_a_hang() {
        assert_eq!(
            ask_on_this_thread(None, 3),
            Err(BackendError::NotConfigured)
        );
    }

    #[test]
    fn a_refused_connection_is_a_connect_error() {
        // A port that was just free: nothing listens on it.
        let addr = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free port");
        assert!(matches!(
            BlockingBackend::new(addr).ask(3),
            Err(BackendError::Connect(_))
        ));
    }
}
