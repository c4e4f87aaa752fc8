//! A hand-built single-threaded event loop: the seed's own loop, in Rust, with `epoll`
//! and an `eventfd` from `libc` and nothing else beyond std.
//!
//! All work runs as callbacks on the one loop thread. On CPU workloads this shows what
//! one loop thread can do — about the sequential time, whatever the worker count — which
//! is the lesson of the seed's blocked loop, not a defect of the implementation.
//!
//! A `spawn` unit is a callback on the ready queue; `ping_pong` passes each message as a
//! callback queued by the other side; `sleepers` are callbacks on the loop's timer heap,
//! which sets the `epoll_wait` timeout.
//!
//! The server is Beazley's: one thread, non-blocking sockets, every connection a state
//! machine driven by readiness. `evloop` computes `fib` on the loop thread, so a long
//! request stalls every connection; `evloop-offload` sends each `fib` to an elastic pool
//! of blocking threads and gets the answer back through the loop's eventfd, the seed's
//! fix (its loop waited on futures through a socketpair).
//!
//! A `wait N` request (`io_wait`) is the loop's own I/O in both variants, as it is in
//! Beazley's select loop: each client connection holds one backend connection, opened
//! on its first `wait` with a non-blocking connect and registered with the loop like
//! any socket (writable: connected, so write `N\n`; readable: feed the reply to the
//! contract's `ReplyParser`). The loop serves every other connection meanwhile; the
//! waiting one reads nothing more until the verdict is relayed. The time-outs are loop
//! timers, and a failed backend connection is closed and opened afresh on the next
//! `wait`.

#![deny(unsafe_code)]

mod blocking_pool;
mod event_loop;
mod server;
mod sys;

use std::cell::{Cell, RefCell};
use std::net::TcpListener;
use std::rc::Rc;
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use blocking_pool::BlockingPool;

use event_loop::{EventLoop, LoopThread};
use workloads::server::{SERVER_VARIANT, ServeConfig, ServerHandle};
use workloads::tasks::{self, PingPong, Receiver, Sleepers, UnitKind};
use workloads::{
    CpuThreads, ForkJoin, ServerModel, Step, Style, StyleConfig, StyleEntry, StyleError, Support,
    Workload, fib,
};

/// The `evloop` row of the catalog.
pub const ENTRY: StyleEntry = StyleEntry {
    name: "evloop",
    summary: "hand-built `epoll` loop: one thread runs every callback, fib inline",
    support: support_loop,
    build: build_inline,
    server_model: ServerModel::Concurrent,
    cpu_threads: CpuThreads::One,
    unit: UnitKind::Task,
};

/// The `evloop-offload` row of the catalog: the loop's server with every `fib` on a
/// pool of blocking threads.
pub const ENTRY_OFFLOAD: StyleEntry = StyleEntry {
    name: "evloop-offload",
    summary: "hand-built `epoll` loop, each request's fib on a blocking pool, answers back through an eventfd",
    support: workloads::server::server_variant_support,
    build: build_offload,
    server_model: ServerModel::Concurrent,
    cpu_threads: CpuThreads::Workers,
    unit: UnitKind::Task,
};

