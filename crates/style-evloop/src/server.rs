//! The loop's server: non-blocking sockets watched by epoll, one protocol
//! [`Session`] per connection, all on the loop thread.
//!
//! A connection is a small state machine driven by readiness: read what arrived, answer
//! every complete request, write the replies, and wait for the next event. Inline, `fib`
//! runs right there, on the loop thread, so a long request stalls every connection (the
//! seed's lesson). Offloaded, the request goes to the [`BlockingPool`] and the
//! connection waits, without reading, until the answer is posted back to the loop
//! through its eventfd.
//!
//! A `wait N` request is answered by the backend, and in both variants the backend's
//! I/O is the loop's own, as in Beazley's select loop: each client connection holds one
//! backend connection ([`BackendConnection`]), opened on its first `wait` with a
//! non-blocking connect ([`sys::connect_nonblocking`]), watched for writability until
//! connected (`SO_ERROR` says whether it failed), then the request `N\n` is written and
//! the socket watched for reading, what arrives fed to a [`ReplyParser`] until it has a
//! verdict. The backend socket has a registration of its own, whose handler finds the
//! client connection by its token; while the backend works, the client connection reads
//! nothing more (exactly as while `computing`) and every other connection is served.
//! The backend connection is kept for the next `wait` while it works, and dropped —
//! deregistered and closed — after any failure, so the next `wait` opens a fresh one,
//! and whenever its client connection closes.
//!
//! The time-outs ([`BACKEND_CONNECT_TIMEOUT`], [`BACKEND_REPLY_TIMEOUT`]) are the loop's
//! timers. A connection keeps one deadline for its request's current step and at most
//! one live timer ([`BackendTimer`]): a timer that fires finds the request answered (and
//! does nothing), or a later request's deadline (and sets itself again for it), or the
//! deadline passed (`error: backend: timed out`, for a connect as for a reply). One
//! timer per request would leave a reply time-out's worth of dead timers in the heap at
//! high request rates, since the loop's timers cannot be cancelled.

use std::cell::RefCell;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::rc::{Rc, Weak};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use workloads::backend::{
    BACKEND_CONNECT_TIMEOUT, BACKEND_REPLY_TIMEOUT, BackendError, MAX_BACKEND_REPLY_BYTES,
    ReplyParser, backend_request,
};
use workloads::protocol::{Action, Session};
use workloads::server::{ServeConfig, ServerHandle};

use crate::blocking_pool::BlockingPool;
use crate::event_loop::{EventLoop, Handler, LoopHandle, Token, TokenMap, Wake};
use crate::sys::{self, Interest, Readiness};

/// Stop reading from a connection whose client leaves this many reply bytes unread.
const OUTPUT_HIGH_WATER: usize = 64 * 1024;

/// How long the backend may take to connect, and to answer once asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BackendTimeouts {
    pub(crate) connect: Duration,
    pub(crate) reply: Duration,
}

impl BackendTimeouts {
    /// The contract's time-outs, which every server uses.
    pub(crate) const CONTRACT: Self = Self {
        connect: BACKEND_CONNECT_TIMEOUT,
        reply: BACKEND_REPLY_TIMEOUT,
    };
}

/// Starts serving `listener` on the loop behind `loop_handle`; `fib` runs inline, or on
/// `offload` when given.
pub(crate) fn start(
    loop_handle: &LoopHandle,
    listener: TcpListener,
    config: ServeConfig,
    offload: Option<Arc<BlockingPool>>,
) -> io::Result<ServerHandle> {
    start_with(
        loop_handle,
        listener,
        config,
        offload,
        BackendTimeouts::CONTRACT,
    )
}

