//! One supervised child process: spawned into its own process group under rlimits and
//! `PR_SET_PDEATHSIG`, its stdout and stderr drained into bounded captures, and torn down
//! (SIGTERM to the group and every descendant, grace, SIGKILL, reap) on every path.
//!
//! Servers under test and client programs under test are both [`Supervised`]; what differs
//! between them (readiness, typing at stdin, what counts as a good end) lives with their
//! callers. Keeping the process mechanics here means there is one teardown to get right.

use std::io;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use regex::Regex;
use rustix::process::{Pid, Signal, WaitId, WaitIdOptions, kill_process_group, waitid};
use std::os::fd::OwnedFd;
use std::os::unix::process::CommandExt;
use tokio::net::unix::pipe;
use tokio::time::Instant;

use super::capture::{self, CaptureLimits, SharedCapture};
use super::cgroup::{CpuCap, Entry, MemoryCap, ProcessCap, TreeCaps};
use super::exit::ExitDescription;
use super::sandbox::{self, BoundedSpace};
use super::{CpuLimitUse, DiskLimitUse, MemoryLimitUse, ProcessLimitUse, Teardown, registry, tree};
use crate::scenario::Limits;

/// What the C library says when a write is refused for want of space (`ENOSPC`, `EDQUOT`)
/// or past `limits.file_size` (`EFBIG`), as a traceback (`[Errno 28] …`) or `perror`
/// (`write: …`) prints it: the bare words in a message a server echoes are not enough.
const DISK_FULL_WORDS: [&str; 6] = [
    "] No space left on device",
    ": No space left on device",
    "] Disk quota exceeded",
    ": Disk quota exceeded",
    "] File too large",
    ": File too large",
];

/// How often a sandboxed tree's CPU time is read against its limit.
const CPU_POLL: Duration = Duration::from_millis(100);

/// How long to wait for output pipes to reach EOF after the group is gone.
const PIPE_FLUSH_WAIT: Duration = Duration::from_millis(500);

/// What to start and under which conditions.
pub struct Spec<'a> {
    /// Whether it is a program under test (not a built-in server): it runs in the sandbox
    /// when this process has one (see [`super::sandbox`]).
    pub under_test: bool,
    /// The program and its arguments, already substituted.
    pub argv: Vec<String>,
    /// Working directory (labrun's own when `None`).
    pub cwd: Option<&'a Path>,
    /// Extra environment variables.
    pub env: Vec<(String, String)>,
    /// Whether stdin is a pipe the caller writes to (else `/dev/null`).
    pub stdin: bool,
    /// Resource limits, inherited by everything it starts.
    pub limits: Limits,
    /// How much of each output stream is kept.
    pub keep: CaptureLimits,
    /// A pattern to watch for on stdout, line by line.
    pub watch_stdout: Option<Regex>,
    /// A pattern to watch for on stderr, line by line.
    pub watch_stderr: Option<Regex>,
}

/// A running child, owned: dropping it kills its whole process group.
pub struct Supervised {
    child: Child,
    group: Pid,
    stdout: capture::Drained,
    stderr: capture::Drained,
    reaped: bool,
    /// Its pids cgroup, where the machine has one and the spec limits processes. Dropped
    /// after the leader is reaped, killing whatever is still inside.
    process_cap: Option<ProcessCap>,
    /// Its memory cgroup, for a sandboxed program with a memory limit: the limit then holds
    /// for its whole tree. Dropped, like the pids cgroup, after the leader is reaped.
    memory_cap: Option<MemoryCap>,
    /// Its CPU accounting cgroup and the task that ends its tree past `limits.cpu`, for a
    /// sandboxed program with a CPU limit.
    cpu_watch: Option<CpuWatch>,
    /// Whether the leader is the sandbox around the program (see [`sandbox`]).
    sandboxed: bool,
    /// Whether what it writes has a limit (its sandbox's spaces, or `limits.file_size`), so
    /// that "No space left on device" in its output is that limit speaking.
    disk_bounded: bool,
    /// Its sandbox's writable spaces that have a size, and those found full when it was
    /// stopped.
    bounded_spaces: Vec<BoundedSpace>,
    full_spaces: Vec<BoundedSpace>,
}

