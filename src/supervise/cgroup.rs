//! Cgroups of a program's whole tree: a pids cgroup per server (a process limit that holds
//! for root, and a census of its tree), and for a sandboxed program a memory and a CPU
//! accounting cgroup, so that its limits hold for all its processes together.
//!
//! `RLIMIT_NPROC` counts every process of a *user* and the kernel does not enforce it for
//! root, which is how graders usually run, so `limits.processes` alone cannot stop a fork
//! bomb there. The pids controller can: each server gets its own cgroup whose `pids.max` is
//! the limit, joined by the forked child before exec. The kernel counts refused forks in
//! `pids.events`, which the report turns into a finding, and the cgroup lists every process
//! of the server whatever it did to its group or session, so teardown kills them all.
//!
//! Where no controller is writable (no root, no delegation) this is simply absent and the
//! rlimits are the only limits: [`TreeCaps::create`] gives no cgroup.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal, kill_process};

/// How long teardown keeps killing members that are still forking before giving up.
const EMPTYING_DEADLINE: Duration = Duration::from_secs(2);

/// Distinguishes the cgroups of one labrun process (restarts, several servers).
static NEXT: AtomicU32 = AtomicU32::new(0);

/// The cgroup's `cgroup.procs`, owned by a child's pre-exec hook.
pub struct Entry(File);

impl Entry {
    /// Moves the calling process into the cgroup. Async-signal-safe (one `write` on a file
    /// opened before the fork), so it can run between fork and exec.
    pub fn join(&self) -> io::Result<()> {
        rustix::io::write(self.0.as_fd(), b"0")?;
        Ok(())
    }
}

