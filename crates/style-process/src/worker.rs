//! The worker side: the loop a worker process runs on its stdin and stdout.

use std::io::{self, BufReader, BufWriter, Read, Write};
use std::time::{Duration, Instant};

use workloads::tasks::Receiver;
use workloads::{MAX_REFERENCE_N, fib};

use crate::message::{Request, Response};

/// Serves requests from `input` and writes responses to `output` until `input` ends.
///
/// This is the whole life of a worker process: the parent writes a request, the worker
/// computes and answers, and when the parent closes the pipe (or its process dies) the
/// worker sees end of input and returns, so a worker never outlives its parent.
/// Programs that serve as worker processes (see [`workloads::WorkerCommand`]) call this
/// with their stdin and stdout.
pub fn run_worker(input: impl Read, output: impl Write) -> io::Result<()> {
    let mut input = BufReader::new(input);
    let mut output = BufWriter::new(output);
    // The pings of the current ping-pong exchange, checked as the other styles' ponging
    // units check theirs.
    let mut pings = Receiver::default();
    while let Some(request) = Request::read_from(&mut input)? {
        let response = match request {
            Request::Fib(inputs) => match inputs.iter().find(|&&n| n > MAX_REFERENCE_N) {
                Some(n) => Response::Error(format!("fib({n}) overflows u64")),
                None => Response::Answers(inputs.iter().map(|&n| fib(n)).collect()),
            },
            Request::Echo(values) => Response::Answers(values),
            Request::Sleep(micros) => {
                let began = Instant::now();
                std::thread::sleep(Duration::from_micros(micros));
                let slept = u64::try_from(began.elapsed().as_micros()).unwrap_or(u64::MAX);
                Response::Answers(vec![slept])
            }
            Request::Pong(value) => {
                pings.receive(value);
                Response::Answers(vec![value])
            }
            Request::PongTally => {
                let tally = std::mem::take(&mut pings);
                Response::Answers(vec![tally.received(), tally.out_of_order()])
            }
        };
        response.write_to(&mut output)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_each_request_until_end_of_input() {
        let mut input = Vec::new();
        for request in [
            Request::Fib(vec![10, 20]),
            Request::Fib(vec![99]),
            Request::Echo(vec![3, 4]),
            Request::Sleep(1000),
            Request::Pong(0),
            Request::Pong(1),
            Request::Pong(3),
            Request::PongTally,
            Request::Pong(0),
            Request::PongTally,
        ] {
            request.write_to(&mut input).unwrap();
        }
        let mut output = Vec::new();
        run_worker(input.as_slice(), &mut output).unwrap();
        let mut output = output.as_slice();
        let mut next = || Response::read_from(&mut output).unwrap();
        assert_eq!(next(), Response::Answers(vec![55, 6765]));
        assert_eq!(next(), Response::Error("fib(99) overflows u64".into()));
        assert_eq!(next(), Response::Answers(vec![3, 4]));
        assert!(next().into_single().unwrap() >= 1000);
        for pong in [0, 1, 3] {
            assert_eq!(next(), Response::Answers(vec![pong]));
        }
        // Three pings, the last one out of order; then a fresh exchange.
        assert_eq!(next(), Response::Answers(vec![3, 1]));
        assert_eq!(next(), Response::Answers(vec![0]));
        assert_eq!(next(), Response::Answers(vec![1, 0]));
        assert!(output.is_empty());
    }
}
