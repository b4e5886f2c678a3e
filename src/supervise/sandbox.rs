//! The sandbox every program under test runs in when labrun is asked for one (`--sandbox`,
//! and always when grading): bubblewrap, the engine Flatpak uses.
//!
//! A program in the sandbox runs as an unprivileged user (when labrun is root, a uid of the
//! sandbox's own: see [`run_as`]) with no capabilities, `no_new_privs`, no core dumps and a
//! process limit, in user, mount, PID, IPC, UTS and cgroup namespaces of its own. Its
//! filesystem holds, read-only, the root, `/usr` (and the `/bin`, `/lib` links into it), a
//! minimal `/etc` written here (`hosts`, `passwd`, `group`, `nsswitch.conf`: no `shadow`, no
//! host secrets), `/dev` and the files its command names; read-write, its working directory
//! (for a grader's copy, a bounded space in memory filled from it), a size-limited `/tmp` and
//! `/dev/shm`; a `/proc` of its own PID namespace. Nothing else: not labrun, not the scenario
//! or suite, not other submissions, not the reports, no descriptor labrun inherited. Its
//! environment is cleared but for `PATH`, `LANG`, `HOME` (its working directory) and what the
//! scenario gives it (`PORT` among them). It shares labrun's network namespace, which is then
//! a private one holding only loopback, so the simulated clients reach it and nothing else
//! does. When labrun tears it down, or dies, bubblewrap's PID namespace ends with everything
//! in it (`--die-with-parent`).
//!
//! Hand-written namespace code would have to get every one of these right; bubblewrap is
//! small, audited and packaged everywhere (`apt-get install bubblewrap`). The sandbox is set
//! once per labrun process ([`enable`]) rather than passed along: it is a property of the
//! whole run, chosen on the command line, and a launch path added later cannot forget it.

use std::ffi::OsString;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The program that builds the sandbox.
const BUBBLEWRAP: &str = "bwrap";
/// Size of a sandboxed program's private `/tmp`.
const TMP_BYTES: u64 = 64 * 1024 * 1024;
/// Size of the writable space a grader's copy of a submission runs in: the copy (at most the
/// suite's `max_size`, 64 MiB by default) and what the program writes.
pub const WORKDIR_BYTES: u64 = 128 * 1024 * 1024;
/// Where a throwaway working directory's contents are shown read-only, to be copied from.
const SEED: &str = "/.labrun-seed";
/// Size of its `/dev/shm` (the rest of its root and `/dev` is read-only).
const SHM_BYTES: u64 = 16 * 1024 * 1024;
/// Processes (and threads) a sandboxed program may have when its scenario sets no limit: a
/// fork bomb must not take the machine's pids. Enforced per sandbox, since each has a uid of
/// its own.
pub const DEFAULT_PROCESSES: u64 = 256;
/// `PATH` inside the sandbox: only system directories are there.
const SANDBOX_PATH: &str = "/usr/local/bin:/usr/bin:/bin";
/// Where the uids of sandboxes start when labrun is root: far above any real user's.
const SANDBOX_UID_BASE: u32 = 0x4000_0000;
/// How long the check that the sandbox works may take.
const TRIAL_TIMEOUT: Duration = Duration::from_secs(10);

/// Free space below which a bounded space counts as full: less than one chunk a program
/// would write.
const FULL_BELOW_BYTES: u64 = 1024 * 1024;

/// A writable space of a sandboxed program that has a size of its own, so that filling it
/// is the program's limit, not the host's disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BoundedSpace {
    /// How a student would name it: `/tmp`, `/dev/shm`, or its working directory.
    pub name: String,
    /// Where it is mounted inside the sandbox.
    path: PathBuf,
    pub size_bytes: u64,
}

impl BoundedSpace {
    /// Whether it is (nearly) full, looked at through the root of `inside`, a process in
    /// the sandbox; `None` when that process is gone or the space cannot be read. The path
    /// is walked inside that root and through no link at all: the program owns the folders
    /// above its working directory and could otherwise point labrun at a path of the host's.
    pub fn is_full_seen_from(&self, inside: u32) -> Option<bool> {
        use rustix::fs::{Mode, OFlags, ResolveFlags};
        let seen = || -> io::Result<bool> {
            let root = rustix::fs::open(
                format!("/proc/{inside}/root"),
                OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
                Mode::empty(),
            )?;
            let space = rustix::fs::openat2(
                &root,
                self.path.strip_prefix("/").unwrap_or(&self.path),
                OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
                Mode::empty(),
                ResolveFlags::IN_ROOT | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS,
            )?;
            let stat = rustix::fs::fstatfs(&space)?;
            // Only the sandbox's own tmpfs of this size is the space: never the host's.
            let block = stat.f_bsize as u64;
            let size = stat.f_blocks.saturating_mul(block);
            Ok(size == self.size_bytes && stat.f_bavail.saturating_mul(block) < FULL_BELOW_BYTES)
        };
        seen().ok()
    }
}

