//! Where a grader copies submissions: one folder per grading run, holding one throwaway
//! workspace per test run, and locked for as long as the grader lives.
//!
//! A test killed at its timeout is cleaned up by its workspace's drop; a grader that is
//! killed itself cannot clean up, and its copies of students' code would pile up in the
//! temporary folder. So each grading run holds an exclusive `flock` on its folder's `.lock`
//! (the kernel releases it when the process dies, however it dies), and every grader first
//! removes the folders whose lock nobody holds any more. A lock, not a pid: pids are reused.

use std::fs::File;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use rustix::fs::{FlockOperation, flock};

/// What every grading run's folder is called, before its random part.
const PREFIX: &str = "labrun-grade-";
/// The lock file inside it.
const LOCK: &str = ".lock";

/// This grading run's folder of workspaces.
pub struct Workspaces {
    root: tempfile::TempDir,
    /// Held while the grader lives.
    _lock: File,
}

impl Workspaces {
    /// Removes stale folders of killed graders, then makes and locks this run's.
    pub fn open() -> io::Result<Workspaces> {
        sweep_stale(&std::env::temp_dir());
        let root = tempfile::Builder::new().prefix(PREFIX).tempdir()?;
        // The sandbox's unprivileged user passes through to its working copy (see
        // `hand_to_sandbox`), without listing what is here.
        std::fs::set_permissions(root.path(), std::fs::Permissions::from_mode(0o711))?;
        let lock = File::create(root.path().join(LOCK))?;
        flock(&lock, FlockOperation::NonBlockingLockExclusive)?;
        Ok(Workspaces { root, _lock: lock })
    }

    /// A fresh workspace for one test run, removed when dropped.
    pub fn workspace(&self) -> io::Result<tempfile::TempDir> {
        tempfile::Builder::new()
            .prefix("test-")
            .tempdir_in(self.root.path())
    }
}

/// Removes every grading folder in `dir` whose lock is free: its grader is gone.
fn sweep_stale(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let ours = entry
            .file_name()
            .to_str()
            .is_some_and(|name| name.starts_with(PREFIX));
        if !ours || !entry.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        // Anyone may create a folder here: a `.lock` that is a FIFO or a link must not hang
        // or mislead the grader.
        use std::os::unix::fs::OpenOptionsExt;
        let Ok(lock) = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_NOFOLLOW)
            .open(path.join(LOCK))
        else {
            continue;
        };
        if !lock.metadata().is_ok_and(|m| m.is_file()) {
            continue;
        }
        if flock(&lock, FlockOperation::NonBlockingLockExclusive).is_ok() {
            let _ = std::fs::remove_dir_all(&path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dead_graders_folder_is_swept_and_a_living_ones_is_not() {
        let tmp = tempfile::tempdir().expect("tmp");
        let dead = tmp.path().join(format!("{PREFIX}dead"));
        std::fs::create_dir_all(dead.join("test-1/submission")).expect("dead");
        File::create(dead.join(LOCK)).expect("lock");
        let alive = tmp.path().join(format!("{PREFIX}alive"));
        std::fs::create_dir_all(&alive).expect("alive");
        let held = File::create(alive.join(LOCK)).expect("lock");
        flock(&held, FlockOperation::NonBlockingLockExclusive).expect("held");
        let unrelated = tmp.path().join("labrun-other");
        std::fs::create_dir_all(&unrelated).expect("other");
        sweep_stale(tmp.path());
        assert!(!dead.exists());
        assert!(alive.exists());
        assert!(unrelated.exists());
    }

    #[test]
    fn a_fifo_posing_as_a_lock_cannot_hang_the_sweep() {
        let tmp = tempfile::tempdir().expect("tmp");
        let trap = tmp.path().join(format!("{PREFIX}trap"));
        std::fs::create_dir_all(&trap).expect("trap");
        let fifo =
            std::ffi::CString::new(trap.join(LOCK).into_os_string().into_encoded_bytes()).expect("path");
        // SAFETY: mkfifo reads a NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o666) }, 0);
        let dir = tmp.path().to_owned();
        let (done, finished) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            sweep_stale(&dir);
            let _ = done.send(());
        });
        assert!(
            finished.recv_timeout(std::time::Duration::from_secs(5)).is_ok(),
            "the sweep hung"
        );
        assert!(trap.exists(), "not a lock: left alone");
    }
}