/// [`start`], with the backend's time-outs given (the tests shorten them).
pub(crate) fn start_with(
    loop_handle: &LoopHandle,
    listener: TcpListener,
    config: ServeConfig,
    offload: Option<Arc<BlockingPool>>,
    timeouts: BackendTimeouts,
) -> io::Result<ServerHandle> {
    listener.set_nonblocking(true)?;
    let local_addr = listener.local_addr()?;
    let offload = offload.map(|pool| Offload {
        pool,
        loop_handle: loop_handle.clone(),
    });
    let (registered, token) = mpsc::channel();
    loop_handle.call(move |event_loop| {
        let server = Rc::new_cyclic(|server| {
            RefCell::new(Server {
                listener,
                connections: TokenMap::default(),
                config,
                offload,
                backends: Backends {
                    addr: config.backend,
                    timeouts,
                    server: Weak::clone(server),
                },
            })
        });
        let fd = server.borrow().listener.as_raw_fd();
        let handler: Handler = Rc::new(move |event_loop, token, wake| match wake {
            Wake::Io(_) => accept_connections(&server, event_loop, token),
            // The only message a listener gets is the stop signal.
            Wake::Message(_) => close_everything(&server, event_loop, token),
        });
        let _ = registered.send(event_loop.register(fd, Interest::READ, handler));
    })?;
    let listener_token = token
        .recv()
        .map_err(|_| io::Error::other("the event loop stopped while starting the server"))??;
    let loop_handle = loop_handle.clone();
    Ok(ServerHandle::new(local_addr, move || {
        let (stopped, wait) = mpsc::channel();
        let stop = loop_handle.call(move |event_loop| {
            event_loop.deliver(listener_token, Wake::Message(0));
            let _ = stopped.send(());
        });
        // If the loop has stopped already, so has the server.
        if stop.is_ok() {
            let _ = wait.recv();
        }
    }))
}

/// EMFILE, ENFILE, ENOBUFS, ENOMEM: the process or the system is out of something that
/// only time (connections closing) gives back.
fn is_out_of_resources(error: &io::Error) -> bool {
    matches!(
        error.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
    )
}

/// Stops watching the listener for [`ACCEPT_BACK_OFF`], then watches it again, unless
/// the server has gone (its listener closed) or stopped (deregistered: the `modify`
/// then fails, harmlessly, since the descriptor is still the server's own).
fn pause_accepting(server: &Rc<RefCell<Server>>, event_loop: &mut EventLoop, token: Token) {
    let fd = server.borrow().listener.as_raw_fd();
    if event_loop.reregister(fd, token, Interest::NONE).is_err() {
        return;
    }
    let server = Rc::downgrade(server);
    event_loop.call_later(ACCEPT_BACK_OFF, move |event_loop| {
        // The upgrade keeps the listener, and so `fd`, open while it is re-watched.
        if let Some(server) = server.upgrade() {
            let _ = event_loop.reregister(fd, token, Interest::READ);
            drop(server);
        }
    });
}

/// Where offloaded requests go, and how their answers come back.
#[derive(Debug)]
struct Offload {
    pool: Arc<BlockingPool>,
    loop_handle: LoopHandle,
}

/// What every client connection needs to ask the backend.
struct Backends {
    /// Where the backend is; `None`: `wait` requests are answered
    /// [`BackendError::NotConfigured`].
    addr: Option<SocketAddr>,
    timeouts: BackendTimeouts,
    /// The server itself, for the handlers and timers of backend connections: weak, so
    /// that a timer left in the heap does not keep a stopped server's listener open.
    server: Weak<RefCell<Server>>,
}

struct Server {
    listener: TcpListener,
    connections: TokenMap<Connection>,
    config: ServeConfig,
    offload: Option<Offload>,
    backends: Backends,
}

struct Connection {
    stream: TcpStream,
    session: Session,
    /// What the connection is registered for now, to skip needless `epoll_ctl`s.
    interest: Interest,
    /// An offloaded request is being computed: read nothing more until it is answered.
    computing: bool,
    /// This client connection's backend connection: opened on its first `wait`, kept
    /// while it works, dropped after a failure. A request is with the backend while its
    /// exchange is not [`Exchange::Idle`]; then the connection reads nothing more.
    backend: Option<BackendConnection>,
    /// The time-out of the request with the backend.
    backend_timer: BackendTimer,
    /// The session asked to close: close once the output is written.
    closing: bool,
}

impl Connection {
    /// A request is being computed or is with the backend: its answer comes first.
    fn waiting(&self) -> bool {
        self.computing || self.asking()
    }

    fn asking(&self) -> bool {
        self.backend
            .as_ref()
            .is_some_and(|backend| !matches!(backend.exchange, Exchange::Idle))
    }