fn support_loop(workload: Workload) -> Support {
    match workload {
        Workload::FibBatch
        | Workload::FibSkewed
        | Workload::FibForkJoin
        | Workload::Spawn
        | Workload::PingPong
        | Workload::Sleepers
        | Workload::Throughput
        | Workload::HogLatency
        | Workload::Connections
        | Workload::IoWait => Support::Runs,
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

    /// Runs `callback(i)` for every `i` in `0..n` as one loop callback each, as a loop
    /// runs any queue of work, and returns the answers in order.
    fn map_callbacks(
        &self,
        n: usize,
        callback: impl Fn(usize) -> u64 + Send + 'static,
    ) -> Result<Vec<u64>, StyleError> {
        self.run_on_loop(move |event_loop, done| {
            if n == 0 {
                let _ = done.send(Vec::new());
                return;
            }
            let callback = Rc::new(callback);
            let answers = Rc::new(RefCell::new(vec![0; n]));
            let remaining = Rc::new(Cell::new(n));
            for index in 0..n {
                let (callback, answers, remaining, done) = (
                    Rc::clone(&callback),
                    Rc::clone(&answers),
                    Rc::clone(&remaining),
                    done.clone(),
                );
                event_loop.call_soon(move |_| {
                    answers.borrow_mut()[index] = callback(index);
                    remaining.set(remaining.get() - 1);
                    if remaining.get() == 0 {
                        let _ = done.send(answers.take());
                    }
                });
            }
        })
    }
}

impl Style for EvLoop {
    fn fib_batch(&self, inputs: &[u32]) -> Result<Vec<u64>, StyleError> {
        let inputs = inputs.to_vec();
        self.map_callbacks(inputs.len(), move |index| fib(inputs[index]))
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

    fn spawn(&self, n_units: usize) -> Result<Vec<u64>, StyleError> {
        self.map_callbacks(n_units, tasks::spawn_unit)
    }

    fn ping_pong(&self, n_messages: u64) -> Result<PingPong, StyleError> {
        self.run_on_loop(move |event_loop, done| {
            if n_messages == 0 {
                let _ = done.send(PingPong::default());
                return;
            }
            let rally = Rc::new(Rally {
                n_messages,
                pings: Cell::default(),
                pongs: Cell::default(),
                done,
            });
            rally.send_ping(event_loop, 0);
        })
    }

    fn sleepers(&self, n_units: usize, sleep: Duration) -> Result<Sleepers, StyleError> {
        self.run_on_loop(move |event_loop, done| {
            let start = Instant::now();
            let slept_full = Rc::new(RefCell::new(Vec::with_capacity(n_units)));
            let spawned_in = Rc::new(Cell::new(Duration::ZERO));
            let finish = move |slept_full: Vec<bool>, spawned_in: Duration| {
                let _ = done.send(Sleepers::tally(slept_full, spawned_in, start.elapsed()));
            };
            if n_units == 0 {
                return finish(Vec::new(), start.elapsed());
            }
            let finish = Rc::new(RefCell::new(Some(finish)));
            for _ in 0..n_units {
                let began = Instant::now();
                let (slept_full, spawned_in, finish) = (
                    Rc::clone(&slept_full),
                    Rc::clone(&spawned_in),
                    Rc::clone(&finish),
                );
                event_loop.call_later(sleep, move |_| {
                    slept_full
                        .borrow_mut()
                        .push(tasks::slept_full(began, sleep));
                    if slept_full.borrow().len() == n_units
                        && let Some(finish) = finish.borrow_mut().take()
                    {
                        finish(slept_full.take(), spawned_in.get());
                    }
                });
            }
            spawned_in.set(start.elapsed());
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

/// A `ping_pong` exchange on the loop: each message is a callback the other side queued.
struct Rally {
    n_messages: u64,
    pings: Cell<Receiver>,
    pongs: Cell<Receiver>,
    done: mpsc::Sender<PingPong>,
}

impl Rally {
    fn send_ping(self: Rc<Self>, event_loop: &mut EventLoop, message: u64) {
        event_loop.call_soon(move |event_loop| {
            let mut pings = self.pings.get();
            pings.receive(message);
            self.pings.set(pings);
            self.send_pong(event_loop, message);
        });
    }

    fn send_pong(self: Rc<Self>, event_loop: &mut EventLoop, message: u64) {
        event_loop.call_soon(move |event_loop| {
            let mut pongs = self.pongs.get();
            pongs.receive(message);
            self.pongs.set(pongs);
            if message + 1 < self.n_messages {
                self.send_ping(event_loop, message + 1);
            } else {
                let _ = self
                    .done
                    .send(PingPong::from_sides(self.pings.get(), self.pongs.get()));
            }
        });
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
