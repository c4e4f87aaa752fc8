//! Worker processes: one per (build, benchmark), started from a `concbench` binary's
//! hidden `measure-worker` subcommand, and killed and reaped when dropped.
//!
//! A reader thread per worker turns its stdout into replies, so the engine can wait with
//! a timeout and a hung worker is an error, not a hang. Its stderr is kept (the last few
//! kilobytes) for the error message when it fails.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::MeasureError;
use crate::engine::{Contender, Sample};
use crate::protocol::{MAX_LINE_BYTES, PROTOCOL_VERSION, Reply, Request};
use crate::suite::BenchmarkId;

/// The hidden subcommand that turns `concbench` into a worker process of the engine.
pub const WORKER_SUBCOMMAND: &str = "measure-worker";

/// How long a worker may take to build its style and check its first answer.
pub const READY_TIMEOUT: Duration = Duration::from_secs(120);

/// How long one sample may take beyond what its calibration predicts.
pub const SAMPLE_TIMEOUT: Duration = Duration::from_secs(60);

/// Which of the two builds a worker runs, in A/B comparisons.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The one build of a cohort run.
    Only,
    /// The base build of a comparison.
    Base,
    /// The head build of a comparison.
    Head,
}

/// A `concbench` binary that can start workers, and the worker count they build styles
/// with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerProgram {
    /// The binary.
    pub program: PathBuf,
    /// Workers per style (threads, pool size, processes).
    pub workers: NonZeroUsize,
}

/// One benchmark of a build's list: runs here, or why not.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ListedBenchmark {
    /// `group/style/parameter`.
    pub id: String,
    /// `None` when it runs here, else the reason it does not.
    pub skipped: Option<String>,
}

impl WorkerProgram {
    /// The benchmarks of `groups` (comma-separated names) this build knows, from
    /// `BIN measure-worker --list --groups G`.
    pub fn list(&self, groups: &str) -> Result<Vec<ListedBenchmark>, MeasureError> {
        let output = Command::new(&self.program)
            .args([WORKER_SUBCOMMAND, "--list", "--groups", groups])
            .stdin(Stdio::null())
            .stderr(Stdio::piped())
            .output()
            .map_err(|source| MeasureError::Spawn {
                program: self.program.clone(),
                source,
            })?;
        if !output.status.success() {
            return Err(MeasureError::Unusable(format!(
                "{} {WORKER_SUBCOMMAND} --list failed ({}): {} — is it a concbench build with the measurement engine?",
                self.program.display(),
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            )));
        }
        serde_json::from_slice(&output.stdout).map_err(|error| {
            MeasureError::Unusable(format!(
                "{} {WORKER_SUBCOMMAND} --list printed no benchmark list: {error}",
                self.program.display()
            ))
        })
    }

    /// Starts a worker for `id`; it is not ready until [`WorkerProcess::wait_ready`].
    pub fn spawn(&self, id: &BenchmarkId, side: Side) -> Result<WorkerProcess, MeasureError> {
        let mut child = Command::new(&self.program)
            .arg(WORKER_SUBCOMMAND)
            .arg("--benchmark")
            .arg(id.to_string())
            .arg("--workers")
            .arg(self.workers.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|source| MeasureError::Spawn {
                program: self.program.clone(),
                source,
            })?;
        let label = match side {
            Side::Only => id.to_string(),
            Side::Base => format!("{id} (base)"),
            Side::Head => format!("{id} (head)"),
        };
        let (Some(stdin), Some(stdout), Some(stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            let _ = child.kill();
            let _ = child.wait();
            return Err(MeasureError::Worker(format!(
                "{label}: no pipes to the worker"
            )));
        };
        let (sender, replies) = mpsc::channel();
        let reader_label = label.clone();
        std::thread::spawn(move || {
            let mut stdout = BufReader::new(stdout);
            loop {
                let mut line = String::new();
                let reply = match (&mut stdout)
                    .take(MAX_LINE_BYTES as u64)
                    .read_line(&mut line)
                {
                    Ok(0) => Err(format!("{reader_label}: the worker exited")),
                    Ok(_) if !line.ends_with('\n') => Err(format!(
                        "{reader_label}: a reply longer than {MAX_LINE_BYTES} bytes"
                    )),
                    Ok(_) => serde_json::from_str::<Reply>(line.trim_end()).map_err(|error| {
                        format!("{reader_label}: unreadable reply {line:?}: {error}")
                    }),
                    Err(error) => Err(format!("{reader_label}: cannot read the worker: {error}")),
                };
                let last = reply.is_err();
                if sender.send(reply).is_err() || last {
                    return;
                }
            }
        });
        let stderr_tail = Arc::new(Mutex::new(VecDeque::new()));
        let tail = Arc::clone(&stderr_tail);
        std::thread::spawn(move || {
            let mut buffer = [0u8; 4096];
            let mut stderr = stderr;
            while let Ok(read @ 1..) = stderr.read(&mut buffer) {
                if let Ok(mut tail) = tail.lock() {
                    tail.extend(&buffer[..read]);
                    let excess = tail.len().saturating_sub(STDERR_TAIL_BYTES);
                    tail.drain(..excess);
                }
            }
        });
        Ok(WorkerProcess {
            label,
            child,
            stdin: Some(stdin),
            replies,
            stderr_tail,
            pid: None,
        })
    }
}

const STDERR_TAIL_BYTES: usize = 4096;

/// What a started worker said first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Readiness {
    /// Ready to sample.
    Ready,
    /// Its build does not run this benchmark here; the reason.
    Unknown(String),
}