    /// Asks the backend for `fib(n)`: the verdict, if there is one at once (no backend
    /// configured, a connect or a write that failed outright), or `None`: the answer
    /// comes through the backend connection's handler or its timer.
    fn ask_backend(
        &mut self,
        event_loop: &mut EventLoop,
        token: Token,
        n: u32,
        backends: &Backends,
    ) -> Option<Result<u64, BackendError>> {
        let Some(addr) = backends.addr else {
            return Some(Err(BackendError::NotConfigured));
        };
        let now = Instant::now();
        let deadline = match &mut self.backend {
            // Kept from an earlier `wait`, connected and idle: ask at once.
            Some(backend) => {
                let sent = backend
                    .send(n)
                    .and_then(|()| backend.sync_interest(event_loop));
                if let Err(error) = sent {
                    self.drop_backend(event_loop);
                    return Some(Err(error));
                }
                now + backends.timeouts.reply
            }
            None => match BackendConnection::open(addr, n, event_loop, token, &backends.server) {
                Ok(backend) => {
                    self.backend = Some(backend);
                    now + backends.timeouts.connect
                }
                Err(error) => return Some(Err(error)),
            },
        };
        self.backend_timer
            .set(event_loop, token, deadline, &backends.server);
        None
    }

    /// Deregisters and closes the backend connection, if there is one.
    fn drop_backend(&mut self, event_loop: &mut EventLoop) {
        if let Some(backend) = self.backend.take() {
            event_loop.deregister(backend.stream.as_raw_fd(), backend.token);
        }
    }

    /// Deregisters the connection and its backend connection; both close as it drops.
    fn release(mut self, event_loop: &mut EventLoop, token: Token) {
        self.drop_backend(event_loop);
        event_loop.deregister(self.stream.as_raw_fd(), token);
    }
}

/// One client connection's connection to the backend, registered with the loop under a
/// token of its own.
struct BackendConnection {
    stream: TcpStream,
    token: Token,
    /// What it is registered for now.
    interest: Interest,
    exchange: Exchange,
}

/// Where a backend connection is in its exchange.
enum Exchange {
    /// The connect is under way; then the request for `fib(n)` goes out.
    Connecting(u32),
    /// The request is going out; `sent` bytes of it are written.
    Sending { request: Vec<u8>, sent: usize },
    /// The request is out; the reply so far.
    Receiving(ReplyParser),
    /// Connected, nothing asked: kept for the next `wait`, watched for reading, since
    /// anything it reports now (bytes not asked for, the backend closing) makes it
    /// unusable.
    Idle,
}

/// What a backend connection's readiness came to.
enum Step {
    /// Nothing decided yet.
    Pending,
    /// Connected; the request is going out, and its reply's time-out starts.
    Connected,
    /// The verdict on the request.
    Done(Result<u64, BackendError>),
    /// An idle connection broke or spoke unasked: drop it, nobody waits on it.
    Unusable,
}

impl BackendConnection {
    /// Starts connecting to `addr` without blocking the loop, to ask for `fib(n)` once
    /// connected, and registers for writability under a token whose handler routes the
    /// readiness to the client connection `client_token`.
    fn open(
        addr: SocketAddr,
        n: u32,
        event_loop: &mut EventLoop,
        client_token: Token,
        server: &Weak<RefCell<Server>>,
    ) -> Result<Self, BackendError> {
        let cannot_connect = |error: io::Error| BackendError::Connect(error.to_string());
        let stream = sys::connect_nonblocking(addr).map_err(cannot_connect)?;
        // Requests are small and answered one at a time: don't let Nagle hold them.
        let _ = stream.set_nodelay(true);
        let server = Weak::clone(server);
        let handler: Handler = Rc::new(move |event_loop, backend_token, wake| {
            // Nothing is ever posted to a backend connection: only readiness matters.
            if let (Wake::Io(readiness), Some(server)) = (wake, server.upgrade()) {
                server.borrow_mut().on_backend_ready(
                    event_loop,
                    client_token,
                    backend_token,
                    readiness,
                );
            }
        });
        let token = event_loop
            .register(stream.as_raw_fd(), Interest::WRITE, handler)
            .map_err(cannot_connect)?;
        Ok(Self {
            stream,
            token,
            interest: Interest::WRITE,
            exchange: Exchange::Connecting(n),
        })
    }

    /// Starts sending the request for `fib(n)` on the connected socket.
    fn send(&mut self, n: u32) -> Result<(), BackendError> {
        self.exchange = Exchange::Sending {
            request: backend_request(n),
            sent: 0,
        };
        self.flush()
    }

