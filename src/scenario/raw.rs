//! The scenario file exactly as written: serde types that mirror the TOML, with spans.
//!
//! Nothing here applies defaults or cross-checks tables against each other; that is
//! [`super::plan`]'s job. Keeping the raw shape separate means every later error can still
//! point at the text the user typed (`Spanned` fields), and unknown keys are rejected at
//! every level by `deny_unknown_fields`.

use serde::Deserialize;
use toml::Spanned;

use super::values::{
    ConcurrencyExpectation, DurationValue, MaxShare, MessagesValue, Minimum, PortChoice, PrintedValue,
    RepliesValue, SizeRange, TypedLineValue,
};
use crate::servers::Builtin;

/// A whole scenario file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawScenario {
    pub name: Spanned<String>,
    pub description: Option<String>,
    pub timeout: Option<Spanned<DurationValue>>,
    pub seed: Option<u64>,
    pub sandbox: Option<toml::Spanned<bool>>,
    #[serde(default)]
    pub server: Vec<Spanned<RawServer>>,
    #[serde(default)]
    pub clients: Vec<Spanned<RawClients>>,
    #[serde(default)]
    pub events: Vec<Spanned<RawEvent>>,
    pub expect: Option<RawExpect>,
    pub report: Option<RawReport>,
    #[serde(default)]
    pub played_server: Vec<Spanned<RawPlayedServer>>,
    #[serde(default)]
    pub client_program: Vec<Spanned<RawClientProgram>>,
}

/// One `[[played_server]]` table: a server labrun itself plays (in process, recording every
/// byte) for the client programs under test.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPlayedServer {
    pub name: Spanned<String>,
    pub role: Option<PlayedRole>,
    pub port: Option<PortChoice>,
    pub replies: Option<Spanned<RepliesValue>>,
    pub close_after: Option<Spanned<u32>>,
}

/// What a played server does with what it receives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PlayedRole {
    /// Sends every byte back as it arrives (lab 1's server).
    #[default]
    Echo,
    /// Answers each message with the operator's next reply; `exit` ends the chat (lab 2).
    Chat,
    /// Nothing listens on its port: connecting is refused.
    Down,
}

impl PlayedRole {
    /// Every role, for listings.
    pub const ALL: [PlayedRole; 3] = [PlayedRole::Echo, PlayedRole::Chat, PlayedRole::Down];

    /// One line on what it does, for `labrun list`.
    pub fn summary(self) -> &'static str {
        match self {
            PlayedRole::Echo => "every byte back as it arrives (close_after = N: hang up after N messages)",
            PlayedRole::Chat => "each message answered with the next of `replies`; `exit` ends the chat",
            PlayedRole::Down => "nothing listens on its port: every connect is refused",
        }
    }

    /// The name used in scenario files.
    pub fn label(self) -> &'static str {
        match self {
            PlayedRole::Echo => "echo",
            PlayedRole::Chat => "chat",
            PlayedRole::Down => "down",
        }
    }
}

/// One `[[client_program]]` table: a student's client, run under supervision while labrun
/// types at its standard input and plays its server.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawClientProgram {
    pub name: Spanned<String>,
    pub command: Spanned<Vec<String>>,
    pub cwd: Option<String>,
    pub env: Option<Spanned<std::collections::BTreeMap<String, String>>>,
    pub timeout: Option<DurationValue>,
    pub stdin: Option<Spanned<RawTyping>>,
    pub reaches: Option<Spanned<String>>,
    pub limits: Option<RawLimits>,
    pub expect: Option<Spanned<RawProgramExpect>>,
}

/// `stdin = { lines = [...], delay = "100ms", close = false }`: what is typed at a client.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTyping {
    pub lines: Vec<Spanned<TypedLineValue>>,
    pub delay: Option<DurationValue>,
    pub close: Option<bool>,
}

/// `expect = { ... }` of a client program: overrides of what it must send and print.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawProgramExpect {
    pub sent: Option<Vec<String>>,
    pub printed: Option<Vec<Spanned<PrintedValue>>>,
    pub traceback: Option<TracebackPolicy>,
}