/// A limit to write when a cgroup is made: its file (named given whether the hierarchy is
/// the unified one) and its value.
type Limit = (fn(bool) -> &'static str, u64);

/// A cgroup of labrun's own under its cgroup for one controller; dropping it kills whatever
/// is left inside and removes it.
#[derive(Debug)]
struct Cgroup {
    dir: PathBuf,
    /// `cgroup.procs`, opened before the fork so the child joins with one `write`.
    procs: File,
    /// Whether it is in the unified (v2) hierarchy, whose files are named differently.
    unified: bool,
}

impl Cgroup {
    /// A fresh cgroup under labrun's own in the hierarchy of `controller`, with `limits`
    /// written, or `None` where this machine offers no writable such controller.
    fn create(controller: &str, limits: &[Limit]) -> Option<Cgroup> {
        let (parent, unified) = own_cgroup(controller)?;
        let name = format!(
            "labrun-{controller}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let dir = parent.join(name);
        fs::create_dir(&dir).ok()?;
        let made = |dir: &Path| -> io::Result<Cgroup> {
            for (limit_file, value) in limits {
                fs::write(dir.join(limit_file(unified)), value.to_string())?;
            }
            let procs = OpenOptions::new().write(true).open(dir.join("cgroup.procs"))?;
            Ok(Cgroup {
                dir: dir.to_owned(),
                procs,
                unified,
            })
        };
        match made(&dir) {
            Ok(group) => Some(group),
            Err(_) => {
                // A cgroup2 parent without the controller delegated has no limit file.
                let _ = fs::remove_dir(&dir);
                None
            }
        }
    }

    /// A way in for a child about to be forked: see [`Entry::join`].
    fn entry(&self) -> io::Result<Entry> {
        Ok(Entry(self.procs.try_clone()?))
    }

    /// SIGKILLs every member, again and again while forks race the kill, until the cgroup
    /// is empty or the deadline passes. Returns how many were still there at the end.
    fn kill_all(&self) -> usize {
        kill_all(&self.dir)
    }

    /// The count after `key ` in the `key value` lines of the cgroup's file `name`, 0 when
    /// the file or the line is not there.
    fn counter(&self, name: &str, key: &str) -> u64 {
        let mut text = String::new();
        let read = File::open(self.dir.join(name)).and_then(|mut file| file.read_to_string(&mut text));
        if read.is_err() {
            return 0;
        }
        text.lines()
            .find_map(|line| line.strip_prefix(key)?.strip_prefix(' '))
            .and_then(|count| count.trim().parse().ok())
            .unwrap_or(0)
    }
}

impl Drop for Cgroup {
    fn drop(&mut self) {
        empty_and_remove(&self.dir);
    }
}

/// One server's pids cgroup; dropping it kills whatever is left inside and removes it.
#[derive(Debug)]
pub struct ProcessCap {
    group: Arc<Cgroup>,
    limit: u64,
}

impl ProcessCap {
    /// A fresh cgroup allowing `limit` processes (threads count too), or `None` where this
    /// machine offers no writable pids controller.
    fn create(limit: u64) -> Option<ProcessCap> {
        let group = Cgroup::create("pids", &[(pids_max_file, limit)])?;
        Some(ProcessCap {
            group: Arc::new(group),
            limit,
        })
    }

    /// A way in for a child about to be forked: see [`Entry::join`].
    pub fn entry(&self) -> io::Result<Entry> {
        self.group.entry()
    }

    /// The configured maximum.
    pub fn limit(&self) -> u64 {
        self.limit
    }

    /// How many forks (or thread creations) the limit refused so far.
    pub fn refused_forks(&self) -> u64 {
        self.group.counter("pids.events", "max")
    }

    /// SIGKILLs every member, again and again while forks race the kill, until the cgroup
    /// is empty or the deadline passes. Returns how many were still there at the end.
    pub fn kill_all(&self) -> usize {
        self.group.kill_all()
    }
}

/// A memory cgroup for a sandboxed program's whole tree: `limits.memory` then holds for all
/// its processes together (four processes of 700 MB no longer fit in 1 GiB), and what it
/// writes to its in-memory working space and `/tmp` counts too. The kernel's OOM killer acts
/// inside the cgroup only, so the grader and the other students are never its victims.
/// Absent (`None`) where no memory controller is writable.
#[derive(Debug)]
pub struct MemoryCap {
    group: Arc<Cgroup>,
    limit: u64,
}

impl MemoryCap {
    /// A fresh memory cgroup holding its members to `bytes` together.
    fn create(bytes: u64) -> Option<MemoryCap> {
        let group = Cgroup::create("memory", &[(memory_max_file, bytes)])?;
        Some(MemoryCap {
            group: Arc::new(group),
            limit: bytes,
        })
    }

    /// A way in for a child about to be forked: see [`Entry::join`].
    pub fn entry(&self) -> io::Result<Entry> {
        self.group.entry()
    }

    /// The configured maximum, in bytes.
    pub fn limit(&self) -> u64 {
        self.limit
    }

    /// How many of its processes the kernel's OOM killer ended because the cgroup was full.
    pub fn oom_kills(&self) -> u64 {
        if self.group.unified {
            self.group.counter("memory.events", "oom_kill")
        } else {
            self.group.counter("memory.oom_control", "oom_kill")
        }
    }

    /// SIGKILLs every member until the cgroup is empty (see [`ProcessCap::kill_all`]).
    pub fn kill_all(&self) -> usize {
        self.group.kill_all()
    }
}

/// A CPU accounting cgroup for a sandboxed program's whole tree: `limits.cpu` as an rlimit
/// holds per process, so ten helpers could each burn their own allowance, starving the
/// classmates graded beside them. The kernel accounts the tree's CPU time here; the caller
/// reads it and ends the tree when it passes the limit (see [`CpuCap::used`]).
#[derive(Debug)]
pub struct CpuCap {
    group: Arc<Cgroup>,
    limit: Duration,
}

impl CpuCap {
    /// A fresh accounting cgroup for a tree allowed `limit` of CPU time together, or `None`
    /// where no such controller is writable.
    fn create(limit: Duration) -> Option<CpuCap> {
        let group = Cgroup::create("cpuacct", &[])?;
        Some(CpuCap {
            group: Arc::new(group),
            limit,
        })
    }

    /// A way in for a child about to be forked: see [`Entry::join`].
    pub fn entry(&self) -> io::Result<Entry> {
        self.group.entry()
    }

    /// The configured maximum.
    pub fn limit(&self) -> Duration {
        self.limit
    }

    /// The CPU time its members used so far, the dead ones' included.
    pub fn used(&self) -> Duration {
        if self.group.unified {
            Duration::from_micros(self.group.counter("cpu.stat", "usage_usec"))
        } else {
            let mut text = String::new();
            let read = File::open(self.group.dir.join("cpuacct.usage"))
                .and_then(|mut file| file.read_to_string(&mut text));
            Duration::from_nanos(read.ok().and_then(|_| text.trim().parse().ok()).unwrap_or(0))
        }
    }

    /// SIGKILLs every member until the cgroup is empty (see [`ProcessCap::kill_all`]).
    pub fn kill_all(&self) -> usize {
        self.group.kill_all()
    }
}

/// `pids.max`, on either hierarchy.
fn pids_max_file(_unified: bool) -> &'static str {
    "pids.max"
}

/// The memory limit's file on the unified hierarchy, or on cgroup v1.
fn memory_max_file(unified: bool) -> &'static str {
    if unified {
        "memory.max"
    } else {
        "memory.limit_in_bytes"
    }
}

/// The cgroups of one program's tree, for each limit it has.
#[derive(Debug, Default)]
pub struct TreeCaps {
    /// Its process limit.
    pub processes: Option<ProcessCap>,
    /// Its memory limit.
    pub memory: Option<MemoryCap>,
    /// Its CPU limit.
    pub cpu: Option<CpuCap>,
}

