//! What one simulated client did: the record the driver hands to verification and metrics.
//!
//! Times are offsets from the start of the run, so records from different clients line up
//! on one timeline. Latency samples stay raw (microseconds) here; `metrics` folds them into
//! histograms once, after the run, so the hot path never touches shared state.

use std::fmt;
use std::time::Duration;

use crate::scenario::FaultKind;
use crate::wire::chat::ChatIssue;
use crate::wire::stream::EchoFault;

/// Milestones of one client's connection, as offsets from the start of the run.
#[derive(Debug, Clone, Copy, Default)]
pub struct Timeline {
    /// When it began connecting.
    pub connect_start: Option<Duration>,
    /// When the connection was established.
    pub connected: Option<Duration>,
    /// When it began sending its first message.
    pub first_send: Option<Duration>,
    /// When the first byte of the first reply arrived.
    pub first_reply: Option<Duration>,
    /// When the last reply completed.
    pub last_reply: Option<Duration>,
    /// When it closed (or half-closed) its connection, or gave up: when it left.
    pub closed: Option<Duration>,
    /// Its connect completed, but the kernel dropped the ACK that finishes the server's side
    /// of the handshake (the accept queue was full): until a retransmission got through, the
    /// server could not see the client. Waits it had then are the kernel's, not the server's.
    pub handshake_stalled: bool,
}

/// How a client's session ended.
#[derive(Debug, Clone)]
pub enum ClientEnd {
    /// Every message was sent and echoed.
    Completed,
    /// The echoed bytes were wrong; the session stopped there.
    EchoFault(EchoFault),
    /// The chat went wrong in these ways (the session went on where it could).
    ChatFault(Vec<ChatIssue>),
    /// The session could not go on for a reason other than the echoed bytes.
    Failed(ClientError),
    /// The run was interrupted (Ctrl-C) before the session finished.
    Interrupted,
    /// A faulty client misbehaved as planned; what happened to it afterwards is not judged.
    Misbehaved,
}

/// A failure of the connection itself.
#[derive(Debug, Clone)]
pub struct ClientError {
    /// Which class of failure.
    pub kind: ClientErrorKind,
    /// Message (0-based) in progress, if one was.
    pub message: Option<u32>,
    /// The operating system's words, or what labrun observed.
    pub detail: String,
}

/// Classes of connection failure, counted separately in reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ClientErrorKind {
    /// Could not connect.
    Connect,
    /// Any other socket error.
    Io,
    /// The scenario's global deadline passed first.
    Deadline,
    /// A broadcast client never got into the room.
    Join,
    /// The server ended the connection between messages, while the client had more to send.
    Dropped,
    /// The client waited for its first reply until the run's deadline while the server
    /// served others (or nobody): it was never served.
    NotServed,
    /// After the client half-closed and got every echo, the server never closed its side.
    KeptOpen,
}

impl ClientErrorKind {
    /// Stable lowercase name for reports.
    pub fn label(self) -> &'static str {
        match self {
            ClientErrorKind::Connect => "connect",
            ClientErrorKind::Io => "io",
            ClientErrorKind::Deadline => "deadline",
            ClientErrorKind::Join => "join",
            ClientErrorKind::Dropped => "dropped",
            ClientErrorKind::NotServed => "not-served",
            ClientErrorKind::KeptOpen => "kept-open",
        }
    }
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.detail)?;
        if let Some(message) = self.message {
            write!(f, " (during message {})", message + 1)?;
        }
        Ok(())
    }
}

/// Everything one client did.
#[derive(Debug, Clone)]
pub struct ClientRecord {
    /// Index of its group in the plan.
    pub group: usize,
    /// Its number within the group (0-based).
    pub index: u32,
    /// Connection milestones.
    pub timeline: Timeline,
    /// Messages sent and fully echoed.
    pub messages_completed: u32,
    /// Bytes written to the socket.
    pub bytes_sent: u64,
    /// Bytes received and verified.
    pub bytes_received: u64,
    /// How it ended.
    pub end: ClientEnd,
    /// How it was planned to misbehave, for the group's faulty clients.
    pub fault: Option<FaultKind>,
    /// What became of its datagrams, for a UDP client.
    pub datagrams: Option<DatagramTally>,
}

/// What became of one UDP client's datagrams.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct DatagramTally {
    /// Datagrams sent.
    pub sent: u64,
    /// Echoed byte-exact (first copy).
    pub echoed: u64,
    /// Never came back within the reply timeout.
    pub lost: u64,
    /// Extra copies of one already echoed.
    pub duplicated: u64,
    /// Came back after a later one.
    pub reordered: u64,
    /// Came back shorter: a prefix of what was sent.
    pub truncated: u64,
    /// Came back with other bytes, or were none of its datagrams.
    pub corrupted: u64,
    /// The first few truncations and corruptions, in words.
    pub examples: Vec<String>,
}

impl DatagramTally {
    /// Examples kept per client.
    const EXAMPLES: usize = 3;

    /// Keeps an example of a truncation or corruption.
    pub fn note(&mut self, example: String) {
        if self.examples.len() < Self::EXAMPLES {
            self.examples.push(example);
        }
    }

    /// Adds another client's tally.
    pub fn add(&mut self, other: &DatagramTally) {
        self.sent += other.sent;
        self.echoed += other.echoed;
        self.lost += other.lost;
        self.duplicated += other.duplicated;
        self.reordered += other.reordered;
        self.truncated += other.truncated;
        self.corrupted += other.corrupted;
    }
}

impl ClientRecord {
    /// Time from starting to connect until connected.
    pub fn connect_time(&self) -> Option<Duration> {
        Some(
            self.timeline
                .connected?
                .saturating_sub(self.timeline.connect_start?),
        )
    }

    /// For a client that sent but never got a reply: how long it waited before it gave up.
    pub fn unserved_wait(&self) -> Option<Duration> {
        let t = &self.timeline;
        match (t.first_send, t.first_reply, t.closed) {
            (Some(sent), None, Some(gave_up)) => Some(gave_up.saturating_sub(sent)),
            _ => None,
        }
    }

    /// Time from the first send until the first reply byte: queueing plus service.
    pub fn wait_time(&self) -> Option<Duration> {
        Some(
            self.timeline
                .first_reply?
                .saturating_sub(self.timeline.first_send?),
        )
    }
}