/// The minimal `/etc` of the sandbox: enough for `localhost` to resolve and for a program to
/// look up its own user, nothing that belongs to the host.
fn etc_files(id: u32) -> [(&'static str, String); 4] {
    [
        (
            "hosts",
            "127.0.0.1 localhost\n::1 localhost ip6-localhost ip6-loopback\n".to_owned(),
        ),
        (
            "passwd",
            format!("student:x:{id}:{id}:student:/nonexistent:/usr/sbin/nologin\n"),
        ),
        ("group", format!("student:x:{id}:\n")),
        (
            "nsswitch.conf",
            "passwd: files\ngroup: files\nhosts: files\n".to_owned(),
        ),
    ]
}

/// Why the sandbox cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// bubblewrap is not installed.
    #[error(
        "the sandbox needs bubblewrap (`{BUBBLEWRAP}`), which is not installed: install it \
         (Debian/Ubuntu: apt-get install bubblewrap), or pass --unsandboxed for trusted code only"
    )]
    Missing,
    /// bubblewrap is there but cannot build a sandbox on this machine.
    #[error(
        "the sandbox does not work on this machine: bubblewrap said `{said}`; it needs user \
         namespaces (sysctl kernel.unprivileged_userns_clone=1, user.max_user_namespaces > 0; \
         inside a container, one that allows them); or pass --unsandboxed for trusted code only"
    )]
    Broken {
        /// What bubblewrap printed.
        said: String,
    },
    /// Its private `/etc` could not be written.
    #[error("cannot prepare the sandbox's files: {0}")]
    Files(#[source] io::Error),
}

/// A working sandbox: bubblewrap and its private `/etc`, kept for the life of the process.
#[derive(Debug)]
pub struct Sandbox {
    /// Where bubblewrap is, found on labrun's own `PATH` (the sandbox's is not labrun's).
    bubblewrap: PathBuf,
    etc: tempfile::TempDir,
    /// The uid and gid programs run as, when labrun must drop root to start them.
    run_as: Option<(u32, u32)>,
    /// Whether working directories are copies to fill a bounded space from (see [`enable`]).
    throwaway_workdir: bool,
}

static ACTIVE: OnceLock<Sandbox> = OnceLock::new();

/// Makes every program under test that this process launches from now on run in the
/// sandbox, after checking that it works here.
///
/// With `throwaway_workdir` (a grader's copy of a submission), a program's working directory
/// is a size-limited space of its own, filled from the copy when it starts: what it writes
/// takes memory up to [`WORKDIR_BYTES`], never the host's disk.
pub fn enable(throwaway_workdir: bool) -> Result<(), SandboxError> {
    if ACTIVE.get().is_some() {
        return Ok(());
    }
    let mut sandbox = Sandbox::prepare()?;
    sandbox.throwaway_workdir = throwaway_workdir;
    sandbox.trial()?;
    let _ = ACTIVE.set(sandbox);
    Ok(())
}

/// Checks that the sandbox works here, without enabling it (a grader checks before it
/// starts any child run).
pub fn check() -> Result<(), SandboxError> {
    Sandbox::prepare()?.trial()
}

/// The sandbox, when this process runs programs under test in one.
pub fn active() -> Option<&'static Sandbox> {
    ACTIVE.get()
}

/// The uid and gid this process's sandboxed programs run as when labrun is root, or `None`
/// when they run as labrun's own user. Each labrun process has a uid of its own (from its
/// pid, unique among living processes), so what the kernel counts per user (processes,
/// pending signals, inotify instances) is never shared by two sandboxes: one student's
/// fork bomb cannot use up another's process limit.
pub fn run_as() -> Option<(u32, u32)> {
    let id = SANDBOX_UID_BASE + std::process::id();
    rustix::process::geteuid().is_root().then_some((id, id))
}

