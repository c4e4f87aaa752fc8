//! The wire protocol, against every server — every style's, and the Python peers' —
//! one test per (server, behaviour), stamped out by `protocol_conformance!` so that a
//! failure names both.
//!
//! Each test starts its own server child process (killed on drop, also when the test
//! fails) with `--max-n 30`, and every read has a timeout, so a broken server fails a
//! test instead of hanging it. The Python peers' tests pass, saying so in their output,
//! only where `python3` is not on `PATH`.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use common::{Server, ServerProcess};
use workloads::fib_reference;

/// The servers are started with this `--max-n`.
const MAX_N: u32 = 30;

/// Every read waits at most this long: ample on a loaded machine, and finite.
const READ_TIMEOUT: Duration = Duration::from_secs(15);

/// One client connection with a line reader.
struct Client {
    reader: BufReader<TcpStream>,
}

impl Client {
    fn connect(addr: SocketAddr) -> Self {
        let stream = TcpStream::connect(addr).expect("connect");
        stream
            .set_read_timeout(Some(READ_TIMEOUT))
            .expect("read timeout");
        stream.set_nodelay(true).expect("nodelay");
        Self {
            reader: BufReader::new(stream),
        }
    }

    fn send(&mut self, bytes: &[u8]) {
        self.reader.get_mut().write_all(bytes).expect("write");
    }

    /// The next reply line, without its `\n`.
    fn line(&mut self) -> String {
        let mut line = String::new();
        let read = self.reader.read_line(&mut line).expect("read a reply line");
        assert!(
            read > 0,
            "the server closed the connection instead of replying"
        );
        line.strip_suffix('\n')
            .unwrap_or_else(|| panic!("unterminated reply {line:?}"))
            .to_owned()
    }

    /// Asserts that the server closes the connection without sending anything more.
    fn expect_closed(&mut self) {
        let mut rest = Vec::new();
        match self.reader.read_to_end(&mut rest) {
            Ok(_) => assert!(rest.is_empty(), "unexpected bytes before close: {rest:?}"),
            // A reset also closes the connection.
            Err(error) if error.kind() == std::io::ErrorKind::ConnectionReset => {}
            Err(error) => panic!("the connection was not closed: {error}"),
        }
    }

    fn ask(&mut self, n: u32) -> String {
        self.send_line(&n.to_string())
    }

    /// Sends `request` and a newline, and returns the reply line.
    fn send_line(&mut self, request: &str) -> String {
        self.send(format!("{request}\n").as_bytes());
        self.line()
    }
}

fn answer(n: u32) -> String {
    fib_reference(n).expect("n fits").to_string()
}

fn answers_requests(server: Server) {
    if !server.available() {
        return;
    }
    let server = ServerProcess::start_server(server, MAX_N);
    let mut client = Client::connect(server.addr());
    for n in [0, 1, 2, 10, 25, MAX_N] {
        assert_eq!(client.ask(n), answer(n), "fib({n})");
    }
    client.send(b"12\r\n");
    assert_eq!(client.line(), answer(12), "CRLF request");
}

fn answers_pipelined_requests_in_order(server: Server) {
    if !server.available() {
        return;
    }
    let server = ServerProcess::start_server(server, MAX_N);
    let mut client = Client::connect(server.addr());
    let burst: String = (0..=MAX_N)
        .rev()
        .chain(0..=20)
        .map(|n| format!("{n}\n"))
        .collect();
    client.send(burst.as_bytes());
    for n in (0..=MAX_N).rev().chain(0..=20) {
        assert_eq!(client.line(), answer(n), "pipelined fib({n})");
    }
}

fn joins_a_request_split_across_writes(server: Server) {
    if !server.available() {
        return;
    }
    let server = ServerProcess::start_server(server, MAX_N);
    let mut client = Client::connect(server.addr());
    for piece in [&b"2"[..], b"1", b"\r", b"\n"] {
        client.send(piece);
        thread::sleep(Duration::from_millis(30));
    }
    assert_eq!(client.line(), answer(21));
}