/// Whether a Python traceback on a client program's stderr fails how it ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum TracebackPolicy {
    /// A traceback means the program crashed: the check about how it ended fails.
    #[default]
    Fail,
    /// Reported, but not held against it.
    Allow,
}

/// `[report]`: which report files a run of this scenario writes (`--format` overrides).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawReport {
    pub formats: Option<Vec<crate::scenario::Format>>,
}

/// One `[[events]]` table: something done to a server while the clients run.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEvent {
    pub at: DurationValue,
    pub stop: Option<Spanned<String>>,
    pub kill: Option<Spanned<String>>,
    pub restart: Option<Spanned<String>>,
}

/// One `[[server]]` table.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawServer {
    pub name: Spanned<String>,
    pub builtin: Option<Builtin>,
    pub command: Option<Spanned<Vec<String>>>,
    pub port: Option<PortChoice>,
    pub ready: Option<RawReady>,
    pub env: Option<Spanned<std::collections::BTreeMap<String, String>>>,
    pub cwd: Option<String>,
    pub exits: Option<ExitPolicy>,
    pub stdin: Option<Spanned<RawStdin>>,
    pub limits: Option<RawLimits>,
    pub transport: Option<Transport>,
    /// Served by the process of the server named here (one program, several ports).
    pub process: Option<Spanned<String>>,
    /// A server already running, that labrun aims at instead of launching (`host:port`).
    pub address: Option<Spanned<String>>,
}

/// Which protocol a server speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    /// Streams over TCP: the labs' default.
    #[default]
    Tcp,
    /// Datagrams over UDP: one message per datagram, no delivery guarantee.
    Udp,
}

impl Transport {
    /// The name used in scenario files.
    pub fn label(self) -> &'static str {
        match self {
            Transport::Tcp => "tcp",
            Transport::Udp => "udp",
        }
    }
}

/// `limits = { ... }`: resource limits for an untrusted server (setrlimit in the child).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLimits {
    pub cpu: Option<DurationValue>,
    pub memory: Option<super::values::ByteCount>,
    pub processes: Option<u64>,
    pub open_files: Option<u64>,
    pub file_size: Option<super::values::ByteCount>,
}

/// Whether a server is allowed to end by itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ExitPolicy {
    /// It must stay up until labrun stops it; exiting is a finding.
    #[default]
    Never,
    /// It may exit with status 0 once its clients are done, like the classic lab 1 server
    /// that ends when its one client disconnects.
    AfterClients,
}

/// `ready = { ... }`: how labrun decides the server is up.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawReady {
    pub timeout: Option<DurationValue>,
    pub stdout: Option<Spanned<String>>,
    pub stderr: Option<Spanned<String>>,
}

/// `stdin = { ... }`: what labrun types at the server's standard input.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStdin {
    pub lines: Option<Vec<String>>,
    pub reply: Option<String>,
}

/// One `[[clients]]` table: a group of identical simulated clients.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawClients {
    pub name: Spanned<String>,
    pub server: Option<Spanned<String>>,
    pub count: Option<Spanned<u32>>,
    pub workload: Option<WorkloadKind>,
    pub messages: Option<Spanned<MessagesValue>>,
    pub size: Option<Spanned<SizeRange>>,
    pub payload: Option<PayloadKind>,
    pub think: Option<DurationValue>,
    pub start: Option<Spanned<StartKind>>,
    pub ramp: Option<DurationValue>,
    pub timeout: Option<Spanned<DurationValue>>,
    pub faulty: Option<Spanned<u32>>,
    pub fault: Option<Spanned<RawFault>>,
    pub start_after: Option<DurationValue>,
    pub leave_after: Option<Spanned<u32>>,
    pub leave: Option<Spanned<LeaveMode>>,
    pub include_sender: Option<Spanned<bool>>,
    pub load: Option<Spanned<bool>>,
    pub transport: Option<Spanned<Transport>>,
    pub rate: Option<Spanned<super::values::RateValue>>,
    pub rate_ramp: Option<Spanned<DurationValue>>,
    pub pipeline: Option<Spanned<u32>>,
    pub connect: Option<Spanned<ConnectMode>>,
    pub half_close: Option<Spanned<bool>>,
}