impl Supervised {
    /// Starts the child. The error is the operating system's (a missing program, a bad
    /// working directory); callers name the program in their own error.
    pub fn spawn(spec: Spec) -> io::Result<Supervised> {
        let sandbox = sandbox::active().filter(|_| spec.under_test);
        let sandboxed = sandbox.is_some();
        // Memory and CPU hold for the whole tree only in the sandbox; elsewhere the rlimits
        // (per process) are what the scenario asked for.
        let caps = TreeCaps::create(
            spec.limits.processes,
            spec.limits.memory_bytes.filter(|_| sandboxed),
            spec.limits
                .cpu_seconds
                .filter(|_| sandboxed)
                .map(Duration::from_secs),
        );
        let TreeCaps {
            processes: process_cap,
            memory: memory_cap,
            cpu: cpu_cap,
        } = caps;
        let sandbox_cwd = match (sandbox, spec.cwd) {
            (None, _) => None,
            (Some(_), Some(dir)) => Some(std::path::absolute(dir)?),
            (Some(_), None) => Some(std::env::current_dir()?),
        };
        let bounded_spaces = match (sandbox, &sandbox_cwd) {
            (Some(sandbox), Some(cwd)) => sandbox.bounded_spaces(cwd),
            _ => Vec::new(),
        };
        let entries = [
            process_cap.as_ref().map(ProcessCap::entry),
            memory_cap.as_ref().map(MemoryCap::entry),
            cpu_cap.as_ref().map(CpuCap::entry),
        ];
        let entries = entries.into_iter().flatten().collect::<io::Result<Vec<_>>>()?;
        let mut command = build_command(&spec, sandbox.zip(sandbox_cwd.as_deref()), entries)?;
        let mut child = command.spawn()?;
        let group = Pid::from_child(&child);
        registry::remember(group);
        // Owned from here: if draining cannot start, the group is killed on the way out.
        let drained = drain_pipes(&mut child, &spec);
        let (stdout, stderr) = match drained {
            Ok(pipes) => pipes,
            Err(err) => {
                let _ = kill_process_group(group, Signal::KILL);
                let _ = child.kill();
                let _ = child.wait();
                registry::forget(group);
                return Err(err);
            }
        };
        Ok(Supervised {
            child,
            group,
            stdout,
            stderr,
            reaped: false,
            process_cap,
            memory_cap,
            cpu_watch: cpu_cap.map(CpuWatch::start),
            sandboxed,
            disk_bounded: sandboxed || spec.limits.file_size_bytes.is_some(),
            bounded_spaces,
            full_spaces: Vec::new(),
        })
    }