    /// Writes what the socket takes of the request; once it is all out, waits for the
    /// reply.
    fn flush(&mut self) -> Result<(), BackendError> {
        let Exchange::Sending { request, sent } = &mut self.exchange else {
            return Ok(());
        };
        while *sent < request.len() {
            match self.stream.write(&request[*sent..]) {
                Ok(0) => return Err(BackendError::Lost("closed by the backend".into())),
                Ok(written) => *sent += written,
                Err(error) if is_retry(&error) => return Ok(()),
                Err(error) => return Err(BackendError::Lost(error.to_string())),
            }
        }
        self.exchange = Exchange::Receiving(ReplyParser::default());
        Ok(())
    }

    /// Registers for what the exchange waits on next, if that changed.
    fn sync_interest(&mut self, event_loop: &mut EventLoop) -> Result<(), BackendError> {
        let interest = match self.exchange {
            Exchange::Connecting(_) | Exchange::Sending { .. } => Interest::WRITE,
            Exchange::Receiving(_) | Exchange::Idle => Interest::READ,
        };
        if interest != self.interest {
            event_loop
                .reregister(self.stream.as_raw_fd(), self.token, interest)
                .map_err(|error| BackendError::Lost(error.to_string()))?;
            self.interest = interest;
        }
        Ok(())
    }

    /// Takes the exchange as far as the socket's readiness allows.
    fn on_ready(&mut self, readiness: Readiness) -> Step {
        match &mut self.exchange {
            Exchange::Connecting(n) => {
                let n = *n;
                // Writable, or failed: SO_ERROR says which.
                let failed = match self.stream.take_error() {
                    Ok(None) if readiness.is_hangup() => Some("closed while connecting".into()),
                    Ok(None) => None,
                    Ok(Some(error)) | Err(error) => Some(error.to_string()),
                };
                if let Some(why) = failed {
                    return Step::Done(Err(BackendError::Connect(why)));
                }
                match self.send(n) {
                    Ok(()) => Step::Connected,
                    Err(error) => Step::Done(Err(error)),
                }
            }
            Exchange::Sending { .. } => match self.flush() {
                Ok(()) => Step::Pending,
                Err(error) => Step::Done(Err(error)),
            },
            Exchange::Receiving(parser) => {
                let mut buffer = [0u8; MAX_BACKEND_REPLY_BYTES];
                let verdict = match self.stream.read(&mut buffer) {
                    Ok(0) => Err(BackendError::Lost("closed by the backend".into())),
                    // The parser bounds the reply: an endless line is a bad reply.
                    Ok(read) => match parser.push(&buffer[..read]) {
                        Some(verdict) => verdict,
                        None => return Step::Pending,
                    },
                    Err(error) if is_retry(&error) => return Step::Pending,
                    Err(error) => Err(BackendError::Lost(error.to_string())),
                };
                if verdict.is_ok() {
                    self.exchange = Exchange::Idle;
                }
                Step::Done(verdict)
            }
            Exchange::Idle => Step::Unusable,
        }
    }
}

/// The time-out of a client connection's request to the backend: the deadline of the
/// request's current step, and at most one live timer on the loop for it.
///
/// The loop's timers cannot be cancelled, so a timer is not set per request: the live
/// timer, when it fires, finds the request answered (nothing to do), a later request
/// with a later deadline (it sets itself again for that), or its deadline passed.
/// Only a deadline earlier than the live timer's (a connect after a failed exchange)
/// sets a second timer, and supersedes the first: a timer of an older `generation`
/// does nothing when it fires.
#[derive(Debug, Default)]
struct BackendTimer {
    /// When the request with the backend times out; `None`: no request is.
    deadline: Option<Instant>,
    /// When the live timer fires, if one is set.
    armed: Option<Instant>,
    /// The live timer's generation.
    generation: u64,
}

impl BackendTimer {
    /// Makes the request with the backend time out at `deadline`.
    fn set(
        &mut self,
        event_loop: &mut EventLoop,
        client_token: Token,
        deadline: Instant,
        server: &Weak<RefCell<Server>>,
    ) {
        self.deadline = Some(deadline);
        if self.armed.is_some_and(|due| due <= deadline) {
            // The live timer fires first and then sets itself again for `deadline`.
            return;
        }
        self.generation += 1;
        self.armed = Some(deadline);
        let (server, generation) = (Weak::clone(server), self.generation);
        let delay = deadline.saturating_duration_since(Instant::now());
        event_loop.call_later(delay, move |event_loop| {
            if let Some(server) = server.upgrade() {
                server
                    .borrow_mut()
                    .on_backend_timer(event_loop, client_token, generation);
            }
        });
    }

