//! One client connection, and a reusable set of them for benchmarks.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::runtime::Runtime;
use tokio::task::JoinSet;

use crate::LoadError;
use crate::run::RequestSpec;

/// How one reply was judged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// The expected answer.
    Right,
    /// The server answered `error: …`.
    ServerError,
    /// Anything else: a wrong number, garbage.
    Wrong,
    /// Bytes the client did not ask for: already waiting before the request was sent,
    /// or left over after the reply. With one request outstanding per connection that is
    /// a protocol violation whatever the bytes say; the stream is out of step, so the
    /// connection is dropped.
    Unasked,
    /// A reply line longer than [`Exchange::max_reply_bytes`] (an endless line, say): read
    /// no further, and the connection is dropped.
    Overlong,
}

impl Verdict {
    /// How many verdicts there are: the size of a per-verdict count array.
    pub(crate) const COUNT: usize = 5;

    /// Whether the reply leaves the connection usable: a reply that was wrong in any way
    /// may mean a desynchronised stream.
    pub(crate) fn keeps_connection(self) -> bool {
        matches!(self, Self::Right | Self::ServerError)
    }
}

/// The longest reply line accepted in fib mode: the answer is at most 20 digits and the
/// protocol's error messages a few dozen bytes.
pub const MAX_FIB_REPLY_BYTES: usize = 256;

/// The longest reply line accepted in raw mode: generous for any one-line protocol (a
/// redis inline reply, a status line), small enough that a server sending an endless
/// line costs the client a bounded buffer per connection.
pub const MAX_RAW_REPLY_BYTES: usize = 64 * 1024;

/// The request bytes to send and how to judge the reply.
#[derive(Debug, Clone)]
pub(crate) struct Exchange {
    request: Vec<u8>,
    expected: Vec<u8>,
    exact: bool,
    max_reply_bytes: usize,
}

impl Exchange {
    pub(crate) fn new(spec: &RequestSpec) -> Result<Self, LoadError> {
        match spec {
            RequestSpec::Fib { n } | RequestSpec::Wait { n } => {
                let answer = workloads::fib_reference(*n)
                    .ok_or_else(|| LoadError::Config(format!("fib({n}) does not fit in u64")))?;
                let request = match spec {
                    RequestSpec::Wait { .. } => format!("wait {n}\n"),
                    _ => format!("{n}\n"),
                };
                Ok(Self {
                    request: request.into_bytes(),
                    expected: answer.to_string().into_bytes(),
                    exact: true,
                    max_reply_bytes: MAX_FIB_REPLY_BYTES,
                })
            }
            RequestSpec::Raw {
                line,
                expect_prefix,
            } => {
                if line.contains(['\n', '\r']) {
                    return Err(LoadError::Config(
                        "a raw request is one line: no \\n or \\r".into(),
                    ));
                }
                Ok(Self {
                    // CRLF: what line-based servers such as redis's inline protocol expect.
                    request: format!("{line}\r\n").into_bytes(),
                    expected: expect_prefix.clone().into_bytes(),
                    exact: false,
                    max_reply_bytes: MAX_RAW_REPLY_BYTES,
                })
            }
        }
    }

    fn judge(&self, reply: &[u8]) -> Verdict {
        let reply = reply.strip_suffix(b"\n").unwrap_or(reply);
        let reply = reply.strip_suffix(b"\r").unwrap_or(reply);
        let right = if self.exact {
            reply == self.expected.as_slice()
        } else {
            reply.starts_with(&self.expected)
        };
        if right {
            Verdict::Right
        } else if reply.starts_with(b"error: ") {
            Verdict::ServerError
        } else {
            Verdict::Wrong
        }
    }
}

/// A connection with one request outstanding at a time.
#[derive(Debug)]
pub(crate) struct Connection {
    stream: BufReader<TcpStream>,
    reply: Vec<u8>,
}

impl Connection {
    pub(crate) async fn open(addr: SocketAddr) -> io::Result<Self> {
        let stream = TcpStream::connect(addr).await?;
        // Requests are tiny and each waits for its reply: never let Nagle hold one.
        stream.set_nodelay(true)?;
        Ok(Self {
            stream: BufReader::new(stream),
            reply: Vec::with_capacity(64),
        })
    }