/// `fault = { kind = "abort", after = 3 }`: how the group's faulty clients misbehave.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFault {
    pub kind: FaultKind,
    pub after: Option<u32>,
}

/// Ways a client misbehaves, each one a thing real clients do to a lab server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FaultKind {
    /// Sends half a message, then resets the connection (RST), like a killed client.
    Abort,
    /// Resets (RST) with nothing in flight, between two messages: the reset reaches the
    /// server while it waits in `recv()`.
    AbortIdle,
    /// Sends without reading until the server, blocked writing an echo nobody reads, takes
    /// no more, then resets: the reset reaches the server inside `sendall()`.
    AbortInSendall,
    /// Sends half a message, then closes its sending side and waits for the server to close.
    HalfClose,
    /// Sends bytes that are not text (invalid UTF-8, NUL, control characters), then closes.
    Garbage,
    /// Sends half a message and then nothing, holding the connection open until every
    /// well-behaved client is done.
    Stall,
}

impl FaultKind {
    /// Every kind, for listings.
    pub const ALL: [FaultKind; 6] = [
        FaultKind::Abort,
        FaultKind::AbortIdle,
        FaultKind::AbortInSendall,
        FaultKind::HalfClose,
        FaultKind::Garbage,
        FaultKind::Stall,
    ];

    /// One line on what it does, for `labrun list`.
    pub fn summary(self) -> &'static str {
        match self {
            FaultKind::Abort => "half a message, then a reset (RST), like a killed client",
            FaultKind::AbortIdle => "a reset (RST) between two messages, with nothing in flight",
            FaultKind::AbortInSendall => {
                "sends without reading until the server is stuck in sendall(), then a reset"
            }
            FaultKind::HalfClose => "half a message, then shutdown(SHUT_WR); reads until the server closes",
            FaultKind::Garbage => "1 KiB of invalid UTF-8, NUL and terminal escapes, then close",
            FaultKind::Stall => "half a message, then silence, holding the connection to the end",
        }
    }

    /// The name used in scenario files and reports.
    pub fn label(self) -> &'static str {
        match self {
            FaultKind::Abort => "abort",
            FaultKind::AbortIdle => "abort-idle",
            FaultKind::AbortInSendall => "abort-in-sendall",
            FaultKind::HalfClose => "half-close",
            FaultKind::Garbage => "garbage",
            FaultKind::Stall => "stall",
        }
    }
}

/// `[expect]`: what must hold for the run to pass.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawExpect {
    pub echo: Option<EchoExpectation>,
    pub errors: Option<u64>,
    pub latency: Option<Spanned<RawLatency>>,
    pub wait: Option<Spanned<RawLatency>>,
    pub connect: Option<Spanned<RawLatency>>,
    pub fanout_latency: Option<Spanned<RawLatency>>,
    pub msgs_per_sec: Option<Minimum>,
    pub error_rate: Option<MaxShare>,
    pub concurrency: Option<Spanned<ConcurrencyExpectation>>,
    pub survives: Option<Spanned<bool>>,
    pub reaps: Option<Spanned<bool>>,
    pub fanout: Option<FanoutExpectation>,
    pub loss: Option<MaxShare>,
}

/// `expect.fanout`: how strictly broadcast deliveries are judged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FanoutExpectation {
    /// Every message reaches every member it is owed to exactly once, in per-sender order.
    #[default]
    ExactlyOnce,
    /// Measure fan-out only.
    Ignore,
}

/// `latency = { p50 = "...", p95 = "...", max = "..." }` (and `wait`, `connect`,
/// `fanout_latency`): upper bounds on percentiles of one latency distribution, each key a
/// percentile (`pNN`, `pNN.N`) or `max`, read (with its place in the file) by the plan.
#[derive(Debug, Deserialize)]
#[serde(transparent)]
pub struct RawLatency(pub std::collections::BTreeMap<Spanned<String>, RawLimit>);

