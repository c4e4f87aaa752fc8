"""Fib server on asyncio streams, each fib sent to a process pool: the fix.

The seed's event loop with the long work moved off it: the connection's coroutine
awaits loop.run_in_executor(process_pool, fib, n), so the loop goes on serving other
clients while a worker process computes, outside this process's GIL.

A `wait N` request is served as in asyncio_inline.py: the connection's coroutine
awaits the backend (--backend) over its own asyncio stream, on the loop; the pool is
for fib alone.
"""

import asyncio
from concurrent.futures import BrokenExecutor

from asyncio_inline import Stopped, run
from fibproto import fib, parse_args, start_pool, stop_pool


def main():
    args = parse_args(__doc__)
    # Started before the event loop and its threads, so no worker is forked from a
    # threaded process.
    pool = start_pool(args.workers)
    try:

        async def compute(n):
            try:
                return await asyncio.get_running_loop().run_in_executor(pool, fib, n)
            except BrokenExecutor:
                raise Stopped from None  # the pool is being shut down

        run(args, compute, interrupt_inline_fib=False)
    finally:
        stop_pool(pool)


if __name__ == "__main__":
    main()
