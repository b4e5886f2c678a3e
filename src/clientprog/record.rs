//! What one client program under test did: the record a session hands to verification and
//! the report.
//!
//! Bytes stay raw here (what the program printed, what the played servers received); they are
//! escaped only where a report shows them. Times are offsets from the program's launch.

use std::fmt;
use std::time::Duration;

use crate::supervise::{ExitDescription, Teardown};

/// One client program's session.
#[derive(Debug, Clone)]
pub struct ProgramRecord {
    /// Index into the plan's programs.
    pub program: usize,
    /// The command line it ran, ports substituted.
    pub argv: Vec<String>,
    /// Its process id.
    pub pid: u32,
    /// The port of each played server, indexed like the plan's played servers.
    pub ports: Vec<u16>,
    /// How it ended.
    pub ending: Ending,
    /// How teardown went.
    pub teardown: Teardown,
    /// What was typed at it.
    pub typing: TypingRecord,
    /// The kept bytes of its stdout (all of a lab session; see `stdout_dropped`).
    pub stdout: Vec<u8>,
    /// Bytes of stdout written but not kept (a flood's middle).
    pub stdout_dropped: u64,
    /// Everything it wrote to stdout, in bytes.
    pub stdout_bytes: u64,
    /// Everything it wrote to stderr, in bytes.
    pub stderr_bytes: u64,
    /// Its last stdout lines, escaped.
    pub stdout_tail: String,
    /// Its last stderr lines, escaped.
    pub stderr_tail: String,
    /// A Python traceback appeared on its stderr.
    pub traceback: bool,
    /// Every connection the played servers accepted while it ran, in the order they came.
    pub connections: Vec<ConnectionRecord>,
}

/// How a client program ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// It exited by itself (`after` its launch).
    Exited {
        status: ExitDescription,
        /// When labrun saw it gone.
        after: Duration,
    },
    /// It was still running at its timeout and was stopped.
    TimedOut {
        /// Its timeout (or what was left of the scenario's).
        after: Duration,
    },
    /// Ctrl-C stopped the run first.
    Interrupted,
}

/// What was typed at a program's stdin.
#[derive(Debug, Clone, Default)]
pub struct TypingRecord {
    /// Lines written into its stdin.
    pub typed: usize,
    /// When the last of them was written.
    pub last_typed_at: Option<Duration>,
    /// Why typing stopped before the last line, if it did.
    pub stopped: Option<TypingStop>,
}

/// Why labrun stopped typing early.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TypingStop {
    /// The prompt a line waits for did not appear within the program's timeout.
    PromptNeverCame {
        /// The line (0-based) that waited.
        line: usize,
        prompt: String,
    },
    /// The program closed its stdout (it ended) before showing the prompt.
    OutputEnded {
        /// The line (0-based) that waited.
        line: usize,
        prompt: String,
    },
    /// Its stdin was closed (it ended) before the line could be written.
    InputClosed {
        /// The line (0-based) that could not be written.
        line: usize,
    },
    /// The program's time ran out while the line waited to be typed (a pause, or a stdin
    /// it does not read).
    TimeRanOut {
        /// The line (0-based) not typed.
        line: usize,
    },
    /// The program ended while the line waited to be typed.
    ProgramEnded {
        /// The line (0-based) not typed.
        line: usize,
    },
    /// Ctrl-C.
    Interrupted {
        /// The line (0-based) not typed.
        line: usize,
    },
}

impl fmt::Display for TypingStop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use crate::escape::escape_bytes;
        match self {
            TypingStop::PromptNeverCame { line, prompt } => write!(
                f,
                "line {} waited for the prompt \"{}\", which never appeared",
                line + 1,
                escape_bytes(prompt.as_bytes())
            ),
            TypingStop::OutputEnded { line, prompt } => write!(
                f,
                "it ended before showing the prompt \"{}\" for line {}",
                escape_bytes(prompt.as_bytes()),
                line + 1
            ),
            TypingStop::InputClosed { line } => {
                write!(f, "it ended before line {} could be typed", line + 1)
            }
            TypingStop::TimeRanOut { line } => {
                write!(f, "its time ran out before line {} could be typed", line + 1)
            }
            TypingStop::ProgramEnded { line } => {
                write!(f, "it ended while line {} waited to be typed", line + 1)
            }
            TypingStop::Interrupted { line } => write!(f, "interrupted before line {}", line + 1),
        }
    }
}

/// One connection a played server accepted.
#[derive(Debug, Clone)]
pub struct ConnectionRecord {
    /// Index into the plan's played servers.
    pub server: usize,
    /// When it was accepted.
    pub accepted_at: Duration,
    /// The bytes received, in order (the first [`KEPT_RECEIVED_BYTES`]).
    pub received: Vec<u8>,
    /// Every byte received, including those not kept.
    pub received_bytes: u64,
    /// Reads that returned data: a lab client sends a line and waits for its answer, so
    /// each is one message.
    pub messages: u32,
    /// Answers sent.
    pub replies: u32,
    /// How it ended (`None` while open).
    pub end: Option<ConnectionEnd>,
    /// When it ended.
    pub ended_at: Option<Duration>,
}

/// Most received bytes kept per connection: above all a program may be typed
/// (`MAX_TYPED_BYTES`, 192 KiB), so a correct client's bytes are all judged.
pub const KEPT_RECEIVED_BYTES: usize = 256 * 1024;

impl ConnectionRecord {
    /// A connection just accepted.
    pub fn new(server: usize, accepted_at: Duration) -> ConnectionRecord {
        ConnectionRecord {
            server,
            accepted_at,
            received: Vec::new(),
            received_bytes: 0,
            messages: 0,
            replies: 0,
            end: None,
            ended_at: None,
        }
    }

    /// Records one read's bytes.
    pub fn receive(&mut self, bytes: &[u8]) {
        let room = KEPT_RECEIVED_BYTES.saturating_sub(self.received.len());
        self.received.extend_from_slice(&bytes[..bytes.len().min(room)]);
        self.received_bytes += bytes.len() as u64;
        self.messages = self.messages.saturating_add(1);
    }
}

/// Why a played server's connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionEnd {
    /// The client closed it.
    ClientClosed,
    /// The client reset it (closed with unread data, or was killed).
    ClientReset,
    /// The server closed it after `close_after` messages, as the scenario asked.
    ServerClosed,
    /// The client sent `exit` to a chat server, which ended the chat.
    ChatEnded,
    /// The chat server's operator had no more replies and ended the chat.
    OutOfReplies,
    /// Still open when the session ended.
    StillOpen,
}

impl ConnectionEnd {
    /// Stable kebab-case name for reports.
    pub fn label(self) -> &'static str {
        match self {
            ConnectionEnd::ClientClosed => "client-closed",
            ConnectionEnd::ClientReset => "client-reset",
            ConnectionEnd::ServerClosed => "server-closed",
            ConnectionEnd::ChatEnded => "chat-ended",
            ConnectionEnd::OutOfReplies => "out-of-replies",
            ConnectionEnd::StillOpen => "still-open",
        }
    }
}
