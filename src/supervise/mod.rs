//! Launching servers under test, knowing when they are ready, and always tearing them down.
//!
//! Every program under test is spawned and signalled here (`grade` spawns only labrun
//! itself, one child run per test). [`process`] owns the mechanics shared
//! by every supervised program (a server here, a client program under test in
//! `clientprog`); this file adds what is particular to servers: ports, readiness, stdin
//! scripts, scenario events. Each program runs in its own process
//! group, so a terminal's Ctrl-C reaches labrun alone and teardown can signal everything the
//! server forked. Teardown is SIGTERM to the group, a grace period, then SIGKILL to the group,
//! then reaping. The leader is reaped last on purpose: while it is an unreaped zombie its
//! process-group id cannot be reused, so the group-wide SIGKILL cannot hit a stranger.
//! Backstops: `Drop` kills the group synchronously (early returns, unwinding), the panic hook
//! in [`registry`] kills every group, and `PR_SET_PDEATHSIG` kills a direct child if labrun
//! itself is killed outright.

pub mod capture;
mod cgroup;
mod exit;
pub mod process;
mod reach;
pub mod registry;
pub mod sandbox;
mod sockets;
pub mod tree;

use std::io;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde::Serialize;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tokio::time::Instant;

pub use capture::SharedCapture;
pub use exit::ExitDescription;
pub use process::Supervised;

use crate::scenario::{
    EventAction, EventPlan, ExitPolicy, Launch, PortChoice, ReadySignal, ServerPlan, StdinScript, Transport,
    substitute_ports,
};

/// How long a server gets to exit after SIGTERM before its group is killed.
pub const TERMINATION_GRACE: Duration = Duration::from_secs(2);
/// Lines of a server's output shown when it fails.
pub const TAIL_LINES: usize = 15;
/// How long a server allowed to exit after its clients gets to do so before teardown.
const EXIT_BY_ITSELF_WAIT: Duration = Duration::from_secs(1);
/// How long a server not listening at the end of the run has to listen again before it
/// counts as having stopped (see [`ServerHandle::listens_again`]).
const RELISTEN_GRACE: Duration = Duration::from_millis(500);
/// How long, at most, a server's children have to exit and be reaped once its clients left.
const SETTLE_LIMIT: Duration = Duration::from_secs(3);
const SETTLE_POLL: Duration = Duration::from_millis(100);
/// Zombies a server may hold after its clients left: the last child, where the server reaps
/// each child when it forks the next (as `multiprocessing` does).
pub const MAX_UNREAPED: u32 = 1;

/// Why a server could not be started.
#[derive(Debug, thiserror::Error)]
pub enum SuperviseError {
    /// The program could not be executed.
    #[error("cannot start server `{server}`: `{program}`: {source}")]
    Spawn {
        /// Server name.
        server: String,
        /// The program that failed to execute.
        program: String,
        /// The operating system's reason.
        #[source]
        source: io::Error,
    },
    /// A fixed port is already taken by another process.
    #[error(
        "cannot start server `{server}`: port {port} on 127.0.0.1 is already in use{}",
        holder.as_ref().map(|h| format!(" by {h}")).unwrap_or_default()
    )]
    PortInUse {
        /// Server name.
        server: String,
        port: u16,
        /// The process holding it (`pid N (command line)`), when the kernel tells.
        holder: Option<String>,
    },
    /// No free loopback port could be found for `port = "auto"`.
    #[error("cannot find a free port on 127.0.0.1 for server `{server}`")]
    NoFreePort {
        /// Server name.
        server: String,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The server exited before accepting a connection.
    #[error(
        "server `{server}` {status} before accepting connections{}",
        output_block(output)
    )]
    ExitedAtStartup {
        /// Server name.
        server: String,
        /// How it ended.
        status: ExitDescription,
        /// The tail of its output, escaped.
        output: String,
    },
    /// The server never printed its readiness line.
    #[error(
        "server `{server}` did not print a line matching `{pattern}` on {stream} within {}{}",
        humantime::format_duration(*waited),
        output_block(output)
    )]
    NoReadyLine {
        /// Server name.
        server: String,
        /// `stdout` or `stderr`.
        stream: &'static str,
        /// The regular expression.
        pattern: String,
        /// How long labrun waited.
        waited: Duration,
        /// The tail of its output, escaped.
        output: String,
    },
    /// The server did not accept a connection within its ready timeout.
    #[error(
        "server `{server}` did not listen on 127.0.0.1:{port} within {}{}{}",
        humantime::format_duration(*waited),
        elsewhere_note(*port, elsewhere),
        output_block(output)
    )]
    NotReady {
        /// Server name.
        server: String,
        /// The port it was expected on.
        port: u16,
        /// How long labrun waited.
        waited: Duration,
        /// Addresses its processes do listen on instead.
        elsewhere: Vec<SocketAddr>,
        /// The tail of its output, escaped.
        output: String,
    },
    /// A server labrun does not launch (`address`) did not answer within its ready timeout.
    #[error(
        "server `{server}`: nothing answered at {target} ({transport}) within {}: {reason}",
        humantime::format_duration(*waited)
    )]
    Unreachable {
        /// Server name.
        server: String,
        /// Where it was to be, as written.
        target: String,
        /// `tcp` or `udp`.
        transport: &'static str,
        /// How long labrun tried.
        waited: Duration,
        /// The last attempt's failure.
        reason: String,
    },
    /// A program serving several servers' ports (`process = "…"`) never listened on one of
    /// them.
    #[error(
        "server `{server}`: nothing listens on 127.0.0.1:{port} after {}; the program (started as \
         server `{process}`) listens only on {}: each port needs a listening socket of its own \
         (bind and listen on every port given, each with its own accept loop: a thread, or \
         selectors){}",
        humantime::format_duration(*waited),
        if listening.is_empty() { "no port at all".to_owned() } else { listening.join(", ") },
        output_block(output)
    )]
    PortNotServed {
        /// The server whose port nothing listens on.
        server: String,
        port: u16,
        /// The server whose process was to serve it.
        process: String,
        /// How long labrun waited.
        waited: Duration,
        /// Where the program does listen, each with the server whose port it is.
        listening: Vec<String>,
        /// The tail of its output, escaped.
        output: String,
    },
}

