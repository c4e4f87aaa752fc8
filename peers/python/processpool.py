"""Fib server, a thread per connection, each fib sent to a process pool and waited for.

The seed's server with a ProcessPoolExecutor: a connection's thread submits fib(n) to
the pool and blocks on the result, so the computation runs in another process, outside
this one's GIL. A long request no longer starves the short ones, but every request now
pays for a round trip to a worker process.

A `wait N` request is not work for the pool: as the seed's server does its socket I/O,
the connection's thread asks the backend (--backend) itself, over a blocking socket it
opens on first use and keeps for its client's life (threads.BlockingBackend), and holds
the thread while it waits. Only fib goes to the pool.
"""

import threading

from fibproto import StopSignal, announce, fib, listen, parse_args, start_pool, stop_pool
from threads import accept_forever


def main():
    args = parse_args(__doc__)
    stop = StopSignal()
    # Started before any thread, so no worker is forked from a threaded process.
    pool = start_pool(args.workers)
    try:
        listener = listen(args.addr)
        announce(listener)

        def compute(n):
            return pool.submit(fib, n).result()

        threading.Thread(
            target=accept_forever,
            args=(listener, args.max_n, compute, args.backend),
            daemon=True,
        ).start()
        stop.wait()
    finally:
        stop_pool(pool)


if __name__ == "__main__":
    main()
