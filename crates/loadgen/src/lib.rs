//! The load generator: drives any server of the concbench wire protocol, or any server
//! that answers a one-line request with one line (redis `PING`, say), and reports rates
//! and latency percentiles.
//!
//! - **Closed loop** ([`LoadConfig::rate`] unset): each connection has one request
//!   outstanding and sends the next as soon as the answer arrives. Measures the rate a
//!   server sustains at a given concurrency.
//! - **Open loop** (`rate` set): requests are due at fixed intervals per connection, and
//!   latency is measured from when a request was *due*, not when it could be sent, so a
//!   stalled server is charged for the requests it delayed (no coordinated omission).
//!
//! Every answer is checked: in fib mode against [`workloads::fib_reference`], in raw mode
//! against an expected prefix. Server errors, wrong answers and failed requests are
//! counted and reported, never dropped. Every run is bounded: by a duration or a request
//! count, by a per-request timeout, and by a hard limit on the whole run.
//!
//! The client runs on tokio current-thread runtimes, one per client thread (one thread
//! by default, like `redis-benchmark`), in its own process: it never shares a runtime
//! with the server it measures.

// One audited exception, in `pacing`: registering a timerfd with tokio's reactor.
#![deny(unsafe_code)]

mod connection;
mod fleet;
pub mod hgrm;
mod pacing;
mod report;
mod run;

pub use connection::{Batch, ClosedLoop, MAX_FIB_REPLY_BYTES, MAX_RAW_REPLY_BYTES};
pub use fleet::{
    CONNECTS_IN_FLIGHT, Fleet, IdlePhase, MIN_IDLE_INTERVAL, OpenFailures, OpenLimits,
};
pub use hgrm::{
    HgrmParseError, PercentileDistribution, parse_percentile_distribution,
    write_percentile_distribution,
};
pub use report::{LatencySummary, LoadReport, Recording, SendLateness};
pub use run::{LoadConfig, Progress, RequestSpec, StopAfter, record, run};

/// Client threads for a closed-loop throughput measurement over many connections, the
/// same in the criterion bench (`benches/server.rs`) and the Beazley scenario's
/// throughput phase, so the two measure the same thing: more than one, so that one
/// client thread's speed is not the ceiling of every fast server (on two cores the
/// fastest servers kept one client thread fully busy at 32 connections). Never more
/// than the connections.
pub const THROUGHPUT_CLIENT_THREADS: usize = 2;

/// Why a load run could not produce a report.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The configuration is unusable (zero connections, a raw request with a newline…).
    #[error("invalid load configuration: {0}")]
    Config(String),
    /// No connection to the server could be opened.
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        /// The server's address.
        addr: std::net::SocketAddr,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The client's own runtime or threads could not start.
    #[error("cannot start the load generator: {0}")]
    Runtime(std::io::Error),
}