fn elsewhere_note(port: u16, elsewhere: &[SocketAddr]) -> String {
    if elsewhere.is_empty() {
        return String::new();
    }
    let listed: Vec<String> = elsewhere.iter().map(SocketAddr::to_string).collect();
    let unreachable_here = elsewhere.iter().any(|a| a.port() == port);
    if unreachable_here {
        format!(
            "; it listens on {}, which clients connecting to 127.0.0.1 cannot reach: bind \"127.0.0.1\" or \"\"",
            listed.join(", ")
        )
    } else {
        format!(
            "; it listens on {} instead: it seems to hard-code its port; take it from the command line \
             (\"{{port}}\" in `command`, sys.argv[1]) or $PORT, or set `port` in the scenario to match",
            listed.join(", ")
        )
    }
}

fn output_block(output: &str) -> String {
    if output.is_empty() {
        return "; it printed nothing".to_owned();
    }
    let quoted: Vec<String> = output.lines().map(|line| format!("  | {line}")).collect();
    format!("; its last output:\n{}", quoted.join("\n"))
}

/// A running server, owned: dropping it kills its whole process group (and with it every
/// server whose port the process also serves).
pub struct ServerHandle {
    name: String,
    address: SocketAddr,
    process: Supervised,
    /// Set when the readiness pattern (if any) appeared in the output.
    pattern_seen: Arc<AtomicBool>,
    /// Types at the server's stdin; aborting it closes the pipe.
    stdin_feeder: Option<JoinHandle<()>>,
    ready_after: Duration,
    exits: ExitPolicy,
    /// TCP or UDP: which kernel table says it is ready.
    transport: Transport,
    /// The other servers whose ports this process serves (`process = "…"`).
    shared: Vec<SharedPort>,
    /// Its processes when it became ready, and once its clients had left, when asked.
    census_at_ready: Option<tree::Census>,
    children: Option<Children>,
}

/// A server's processes when it became ready and once every client had left: a server that
/// forks per client must be back where it started, with no child left running and at most
/// [`MAX_UNREAPED`] zombie.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Children {
    /// When it became ready: a pre-forked pool counts here, and may stay.
    pub at_ready: tree::Census,
    /// The last count, when it was back to the start or the wait ran out.
    pub after_clients: tree::Census,
    /// How long labrun waited for the count to settle.
    #[serde(rename = "settle_ms", serialize_with = "crate::units::serialize_millis")]
    pub waited: Duration,
}

impl Children {
    /// Whether the children were reaped and gone: at most one zombie (a server may reap the
    /// previous child when it forks the next) and no more live processes than at the start.
    pub fn reaped(&self) -> bool {
        self.after_clients.zombies <= MAX_UNREAPED && self.after_clients.live <= self.at_ready.live
    }
}

/// A server with no process of its own, served by a [`ServerHandle`]'s.
struct SharedPort {
    /// Index into the plan's servers.
    index: usize,
    name: String,
    address: SocketAddr,
    transport: Transport,
}

/// How one process ended: as its own server, and as each server whose port it also served
/// (indexed like the plan's servers).
struct ProcessEnd {
    own: ServerEnd,
    shared: Vec<(usize, ServerEnd)>,
}

