"""What the four Python fib servers share: fib, the wire protocol, and the plumbing.

The protocol is the one every concbench server speaks (crates/workloads/src/protocol.rs):
a request is a line of ASCII decimal digits `n` ending in `\\n` (`\\r\\n` accepted), the
reply is the decimal `fib(n)` and `\\n`. A bad line is answered with `error: <reason>\\n`
and the connection stays open; a line longer than MAX_LINE_LEN bytes is answered with
`error: line too long\\n` and the connection is closed. Pipelined requests are answered
in order.

The second request form, `wait N` (the io_wait workload), is answered by asking the
server's backend (`--backend HOST:PORT`, crates/workloads/src/backend.rs) for fib(N):
the server sends it `N\\n`, the backend answers `fib(N)\\n` after a delay, and the
server relays the number. A backend that is not configured, unreachable, silent or
broken is answered `error: backend: <why>\\n` and the client's connection stays open.
`N` obeys the same max_n. The parsing of both forms and the check of a backend's reply
live here, once; how a server holds its backend connections is part of its style, so
each server's own module does that I/O.

Standard library only.
"""

import argparse
import ipaddress
import os
import signal
import socket
import sys
from collections import namedtuple
from concurrent.futures import ProcessPoolExecutor

# The longest request line accepted, in bytes, not counting `\r\n`.
MAX_LINE_LEN = 64
# The largest n served unless --max-n says otherwise.
DEFAULT_MAX_N = 40
# What starts a `wait N` request line: answered through the backend.
WAIT_PREFIX = b"wait "


def fib(n):
    """The naive doubly recursive Fibonacci: the CPU cost model, so no memoisation."""
    if n < 2:
        return n
    return fib(n - 1) + fib(n - 2)


class BadRequest(Exception):
    """A refused request line; the reply is `error: <reason>\\n`."""

    def __init__(self, reason):
        super().__init__(reason)
        self.reason = reason


TOO_LONG = "line too long"


class Wait(namedtuple("Wait", "n")):
    """A `wait N` request: ask the backend for fib(n) and relay its answer. A type of
    its own, so that a server tells it from a plain request's int n at a glance."""

    __slots__ = ()


def parse_request(line, max_n):
    """Parses one request line (without its `\\n`; a trailing `\\r` is ignored): an int n
    for the plain form, Wait(n) for `wait N`."""
    if line.endswith(b"\r"):
        line = line[:-1]
    # The limit counts the whole line, prefix included, as the Rust parser does.
    if len(line) > MAX_LINE_LEN:
        raise BadRequest(TOO_LONG)
    # Exactly `wait ` and digits: `wait`, `WAIT 1` and `wait  1` are not numbers.
    if line.startswith(WAIT_PREFIX):
        return Wait(_parse_number(line[len(WAIT_PREFIX) :], max_n))
    return _parse_number(line, max_n)


def _parse_number(line, max_n):
    """Parses the decimal n of a request, n <= max_n."""
    if not line:
        raise BadRequest("empty request")
    # bytes.isdigit() is true only for ASCII 0-9, so no sign, space, `_` or Unicode digit.
    if not line.isdigit():
        raise BadRequest("not a number")
    n = int(line)
    if n > max_n:
        raise BadRequest(f"out of range: n must be at most {max_n}")
    return n


# What Session.next_action() returns besides an int n to compute or a Wait(n).
READ = "read"  # read more bytes and receive() them
CLOSE = "close"  # write out take_output(), then close the connection


class Session:
    """The protocol state of one connection, without I/O: bytes in, replies out.

    A server feeds it what it read, then calls next_action() until it says READ or
    CLOSE, computing fib(n) and calling answer() for every int n it returns, and for
    every Wait(n) asking its backend and calling answer() with the backend's number or
    backend_failed() with the BackendError; then it writes take_output() (every reply
    to what was read, in one write). One request is answered before the next is asked
    for, so replies stay in request order whichever form each request took.
    """

    def __init__(self, max_n):
        self.max_n = max_n
        self._input = bytearray()
        self._output = bytearray()
        self._closing = False

    def receive(self, data):
        self._input += data

    def next_action(self):
        while not self._closing:
            end = self._input.find(b"\n")
            if end < 0:
                # No complete line yet: refuse it as soon as it cannot fit, rather than
                # buffering whatever a client sends.
                pending = len(self._input) - self._input.endswith(b"\r")
                if pending > MAX_LINE_LEN:
                    self._refuse(TOO_LONG)
                    continue
                return READ
            line = bytes(self._input[:end])
            del self._input[: end + 1]
            try:
                return parse_request(line, self.max_n)
            except BadRequest as bad:
                self._refuse(bad.reason)
        return CLOSE

    def answer(self, value):
        """Records fib(n) for the n or Wait(n) last returned by next_action()."""
        self._output += b"%d\n" % value

    def backend_failed(self, error):
        """Records why the backend gave no answer to the Wait(n) last returned by
        next_action(): `error: backend: <why>`, and the connection stays open."""
        self._output += b"error: backend: %s\n" % str(error).encode()

    def take_output(self):
        """The replies produced so far, which are then forgotten."""
        output = bytes(self._output)
        self._output.clear()
        return output

    def _refuse(self, reason):
        self._output += b"error: %s\n" % reason.encode()
        if reason == TOO_LONG:
            self._closing = True
            self._input.clear()


