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
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use crate::MeasureError;
use crate::engine::{Contender, Sample};
use crate::protocol::{MAX_LINE_BYTES, PROTOCOL_VERSION, Reply, Request};
use crate::suite::BenchmarkId;

/// The hidden subcommand that turns `concbench` into a worker process of the engine.
pub const WORKER_SUBCOMMAND: &str = "measure-worker";

/// How long the engine waits for a worker before calling it hung.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// To build its style and check its first answer.
    pub ready: Duration,
    /// For one sample's reply (samples last about 90 ms; one iteration may be longer).
    pub sample: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            ready: Duration::from_secs(120),
            sample: Duration::from_secs(60),
        }
    }
}

/// Replies read ahead of the engine at most: a worker that floods its stdout blocks on
/// the pipe instead of filling the engine's memory.
const READ_AHEAD: usize = 2;

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
    /// How long to wait for its workers.
    pub timeouts: Timeouts,
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
        address_layout();
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
        let (sender, replies) = mpsc::sync_channel(READ_AHEAD);
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
            timeouts: self.timeouts,
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
    timeouts: Timeouts,
    child: Child,
    stdin: Option<ChildStdin>,
    replies: Receiver<Result<Reply, String>>,
    stderr_tail: Arc<Mutex<VecDeque<u8>>>,
    pid: Option<u32>,
}

impl WorkerProcess {
    /// Waits for the worker's first word.
    pub fn wait_ready(&mut self) -> Result<Readiness, MeasureError> {
        match self.receive(self.timeouts.ready)? {
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
        // Error paths only: give the stderr reader a moment to catch a dying worker's
        // last words, which may arrive after its stdout closed.
        std::thread::sleep(Duration::from_millis(100));
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
        // One request, one reply: anything already waiting was never asked for (a
        // flood, or bytes after the last reply), and is never taken as this answer.
        if let Ok(unasked) = self.replies.try_recv() {
            let what = match unasked {
                Ok(reply) => format!("{reply:?}"),
                Err(message) => message,
            };
            return Err(MeasureError::Worker(self.with_stderr(format!(
                "{}: a reply not asked for: {what}",
                self.label
            ))));
        }
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
        match self.receive(self.timeouts.sample)? {
            Reply::Sample {
                iterations: ran,
                wall_ns,
                cpu_ns,
            } if ran == iterations => Ok(Sample {
                wall: Duration::from_nanos(wall_ns),
                cpu: Duration::from_nanos(cpu_ns),
            }),
            Reply::Sample {
                iterations: ran, ..
            } => Err(MeasureError::Worker(self.with_stderr(format!(
                "{}: asked for {iterations} iterations, the sample has {ran}",
                self.label
            )))),
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

/// The `concbench` binary at `path`, checked to exist, as a worker program with the
/// default timeouts.
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
        timeouts: Timeouts::default(),
    })
}

/// How worker processes are laid out in memory: `"fixed"`, or `"randomized: <why>"`.
///
/// Two processes of the same code differ in speed by where the kernel put their stack,
/// heap and libraries (address-space layout randomization): a hot recursive function
/// such as `fib` lands on other cache sets. On this project's 2-core VM the reference
/// against a replica of itself — the same benchmark in a second worker process — read
/// 1.014× and 0.978× in two cohorts, intervals excluding 1.00: a per-process bias no
/// number of rounds averages away, different in every run. With randomization off for
/// the workers (the persona flag `ADDR_NO_RANDOMIZE`, what `setarch -R` sets, the usual
/// advice for benchmarking), every worker of one binary has the same layout, in every
/// run. The flag is set on this process once, before the first worker starts, and
/// children inherit it; where the kernel or a sandbox refuses it, workers stay
/// randomized and the rows say so.
pub fn address_layout() -> &'static str {
    static LAYOUT: OnceLock<String> = OnceLock::new();
    LAYOUT.get_or_init(|| {
        use nix::sys::personality::{self, Persona};
        match personality::get()
            .and_then(|persona| personality::set(persona | Persona::ADDR_NO_RANDOMIZE))
        {
            Ok(_) => "fixed".to_owned(),
            Err(errno) => format!("randomized: the kernel refused ADDR_NO_RANDOMIZE ({errno})"),
        }
    })
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;

    /// A stand-in "build" whose worker runs `body` (sh) when the engine starts it.
    struct Stand {
        directory: PathBuf,
        program: WorkerProgram,
    }

    impl Stand {
        fn new(name: &str, body: &str) -> Self {
            let directory =
                std::env::temp_dir().join(format!("concbench-stand-{name}-{}", std::process::id()));
            std::fs::create_dir_all(&directory).expect("directory");
            let script = directory.join("worker");
            std::fs::write(&script, format!("#!/bin/sh\n{body}\n")).expect("script");
            let mut permissions = std::fs::metadata(&script).expect("metadata").permissions();
            std::os::unix::fs::PermissionsExt::set_mode(&mut permissions, 0o755);
            std::fs::set_permissions(&script, permissions).expect("chmod");
            let program = WorkerProgram {
                program: script,
                workers: NonZeroUsize::MIN,
                timeouts: Timeouts {
                    ready: Duration::from_secs(1),
                    sample: Duration::from_secs(1),
                },
            };
            Self { directory, program }
        }