/// Gives the sandbox's user the folder `dir` and everything in it (a grader's working copy
/// of a submission), when programs run as a user of their own.
pub fn hand_over(dir: &Path) -> io::Result<()> {
    let Some((uid, gid)) = run_as() else {
        return Ok(());
    };
    let mut pending = vec![dir.to_owned()];
    while let Some(path) = pending.pop() {
        std::os::unix::fs::lchown(&path, Some(uid), Some(gid))?;
        if path.is_dir() && !path.is_symlink() {
            for entry in std::fs::read_dir(&path)? {
                pending.push(entry?.path());
            }
        }
    }
    Ok(())
}

/// Removes the sandbox's files, once this process has launched its last program.
pub fn clean_up() {
    if let Some(sandbox) = ACTIVE.get() {
        let _ = std::fs::remove_dir_all(sandbox.etc.path());
    }
}

impl Sandbox {
    fn prepare() -> Result<Sandbox, SandboxError> {
        let bubblewrap = find_on_path(BUBBLEWRAP).ok_or(SandboxError::Missing)?;
        let etc = tempfile::Builder::new()
            .prefix(".labrun-sandbox-etc-")
            .tempdir()
            .map_err(SandboxError::Files)?;
        let run_as = run_as();
        for (name, text) in etc_files(run_as.map_or(65534, |(uid, _)| uid)) {
            std::fs::write(etc.path().join(name), text).map_err(SandboxError::Files)?;
        }
        if run_as.is_some() {
            // The unprivileged user must be able to read the files to bind them.
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(etc.path(), std::fs::Permissions::from_mode(0o755));
        }
        Ok(Sandbox {
            bubblewrap,
            etc,
            run_as,
            throwaway_workdir: false,
        })
    }

    /// Runs `true` in the sandbox, bounded, to prove it can be built here.
    fn trial(&self) -> Result<(), SandboxError> {
        let cwd = self.etc.path().to_owned();
        let mut command = self.command(&["true".to_owned()], &cwd, &[]);
        command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = command.spawn().map_err(|err| match err.kind() {
            io::ErrorKind::NotFound => SandboxError::Missing,
            _ => SandboxError::Broken {
                said: err.to_string(),
            },
        })?;
        let started = Instant::now();
        loop {
            match child.try_wait() {
                Ok(Some(status)) if status.success() => return Ok(()),
                Ok(Some(_)) => break,
                Ok(None) if started.elapsed() < TRIAL_TIMEOUT => {
                    std::thread::sleep(Duration::from_millis(10))
                }
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(SandboxError::Broken {
                        said: format!("nothing within {}", humantime::format_duration(TRIAL_TIMEOUT)),
                    });
                }
            }
        }
        let mut said = String::new();
        if let Some(mut stderr) = child.stderr.take() {
            use std::io::Read;
            let _ = (&mut stderr).take(2048).read_to_string(&mut said);
        }
        Err(SandboxError::Broken {
            said: crate::escape::escape_lines(said.trim().as_bytes()),
        })
    }

    /// The writable spaces with a size of their own of a program run with `cwd` as its
    /// working directory: `/tmp`, `/dev/shm`, and for a grader's copy the directory itself.
    pub fn bounded_spaces(&self, cwd: &Path) -> Vec<BoundedSpace> {
        let mut spaces = vec![
            BoundedSpace {
                name: "/tmp".to_owned(),
                path: PathBuf::from("/tmp"),
                size_bytes: TMP_BYTES,
            },
            BoundedSpace {
                name: "/dev/shm".to_owned(),
                path: PathBuf::from("/dev/shm"),
                size_bytes: SHM_BYTES,
            },
        ];
        if self.throwaway_workdir {
            spaces.push(BoundedSpace {
                name: "its working directory".to_owned(),
                path: cwd.to_owned(),
                size_bytes: WORKDIR_BYTES,
            });
        }
        spaces
    }

    /// The user a sandboxed program runs as, when labrun must switch to it (it is root).
    pub fn run_as(&self) -> Option<(u32, u32)> {
        self.run_as
    }

    /// A command that runs `argv` in the sandbox with `cwd` as its writable working directory
    /// and `env` as its only variables besides `PATH`, `LANG` and `HOME`. The caller adds
    /// stdio, the process group and the switch to [`Sandbox::run_as`].
    pub fn command(&self, argv: &[String], cwd: &Path, env: &[(String, String)]) -> Command {
        let mut command = Command::new(&self.bubblewrap);
        command.env_clear().args(self.arguments(argv, cwd, env));
        command
    }

    fn arguments(&self, argv: &[String], cwd: &Path, env: &[(String, String)]) -> Vec<OsString> {
        let mut args: Vec<OsString> = Vec::new();
        let mut push = |items: &[&dyn AsRef<std::ffi::OsStr>]| {
            args.extend(items.iter().map(|item| item.as_ref().to_owned()));
        };
        push(&[
            &"--unshare-all",
            &"--unshare-user",
            &"--share-net",
            &"--disable-userns",
        ]);
        push(&[&"--die-with-parent", &"--new-session", &"--cap-drop", &"ALL"]);
        push(&[&"--ro-bind", &"/usr", &"/usr"]);
        for top in ["bin", "sbin", "lib", "lib32", "lib64", "libx32"] {
            let host = Path::new("/").join(top);
            match std::fs::read_link(&host) {
                // Merged /usr: /bin is a link into /usr.
                Ok(target) => push(&[&"--symlink", &target, &host]),
                Err(_) if host.is_dir() => push(&[&"--ro-bind", &host, &host]),
                Err(_) => {}
            }
        }
        push(&[&"--ro-bind", &self.etc.path(), &"/etc"]);
        push(&[&"--proc", &"/proc", &"--dev", &"/dev"]);
        let shm = SHM_BYTES.to_string();
        push(&[&"--size", &shm, &"--tmpfs", &"/dev/shm", &"--remount-ro", &"/dev"]);
        push(&[&"--size", &TMP_BYTES.to_string(), &"--tmpfs", &"/tmp"]);
        for file in files_named(argv, cwd) {
            push(&[&"--ro-bind", &file, &file]);
        }
        if self.throwaway_workdir {
            // The host's copy, read-only, and over its path a bounded space the program
            // starts by copying it into (below): the disk it may fill is that space.
            push(&[&"--ro-bind", &cwd, &SEED]);
            push(&[&"--size", &WORKDIR_BYTES.to_string(), &"--tmpfs", &cwd]);
        } else {
            push(&[&"--bind", &cwd, &cwd]);
        }
        push(&[&"--chdir", &cwd]);
        // Its root is bubblewrap's own unbounded tmpfs: nothing may be written there.
        push(&[&"--remount-ro", &"/"]);
        push(&[&"--clearenv", &"--setenv", &"PATH", &SANDBOX_PATH]);
        push(&[&"--setenv", &"LANG", &"C.UTF-8", &"--setenv", &"HOME", &cwd]);
        for (key, value) in env {
            push(&[&"--setenv", key, value]);
        }
        push(&[&"--"]);
        if self.throwaway_workdir {
            let fill = format!("cp -a {SEED}/. . && exec \"$0\" \"$@\"");
            push(&[&"/bin/sh", &"-c", &fill]);
        }
        args.extend(argv.iter().map(OsString::from));
        args
    }
}