    /// The request was answered: a timer that fires now does nothing.
    fn clear(&mut self) {
        self.deadline = None;
    }
}

/// How long the listener is left unwatched after the process ran out of descriptors or
/// memory: the listener is level-triggered, so watching it would wake the loop again at
/// once, for an accept that fails the same way, and spin.
const ACCEPT_BACK_OFF: Duration = Duration::from_millis(10);

fn accept_connections(server: &Rc<RefCell<Server>>, event_loop: &mut EventLoop, token: Token) {
    loop {
        let accepted = server.borrow().listener.accept();
        let stream = match accepted {
            Ok((stream, _peer)) => stream,
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => return,
            Err(error) if is_out_of_resources(&error) => {
                return pause_accepting(server, event_loop, token);
            }
            Err(error) if workloads::server::is_transient_accept_error(&error) => return,
            Err(error) => return eprintln!("accept failed: {error}"),
        };
        if stream.set_nonblocking(true).is_err() {
            continue;
        }
        let _ = stream.set_nodelay(true);
        let fd = stream.as_raw_fd();
        let connection_server = Rc::clone(server);
        let handler: Handler = Rc::new(move |event_loop, token, wake| {
            let mut server = connection_server.borrow_mut();
            match wake {
                Wake::Io(readiness) => server.on_ready(event_loop, token, readiness),
                Wake::Message(answer) => server.on_answer(event_loop, token, answer),
            }
        });
        match event_loop.register(fd, Interest::READ, handler) {
            Ok(token) => {
                let config = server.borrow().config;
                server.borrow_mut().connections.insert(
                    token,
                    Connection {
                        stream,
                        session: config.session(),
                        interest: Interest::READ,
                        computing: false,
                        backend: None,
                        backend_timer: BackendTimer::default(),
                        closing: false,
                    },
                );
            }
            Err(error) => eprintln!("cannot watch a new connection: {error}"),
        }
    }
}

fn close_everything(
    server: &Rc<RefCell<Server>>,
    event_loop: &mut EventLoop,
    listener_token: Token,
) {
    let mut server = server.borrow_mut();
    event_loop.deregister(server.listener.as_raw_fd(), listener_token);
    for (token, connection) in server.connections.drain() {
        connection.release(event_loop, token);
    }
}

impl Server {
    fn on_ready(&mut self, event_loop: &mut EventLoop, token: Token, readiness: Readiness) {
        let Some(connection) = self.connections.get_mut(&token) else {
            return;
        };
        if readiness.is_hangup() {
            // Both directions are gone (or the socket failed): nothing can be answered,
            // and a level-triggered hang-up would otherwise fire on every turn.
            return self.close(event_loop, token);
        }
        if readiness.is_readable() && connection.interest == Interest::READ {
            let mut buffer = [0u8; 4096];
            match connection.stream.read(&mut buffer) {
                Ok(0) => return self.close(event_loop, token),
                Ok(read) => connection.session.receive(&buffer[..read]),
                Err(error) if is_retry(&error) => {}
                Err(_) => return self.close(event_loop, token),
            }
        }
        self.advance(event_loop, token);
    }

    fn on_answer(&mut self, event_loop: &mut EventLoop, token: Token, answer: u64) {
        let Some(connection) = self.connections.get_mut(&token) else {
            // The client left while its request was being computed.
            return;
        };
        connection.computing = false;
        connection.session.answer(answer);
        self.advance(event_loop, token);
    }

    /// The backend connection `backend_token` of the client connection `client_token`
    /// is ready.
    fn on_backend_ready(
        &mut self,
        event_loop: &mut EventLoop,
        client_token: Token,
        backend_token: Token,
        readiness: Readiness,
    ) {
        let Some(connection) = self.connections.get_mut(&client_token) else {
            return;
        };
        let Some(backend) = connection
            .backend
            .as_mut()
            .filter(|backend| backend.token == backend_token)
        else {
            return;
        };
        match backend.on_ready(readiness) {
            Step::Pending => {}
            Step::Connected => {
                let deadline = Instant::now() + self.backends.timeouts.reply;
                connection.backend_timer.set(
                    event_loop,
                    client_token,
                    deadline,
                    &self.backends.server,
                );
            }
            Step::Done(verdict) => return self.answer_backend(event_loop, client_token, verdict),
            Step::Unusable => return connection.drop_backend(event_loop),
        }
        if let Err(error) = backend.sync_interest(event_loop) {
            self.answer_backend(event_loop, client_token, Err(error));
        }
    }

