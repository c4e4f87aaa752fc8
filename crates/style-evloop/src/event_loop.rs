//! The loop itself: one thread, a queue of ready callbacks, descriptors watched with
//! epoll, and an inbox through which other threads reach it.
//!
//! Other threads reach the loop only through a [`LoopHandle`]: they put a call in the
//! inbox and write to the loop's eventfd, which wakes the `epoll_wait`. This is the
//! seed's design (Beazley's loop woken through a socketpair), with epoll in place of
//! `select` because epoll is what a Linux loop uses.

use std::cmp::{Ordering, Reverse};
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::rc::Rc;
use std::sync::{Arc, mpsc};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crate::sys::{Epoll, Event, EventFd, Interest, Readiness};

/// A callback queued on the loop; it runs on the loop thread and may queue more.
pub(crate) type Callback = Box<dyn FnOnce(&mut EventLoop)>;

/// A call sent to the loop from another thread.
pub(crate) type RemoteCall = Box<dyn FnOnce(&mut EventLoop) + Send>;

/// What a registered source is woken with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Wake {
    /// Its descriptor is ready.
    Io(Readiness),
    /// A message posted to it (see [`LoopHandle::post`]), such as a computed answer.
    Message(u64),
}

/// The handler of a registered source. Shared, so that it can be called while the loop
/// is borrowed mutably; it keeps its own state behind a `RefCell`.
pub(crate) type Handler = Rc<dyn Fn(&mut EventLoop, Token, Wake)>;

/// Names one registered source for as long as the loop runs (tokens are never reused,
/// so a late event cannot reach a newer source).
pub(crate) type Token = u64;

/// A map keyed by [`Token`]. Tokens are distinct sequential integers, so they are their
/// own hash: no need to pay for SipHash on every event.
pub(crate) type TokenMap<V> = HashMap<Token, V, BuildHasherDefault<TokenHasher>>;

/// The identity hasher behind [`TokenMap`].
#[derive(Debug, Default)]
pub(crate) struct TokenHasher(u64);

