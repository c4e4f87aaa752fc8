//! The concbench contract.
//!
//! Every concurrency style implements the same workloads behind the [`Style`] trait, and
//! every answer goes through the same check ([`check_fib_answers`]). This crate holds
//! everything the styles share so that each style crate contains only what is specific
//! to that style:
//!
//! - [`fib`]: the naive recursive Fibonacci that is the CPU cost model, and
//!   [`fib_reference`], the fast answer it is checked against;
//! - [`FibBatch`] and [`ForkJoin`]: deterministic input sets for the CPU workloads;
//! - [`Style`], [`StyleEntry`], [`Workload`] and [`Support`]: what a style must answer,
//!   and how it says "not applicable, because …" without faking a result;
//! - [`tasks`]: the outcomes and checks of `spawn`, `ping_pong` and `sleepers`, and the
//!   machine's limits on threads and processes;
//! - [`protocol`]: the wire protocol as a sans-I/O [`protocol::Session`], and [`server`]:
//!   the blocking and futures-io connection loops and acceptors that servers share;
//!   [`backend`]: the clients with which servers ask the backend of a `wait` request;
//! - [`completion`]: the thread-per-core styles on completion-based (io_uring)
//!   runtimes, written once over what each runtime provides.

#![forbid(unsafe_code)]

pub mod backend;
mod check;
pub mod completion;
mod fib;
mod inputs;
pub mod protocol;
pub mod server;
mod style;
pub mod tasks;

pub use check::{WrongAnswer, check_fib_answers};
pub use fib::{MAX_REFERENCE_N, fib, fib_reference};
pub use inputs::{FibBatch, ForkJoin, Step};
pub use style::{
    CpuThreads, ServerModel, Style, StyleConfig, StyleEntry, StyleError, Support, WORKERS_ENV,
    WorkerCommand, Workload,
};
