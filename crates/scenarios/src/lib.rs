//! The scenarios that criterion cannot express, and the JSON rows they produce.
//!
//! - [`beazley`]: each style's server in a child process of its own, driven by the load
//!   generator: `fib(1)` throughput at several connection counts, then the latency of a
//!   `fib(1)` probe while other connections loop a long `fib(n)`.
//!
//! - [`tasks`]: for each style and each N, a fresh child process holds N sleeping units
//!   and reports its wall times and the kernel's accounting of its memory.
//!
//! Child processes are held by [`ServerChild`], which kills and reaps its process when
//! dropped, and registers it with [`ChildRegistry`] so that a signal handler can kill
//! every child before the scenario process exits.

#![forbid(unsafe_code)]

pub mod beazley;
mod child;
mod rows;
pub mod tasks;

pub use child::{ChildRegistry, ReadyBy, ServerChild, ServerCommand, TrackedChild};
pub use rows::{BeazleyRow, Phase, TaskRow};

/// Why a scenario could not run.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    /// A server did not start.
    #[error("{name}: {message}")]
    ServerStart {
        /// The server's name.
        name: String,
        /// What went wrong, with whatever the server printed on stderr.
        message: String,
    },
    /// The load generator could not run.
    #[error("{name}: {source}")]
    Load {
        /// The server's name.
        name: String,
        /// The load generator's error.
        source: loadgen::LoadError,
    },
    /// The scenario was interrupted.
    #[error("interrupted")]
    Interrupted,
}
