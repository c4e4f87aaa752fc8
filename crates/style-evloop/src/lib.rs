//! A hand-built single-threaded event loop: the seed's own loop, in Rust, with `epoll`
//! and an `eventfd` from `libc` and nothing else beyond std.
//!
//! All work runs as callbacks on the one loop thread. On CPU workloads this shows what
//! one loop thread can do — about the sequential time, whatever the worker count — which
//! is the lesson of the seed's blocked loop, not a defect of the implementation.
//!
//! The server is Beazley's: one thread, non-blocking sockets, every connection a state
//! machine driven by readiness. `evloop` computes `fib` on the loop thread, so a long
//! request stalls every connection; `evloop-offload` sends each `fib` to an elastic pool
//! of blocking threads and gets the answer back through the loop's eventfd, the seed's
//! fix (its loop waited on futures through a socketpair).

#![deny(unsafe_code)]

mod blocking_pool;
mod event_loop;
mod server;
mod sys;

use std::cell::{Cell, RefCell};
use std::net::TcpListener;
use std::rc::Rc;
use std::sync::{Arc, mpsc};

use blocking_pool::BlockingPool;

use event_loop::{EventLoop, LoopThread};
use workloads::server::{SERVER_VARIANT, ServeConfig, ServerHandle};
use workloads::{
    ForkJoin, ServerModel, Step, Style, StyleConfig, StyleEntry, StyleError, Support, Workload, fib,
};

/// The `evloop` row of the catalog.
pub const ENTRY: StyleEntry = StyleEntry {
    name: "evloop",
    summary: "hand-built `epoll` loop: one thread runs every callback, fib inline",
    support: support_loop,
    build: build_inline,
    server_model: ServerModel::Concurrent,
};

/// The `evloop-offload` row of the catalog: the loop's server with every `fib` on a
/// pool of blocking threads.
pub const ENTRY_OFFLOAD: StyleEntry = StyleEntry {
    name: "evloop-offload",
    summary: "hand-built `epoll` loop, each request's fib on a blocking pool, answers back through an eventfd",
    support: support_offload,
    build: build_offload,
    server_model: ServerModel::Concurrent,
};

fn support_loop(workload: Workload) -> Support {
    match workload {
        Workload::FibBatch
        | Workload::FibSkewed
        | Workload::FibForkJoin
        | Workload::Throughput
        | Workload::HogLatency => Support::Runs,
    }
}

fn support_offload(workload: Workload) -> Support {
    match workload {
        Workload::FibBatch | Workload::FibSkewed | Workload::FibForkJoin => {
            Support::NotApplicable(SERVER_VARIANT)
        }
        Workload::Throughput | Workload::HogLatency => Support::Runs,
    }
}

fn build_inline(_config: &StyleConfig) -> Result<Box<dyn Style>, StyleError> {
    // One loop thread whatever the worker count: that is the style.
    Ok(Box::new(EvLoop {
        loop_thread: start_loop()?,
        blocking_pool: None,
    }))
}

fn build_offload(_config: &StyleConfig) -> Result<Box<dyn Style>, StyleError> {
    Ok(Box::new(EvLoop {
        loop_thread: start_loop()?,
        blocking_pool: Some(Arc::new(BlockingPool::new())),
    }))
}

fn start_loop() -> Result<LoopThread, StyleError> {
    LoopThread::start("evloop").map_err(StyleError::io("starting the event loop"))
}

/// The event-loop style: one [`LoopThread`], started once, and for the offload variant
/// the pool its server sends `fib` to.
#[derive(Debug)]
pub struct EvLoop {
    loop_thread: LoopThread,
    blocking_pool: Option<Arc<BlockingPool>>,
}

impl EvLoop {
    /// Runs `start` on the loop and waits for the answer it eventually sends.
    fn run_on_loop<T: Send + 'static>(
        &self,
        start: impl FnOnce(&mut EventLoop, mpsc::Sender<T>) + Send + 'static,
    ) -> Result<T, StyleError> {
        if self.blocking_pool.is_some() {
            return Err(StyleError::NotApplicable(SERVER_VARIANT));
        }
        let (sender, receiver) = mpsc::channel();
        self.loop_thread
            .handle()
            .call(move |event_loop| start(event_loop, sender))
            .map_err(StyleError::io("sending work to the event loop"))?;
        receiver
            .recv()
            .map_err(|_| StyleError::WorkerFailed("the event loop dropped the work".into()))
    }
}

impl Style for EvLoop {
    fn fib_batch(&self, inputs: &[u32]) -> Result<Vec<u64>, StyleError> {
        let inputs = inputs.to_vec();
        self.run_on_loop(move |event_loop, done| {
            if inputs.is_empty() {
                let _ = done.send(Vec::new());
                return;
            }
            // One callback per input, as a loop runs any queue of work.
            let answers = Rc::new(RefCell::new(vec![0; inputs.len()]));
            let remaining = Rc::new(Cell::new(inputs.len()));
            for (index, n) in inputs.into_iter().enumerate() {
                let (answers, remaining, done) =
                    (Rc::clone(&answers), Rc::clone(&remaining), done.clone());
                event_loop.call_soon(move |_| {
                    answers.borrow_mut()[index] = fib(n);
                    remaining.set(remaining.get() - 1);
                    if remaining.get() == 0 {
                        let _ = done.send(answers.take());
                    }
                });
            }
        })
    }

    fn fib_forkjoin(&self, job: ForkJoin) -> Result<u64, StyleError> {
        self.run_on_loop(move |event_loop, done| {
            let tree = Rc::new(Tree {
                job,
                sum: Cell::new(0),
                pending: Cell::new(1),
                done,
            });
            event_loop.call_soon(move |event_loop| run_node(event_loop, tree, job.n));
        })
    }

    fn serve(
        &self,
        listener: TcpListener,
        config: ServeConfig,
    ) -> Result<ServerHandle, StyleError> {
        server::start(
            self.loop_thread.handle(),
            listener,
            config,
            self.blocking_pool.clone(),
        )
        .map_err(StyleError::io("starting the event-loop server"))
    }
}

/// One fork-join computation on the loop; `Rc` and `Cell` suffice on one thread.
struct Tree {
    job: ForkJoin,
    sum: Cell<u64>,
    pending: Cell<usize>,
    done: mpsc::Sender<u64>,
}

/// Walks down the right spine from `n`, queueing every left child as a callback.
fn run_node(event_loop: &mut EventLoop, tree: Rc<Tree>, mut n: u32) {
    loop {
        match tree.job.step(n) {
            Step::Split(left, right) => {
                tree.pending.set(tree.pending.get() + 1);
                let child = Rc::clone(&tree);
                event_loop.call_soon(move |event_loop| run_node(event_loop, child, left));
                n = right;
            }
            Step::Leaf(value) => {
                tree.sum.set(tree.sum.get() + value);
                tree.pending.set(tree.pending.get() - 1);
                if tree.pending.get() == 0 {
                    let _ = tree.done.send(tree.sum.get());
                }
                return;
            }
        }
    }
}
