//! The worker side: the loop a worker process runs on its stdin and stdout.

use std::io::{self, BufReader, BufWriter, Read, Write};

use workloads::{MAX_REFERENCE_N, fib};

use crate::message::{Request, Response};

/// Serves requests from `input` and writes responses to `output` until `input` ends.
///
/// This is the whole life of a worker process: the pool writes a request, the worker
/// computes and answers, and when the pool closes the pipe (or its process dies) the
/// worker sees end of input and returns, so a worker never outlives its pool. Programs
/// that serve as worker processes (see [`workloads::WorkerCommand`]) call this with
/// their stdin and stdout.
pub fn run_worker(input: impl Read, output: impl Write) -> io::Result<()> {
    let mut input = BufReader::new(input);
    let mut output = BufWriter::new(output);
    while let Some(request) = Request::read_from(&mut input)? {
        let response = match request {
            Request::Fib(inputs) => match inputs.iter().find(|&&n| n > MAX_REFERENCE_N) {
                Some(n) => Response::Error(format!("fib({n}) overflows u64")),
                None => Response::Answers(inputs.iter().map(|&n| fib(n)).collect()),
            },
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
        Request::Fib(vec![10, 20]).write_to(&mut input).unwrap();
        Request::Fib(vec![99]).write_to(&mut input).unwrap();
        let mut output = Vec::new();
        run_worker(input.as_slice(), &mut output).unwrap();
        let mut output = output.as_slice();
        assert_eq!(
            Response::read_from(&mut output).unwrap(),
            Response::Answers(vec![55, 6765])
        );
        assert_eq!(
            Response::read_from(&mut output).unwrap(),
            Response::Error("fib(99) overflows u64".into())
        );
        assert!(output.is_empty());
    }
}