    /// Sends one request and reads one reply line, of at most the exchange's bound.
    ///
    /// A reply is only judged when it was asked for: bytes already waiting before the
    /// request goes out, or left after the reply line, make it [`Verdict::Unasked`]
    /// (the caller drops the connection), so a server that writes answers without being
    /// asked cannot be counted as fast.
    pub(crate) async fn exchange(&mut self, exchange: &Exchange) -> io::Result<Verdict> {
        if self.has_unasked_bytes()? {
            return Ok(Verdict::Unasked);
        }
        self.stream.get_mut().write_all(&exchange.request).await?;
        self.reply.clear();
        if !self.read_reply_line(exchange.max_reply_bytes).await? {
            return Ok(Verdict::Overlong);
        }
        if !self.stream.buffer().is_empty() {
            return Ok(Verdict::Unasked);
        }
        Ok(exchange.judge(&self.reply))
    }

    /// Whether the server sent anything since the last reply, looking without waiting:
    /// the read buffer, then one non-blocking read of the socket (tokio skips the system
    /// call while it knows the socket has nothing to read). A closed connection is an
    /// error, as it would be for the request.
    fn has_unasked_bytes(&mut self) -> io::Result<bool> {
        if !self.stream.buffer().is_empty() {
            return Ok(true);
        }
        let mut probe = [0u8; 64];
        match self.stream.get_ref().try_read(&mut probe) {
            Ok(0) => Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the server closed the connection",
            )),
            Ok(_) => Ok(true),
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => Ok(false),
            Err(error) => Err(error),
        }
    }

    /// Reads up to and including the next `\n` into `self.reply`; `false` when the line
    /// grows past `max_bytes` first (what was read is dropped, nothing more is read).
    async fn read_reply_line(&mut self, max_bytes: usize) -> io::Result<bool> {
        loop {
            let available = self.stream.fill_buf().await?;
            if available.is_empty() {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the server closed the connection",
                ));
            }
            let (taken, complete) = match available.iter().position(|&byte| byte == b'\n') {
                Some(end) => (end + 1, true),
                None => (available.len(), false),
            };
            if self.reply.len() + taken > max_bytes {
                self.reply.clear();
                return Ok(false);
            }
            self.reply.extend_from_slice(&available[..taken]);
            self.stream.consume(taken);
            if complete {
                return Ok(true);
            }
        }
    }
}

/// Outcome of [`ClosedLoop::run_batch`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Batch {
    /// Wall time from the first request sent to the last reply read.
    pub elapsed: Duration,
    /// Replies that were the expected answer.
    pub right: u64,
    /// Replies that were `error: …`.
    pub server_errors: u64,
    /// Replies that were neither, replies not asked for, and reply lines over the
    /// bound.
    pub wrong: u64,
    /// The fewest replies any one connection got: with `max_per_connection`, how evenly
    /// the server served its connections (a server that starves some is worse, though
    /// its total rate may not show it).
    pub min_per_connection: u64,
    /// The most replies any one connection got.
    pub max_per_connection: u64,
}

/// A fixed set of open connections that sends batches of requests, closed loop, for
/// benchmarks that time many batches over the same connections (connection set-up stays
/// outside the timed region).
///
/// A batch is a steady-state window, not a race to finish equal shares: every connection
/// keeps sending, one request outstanding, until the batch's requests are all claimed,
/// so the batch ends one round trip after its last request and no slow connection's
/// leftover share sets its time. How evenly the connections were served is reported
/// apart ([`Batch::min_per_connection`]).
#[derive(Debug)]
pub struct ClosedLoop {
    runtime: Runtime,
    connections: Vec<Connection>,
    exchange: Exchange,
    timeout: Duration,
}