    /// The child's stdin pipe, once (only when the spec asked for one).
    pub fn take_stdin(&mut self) -> io::Result<pipe::Sender> {
        let stdin = self.child.stdin.take().ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                "its stdin is not a pipe (taken already?)",
            )
        })?;
        pipe::Sender::from_owned_fd(OwnedFd::from(stdin))
    }

    /// Process id of the leader.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Its process group.
    pub fn group(&self) -> Pid {
        self.group
    }

    /// Everything kept of its stdout.
    pub fn stdout(&self) -> &SharedCapture {
        &self.stdout.capture
    }

    /// Everything kept of its stderr.
    pub fn stderr(&self) -> &SharedCapture {
        &self.stderr.capture
    }

    /// Set once a stdout line matched the spec's `watch_stdout`.
    pub fn stdout_matched(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.stdout.matched)
    }

    /// Set once a stderr line matched the spec's `watch_stderr`.
    pub fn stderr_matched(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.stderr.matched)
    }

    /// Whether a stderr line matched the spec's `watch_stderr`.
    pub fn stderr_seen(&self) -> bool {
        self.stderr.matched.load(Ordering::Relaxed)
    }

    /// Changes whenever stdout grows; closed once stdout reaches EOF.
    pub fn stdout_growth(&self) -> tokio::sync::watch::Receiver<()> {
        self.stdout.grew.clone()
    }

    /// The leader's exit status if it has exited, without reaping it.
    pub fn exit_status(&self) -> Option<ExitDescription> {
        let options = WaitIdOptions::EXITED | WaitIdOptions::NOHANG | WaitIdOptions::NOWAIT;
        match waitid(WaitId::Pid(self.group), options) {
            Ok(Some(status)) => Some(match self.sandboxed {
                true => ExitDescription::from_waitid(&status).through_sandbox(),
                false => ExitDescription::from_waitid(&status),
            }),
            _ => None,
        }
    }

    /// Polls (without reaping) until the leader exits or `limit` passes.
    pub async fn wait_for_exit(&self, limit: Duration) {
        let deadline = Instant::now() + limit;
        while self.exit_status().is_none() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// SIGTERM to the group and every descendant, `grace`, then SIGKILL to all of them, reap,
    /// and wait for the output to be complete; says how it went.
    pub async fn stop(&mut self, grace: Duration) -> Teardown {
        let leader = self.child.id();
        // Descendants are collected while their parent links are intact: after the leader
        // dies they are re-parented and can no longer be traced to this child.
        let mut strays = tree::descendants_of(leader);
        self.note_full_spaces(&strays);
        let teardown = if self.exit_status().is_some() {
            Teardown::AlreadyExited
        } else {
            let _ = kill_process_group(self.group, Signal::TERM);
            tree::signal_all(&strays, Signal::TERM);
            self.wait_for_exit(grace).await;
            if self.exit_status().is_some() {
                Teardown::Terminated
            } else {
                Teardown::Killed
            }
        };
        strays.extend(tree::descendants_of(leader));
        tree::signal_all(&strays, Signal::KILL);
        if let Some(cap) = &self.process_cap {
            cap.kill_all();
        }
        if let Some(cap) = &self.memory_cap {
            cap.kill_all();
        }
        if let Some(watch) = &self.cpu_watch {
            watch.task.abort();
            watch.cap.kill_all();
        }
        self.kill_and_reap();
        tree::reap_adopted(&strays);
        self.flush_output().await;
        teardown
    }

    /// Its process limit and the forks refused at it, when a pids cgroup enforced it.
    pub fn process_limit(&self) -> Option<ProcessLimitUse> {
        self.process_cap.as_ref().map(|cap| ProcessLimitUse {
            limit: cap.limit(),
            refused_forks: cap.refused_forks(),
        })
    }

    /// Notes which of its sandbox's bounded spaces are full now, seen through the first of
    /// `inside` (its descendants: the sandbox's own processes) that is still there.
    fn note_full_spaces(&mut self, inside: &[u32]) {
        self.full_spaces = self
            .bounded_spaces
            .iter()
            .filter(|space| {
                inside
                    .iter()
                    .find_map(|&pid| space.is_full_seen_from(pid))
                    .unwrap_or(false)
            })
            .cloned()
            .collect();
    }

    /// The writing limits it ran into: its sandbox's spaces found full when it was stopped,
    /// and its own words for a refused write, when what it writes has a limit.
    pub fn disk_limit(&self) -> Option<DiskLimitUse> {
        let said = self
            .disk_bounded
            .then(|| {
                DISK_FULL_WORDS.into_iter().find(|words| {
                    [&self.stdout.capture, &self.stderr.capture]
                        .into_iter()
                        .any(|capture| capture::lock(capture).find(words.as_bytes(), 0).is_some())
                })
            })
            .flatten();
        if self.full_spaces.is_empty() && said.is_none() {
            return None;
        }
        Some(DiskLimitUse {
            full: self
                .full_spaces
                .iter()
                .map(|space| format!("{} ({})", space.name, crate::units::bytes(space.size_bytes)))
                .collect(),
            said: said.map(|words| words.trim_start_matches([']', ':', ' ']).to_owned()),
        })
    }

    /// Its CPU limit for the whole tree and what the tree used, when a cgroup accounted it.
    pub fn cpu_limit(&self) -> Option<CpuLimitUse> {
        self.cpu_watch.as_ref().map(|watch| CpuLimitUse {
            limit_seconds: watch.cap.limit().as_secs(),
            used_ms: watch.cap.used().as_secs_f64() * 1000.0,
            stopped: watch.stopped.load(Ordering::Relaxed),
        })
    }

    /// Its memory limit and the processes the OOM killer ended at it, when a memory cgroup
    /// enforced it (a sandboxed program).
    pub fn memory_limit(&self) -> Option<MemoryLimitUse> {
        self.memory_cap.as_ref().map(|cap| MemoryLimitUse {
            limit_bytes: cap.limit(),
            oom_kills: cap.oom_kills(),
        })
    }

    /// Kills whatever is left of the group, then reaps the leader.
    fn kill_and_reap(&mut self) {
        if self.reaped {
            return;
        }
        let _ = kill_process_group(self.group, Signal::KILL);
        // The leader itself too: a program can move itself out of its own process group,
        // and then the group signal misses it and `wait` would block forever.
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.reaped = true;
        registry::forget(self.group);
    }

    /// Waits (briefly) until both pipes reach EOF, so the captures are complete.
    pub async fn flush_output(&mut self) {
        for drain in [&mut self.stdout.task, &mut self.stderr.task] {
            let _ = tokio::time::timeout(PIPE_FLUSH_WAIT, drain).await;
        }
    }

    /// Its last output lines (stderr, or stdout if stderr was empty), escaped.
    pub fn output_tail(&self, lines: usize) -> String {
        let stderr = capture::lock(&self.stderr.capture);
        if stderr.total_bytes() > 0 {
            return stderr.tail_text(lines);
        }
        capture::lock(&self.stdout.capture).tail_text(lines)
    }
}

