"""Fib server on asyncio streams, fib computed inline in the connection's coroutine.

The seed's own event loop, blocked: one thread runs every connection's coroutine, and
fib(n) runs on that thread without ever yielding, so while one client's long request
is computed, no other client is read from or answered (the blocked loop).
"""

import asyncio

from fibproto import (
    CLOSE,
    READ,
    Session,
    announce,
    fib,
    ignore_stop_signals,
    listen,
    on_stop_signal,
    parse_args,
)


async def serve_connection(reader, writer, max_n, compute):
    """Serves one client until it leaves or sends a line too long; compute(n) is
    awaited for every request in turn, so requests are answered in order."""
    session = Session(max_n)
    try:
        while True:
            data = await reader.read(4096)
            if not data:
                return
            session.receive(data)
            while True:
                action = session.next_action()
                if action is READ or action is CLOSE:
                    break
                session.answer(await compute(action))
            output = session.take_output()
            if output:
                # Every reply to what was read goes out in one write.
                writer.write(output)
                await writer.drain()
            if action is CLOSE:
                return
    except (OSError, Stopped, asyncio.CancelledError):
        # The client reset or left mid-request, or the server is stopping: this
        # connection ends, the server carries on. A cancellation (the runner closing)
        # ends the coroutine normally: Python 3.11's start_server logs a traceback for
        # a connection task that ends cancelled.
        pass
    finally:
        writer.close()


class Stopped(BaseException):
    """Raised out of a computation that the server's stop interrupts. A BaseException,
    so that nothing on its way out of fib can catch it."""


_in_fib = False  # whether the loop's thread is inside fib_inline
_stopping = False  # set by the stop signal: no fib starts after it


def fib_inline(n):
    """fib(n), which a stop signal's handler interrupts by raising Stopped: an inline
    fib would otherwise hold the loop, and so the stop, for as long as it runs. Once
    the stop has begun, no new fib starts either: requests already read from other
    connections (hogs queued behind the one interrupted) would each hold the loop for
    seconds before the loop got to the stop."""
    global _in_fib
    if _stopping:
        raise Stopped
    try:
        _in_fib = True
        return fib(n)
    finally:
        _in_fib = False


def run(args, compute, interrupt_inline_fib):
    """Serves on asyncio streams until SIGTERM or SIGINT."""
    stopping = asyncio.Event()

    async def serve():
        listener = listen(args.addr)
        server = await asyncio.start_server(
            lambda reader, writer: serve_connection(reader, writer, args.max_n, compute),
            sock=listener,
            backlog=1024,
        )
        announce(listener)
        await stopping.wait()
        # Stop accepting; the connections still open are cancelled as the runner
        # closes (not server.wait_closed(), which in 3.12+ waits for every client).
        server.close()

    with asyncio.Runner() as runner:
        loop = runner.get_loop()

        def on_stop():
            global _stopping
            _stopping = True
            ignore_stop_signals()
            # A plain Python handler rather than loop.add_signal_handler, so that it
            # runs even while the loop's thread is inside fib.
            loop.call_soon_threadsafe(stopping.set)
            if interrupt_inline_fib and _in_fib:
                raise Stopped

        # Installed before the runner starts, which then leaves SIGINT alone.
        on_stop_signal(on_stop)
        runner.run(serve())


def main():
    args = parse_args(__doc__)

    async def compute(n):
        return fib_inline(n)

    run(args, compute, interrupt_inline_fib=True)


if __name__ == "__main__":
    main()
