"""Fib server, a thread per connection, fib computed in that thread: the GIL case.

The seed's threaded server. Threads serve many clients at once, but only one of them
runs Python at a time: a long fib(n) holds the GIL for its whole run, interrupted only
every few milliseconds, so the short requests of other clients queue behind it and
their throughput collapses (the GIL's priority inversion).

A `wait N` request is asked of the backend (--backend) over a blocking socket that the
connection's thread opens on first use and keeps for its client's life: while the
backend takes its time, the thread sleeps in recv() (without the GIL, so the other
threads run), but it serves nothing else, and a thousand waiting clients hold a
thousand threads.
"""

import socket
import threading
import time

from fibproto import (
    BACKEND_CONNECT_TIMEOUT,
    BACKEND_REPLY_TIMEOUT,
    CLOSE,
    MAX_BACKEND_REPLY_BYTES,
    READ,
    BackendError,
    ReplyParser,
    Session,
    StopSignal,
    Wait,
    announce,
    backend_request,
    fib,
    listen,
    os_error_text,
    parse_args,
)


class BlockingBackend:
    """One blocking backend connection, opened on first use, kept while it works, and
    dropped (to be opened afresh on the next request) after any failure: after a
    timeout or a bad reply, a late or extra reply could still arrive on it and would be
    taken for the answer to the next request."""

    def __init__(self, addr):
        self._addr = addr  # (family, host, port) as parse_args gives it, or None
        self._sock = None

    def ask(self, n):
        """fib(n) from the backend, waited for in this thread, at most
        BACKEND_REPLY_TIMEOUT once connected; raises BackendError."""
        if self._addr is None:
            raise BackendError.not_configured()
        if self._sock is None:
            self._sock = self._connect()
        try:
            return self._exchange(n)
        except BackendError:
            self.close()
            raise

    def close(self):
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def _connect(self):
        _family, host, port = self._addr
        try:
            sock = socket.create_connection((host, port), timeout=BACKEND_CONNECT_TIMEOUT)
        except OSError as error:
            raise BackendError.connect(os_error_text(error)) from None
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass  # only a Nagle delay: the exchange will find any real trouble
        return sock

    def _exchange(self, n):
        # One deadline for the whole exchange, not one per read: a backend trickling a
        # byte at a time still answers within BACKEND_REPLY_TIMEOUT or not at all.
        deadline = time.monotonic() + BACKEND_REPLY_TIMEOUT
        parser = ReplyParser()
        try:
            self._sock.settimeout(BACKEND_REPLY_TIMEOUT)
            self._sock.sendall(backend_request(n))
            while True:
                self._sock.settimeout(max(deadline - time.monotonic(), 0.001))
                data = self._sock.recv(MAX_BACKEND_REPLY_BYTES)
                if not data:
                    raise BackendError.lost("closed by the backend")
                value = parser.push(data)
                if value is not None:
                    return value
        except TimeoutError:
            # Before OSError: socket.timeout is TimeoutError, an OSError.
            raise BackendError.timed_out() from None
        except OSError as error:
            raise BackendError.lost(os_error_text(error)) from None


def serve_connection(conn, max_n, compute, backend_addr):
    """Serves one client until it leaves, sends a line too long, or compute fails.
    A backend failure is a reply, not the end of the connection."""
    session = Session(max_n)
    backend = BlockingBackend(backend_addr)
    with conn:
        try:
            while True:
                data = conn.recv(4096)
                if not data:
                    return
                session.receive(data)
                while True:
                    action = session.next_action()
                    if action is READ or action is CLOSE:
                        break
                    if isinstance(action, Wait):
                        try:
                            session.answer(backend.ask(action.n))
                        except BackendError as error:
                            session.backend_failed(error)
                    else:
                        session.answer(compute(action))
                output = session.take_output()
                if output:
                    # Every reply to what was read goes out in one write.
                    conn.sendall(output)
                if action is CLOSE:
                    conn.shutdown(socket.SHUT_RDWR)
                    return
        except Exception:
            # The client reset or left mid-request, or (processpool.py) the pool is
            # shutting down: this connection ends, the server carries on.
            pass
        finally:
            backend.close()


def accept_forever(listener, max_n, compute, backend_addr):
    """Accepts connections and starts a daemon thread for each."""
    while True:
        try:
            conn, _ = listener.accept()
        except OSError:
            # Aborted connection, or out of file descriptors: carry on, gently.
            time.sleep(0.01)
            continue
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        thread = threading.Thread(
            target=serve_connection,
            args=(conn, max_n, compute, backend_addr),
            daemon=True,
        )
        try:
            thread.start()
        except RuntimeError:
            conn.close()  # out of threads: this client sees its connection closed


def main():
    args = parse_args(__doc__)
    stop = StopSignal()
    listener = listen(args.addr)
    announce(listener)
    threading.Thread(
        target=accept_forever,
        args=(listener, args.max_n, fib, args.backend),
        daemon=True,
    ).start()
    stop.wait()
    # The connection threads are daemons: returning ends them with the process.


if __name__ == "__main__":
    main()