impl Drop for Supervised {
    fn drop(&mut self) {
        self.kill_and_reap();
        self.stdout.task.abort();
        self.stderr.task.abort();
    }
}

/// Starts draining the child's stdout and stderr, watching each for its pattern.
fn drain_pipes(child: &mut Child, spec: &Spec) -> io::Result<(capture::Drained, capture::Drained)> {
    let stdout = pipe::Receiver::from_owned_fd(OwnedFd::from(child.stdout.take().expect("stdout is piped")))?;
    let stderr = pipe::Receiver::from_owned_fd(OwnedFd::from(child.stderr.take().expect("stderr is piped")))?;
    Ok((
        capture::drain(stdout, spec.keep, spec.watch_stdout.clone()),
        capture::drain(stderr, spec.keep, spec.watch_stderr.clone()),
    ))
}

/// Marks every descriptor above stderr close-on-exec (`close_range`, Linux 5.11; one by one
/// up to the open-files limit before that). Async-signal-safe: system calls only.
pub fn close_inherited_descriptors() {
    // SAFETY: close_range with CLOSE_RANGE_CLOEXEC only changes descriptor flags.
    let marked = unsafe { libc::close_range(3, u32::MAX, libc::CLOSE_RANGE_CLOEXEC as libc::c_int) };
    if marked == 0 {
        return;
    }
    let highest = rustix::process::getrlimit(rustix::process::Resource::Nofile)
        .current
        .unwrap_or(65536)
        .min(1 << 20) as i32;
    for fd in 3..highest {
        // SAFETY: F_SETFD on a descriptor that may not exist fails harmlessly with EBADF.
        unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
    }
}

/// Sets each configured limit as both the soft and the hard limit, so the child cannot
/// raise it again; the CPU hard limit is one second later, so a child past its CPU time
/// gets SIGXCPU (reported by name) rather than a bare SIGKILL. Runs in the forked child
/// before exec.
fn apply_limits(limits: &Limits) -> io::Result<()> {
    use rustix::process::{Resource, Rlimit, setrlimit};
    let pairs = [
        (Resource::Cpu, limits.cpu_seconds),
        (Resource::As, limits.memory_bytes),
        (Resource::Nproc, limits.processes),
        (Resource::Nofile, limits.open_files),
        (Resource::Fsize, limits.file_size_bytes),
    ];
    for (resource, value) in pairs {
        if let Some(value) = value {
            let maximum = if resource == Resource::Cpu {
                value + 1
            } else {
                value
            };
            setrlimit(
                resource,
                Rlimit {
                    current: Some(value),
                    maximum: Some(maximum),
                },
            )?;
        }
    }
    Ok(())
}