impl Hasher for TokenHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u64` is used for tokens; fold anything else in byte by byte.
        for &byte in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(byte);
        }
    }

    fn write_u64(&mut self, token: u64) {
        self.0 = token;
    }
}

/// The token of the loop's own wakeup descriptor.
const WAKEUP_TOKEN: Token = 0;

/// The loop's state; lives on, and is only touched by, the loop thread.
pub(crate) struct EventLoop {
    poller: Epoll,
    wakeup: Arc<EventFd>,
    inbox: mpsc::Receiver<RemoteCall>,
    ready: VecDeque<Callback>,
    /// Pending timers, earliest first.
    timers: BinaryHeap<Reverse<Timer>>,
    /// Orders timers with equal deadlines by when they were set.
    timers_set: u64,
    handlers: TokenMap<Handler>,
    next_token: Token,
    /// Reused between turns, so dispatching events does not allocate.
    events: Vec<Event>,
    stopping: bool,
}

/// A thread-safe handle to a running loop.
#[derive(Debug, Clone)]
pub(crate) struct LoopHandle {
    inbox: mpsc::Sender<RemoteCall>,
    wakeup: Arc<EventFd>,
}

/// The loop's thread; dropping it stops the loop and joins the thread.
#[derive(Debug)]
pub(crate) struct LoopThread {
    handle: LoopHandle,
    thread: Option<JoinHandle<io::Result<()>>>,
}

impl EventLoop {
    /// Queues `callback` to run on a later turn of the loop.
    pub(crate) fn call_soon(&mut self, callback: impl FnOnce(&mut EventLoop) + 'static) {
        self.ready.push_back(Box::new(callback));
    }

    /// Queues `callback` to run once `delay` has passed (never earlier).
    pub(crate) fn call_later(
        &mut self,
        delay: Duration,
        callback: impl FnOnce(&mut EventLoop) + 'static,
    ) {
        self.timers_set += 1;
        self.timers.push(Reverse(Timer {
            deadline: Instant::now() + delay,
            sequence: self.timers_set,
            callback: Box::new(callback),
        }));
    }

    /// Makes the loop return after the current turn.
    pub(crate) fn stop(&mut self) {
        self.stopping = true;
    }

    /// Watches `fd` for `interest`; `handler` is called with every event, and with every
    /// message posted to the returned token. The caller keeps `fd` open until it
    /// [`deregister`](Self::deregister)s it.
    pub(crate) fn register(
        &mut self,
        fd: RawFd,
        interest: Interest,
        handler: Handler,
    ) -> io::Result<Token> {
        self.next_token += 1;
        let token = self.next_token;
        self.poller.add(fd, token, interest)?;
        self.handlers.insert(token, handler);
        Ok(token)
    }

    /// Changes what a registered `fd` is watched for.
    pub(crate) fn reregister(
        &mut self,
        fd: RawFd,
        token: Token,
        interest: Interest,
    ) -> io::Result<()> {
        self.poller.modify(fd, token, interest)
    }

    /// Stops watching `fd` and forgets its handler; later events and messages for the
    /// token are dropped.
    pub(crate) fn deregister(&mut self, fd: RawFd, token: Token) {
        // Fails only if the descriptor was never registered or is already closed, and
        // either way it is no longer watched.
        let _ = self.poller.delete(fd);
        self.handlers.remove(&token);
    }

    /// Calls the handler of `token` with `wake`, if it is still registered.
    pub(crate) fn deliver(&mut self, token: Token, wake: Wake) {
        if let Some(handler) = self.handlers.get(&token).cloned() {
            handler(self, token, wake);
        }
    }

    fn run(mut self) -> io::Result<()> {
        loop {
            // Run only the callbacks that were ready when the turn began; the ones they
            // queue wait for the next turn, so the loop polls between batches.
            for _ in 0..self.ready.len() {
                let Some(callback) = self.ready.pop_front() else {
                    break;
                };
                callback(&mut self);
            }
            if self.stopping {
                return Ok(());
            }
            let timeout = if !self.ready.is_empty() {
                Some(Duration::ZERO)
            } else {
                self.timers
                    .peek()
                    .map(|Reverse(timer)| timer.deadline.saturating_duration_since(Instant::now()))
            };
            let mut events = std::mem::take(&mut self.events);
            events.clear();
            events.extend(self.poller.wait(timeout)?);
            for event in &events {
                if event.token == WAKEUP_TOKEN {
                    self.wakeup.drain()?;
                } else {
                    self.deliver(event.token, Wake::Io(event.readiness));
                }
            }
            self.events = events;
            // Expired timers join the ready queue, earliest first.
            let now = Instant::now();
            while self
                .timers
                .peek()
                .is_some_and(|Reverse(timer)| timer.deadline <= now)
            {
                if let Some(Reverse(timer)) = self.timers.pop() {
                    self.ready.push_back(timer.callback);
                }
            }
            // Drain the inbox every turn: a call sent after the last drain has written
            // to the eventfd too, so it is never missed.
            while let Ok(call) = self.inbox.try_recv() {
                self.ready.push_back(call);
            }
        }
    }
}

/// A callback due at a deadline; ordered by deadline, then by when it was set.
struct Timer {
    deadline: Instant,
    sequence: u64,
    callback: Callback,
}

impl Ord for Timer {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.deadline, self.sequence).cmp(&(other.deadline, other.sequence))
    }
}

impl PartialOrd for Timer {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Timer {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Timer {}

impl LoopHandle {
    /// Runs `call` on the loop thread, soon. Fails once the loop has stopped.
    pub(crate) fn call(
        &self,
        call: impl FnOnce(&mut EventLoop) + Send + 'static,
    ) -> io::Result<()> {
        self.inbox
            .send(Box::new(call))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the event loop has stopped"))?;
        self.wakeup.notify()
    }

    /// Delivers `message` to the handler of `token` on the loop thread, soon.
    pub(crate) fn post(&self, token: Token, message: u64) -> io::Result<()> {
        self.call(move |event_loop| event_loop.deliver(token, Wake::Message(message)))
    }
}

impl LoopThread {
    /// Starts a loop on a new thread named `name`.
    pub(crate) fn start(name: &str) -> io::Result<Self> {
        let poller = Epoll::new()?;
        let wakeup = Arc::new(EventFd::new()?);
        poller.add(wakeup.as_raw_fd(), WAKEUP_TOKEN, Interest::READ)?;
        let (sender, inbox) = mpsc::channel();
        let loop_wakeup = Arc::clone(&wakeup);
        let thread = thread::Builder::new()
            .name(name.to_owned())
            .spawn(move || {
                // Built on its own thread: callbacks and handlers are not Send.
                EventLoop {
                    poller,
                    wakeup: loop_wakeup,
                    inbox,
                    ready: VecDeque::new(),
                    timers: BinaryHeap::new(),
                    timers_set: 0,
                    handlers: TokenMap::default(),
                    next_token: WAKEUP_TOKEN,
                    events: Vec::new(),
                    stopping: false,
                }
                .run()
            })?;
        Ok(Self {
            handle: LoopHandle {
                inbox: sender,
                wakeup,
            },
            thread: Some(thread),
        })
    }

    /// A handle for sending calls to the loop.
    pub(crate) fn handle(&self) -> &LoopHandle {
        &self.handle
    }
}

impl Drop for LoopThread {
    fn drop(&mut self) {
        // If the loop already stopped (an epoll error), the call fails and join returns.
        let _ = self.handle.call(EventLoop::stop);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    #[test]
    fn remote_calls_run_on_the_loop_thread_in_order() {
        let loop_thread = LoopThread::start("test-loop").unwrap();
        let (sender, receiver) = mpsc::channel();
        for call_idx in 0..10 {
            let sender = sender.clone();
            loop_thread
                .handle()
                .call(move |_| {
                    let name = thread::current().name().map(str::to_owned);
                    sender.send((call_idx, name)).unwrap();
                })
                .unwrap();
        }
        for call_idx in 0..10 {
            assert_eq!(
                receiver.recv().unwrap(),
                (call_idx, Some("test-loop".to_owned()))
            );
        }
    }

    #[test]
    fn callbacks_queue_callbacks_until_done() {
        fn tick(event_loop: &mut EventLoop, count: Rc<Cell<u32>>, done: mpsc::Sender<u32>) {
            count.set(count.get() + 1);
            if count.get() == 1000 {
                done.send(count.get()).unwrap();
            } else {
                event_loop.call_soon(move |event_loop| tick(event_loop, count, done));
            }
        }
        let loop_thread = LoopThread::start("test-loop").unwrap();
        let (sender, receiver) = mpsc::channel();
        loop_thread
            .handle()
            .call(move |event_loop| {
                let count = Rc::new(Cell::new(0));
                event_loop.call_soon(move |event_loop| tick(event_loop, count, sender));
            })
            .unwrap();
        assert_eq!(receiver.recv().unwrap(), 1000);
    }

    #[test]
    fn posted_messages_reach_their_handler_until_it_deregisters() {
        let loop_thread = LoopThread::start("test-loop").unwrap();
        let source = Arc::new(EventFd::new().unwrap());
        let (token_sender, token_receiver) = mpsc::channel();
        let (message_sender, message_receiver) = mpsc::channel();
        let fd = source.as_raw_fd();
        loop_thread
            .handle()
            .call(move |event_loop| {
                let handler: Handler = Rc::new(move |event_loop: &mut EventLoop, token, wake| {
                    if let Wake::Message(message) = wake {
                        message_sender.send(message).unwrap();
                        if message == 2 {
                            event_loop.deregister(fd, token);
                        }
                    }
                });
                let token = event_loop.register(fd, Interest::NONE, handler).unwrap();
                token_sender.send(token).unwrap();
            })
            .unwrap();
        let token = token_receiver.recv().unwrap();
        for message in [1, 2, 3] {
            loop_thread.handle().post(token, message).unwrap();
        }
        drop(loop_thread);
        // 3 arrived after the handler deregistered itself, and was dropped.
        assert_eq!(message_receiver.iter().collect::<Vec<_>>(), vec![1, 2]);
    }

    #[test]
    fn timers_fire_in_deadline_order_and_never_early() {
        let loop_thread = LoopThread::start("test-loop").unwrap();
        let (sender, receiver) = mpsc::channel();
        loop_thread
            .handle()
            .call(move |event_loop| {
                let set_at = Instant::now();
                for millis in [30u64, 10, 20, 10] {
                    let sender = sender.clone();
                    event_loop.call_later(Duration::from_millis(millis), move |_| {
                        sender.send((millis, set_at.elapsed())).unwrap();
                    });
                }
            })
            .unwrap();
        let fired: Vec<(u64, Duration)> = receiver.iter().take(4).collect();
        assert_eq!(
            fired.iter().map(|(millis, _)| *millis).collect::<Vec<_>>(),
            [10, 10, 20, 30]
        );
        for (millis, elapsed) in fired {
            assert!(
                elapsed >= Duration::from_millis(millis),
                "{millis} ms timer fired after {elapsed:?}"
            );
        }
    }

    #[test]
    fn dropping_the_thread_stops_the_loop() {
        let loop_thread = LoopThread::start("test-loop").unwrap();
        let handle = loop_thread.handle().clone();
        drop(loop_thread);
        assert!(handle.call(|_| ()).is_err());
    }
}
