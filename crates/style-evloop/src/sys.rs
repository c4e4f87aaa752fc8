//! The only `unsafe` in this crate: thin wrappers over `epoll` and `eventfd`.
//!
//! Each wrapper owns its file descriptor as an [`OwnedFd`], so descriptors are closed
//! exactly once, when dropped.

#![allow(unsafe_code)]

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

/// Readiness the loop can wait for on a descriptor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Interest(u32);

impl Interest {
    /// Nothing but errors and hang-ups, which epoll always reports.
    pub(crate) const NONE: Self = Self(0);
    /// Readable (or the peer closed its side).
    pub(crate) const READ: Self = Self(libc::EPOLLIN as u32 | libc::EPOLLRDHUP as u32);
    /// Writable.
    pub(crate) const WRITE: Self = Self(libc::EPOLLOUT as u32);
}

/// What a readiness event reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Readiness(u32);

impl Readiness {
    /// Data to read, end of stream, or an error that a read will report.
    pub(crate) fn is_readable(self) -> bool {
        self.0 & (libc::EPOLLIN | libc::EPOLLRDHUP | libc::EPOLLHUP | libc::EPOLLERR) as u32 != 0
    }

    /// The connection is closed in both directions, or failed.
    pub(crate) fn is_hangup(self) -> bool {
        self.0 & (libc::EPOLLHUP | libc::EPOLLERR) as u32 != 0
    }
}

/// One readiness event: which registration, and what happened.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Event {
    pub(crate) token: u64,
    pub(crate) readiness: Readiness,
}

/// An epoll instance.
#[derive(Debug)]
pub(crate) struct Epoll {
    fd: OwnedFd,
    buffer: Vec<libc::epoll_event>,
}

impl Epoll {
    pub(crate) fn new() -> io::Result<Self> {
        // SAFETY: epoll_create1 takes no pointers; a non-negative result is a new
        // descriptor that nothing else owns.
        let fd = cvt(unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) })?;
        Ok(Self {
            // SAFETY: `fd` was just returned by epoll_create1 and is owned by no one else.
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
            buffer: Vec::with_capacity(256),
        })
    }

    /// Starts watching `fd` for `interest`, level-triggered; events carry `token`.
    pub(crate) fn add(&self, fd: RawFd, token: u64, interest: Interest) -> io::Result<()> {
        self.control(libc::EPOLL_CTL_ADD, fd, token, interest)
    }

    /// Changes what `fd` is watched for.
    pub(crate) fn modify(&self, fd: RawFd, token: u64, interest: Interest) -> io::Result<()> {
        self.control(libc::EPOLL_CTL_MOD, fd, token, interest)
    }

    /// Stops watching `fd`.
    pub(crate) fn delete(&self, fd: RawFd) -> io::Result<()> {
        self.control(libc::EPOLL_CTL_DEL, fd, 0, Interest::NONE)
    }

    fn control(
        &self,
        op: libc::c_int,
        fd: RawFd,
        token: u64,
        interest: Interest,
    ) -> io::Result<()> {
        let mut event = libc::epoll_event {
            events: interest.0,
            u64: token,
        };
        // SAFETY: `event` is a valid epoll_event for the duration of the call, and the
        // kernel validates both descriptors.
        cvt(unsafe { libc::epoll_ctl(self.fd.as_raw_fd(), op, fd, &mut event) })?;
        Ok(())
    }

    /// Waits until a registered descriptor is ready or `timeout` passes (`None`: wait
    /// forever), then returns the events. An interrupted wait returns no events.
    pub(crate) fn wait(
        &mut self,
        timeout: Option<Duration>,
    ) -> io::Result<impl Iterator<Item = Event> + '_> {
        let timeout_ms = match timeout {
            None => -1,
            // Round up, so that a timer is never woken before its deadline.
            Some(timeout) => i32::try_from(timeout.as_micros().div_ceil(1000)).unwrap_or(i32::MAX),
        };
        let capacity = i32::try_from(self.buffer.capacity()).unwrap_or(i32::MAX);
        // SAFETY: the buffer has room for `capacity` events; the kernel writes at most
        // that many and returns how many it wrote.
        let ready = unsafe {
            libc::epoll_wait(
                self.fd.as_raw_fd(),
                self.buffer.as_mut_ptr(),
                capacity,
                timeout_ms,
            )
        };
        let ready = match cvt(ready) {
            Ok(ready) => ready as usize,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => 0,
            Err(error) => return Err(error),
        };
        // SAFETY: epoll_wait initialised the first `ready` entries.
        unsafe { self.buffer.set_len(ready) };
        // Copy the fields out: `epoll_event` is packed on x86-64.
        Ok(self.buffer.iter().map(|event| Event {
            token: event.u64,
            readiness: Readiness(event.events),
        }))
    }
}

/// An `eventfd` counter: any thread can [`notify`](EventFd::notify) it to wake a loop
/// that watches it for reading.
#[derive(Debug)]
pub(crate) struct EventFd {
    file: File,
}

impl EventFd {
    pub(crate) fn new() -> io::Result<Self> {
        // SAFETY: eventfd takes no pointers; a non-negative result is a new descriptor.
        let fd = cvt(unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) })?;
        // SAFETY: `fd` was just returned by eventfd and is owned by no one else.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(Self {
            file: File::from(fd),
        })
    }

    /// Adds one to the counter, making the descriptor readable.
    pub(crate) fn notify(&self) -> io::Result<()> {
        match (&self.file).write(&1u64.to_ne_bytes()) {
            Ok(_) => Ok(()),
            // The counter is saturated: the loop has wakeups pending already.
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => Ok(()),
            Err(error) => Err(error),
        }
    }

    /// Resets the counter to zero, so the descriptor is no longer readable.
    pub(crate) fn drain(&self) -> io::Result<()> {
        let mut counter = [0u8; 8];
        match (&self.file).read(&mut counter) {
            Ok(_) => Ok(()),
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => Ok(()),
            Err(error) => Err(error),
        }
    }
}

impl AsRawFd for EventFd {
    fn as_raw_fd(&self) -> RawFd {
        self.file.as_raw_fd()
    }
}

fn cvt(result: libc::c_int) -> io::Result<libc::c_int> {
    if result < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(result)
    }
}