/// What became of a server, for the report.
#[derive(Debug, Clone, Serialize)]
pub struct ServerEnd {
    /// Server name.
    pub name: String,
    /// Where it listened.
    pub address: SocketAddr,
    /// Process id of the group leader; `None` for a server labrun did not launch.
    pub pid: Option<u32>,
    /// Where labrun aimed at a server it did not launch (`address`, `--target`), as
    /// written; `None` for a server it launched.
    pub addressed: Option<String>,
    /// Time from launch until it accepted the first connection.
    #[serde(rename = "ready_after_ms", serialize_with = "crate::units::serialize_millis")]
    pub ready_after: Duration,
    /// Set when it ended by itself before teardown began.
    pub exited_during_run: Option<ExitDescription>,
    /// Whether it still listened on its port when the clients were done (false when it
    /// closed its listening socket but kept running).
    pub still_listening: bool,
    /// How teardown went.
    pub teardown: Teardown,
    /// Total bytes it wrote to stdout.
    pub stdout_bytes: u64,
    /// Total bytes it wrote to stderr.
    pub stderr_bytes: u64,
    /// Its last output lines (stderr, or stdout if stderr was empty), escaped.
    pub output_tail: String,
    /// Set when a scenario event stopped or killed it during the run: which, and when.
    pub stopped_by_event: Option<String>,
    /// Set when a pids cgroup enforced its process limit (see [`cgroup`]).
    pub process_limit: Option<ProcessLimitUse>,
    /// Set when a memory cgroup enforced its memory limit (a sandboxed program).
    pub memory_limit: Option<MemoryLimitUse>,
    /// Set when a cgroup accounted its CPU limit for its whole tree (a sandboxed program).
    pub cpu_limit: Option<CpuLimitUse>,
    /// Set when what it writes has a limit and it ran into it.
    pub disk_limit: Option<DiskLimitUse>,
    /// Its processes at the start and after the clients, when `expect.reaps` asked.
    pub children: Option<Children>,
    /// Set when the process of the server named here served this one's port
    /// (`process = "…"`): pid, readiness and how it ended are that process's, and its
    /// output and process limit are reported under that server alone.
    pub process_of: Option<String>,
}

/// How a supervised program fared against its process limit.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct ProcessLimitUse {
    /// `limits.processes`: processes and threads it may have at once.
    pub limit: u64,
    /// Forks (or new threads) the kernel refused because the limit was reached.
    pub refused_forks: u64,
}

/// How a supervised program's whole tree fared against its CPU limit.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct CpuLimitUse {
    /// `limits.cpu`: CPU seconds its processes may use together.
    pub limit_seconds: u64,
    /// What they used, in milliseconds.
    pub used_ms: f64,
    /// Whether labrun ended the tree for passing the limit.
    pub stopped: bool,
}

/// How a supervised program fared against its memory limit.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct MemoryLimitUse {
    /// `limits.memory`: bytes its processes may hold together.
    pub limit_bytes: u64,
    /// Its processes the kernel's OOM killer ended because they held that much.
    pub oom_kills: u64,
}

/// How a supervised program ran into the limits on what it writes: its sandbox's bounded
/// spaces (working copy, `/tmp`, `/dev/shm`) or `limits.file_size`.
#[derive(Debug, Clone, Serialize)]
pub struct DiskLimitUse {
    /// Its sandbox's spaces that were full when it was stopped, with their sizes.
    pub full: Vec<String>,
    /// The words of a refused write it printed ("No space left on device"), when it did.
    pub said: Option<String>,
}

/// What a scenario event did, for the report.
#[derive(Debug, Clone, Serialize)]
pub struct EventRecord {
    /// When it happened, in milliseconds since the start of the run.
    pub at_ms: f64,
    /// `stop`, `kill` or `restart`.
    pub action: &'static str,
    pub server: String,
    /// Whether it did what it should (a restart can fail).
    pub ok: bool,
    /// What happened, in words.
    pub outcome: String,
}

/// How labrun stopped a server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Teardown {
    /// It had already exited; its group was still killed to catch leftovers.
    AlreadyExited,
    /// It exited after SIGTERM within the grace period.
    Terminated,
    /// It ignored SIGTERM and was killed.
    Killed,
    /// labrun did not launch it (`address`), so it was left running as it was.
    NotLaunched,
}

/// All servers of a run, started in plan order.
pub struct Servers {
    plans: Vec<ServerPlan>,
    /// Each server's port, all chosen before any server started.
    ports: Vec<u16>,
    /// The running process of each server that has one of its own; `None` for a server
    /// served by another's process, and once an event stopped it for good.
    handles: Vec<Option<ServerHandle>>,
    /// How a server stopped by an event ended.
    stopped: Vec<Option<ServerEnd>>,
    /// Each server labrun aims at without launching it (`address`): where it answered.
    addressed: Vec<Option<Addressed>>,
    /// Whether each server's processes are counted when it becomes ready, as the baseline
    /// of [`Servers::count_children`] (`expect.reaps`); a scan of `/proc` otherwise spared.
    census: bool,
}

