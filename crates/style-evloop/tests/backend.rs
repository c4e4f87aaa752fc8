//! `wait N` requests on both event-loop servers (`evloop`, `evloop-offload`), answered by
//! a stand-in backend over non-blocking sockets on the loop.

mod common;

use std::net::{SocketAddr, TcpListener};
use std::num::NonZeroUsize;
use std::thread;
use std::time::{Duration, Instant};

use common::stand_in::{Behaviour, Client, StandIn, unused_addr};
use workloads::server::{ServeConfig, ServerHandle};
use workloads::{Style, StyleConfig, StyleEntry};

/// A server of `entry`'s style; dropping it stops the server, then the style.
struct Server {
    handle: Option<ServerHandle>,
    _style: Box<dyn Style>,
}

impl Server {
    fn start(entry: &StyleEntry, backend: Option<SocketAddr>) -> Self {
        let style = (entry.build)(&StyleConfig::new(NonZeroUsize::new(2).unwrap()))
            .expect("building the style");
        let listener = TcpListener::bind("127.0.0.1:0").expect("binding the server");
        let handle = style
            .serve(
                listener,
                ServeConfig {
                    backend,
                    ..ServeConfig::default()
                },
            )
            .expect("serving");
        Self {
            handle: Some(handle),
            _style: style,
        }
    }

    fn client(&self) -> Client {
        Client::connect(self.handle.as_ref().expect("serving").local_addr())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // The server first, then the loop it runs on.
        drop(self.handle.take());
    }
}

