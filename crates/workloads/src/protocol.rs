//! The wire protocol every server speaks, as a sans-I/O state machine.
//!
//! A request is a line of ASCII decimal `n` (`0 <= n <= max_n`) ending in `\n` (`\r\n`
//! accepted); the reply is the decimal `fib(n)` and `\n`. A bad line is answered with
//! `error: <reason>\n` and the connection stays open; a line longer than
//! [`MAX_LINE_LEN`] bytes is answered with `error: line too long\n` and the connection
//! is closed. Pipelined requests are answered in order.
//!
//! The second request form, `wait N` (the `io_wait` workload), is answered by asking the
//! server's backend ([`crate::backend`]) for `fib(N)` and relaying its reply; a backend
//! that is not configured, unreachable, silent or broken is answered `error: backend: …`
//! and the connection stays open. `N` obeys the same `max_n`.
//!
//! Framing: by default a request is a line ([`Framing::Line`]). [`Framing::Seed`] reads
//! as the seed's `server.py` does: one read is one request, newline optional, so the
//! seed's unmodified `perf1.py`/`perf2.py` clients (they send `30` or `1` with no
//! newline) work. Line framing stays the default because the seed's framing breaks on a
//! request split across reads, or two requests coalesced into one.
//!
//! [`Session`] holds the protocol state of one connection and does no I/O, so every
//! server — blocking, async or the hand-built loop — feeds it the bytes it read, asks it
//! for the next step, and writes out the bytes it produced. The protocol is therefore
//! written once, and every server answers bad input the same way.

use std::fmt;
use std::io::Write;

/// The longest request line accepted, in bytes, not counting `\r\n`.
pub const MAX_LINE_LEN: usize = 64;

/// The largest `n` a server accepts unless configured otherwise.
pub const DEFAULT_MAX_N: u32 = 40;

/// What starts a `wait N` request line: answered through the backend.
pub const WAIT_PREFIX: &[u8] = b"wait ";

/// How a server cuts the bytes it reads into requests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum Framing {
    /// A request is a line ending in `\n` (`\r\n` accepted): the protocol's own framing.
    #[default]
    Line,
    /// One read is one request, a trailing newline optional: the seed's `server.py`
    /// framing (`client.recv(100)`), for its unmodified clients. A read that holds more
    /// than one line is one bad request, as it is for the seed.
    Seed,
}

impl Framing {
    /// The framing's name on the command line: `line` or `seed`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Line => "line",
            Self::Seed => "seed",
        }
    }
}

/// A request line, parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    /// `N`: compute `fib(N)`.
    Fib(u32),
    /// `wait N`: ask the backend for `fib(N)` and relay its answer.
    Wait(u32),
}

/// Why a request line was refused; the reply is `error: <Display>\n`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadRequest {
    /// The line was empty.
    Empty,
    /// The line is not an unsigned decimal integer.
    NotANumber,
    /// The number is larger than the server's `max_n`.
    OutOfRange {
        /// The server's limit.
        max_n: u32,
    },
    /// The line is longer than [`MAX_LINE_LEN`]; the server closes the connection.
    TooLong,
}

impl fmt::Display for BadRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => f.write_str("empty request"),
            Self::NotANumber => f.write_str("not a number"),
            Self::OutOfRange { max_n } => write!(f, "out of range: n must be at most {max_n}"),
            Self::TooLong => f.write_str("line too long"),
        }
    }
}

/// Parses one request line (without its `\n`; a trailing `\r` is ignored).
pub fn parse_request(line: &[u8], max_n: u32) -> Result<Request, BadRequest> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line.len() > MAX_LINE_LEN {
        return Err(BadRequest::TooLong);
    }
    match line.strip_prefix(WAIT_PREFIX) {
        Some(number) => parse_number(number, max_n).map(Request::Wait),
        None => parse_number(line, max_n).map(Request::Fib),
    }
}