impl Servers {
    /// Starts every server and waits until each accepts a connection. If one fails, those
    /// already started are torn down (by drop), and so is anything a failed program
    /// daemonized out of its process group, before the error returns. Every port is chosen
    /// first, so a program serving several servers (`process = "…"`) is given all of them.
    pub async fn start(plans: &[ServerPlan], census: bool) -> Result<Servers, SuperviseError> {
        let ports = choose_ports(plans)?;
        let mut handles = Vec::with_capacity(plans.len());
        let mut addressed = Vec::with_capacity(plans.len());
        for (index, plan) in plans.iter().enumerate() {
            let reached = match plan.target() {
                Some(target) => match Addressed::reach(plan, target).await {
                    Ok(reached) => Some(reached),
                    Err(err) => {
                        drop(handles);
                        tree::sweep();
                        return Err(err);
                    }
                },
                None => None,
            };
            let launched = reached.is_none() && plan.process_owner().is_none();
            addressed.push(reached);
            if !launched {
                handles.push(None);
                continue;
            }
            match ServerHandle::start(plans, index, &ports, census).await {
                Ok(handle) => handles.push(Some(handle)),
                Err(err) => {
                    drop(handles);
                    tree::sweep();
                    return Err(err);
                }
            }
        }
        Ok(Servers {
            plans: plans.to_vec(),
            ports,
            handles,
            stopped: vec![None; plans.len()],
            addressed,
            census,
        })
    }

    /// Each server's address, in plan order (a stopped server keeps its address): where a
    /// server labrun aims at answered, and loopback for those it launched.
    pub fn addresses(&self) -> Vec<SocketAddr> {
        self.ports
            .iter()
            .zip(&self.addressed)
            .map(|(port, addressed)| match addressed {
                Some(reached) => reached.address,
                None => SocketAddr::from((Ipv4Addr::LOCALHOST, *port)),
            })
            .collect()
    }

    /// Whether server `index` is still running (an event may have stopped it, or the
    /// process that serves it).
    pub fn running(&self, index: usize) -> bool {
        if self.addressed[index].is_some() {
            return true;
        }
        let process = self.plans[index]
            .process_owner()
            .and_then(|owner| self.plans.iter().position(|p| p.name == owner))
            .unwrap_or(index);
        self.handles[process].is_some()
    }

    /// Carries out the scenario's events at their times (from `run_start`) until all are
    /// done, the clients have finished (later events have nothing left to act on), or
    /// Ctrl-C; returns what each event did.
    pub async fn run_events(
        &mut self,
        events: &[EventPlan],
        run_start: Instant,
        clients_done: &tokio_util::sync::CancellationToken,
        cancel: &tokio_util::sync::CancellationToken,
    ) -> Vec<EventRecord> {
        let mut records = Vec::with_capacity(events.len());
        for event in events {
            tokio::select! {
                () = cancel.cancelled() => break,
                () = clients_done.cancelled() => break,
                () = tokio::time::sleep_until(run_start + event.at) => {}
            }
            let at_ms = run_start.elapsed().as_secs_f64() * 1000.0;
            let (ok, outcome) = self.apply(event, at_ms).await;
            records.push(EventRecord {
                at_ms,
                action: event.action.label(),
                server: self.plans[event.server].name.clone(),
                ok,
                outcome,
            });
        }
        records
    }

    async fn apply(&mut self, event: &EventPlan, at_ms: f64) -> (bool, String) {
        let index = event.server;
        let Some(handle) = self.handles[index].take() else {
            return (false, "the server was already stopped".to_owned());
        };
        let port = handle.address.port();
        let grace = match event.action {
            EventAction::Kill => Duration::ZERO,
            EventAction::Stop | EventAction::Restart => TERMINATION_GRACE,
        };
        // The plan refuses events on a process that serves several servers, so `shared` is
        // empty here; were it not, those servers end with it (and a restart restarts them).
        let ProcessEnd { own: mut end, shared } = handle.stop(grace).await;
        let ended = match (end.exited_during_run.as_ref(), end.teardown) {
            (Some(status), _) => format!("it had already {status}"),
            (None, Teardown::Terminated) => "it exited on SIGTERM".to_owned(),
            (None, Teardown::Killed) => "it was killed".to_owned(),
            (None, Teardown::AlreadyExited) => "it had already exited".to_owned(),
            (None, Teardown::NotLaunched) => "labrun did not launch it".to_owned(),
        };
        end.stopped_by_event = Some(format!(
            "{} at {}",
            event.action.label(),
            crate::units::micros((at_ms * 1000.0) as u64)
        ));
        let record_ends = |end: ServerEnd| {
            for (other, mut shared_end) in shared {
                shared_end.stopped_by_event.clone_from(&end.stopped_by_event);
                self.stopped[other] = Some(shared_end);
            }
            self.stopped[index] = Some(end);
        };
        if event.action != EventAction::Restart {
            record_ends(end);
            return (true, ended);
        }
        match ServerHandle::start(&self.plans, index, &self.ports, self.census).await {
            Ok(handle) => {
                let ready = crate::units::duration(handle.ready_after);
                self.handles[index] = Some(handle);
                (
                    true,
                    format!("{ended}; started again on port {port}, ready after {ready}"),
                )
            }
            Err(err) => {
                record_ends(end);
                (false, format!("{ended}; could not start it again: {err}"))
            }
        }
    }