fn answers_bad_lines_and_keeps_the_connection(server: Server) {
    if !server.available() {
        return;
    }
    let server = ServerProcess::start_server(server, MAX_N);
    let mut client = Client::connect(server.addr());
    let bad_lines: [&[u8]; 10] = [
        b"abc",
        b"-1",
        b"31", // above --max-n
        b"99999999999999999999999999",
        b"",
        b"\r",
        b"\x00\xff\xfe\x01",
        b" 5",
        b"5 ",
        b"+5",
    ];
    for bad in bad_lines {
        let mut request = bad.to_vec();
        request.push(b'\n');
        client.send(&request);
        let reply = client.line();
        assert!(reply.starts_with("error: "), "{bad:?} got {reply:?}");
        // The connection is still served.
        assert_eq!(client.ask(7), answer(7), "after {bad:?}");
    }
}

fn closes_after_a_line_too_long(server: Server) {
    if !server.available() {
        return;
    }
    let server = ServerProcess::start_server(server, MAX_N);
    let mut client = Client::connect(server.addr());
    assert_eq!(client.ask(3), answer(3));
    client.send(&[b'1'; 65]);
    assert_eq!(client.line(), "error: line too long");
    client.expect_closed();
    // Other clients are still served.
    assert_eq!(Client::connect(server.addr()).ask(9), answer(9));
}

fn survives_a_storm_of_abrupt_disconnects(server: Server) {
    if !server.available() {
        return;
    }
    let server = ServerProcess::start_server(server, MAX_N);
    for round in 0..60 {
        let mut stream = TcpStream::connect(server.addr()).expect("connect");
        match round % 4 {
            // Connect and leave.
            0 => {}
            // Leave in the middle of a request.
            1 => stream.write_all(b"2").expect("write"),
            // Leave with a request unanswered.
            2 => stream.write_all(b"20\n").expect("write"),
            // Leave with a reply unread: closing with unread data sends a reset.
            _ => {
                stream.write_all(b"5\n6\n").expect("write");
                thread::sleep(Duration::from_millis(5));
            }
        }
        drop(stream);
    }
    let mut client = Client::connect(server.addr());
    assert_eq!(client.ask(22), answer(22), "served after the storm");
}

fn serves_others_while_a_client_idles_mid_request(server: Server) {
    if !server.available() {
        return;
    }
    let server = ServerProcess::start_server(server, MAX_N);
    let mut idle = Client::connect(server.addr());
    idle.send(b"1");
    let mut other = Client::connect(server.addr());
    assert_eq!(
        other.ask(15),
        answer(15),
        "served while another client idles"
    );
    idle.send(b"6\n");
    assert_eq!(
        idle.line(),
        answer(16),
        "the idle client is served when it finishes"
    );
}

/// The iterative server is exempt from the test above, by design: it serves one
/// connection to the end before accepting the next. This checks that documented
/// behaviour, so it cannot change unnoticed.
fn serves_one_client_at_a_time(server: Server) {
    if !server.available() {
        return;
    }
    let server = ServerProcess::start_server(server, MAX_N);
    let mut first = Client::connect(server.addr());
    assert_eq!(first.ask(4), answer(4));
    let mut second = Client::connect(server.addr());
    second.send(b"5\n");
    second
        .reader
        .get_ref()
        .set_read_timeout(Some(Duration::from_millis(300)))
        .expect("timeout");
    let mut waiting = String::new();
    assert!(
        second.reader.read_line(&mut waiting).is_err(),
        "the second client was served while the first was connected: {waiting:?}"
    );
    second
        .reader
        .get_ref()
        .set_read_timeout(Some(READ_TIMEOUT))
        .expect("timeout");
    drop(first);
    assert_eq!(
        second.line(),
        answer(5),
        "served once the first client left"
    );
}

fn serves_many_concurrent_clients(server: Server) {
    if !server.available() {
        return;
    }
    let server = ServerProcess::start_server(server, MAX_N);
    let addr = server.addr();
    let clients: Vec<_> = (0..40)
        .map(|client_idx| {
            thread::spawn(move || {
                let mut client = Client::connect(addr);
                for request_idx in 0..25 {
                    let n = (client_idx + request_idx) % 24;
                    assert_eq!(client.ask(n), answer(n), "client {client_idx} fib({n})");
                }
            })
        })
        .collect();
    for client in clients {
        client.join().expect("a client failed");
    }
}

