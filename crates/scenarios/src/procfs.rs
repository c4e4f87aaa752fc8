//! The process tree and CPU accounting, as the kernel reports them in `/proc`.

/// The fields of `/proc/<pid>/stat` after the command name, which may hold spaces and
/// parentheses: the first is the state, the second the parent id.
fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, after_name) = stat.rsplit_once(')')?;
    Some(after_name.split_whitespace().map(str::to_owned).collect())
}

/// The parent of process `pid`.
pub fn parent_of(pid: u32) -> Option<u32> {
    stat_fields(pid)?.get(1)?.parse().ok()
}

/// The ids of `parent`'s child processes (live or zombie).
pub fn child_pids(parent: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| parent_of(pid) == Some(parent))
        .collect()
}

/// Whether process `pid` is running: it exists and is not a zombie (an exited orphan
/// stays a zombie until init reaps it).
pub fn is_running(pid: u32) -> bool {
    stat_fields(pid).is_some_and(|fields| fields.first().is_some_and(|state| state != "Z"))
}

/// CPU time a process has used, all its threads, in clock ticks (`CLK_TCK` a second).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CpuTicks {
    /// In user space: the program's own code and its libraries.
    pub user: u64,
    /// In the kernel on the process's behalf: system calls, and for sockets the
    /// protocol stack's work that those calls do.
    pub system: u64,
}

impl std::ops::Add for CpuTicks {
    type Output = Self;

    fn add(self, other: Self) -> Self {
        Self {
            user: self.user + other.user,
            system: self.system + other.system,
        }
    }
}

/// `utime` and `stime` of process `pid`, all its threads.
pub fn cpu_ticks(pid: u32) -> Option<CpuTicks> {
    let fields = stat_fields(pid)?;
    // utime and stime are the 14th and 15th fields of the line, 12th and 13th here.
    Some(CpuTicks {
        user: fields.get(11)?.parse().ok()?,
        system: fields.get(12)?.parse().ok()?,
    })
}

/// What a server's process tree holds, summed over the server and its descendants.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TreeMemory {
    /// Proportional resident memory (`Pss` of `smaps_rollup`), bytes: each process's
    /// private pages plus its share of the pages it shares, so pages that forked worker
    /// processes share are counted once over the tree, not once per process.
    pub pss_bytes: u64,
    /// Threads, over every process of the tree.
    pub threads: u64,
    /// Processes in the tree.
    pub processes: u64,
}

/// The memory and threads of `root` and every descendant; `None` when `root` cannot be
/// read (it exited).
pub fn tree_memory(root: u32) -> Option<TreeMemory> {
    let mut total = TreeMemory::default();
    let mut pending = vec![root];
    let mut first = true;
    while let Some(pid) = pending.pop() {
        match process_memory(pid) {
            Some((pss_bytes, threads)) => {
                total.pss_bytes += pss_bytes;
                total.threads += threads;
                total.processes += 1;
            }
            None if first => return None,
            // A child that exited meanwhile holds nothing.
            None => {}
        }
        first = false;
        pending.extend(child_pids(pid));
    }
    Some(total)
}

/// `Pss` (bytes) and `Threads` of one process.
fn process_memory(pid: u32) -> Option<(u64, u64)> {
    let field = |text: &str, name: &str| -> Option<u64> {
        text.lines()
            .find_map(|line| line.strip_prefix(name))?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    };
    let rollup = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    Some((field(&rollup, "Pss:")? * 1024, field(&status, "Threads:")?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process_and_its_children() {
        let me = std::process::id();
        assert!(is_running(me));
        assert!(parent_of(me).is_some());
        assert!(cpu_ticks(me).is_some());
        let mut child = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .expect("sleep");
        assert!(child_pids(me).contains(&child.id()));
        let tree = tree_memory(me).expect("this process's memory");
        assert!(tree.processes >= 2, "{tree:?}");
        assert!(tree.threads >= 2, "{tree:?}");
        assert!(tree.pss_bytes > 1 << 20, "{tree:?}");
        assert_eq!(parent_of(child.id()), Some(me));
        child.kill().expect("kill");
        child.wait().expect("reap");
        assert!(!is_running(child.id()));
    }
}
