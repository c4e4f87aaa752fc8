//! Server child processes: started, waited for, stopped, and never left behind.

use std::collections::HashSet;
use std::ffi::OsString;
use std::io::{BufRead, BufReader, Read};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::{ScenarioError, procfs};

/// How to start a server, and how to know it is ready.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerCommand {
    /// The name its rows carry.
    pub name: String,
    /// The executable.
    pub program: PathBuf,
    /// Its arguments.
    pub args: Vec<OsString>,
    /// How readiness shows.
    pub ready: ReadyBy,
}

/// How a started server shows that it is ready.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadyBy {
    /// It prints `listening on ADDR` as its first line on stdout (every concbench
    /// server, the Python peers).
    ListeningLine,
    /// It accepts connections on `host` at a port [`ServerChild::start`] finds free for
    /// this start and writes in place of [`FREE_PORT`] in its arguments (redis-server,
    /// which cannot bind port 0 and say which port it got). A port per start, not per
    /// command: two instances of one command (a shared and an isolated arrangement) must
    /// not meet on one port, where the second fails to bind while the first answers for
    /// it.
    ConnectOnFreePort(IpAddr),
}

/// The text [`ReadyBy::ConnectOnFreePort`] replaces, in any argument, with the port it
/// found free (`--port {free-port}`, `--addr 127.0.0.1:{free-port}`).
pub const FREE_PORT: &str = "{free-port}";

/// A TCP port free on `host` now, or on loopback where this machine does not have
/// `host` (a server started elsewhere through a launcher).
fn free_port(host: IpAddr) -> std::io::Result<u16> {
    TcpListener::bind(SocketAddr::new(host, 0))
        .or_else(|_| TcpListener::bind((Ipv4Addr::LOCALHOST, 0)))
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
}

/// CPU time used by a server and its worker processes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CpuTime {
    /// In user space.
    pub user: Duration,
    /// In the kernel on their behalf (system calls, the loopback TCP stack).
    pub system: Duration,
}

impl CpuTime {
    /// User and system time together.
    pub fn total(self) -> Duration {
        self.user + self.system
    }
}

/// The process ids of every live server child, so that a signal handler can kill them
/// all before the scenario process exits.
#[derive(Debug, Clone, Default)]
pub struct ChildRegistry {
    pids: Arc<Mutex<HashSet<i32>>>,
}

/// Keeps a child in its [`ChildRegistry`] until dropped.
#[derive(Debug)]
pub struct TrackedChild {
    registry: ChildRegistry,
    pid: i32,
}

impl Drop for TrackedChild {
    fn drop(&mut self) {
        self.registry.lock().remove(&self.pid);
    }
}

impl ChildRegistry {
    /// Registers `child` until the returned guard is dropped (after the child is reaped).
    pub fn track(&self, child: &Child) -> TrackedChild {
        let pid = i32::try_from(child.id()).unwrap_or(i32::MAX);
        self.lock().insert(pid);
        TrackedChild {
            registry: self.clone(),
            pid,
        }
    }