        fn worker(&self) -> WorkerProcess {
            let id = BenchmarkId::parse("fib_batch/seq/64x27").expect("id");
            // A script just written can be "busy" for a moment: another test thread's
            // fork may still hold its write descriptor (ETXTBSY). Retry briefly.
            for _ in 0..50 {
                match self.program.spawn(&id, Side::Head) {
                    Err(error) if format!("{error:?}").contains("ExecutableFileBusy") => {
                        std::thread::sleep(Duration::from_millis(20));
                    }
                    spawned => return spawned.expect("spawn"),
                }
            }
            self.program.spawn(&id, Side::Head).expect("spawn")
        }
    }

    impl Drop for Stand {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.directory);
        }
    }

    const READY: &str = r#"echo '{"ready":{"protocol":2,"id":"fib_batch/seq/64x27","pid":1}}'"#;

    fn sample_error(stand: &Stand) -> String {
        let mut worker = stand.worker();
        assert_eq!(worker.wait_ready().expect("ready"), Readiness::Ready);
        worker.sample(1).expect_err("a broken worker").to_string()
    }

    #[test]
    fn an_honest_stand_in_is_sampled() {
        let stand = Stand::new(
            "honest",
            &format!(
                r#"{READY}; while read request; do echo '{{"sample":{{"iterations":1,"wall_ns":5,"cpu_ns":3}}}}'; done"#
            ),
        );
        let mut worker = stand.worker();
        assert_eq!(worker.wait_ready().expect("ready"), Readiness::Ready);
        for _ in 0..3 {
            let sample = worker.sample(1).expect("a sample");
            assert_eq!((sample.wall.as_nanos(), sample.cpu.as_nanos()), (5, 3));
        }
    }

    #[test]
    fn a_sample_of_fewer_iterations_than_asked_is_refused() {
        let stand = Stand::new(
            "lazy",
            &format!(
                r#"{READY}; while read request; do echo '{{"sample":{{"iterations":1,"wall_ns":5,"cpu_ns":3}}}}'; done"#
            ),
        );
        let mut worker = stand.worker();
        assert_eq!(worker.wait_ready().expect("ready"), Readiness::Ready);
        let error = worker.sample(4).expect_err("a lazy worker").to_string();
        assert!(error.contains("asked for 4 iterations"), "{error}");
    }

    #[test]
    fn silence_is_a_timeout_not_a_hang() {
        let stand = Stand::new("silent", &format!("{READY}; sleep 30"));
        let start = Instant::now();
        let error = sample_error(&stand);
        assert!(error.contains("no answer within 1s"), "{error}");
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{:?}",
            start.elapsed()
        );

        let never_ready = Stand::new("never-ready", "sleep 30");
        let error = never_ready
            .worker()
            .wait_ready()
            .expect_err("no ready")
            .to_string();
        assert!(error.contains("no answer within 1s"), "{error}");
    }

    #[test]
    fn an_endless_line_ends_the_worker_within_the_bound() {
        let stand = Stand::new(
            "endless",
            &format!("{READY}; read request; head -c 10000000 /dev/zero | tr '\\0' 'x'"),
        );
        let error = sample_error(&stand);
        assert!(
            error.contains(&format!("longer than {MAX_LINE_BYTES} bytes")),
            "{error}"
        );
    }

    #[test]
    fn replies_not_asked_for_are_never_counted() {
        // A flood of well-formed samples, before and after the first request: one is
        // already waiting when the engine asks, so none is taken as an answer; the
        // reader stays bounded meanwhile (the flooding worker blocks on its pipe).
        let stand = Stand::new(
            "flood",
            &format!(
                r#"{READY}; while true; do echo '{{"sample":{{"iterations":1,"wall_ns":1,"cpu_ns":1}}}}'; done"#
            ),
        );
        let mut worker = stand.worker();
        assert_eq!(worker.wait_ready().expect("ready"), Readiness::Ready);
        std::thread::sleep(Duration::from_millis(200));
        let error = worker.sample(1).expect_err("unasked replies").to_string();
        assert!(error.contains("a reply not asked for"), "{error}");
    }

    #[test]
    fn a_worker_that_dies_mid_sample_is_named_with_its_stderr() {
        let stand = Stand::new(
            "dies",
            &format!("{READY}; read request; echo 'fell over' >&2; exit 3"),
        );
        let error = sample_error(&stand);
        assert!(
            error.contains("fib_batch/seq/64x27 (head): the worker exited")
                && error.contains("fell over"),
            "{error}"
        );
    }
}