# The backend: what it is sent, and the check of what it answers.

# The longest backend reply accepted: 20 digits, a newline, and room for a short
# `error: ...` line.
MAX_BACKEND_REPLY_BYTES = 128
# How long a server waits for the backend to connect, in seconds.
BACKEND_CONNECT_TIMEOUT = 2.0
# How long a server waits for one backend reply before answering `error: backend: timed
# out` (the backend's delay is milliseconds; this is for a silent backend).
BACKEND_REPLY_TIMEOUT = 10.0
# A backend reply is a u64, as for the Rust servers: more is a bad reply.
_U64_MAX = 2**64 - 1


class BackendError(Exception):
    """Why the backend gave no answer; the client reads `error: backend: <str(error)>`.

    The messages are the Rust servers' (BackendError's Display in backend.rs), so a
    client sees the same kinds of failure from every server; the constructors below
    name them.
    """

    @classmethod
    def not_configured(cls):
        """The server was started without --backend."""
        return cls("no backend configured (serve --backend ADDR)")

    @classmethod
    def connect(cls, why):
        """The backend could not be reached."""
        return cls(f"cannot connect: {why}")

    @classmethod
    def lost(cls, why):
        """The connection failed, or the backend closed it before answering."""
        return cls(f"connection lost: {why}")

    @classmethod
    def timed_out(cls):
        """No reply within BACKEND_REPLY_TIMEOUT."""
        return cls("timed out")

    @classmethod
    def bad_reply(cls):
        """The backend answered something other than a number, too much, or more than
        was asked."""
        return cls("bad reply")

    @classmethod
    def refused(cls, why):
        """The backend answered `error: <why>`."""
        return cls(f"the backend refused: {why}")


def os_error_text(error):
    """An OSError as Rust's io::Error shows it (`Connection refused (os error 111)`),
    so that even the text after `cannot connect: ` matches the Rust servers'. Made from
    the errno rather than error.strerror, which asyncio fills with its own words
    (`Connect call failed (...)`); a resolver error's code is no errno."""
    if error.errno and not isinstance(error, socket.gaierror):
        return f"{os.strerror(error.errno)} (os error {error.errno})"
    return str(error) or type(error).__name__


def backend_request(n):
    """The bytes of the backend request for fib(n)."""
    return b"%d\n" % n


class ReplyParser:
    """The check of one backend reply, without I/O: push() what was read until it has
    a verdict. Both the blocking and the asyncio servers read through it, so a reply
    is judged the same way whoever reads it."""

    def __init__(self):
        self._line = bytearray()

    def push(self, data):
        """Adds bytes read from the backend: None while the reply line is incomplete,
        then the number; raises BackendError for a bad or refusing reply.

        The line is bounded (MAX_BACKEND_REPLY_BYTES), so an endless one is refused
        without growing. Bytes after the reply's newline are a bad reply too: one
        request is outstanding, so nothing else may come, and the connection that
        carried them is no longer in step with its requests.
        """
        if len(self._line) + len(data) > MAX_BACKEND_REPLY_BYTES:
            raise BackendError.bad_reply()
        self._line += data
        end = self._line.find(b"\n")
        if end < 0:
            return None
        if end + 1 != len(self._line):
            raise BackendError.bad_reply()
        line = bytes(self._line[:end])
        if line.endswith(b"\r"):
            line = line[:-1]
        if line.startswith(b"error: "):
            raise BackendError.refused(line[len(b"error: ") :].decode(errors="replace"))
        # bytes.isdigit(): ASCII 0-9 only, and false for an empty line.
        if not line.isdigit():
            raise BackendError.bad_reply()
        value = int(line)
        if value > _U64_MAX:
            raise BackendError.bad_reply()
        return value


# Command line, listening socket, signals and process pools.


def _address(text):
    host, colon, port = text.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host, family = host[1:-1], socket.AF_INET6
    else:
        family = socket.AF_INET
    try:
        if not colon or not port.isdigit() or int(port) > 65535:
            raise ValueError
        if ipaddress.ip_address(host).version != (6 if family == socket.AF_INET6 else 4):
            raise ValueError
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected IPV4:PORT or [IPV6]:PORT, got {text!r}"
        ) from None
    return family, host, int(port)


def _natural(minimum):
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < minimum:
            raise argparse.ArgumentTypeError(f"expected an integer >= {minimum}, got {text!r}")
        return value

    return parse