/// `program`'s path in the directories of labrun's `PATH`.
fn find_on_path(program: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
}

/// The files a command names by absolute path outside its working directory (the script a
/// scenario runs, say), which the sandbox shows it read-only.
fn files_named(argv: &[String], cwd: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = argv
        .iter()
        .map(PathBuf::from)
        .filter(|path| path.is_absolute() && !path.starts_with(cwd) && !path.starts_with("/usr"))
        .filter(|path| path.is_file())
        .collect();
    files.sort();
    files.dedup();
    files
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sandbox_shows_what_the_program_needs_and_nothing_else() {
        let sandbox = Sandbox::prepare().expect("files");
        let cwd = Path::new("/srv/submission");
        let args = sandbox.arguments(
            &["python3".into(), "server.py".into(), "{port}".into()],
            cwd,
            &[("PORT".into(), "6000".into())],
        );
        let text: Vec<String> = args.iter().map(|a| a.to_string_lossy().into_owned()).collect();
        let joined = text.join(" ");
        for needed in [
            "--unshare-all --unshare-user --share-net --disable-userns",
            "--die-with-parent --new-session --cap-drop ALL",
            "--ro-bind /usr /usr",
            "--bind /srv/submission /srv/submission --chdir /srv/submission",
            "--clearenv --setenv PATH /usr/local/bin:/usr/bin:/bin",
            "--setenv PORT 6000 -- python3 server.py {port}",
        ] {
            assert!(joined.contains(needed), "{needed:?} missing from {joined}");
        }
        assert!(!joined.contains("/root"), "{joined}");
        assert!(joined.contains(&format!("--ro-bind {} /etc", sandbox.etc.path().display())));
        assert!(!sandbox.etc.path().join("shadow").exists());
    }
}
