//! One client connection, and a reusable set of them for benchmarks.

use std::io;
use std::net::SocketAddr;
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
}

/// The request bytes to send and how to judge the reply.
#[derive(Debug, Clone)]
pub(crate) struct Exchange {
    request: Vec<u8>,
    expected: Vec<u8>,
    exact: bool,
}

impl Exchange {
    pub(crate) fn new(spec: &RequestSpec) -> Result<Self, LoadError> {
        match spec {
            RequestSpec::Fib { n } => {
                let answer = workloads::fib_reference(*n)
                    .ok_or_else(|| LoadError::Config(format!("fib({n}) does not fit in u64")))?;
                Ok(Self {
                    request: format!("{n}\n").into_bytes(),
                    expected: answer.to_string().into_bytes(),
                    exact: true,
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

    /// Sends one request and reads one reply line.
    pub(crate) async fn exchange(&mut self, exchange: &Exchange) -> io::Result<Verdict> {
        self.stream.get_mut().write_all(&exchange.request).await?;
        self.reply.clear();
        if self.stream.read_until(b'\n', &mut self.reply).await? == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the server closed the connection",
            ));
        }
        Ok(exchange.judge(&self.reply))
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
    /// Replies that were neither.
    pub wrong: u64,
}

/// A fixed set of open connections that sends batches of requests, closed loop, for
/// benchmarks that time many batches over the same connections (connection set-up stays
/// outside the timed region).
#[derive(Debug)]
pub struct ClosedLoop {
    runtime: Runtime,
    connections: Vec<Connection>,
    exchange: Exchange,
    timeout: Duration,
}

impl ClosedLoop {
    /// Opens `connections` connections to `addr`. Every request of every batch must be
    /// answered within `timeout`.
    pub fn connect(
        addr: SocketAddr,
        connections: usize,
        spec: &RequestSpec,
        timeout: Duration,
    ) -> Result<Self, LoadError> {
        if connections == 0 {
            return Err(LoadError::Config("at least one connection".into()));
        }
        let exchange = Exchange::new(spec)?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
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

    /// Sends `requests` requests spread evenly over the connections, each connection
    /// sending its share back to back, and returns when every reply has arrived.
    pub fn run_batch(&mut self, requests: u64) -> io::Result<Batch> {
        if self.connections.is_empty() {
            // A failed batch leaves its connections in an unknown state and drops them.
            return Err(io::Error::new(
                io::ErrorKind::NotConnected,
                "an earlier batch failed",
            ));
        }
        let count = self.connections.len() as u64;
        let connections = std::mem::take(&mut self.connections);
        let (exchange, timeout) = (self.exchange.clone(), self.timeout);
        let (connections, batch) = self.runtime.block_on(async move {
            let start = Instant::now();
            let mut tasks = JoinSet::new();
            for (connection_idx, mut connection) in connections.into_iter().enumerate() {
                let share =
                    requests / count + u64::from((connection_idx as u64) < requests % count);
                let exchange = exchange.clone();
                tasks.spawn(async move {
                    let mut verdicts = [0u64; 3];
                    for _ in 0..share {
                        let verdict = tokio::time::timeout(timeout, connection.exchange(&exchange))
                            .await
                            .map_err(|_| {
                                io::Error::new(io::ErrorKind::TimedOut, "no reply in time")
                            })??;
                        verdicts[verdict as usize] += 1;
                    }
                    io::Result::Ok((connection, verdicts))
                });
            }
            let mut connections = Vec::with_capacity(count as usize);
            let mut verdicts = [0u64; 3];
            while let Some(joined) = tasks.join_next().await {
                let (connection, counted) = joined.map_err(io::Error::other)??;
                connections.push(connection);
                for (total, counted) in verdicts.iter_mut().zip(counted) {
                    *total += counted;
                }
            }
            let batch = Batch {
                elapsed: start.elapsed(),
                right: verdicts[Verdict::Right as usize],
                server_errors: verdicts[Verdict::ServerError as usize],
                wrong: verdicts[Verdict::Wrong as usize],
            };
            io::Result::Ok((connections, batch))
        })?;
        self.connections = connections;
        Ok(batch)
    }
}