/// Parses the decimal `n` of a request, `n <= max_n`.
fn parse_number(line: &[u8], max_n: u32) -> Result<u32, BadRequest> {
    if line.is_empty() {
        return Err(BadRequest::Empty);
    }
    if !line.iter().all(u8::is_ascii_digit) {
        return Err(BadRequest::NotANumber);
    }
    // All digits: the only way to fail now is a number too large for u32, which is out
    // of range for any max_n.
    std::str::from_utf8(line)
        .ok()
        .and_then(|digits| digits.parse::<u32>().ok())
        .filter(|&n| n <= max_n)
        .ok_or(BadRequest::OutOfRange { max_n })
}

/// What a server must do next for one connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Compute `fib(n)` and hand it to [`Session::answer`] before asking again.
    Compute(u32),
    /// Ask the backend for `fib(n)` and hand its answer, or why there is none, to
    /// [`Session::answer_backend`] before asking again.
    AskBackend(u32),
    /// Read more bytes and [`Session::receive`] them.
    Read,
    /// Write out [`Session::output`], then close the connection.
    Close,
}

/// The protocol state of one connection: bytes in, requests out, replies buffered.
///
/// Replies accumulate in [`Session::output`] in request order, so a server can write
/// every reply to a pipelined burst with one write.
#[derive(Debug, Clone)]
pub struct Session {
    max_n: u32,
    framing: Framing,
    input: Vec<u8>,
    /// Bytes of `input` already consumed as complete lines.
    consumed: usize,
    output: Vec<u8>,
    awaiting_answer: bool,
    closing: bool,
}

impl Session {
    /// A new connection's state, accepting `n <= max_n`, cutting requests by `framing`.
    pub fn new(max_n: u32, framing: Framing) -> Self {
        Self {
            max_n,
            framing,
            input: Vec::with_capacity(2 * MAX_LINE_LEN),
            consumed: 0,
            // Replies are short (the longest is `error: ...` or a 20-digit number); the
            // buffer grows for a pipelined burst, and starts small because every open
            // connection keeps one.
            output: Vec::with_capacity(64),
            awaiting_answer: false,
            closing: false,
        }
    }

    /// Appends bytes read from the connection: under [`Framing::Seed`], the bytes of
    /// one read (one call) are one request.
    pub fn receive(&mut self, bytes: &[u8]) {
        if self.consumed > 0 {
            // Drop consumed lines before growing, so the buffer stays one line long.
            self.input.drain(..self.consumed);
            self.consumed = 0;
        }
        match self.framing {
            Framing::Line => self.input.extend_from_slice(bytes),
            Framing::Seed => {
                if bytes.is_empty() || self.closing {
                    return;
                }
                let request = bytes.strip_suffix(b"\n").unwrap_or(bytes);
                if request.contains(&b'\n') {
                    // Two lines in one read: the seed's `int()` refuses it too.
                    self.refuse(BadRequest::NotANumber);
                } else if request.strip_suffix(b"\r").unwrap_or(request).len() > MAX_LINE_LEN {
                    self.refuse(BadRequest::TooLong);
                } else {
                    self.input.extend_from_slice(request);
                    self.input.push(b'\n');
                }
            }
        }
    }

    /// The next thing to do. Bad lines are answered here, into the output, without
    /// troubling the caller.
    ///
    /// # Panics
    ///
    /// If called while a [`Action::Compute`] is still unanswered: requests are answered
    /// in order, one at a time.
    pub fn next_action(&mut self) -> Action {
        assert!(
            !self.awaiting_answer,
            "answer the computed request before asking for the next"
        );
        loop {
            if self.closing {
                return Action::Close;
            }
            let pending = &self.input[self.consumed..];
            let Some(line_len) = pending.iter().position(|&byte| byte == b'\n') else {
                // No complete line yet: refuse it as soon as it cannot fit, rather than
                // buffering whatever a client sends.
                if pending.strip_suffix(b"\r").unwrap_or(pending).len() > MAX_LINE_LEN {
                    self.refuse(BadRequest::TooLong);
                    continue;
                }
                return Action::Read;
            };
            let parsed = parse_request(&pending[..line_len], self.max_n);
            self.consumed += line_len + 1;
            match parsed {
                Ok(Request::Fib(n)) => {
                    self.awaiting_answer = true;
                    return Action::Compute(n);
                }
                Ok(Request::Wait(n)) => {
                    self.awaiting_answer = true;
                    return Action::AskBackend(n);
                }
                Err(bad) => self.refuse(bad),
            }
        }
    }