fn stops_on_sigterm_leaving_no_process(server: Server) {
    if !server.available() {
        return;
    }
    let mut server = ServerProcess::start_server(server, MAX_N);
    // A connected client and a request in flight must not hold the server up.
    let mut client = Client::connect(server.addr());
    assert_eq!(client.ask(10), answer(10));
    client.send(b"29\n");
    let children = common::child_pids(server.pid());
    let started = Instant::now();
    let status = server.terminate(Duration::from_secs(5));
    let status =
        status.unwrap_or_else(|| panic!("still running {:?} after SIGTERM", started.elapsed()));
    assert!(status.success(), "exit status after SIGTERM: {status}");
    for child in children {
        // Worker processes are killed and reaped before the server exits.
        assert!(
            !common::process_exists(child),
            "child {child} outlived its server"
        );
    }
}

fn a_killed_server_leaves_no_process(server: Server) {
    if !server.available() {
        return;
    }
    let mut server = ServerProcess::start_server(server, MAX_N);
    let mut client = Client::connect(server.addr());
    assert_eq!(client.ask(20), answer(20));
    let children = common::child_pids(server.pid());
    // No SIGTERM, no clean-up: worker processes must notice on their own.
    server.kill();
    let deadline = Instant::now() + Duration::from_secs(10);
    for child in children {
        while common::process_running(child) {
            assert!(
                Instant::now() < deadline,
                "child {child} outlived its killed server"
            );
            thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Whether the server serves one connection at a time (`seq`).
fn is_iterative(server: Server) -> bool {
    match server {
        Server::Style(style) => catalog::find(style)
            .is_some_and(|entry| entry.server_model == workloads::ServerModel::Iterative),
        Server::Python(_) => false,
    }
}

/// A backend on a free loopback port that answers after `delay`, stopped on drop.
fn start_backend(delay: Duration) -> backend::Backend {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind the backend");
    backend::Backend::start(
        listener,
        backend::BackendConfig {
            delay,
            threads: std::num::NonZeroUsize::MIN,
        },
    )
    .expect("start the backend")
}

fn relays_waits_in_order_with_plain_requests(server: Server) {
    if !server.available() {
        return;
    }
    let backend = start_backend(Duration::from_millis(20));
    let addr = backend.local_addr().to_string();
    let process = ServerProcess::start_server_with(server, MAX_N, &["--backend", &addr]);
    let mut client = Client::connect(process.addr());
    assert_eq!(client.send_line("wait 10"), answer(10));
    // Pipelined, mixed with plain requests: answered in order.
    client.send(b"wait 3\n4\nwait 5\r\nwait 30\n");
    for n in [3, 4, 5, 30] {
        assert_eq!(client.line(), answer(n), "reply to request {n}");
    }
    // The wait form obeys max-n and answers bad numbers like the plain form.
    client.send(b"wait 31\nwait x\nwait \n");
    assert_eq!(
        client.line(),
        format!("error: out of range: n must be at most {MAX_N}")
    );
    assert_eq!(client.line(), "error: not a number");
    assert_eq!(client.line(), "error: empty request");
    if is_iterative(server) {
        return;
    }
    // Many clients waiting at once all get their answers.
    let mut clients: Vec<Client> = (0..20).map(|_| Client::connect(process.addr())).collect();
    for client in &mut clients {
        client.send(b"wait 1\n");
    }
    for client in &mut clients {
        assert_eq!(client.line(), "1");
    }
    // One backend request per wait: 1 + 3 + 20.
    assert_eq!(backend.answered(), 24);
}

fn answers_backend_failures_and_keeps_the_connection(server: Server) {
    if !server.available() {
        return;
    }
    // Nothing listens on a port that was just free.
    let nowhere = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .to_string();
    let process = ServerProcess::start_server_with(server, MAX_N, &["--backend", &nowhere]);
    let mut client = Client::connect(process.addr());
    let reply = client.send_line("wait 3");
    assert!(
        reply.starts_with("error: backend: cannot connect"),
        "reply {reply:?}"
    );
    assert_eq!(client.ask(7), answer(7));
    drop(client);
    drop(process);

    // Without --backend, a wait request is an error reply.
    let process = ServerProcess::start_server(server, MAX_N);
    let mut client = Client::connect(process.addr());
    assert_eq!(
        client.send_line("wait 3"),
        "error: backend: no backend configured (serve --backend ADDR)"
    );
    assert_eq!(client.ask(7), answer(7));
    drop(client);
    drop(process);

    // A backend that dies mid-run harms no connection: waits become error replies,
    // plain requests go on, on the waiting connection and on others.
    let backend = start_backend(Duration::from_millis(5));
    let addr = backend.local_addr().to_string();
    let process = ServerProcess::start_server_with(server, MAX_N, &["--backend", &addr]);
    let mut client = Client::connect(process.addr());
    assert_eq!(client.send_line("wait 6"), answer(6));
    backend.stop();
    let reply = client.send_line("wait 6");
    assert!(reply.starts_with("error: backend: "), "reply {reply:?}");
    assert_eq!(client.ask(8), answer(8));
    if is_iterative(server) {
        // It serves the next connection only once this one has left.
        drop(client);
    }
    let mut other = Client::connect(process.addr());
    assert_eq!(other.ask(9), answer(9));
    let reply = other.send_line("wait 2");
    assert!(reply.starts_with("error: backend: "), "reply {reply:?}");
}

/// A stand-in backend that answers every request badly, `mode` saying how: `garbage`
/// (a line that is no number), `endless` (a reply line that never ends: 1 MiB of digits,
/// then the connection closes), `flood` (the answer, then a second, unasked one).
/// Its threads end once their connection does; dropping it stops the acceptor.
struct HostileBackend {
    addr: std::net::SocketAddr,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    acceptor: Option<thread::JoinHandle<()>>,
}

impl HostileBackend {
    fn start(mode: &'static str) -> Self {
        use std::sync::atomic::Ordering;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("addr");
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stopping = std::sync::Arc::clone(&stop);
        let acceptor = thread::spawn(move || {
            while !stopping.load(Ordering::Relaxed) {
                let Ok((stream, _)) = listener.accept() else {
                    thread::sleep(Duration::from_millis(5));
                    continue;
                };
                thread::spawn(move || Self::serve(stream, mode));
            }
        });
        Self {
            addr,
            stop,
            acceptor: Some(acceptor),
        }
    }

    fn serve(stream: TcpStream, mode: &str) {
        let _ = stream.set_nonblocking(false);
        let _ = stream.set_read_timeout(Some(READ_TIMEOUT));
        let mut reader = BufReader::new(stream);
        let mut line = String::new();
        while reader.read_line(&mut line).is_ok_and(|read| read > 0) {
            let stream = reader.get_mut();
            let written = match mode {
                "garbage" => stream.write_all(b"xyz\n"),
                // The right answer to `wait 3`, then a line nobody asked for.
                "flood" => stream.write_all(b"2\n99\n"),
                _ => {
                    let digits = [b'7'; 64 * 1024];
                    for _ in 0..16 {
                        if stream.write_all(&digits).is_err() {
                            break;
                        }
                    }
                    return;
                }
            };
            if written.is_err() {
                return;
            }
            line.clear();
        }
    }
}

impl Drop for HostileBackend {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
    }
}

fn answers_a_hostile_backend_with_an_error(server: Server) {
    if !server.available() {
        return;
    }
    for mode in ["garbage", "endless"] {
        let backend = HostileBackend::start(mode);
        let addr = backend.addr.to_string();
        let process = ServerProcess::start_server_with(server, MAX_N, &["--backend", &addr]);
        let mut client = Client::connect(process.addr());
        assert_eq!(
            client.send_line("wait 3"),
            "error: backend: bad reply",
            "{mode}"
        );
        // The client's connection goes on, and so do waits (the next backend
        // connection is opened afresh, and is as broken).
        assert_eq!(client.ask(7), answer(7), "{mode}");
        let reply = client.send_line("wait 3");
        assert!(reply.starts_with("error: backend: "), "{mode}: {reply:?}");
    }
    // A backend that answers, then sends a line nobody asked for: the extra line is
    // never relayed as an answer (whether it came in the same read or later, the
    // connection is out of step and dropped).
    let backend = HostileBackend::start("flood");
    let addr = backend.addr.to_string();
    let process = ServerProcess::start_server_with(server, MAX_N, &["--backend", &addr]);
    let mut client = Client::connect(process.addr());
    for _ in 0..5 {
        let reply = client.send_line("wait 3");
        assert!(
            reply == answer(3) || reply == "error: backend: bad reply",
            "an unasked line was relayed: {reply:?}"
        );
        // Give a split second line the time to arrive before the next wait.
        thread::sleep(Duration::from_millis(20));
    }
}

fn answers_the_seeds_clients_with_seed_framing(server: Server) {
    if !server.available() {
        return;
    }
    let process = ServerProcess::start_server_with(server, MAX_N, &["--framing", "seed"]);
    // A stand-in for the seed's perf2.py: `1` with no newline, then up to 100 bytes.
    let mut perf2 = TcpStream::connect(process.addr()).expect("connect");
    perf2
        .set_read_timeout(Some(READ_TIMEOUT))
        .expect("read timeout");
    let mut buffer = [0u8; 100];
    for _ in 0..50 {
        perf2.write_all(b"1").expect("send");
        let read = perf2.read(&mut buffer).expect("a reply");
        assert_eq!(&buffer[..read], b"1\n");
    }
    // perf1.py: one long request, no newline (on its own: `seq` serves one at a time).
    drop(perf2);
    let mut perf1 = TcpStream::connect(process.addr()).expect("connect");
    perf1
        .set_read_timeout(Some(READ_TIMEOUT))
        .expect("read timeout");
    perf1.write_all(b"25").expect("send");
    let read = perf1.read(&mut buffer).expect("a reply");
    assert_eq!(&buffer[..read], format!("{}\n", answer(25)).as_bytes());
    // A newline is still fine, and a bad request is still an error line.
    perf1.write_all(b"x\n").expect("send");
    let read = perf1.read(&mut buffer).expect("a reply");
    assert_eq!(&buffer[..read], b"error: not a number\n");
}

macro_rules! seed_framing_conformance {
    ($($module:ident => $server:expr;)*) => {
        $(
            mod $module {
                use super::Server;

                #[test]
                fn answers_the_seeds_clients_with_seed_framing() {
                    super::answers_the_seeds_clients_with_seed_framing($server);
                }
            }
        )*
    };
}

macro_rules! protocol_conformance {
    ($($module:ident => $server:expr, idle: $idle:ident;)*) => {
        $(
            mod $module {
                use super::Server;

                #[test]
                fn answers_requests() {
                    super::answers_requests($server);
                }

                #[test]
                fn answers_pipelined_requests_in_order() {
                    super::answers_pipelined_requests_in_order($server);
                }

                #[test]
                fn joins_a_request_split_across_writes() {
                    super::joins_a_request_split_across_writes($server);
                }

                #[test]
                fn answers_bad_lines_and_keeps_the_connection() {
                    super::answers_bad_lines_and_keeps_the_connection($server);
                }

                #[test]
                fn closes_after_a_line_too_long() {
                    super::closes_after_a_line_too_long($server);
                }

                #[test]
                fn survives_a_storm_of_abrupt_disconnects() {
                    super::survives_a_storm_of_abrupt_disconnects($server);
                }

                #[test]
                fn $idle() {
                    super::$idle($server);
                }

                #[test]
                fn serves_many_concurrent_clients() {
                    super::serves_many_concurrent_clients($server);
                }

                #[test]
                fn relays_waits_in_order_with_plain_requests() {
                    super::relays_waits_in_order_with_plain_requests($server);
                }

                #[test]
                fn answers_backend_failures_and_keeps_the_connection() {
                    super::answers_backend_failures_and_keeps_the_connection($server);
                }

                #[test]
                fn answers_a_hostile_backend_with_an_error() {
                    super::answers_a_hostile_backend_with_an_error($server);
                }

                #[test]
                fn stops_on_sigterm_leaving_no_process() {
                    super::stops_on_sigterm_leaving_no_process($server);
                }

                #[test]
                fn a_killed_server_leaves_no_process() {
                    super::a_killed_server_leaves_no_process($server);
                }
            }
        )*

        /// Every server the macro stamped tests out for, in order.
        const TESTED_SERVERS: &[Server] = &[$($server),*];
    };
}

protocol_conformance! {
    seq => Server::Style("seq"), idle: serves_one_client_at_a_time;
    threads => Server::Style("threads"), idle: serves_others_while_a_client_idles_mid_request;
    pool => Server::Style("pool"), idle: serves_others_while_a_client_idles_mid_request;
    process => Server::Style("process"), idle: serves_others_while_a_client_idles_mid_request;
    evloop => Server::Style("evloop"), idle: serves_others_while_a_client_idles_mid_request;
    evloop_offload => Server::Style("evloop-offload"), idle: serves_others_while_a_client_idles_mid_request;
    rayon => Server::Style("rayon"), idle: serves_others_while_a_client_idles_mid_request;
    crossbeam => Server::Style("crossbeam"), idle: serves_others_while_a_client_idles_mid_request;
    tokio => Server::Style("tokio"), idle: serves_others_while_a_client_idles_mid_request;
    tokio_current => Server::Style("tokio-current"), idle: serves_others_while_a_client_idles_mid_request;
    tokio_offload => Server::Style("tokio-offload"), idle: serves_others_while_a_client_idles_mid_request;
    async_std => Server::Style("async-std"), idle: serves_others_while_a_client_idles_mid_request;
    async_std_offload => Server::Style("async-std-offload"), idle: serves_others_while_a_client_idles_mid_request;
    smol => Server::Style("smol"), idle: serves_others_while_a_client_idles_mid_request;
    smol_offload => Server::Style("smol-offload"), idle: serves_others_while_a_client_idles_mid_request;
    compio => Server::Style("compio"), idle: serves_others_while_a_client_idles_mid_request;
    compio_offload => Server::Style("compio-offload"), idle: serves_others_while_a_client_idles_mid_request;
    monoio => Server::Style("monoio"), idle: serves_others_while_a_client_idles_mid_request;
    monoio_offload => Server::Style("monoio-offload"), idle: serves_others_while_a_client_idles_mid_request;
    python_threads => Server::Python("threads"), idle: serves_others_while_a_client_idles_mid_request;
    python_processpool => Server::Python("processpool"), idle: serves_others_while_a_client_idles_mid_request;
    python_asyncio_inline => Server::Python("asyncio_inline"), idle: serves_others_while_a_client_idles_mid_request;
    python_asyncio_offload => Server::Python("asyncio_offload"), idle: serves_others_while_a_client_idles_mid_request;
}

// The seed's framing is `concbench serve`'s: the Python peers are the seed's servers
// rewritten for the line protocol, so they frame by line only.
seed_framing_conformance! {
    seq_seed => Server::Style("seq");
    threads_seed => Server::Style("threads");
    pool_seed => Server::Style("pool");
    process_seed => Server::Style("process");
    evloop_seed => Server::Style("evloop");
    evloop_offload_seed => Server::Style("evloop-offload");
    rayon_seed => Server::Style("rayon");
    crossbeam_seed => Server::Style("crossbeam");
    tokio_seed => Server::Style("tokio");
    tokio_current_seed => Server::Style("tokio-current");
    tokio_offload_seed => Server::Style("tokio-offload");
    async_std_seed => Server::Style("async-std");
    async_std_offload_seed => Server::Style("async-std-offload");
    smol_seed => Server::Style("smol");
    smol_offload_seed => Server::Style("smol-offload");
    compio_seed => Server::Style("compio");
    compio_offload_seed => Server::Style("compio-offload");
    monoio_seed => Server::Style("monoio");
    monoio_offload_seed => Server::Style("monoio-offload");
}

#[test]
fn every_server_in_the_catalog_is_tested() {
    let servers: Vec<&str> = catalog::STYLES
        .iter()
        .filter(
            |entry| match (entry.support)(workloads::Workload::Throughput) {
                workloads::Support::Runs => true,
                // A server all the same, on a kernel that allows io_uring.
                workloads::Support::NotApplicable(reason) => {
                    reason.starts_with(workloads::completion::UNAVAILABLE)
                }
            },
        )
        .map(|entry| entry.name)
        .collect();
    let tested: Vec<&str> = TESTED_SERVERS
        .iter()
        .filter_map(|server| match server {
            Server::Style(style) => Some(*style),
            Server::Python(_) => None,
        })
        .collect();
    assert_eq!(
        servers, tested,
        "add the new server to protocol_conformance!"
    );
}

#[test]
fn every_python_peer_is_tested() {
    let peers = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("peers/python");
    let mut scripts: Vec<String> = std::fs::read_dir(&peers)
        .expect("peers/python")
        .filter_map(|entry| {
            let name = entry.ok()?.file_name().into_string().ok()?;
            let script = name.strip_suffix(".py")?.to_owned();
            // fibproto.py is the peers' shared module, not a server.
            (script != "fibproto").then_some(script)
        })
        .collect();
    scripts.sort();
    let mut tested: Vec<String> = TESTED_SERVERS
        .iter()
        .filter_map(|server| match server {
            Server::Python(script) => Some((*script).to_owned()),
            Server::Style(_) => None,
        })
        .collect();
    tested.sort();
    assert_eq!(
        scripts, tested,
        "add the new Python peer to protocol_conformance!"
    );
}
