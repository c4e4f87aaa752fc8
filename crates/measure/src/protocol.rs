//! What the engine and a worker process say to each other: one JSON object a line, the
//! engine on the worker's stdin, the worker on its stdout.
//!
//! 1. The worker builds its style, runs and checks one iteration, and says
//!    [`Reply::Ready`] (or [`Reply::Unknown`] when this build has no such benchmark).
//! 2. The engine asks for samples ([`Request::Sample`]); the worker runs them and
//!    answers [`Reply::Sample`] or [`Reply::Failed`]. Between requests it is blocked on
//!    a read of its stdin and uses no CPU.
//! 3. The engine closes the worker's stdin; the worker drops its style and exits.

use serde::{Deserialize, Serialize};

/// The protocol's version: a worker of another version is unusable input for the engine.
pub const PROTOCOL_VERSION: u32 = 2;

/// The longest line either side accepts; a longer one is a broken peer.
pub const MAX_LINE_BYTES: usize = 64 << 10;

/// From the engine to a worker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Request {
    /// Run `iterations` iterations back to back, timed as one sample, then check every
    /// answer.
    Sample {
        /// Iterations in the sample.
        iterations: u64,
    },
}

/// From a worker to the engine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reply {
    /// The style is built and its first answer was right.
    Ready {
        /// [`PROTOCOL_VERSION`] of the worker's build.
        protocol: u32,
        /// The benchmark, `group/style/parameter`.
        id: String,
        /// The worker's process id.
        pid: u32,
    },
    /// This build has no such benchmark, or does not run it here.
    Unknown {
        /// Why.
        message: String,
    },
    /// One sample, every answer in it right.
    Sample {
        /// Iterations the worker ran and checked: the engine refuses a sample whose count
        /// is not the one it asked for, so a worker cannot look fast by doing less.
        iterations: u64,
        /// Wall-clock time of the iterations, nanoseconds.
        wall_ns: u64,
        /// CPU time (user + system) of the worker and its child processes during them,
        /// nanoseconds.
        cpu_ns: u64,
    },
    /// The style failed or answered wrongly; the worker exits after saying so.
    Failed {
        /// What went wrong.
        message: String,
    },
}
