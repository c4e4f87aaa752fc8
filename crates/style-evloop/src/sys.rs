//! The only `unsafe` in this crate: thin wrappers over `epoll` and `eventfd`, and the
//! non-blocking TCP connect that std does not offer.
//!
//! Each wrapper owns its file descriptor as an [`OwnedFd`] (or a std type made from
//! one), so descriptors are closed exactly once, when dropped.

#![allow(unsafe_code)]

use std::fs::File;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
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

/// Starts a TCP connect to `addr` without waiting for it: the socket comes back at once,
/// non-blocking, usually still connecting (`EINPROGRESS`). The loop watches it for
/// writability; then [`TcpStream::take_error`] (`SO_ERROR`) says whether the connect
/// failed. Errors the kernel reports at once (no route, no ports left) are returned here.
///
/// std's `TcpStream::connect` blocks the calling thread for the whole handshake, and
/// `connect_timeout` too, up to its time-out: neither may run on the loop thread.
pub(crate) fn connect_nonblocking(addr: SocketAddr) -> io::Result<TcpStream> {
    let family = match addr {
        SocketAddr::V4(_) => libc::AF_INET,
        SocketAddr::V6(_) => libc::AF_INET6,
    };
    // SAFETY: socket takes no pointers; a non-negative result is a new descriptor.
    let fd = cvt(unsafe {
        libc::socket(
            family,
            libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
        )
    })?;
    // SAFETY: `fd` was just returned by socket and is owned by no one else.
    let socket = unsafe { OwnedFd::from_raw_fd(fd) };
    let started = match addr {
        SocketAddr::V4(addr) => connect_raw(
            &socket,
            &libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: addr.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from_ne_bytes(addr.ip().octets()),
                },
                sin_zero: [0; 8],
            },
        ),
        SocketAddr::V6(addr) => connect_raw(
            &socket,
            &libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: addr.port().to_be(),
                sin6_flowinfo: addr.flowinfo(),
                sin6_addr: libc::in6_addr {
                    s6_addr: addr.ip().octets(),
                },
                sin6_scope_id: addr.scope_id(),
            },
        ),
    };
    match started {
        Ok(_) => {}
        // A non-blocking connect goes on in the background after either.
        Err(error) if matches!(error.raw_os_error(), Some(libc::EINPROGRESS | libc::EINTR)) => {}
        Err(error) => return Err(error),
    }
    Ok(TcpStream::from(socket))
}

/// libc's socket address structures that [`connect_raw`] may pass to the kernel.
trait RawSocketAddr {}
impl RawSocketAddr for libc::sockaddr_in {}
impl RawSocketAddr for libc::sockaddr_in6 {}

/// `connect(2)` with one of libc's socket address structures.
fn connect_raw<A: RawSocketAddr>(socket: &OwnedFd, addr: &A) -> io::Result<libc::c_int> {
    let len = libc::socklen_t::try_from(size_of::<A>()).map_err(io::Error::other)?;
    // SAFETY: `addr` points to a whole, initialised `sockaddr_in` or `sockaddr_in6` (the
    // only `RawSocketAddr`s) of `len` bytes, valid for the call; the kernel only reads it
    // and learns its family from its first field.
    cvt(unsafe { libc::connect(socket.as_raw_fd(), std::ptr::from_ref(addr).cast(), len) })
}

fn cvt(result: libc::c_int) -> io::Result<libc::c_int> {
    if result < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;
    use std::time::Instant;

    #[test]
    fn connects_without_blocking_over_ipv4_and_ipv6() {
        for host in ["127.0.0.1:0", "[::1]:0"] {
            // A host without IPv6 skips that half.
            let Ok(listener) = TcpListener::bind(host) else {
                continue;
            };
            let addr = listener.local_addr().unwrap();
            let mut stream = connect_nonblocking(addr).unwrap();
            let (accepted, _) = listener.accept().unwrap();
            assert_eq!(stream.take_error().unwrap().map(|e| e.kind()), None);
            assert_eq!(stream.peer_addr().unwrap(), addr);
            assert_eq!(accepted.peer_addr().unwrap(), stream.local_addr().unwrap());
            // Non-blocking: nothing to read is `WouldBlock`, not a wait.
            let error = stream.read(&mut [0u8; 1]).unwrap_err();
            assert_eq!(error.kind(), io::ErrorKind::WouldBlock);
        }
    }

    #[test]
    fn a_refused_connect_is_reported_by_so_error_or_at_once() {
        let addr = TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .unwrap();
        let stream = match connect_nonblocking(addr) {
            Ok(stream) => stream,
            Err(error) => {
                assert_eq!(error.kind(), io::ErrorKind::ConnectionRefused);
                return;
            }
        };
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if let Some(error) = stream.take_error().unwrap() {
                assert_eq!(error.kind(), io::ErrorKind::ConnectionRefused);
                return;
            }
            assert!(Instant::now() < deadline, "the refusal never came");
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}