/// Stamps out one test per event-loop style for each check below.
macro_rules! for_both_styles {
    ($($check:ident),* $(,)?) => {
        mod evloop {
            $(#[test] fn $check() { super::$check(&style_evloop::ENTRY) })*
        }
        mod evloop_offload {
            $(#[test] fn $check() { super::$check(&style_evloop::ENTRY_OFFLOAD) })*
        }
    };
}

for_both_styles!(
    waits_relay_the_backend_in_order_over_one_kept_connection,
    waits_on_many_connections_run_at_once,
    plain_requests_are_answered_while_waits_are_pending,
    no_backend_configured_is_an_error_reply,
    an_unreachable_backend_is_a_connect_error_and_the_connection_goes_on,
    a_bad_reply_is_an_error_and_the_next_wait_connects_afresh,
    a_refusal_is_relayed,
    a_backend_that_closes_is_a_lost_connection,
    an_endless_reply_is_a_bad_reply,
    a_backend_dying_mid_run_harms_no_other_connection,
    a_client_leaving_mid_wait_harms_no_other_connection,
);

fn waits_relay_the_backend_in_order_over_one_kept_connection(entry: &StyleEntry) {
    let backend = StandIn::start(Behaviour::answer_after(Duration::from_millis(5)));
    let server = Server::start(entry, Some(backend.addr()));
    let mut client = server.client();
    assert_eq!(client.ask("wait 10\n"), "55");
    // Pipelined, mixed with a plain request: answered in order.
    client.send(b"wait 3\n4\nwait 5\n");
    assert_eq!(
        [client.line(), client.line(), client.line()],
        ["2", "3", "5"]
    );
    assert_eq!(client.ask("wait 40\r\n"), "102334155");
    // One backend connection served all four waits.
    assert_eq!(backend.accepted(), 1);
    // A second client connection has a backend connection of its own.
    assert_eq!(server.client().ask("wait 6\n"), "8");
    assert_eq!(backend.accepted(), 2);
}

fn waits_on_many_connections_run_at_once(entry: &StyleEntry) {
    const CLIENTS: usize = 50;
    let delay = Duration::from_millis(100);
    let backend = StandIn::start(Behaviour::answer_after(delay));
    let server = Server::start(entry, Some(backend.addr()));
    let mut clients: Vec<Client> = (0..CLIENTS).map(|_| server.client()).collect();
    let start = Instant::now();
    for client in &mut clients {
        client.send(b"wait 1\n");
    }
    for client in &mut clients {
        assert_eq!(client.line(), "1");
    }
    let elapsed = start.elapsed();
    // Serialised, they would take 50 × 100 ms.
    assert!(
        elapsed < Duration::from_secs(2),
        "{CLIENTS} waits of {delay:?} took {elapsed:?}"
    );
    assert_eq!(backend.accepted(), CLIENTS);
}

fn plain_requests_are_answered_while_waits_are_pending(entry: &StyleEntry) {
    let delay = Duration::from_secs(1);
    let backend = StandIn::start(Behaviour::answer_after(delay));
    let server = Server::start(entry, Some(backend.addr()));
    let mut waiting: Vec<Client> = (0..20).map(|_| server.client()).collect();
    let start = Instant::now();
    for client in &mut waiting {
        client.send(b"wait 2\n");
    }
    let mut plain = server.client();
    for _ in 0..5 {
        assert_eq!(plain.ask("7\n"), "13");
    }
    let elapsed = start.elapsed();
    assert!(
        elapsed < delay / 2,
        "plain requests took {elapsed:?} while waits were pending"
    );
    for client in &mut waiting {
        assert_eq!(client.line(), "1");
    }
}

fn no_backend_configured_is_an_error_reply(entry: &StyleEntry) {
    let server = Server::start(entry, None);
    let mut client = server.client();
    assert_eq!(
        client.ask("wait 3\n"),
        "error: backend: no backend configured (serve --backend ADDR)"
    );
    assert_eq!(client.ask("7\n"), "13");
}

fn an_unreachable_backend_is_a_connect_error_and_the_connection_goes_on(entry: &StyleEntry) {
    let server = Server::start(entry, Some(unused_addr()));
    let mut client = server.client();
    let reply = client.ask("wait 3\n");
    assert!(
        reply.starts_with("error: backend: cannot connect"),
        "{reply}"
    );
    assert_eq!(client.ask("7\n"), "13");
    // Every wait tries afresh.
    let reply = client.ask("wait 4\n");
    assert!(
        reply.starts_with("error: backend: cannot connect"),
        "{reply}"
    );
    assert_eq!(client.ask("8\n"), "21");
}

fn a_bad_reply_is_an_error_and_the_next_wait_connects_afresh(entry: &StyleEntry) {
    let backend = StandIn::start(Behaviour::Reply(b"xyz\n"));
    let server = Server::start(entry, Some(backend.addr()));
    let mut client = server.client();
    assert_eq!(client.ask("wait 3\n"), "error: backend: bad reply");
    assert_eq!(client.ask("7\n"), "13");
    assert_eq!(client.ask("wait 3\n"), "error: backend: bad reply");
    // The failed connection was dropped: the second wait opened a new one.
    assert_eq!(backend.accepted(), 2);
}

fn a_refusal_is_relayed(entry: &StyleEntry) {
    let backend = StandIn::start(Behaviour::Reply(b"error: busy\n"));
    let server = Server::start(entry, Some(backend.addr()));
    let mut client = server.client();
    assert_eq!(
        client.ask("wait 3\n"),
        "error: backend: the backend refused: busy"
    );
    assert_eq!(client.ask("7\n"), "13");
}

fn a_backend_that_closes_is_a_lost_connection(entry: &StyleEntry) {
    let backend = StandIn::start(Behaviour::CloseAtOnce);
    let server = Server::start(entry, Some(backend.addr()));
    let mut client = server.client();
    for _ in 0..3 {
        let reply = client.ask("wait 3\n");
        assert!(
            reply.starts_with("error: backend: connection lost: "),
            "{reply}"
        );
        assert_eq!(client.ask("7\n"), "13");
    }
}

fn an_endless_reply_is_a_bad_reply(entry: &StyleEntry) {
    let backend = StandIn::start(Behaviour::Endless);
    let server = Server::start(entry, Some(backend.addr()));
    let mut client = server.client();
    assert_eq!(client.ask("wait 3\n"), "error: backend: bad reply");
    assert_eq!(client.ask("7\n"), "13");
}

fn a_backend_dying_mid_run_harms_no_other_connection(entry: &StyleEntry) {
    let mut backend = StandIn::start(Behaviour::answer_after(Duration::from_millis(300)));
    let server = Server::start(entry, Some(backend.addr()));
    let mut waiting = server.client();
    let mut plain = server.client();
    waiting.send(b"wait 5\n");
    assert_eq!(plain.ask("7\n"), "13");
    // Let the wait reach the backend, then kill it under the pending request.
    let deadline = Instant::now() + Duration::from_secs(5);
    while backend.accepted() == 0 {
        assert!(
            Instant::now() < deadline,
            "the wait never reached the backend"
        );
        thread::sleep(Duration::from_millis(5));
    }
    thread::sleep(Duration::from_millis(50));
    backend.kill();
    let reply = waiting.line();
    assert!(
        reply.starts_with("error: backend: connection lost: "),
        "{reply}"
    );
    for _ in 0..5 {
        assert_eq!(plain.ask("7\n"), "13");
    }
    // The dead backend is not reconnected to; the waiting connection goes on.
    let reply = waiting.ask("wait 5\n");
    assert!(
        reply.starts_with("error: backend: cannot connect"),
        "{reply}"
    );
    assert_eq!(waiting.ask("7\n"), "13");
    assert_eq!(server.client().ask("8\n"), "21");
}

fn a_client_leaving_mid_wait_harms_no_other_connection(entry: &StyleEntry) {
    let backend = StandIn::start(Behaviour::answer_after(Duration::from_millis(200)));
    let server = Server::start(entry, Some(backend.addr()));
    for _ in 0..5 {
        let mut leaving = server.client();
        leaving.send(b"wait 3\nwait 4\n");
        drop(leaving);
    }
    let mut staying = server.client();
    assert_eq!(staying.ask("7\n"), "13");
    assert_eq!(staying.ask("wait 6\n"), "8");
    // After the backend has answered the clients that left.
    thread::sleep(Duration::from_millis(300));
    assert_eq!(staying.ask("wait 7\n"), "13");
    assert_eq!(server.client().ask("9\n"), "34");
}
