//! CPU sets: the `0-1,3` lists of `taskset -c` and `/proc/<pid>/status`'s
//! `Cpus_allowed_list`, this process's usable CPUs, and pinning to a set.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use nix::sched::{CpuSet, sched_getaffinity, sched_setaffinity};
use nix::unistd::Pid;

/// A set of CPU numbers.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct CpuList(BTreeSet<usize>);

impl CpuList {
    /// The set of `cpus`.
    pub fn new(cpus: impl IntoIterator<Item = usize>) -> Self {
        Self(cpus.into_iter().collect())
    }

    /// The CPUs, in ascending order.
    pub fn iter(&self) -> impl Iterator<Item = usize> + '_ {
        self.0.iter().copied()
    }

    /// How many CPUs.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether it holds no CPU.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether no CPU is in both.
    pub fn is_disjoint(&self, other: &Self) -> bool {
        self.0.is_disjoint(&other.0)
    }

    /// Whether every CPU of `self` is in `other`.
    pub fn is_subset(&self, other: &Self) -> bool {
        self.0.is_subset(&other.0)
    }

    /// The first `count` CPUs and the rest.
    pub fn split_at(&self, count: usize) -> (Self, Self) {
        (
            Self::new(self.iter().take(count)),
            Self::new(self.iter().skip(count)),
        )
    }
}

/// Why a CPU list could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad CPU list {list:?}: {reason} (expected e.g. `0`, `0-1,3`)")]
pub struct CpuListError {
    list: String,
    reason: String,
}

impl FromStr for CpuList {
    type Err = CpuListError;

    fn from_str(list: &str) -> Result<Self, Self::Err> {
        let error = |reason: String| CpuListError {
            list: list.to_owned(),
            reason,
        };
        let number = |text: &str| {
            text.trim()
                .parse::<usize>()
                .map_err(|_| error(format!("{text:?} is not a CPU number")))
        };
        let mut cpus = BTreeSet::new();
        for part in list.split(',') {
            match part.split_once('-') {
                Some((first, last)) => {
                    let (first, last) = (number(first)?, number(last)?);
                    if first > last {
                        return Err(error(format!("range {part:?} runs backwards")));
                    }
                    cpus.extend(first..=last);
                }
                None => {
                    cpus.insert(number(part)?);
                }
            }
        }
        if cpus.len() > CpuSet::count() || cpus.iter().any(|&cpu| cpu >= CpuSet::count()) {
            return Err(error(format!(
                "CPU numbers must be below {}",
                CpuSet::count()
            )));
        }
        Ok(Self(cpus))
    }
}

impl fmt::Display for CpuList {
    /// The shortest list form, ranges joined: `0-2,5`, as `Cpus_allowed_list` prints.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        let mut cpus = self.iter().peekable();
        while let Some(first) = cpus.next() {
            let mut last = first;
            while cpus.peek() == Some(&(last + 1)) {
                last += 1;
                cpus.next();
            }
            parts.push(if first == last {
                first.to_string()
            } else {
                format!("{first}-{last}")
            });
        }
        f.write_str(&parts.join(","))
    }
}

/// The CPUs the calling thread may run on.
pub fn usable() -> nix::Result<CpuList> {
    let set = sched_getaffinity(Pid::from_raw(0))?;
    Ok(CpuList::new(
        (0..CpuSet::count()).filter(|&cpu| set.is_set(cpu).unwrap_or(false)),
    ))
}

/// The default isolated split of `usable`: the first half of the CPUs for the server,
/// the rest for the client (on 2 CPUs: 0 and 1); `None` with fewer than two CPUs, where
/// client and server cannot be kept apart.
pub fn isolation_split(usable: &CpuList) -> Option<(CpuList, CpuList)> {
    (usable.len() >= 2).then(|| usable.split_at(usable.len() / 2))
}

/// Pins the calling thread to `cpus`; threads and processes it starts afterwards inherit
/// the set.
pub fn pin_to(cpus: &CpuList) -> nix::Result<()> {
    let mut set = CpuSet::new();
    for cpu in cpus.iter() {
        set.set(cpu)?;
    }
    sched_setaffinity(Pid::from_raw(0), &set)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_isolation_split_keeps_client_and_server_apart() {
        let (server, client) = isolation_split(&CpuList::new([0, 1])).expect("two CPUs");
        assert_eq!(
            (server.to_string(), client.to_string()),
            ("0".into(), "1".into())
        );
        let (server, client) = isolation_split(&CpuList::new(0..5)).expect("five CPUs");
        assert_eq!(
            (server.to_string(), client.to_string()),
            ("0-1".into(), "2-4".into())
        );
        assert_eq!(isolation_split(&CpuList::new([3])), None);
    }

    #[test]
    fn reads_and_writes_cpu_lists() {
        let list: CpuList = "0-1,3".parse().expect("list");
        assert_eq!(list.iter().collect::<Vec<_>>(), [0, 1, 3]);
        assert_eq!(list.to_string(), "0-1,3");
        assert_eq!(
            "5,4,2".parse::<CpuList>().expect("list").to_string(),
            "2,4-5"
        );
        assert_eq!("0".parse::<CpuList>().expect("list").to_string(), "0");
        for bad in ["", "a", "3-1", "1,,2", "-1", "99999"] {
            assert!(bad.parse::<CpuList>().is_err(), "{bad:?}");
        }
        let (server, client) = CpuList::new([0, 1, 2, 3]).split_at(2);
        assert_eq!(
            (server.to_string(), client.to_string()),
            ("0-1".into(), "2-3".into())
        );
        assert!(server.is_disjoint(&client));
        assert!(server.is_subset(&CpuList::new(0..4)));
    }

    #[test]
    fn this_thread_has_usable_cpus() {
        assert!(!usable().expect("affinity").is_empty());
    }
}