/// A running worker process; killed and reaped when dropped.
#[derive(Debug)]
pub struct WorkerProcess {
    label: String,
    child: Child,
    stdin: Option<ChildStdin>,
    replies: Receiver<Result<Reply, String>>,
    stderr_tail: Arc<Mutex<VecDeque<u8>>>,
    pid: Option<u32>,
}

impl WorkerProcess {
    /// Waits for the worker's first word.
    pub fn wait_ready(&mut self) -> Result<Readiness, MeasureError> {
        match self.receive(READY_TIMEOUT)? {
            Reply::Ready { protocol, pid, .. } if protocol == PROTOCOL_VERSION => {
                self.pid = Some(pid);
                Ok(Readiness::Ready)
            }
            Reply::Ready { protocol, .. } => Err(MeasureError::Unusable(format!(
                "{}: the worker speaks protocol {protocol}, this engine {PROTOCOL_VERSION}",
                self.label
            ))),
            Reply::Unknown { message } => Ok(Readiness::Unknown(message)),
            other => Err(self.failure(other)),
        }
    }

    /// The worker's process id, once ready.
    pub fn pid(&self) -> Option<u32> {
        self.pid
    }

    fn receive(&mut self, timeout: Duration) -> Result<Reply, MeasureError> {
        match self.replies.recv_timeout(timeout) {
            Ok(Ok(reply)) => Ok(reply),
            Ok(Err(message)) => Err(MeasureError::Worker(self.with_stderr(message))),
            Err(RecvTimeoutError::Timeout) => Err(MeasureError::Worker(
                self.with_stderr(format!("{}: no answer within {timeout:?}", self.label)),
            )),
            Err(RecvTimeoutError::Disconnected) => Err(MeasureError::Worker(
                self.with_stderr(format!("{}: the worker exited", self.label)),
            )),
        }
    }

    fn failure(&self, reply: Reply) -> MeasureError {
        match reply {
            Reply::Failed { message } => MeasureError::Worker(self.with_stderr(message)),
            other => MeasureError::Worker(format!("{}: unexpected reply {other:?}", self.label)),
        }
    }

    fn with_stderr(&self, message: String) -> String {
        let tail = self
            .stderr_tail
            .lock()
            .map(|tail| {
                String::from_utf8_lossy(&tail.iter().copied().collect::<Vec<u8>>())
                    .trim()
                    .to_owned()
            })
            .unwrap_or_default();
        if tail.is_empty() {
            message
        } else {
            format!("{message} (its stderr: {tail})")
        }
    }
}

impl Contender for WorkerProcess {
    fn label(&self) -> String {
        self.label.clone()
    }

    fn sample(&mut self, iterations: u64) -> Result<Sample, MeasureError> {
        let request = serde_json::to_string(&Request::Sample { iterations })
            .map_err(|error| MeasureError::Worker(error.to_string()))?;
        let Some(stdin) = self.stdin.as_mut() else {
            return Err(MeasureError::Worker(format!(
                "{}: already closed",
                self.label
            )));
        };
        stdin
            .write_all(format!("{request}\n").as_bytes())
            .and_then(|()| stdin.flush())
            .map_err(|error| {
                MeasureError::Worker(
                    self.with_stderr(format!("{}: cannot send a request: {error}", self.label)),
                )
            })?;
        match self.receive(SAMPLE_TIMEOUT)? {
            Reply::Sample { wall_ns, cpu_ns } => Ok(Sample {
                wall: Duration::from_nanos(wall_ns),
                cpu: Duration::from_nanos(cpu_ns),
            }),
            other => Err(self.failure(other)),
        }
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        // End of input is the worker's signal to drop its style (its pool processes
        // with it) and exit; give it a moment, then make sure.
        drop(self.stdin.take());
        for _ in 0..50 {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The `concbench` binary at `path`, checked to exist, as a worker program.
pub fn program_at(path: &Path, workers: NonZeroUsize) -> Result<WorkerProgram, MeasureError> {
    if !path.is_file() {
        return Err(MeasureError::Unusable(format!(
            "{} is not a file",
            path.display()
        )));
    }
    Ok(WorkerProgram {
        program: path.to_path_buf(),
        workers,
    })
}