impl ClosedLoop {
    /// Opens `connections` connections to `addr`, driven by `client_threads` threads
    /// (a tokio current-thread runtime for one, a multi-thread runtime for more). Every
    /// request of every batch must be answered within `timeout`.
    pub fn connect(
        addr: SocketAddr,
        connections: usize,
        client_threads: usize,
        spec: &RequestSpec,
        timeout: Duration,
    ) -> Result<Self, LoadError> {
        if connections == 0 {
            return Err(LoadError::Config("at least one connection".into()));
        }
        if client_threads == 0 {
            return Err(LoadError::Config("at least one client thread".into()));
        }
        let exchange = Exchange::new(spec)?;
        let runtime = if client_threads == 1 {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
        } else {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(client_threads)
                .thread_name("loadgen-client")
                .enable_all()
                .build()
        }
        .map_err(LoadError::Runtime)?;
        let connections = runtime
            .block_on(async {
                let mut opened = Vec::with_capacity(connections);
                for _ in 0..connections {
                    opened.push(Connection::open(addr).await?);
                }
                Ok(opened)
            })
            .map_err(|source| LoadError::Connect { addr, source })?;
        Ok(Self {
            runtime,
            connections,
            exchange,
            timeout,
        })
    }

    /// Sends `requests` requests over the connections, each connection claiming its
    /// next request from a shared count as soon as its last reply arrived, and returns
    /// when every claimed request has been answered. A reply that breaks the protocol,
    /// a timeout or a failure fails the batch (and its connections are dropped).
    pub fn run_batch(&mut self, requests: u64) -> io::Result<Batch> {
        if self.connections.is_empty() {
            // A failed batch leaves its connections in an unknown state and drops them.
            return Err(io::Error::new(
                io::ErrorKind::NotConnected,
                "an earlier batch failed",
            ));
        }
        let count = self.connections.len();
        let connections = std::mem::take(&mut self.connections);
        let (exchange, timeout) = (self.exchange.clone(), self.timeout);
        let unclaimed = Arc::new(AtomicU64::new(requests));
        let (connections, batch) = self.runtime.block_on(async move {
            let start = Instant::now();
            let mut tasks = JoinSet::new();
            for mut connection in connections {
                let (exchange, unclaimed) = (exchange.clone(), Arc::clone(&unclaimed));
                tasks.spawn(async move {
                    let mut verdicts = [0u64; Verdict::COUNT];
                    while claim(&unclaimed) {
                        let verdict = tokio::time::timeout(timeout, connection.exchange(&exchange))
                            .await
                            .map_err(|_| {
                                io::Error::new(io::ErrorKind::TimedOut, "no reply in time")
                            })??;
                        verdicts[verdict as usize] += 1;
                        if !verdict.keeps_connection() {
                            return Err(io::Error::new(
                                io::ErrorKind::InvalidData,
                                format!("the server broke the protocol: {verdict:?} reply"),
                            ));
                        }
                    }
                    io::Result::Ok((connection, verdicts))
                });
            }
            let mut connections = Vec::with_capacity(count);
            let mut verdicts = [0u64; Verdict::COUNT];
            let (mut fewest, mut most) = (u64::MAX, 0);
            while let Some(joined) = tasks.join_next().await {
                let (connection, counted) = joined.map_err(io::Error::other)??;
                connections.push(connection);
                let replies: u64 = counted.iter().sum();
                fewest = fewest.min(replies);
                most = most.max(replies);
                for (total, counted) in verdicts.iter_mut().zip(counted) {
                    *total += counted;
                }
            }
            let batch = Batch {
                elapsed: start.elapsed(),
                right: verdicts[Verdict::Right as usize],
                server_errors: verdicts[Verdict::ServerError as usize],
                wrong: verdicts[Verdict::Wrong as usize]
                    + verdicts[Verdict::Unasked as usize]
                    + verdicts[Verdict::Overlong as usize],
                min_per_connection: fewest,
                max_per_connection: most,
            };
            io::Result::Ok((connections, batch))
        })?;
        self.connections = connections;
        Ok(batch)
    }
}

/// Takes one request from the batch's unclaimed count; `false` when none is left.
fn claim(unclaimed: &AtomicU64) -> bool {
    unclaimed
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |left| {
            left.checked_sub(1)
        })
        .is_ok()
}
