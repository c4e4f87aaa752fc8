//! The loop itself: one thread, a queue of ready callbacks, and an epoll instance that
//! it sleeps in when there is nothing to run.
//!
//! Other threads reach the loop only through a [`LoopHandle`]: they put a call in the
//! inbox and write to the loop's eventfd, which wakes the `epoll_wait`. This is the
//! seed's design (Beazley's loop woken through a socketpair), with epoll in place of
//! `select` because epoll is what a Linux loop uses.

use std::collections::VecDeque;
use std::io;
use std::os::fd::AsRawFd;
use std::sync::{Arc, mpsc};
use std::thread::{self, JoinHandle};

use crate::sys::{Epoll, EventFd, Interest};

/// A callback queued on the loop; it runs on the loop thread and may queue more.
pub(crate) type Callback = Box<dyn FnOnce(&mut EventLoop)>;

/// A call sent to the loop from another thread.
pub(crate) type RemoteCall = Box<dyn FnOnce(&mut EventLoop) + Send>;

/// The token of the loop's own wakeup descriptor.
const WAKEUP_TOKEN: u64 = u64::MAX;

/// The loop's state; lives on, and is only touched by, the loop thread.
pub(crate) struct EventLoop {
    poller: Epoll,
    wakeup: Arc<EventFd>,
    inbox: mpsc::Receiver<RemoteCall>,
    ready: VecDeque<Callback>,
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

    /// Makes the loop return after the current turn.
    pub(crate) fn stop(&mut self) {
        self.stopping = true;
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
            let timeout = if self.ready.is_empty() {
                None
            } else {
                Some(std::time::Duration::ZERO)
            };
            let mut woken = false;
            for event in self.poller.wait(timeout)? {
                if event.token == WAKEUP_TOKEN {
                    woken = true;
                }
            }
            if woken {
                self.wakeup.drain()?;
            }
            // Drain the inbox every turn: a call sent after the last drain has written
            // to the eventfd too, so it is never missed.
            while let Ok(call) = self.inbox.try_recv() {
                self.ready.push_back(call);
            }
        }
    }
}

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
                // Built on its own thread: the ready queue holds callbacks that are not Send.
                EventLoop {
                    poller,
                    wakeup: loop_wakeup,
                    inbox,
                    ready: VecDeque::new(),
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
    use std::rc::Rc;

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
        let loop_thread = LoopThread::start("test-loop").unwrap();
        let (sender, receiver) = mpsc::channel();
        loop_thread
            .handle()
            .call(move |event_loop| {
                let count = Rc::new(Cell::new(0));
                fn tick(event_loop: &mut EventLoop, count: Rc<Cell<u32>>, done: mpsc::Sender<u32>) {
                    count.set(count.get() + 1);
                    if count.get() == 1000 {
                        done.send(count.get()).unwrap();
                    } else {
                        event_loop.call_soon(move |event_loop| tick(event_loop, count, done));
                    }
                }
                event_loop.call_soon(move |event_loop| tick(event_loop, count, sender));
            })
            .unwrap();
        assert_eq!(receiver.recv().unwrap(), 1000);
    }

    #[test]
    fn dropping_the_thread_stops_the_loop() {
        let loop_thread = LoopThread::start("test-loop").unwrap();
        let handle = loop_thread.handle().clone();
        drop(loop_thread);
        assert!(handle.call(|_| ()).is_err());
    }
}