    /// Counts the processes of each server still running once its clients have left,
    /// waiting up to [`SETTLE_LIMIT`] in all for children that are still closing (or not yet
    /// reaped: Python's `ForkingMixIn` reaps twice a second) to go; the count goes into its
    /// report. A server that exited has nothing left to count.
    pub async fn count_children(&mut self) {
        let started = Instant::now();
        for handle in self.handles.iter_mut().flatten() {
            let Some(at_ready) = handle.census_at_ready else {
                continue;
            };
            if handle.process.exit_status().is_some() {
                continue;
            }
            let leader = handle.process.pid();
            let mut children = Children {
                at_ready,
                after_clients: tree::census(leader),
                waited: Duration::ZERO,
            };
            while !children.reaped() && started.elapsed() < SETTLE_LIMIT {
                tokio::time::sleep(SETTLE_POLL).await;
                children.after_clients = tree::census(leader);
            }
            children.waited = started.elapsed();
            handle.children = Some(children);
        }
    }

    /// Tears every process down, once each, and reports how each server ended.
    pub async fn stop(self) -> Vec<ServerEnd> {
        let mut ends = self.stopped;
        for ((end, reached), plan) in ends.iter_mut().zip(&self.addressed).zip(&self.plans) {
            if let Some(reached) = reached {
                *end = Some(reached.end(plan).await);
            }
        }
        for (index, handle) in self.handles.into_iter().enumerate() {
            if let Some(handle) = handle {
                let ProcessEnd { own, shared } = handle.stop(TERMINATION_GRACE).await;
                ends[index] = Some(own);
                for (other, end) in shared {
                    ends[other] = Some(end);
                }
            }
        }
        // Anything a server daemonized away from its tree was re-parented to labrun.
        tree::sweep();
        ends.into_iter()
            .map(|end| {
                end.expect("each server has a process, its own or another's, or an address, and each ended")
            })
            .collect()
    }
}

/// A server labrun aims at without launching it: where it answered, and how long it took.
struct Addressed {
    address: SocketAddr,
    ready_after: Duration,
}

impl Addressed {
    /// Waits until the server at `target` answers, within its ready timeout.
    async fn reach(plan: &ServerPlan, target: &crate::scenario::Target) -> Result<Addressed, SuperviseError> {
        let started = Instant::now();
        match reach::reach(target, plan.transport, started + plan.ready_timeout).await {
            reach::Reached::At(address) => Ok(Addressed {
                address,
                ready_after: started.elapsed(),
            }),
            reach::Reached::Not(reason) => Err(SuperviseError::Unreachable {
                server: plan.name.clone(),
                target: target.to_string(),
                transport: plan.transport.label(),
                waited: plan.ready_timeout,
                reason,
            }),
        }
    }

    /// How it ended, as far as labrun can know: whether it still answers. It is left
    /// running, never signalled.
    async fn end(&self, plan: &ServerPlan) -> ServerEnd {
        ServerEnd {
            name: plan.name.clone(),
            address: self.address,
            pid: None,
            addressed: plan.target().map(ToString::to_string),
            ready_after: self.ready_after,
            exited_during_run: None,
            still_listening: reach::answers(self.address, plan.transport).await,
            teardown: Teardown::NotLaunched,
            stdout_bytes: 0,
            stderr_bytes: 0,
            output_tail: String::new(),
            stopped_by_event: None,
            process_limit: None,
            memory_limit: None,
            cpu_limit: None,
            disk_limit: None,
            children: None,
            process_of: None,
        }
    }
}

impl ServerHandle {
    /// Launches server `index` of `plans` (ports indexed alike) and waits until it, and every
    /// server whose port its process also serves, is ready.
    async fn start(
        plans: &[ServerPlan],
        index: usize,
        ports: &[u16],
        census: bool,
    ) -> Result<ServerHandle, SuperviseError> {
        let plan = &plans[index];
        let port = ports[index];
        let spawn_failed = |program: String, source| SuperviseError::Spawn {
            server: plan.name.clone(),
            program,
            source,
        };
        let spec =
            server_spec(plans, index, ports).map_err(|source| spawn_failed("labrun".into(), source))?;
        let program = spec.argv[0].clone();
        let launched = Instant::now();
        let mut process = Supervised::spawn(spec).map_err(|source| spawn_failed(program, source))?;
        // From here on the handle owns the child: any early return kills it on drop.
        let stdin_feeder = match &plan.stdin {
            Some(script) => {
                let stdin = process
                    .take_stdin()
                    .map_err(|source| spawn_failed("(standard input)".into(), source))?;
                Some(feed_stdin(stdin, script))
            }
            None => None,
        };
        let mut handle = ServerHandle {
            name: plan.name.clone(),
            address: SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
            pattern_seen: match plan.ready {
                ReadySignal::Stderr(_) => process.stderr_matched(),
                _ => process.stdout_matched(),
            },
            process,
            stdin_feeder,
            ready_after: Duration::ZERO,
            census_at_ready: None,
            children: None,
            exits: plan.exits,
            transport: plan.transport,
            shared: plans
                .iter()
                .enumerate()
                .filter(|(_, other)| other.process_owner() == Some(plan.name.as_str()))
                .map(|(other, shared)| SharedPort {
                    index: other,
                    name: shared.name.clone(),
                    address: SocketAddr::from((Ipv4Addr::LOCALHOST, ports[other])),
                    transport: shared.transport,
                })
                .collect(),
        };
        handle.wait_ready(plan).await?;
        handle.ready_after = launched.elapsed();
        if census {
            handle.census_at_ready = Some(tree::census(handle.process.pid()));
        }
        Ok(handle)
    }