/// The bound of one percentile. TOML reads an unquoted `p99.9 = "5ms"` as the dotted key
/// `p99` holding `{ 9 = "5ms" }`: that form is taken as the decimals it is.
#[derive(Debug)]
pub enum RawLimit {
    /// `p95 = "5ms"`, `"p99.9" = "5ms"`.
    Limit(DurationValue),
    /// `p99.9 = "5ms"`: the decimals after the dot, each with its bound.
    Decimals(Vec<(Spanned<String>, DurationValue)>),
}

impl<'de> Deserialize<'de> for RawLimit {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::{self, MapAccess, Visitor};
        struct LimitVisitor;
        impl<'de> Visitor<'de> for LimitVisitor {
            type Value = RawLimit;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str(super::values::DURATION_EXPECTED)
            }
            fn visit_str<E: de::Error>(self, text: &str) -> Result<RawLimit, E> {
                DurationValue::from_text(text)
                    .map(RawLimit::Limit)
                    .map_err(E::custom)
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<RawLimit, E> {
                Err(E::custom(DurationValue::unit_missing(&n.to_string())))
            }
            fn visit_f64<E: de::Error>(self, n: f64) -> Result<RawLimit, E> {
                Err(E::custom(DurationValue::unit_missing(&n.to_string())))
            }
            fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<RawLimit, M::Error> {
                let mut decimals = Vec::new();
                while let Some(key) = map.next_key::<Spanned<String>>()? {
                    decimals.push((key, map.next_value::<DurationValue>()?));
                }
                Ok(RawLimit::Decimals(decimals))
            }
        }
        deserializer.deserialize_any(LimitVisitor)
    }
}

/// What a client group does on its connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum WorkloadKind {
    /// Send messages and expect every byte back, in order.
    Echo,
    /// Take turns with a server whose operator answers each message (lab 2): every reply
    /// must be the operator's next line, and `exit` ends the session.
    Chat,
    /// Join a chat room (lab 5) and send tagged messages that every other member must
    /// receive exactly once, in order.
    Broadcast,
}

impl WorkloadKind {
    /// Every workload, for listings.
    pub const ALL: [WorkloadKind; 3] = [WorkloadKind::Echo, WorkloadKind::Chat, WorkloadKind::Broadcast];

    /// One line on what it does, for `labrun list`.
    pub fn summary(self) -> &'static str {
        match self {
            WorkloadKind::Echo => "send messages, verify every byte comes back in order",
            WorkloadKind::Chat => {
                "take turns with a server's operator (its stdin lines); `exit` ends the chat"
            }
            WorkloadKind::Broadcast => {
                "join a room, send tagged messages; each must reach every other member once, in order"
            }
        }
    }

    /// The name used in scenario files.
    pub fn label(self) -> &'static str {
        match self {
            WorkloadKind::Echo => "echo",
            WorkloadKind::Chat => "chat",
            WorkloadKind::Broadcast => "broadcast",
        }
    }
}

/// How a broadcast member with `leave_after` leaves the room (`leave = "..."`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum LeaveMode {
    /// Closes its connection: the relay's recv() returns b''.
    #[default]
    Close,
    /// Resets it (RST), like a killed client: the relay's recv() or send() raises.
    Reset,
}

/// How a TCP group's clients connect (`connect = "..."`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ConnectMode {
    /// Each waits until the server's accept queue has room, so the kernel drops no handshake.
    #[default]
    Paced,
    /// All at once, whatever the server's backlog: the SYN storm of clients that really
    /// arrive together, with the kernel's one-second retransmissions.
    Storm,
}

/// What message bodies are made of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PayloadKind {
    /// Printable ASCII: what a lab client typing text sends.
    #[default]
    Ascii,
    /// Multi-byte UTF-8 text, to catch servers that decode per chunk.
    Utf8,
    /// Arbitrary bytes including NUL and newlines, to catch servers that assume text.
    Binary,
}

/// How a group's clients are started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StartKind {
    /// All at once.
    Together,
    /// Spread evenly over the `ramp` duration.
    Ramp,
}

/// How strictly echoed bytes are compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum EchoExpectation {
    /// Every byte back, in order, nothing more.
    #[default]
    Exact,
    /// Measure only; do not judge the bytes.
    Ignore,
}