    /// A backend time-out of the client connection `client_token` fired.
    fn on_backend_timer(
        &mut self,
        event_loop: &mut EventLoop,
        client_token: Token,
        generation: u64,
    ) {
        let Some(connection) = self.connections.get_mut(&client_token) else {
            // The client left: its backend connection went with it.
            return;
        };
        let timer = &mut connection.backend_timer;
        if timer.generation != generation {
            // Superseded by an earlier timer, which watches the deadline now.
            return;
        }
        timer.armed = None;
        match timer.deadline {
            // Answered already: a late timer does nothing.
            None => {}
            Some(deadline) if Instant::now() >= deadline => {
                self.answer_backend(event_loop, client_token, Err(BackendError::TimedOut));
            }
            // A later request's deadline: watch that one.
            Some(deadline) => timer.set(event_loop, client_token, deadline, &self.backends.server),
        }
    }

    /// Relays the backend's verdict to the client connection `token`, drops the backend
    /// connection after a failure, and goes on with the connection's requests.
    fn answer_backend(
        &mut self,
        event_loop: &mut EventLoop,
        token: Token,
        verdict: Result<u64, BackendError>,
    ) {
        let Some(connection) = self.connections.get_mut(&token) else {
            return;
        };
        connection.backend_timer.clear();
        if verdict.is_err() {
            connection.drop_backend(event_loop);
        }
        connection.session.answer_backend(verdict);
        self.advance(event_loop, token);
    }

    /// Answers what can be answered, writes what can be written, and registers for
    /// whatever the connection waits on next.
    fn advance(&mut self, event_loop: &mut EventLoop, token: Token) {
        let Some(connection) = self.connections.get_mut(&token) else {
            return;
        };
        loop {
            let mut output_full = false;
            while !connection.waiting() && !connection.closing {
                if connection.session.output().len() >= OUTPUT_HIGH_WATER {
                    output_full = true;
                    break;
                }
                match connection.session.next_action() {
                    Action::Compute(n) => match &self.offload {
                        None => connection.session.answer(workloads::fib(n)),
                        Some(offload) => {
                            connection.computing = true;
                            let loop_handle = offload.loop_handle.clone();
                            offload.pool.execute(move || {
                                // Fails only if the loop has stopped: nobody to answer.
                                let _ = loop_handle.post(token, workloads::fib(n));
                            });
                        }
                    },
                    Action::AskBackend(n) => {
                        let backends = &self.backends;
                        if let Some(verdict) =
                            connection.ask_backend(event_loop, token, n, backends)
                        {
                            connection.session.answer_backend(verdict);
                        }
                    }
                    Action::Read => break,
                    Action::Close => connection.closing = true,
                }
            }
            while connection.session.has_output() {
                match connection.stream.write(connection.session.output()) {
                    Ok(written) => connection.session.consume_output(written),
                    Err(error) if is_retry(&error) => break,
                    Err(_) => return self.close(event_loop, token),
                }
            }
            // Requests left unanswered for lack of room can go on once it is written.
            if !output_full || connection.session.has_output() {
                break;
            }
        }
        let interest = if connection.session.has_output() {
            Interest::WRITE
        } else if connection.closing {
            return self.close(event_loop, token);
        } else if connection.waiting() {
            Interest::NONE
        } else {
            Interest::READ
        };
        if interest != connection.interest {
            let fd = connection.stream.as_raw_fd();
            connection.interest = interest;
            if event_loop.reregister(fd, token, interest).is_err() {
                self.close(event_loop, token);
            }
        }
    }

    fn close(&mut self, event_loop: &mut EventLoop, token: Token) {
        if let Some(connection) = self.connections.remove(&token) {
            connection.release(event_loop, token);
        }
    }
}

fn is_retry(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
    )
}

#[cfg(test)]
#[path = "../tests/common/stand_in.rs"]
mod stand_in;

#[cfg(test)]
mod tests {
    use super::stand_in::{Behaviour, Client, StandIn};
    use super::*;
    use crate::event_loop::LoopThread;

