//! Client programs under test: labrun plays their server and types at them.
//!
//! Each `[[client_program]]` runs alone, one after another, against freshly started
//! [`played`] servers, so every connection a played server records is that program's and
//! two programs aimed at the same fixed port (typing "1" and "2" at the lab's "1 or 2?"
//! client) never meet. A session: bind the played servers, launch the program under the
//! same supervision as a server (its own process group, rlimits, capped output, teardown on
//! every path), type its lines ([`typist`]) while waiting for it to exit within its
//! timeout, tear it down, then stop the servers and keep their recordings. Judging is
//! `verify::program`'s job; nothing here decides whether the program was right.

mod played;
pub mod record;
mod typist;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::scenario::{ProgramPlan, ProgramsUnderTest};
use crate::supervise::capture::{self, CaptureLimits};
use crate::supervise::process::{Spec, Supervised};
use crate::supervise::{TAIL_LINES, TERMINATION_GRACE};
pub use record::{ConnectionEnd, ConnectionRecord, Ending, ProgramRecord, TypingRecord, TypingStop};

/// What a Python traceback's first line says.
pub const TRACEBACK_PATTERN: &str = r"Traceback \(most recent call last\)";

/// Why a client program's session could not be run at all.
#[derive(Debug, thiserror::Error)]
pub enum ProgramError {
    /// The program could not be executed.
    #[error("cannot start client program `{program}`: `{command}`: {source}")]
    Spawn {
        /// Program name.
        program: String,
        /// What was executed.
        command: String,
        /// The operating system's reason.
        #[source]
        source: std::io::Error,
    },
    /// A played server's fixed port is taken on this machine.
    #[error(
        "cannot play server `{server}`: port {port} on 127.0.0.1 is already in use{}; \
         run where a private network namespace is allowed (root or user namespaces), or free the port",
        holder.as_ref().map(|h| format!(" by {h}")).unwrap_or_default()
    )]
    PortInUse {
        /// Played server name.
        server: String,
        port: u16,
        /// Who holds it (`pid N (command line)`), when the kernel tells.
        holder: Option<String>,
    },
    /// A played server's socket could not be set up.
    #[error("cannot play server `{server}`")]
    Bind {
        /// Played server name.
        server: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// Runs every client program under test in turn; stops early on Ctrl-C.
pub async fn run_all(
    under_test: &ProgramsUnderTest,
    run_deadline: Instant,
    cancel: &CancellationToken,
) -> Result<Vec<ProgramRecord>, ProgramError> {
    let mut records = Vec::with_capacity(under_test.programs.len());
    for index in 0..under_test.programs.len() {
        if cancel.is_cancelled() {
            break;
        }
        records.push(run_one(under_test, index, run_deadline, cancel).await?);
    }
    Ok(records)
}

/// One program's session, start to teardown.
async fn run_one(
    under_test: &ProgramsUnderTest,
    index: usize,
    run_deadline: Instant,
    cancel: &CancellationToken,
) -> Result<ProgramRecord, ProgramError> {
    let program = &under_test.programs[index];
    let launched = Instant::now();
    let servers = played::PlayedServers::start(&under_test.played, launched)?;
    let ports = servers.ports().to_vec();
    let spec = program_spec(under_test, program, &ports);
    let argv = spec.argv.clone();
    let spawn_failed = |source| ProgramError::Spawn {
        program: program.name.clone(),
        command: argv[0].clone(),
        source,
    };
    let mut process = Supervised::spawn(spec).map_err(spawn_failed)?;
    let deadline = (launched + program.timeout).min(run_deadline);
    let stdin = process.take_stdin().map_err(spawn_failed)?;
    let mut keyboard = typist::Keyboard {
        stdin: Some(stdin),
        stdout: process.stdout().clone(),
        stdout_growth: process.stdout_growth(),
        launched,
        deadline,
        cancel: cancel.clone(),
    };
    // The session lasts until the program exits, its time runs out or Ctrl-C; typing goes
    // on beside it and is cut short when the session ends first.
    let mut typing = TypingRecord::default();
    let ended_after = {
        let ended = async {
            tokio::select! {
                () = process.wait_for_exit(deadline.saturating_duration_since(Instant::now())) => {}
                () = cancel.cancelled() => {}
            }
            launched.elapsed()
        };
        tokio::pin!(ended);
        let typist = typist::type_lines(&mut keyboard, &program.stdin, &mut typing);
        tokio::pin!(typist);
        tokio::select! {
            () = &mut typist => (ended.await, true),
            after = &mut ended => (after, false),
        }
    };
    let (ended_after, typing_finished) = ended_after;
    if !typing_finished && typing.stopped.is_none() && typing.typed < program.stdin.lines.len() {
        let line = typing.typed;
        typing.stopped = Some(match process.exit_status() {
            Some(_) => TypingStop::ProgramEnded { line },
            None if cancel.is_cancelled() => TypingStop::Interrupted { line },
            None => TypingStop::TimeRanOut { line },
        });
    }
    let open_stdin = keyboard.stdin.take();
    let ending = match process.exit_status() {
        Some(status) => Ending::Exited {
            status,
            after: ended_after,
        },
        None if cancel.is_cancelled() => Ending::Interrupted,
        None => Ending::TimedOut {
            after: deadline.saturating_duration_since(launched),
        },
    };
    let teardown = process.stop(TERMINATION_GRACE).await;
    // A daemon it left behind (double fork, setsid) was re-parented to labrun, the subreaper,
    // out of reach of the group and the tree walk: it must not live on into the next
    // program's session and be recorded as that program's traffic.
    crate::supervise::tree::sweep();
    drop(open_stdin);
    // The program is gone, so every connection it made has been closed by its side.
    let connections = servers.stop().await;
    let (stdout, stdout_dropped, stdout_bytes, stdout_tail) = {
        let out = capture::lock(process.stdout());
        let kept: Vec<u8> = out.kept().into_iter().flat_map(|(_, run)| run).collect();
        (
            kept,
            out.dropped_bytes(),
            out.total_bytes(),
            out.tail_text(TAIL_LINES),
        )
    };
    let (stderr_bytes, stderr_tail) = {
        let err = capture::lock(process.stderr());
        (err.total_bytes(), err.tail_text(TAIL_LINES))
    };
    Ok(ProgramRecord {
        program: index,
        argv,
        pid: process.pid(),
        ports,
        ending,
        teardown,
        typing,
        stdout,
        stdout_dropped,
        stdout_bytes,
        stderr_bytes,
        stdout_tail,
        stderr_tail,
        traceback: process.stderr_seen(),
        connections,
    })
}

/// The program's command line and environment, ports substituted. `PYTHONUNBUFFERED` is set
/// (a scenario's `env` may override it) so that what a Python client printed before it was
/// stopped is in the capture, not lost in its buffer; `PORT` is its target's port.
fn program_spec<'a>(under_test: &ProgramsUnderTest, program: &'a ProgramPlan, ports: &[u16]) -> Spec<'a> {
    let substitute = |text: &str| program.substitute(text, &under_test.played, ports);
    let mut env = vec![("PYTHONUNBUFFERED".to_owned(), "1".to_owned())];
    if let Some(target) = program.reaches {
        env.push(("PORT".to_owned(), ports[target].to_string()));
    }
    env.extend(
        program
            .env
            .iter()
            .map(|(key, value)| (key.clone(), substitute(value))),
    );
    Spec {
        under_test: true,
        argv: program.command.iter().map(|arg| substitute(arg)).collect(),
        cwd: program.cwd.as_deref(),
        env,
        stdin: true,
        limits: program.limits,
        keep: CaptureLimits::PROGRAM,
        watch_stdout: None,
        watch_stderr: Some(regex::Regex::new(TRACEBACK_PATTERN).expect("constant pattern is valid")),
    }
}
