"""Fib server on asyncio streams, fib computed inline in the connection's coroutine.

The seed's own event loop, blocked: one thread runs every connection's coroutine, and
fib(n) runs on that thread without ever yielding, so while one client's long request
is computed, no other client is read from or answered (the blocked loop).

A `wait N` request is the case the loop is made for: the connection's coroutine asks
the backend (--backend) over an asyncio.open_connection stream that it opens on first
use and keeps for its client's life, and awaits the reply, so the loop serves every
other client meanwhile; a thousand waiting clients cost a thousand small tasks, not a
thousand threads. (An inline fib still blocks the loop, waiting ones included.)
"""

import asyncio
import socket

from fibproto import (
    BACKEND_CONNECT_TIMEOUT,
    BACKEND_REPLY_TIMEOUT,
    CLOSE,
    MAX_BACKEND_REPLY_BYTES,
    READ,
    BackendError,
    ReplyParser,
    Session,
    Wait,
    announce,
    backend_request,
    fib,
    ignore_stop_signals,
    listen,
    on_stop_signal,
    os_error_text,
    parse_args,
)


class AsyncBackend:
    """One backend connection on asyncio streams, opened on first use, kept while it
    works, and dropped (to be opened afresh on the next request) after any failure:
    after a timeout or a bad reply, a late or extra reply could still arrive on it and
    would be taken for the answer to the next request."""

    def __init__(self, addr):
        self._addr = addr  # (family, host, port) as parse_args gives it, or None
        self._reader = self._writer = None

    async def ask(self, n):
        """fib(n) from the backend, awaited without holding the loop, at most
        BACKEND_REPLY_TIMEOUT, connecting included; raises BackendError."""
        if self._addr is None:
            raise BackendError.not_configured()
        try:
            return await asyncio.wait_for(self._ask(n), BACKEND_REPLY_TIMEOUT)
        except asyncio.TimeoutError:
            self.close()
            raise BackendError.timed_out() from None
        except BackendError:
            self.close()
            raise

    def close(self):
        if self._writer is not None:
            self._writer.close()
            self._reader = self._writer = None

    async def _ask(self, n):
        if self._writer is None:
            await self._connect()
        try:
            self._writer.write(backend_request(n))
            await self._writer.drain()
            parser = ReplyParser()
            while True:
                data = await self._reader.read(MAX_BACKEND_REPLY_BYTES)
                if not data:
                    raise BackendError.lost("closed by the backend")
                value = parser.push(data)
                if value is not None:
                    return value
        except OSError as error:
            raise BackendError.lost(os_error_text(error)) from None

    async def _connect(self):
        _family, host, port = self._addr
        try:
            self._reader, self._writer = await asyncio.wait_for(
                asyncio.open_connection(host, port), BACKEND_CONNECT_TIMEOUT
            )
        except asyncio.TimeoutError:
            raise BackendError.connect("timed out") from None
        except OSError as error:
            raise BackendError.connect(os_error_text(error)) from None
        sock = self._writer.get_extra_info("socket")
        if sock is not None:
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass  # only a Nagle delay: the exchange will find any real trouble


async def serve_connection(reader, writer, max_n, compute, backend_addr):
    """Serves one client until it leaves or sends a line too long; compute(n), or the
    backend for a Wait(n), is awaited for every request in turn, so requests are
    answered in order. A backend failure is a reply, not the end of the connection."""
    session = Session(max_n)
    backend = AsyncBackend(backend_addr)
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
                if isinstance(action, Wait):
                    try:
                        session.answer(await backend.ask(action.n))
                    except BackendError as error:
                        session.backend_failed(error)
                else:
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
        backend.close()
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
            lambda reader, writer: serve_connection(
                reader, writer, args.max_n, compute, args.backend
            ),
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
