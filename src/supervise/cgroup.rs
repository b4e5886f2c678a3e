//! A pids cgroup per server: a process limit that holds for root, and a census of its tree.
//!
//! `RLIMIT_NPROC` counts every process of a *user* and the kernel does not enforce it for
//! root, which is how graders usually run, so `limits.processes` alone cannot stop a fork
//! bomb there. The pids controller can: each server gets its own cgroup whose `pids.max` is
//! the limit, joined by the forked child before exec. The kernel counts refused forks in
//! `pids.events`, which the report turns into a finding, and the cgroup lists every process
//! of the server whatever it did to its group or session, so teardown kills them all.
//!
//! Where no pids controller is writable (no root, no delegation) this is simply absent and
//! the rlimit is the only limit; [`ProcessCap::create`] returns `None`.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
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

/// One server's pids cgroup; dropping it kills whatever is left inside and removes it.
#[derive(Debug)]
pub struct ProcessCap {
    dir: PathBuf,
    /// `cgroup.procs`, opened before the fork so the child joins with one `write`.
    procs: File,
    limit: u64,
}

impl ProcessCap {
    /// A fresh cgroup allowing `limit` processes (threads count too), or `None` where this
    /// machine offers no writable pids controller.
    pub fn create(limit: u64) -> Option<ProcessCap> {
        let parent = own_pids_cgroup()?;
        let name = format!(
            "labrun-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let dir = parent.join(name);
        fs::create_dir(&dir).ok()?;
        let cap = |dir: &Path| -> io::Result<ProcessCap> {
            fs::write(dir.join("pids.max"), limit.to_string())?;
            let procs = OpenOptions::new().write(true).open(dir.join("cgroup.procs"))?;
            Ok(ProcessCap {
                dir: dir.to_owned(),
                procs,
                limit,
            })
        };
        match cap(&dir) {
            Ok(cap) => Some(cap),
            Err(_) => {
                // A cgroup2 parent without the pids controller delegated has no `pids.max`.
                let _ = fs::remove_dir(&dir);
                None
            }
        }
    }

    /// A way in for a child about to be forked: see [`Entry::join`].
    pub fn entry(&self) -> io::Result<Entry> {
        Ok(Entry(self.procs.try_clone()?))
    }

    /// The configured maximum.
    pub fn limit(&self) -> u64 {
        self.limit
    }

    /// How many forks (or thread creations) the limit refused so far.
    pub fn refused_forks(&self) -> u64 {
        let mut text = String::new();
        let read =
            File::open(self.dir.join("pids.events")).and_then(|mut file| file.read_to_string(&mut text));
        if read.is_err() {
            return 0;
        }
        text.lines()
            .find_map(|line| line.strip_prefix("max "))
            .and_then(|count| count.trim().parse().ok())
            .unwrap_or(0)
    }

    /// The processes now in the cgroup.
    pub fn members(&self) -> Vec<u32> {
        fs::read_to_string(self.dir.join("cgroup.procs"))
            .map(|text| text.lines().filter_map(|line| line.trim().parse().ok()).collect())
            .unwrap_or_default()
    }

    /// SIGKILLs every member, again and again while forks race the kill, until the cgroup
    /// is empty or the deadline passes. Returns how many were still there at the end.
    pub fn kill_all(&self) -> usize {
        let deadline = Instant::now() + EMPTYING_DEADLINE;
        loop {
            let members = self.members();
            if members.is_empty() || Instant::now() >= deadline {
                return members.len();
            }
            for pid in members {
                if let Some(pid) = Pid::from_raw(pid as i32) {
                    let _ = kill_process(pid, Signal::KILL);
                }
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for ProcessCap {
    fn drop(&mut self) {
        self.kill_all();
        // Killed processes leave the cgroup once reaped (labrun is their subreaper, and the
        // leader is reaped by its handle): retry the removal briefly.
        let deadline = Instant::now() + EMPTYING_DEADLINE;
        while fs::remove_dir(&self.dir).is_err() && Instant::now() < deadline {
            super::tree::reap_adopted(&self.members());
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// The directory of labrun's own cgroup in a hierarchy that has the pids controller: the
/// cgroup v1 `pids` mount, or the unified (v2) one.
fn own_pids_cgroup() -> Option<PathBuf> {
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
        if fstype == "cgroup" && super_options.split(',').any(|option| option == "pids") {
            let path = membership.lines().find_map(|entry| {
                let mut fields = entry.splitn(3, ':');
                let (_, controllers, path) = (fields.next()?, fields.next()?, fields.next()?);
                controllers.split(',').any(|c| c == "pids").then_some(path)
            })?;
            return Some(Path::new(mount_point).join(path.trim_start_matches('/')));
        }
        if fstype == "cgroup2" {
            let path = membership.lines().find_map(|entry| entry.strip_prefix("0::"));
            unified = path.map(|path| Path::new(mount_point).join(path.trim_start_matches('/')));
        }
    }
    unified
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cap_where_available_limits_forks_and_cleans_up() {
        let Some(cap) = ProcessCap::create(3) else {
            return; // no writable pids controller on this machine
        };
        let dir = cap.dir.clone();
        assert_eq!(cap.limit(), 3);
        assert_eq!(cap.refused_forks(), 0);
        assert!(cap.members().is_empty());
        drop(cap);
        assert!(!dir.exists(), "the cgroup is removed when dropped");
    }
}
