//! Helpers shared by the integration tests.

#![allow(dead_code, unreachable_pub, unused_imports)] // each test binary uses a different subset

use std::num::NonZeroUsize;

use workloads::StyleConfig;

/// The worker count the tests give every style: more than this machine's two cores and
/// not a power of two, so chunking remainders and oversubscription are exercised.
pub const TEST_WORKERS: usize = 3;

/// The configuration every style is built from in the tests.
pub fn style_config() -> StyleConfig {
    let workers = NonZeroUsize::new(TEST_WORKERS).expect("nonzero");
    StyleConfig::new(workers)
        .with_worker_command(catalog::worker_command(concbench_binary().as_ref()))
}

/// The path of the `concbench` binary that cargo built for these tests.
pub fn concbench_binary() -> &'static str {
    env!("CARGO_BIN_EXE_concbench")
}

/// Whether `pid` is a live or zombie child of this test process.
pub fn is_our_child(pid: u32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // The command name (field 2) may contain spaces; the fields after its ')' are fixed.
    let after_name = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let parent: Option<u32> = after_name
        .split_whitespace()
        .nth(1)
        .and_then(|ppid| ppid.parse().ok());
    parent == Some(std::process::id())
}

/// A `concbench serve` child process, killed and reaped on drop (also when a test
/// fails), so no server outlives its test.
pub struct ServerProcess {
    child: std::process::Child,
    addr: std::net::SocketAddr,
}

/// How long a server may take to print its address.
const SERVER_START_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(20);

/// A server under test: a concbench style, or one of the Python peers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Server {
    /// `concbench serve --style <name>`.
    Style(&'static str),
    /// `python3 peers/python/<name>.py`.
    Python(&'static str),
}

impl Server {
    /// The command that starts the server on a free loopback port, serving `n <= max_n`
    /// with [`TEST_WORKERS`] workers.
    pub fn command(self, max_n: u32) -> std::process::Command {
        let mut command = match self {
            Self::Style(style) => {
                let mut command = std::process::Command::new(concbench_binary());
                command.args(["serve", "--style", style]);
                command
            }
            Self::Python(script) => {
                let mut command = std::process::Command::new("python3");
                command.arg(format!(
                    "{}/peers/python/{script}.py",
                    env!("CARGO_MANIFEST_DIR")
                ));
                command
            }
        };
        command
            .args(["--addr", "127.0.0.1:0", "--max-n", &max_n.to_string()])
            .args(["--workers", &TEST_WORKERS.to_string()]);
        command
    }

    /// Whether the server can run here: Python peers need `python3` on `PATH`, the
    /// io_uring styles a kernel that allows io_uring. Says why not, in the test log,
    /// when it cannot.
    pub fn available(self) -> bool {
        match self {
            Self::Style(style) => match catalog::find(style)
                .map(|entry| (entry.support)(workloads::Workload::Throughput))
            {
                Some(workloads::Support::NotApplicable(reason))
                    if reason.starts_with(workloads::completion::UNAVAILABLE) =>
                {
                    eprintln!("skipped: {style} cannot run here: {reason}");
                    false
                }
                _ => true,
            },
            Self::Python(script) => {
                let found = std::process::Command::new("python3")
                    .arg("--version")
                    .output()
                    .is_ok_and(|output| output.status.success());
                if !found {
                    eprintln!(
                        "skipped: python3 is not on PATH, so the Python peer {script} cannot run"
                    );
                }
                found
            }
        }
    }
}

impl ServerProcess {
    /// Starts the style's server; see [`ServerProcess::start_server`].
    pub fn start(style: &'static str, max_n: u32) -> Self {
        Self::start_server(Server::Style(style), max_n)
    }

    /// Starts `server` on a free loopback port, serving `n <= max_n`, and waits for its
    /// `listening on ADDR` line.
    pub fn start_server(server: Server, max_n: u32) -> Self {
        Self::start_server_with(server, max_n, &[])
    }

    /// Starts `server` like [`ServerProcess::start_server`], with `extra` arguments
    /// (`--backend ADDR`, `--framing seed`).
    pub fn start_server_with(server: Server, max_n: u32, extra: &[&str]) -> Self {
        use std::io::BufRead;
        let style = format!("{server:?}");
        let mut child = server
            .command(max_n)
            .args(extra)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap_or_else(|error| panic!("{style}: cannot start: {error}"));
        let stdout = child.stdout.take().expect("piped stdout");
        let (line_sender, line_receiver) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = std::io::BufReader::new(stdout).lines();
            let _ = line_sender.send(lines.next());
            // Keep reading, so the server never writes into a closed pipe.
            for _ in lines {}
        });
        let mut server = Self {
            child,
            addr: "127.0.0.1:0".parse().expect("literal address"),
        };
        let line = match line_receiver.recv_timeout(SERVER_START_TIMEOUT) {
            Ok(Some(Ok(line))) => line,
            other => panic!("{style}: no `listening on` line: {other:?}"),
        };
        server.addr = line
            .strip_prefix("listening on ")
            .and_then(|addr| addr.parse().ok())
            .unwrap_or_else(|| panic!("{style}: unexpected first line {line:?}"));
        server
    }

    /// The address the server listens on.
    pub fn addr(&self) -> std::net::SocketAddr {
        self.addr
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Kills the server outright (SIGKILL, no chance to clean up) and reaps it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends SIGTERM and waits up to `timeout` for the server to exit; returns its exit
    /// status, or `None` if it did not exit in time (it is then killed on drop).
    pub fn terminate(&mut self, timeout: std::time::Duration) -> Option<std::process::ExitStatus> {
        let sent = std::process::Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .expect("run kill");
        assert!(sent.success(), "kill -TERM failed");
        let deadline = std::time::Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return Some(status);
            }
            if std::time::Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub use scenarios::procfs::{child_pids, is_running as process_running};

/// Whether a process with this id exists (alive or zombie).
pub fn process_exists(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}
