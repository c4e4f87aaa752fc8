//! Test support: a stand-in backend (a std listener on `127.0.0.1:0`, a thread per
//! connection, each a bounded loop that ends when the test stops it), and a client with
//! read time-outs, so that no test can hang.
//!
//! Shared by the integration tests and, through `#[path]`, the crate's unit tests.

#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::Duration;

/// How long any client read may wait before the test fails.
pub(crate) const CLIENT_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// How often the stand-in's loops look whether they should stop.
const POLL: Duration = Duration::from_millis(20);

/// What the stand-in does with each connection.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Behaviour {
    /// Answers each request line `N` with `fib(N)` after `delay`; after `answers`
    /// replies on a connection it reads on and answers nothing more.
    Answer { delay: Duration, answers: usize },
    /// Answers each request line with these bytes.
    Reply(&'static [u8]),
    /// Accepts each connection and closes it at once.
    CloseAtOnce,
    /// Answers the first request with an endless line of digits.
    Endless,
}

impl Behaviour {
    /// `fib(N)` after `delay`, for every request.
    pub(crate) fn answer_after(delay: Duration) -> Self {
        Self::Answer {
            delay,
            answers: usize::MAX,
        }
    }
}

/// A backend for one test; dropping it (or [`StandIn::kill`]) stops it and joins every
/// thread it started.
pub(crate) struct StandIn {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    accepted: Arc<AtomicUsize>,
    /// The connections being served, to shut down on [`StandIn::kill`]; each thread
    /// removes its own when it ends.
    open: Arc<Mutex<HashMap<usize, TcpStream>>>,
    acceptor: Option<JoinHandle<()>>,
}

impl StandIn {
    pub(crate) fn start(behaviour: Behaviour) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("binding the stand-in backend");
        let addr = listener.local_addr().expect("the stand-in's address");
        listener
            .set_nonblocking(true)
            .expect("a non-blocking listener");
        let stop = Arc::new(AtomicBool::new(false));
        let accepted = Arc::new(AtomicUsize::new(0));
        let open = Arc::new(Mutex::new(HashMap::new()));
        let acceptor = {
            let (stop, accepted, open) =
                (Arc::clone(&stop), Arc::clone(&accepted), Arc::clone(&open));
            thread::spawn(move || accept_loop(&listener, behaviour, &stop, &accepted, &open))
        };
        Self {
            addr,
            stop,
            accepted,
            open,
            acceptor: Some(acceptor),
        }
    }

    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// How many connections it has accepted so far.
    pub(crate) fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    /// Stops the backend as if it died: shuts every connection down, closes the
    /// listener, and joins its threads.
    pub(crate) fn kill(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for (_, stream) in lock(&self.open).drain() {
            let _ = stream.shutdown(Shutdown::Both);
        }
        if let Some(acceptor) = self.acceptor.take() {
            acceptor.join().expect("the stand-in's acceptor panicked");
        }
    }
}

impl Drop for StandIn {
    fn drop(&mut self) {
        self.kill();
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn accept_loop(
    listener: &TcpListener,
    behaviour: Behaviour,
    stop: &Arc<AtomicBool>,
    accepted: &AtomicUsize,
    open: &Arc<Mutex<HashMap<usize, TcpStream>>>,
) {
    let mut connections = Vec::new();
    while !stop.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((stream, _)) => {
                let id = accepted.fetch_add(1, Ordering::SeqCst);
                if matches!(behaviour, Behaviour::CloseAtOnce) {
                    continue;
                }
                let _ = stream.set_nonblocking(false);
                if let Ok(clone) = stream.try_clone() {
                    lock(open).insert(id, clone);
                }
                let (stop, open) = (Arc::clone(stop), Arc::clone(open));
                connections.push(thread::spawn(move || {
                    serve(stream, behaviour, &stop);
                    lock(&open).remove(&id);
                }));
            }
            Err(_) => thread::sleep(POLL / 4),
        }
    }
    for connection in connections {
        let _ = connection.join();
    }
}

/// Serves one connection until it closes or the stand-in stops.
fn serve(mut stream: TcpStream, behaviour: Behaviour, stop: &AtomicBool) {
    let _ = stream.set_read_timeout(Some(POLL));
    let _ = stream.set_write_timeout(Some(POLL));
    let mut pending = Vec::new();
    let mut answered = 0usize;
    let mut buffer = [0u8; 256];
    while !stop.load(Ordering::SeqCst) {
        let read = match stream.read(&mut buffer) {
            Ok(0) => return,
            Ok(read) => read,
            Err(error) if matches!(error.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                continue;
            }
            Err(_) => return,
        };
        pending.extend_from_slice(&buffer[..read]);
        while let Some(end) = pending.iter().position(|&byte| byte == b'\n') {
            let line: Vec<u8> = pending.drain(..=end).collect();
            let reply = match behaviour {
                Behaviour::Answer { delay, answers } => {
                    if answered >= answers {
                        continue;
                    }
                    answered += 1;
                    thread::sleep(delay);
                    let n: u32 = std::str::from_utf8(&line)
                        .ok()
                        .and_then(|line| line.trim().parse().ok())
                        .expect("the server sent `N\\n`");
                    let fib = workloads::fib_reference(n).expect("a small n");
                    format!("{fib}\n").into_bytes()
                }
                Behaviour::Reply(bytes) => bytes.to_vec(),
                Behaviour::CloseAtOnce => return,
                Behaviour::Endless => {
                    while !stop.load(Ordering::SeqCst) {
                        match stream.write(&[b'1'; 1024]) {
                            Ok(_) => {}
                            Err(error)
                                if matches!(
                                    error.kind(),
                                    ErrorKind::WouldBlock | ErrorKind::TimedOut
                                ) => {}
                            Err(_) => return,
                        }
                    }
                    return;
                }
            };
            if stream.write_all(&reply).is_err() {
                return;
            }
        }
    }
}

/// A client of the server under test; every read waits at most [`CLIENT_READ_TIMEOUT`].
pub(crate) struct Client {
    writer: TcpStream,
    reader: BufReader<TcpStream>,
}

impl Client {
    pub(crate) fn connect(addr: SocketAddr) -> Self {
        let writer = TcpStream::connect(addr).expect("connecting to the server");
        writer
            .set_read_timeout(Some(CLIENT_READ_TIMEOUT))
            .expect("a read time-out");
        let _ = writer.set_nodelay(true);
        let reader = BufReader::new(writer.try_clone().expect("a second handle"));
        Self { writer, reader }
    }

    pub(crate) fn send(&mut self, bytes: &[u8]) {
        self.writer.write_all(bytes).expect("sending a request");
    }

    /// The next reply line, without its newline.
    pub(crate) fn line(&mut self) -> String {
        let mut line = String::new();
        let read = self
            .reader
            .read_line(&mut line)
            .expect("a reply within the read time-out");
        assert!(read > 0, "the server closed the connection");
        assert!(
            line.ends_with('\n'),
            "a reply line ends in a newline: {line:?}"
        );
        line.pop();
        line
    }

    /// Reads to the end of the stream: what the server sent before it closed.
    pub(crate) fn read_to_end(&mut self, rest: &mut Vec<u8>) -> std::io::Result<usize> {
        self.reader.read_to_end(rest)
    }

    /// Sends `request` and returns the reply line.
    pub(crate) fn ask(&mut self, request: &str) -> String {
        self.send(request.as_bytes());
        self.line()
    }
}

/// An address on which nothing listens (a port that was just free).
pub(crate) fn unused_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
}
