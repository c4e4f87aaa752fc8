//! The loop's server: non-blocking sockets watched by epoll, one protocol
//! [`Session`] per connection, all on the loop thread.
//!
//! A connection is a small state machine driven by readiness: read what arrived, answer
//! every complete request, write the replies, and wait for the next event. Inline, `fib`
//! runs right there, on the loop thread, so a long request stalls every connection (the
//! seed's lesson). Offloaded, the request goes to the [`BlockingPool`] and the connection waits, without reading, until the
//! answer is posted back to the loop through its eventfd.

use std::cell::RefCell;
use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::rc::Rc;
use std::sync::{Arc, mpsc};
use std::time::Duration;

use workloads::protocol::{Action, Session};
use workloads::server::{ServeConfig, ServerHandle};

use crate::blocking_pool::BlockingPool;
use crate::event_loop::{EventLoop, Handler, LoopHandle, Token, TokenMap, Wake};
use crate::sys::{Interest, Readiness};

/// Stop reading from a connection whose client leaves this many reply bytes unread.
const OUTPUT_HIGH_WATER: usize = 64 * 1024;

/// Starts serving `listener` on the loop behind `loop_handle`; `fib` runs inline, or on
/// `offload` when given.
pub(crate) fn start(
    loop_handle: &LoopHandle,
    listener: TcpListener,
    config: ServeConfig,
    offload: Option<Arc<BlockingPool>>,
) -> io::Result<ServerHandle> {
    listener.set_nonblocking(true)?;
    let local_addr = listener.local_addr()?;
    let offload = offload.map(|pool| Offload {
        pool,
        loop_handle: loop_handle.clone(),
    });
    let (registered, token) = mpsc::channel();
    loop_handle.call(move |event_loop| {
        let server = Rc::new(RefCell::new(Server {
            listener,
            connections: TokenMap::default(),
            config,
            offload,
        }));
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

struct Server {
    listener: TcpListener,
    connections: TokenMap<Connection>,
    config: ServeConfig,
    offload: Option<Offload>,
}

struct Connection {
    stream: TcpStream,
    session: Session,
    /// What the connection is registered for now, to skip needless `epoll_ctl`s.
    interest: Interest,
    /// An offloaded request is being computed: read nothing more until it is answered.
    computing: bool,
    /// The session asked to close: close once the output is written.
    closing: bool,
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
                        session: Session::new(config.max_n),
                        interest: Interest::READ,
                        computing: false,
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
        event_loop.deregister(connection.stream.as_raw_fd(), token);
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

    /// Answers what can be answered, writes what can be written, and registers for
    /// whatever the connection waits on next.
    fn advance(&mut self, event_loop: &mut EventLoop, token: Token) {
        let Some(connection) = self.connections.get_mut(&token) else {
            return;
        };
        loop {
            let mut output_full = false;
            while !connection.computing && !connection.closing {
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
        } else if connection.computing {
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
            event_loop.deregister(connection.stream.as_raw_fd(), token);
        }
    }
}

fn is_retry(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
    )
}