    /// Records the answer to the last [`Action::Compute`] or [`Action::AskBackend`].
    pub fn answer(&mut self, value: u64) {
        debug_assert!(self.awaiting_answer, "answer without a computed request");
        self.awaiting_answer = false;
        // Formats straight into the output buffer: no allocation per reply.
        let _ = writeln!(self.output, "{value}");
    }

    /// Records what the backend said to the last [`Action::AskBackend`]: its answer, or
    /// `error: backend: <why>` with the connection kept open.
    pub fn answer_backend(&mut self, answer: Result<u64, crate::backend::BackendError>) {
        match answer {
            Ok(value) => self.answer(value),
            Err(error) => {
                debug_assert!(self.awaiting_answer, "answer without a computed request");
                self.awaiting_answer = false;
                let _ = writeln!(self.output, "error: backend: {error}");
            }
        }
    }

    /// Replies produced so far and not yet taken.
    pub fn output(&self) -> &[u8] {
        &self.output
    }

    /// Whether there are replies to write.
    pub fn has_output(&self) -> bool {
        !self.output.is_empty()
    }

    /// Marks the first `written` bytes of the output as sent.
    pub fn consume_output(&mut self, written: usize) {
        self.output.drain(..written);
    }

    fn refuse(&mut self, bad: BadRequest) {
        self.output
            .extend_from_slice(format!("error: {bad}\n").as_bytes());
        if bad == BadRequest::TooLong {
            self.closing = true;
            self.input.clear();
            self.consumed = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `input` in the given pieces and answers every request with `fib`.
    fn exchange(pieces: &[&[u8]], max_n: u32) -> (String, bool) {
        exchange_framed(pieces, max_n, Framing::Line)
    }

    fn exchange_framed(pieces: &[&[u8]], max_n: u32, framing: Framing) -> (String, bool) {
        let mut session = Session::new(max_n, framing);
        let mut closed = false;
        for piece in pieces {
            session.receive(piece);
            loop {
                match session.next_action() {
                    Action::Compute(n) => session.answer(crate::fib_reference(n).unwrap()),
                    // Stands in for a backend: 1000 + n, so the test sees which form ran.
                    Action::AskBackend(n) => session.answer(1000 + u64::from(n)),
                    Action::Read => break,
                    Action::Close => {
                        closed = true;
                        break;
                    }
                }
            }
            if closed {
                break;
            }
        }
        (
            String::from_utf8(session.output().to_vec()).unwrap(),
            closed,
        )
    }

    #[test]
    fn answers_requests_in_order() {
        assert_eq!(
            exchange(&[b"0\n1\n10\n40\n"], 40),
            ("0\n1\n55\n102334155\n".into(), false)
        );
        assert_eq!(exchange(&[b"7\r\n"], 40), ("13\n".into(), false));
        assert_eq!(exchange(&[b"007\n"], 40), ("13\n".into(), false));
    }

    #[test]
    fn joins_requests_split_across_reads() {
        assert_eq!(
            exchange(&[b"1", b"2", b"\r", b"\n3\n"], 40),
            ("144\n2\n".into(), false)
        );
    }

    #[test]
    fn refuses_bad_lines_and_keeps_going() {
        let (output, closed) = exchange(
            &[b"\nabc\n-1\n41\n99999999999999999999\n\x00\xff\n 5\n5\n"],
            40,
        );
        assert!(!closed);
        assert_eq!(
            output,
            "error: empty request\n\
             error: not a number\n\
             error: not a number\n\
             error: out of range: n must be at most 40\n\
             error: out of range: n must be at most 40\n\
             error: not a number\n\
             error: not a number\n\
             5\n"
        );
    }

    #[test]
    fn closes_on_a_line_too_long() {
        let long = [b'1'; MAX_LINE_LEN + 1];
        // Without a newline: refused as soon as it cannot fit.
        assert_eq!(
            exchange(&[&long], 40),
            ("error: line too long\n".into(), true)
        );
        // With one, in a single read.
        assert_eq!(
            exchange(&[&long, b"\n"], 40),
            ("error: line too long\n".into(), true)
        );
        // Requests before it are still answered.
        assert_eq!(
            exchange(&[b"3\n", &long], 40),
            ("2\nerror: line too long\n".into(), true)
        );
        // A line of exactly the limit is fine, with or without \r.
        let mut exact = vec![b'0'; MAX_LINE_LEN - 1];
        exact.extend_from_slice(b"9\r\n");
        assert_eq!(exchange(&[&exact], 40), ("34\n".into(), false));
    }

    #[test]
    fn output_is_consumed_in_parts() {
        let mut session = Session::new(40, Framing::Line);
        session.receive(b"10\n");
        assert_eq!(session.next_action(), Action::Compute(10));
        session.answer(55);
        assert_eq!(session.next_action(), Action::Read);
        session.consume_output(1);
        assert_eq!(session.output(), b"5\n");
        session.consume_output(2);
        assert!(!session.has_output());
    }

    #[test]
    fn wait_requests_ask_the_backend_in_order_with_the_others() {
        assert_eq!(
            exchange(&[b"wait 5\n3\nwait 40\r\n"], 40),
            ("1005\n2\n1040\n".into(), false)
        );
        let (output, closed) = exchange(&[b"wait\nwait \nwait x\nwait 41\nWAIT 1\nwait  1\n"], 40);
        assert!(!closed);
        assert_eq!(
            output,
            "error: not a number\n\
             error: empty request\n\
             error: not a number\n\
             error: out of range: n must be at most 40\n\
             error: not a number\n\
             error: not a number\n"
        );
    }

    #[test]
    fn a_backend_failure_is_an_error_reply_and_the_session_goes_on() {
        let mut session = Session::new(40, Framing::Line);
        session.receive(b"wait 3\n4\n");
        assert_eq!(session.next_action(), Action::AskBackend(3));
        session.answer_backend(Err(crate::backend::BackendError::NotConfigured));
        assert_eq!(session.next_action(), Action::Compute(4));
        session.answer(3);
        assert_eq!(session.next_action(), Action::Read);
        assert_eq!(
            session.output(),
            b"error: backend: no backend configured (serve --backend ADDR)\n3\n"
        );
    }

    #[test]
    fn seed_framing_takes_one_read_as_one_request() {
        // perf2.py sends `1` with no newline and reads the reply before sending again.
        assert_eq!(
            exchange_framed(&[b"1", b"30", b"7\n", b"7\r\n"], 40, Framing::Seed),
            ("1\n832040\n13\n13\n".into(), false)
        );
        // A request split over two reads is two requests, as for the seed's server:
        // why line framing stays the default.
        assert_eq!(
            exchange_framed(&[b"1", b"2"], 40, Framing::Seed),
            ("1\n1\n".into(), false)
        );
        // Two lines in one read are one bad request.
        assert_eq!(
            exchange_framed(&[b"1\n2\n", b"3"], 40, Framing::Seed),
            ("error: not a number\n2\n".into(), false)
        );
        assert_eq!(
            exchange_framed(&[b"wait 2"], 40, Framing::Seed),
            ("1002\n".into(), false)
        );
        let long = [b'1'; MAX_LINE_LEN + 1];
        assert_eq!(
            exchange_framed(&[&long, b"1"], 40, Framing::Seed),
            ("error: line too long\n".into(), true)
        );
    }
}