def parse_args(description):
    """The command line every server shares: --addr, --max-n, --workers, --backend."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(
        "--addr",
        type=_address,
        default="127.0.0.1:0",
        help="address to listen on, IPV4:PORT or [IPV6]:PORT; port 0 picks a free port "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--max-n",
        type=_natural(0),
        default=DEFAULT_MAX_N,
        help="the largest n served; larger ones are answered `error: out of range` "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--workers",
        type=_natural(1),
        default=os.cpu_count() or 1,
        help="process-pool size, where the server has one (default: the CPU count)",
    )
    parser.add_argument(
        "--backend",
        type=_address,
        default=None,
        help="the backend that answers `wait N` requests, IPV4:PORT or [IPV6]:PORT "
        "(default: none; `wait N` is then answered `error: backend: no backend "
        "configured`)",
    )
    return parser.parse_args()


def raise_open_files_limit():
    """Raises the soft limit on open files to the hard one, as `concbench serve` does:
    many connections (the connections and io scenarios) need many descriptors, and
    each waiting request holds a backend connection too."""
    try:
        import resource

        _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ImportError, ValueError, OSError):
        pass  # the limit stays as it was; connections beyond it are refused


def listen(addr):
    """A listening TCP socket on addr, as parsed by parse_args."""
    raise_open_files_limit()
    family, host, port = addr
    try:
        return socket.create_server((host, port), family=family, backlog=1024)
    except OSError as error:
        shown = f"[{host}]" if family == socket.AF_INET6 else host
        sys.exit(f"cannot listen on {shown}:{port}: {error}")


def announce(sock):
    """Prints `listening on HOST:PORT`, the first and only line on stdout."""
    host, port = sock.getsockname()[:2]
    if sock.family == socket.AF_INET6:
        host = f"[{host}]"
    sys.stdout.write(f"listening on {host}:{port}\n")
    sys.stdout.flush()


def on_stop_signal(callback):
    """Calls callback() (in the main thread, between bytecodes) on SIGTERM or SIGINT.

    A Python-level handler interrupts a blocking call in the main thread with EINTR, runs,
    and (PEP 475) the call is retried, so callback must itself wake whatever waits.
    """
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda _signum, _frame: callback())


class StopSignal:
    """Catches SIGTERM and SIGINT from now on; wait() returns once one has arrived.

    The handler writes a byte to a pipe that wait() reads, so a signal that arrives
    before wait() is called is not lost, and no lock is taken in the handler.
    """

    def __init__(self):
        self._read, self._write = os.pipe()
        os.set_blocking(self._write, False)
        on_stop_signal(self._set)

    def _set(self):
        try:
            os.write(self._write, b"!")
        except BlockingIOError:
            pass  # the pipe is full: wait() has plenty to read already

    def wait(self):
        os.read(self._read, 1)


def ignore_stop_signals():
    """While shutting down, a second SIGTERM or SIGINT changes nothing."""
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, signal.SIG_IGN)


def _init_worker(server_pid):
    # A forked worker inherits the server's handlers: SIGTERM must kill it again (that
    # is how the pool is stopped), and a terminal's ^C goes to the server alone, which
    # then stops its workers.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # Linux: die with the server even when it is killed outright (SIGKILL), rather
    # than wait forever for work. The death signal follows the thread that started
    # this worker: start_pool starts them all from the main thread.
    try:
        import ctypes

        PR_SET_PDEATHSIG = 1
        ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL))
    except (OSError, AttributeError):
        pass
    # The server may have died between this worker's fork and the prctl above, and
    # then no death signal will ever come: the worker would wait for work forever,
    # holding the pool's pipes. Its parent is then no longer the server.
    if os.getppid() != server_pid:
        os._exit(0)


def start_pool(workers):
    """A process pool with its workers started. Call it from the main thread before
    any other thread starts, so that (with the fork start method) no worker is forked
    from a threaded process; the first request then does not pay for the start either."""
    pool = ProcessPoolExecutor(
        max_workers=workers, initializer=_init_worker, initargs=(os.getpid(),)
    )
    # One job per worker, submitted at once: the start methods that start workers on
    # demand (spawn, forkserver) then start them all here too.
    for future in [pool.submit(fib, 0) for _ in range(workers)]:
        future.result()
    return pool


def stop_pool(pool, grace=1.0):
    """Shuts the pool down without waiting for running requests, and terminates its
    worker processes: a worker busy with fib(40) must not outlive the server."""
    # Private, but the only handles on the workers and the pool's manager thread;
    # shutdown() forgets them.
    processes = list((pool._processes or {}).values())
    manager = pool._executor_manager_thread
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        process.terminate()
    for process in processes:
        process.join(grace)
        if process.is_alive():
            process.kill()
            process.join(grace)
    # The manager thread ends once its workers have: let it finish before the
    # interpreter's exit wakes it (Python 3.12.1 races there, and prints an OSError).
    if manager is not None:
        manager.join(grace)
