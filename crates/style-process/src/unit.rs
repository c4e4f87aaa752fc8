//! Worker processes outside the pool: the one-shot `spawn` and `sleepers` units of the
//! process style, and the `ping_pong` partner, each a whole `concbench worker` process.

use std::io::{self, BufReader, BufWriter};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

use workloads::WorkerCommand;

use crate::message::{Request, Response};

/// A worker process started for one unit of work; killed and reaped if dropped before
/// it finished.
#[derive(Debug)]
pub(crate) struct UnitProcess {
    child: Child,
    to_worker: Option<BufWriter<ChildStdin>>,
    from_worker: BufReader<ChildStdout>,
}

impl UnitProcess {
    /// Starts a worker process.
    pub(crate) fn start(command: &WorkerCommand) -> io::Result<Self> {
        let mut child = Command::new(&command.program)
            .args(&command.args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            unreachable!("both pipes were requested above");
        };
        Ok(Self {
            child,
            to_worker: Some(BufWriter::new(stdin)),
            from_worker: BufReader::new(stdout),
        })
    }

    /// Starts a worker process for a single request: sends it and closes the worker's
    /// input, so the worker exits once it has answered.
    pub(crate) fn start_with(command: &WorkerCommand, request: &Request) -> io::Result<Self> {
        let mut unit = Self::start(command)?;
        unit.send(request)?;
        unit.to_worker = None;
        Ok(unit)
    }

    /// Sends one request.
    pub(crate) fn send(&mut self, request: &Request) -> io::Result<()> {
        let to_worker = self.to_worker.as_mut().ok_or_else(|| {
            io::Error::new(io::ErrorKind::BrokenPipe, "the worker's input is closed")
        })?;
        request.write_to(to_worker)
    }

    /// Reads the answer to one request.
    pub(crate) fn receive(&mut self) -> io::Result<u64> {
        Response::read_from(&mut self.from_worker)?.into_single()
    }

    /// Reads a `[received, out of order]` tally.
    pub(crate) fn receive_tally(&mut self) -> io::Result<(u64, u64)> {
        match Response::read_from(&mut self.from_worker)? {
            Response::Answers(values) => match values.as_slice() {
                [received, out_of_order] => Ok((*received, *out_of_order)),
                _ => Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("a tally is two values, got {}", values.len()),
                )),
            },
            Response::Error(message) => Err(io::Error::other(message)),
        }
    }

    /// The process id, for tests that check none is left behind.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Reads the last answer, closes the worker's input and waits for it to exit.
    pub(crate) fn finish(mut self) -> io::Result<u64> {
        let answer = self.receive()?;
        self.to_worker = None;
        let status = self.child.wait()?;
        if status.success() {
            Ok(answer)
        } else {
            Err(io::Error::other(format!(
                "a unit process exited with {status}"
            )))
        }
    }
}

impl Drop for UnitProcess {
    fn drop(&mut self) {
        // After `finish` the child is reaped already and this does nothing harmful.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
