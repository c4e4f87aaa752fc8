//! No descriptor outlives what it belongs to: a client connection's backend connection
//! closes with it, and stopping the server closes every connection, waiting or idle.
//!
//! One test in a process of its own, so that the process's descriptor count is this
//! test's alone.

mod common;

use std::net::{SocketAddr, TcpListener};
use std::num::NonZeroUsize;
use std::thread;
use std::time::{Duration, Instant};

use common::stand_in::{Behaviour, Client, StandIn, unused_addr};
use workloads::server::ServeConfig;
use workloads::{Style, StyleConfig, StyleEntry};

fn open_descriptors() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .expect("listing /proc/self/fd")
        .count()
}

/// Waits (the stand-in's threads close their ends within a poll or so) until the process
/// holds `expected` descriptors.
fn settles_at(expected: usize, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let open = open_descriptors();
        if open == expected {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: {open} descriptors open, expected {expected}"
        );
        thread::sleep(Duration::from_millis(10));
    }
}

fn serve(style: &dyn Style, backend: SocketAddr) -> workloads::server::ServerHandle {
    let listener = TcpListener::bind("127.0.0.1:0").expect("binding the server");
    style
        .serve(
            listener,
            ServeConfig {
                backend: Some(backend),
                ..ServeConfig::default()
            },
        )
        .expect("serving")
}

fn check(entry: &StyleEntry) {
    let style = (entry.build)(&StyleConfig::new(NonZeroUsize::new(2).unwrap()))
        .expect("building the style");
    let quick = StandIn::start(Behaviour::answer_after(Duration::from_millis(5)));
    let slow = StandIn::start(Behaviour::answer_after(Duration::from_millis(500)));
    let broken = StandIn::start(Behaviour::Reply(b"xyz\n"));
    let closing = StandIn::start(Behaviour::CloseAtOnce);
    let nowhere = unused_addr();
    let before = open_descriptors();

    // Clients that leave: their backend connections close with them.
    for backend in [quick.addr(), broken.addr(), closing.addr(), nowhere] {
        let server = serve(&*style, backend);
        let mut clients: Vec<Client> = (0..10)
            .map(|_| Client::connect(server.local_addr()))
            .collect();
        for client in &mut clients {
            client.send(b"wait 3\n7\nwait 4\n");
        }
        for client in &mut clients {
            for _ in 0..3 {
                client.line();
            }
        }
        drop(clients);
        // Only the server's listener is left.
        settles_at(before + 1, &format!("clients of {backend} gone"));
        drop(server);
        settles_at(before, &format!("server of {backend} stopped"));
    }

    // A server stopped under its clients: idle and pending backend connections alike.
    let server = serve(&*style, slow.addr());
    let mut idle = Client::connect(server.local_addr());
    assert_eq!(idle.ask("wait 5\n"), "5");
    let mut waiting: Vec<Client> = (0..10)
        .map(|_| Client::connect(server.local_addr()))
        .collect();
    for client in &mut waiting {
        client.send(b"wait 6\n");
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while slow.accepted() < 11 {
        assert!(
            Instant::now() < deadline,
            "the waits never reached the backend"
        );
        thread::sleep(Duration::from_millis(5));
    }
    drop(server);
    drop(idle);
    drop(waiting);
    settles_at(before, "server stopped under its clients");
}

#[test]
fn no_descriptor_outlives_its_connection_or_the_server() {
    check(&style_evloop::ENTRY);
    check(&style_evloop::ENTRY_OFFLOAD);
}