impl TreeCaps {
    /// The cgroups for these limits, where the machine lets labrun make them. On cgroup v1
    /// each controller has a hierarchy, so a cgroup each; on the unified (v2) hierarchy a
    /// process belongs to exactly one cgroup, so one holds every limit (joining three
    /// would leave it in the last, with none of the others' limits).
    pub fn create(processes: Option<u64>, memory: Option<u64>, cpu: Option<Duration>) -> TreeCaps {
        let unified = own_cgroup("pids").is_some_and(|(_, unified)| unified);
        if !unified {
            return TreeCaps {
                processes: processes.and_then(ProcessCap::create),
                memory: memory.and_then(MemoryCap::create),
                cpu: cpu.and_then(CpuCap::create),
            };
        }
        if processes.is_none() && memory.is_none() && cpu.is_none() {
            return TreeCaps::default();
        }
        let limits: Vec<Limit> = [
            (pids_max_file as fn(bool) -> &'static str, processes),
            (memory_max_file, memory),
        ]
        .into_iter()
        .filter_map(|(file, value)| Some((file, value?)))
        .collect();
        let Some(group) = Cgroup::create("tree", &limits).map(Arc::new) else {
            return TreeCaps::default();
        };
        TreeCaps {
            processes: processes.map(|limit| ProcessCap {
                group: Arc::clone(&group),
                limit,
            }),
            memory: memory.map(|limit| MemoryCap {
                group: Arc::clone(&group),
                limit,
            }),
            cpu: cpu.map(|limit| CpuCap {
                group: Arc::clone(&group),
                limit,
            }),
        }
    }
}

/// The processes now in the cgroup at `dir`.
fn members(dir: &Path) -> Vec<u32> {
    fs::read_to_string(dir.join("cgroup.procs"))
        .map(|text| text.lines().filter_map(|line| line.trim().parse().ok()).collect())
        .unwrap_or_default()
}

/// SIGKILLs every member of the cgroup at `dir`, again and again while forks race the kill,
/// until it is empty or the deadline passes. Returns how many were still there at the end.
fn kill_all(dir: &Path) -> usize {
    let deadline = Instant::now() + EMPTYING_DEADLINE;
    loop {
        let left = members(dir);
        if left.is_empty() || Instant::now() >= deadline {
            return left.len();
        }
        for pid in left {
            if let Some(pid) = Pid::from_raw(pid as i32) {
                let _ = kill_process(pid, Signal::KILL);
            }
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Kills whatever is left in the cgroup at `dir` and removes it. Killed processes leave the
/// cgroup once reaped (labrun is their subreaper, and the leader is reaped by its handle):
/// the removal is retried briefly.
fn empty_and_remove(dir: &Path) {
    kill_all(dir);
    let deadline = Instant::now() + EMPTYING_DEADLINE;
    while fs::remove_dir(dir).is_err() && Instant::now() < deadline {
        super::tree::reap_adopted(&members(dir));
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The directory of labrun's own cgroup in a hierarchy that has `controller`: its cgroup v1
/// mount, or else the unified (v2) one; and whether it is the unified one.
fn own_cgroup(controller: &str) -> Option<(PathBuf, bool)> {
    let mountinfo = fs::read_to_string("/proc/self/mountinfo").ok()?;
    let membership = fs::read_to_string("/proc/self/cgroup").ok()?;
    let mut unified = None;
    for line in mountinfo.lines() {
        // `id parent major:minor root mountpoint options [optional…] - fstype source superoptions`
        let (left, right) = line.split_once(" - ")?;
        let mount_point = left.split(' ').nth(4)?;
        let mut right = right.split(' ');
        let fstype = right.next()?;
        let super_options = right.nth(1).unwrap_or("");
        if fstype == "cgroup" && super_options.split(',').any(|option| option == controller) {
            let path = membership.lines().find_map(|entry| {
                let mut fields = entry.splitn(3, ':');
                let (_, controllers, path) = (fields.next()?, fields.next()?, fields.next()?);
                controllers.split(',').any(|c| c == controller).then_some(path)
            })?;
            return Some((Path::new(mount_point).join(path.trim_start_matches('/')), false));
        }
        if fstype == "cgroup2" {
            let path = membership.lines().find_map(|entry| entry.strip_prefix("0::"));
            unified = path.map(|path| Path::new(mount_point).join(path.trim_start_matches('/')));
        }
    }
    unified.map(|dir| (dir, true))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cap_where_available_limits_forks_and_cleans_up() {
        let Some(cap) = ProcessCap::create(3) else {
            return; // no writable pids controller on this machine
        };
        let dir = cap.group.dir.clone();
        assert_eq!(cap.limit(), 3);
        assert_eq!(cap.refused_forks(), 0);
        assert!(members(&cap.group.dir).is_empty());
        drop(cap);
        assert!(!dir.exists(), "the cgroup is removed when dropped");
    }
}