    /// Polls until the server's process group listens on its port (and on the port of every
    /// server it also serves), the leader exits, or time runs out. Listening is read from the
    /// kernel (see [`sockets`]), so readiness never uses up a connection; where that reading
    /// is unavailable, a TCP connect probes instead.
    async fn wait_ready(&mut self, plan: &ServerPlan) -> Result<(), SuperviseError> {
        let timeout = plan.ready_timeout;
        let deadline = Instant::now() + timeout;
        let port = self.address.port();
        let mut pause = Duration::from_millis(5);
        let mut elsewhere = Vec::new();
        loop {
            if let Some(status) = self.process.exit_status() {
                self.process.flush_output().await;
                return Err(SuperviseError::ExitedAtStartup {
                    server: self.name.clone(),
                    status,
                    output: self.output_tail(),
                });
            }
            let ready = match &plan.ready {
                ReadySignal::Listening => self.listens_on_its_port(deadline, &mut elsewhere).await,
                ReadySignal::Stdout(_) | ReadySignal::Stderr(_) => self.pattern_seen.load(Ordering::Relaxed),
            };
            let unserved = match ready {
                true => self.first_unserved_port(deadline).await,
                false => None,
            };
            if ready && unserved.is_none() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                let output = self.output_tail();
                let server = self.name.clone();
                if !self.shared.is_empty() {
                    let (server, address, transport) = match unserved {
                        Some(shared) => (shared.name.clone(), shared.address, shared.transport),
                        None => (server, self.address, self.transport),
                    };
                    return Err(SuperviseError::PortNotServed {
                        server,
                        port: address.port(),
                        process: self.name.clone(),
                        waited: timeout,
                        listening: self.describe_listeners(transport),
                        output,
                    });
                }
                return Err(match &plan.ready {
                    ReadySignal::Listening => SuperviseError::NotReady {
                        server,
                        port,
                        waited: timeout,
                        elsewhere,
                        output,
                    },
                    ReadySignal::Stdout(pattern) | ReadySignal::Stderr(pattern) => {
                        SuperviseError::NoReadyLine {
                            server,
                            stream: if matches!(plan.ready, ReadySignal::Stdout(_)) {
                                "stdout"
                            } else {
                                "stderr"
                            },
                            pattern: pattern.as_str().to_owned(),
                            waited: timeout,
                            output,
                        }
                    }
                });
            }
            tokio::time::sleep(pause.min(deadline - Instant::now())).await;
            pause = (pause * 2).min(Duration::from_millis(50));
        }
    }

    /// Whether the server (its process group, or any descendant that left it) listens where
    /// clients will connect; records where else it listens.
    async fn listens_on_its_port(&self, deadline: Instant, elsewhere: &mut Vec<SocketAddr>) -> bool {
        self.listens_on(self.address, self.transport, deadline, elsewhere)
            .await
    }

    /// The first server this process also serves whose port it does not listen on yet.
    async fn first_unserved_port(&self, deadline: Instant) -> Option<&SharedPort> {
        for shared in &self.shared {
            if !self
                .listens_on(shared.address, shared.transport, deadline, &mut Vec::new())
                .await
            {
                return Some(shared);
            }
        }
        None
    }

    /// Where the process listens (on `transport`), each address with the server whose port
    /// it is, for [`SuperviseError::PortNotServed`].
    fn describe_listeners(&self, transport: Transport) -> Vec<String> {
        let ours = std::iter::once((self.name.as_str(), self.address.port()))
            .chain(self.shared.iter().map(|s| (s.name.as_str(), s.address.port())));
        let ours: Vec<(&str, u16)> = ours.collect();
        sockets::listeners_held_by(transport, &self.family())
            .unwrap_or_default()
            .into_iter()
            .map(|listener| {
                match ours
                    .iter()
                    .find(|(_, port)| listener.reachable_on_loopback(*port))
                {
                    Some((name, _)) => format!("{} (server `{name}`'s port)", listener.address),
                    None => listener.address.to_string(),
                }
            })
            .collect()
    }

    /// This server's processes: its leader, its process group, and any descendant that left
    /// the group.
    fn family(&self) -> Vec<u32> {
        tree::family_of(self.process.pid(), self.process.group())
    }

    /// Whether the server listens on `address` (`transport`); records where else it
    /// listens. Falls back to a connect probe where `/proc` cannot be read.
    async fn listens_on(
        &self,
        address: SocketAddr,
        transport: Transport,
        deadline: Instant,
        elsewhere: &mut Vec<SocketAddr>,
    ) -> bool {
        let port = address.port();
        match sockets::listeners_held_by(transport, &self.family()) {
            Ok(listeners) if listeners.iter().any(|l| l.reachable_on_loopback(port)) => true,
            Ok(listeners) => {
                *elsewhere = listeners.into_iter().map(|l| l.address).collect();
                false
            }
            // Without /proc, a TCP server is probed by connecting; a UDP server cannot be
            // probed without sending it a message, so it counts as ready.
            Err(_) if transport == Transport::Udp => true,
            Err(_) => matches!(
                tokio::time::timeout_at(deadline, TcpStream::connect(address)).await,
                Ok(Ok(_))
            ),
        }
    }

    /// Whether the server listens on `address` at the end of the run, or again within
    /// [`RELISTEN_GRACE`]: a server that opens a listening socket per client is between two
    /// for a moment after each, and is not a server that stopped listening (the clients
    /// queued on the socket it closed are judged by the echo checks). Gives up early when
    /// the process has exited.
    async fn listens_again(&self, address: SocketAddr, transport: Transport) -> bool {
        let until = Instant::now() + RELISTEN_GRACE;
        loop {
            if self
                .listens_on(address, transport, Instant::now(), &mut Vec::new())
                .await
            {
                return true;
            }
            if Instant::now() >= until || self.process.exit_status().is_some() {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// SIGTERM, grace, SIGKILL to the group, reap; reports what happened, for this server
    /// and for each server whose port the process also served.
    async fn stop(mut self, grace: Duration) -> ProcessEnd {
        if let Some(feeder) = self.stdin_feeder.take() {
            feeder.abort();
        }
        if self.exits == ExitPolicy::AfterClients {
            // Its last client has only just closed: give it the moment it needs to notice
            // and exit by itself, so the report says what it would do on its own.
            self.process.wait_for_exit(EXIT_BY_ITSELF_WAIT).await;
        }
        let mut still_listening = true;
        let mut shared_listening = vec![true; self.shared.len()];
        if self.process.exit_status().is_none() {
            still_listening = self.listens_again(self.address, self.transport).await;
            for (shared, listening) in self.shared.iter().zip(&mut shared_listening) {
                *listening = self.listens_again(shared.address, shared.transport).await;
            }
            if !still_listening || shared_listening.contains(&false) {
                // It closed its listener, most likely on its way out (a server that ends after
                // one client): let it finish, so the report can say how it ended.
                self.process.wait_for_exit(EXIT_BY_ITSELF_WAIT).await;
            }
        }
        let exited_during_run = self.process.exit_status();
        let teardown = self.process.stop(grace).await;
        // Each lock is taken and released in its own statement: guards in a struct literal
        // would live to its end and deadlock with `output_tail`.
        let stdout_bytes = capture::lock(self.process.stdout()).total_bytes();
        let stderr_bytes = capture::lock(self.process.stderr()).total_bytes();
        let own = ServerEnd {
            name: self.name.clone(),
            address: self.address,
            pid: Some(self.process.pid()),
            addressed: None,
            ready_after: self.ready_after,
            exited_during_run,
            still_listening,
            teardown,
            stdout_bytes,
            stderr_bytes,
            output_tail: self.output_tail(),
            stopped_by_event: None,
            process_limit: self.process.process_limit(),
            memory_limit: self.process.memory_limit(),
            cpu_limit: self.process.cpu_limit(),
            disk_limit: self.process.disk_limit(),
            children: self.children,
            process_of: None,
        };
        let shared = self
            .shared
            .iter()
            .zip(shared_listening)
            .map(|(shared, still_listening)| {
                let end = ServerEnd {
                    name: shared.name.clone(),
                    address: shared.address,
                    still_listening,
                    stdout_bytes: 0,
                    stderr_bytes: 0,
                    output_tail: String::new(),
                    process_limit: None,
                    memory_limit: None,
                    cpu_limit: None,
                    disk_limit: None,
                    children: None,
                    process_of: Some(self.name.clone()),
                    ..own.clone()
                };
                (shared.index, end)
            })
            .collect();
        ProcessEnd { own, shared }
    }

    fn output_tail(&self) -> String {
        self.process.output_tail(TAIL_LINES)
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        // The process kills its own group when it drops, right after this.
        if let Some(feeder) = &self.stdin_feeder {
            feeder.abort();
        }
    }
}

/// Types the script's lines at the child's stdin, then holds the pipe open (so `input()`
/// waits instead of failing) until the task is aborted at teardown.
fn feed_stdin(mut stdin: tokio::net::unix::pipe::Sender, script: &StdinScript) -> JoinHandle<()> {
    let lines: Vec<String> = script.lines().collect();
    tokio::spawn(async move {
        for line in lines {
            let typed = format!("{line}\n");
            // A server that exits or closes stdin stops the typing; that is its business.
            if stdin.write_all(typed.as_bytes()).await.is_err() {
                return;
            }
        }
        let _ = stdin.flush().await;
        std::future::pending::<()>().await;
    })
}

/// Who holds TCP `port` on loopback, as `pid N (command line)`, when the kernel tells.
pub fn port_holder(port: u16) -> Option<String> {
    holder_of(Transport::Tcp, port)
}

fn holder_of(transport: Transport, port: u16) -> Option<String> {
    sockets::holder_of_port(transport, port).map(|pid| match sockets::command_line(pid) {
        Some(command) => format!("pid {pid} ({command})"),
        None => format!("pid {pid}"),
    })
}

/// Picks every server's port before any server starts. Each stays bound until all are
/// picked, so two automatic ports are never the same.
fn choose_ports(plans: &[ServerPlan]) -> Result<Vec<u16>, SuperviseError> {
    let mut held = Vec::with_capacity(plans.len());
    let mut ports = Vec::with_capacity(plans.len());
    for plan in plans {
        let (port, socket) = choose_port(plan)?;
        ports.push(port);
        held.extend(socket);
    }
    drop(held);
    Ok(ports)
}

/// Picks the port: a free one for `"auto"`, or checks that a fixed one is free; returns the
/// socket bound to it, if any, for the caller to release.
fn choose_port(plan: &ServerPlan) -> Result<(u16, Option<OwnedFd>), SuperviseError> {
    if let Some(target) = plan.target() {
        return Ok((target.port, None));
    }
    let bind = |port: u16| -> io::Result<(u16, Option<OwnedFd>)> {
        match plan.transport {
            Transport::Tcp => {
                let socket = TcpListener::bind((Ipv4Addr::LOCALHOST, port))?;
                Ok((socket.local_addr()?.port(), Some(socket.into())))
            }
            Transport::Udp => {
                let socket = std::net::UdpSocket::bind((Ipv4Addr::LOCALHOST, port))?;
                Ok((socket.local_addr()?.port(), Some(socket.into())))
            }
        }
    };
    match plan.port {
        PortChoice::Auto => bind(0).map_err(|source| SuperviseError::NoFreePort {
            server: plan.name.clone(),
            source,
        }),
        PortChoice::Fixed(port) => match bind(port) {
            Ok(bound) => Ok(bound),
            Err(err) if err.kind() == io::ErrorKind::AddrInUse => Err(SuperviseError::PortInUse {
                server: plan.name.clone(),
                port,
                holder: holder_of(plan.transport, port),
            }),
            // Any other bind error (a privileged port, say) is the server's to meet and report.
            Err(_) => Ok((port, None)),
        },
    }
}

/// Server `index`'s command line and surroundings: a built-in runs as `labrun serve`, any
/// other program with `{port}` (its own port) and `{port:NAME}` (server NAME's) substituted;
/// `PORT` is always set.
fn server_spec<'a>(plans: &'a [ServerPlan], index: usize, ports: &[u16]) -> io::Result<process::Spec<'a>> {
    let plan = &plans[index];
    let port_text = ports[index].to_string();
    let substitute = |text: &str| {
        substitute_ports(text, |name| match name {
            None => Some(ports[index]),
            Some(name) => plans
                .iter()
                .position(|p| p.name == name)
                .map(|other| ports[other]),
        })
    };
    let argv = match &plan.launch {
        Launch::Builtin(builtin) => vec![
            std::env::current_exe()?.display().to_string(),
            "serve".into(),
            builtin.name().into(),
            "--port".into(),
            port_text.clone(),
        ],
        Launch::Command(argv) => argv.iter().map(|arg| substitute(arg)).collect(),
        Launch::Process(owner) => unreachable!("server `{}` is started as part of `{owner}`", plan.name),
        Launch::Address(target) => unreachable!("server `{}` runs at {target}, not launched", plan.name),
    };
    let (watch_stdout, watch_stderr) = match &plan.ready {
        ReadySignal::Listening => (None, None),
        ReadySignal::Stdout(pattern) => (Some(pattern.clone()), None),
        ReadySignal::Stderr(pattern) => (None, Some(pattern.clone())),
    };
    let env = std::iter::once(("PORT".to_owned(), port_text.clone()))
        .chain(
            plan.env
                .iter()
                .map(|(key, value)| (key.clone(), substitute(value))),
        )
        .collect();
    Ok(process::Spec {
        under_test: matches!(plan.launch, Launch::Command(_)),
        argv,
        cwd: plan.cwd.as_deref(),
        env,
        stdin: plan.stdin.is_some(),
        limits: plan.limits,
        keep: capture::CaptureLimits::SERVER,
        watch_stdout,
        watch_stderr,
    })
}