    /// Sends SIGKILL to every registered child. For signal handlers: the process exits
    /// right after, and its children are reaped by init.
    pub fn kill_all(&self) {
        for &pid in self.lock().iter() {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashSet<i32>> {
        self.pids.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A running server child process. Dropping it kills and reaps the process.
#[derive(Debug)]
pub struct ServerChild {
    child: Child,
    addr: SocketAddr,
    stderr: Arc<Mutex<String>>,
    /// Declared after `child`, so it leaves the registry only once the child is reaped.
    _tracked: TrackedChild,
}

/// Keep this much of a child's stderr, for error messages.
const STDERR_KEPT: usize = 4096;

impl ServerChild {
    /// Starts `command` and waits up to `timeout` for it to be ready.
    pub fn start(
        command: &ServerCommand,
        registry: &ChildRegistry,
        timeout: Duration,
    ) -> Result<Self, ScenarioError> {
        let start_error = |message: String| ScenarioError::ServerStart {
            name: command.name.clone(),
            message,
        };
        let (args, connect_to) = match command.ready {
            ReadyBy::ListeningLine => (command.args.clone(), None),
            ReadyBy::ConnectOnFreePort(host) => {
                let port = free_port(host)
                    .map_err(|error| start_error(format!("cannot find a free port: {error}")))?;
                let addr = SocketAddr::new(host, port);
                // Found free, yet taken since: then the connects below would reach
                // another process and take it for this one.
                if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                    return Err(start_error(format!(
                        "{addr} was free a moment ago and is taken now"
                    )));
                }
                let port = port.to_string();
                let args = command
                    .args
                    .iter()
                    .map(|arg| match arg.to_str() {
                        Some(text) if text.contains(FREE_PORT) => {
                            OsString::from(text.replace(FREE_PORT, &port))
                        }
                        _ => arg.clone(),
                    })
                    .collect();
                (args, Some(addr))
            }
        };
        let mut child = Command::new(&command.program)
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|error| {
                start_error(format!("cannot run {}: {error}", command.program.display()))
            })?;
        let tracked = registry.track(&child);
        let stderr = Arc::new(Mutex::new(String::new()));
        if let Some(pipe) = child.stderr.take() {
            let kept = Arc::clone(&stderr);
            thread::spawn(move || keep_tail(pipe, &kept));
        }
        let (line_sender, first_line) = mpsc::channel();
        if let Some(stdout) = child.stdout.take() {
            thread::spawn(move || {
                let mut lines = BufReader::new(stdout).lines();
                let _ = line_sender.send(lines.next());
                // Drain the rest, so the server never blocks on a full pipe.
                for _ in lines {}
            });
        }
        let mut server = Self {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            stderr,
            _tracked: tracked,
        };
        let ready = match connect_to {
            None => server.wait_for_listening_line(&first_line, timeout),
            Some(addr) => server.wait_for_connect(addr, timeout).map(|()| addr),
        };
        match ready {
            Ok(addr) => {
                server.addr = addr;
                Ok(server)
            }
            Err(message) => {
                // Give the stderr reader a moment to collect the server's last words.
                thread::sleep(Duration::from_millis(100));
                let stderr = server.stderr_tail();
                Err(start_error(if stderr.is_empty() {
                    message
                } else {
                    format!("{message}; it printed: {stderr}")
                }))
            }
        }
    }

    /// The server's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// CPU time the server and its descendants (pool workers) have used so far, in user
    /// space and in the kernel, from the kernel's accounting; `None` where `/proc`
    /// cannot say.
    pub fn cpu_time(&self) -> Option<CpuTime> {
        let ticks_per_second = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
            .ok()
            .flatten()?;
        let mut ticks = procfs::CpuTicks::default();
        let mut pending = vec![self.child.id()];
        while let Some(pid) = pending.pop() {
            ticks = ticks + procfs::cpu_ticks(pid).unwrap_or_default();
            pending.extend(procfs::child_pids(pid));
        }
        let seconds = |ticks: u64| Duration::from_secs_f64(ticks as f64 / ticks_per_second as f64);
        Some(CpuTime {
            user: seconds(ticks.user),
            system: seconds(ticks.system),
        })
    }

    /// Sends SIGTERM and waits up to `grace` for the server to exit; kills it if it does
    /// not. Returns whether it exited by itself, successfully.
    pub fn stop(mut self, grace: Duration) -> bool {
        let _ = kill(self.nix_pid(), Signal::SIGTERM);
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            match self.child.try_wait() {
                Ok(Some(status)) => return status.success(),
                Ok(None) => thread::sleep(Duration::from_millis(10)),
                Err(_) => break,
            }
        }
        false
    }

    fn nix_pid(&self) -> Pid {
        Pid::from_raw(i32::try_from(self.child.id()).unwrap_or(i32::MAX))
    }

    fn wait_for_listening_line(
        &mut self,
        first_line: &mpsc::Receiver<Option<std::io::Result<String>>>,
        timeout: Duration,
    ) -> Result<SocketAddr, String> {
        match first_line.recv_timeout(timeout) {
            Ok(Some(Ok(line))) => line
                .strip_prefix("listening on ")
                .and_then(|addr| addr.trim().parse().ok())
                .ok_or_else(|| format!("expected `listening on ADDR`, got {line:?}")),
            Ok(_) | Err(mpsc::RecvTimeoutError::Disconnected) => {
                Err("it exited before listening".into())
            }
            Err(mpsc::RecvTimeoutError::Timeout) => Err(format!("not listening after {timeout:?}")),
        }
    }

    fn wait_for_connect(&mut self, addr: SocketAddr, timeout: Duration) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        loop {
            let connected = TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok();
            if let Ok(Some(status)) = self.child.try_wait() {
                // Checked after the connect as well: whatever answered, it was not this
                // server.

                return Err(format!("it exited ({status}) before accepting connections"));
            }
            if connected {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "not accepting connections on {addr} after {timeout:?}"
                ));
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    fn stderr_tail(&self) -> String {
        self.stderr
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .trim()
            .to_owned()
    }
}

impl Drop for ServerChild {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Reads `pipe` to its end, keeping the last [`STDERR_KEPT`] bytes.
fn keep_tail(mut pipe: impl Read, kept: &Mutex<String>) {
    let mut buffer = [0u8; 1024];
    while let Ok(read) = pipe.read(&mut buffer) {
        if read == 0 {
            break;
        }
        let mut kept = kept.lock().unwrap_or_else(PoisonError::into_inner);
        kept.push_str(&String::from_utf8_lossy(&buffer[..read]));
        if kept.len() > STDERR_KEPT {
            let cut = kept.len() - STDERR_KEPT;
            let cut = (cut..kept.len())
                .find(|&index| kept.is_char_boundary(index))
                .unwrap_or(0);
            kept.drain(..cut);
        }
    }
}

/// What a command run by [`run_bounded`] printed, and how it ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BoundedOutput {
    /// How the process exited.
    pub status: ExitStatus,
    /// Everything it wrote to stdout.
    pub stdout: String,
    /// Everything it wrote to stderr.
    pub stderr: String,
}

/// Runs `command` to its end, registered with `registry` while it runs (so a signal
/// handler kills it too), with both pipes read as it runs (so neither can fill up and
/// stall it), and kills it if it has not ended within `timeout`.
pub fn run_bounded(
    command: &mut Command,
    registry: &ChildRegistry,
    timeout: Duration,
) -> Result<BoundedOutput, String> {
    let program = command.get_program().to_string_lossy().into_owned();
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|error| format!("cannot run {program}: {error}"))?;
    let tracked = registry.track(&child);
    let stdout = read_in_background(child.stdout.take());
    let stderr = read_in_background(child.stderr.take());
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Ok(status),
            Ok(None) if Instant::now() > deadline => {
                let _ = child.kill();
                let _ = child.wait();
                break Err(format!("{program}: no result within {timeout:?}"));
            }
            Ok(None) => thread::sleep(Duration::from_millis(20)),
            Err(error) => break Err(format!("cannot wait for {program}: {error}")),
        }
    };
    drop(tracked);
    let (stdout, stderr) = (
        stdout.join().unwrap_or_default(),
        stderr.join().unwrap_or_default(),
    );
    Ok(BoundedOutput {
        status: status?,
        stdout,
        stderr,
    })
}

fn read_in_background(pipe: Option<impl Read + Send + 'static>) -> thread::JoinHandle<String> {
    thread::spawn(move || {
        let mut text = String::new();
        if let Some(mut pipe) = pipe {
            let _ = pipe.read_to_string(&mut text);
        }
        text
    })
}