/// The command for `spec`, in `sandbox` (with the program's absolute working directory)
/// when it has one.
fn build_command(
    spec: &Spec,
    sandbox: Option<(&sandbox::Sandbox, &Path)>,
    cgroups: Vec<Entry>,
) -> io::Result<Command> {
    let (program, args) = spec
        .argv
        .split_first()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "empty command"))?;
    let mut command = match sandbox {
        Some((sandbox, cwd)) => sandbox.command(&spec.argv, cwd, &spec.env),
        None => {
            let mut command = Command::new(program);
            command
                .args(args)
                .envs(spec.env.iter().map(|(key, value)| (key, value)));
            command
        }
    };
    if let Some(dir) = spec.cwd {
        command.current_dir(dir);
    }
    let run_as = sandbox.and_then(|(sandbox, _)| sandbox.run_as());
    command
        .stdin(if spec.stdin { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let mut limits = spec.limits;
    if sandbox.is_some() && limits.processes.is_none() {
        limits.processes = Some(sandbox::DEFAULT_PROCESSES);
    }
    let sandboxed = sandbox.is_some();
    // SAFETY: the closure runs between fork and exec and only makes async-signal-safe
    // system calls (write, setrlimit, close_range or fcntl, setgroups, setresgid, setresuid,
    // prctl); it allocates nothing and takes no locks.
    unsafe {
        command.pre_exec(move || {
            for entry in &cgroups {
                entry.join()?;
            }
            apply_limits(&limits)?;
            // Nothing labrun inherited (a CI runner's pipes, a make jobserver, a grader's
            // descriptors) reaches the program: every descriptor past stdio closes at exec.
            close_inherited_descriptors();
            if sandboxed {
                // No core file: a crash must hand nothing to a core handler on the host.
                let none = rustix::process::Rlimit {
                    current: Some(0),
                    maximum: Some(0),
                };
                rustix::process::setrlimit(rustix::process::Resource::Core, none)?;
            }
            // Root starts the sandbox as the sandbox's own unprivileged user: the program's
            // files, and anything it might reach, are then judged by that user's rights.
            // Dropping privileges clears the death signal, so it is set after.
            if let Some((uid, gid)) = run_as {
                rustix::thread::set_thread_groups(&[])?;
                rustix::thread::set_thread_res_gid(
                    rustix::process::Gid::from_raw(gid),
                    rustix::process::Gid::from_raw(gid),
                    rustix::process::Gid::from_raw(gid),
                )?;
                rustix::thread::set_thread_res_uid(
                    rustix::process::Uid::from_raw(uid),
                    rustix::process::Uid::from_raw(uid),
                    rustix::process::Uid::from_raw(uid),
                )?;
            }
            rustix::process::set_parent_process_death_signal(Some(Signal::KILL)).map_err(io::Error::from)
        });
    }
    Ok(command)
}

/// A sandboxed program's CPU accounting and the task that ends its whole tree once the tree
/// has used its `limits.cpu` together.
struct CpuWatch {
    cap: Arc<CpuCap>,
    /// Whether the task ended the tree.
    stopped: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl CpuWatch {
    fn start(cap: CpuCap) -> CpuWatch {
        let cap = Arc::new(cap);
        let stopped = Arc::new(AtomicBool::new(false));
        let task = tokio::spawn({
            let (cap, stopped) = (Arc::clone(&cap), Arc::clone(&stopped));
            async move {
                let mut tick = tokio::time::interval(CPU_POLL);
                loop {
                    tick.tick().await;
                    if cap.used() > cap.limit() {
                        stopped.store(true, Ordering::Relaxed);
                        let _ = tokio::task::spawn_blocking(move || cap.kill_all()).await;
                        return;
                    }
                }
            }
        });
        CpuWatch { cap, stopped, task }
    }
}

impl Drop for CpuWatch {
    fn drop(&mut self) {
        self.task.abort();
    }
}
