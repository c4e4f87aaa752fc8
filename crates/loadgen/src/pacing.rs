//! Open-loop pacing: waking a connection at its request's due time, to the microsecond.
//!
//! tokio's timer wheel has a 1 ms tick and rounds every deadline up to it, so
//! `tokio::time::sleep_until(due)` sends a request up to a millisecond after it was due.
//! An open loop times each request from its due time, so that lateness lands in every
//! latency the client reports: a server answering in 30 µs read as 1.1 ms at p50, and no
//! server could show a p99 under 1 ms at any load. A timerfd is the kernel's
//! high-resolution timer, and registered with tokio's reactor it wakes the task within
//! microseconds of the instant it was set for.
//!
//! A timerfd is one file descriptor per connection, so only open-loop runs pace
//! precisely (a closed loop never sleeps before a send), and a connection that cannot
//! get one (out of descriptors) falls back to tokio's timer. Either way the run records
//! each request's *send lateness*, so a report shows how late its client was rather than
//! assuming it was on time.

use std::io;
use std::os::fd::{AsFd, AsRawFd, RawFd};

use nix::sys::time::TimeSpec;
use nix::sys::timerfd::{ClockId, Expiration, TimerFd, TimerFlags, TimerSetTimeFlags};
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;
use tokio::time::Instant;

/// How a connection waits for its next request's due time.
pub(crate) enum Pacer {
    /// A timerfd of its own, on `CLOCK_MONOTONIC` (the clock `Instant` reads).
    Precise(AsyncFd<Timer>),
    /// tokio's timer: late by up to its 1 ms tick.
    Coarse,
}

/// A non-blocking timerfd that tokio's reactor can watch.
pub(crate) struct Timer(TimerFd);

impl AsRawFd for Timer {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_fd().as_raw_fd()
    }
}

impl Pacer {
    /// A precise pacer, or a coarse one when no timerfd can be had (out of descriptors,
    /// or not on Linux's reactor). Must be called inside a tokio runtime with I/O
    /// enabled.
    pub(crate) fn precise() -> Self {
        let timer = TimerFd::new(
            ClockId::CLOCK_MONOTONIC,
            TimerFlags::TFD_NONBLOCK | TimerFlags::TFD_CLOEXEC,
        );
        let Ok(timer) = timer else {
            return Self::Coarse;
        };
        // SAFETY: `Timer` owns its descriptor (a `TimerFd` holds an `OwnedFd` it never
        // gives away or replaces), so the descriptor stays open, and is the one
        // `as_raw_fd` returns, for as long as the `AsyncFd` that owns the `Timer` lives.
        #[allow(unsafe_code)]
        let registered =
            unsafe { AsyncFd::register_with_interest(Timer(timer), Interest::READABLE) };
        match registered {
            Ok(fd) => Self::Precise(fd),
            Err(_) => Self::Coarse,
        }
    }

    /// Whether this pacer wakes at the microsecond rather than at tokio's tick.
    #[cfg(test)]
    pub(crate) fn is_precise(&self) -> bool {
        matches!(self, Self::Precise(_))
    }

    /// Returns at `due` or as soon after as the kernel wakes the thread; never before.
    pub(crate) async fn sleep_until(&self, due: Instant) {
        let Self::Precise(timer) = self else {
            tokio::time::sleep_until(due).await;
            return;
        };
        loop {
            let now = Instant::now();
            if now >= due {
                return;
            }
            // Relative to `now`, which is at most what the clock reads when the timer is
            // set: the timer fires at `due` or a little after, never before.
            let arm = timer.get_ref().0.set(
                Expiration::OneShot(TimeSpec::from_duration(due - now)),
                TimerSetTimeFlags::empty(),
            );
            if arm.is_err() {
                tokio::time::sleep_until(due).await;
                return;
            }
            if wait_for_expiry(timer).await.is_err() {
                tokio::time::sleep_until(due).await;
                return;
            }
        }
    }
}

/// Waits until the timer has expired at least once since it was set, and consumes the
/// expiry.
async fn wait_for_expiry(timer: &AsyncFd<Timer>) -> io::Result<()> {
    loop {
        let mut ready = timer.readable().await?;
        // Readiness tokio remembers from an earlier expiry reads as `WouldBlock` here
        // (setting the timer resets its count) and is cleared by `try_io`.
        match ready.try_io(|timer| {
            let mut expirations = [0u8; 8];
            nix::unistd::read(timer.get_ref().0.as_fd(), &mut expirations).map_err(io::Error::from)
        }) {
            Ok(read) => return read.map(drop),
            Err(_would_block) => continue,
        }
    }
}

/// Lowers the calling thread's timer slack to 1 ns, so that the kernel does not defer
/// its wake-ups (the default slack is 50 µs) to batch them with others: a client thread
/// that paces requests wants each wake-up at the instant it asked for. Best effort.
pub(crate) fn tighten_timer_slack() {
    let _ = nix::sys::prctl::set_timerslack(1);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_precise_pacer_never_wakes_before_the_due_time() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        runtime.block_on(async {
            let pacer = Pacer::precise();
            assert!(pacer.is_precise(), "a timerfd is available in tests");
            let start = Instant::now();
            for step in 1..=50u32 {
                let due = start + Duration::from_micros(200) * step;
                pacer.sleep_until(due).await;
                assert!(Instant::now() >= due, "woke before due at step {step}");
            }
            // A due time already past returns at once, and the pacer is still usable.
            pacer.sleep_until(start).await;
            let due = Instant::now() + Duration::from_millis(2);
            pacer.sleep_until(due).await;
            assert!(Instant::now() >= due);
        });
    }

    #[test]
    fn a_coarse_pacer_never_wakes_before_the_due_time_either() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        runtime.block_on(async {
            let due = Instant::now() + Duration::from_millis(3);
            Pacer::Coarse.sleep_until(due).await;
            assert!(Instant::now() >= due);
        });
    }
}