    /// A server on a loop of its own with the given time-outs, inline and offloaded;
    /// the handle is dropped (the server stopped) before the loop.
    fn with_servers(
        backend: SocketAddr,
        timeouts: BackendTimeouts,
        check: impl Fn(&mut dyn FnMut() -> Client),
    ) {
        for offload in [None, Some(Arc::new(BlockingPool::new()))] {
            let loop_thread = LoopThread::start("test-loop").unwrap();
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let config = ServeConfig {
                backend: Some(backend),
                ..ServeConfig::default()
            };
            let handle =
                start_with(loop_thread.handle(), listener, config, offload, timeouts).unwrap();
            let addr = handle.local_addr();
            check(&mut || Client::connect(addr));
            drop(handle);
        }
    }

    fn timeouts(connect: Duration, reply: Duration) -> BackendTimeouts {
        BackendTimeouts { connect, reply }
    }

    #[test]
    fn a_silent_backend_times_out_and_the_connection_goes_on() {
        let backend = StandIn::start(Behaviour::Answer {
            delay: Duration::ZERO,
            answers: 0,
        });
        let reply_timeout = Duration::from_millis(200);
        with_servers(
            backend.addr(),
            timeouts(BACKEND_CONNECT_TIMEOUT, reply_timeout),
            |client| {
                let mut client = client();
                let start = Instant::now();
                assert_eq!(client.ask("wait 3\n"), "error: backend: timed out");
                assert!(start.elapsed() >= reply_timeout);
                assert_eq!(client.ask("7\n"), "13");
                let accepted = backend.accepted();
                assert_eq!(client.ask("wait 3\n"), "error: backend: timed out");
                // The timed-out connection was dropped: the next wait opened another.
                assert_eq!(backend.accepted(), accepted + 1);
            },
        );
    }

    #[test]
    fn a_connect_that_outlasts_its_time_out_times_out() {
        let backend = StandIn::start(Behaviour::answer_after(Duration::ZERO));
        // No connect completes within no time: the timer fires before the loop polls
        // the connecting socket again.
        with_servers(
            backend.addr(),
            timeouts(Duration::ZERO, BACKEND_REPLY_TIMEOUT),
            |client| {
                let mut client = client();
                assert_eq!(client.ask("wait 3\n"), "error: backend: timed out");
                assert_eq!(client.ask("7\n"), "13");
            },
        );
    }

    #[test]
    fn late_timers_do_nothing_and_a_later_silence_still_times_out() {
        const ANSWERS: usize = 5;
        let delay = Duration::from_millis(120);
        let reply_timeout = Duration::from_millis(300);
        let backend = StandIn::start(Behaviour::Answer {
            delay,
            answers: ANSWERS,
        });
        with_servers(
            backend.addr(),
            timeouts(BACKEND_CONNECT_TIMEOUT, reply_timeout),
            |client| {
                let mut client = client();
                // Each wait is well within its time-out, all of them together are not:
                // the timer set for the first fires while a later one is pending.
                let start = Instant::now();
                for n in 0..ANSWERS {
                    let n = u32::try_from(n).unwrap();
                    let fib = workloads::fib_reference(n).unwrap();
                    assert_eq!(client.ask(&format!("wait {n}\n")), fib.to_string());
                }
                assert!(start.elapsed() > reply_timeout);
                // The backend falls silent on the same kept connection.
                let start = Instant::now();
                assert_eq!(client.ask("wait 9\n"), "error: backend: timed out");
                let elapsed = start.elapsed();
                assert!(
                    elapsed >= reply_timeout && elapsed < reply_timeout * 5,
                    "timed out after {elapsed:?}"
                );
                assert_eq!(client.ask("7\n"), "13");
            },
        );
        // Two servers, and one backend connection each before the silence.
        assert_eq!(backend.accepted(), 2);
    }

    #[test]
    fn stopping_the_server_closes_waiting_connections() {
        let backend = StandIn::start(Behaviour::answer_after(Duration::from_millis(500)));
        let loop_thread = LoopThread::start("test-loop").unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let config = ServeConfig {
            backend: Some(backend.addr()),
            ..ServeConfig::default()
        };
        let handle = start(loop_thread.handle(), listener, config, None).unwrap();
        let mut client = Client::connect(handle.local_addr());
        client.send(b"wait 3\n");
        let deadline = Instant::now() + Duration::from_secs(5);
        while backend.accepted() == 0 {
            assert!(
                Instant::now() < deadline,
                "the wait never reached the backend"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        drop(handle);
        // The client sees its connection closed, not an answer.
        let mut rest = Vec::new();
        let read = client.read_to_end(&mut rest);
        assert!(matches!(read, Ok(0)) || read.is_err(), "{read:?}: {rest:?}");
    }
}
