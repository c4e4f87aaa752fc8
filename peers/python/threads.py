"""Fib server, a thread per connection, fib computed in that thread: the GIL case.

The seed's threaded server. Threads serve many clients at once, but only one of them
runs Python at a time: a long fib(n) holds the GIL for its whole run, interrupted only
every few milliseconds, so the short requests of other clients queue behind it and
their throughput collapses (the GIL's priority inversion).
"""

import socket
import threading
import time

from fibproto import CLOSE, READ, Session, StopSignal, announce, fib, listen, parse_args


def serve_connection(conn, max_n, compute):
    """Serves one client until it leaves, sends a line too long, or compute fails."""
    session = Session(max_n)
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


def accept_forever(listener, max_n, compute):
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
            target=serve_connection, args=(conn, max_n, compute), daemon=True
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
        target=accept_forever, args=(listener, args.max_n, fib), daemon=True
    ).start()
    stop.wait()
    # The connection threads are daemons: returning ends them with the process.


if __name__ == "__main__":
    main()
