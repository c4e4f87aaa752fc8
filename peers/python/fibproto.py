"""What the four Python fib servers share: fib, the wire protocol, and the plumbing.

The protocol is the one every concbench server speaks (crates/workloads/src/protocol.rs):
a request is a line of ASCII decimal digits `n` ending in `\\n` (`\\r\\n` accepted), the
reply is the decimal `fib(n)` and `\\n`. A bad line is answered with `error: <reason>\\n`
and the connection stays open; a line longer than MAX_LINE_LEN bytes is answered with
`error: line too long\\n` and the connection is closed. Pipelined requests are answered
in order.

Standard library only.
"""

import argparse
import ipaddress
import os
import signal
import socket
import sys
from concurrent.futures import ProcessPoolExecutor

# The longest request line accepted, in bytes, not counting `\r\n`.
MAX_LINE_LEN = 64
# The largest n served unless --max-n says otherwise.
DEFAULT_MAX_N = 40


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


def parse_request(line, max_n):
    """Parses one request line (without its `\\n`; a trailing `\\r` is ignored)."""
    if line.endswith(b"\r"):
        line = line[:-1]
    if len(line) > MAX_LINE_LEN:
        raise BadRequest(TOO_LONG)
    if not line:
        raise BadRequest("empty request")
    # bytes.isdigit() is true only for ASCII 0-9, so no sign, space, `_` or Unicode digit.
    if not line.isdigit():
        raise BadRequest("not a number")
    n = int(line)
    if n > max_n:
        raise BadRequest(f"out of range: n must be at most {max_n}")
    return n


# What Session.next_action() returns besides an int n to compute.
READ = "read"  # read more bytes and receive() them
CLOSE = "close"  # write out take_output(), then close the connection


class Session:
    """The protocol state of one connection, without I/O: bytes in, replies out.

    A server feeds it what it read, then calls next_action() until it says READ or
    CLOSE, computing fib(n) and calling answer() for every int n it returns; then it
    writes take_output() (every reply to what was read, in one write).
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
        """Records fib(n) for the n last returned by next_action()."""
        self._output += b"%d\n" % value

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
    """The command line every server shares: --addr, --max-n, --workers."""
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
    return parser.parse_args()


def listen(addr):
    """A listening TCP socket on addr, as parsed by parse_args."""
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
