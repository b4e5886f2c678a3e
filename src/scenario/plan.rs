//! The validated run plan: defaults applied, references resolved, limits enforced.
//!
//! [`resolve`] is the only place that turns what a file says into what labrun will do. After
//! it, no stage needs to know about TOML, optional keys or spans; every later error is about
//! the run, not the file. Limits on counts and sizes live here so an absurd scenario is a
//! clear error before a single socket is opened, not an out-of-memory crash later.

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;

use super::diagnostic::Diagnostic;
use super::programs::{PlayedServerPlan, ProgramPlan};
use super::raw::{
    ConnectMode, EchoExpectation, ExitPolicy, FanoutExpectation, FaultKind, LeaveMode, PayloadKind,
    RawClients, RawEvent, RawExpect, RawFault, RawLimit, RawLimits, RawReady, RawScenario, RawServer,
    RawStdin, StartKind, Transport, WorkloadKind,
};
use super::values::{ConcurrencyExpectation, DurationValue, MessagesValue, PortChoice, SizeRange};
use crate::servers::Builtin;

/// Default global deadline for a run.
pub const DEFAULT_RUN_TIMEOUT: Duration = Duration::from_secs(60);
/// Default time a server gets to accept its first connection.
pub const DEFAULT_READY_TIMEOUT: Duration = Duration::from_secs(5);
/// Default time a client waits for each reply.
pub const DEFAULT_REPLY_TIMEOUT: Duration = Duration::from_secs(5);
/// Most clients one scenario may ask for, across all groups.
pub const MAX_CLIENTS: u64 = 100_000;
/// Most client groups in one scenario: more would be a generator's mistake, and every
/// group's four histograms (about 140 KB each) are in the report, read back by `compare`
/// and `merge`.
pub const MAX_GROUPS: usize = 64;
/// Most messages one client may send.
pub const MAX_MESSAGES: u32 = 10_000_000;
/// Largest message body.
pub const MAX_MESSAGE_BYTES: u64 = 64 * 1024 * 1024;
/// Largest UDP datagram body: 65,507 bytes of payload minus labrun's tag.
pub const MAX_DATAGRAM_BODY: u64 = 65_507 - 64;
/// Most turns a chat may list.
pub const MAX_CHAT_TURNS: usize = 10_000;
/// Most messages one client may keep in flight (`pipeline`).
pub const MAX_PIPELINE: u32 = 1024;
/// Most memory all clients' messages in flight may take together.
pub const MAX_IN_FLIGHT_BYTES: u64 = 4 * 1024 * 1024 * 1024;

/// Everything a run needs, validated.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    /// Scenario name; also names the report file.
    pub name: String,
    /// One-sentence purpose, shown in reports.
    pub description: Option<String>,
    /// File the plan was read from.
    pub source: PathBuf,
    /// Global deadline for the whole run.
    #[serde(serialize_with = "as_human")]
    pub timeout: Duration,
    /// Seed for payload generation; the same seed sends the same bytes.
    pub seed: u64,
    /// Whether the programs it starts run in the sandbox (`sandbox = true`): the file asks
    /// for what `--sandbox` gives, so whoever runs someone else's scenario cannot forget it.
    pub sandbox: bool,
    /// What must hold for the run to pass.
    pub expect: Expectations,
    /// Report files to write, from `[report]` (empty: the command line's or JSON).
    pub formats: Vec<crate::scenario::Format>,
    /// Servers, or client programs: what the run tests.
    #[serde(flatten)]
    pub under_test: UnderTest,
}

/// What a scenario tests. A file tests servers (labrun plays their clients) or client
/// programs (labrun plays their servers), never both: [`resolve`] refuses a mix, and each
/// later stage matches on this, so the compiler finds every place the two differ.
#[derive(Debug, Clone)]
pub enum UnderTest {
    /// Servers, loaded by simulated clients.
    Servers(ServersUnderTest),
    /// Client programs, each run against the servers labrun plays.
    ClientPrograms(ProgramsUnderTest),
}

/// Which side a scenario tests, without its plans: what a grading test replaces with the
/// submission's program.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The scenario's `[[server]]`s.
    Servers,
    /// The scenario's `[[client_program]]`s.
    ClientPrograms,
}

impl UnderTest {
    /// The servers under test, when a scenario tests servers.
    pub fn servers(&self) -> Option<&ServersUnderTest> {
        match self {
            UnderTest::Servers(under_test) => Some(under_test),
            UnderTest::ClientPrograms(_) => None,
        }
    }

    /// The client programs under test, when a scenario tests client programs.
    pub fn programs(&self) -> Option<&ProgramsUnderTest> {
        match self {
            UnderTest::ClientPrograms(under_test) => Some(under_test),
            UnderTest::Servers(_) => None,
        }
    }

    /// Which side this is.
    pub fn side(&self) -> Side {
        match self {
            UnderTest::Servers(_) => Side::Servers,
            UnderTest::ClientPrograms(_) => Side::ClientPrograms,
        }
    }
}

/// The servers a scenario tests and the simulated clients that load them.
#[derive(Debug, Clone, Serialize)]
pub struct ServersUnderTest {
    /// The slice of the clients this process runs (`--shard K/N`), or all of them.
    #[serde(serialize_with = "shard_as_text")]
    pub shard: Option<Shard>,
    /// When the clients start (`--start-at`), so that shards on several machines load one
    /// server together; `None`: as soon as the servers are ready.
    #[serde(serialize_with = "start_at_as_text")]
    pub start_at: Option<StartAt>,
    /// Servers to launch (or aim at), in file order.
    pub servers: Vec<ServerPlan>,
    /// Client groups to drive, in file order.
    pub groups: Vec<GroupPlan>,
    /// What is done to servers during the run, in time order.
    pub events: Vec<EventPlan>,
}

/// The client programs a scenario tests and the servers labrun plays for them.
#[derive(Debug, Clone, Serialize)]
pub struct ProgramsUnderTest {
    /// Servers labrun plays for the client programs.
    pub played: Vec<PlayedServerPlan>,
    /// Client programs, run one after another.
    pub programs: Vec<ProgramPlan>,
}

/// Every saved report carries the keys of both sides (the other side's empty), so the
/// report's shape, and `docs/report.schema.json`, do not depend on what was tested.
impl Serialize for UnderTest {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct BothSides<'a> {
            #[serde(flatten)]
            servers: &'a ServersUnderTest,
            #[serde(flatten)]
            programs: &'a ProgramsUnderTest,
        }
        let no_servers = ServersUnderTest {
            shard: None,
            start_at: None,
            servers: Vec::new(),
            groups: Vec::new(),
            events: Vec::new(),
        };
        let no_programs = ProgramsUnderTest {
            played: Vec::new(),
            programs: Vec::new(),
        };
        let both = match self {
            UnderTest::Servers(servers) => BothSides {
                servers,
                programs: &no_programs,
            },
            UnderTest::ClientPrograms(programs) => BothSides {
                servers: &no_servers,
                programs,
            },
        };
        both.serialize(serializer)
    }
}

/// `[[events]]`: at `at` (from the start of the run), do `action` to a server.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct EventPlan {
    /// When, from the start of the run.
    #[serde(serialize_with = "as_human")]
    pub at: Duration,
    /// What.
    pub action: EventAction,
    /// Index into [`ServersUnderTest::servers`].
    pub server: usize,
}

/// What an event does to its server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum EventAction {
    /// SIGTERM, grace period, SIGKILL: a clean shutdown.
    Stop,
    /// SIGKILL at once: a crash.
    Kill,
    /// Stop, then start again on the same port.
    Restart,
}

impl EventAction {
    /// The key used in scenario files.
    pub fn label(self) -> &'static str {
        match self {
            EventAction::Stop => "stop",
            EventAction::Kill => "kill",
            EventAction::Restart => "restart",
        }
    }
}

/// `--shard K/N`: this process runs every N-th client, starting with the K-th.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// Which slice, 1-based.
    pub index: u32,
    /// How many slices.
    pub of: u32,
}

impl std::str::FromStr for Shard {
    type Err = String;

    fn from_str(text: &str) -> Result<Shard, String> {
        let parsed = text
            .split_once('/')
            .and_then(|(k, n)| Some((k.trim().parse::<u32>().ok()?, n.trim().parse::<u32>().ok()?)));
        match parsed {
            Some((index, of)) if index >= 1 && index <= of => Ok(Shard { index, of }),
            _ => Err(format!("`{text}`: expected K/N with 1 <= K <= N, like 1/2")),
        }
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.of)
    }
}

/// `--start-at`: an instant of wall-clock time, read as RFC 3339 (`2026-12-01T10:00:00Z`,
/// or with an offset, `2026-12-01T11:00:00+01:00`). Every shard given the same one starts its
/// clients then, whenever it was launched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StartAt(pub std::time::SystemTime);

impl std::str::FromStr for StartAt {
    type Err = String;

    fn from_str(text: &str) -> Result<StartAt, String> {
        let form = "an RFC 3339 instant, like 2026-12-01T10:00:00Z or 2026-12-01T11:00:00+01:00 \
                    (date -u -d '+1 min' +%FT%TZ)";
        if !text.is_ascii() {
            return Err(format!("`{text}`: {form}"));
        }
        // humantime reads UTC (`Z`) alone: an offset is taken off and applied here.
        let (utc, offset_seconds) = match text.len().checked_sub(6).map(|at| text.split_at(at)) {
            Some((time, offset))
                if (offset.starts_with('+') || offset.starts_with('-')) && offset.as_bytes()[3] == b':' =>
            {
                let digits = |range: std::ops::Range<usize>, most: i64| {
                    offset[range]
                        .parse::<u8>()
                        .ok()
                        .map(i64::from)
                        .filter(|n| *n <= most)
                        .ok_or_else(|| format!("`{text}`: {form}"))
                };
                let hours = digits(1..3, 23)?;
                let minutes = digits(4..6, 59)?;
                let sign = if offset.starts_with('-') { -1 } else { 1 };
                (format!("{time}Z"), sign * (hours * 3600 + minutes * 60))
            }
            _ => (text.to_owned(), 0),
        };
        let local = humantime::parse_rfc3339(&utc).map_err(|err| format!("`{text}`: {err}; {form}"))?;
        let shift = std::time::Duration::from_secs(offset_seconds.unsigned_abs());
        let instant = match offset_seconds >= 0 {
            true => local.checked_sub(shift),
            false => local.checked_add(shift),
        };
        // RFC 3339 timestamps are written from 1970 to 9999: an offset can carry a parsed one
        // past either end, and such an instant could not be written in a report.
        let last = std::time::UNIX_EPOCH + std::time::Duration::from_secs(253_402_300_799);
        instant
            .filter(|at| (std::time::UNIX_EPOCH..=last).contains(at))
            .map(StartAt)
            .ok_or_else(|| format!("`{text}`: outside 1970-01-01T00:00:00Z to 9999-12-31T23:59:59Z"))
    }
}

impl std::fmt::Display for StartAt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", humantime::format_rfc3339_millis(self.0))
    }
}

fn start_at_as_text<S: serde::Serializer>(at: &Option<StartAt>, s: S) -> Result<S::Ok, S::Error> {
    match at {
        Some(at) => s.collect_str(at),
        None => s.serialize_none(),
    }
}

fn shard_as_text<S: serde::Serializer>(shard: &Option<Shard>, s: S) -> Result<S::Ok, S::Error> {
    match shard {
        Some(shard) => s.collect_str(shard),
        None => s.serialize_none(),
    }
}

impl ServersUnderTest {
    /// Whether a client group runs `workload` over TCP (chats, rooms and UDP clients have
    /// checks of their own).
    pub fn drives_tcp(&self, workload: WorkloadKind) -> bool {
        self.groups
            .iter()
            .any(|g| g.workload == workload && g.transport == Transport::Tcp)
    }

    /// Whether this process runs client `index` of group `group`: all of them, or with a
    /// shard every N-th client counted across the groups in file order, so the slices of
    /// one scenario never overlap and together cover every client.
    pub fn runs(&self, group: usize, index: u32) -> bool {
        let Some(shard) = self.shard else {
            return true;
        };
        let before: u64 = self.groups[..group].iter().map(|g| u64::from(g.count)).sum();
        (before + u64::from(index)) % u64::from(shard.of) == u64::from(shard.index - 1)
    }

    /// Clients across all groups: one socket each.
    pub fn total_clients(&self) -> u64 {
        self.groups.iter().map(|g| u64::from(g.count)).sum()
    }

    /// Clients aimed at server `index`.
    pub fn clients_of(&self, index: usize) -> u64 {
        self.groups
            .iter()
            .filter(|g| g.server == index)
            .map(|g| u64::from(g.count))
            .sum()
    }
}

impl Plan {
    /// Points server `name` at a server already running at `target` (`--target`), in place
    /// of the one the scenario launches: what only a launched process has (its command,
    /// environment, working directory, stdin, limits, exit policy and readiness line) no
    /// longer applies. Fails when there is no such server; once every server is aimed,
    /// [`Plan::check_aims`] says whether the scenario still holds.
    pub fn aim(&mut self, name: &str, target: Target) -> Result<(), String> {
        let source = self.source.display().to_string();
        let servers = &mut self.servers_to_aim()?.servers;
        let Some(index) = servers.iter().position(|s| s.name == name) else {
            return Err(format!(
                "`{source}` has no server named `{name}` to aim at {target}; its servers: {}",
                list_names(servers)
            ));
        };
        let transport = servers[index].transport;
        if let Some(other) = servers.iter().enumerate().find_map(|(i, s)| {
            let here = s.target().is_some_and(|t| t.is_same_place(&target));
            (i != index && here && s.transport == transport).then_some(&s.name)
        }) {
            return Err(format!(
                "`{source}`: servers `{other}` and `{name}` would both be {target}: each server \
                 under test needs its own address, or one server would be tested twice"
            ));
        }
        let server = &mut servers[index];
        *server = ServerPlan::without_process(
            std::mem::take(&mut server.name),
            Launch::Address(target.clone()),
            PortChoice::Fixed(target.port),
            server.ready_timeout,
            server.transport,
        );
        Ok(())
    }

    /// Fails when the scenario needs what only a launched server has, from a server it now
    /// only aims at (see [`ServersUnderTest::needs_a_process`]).
    pub fn check_aims(&self) -> Result<(), String> {
        let Some(under_test) = self.under_test.servers() else {
            return Ok(());
        };
        match under_test.needs_a_process(&self.expect) {
            Some((_, why)) => Err(format!("`{}`: {why}", self.source.display())),
            None => Ok(()),
        }
    }

    /// The servers `--target` aims at; a scenario of client programs has none.
    fn servers_to_aim(&mut self) -> Result<&mut ServersUnderTest, String> {
        match &mut self.under_test {
            UnderTest::Servers(under_test) => Ok(under_test),
            UnderTest::ClientPrograms(_) => Err(format!(
                "`{}` tests client programs, so it has no server to aim --target at",
                self.source.display()
            )),
        }
    }
}

impl ServersUnderTest {
    /// What in this scenario needs a process labrun launched, but names a server it only
    /// aims at (`address`, `--target`): a chat (its operator types at the server's stdin),
    /// an event (labrun never signals what it did not start), `expect.reaps` (it counts the
    /// server's processes), or a server whose port the addressed one's program was to
    /// serve (`process`). Says which, and why.
    pub fn needs_a_process(&self, expect: &Expectations) -> Option<(ProcessNeed, String)> {
        let addressed = |index: usize| self.servers[index].target();
        let not_launched = |index: usize, target: &Target| {
            format!(
                "server `{}` is addressed ({target}), not launched by labrun",
                self.servers[index].name
            )
        };
        if let Some((group, target)) = self
            .groups
            .iter()
            .enumerate()
            .filter(|(_, g)| g.workload == WorkloadKind::Chat)
            .find_map(|(i, g)| addressed(g.server).map(|t| (i, t)))
        {
            let group_plan = &self.groups[group];
            return Some((
                ProcessNeed::Group(group),
                format!(
                    "{}, so labrun cannot be its operator: chat group `{}` needs the operator's \
                     lines typed at the server's stdin",
                    not_launched(group_plan.server, target),
                    group_plan.name
                ),
            ));
        }
        if let Some((event, target)) = self
            .events
            .iter()
            .enumerate()
            .find_map(|(i, e)| addressed(e.server).map(|t| (i, t)))
        {
            let server = self.events[event].server;
            return Some((
                ProcessNeed::Event(event),
                format!(
                    "{}, and labrun never stops, kills or restarts what it did not start: drop \
                     this event, or let labrun launch the server",
                    not_launched(server, target)
                ),
            ));
        }
        if let Some((index, target)) = (0..self.servers.len()).find_map(|i| addressed(i).map(|t| (i, t)))
            && expect.reaps
        {
            return Some((
                ProcessNeed::Reaps,
                format!(
                    "{}, so its processes cannot be counted: `expect.reaps` needs every server \
                     launched by labrun",
                    not_launched(index, target)
                ),
            ));
        }
        self.servers.iter().enumerate().find_map(|(index, server)| {
            let owner = server.process_owner()?;
            let owner_index = self.servers.iter().position(|s| s.name == owner)?;
            let target = addressed(owner_index)?;
            Some((
                ProcessNeed::Server(index),
                format!(
                    "{}, so it has no program to serve server `{}`'s port too: aim `{}` at its \
                     own address as well (another --target)",
                    not_launched(owner_index, target),
                    server.name,
                    server.name
                ),
            ))
        })
    }
}

/// The side a test's scenario is known to test; a panic is the test failing.
#[cfg(test)]
impl Plan {
    pub(crate) fn servers_side(&self) -> &ServersUnderTest {
        let name = &self.name;
        self.under_test
            .servers()
            .unwrap_or_else(|| panic!("`{name}` tests client programs"))
    }

    pub(crate) fn servers_side_mut(&mut self) -> &mut ServersUnderTest {
        match &mut self.under_test {
            UnderTest::Servers(under_test) => under_test,
            UnderTest::ClientPrograms(_) => panic!("the plan tests client programs"),
        }
    }

    pub(crate) fn programs_side(&self) -> &ProgramsUnderTest {
        let name = &self.name;
        self.under_test
            .programs()
            .unwrap_or_else(|| panic!("`{name}` tests servers"))
    }
}

/// What needs a process of a server labrun only aims at (see [`ServersUnderTest::needs_a_process`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProcessNeed {
    /// Chat group (index into [`ServersUnderTest::groups`]).
    Group(usize),
    /// Event (index into [`ServersUnderTest::events`]).
    Event(usize),
    /// `expect.reaps`.
    Reaps,
    /// Server (index into [`ServersUnderTest::servers`]) served by an addressed server's process.
    Server(usize),
}

/// How to launch one server and when it counts as ready.
#[derive(Debug, Clone, Serialize)]
pub struct ServerPlan {
    /// Name clients refer to.
    pub name: String,
    /// What to run.
    pub launch: Launch,
    /// Which port it listens on.
    #[serde(serialize_with = "port_as_text")]
    pub port: PortChoice,
    /// How long it may take to accept a connection after launch.
    #[serde(serialize_with = "as_human")]
    pub ready_timeout: Duration,
    /// Extra environment variables (`PORT` is always set too).
    pub env: Vec<(String, String)>,
    /// Working directory, absolute once the plan is made (a relative `cwd` is the scenario
    /// folder's: see `paths`); `None`: labrun's own.
    pub cwd: Option<PathBuf>,
    /// Whether it may end by itself.
    pub exits: ExitPolicy,
    /// How labrun decides it is ready.
    pub ready: ReadySignal,
    /// What labrun types at its standard input (closed when `None`).
    pub stdin: Option<StdinScript>,
    /// Resource limits applied to it (and inherited by what it starts).
    pub limits: Limits,
    /// TCP or UDP.
    pub transport: Transport,
}

/// Resource limits for a server, applied with setrlimit before it starts. `None` leaves
/// labrun's own limit in place.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Limits {
    /// CPU seconds (RLIMIT_CPU): past it the kernel sends SIGXCPU, then SIGKILL.
    pub cpu_seconds: Option<u64>,
    /// Address space in bytes (RLIMIT_AS): allocations beyond it fail.
    pub memory_bytes: Option<u64>,
    /// Processes and threads: its own pids cgroup where one can be made (see
    /// `supervise::cgroup`), and RLIMIT_NPROC, which the kernel does not enforce for root.
    pub processes: Option<u64>,
    /// Open file descriptors (RLIMIT_NOFILE).
    pub open_files: Option<u64>,
    /// Largest file it may write, in bytes (RLIMIT_FSIZE).
    pub file_size_bytes: Option<u64>,
}

impl ServerPlan {
    /// The server whose process serves this one's port, when it has none of its own.
    pub fn process_owner(&self) -> Option<&str> {
        match &self.launch {
            Launch::Process(owner) => Some(owner),
            Launch::Builtin(_) | Launch::Command(_) | Launch::Address(_) => None,
        }
    }

    /// A server with no process of its own to describe (`process`, `address`): nothing to
    /// set up, type at or limit.
    fn without_process(
        name: String,
        launch: Launch,
        port: PortChoice,
        ready_timeout: Duration,
        transport: Transport,
    ) -> ServerPlan {
        ServerPlan {
            name,
            launch,
            port,
            ready_timeout,
            env: Vec::new(),
            cwd: None,
            exits: ExitPolicy::default(),
            ready: ReadySignal::Listening,
            stdin: None,
            limits: Limits::default(),
            transport,
        }
    }

    /// Where it runs when labrun does not launch it (`address`, `--target`).
    pub fn target(&self) -> Option<&Target> {
        match &self.launch {
            Launch::Address(target) => Some(target),
            Launch::Builtin(_) | Launch::Command(_) | Launch::Process(_) => None,
        }
    }

    /// The replies its operator gives, in order: the non-empty lines typed at its stdin
    /// (a lab chat server skips empty ones and asks again).
    pub fn operator_lines(&self) -> Vec<String> {
        self.stdin
            .as_ref()
            .map(|script| script.lines().filter(|line| !line.is_empty()).collect())
            .unwrap_or_default()
    }
}

/// When a server counts as ready.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ReadySignal {
    /// Its process group listens on its port.
    Listening,
    /// A line of its stdout matches this regular expression.
    Stdout(#[serde(serialize_with = "regex_as_text")] regex::Regex),
    /// A line of its stderr matches this regular expression.
    Stderr(#[serde(serialize_with = "regex_as_text")] regex::Regex),
}

/// A compiled regular expression, written as the text it was compiled from.
fn regex_as_text<S: serde::Serializer>(regex: &regex::Regex, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(regex.as_str())
}

/// Lines typed at a server's standard input, for programs whose operator answers with
/// `input()`. The pipe stays open after the last line, so `input()` waits rather than failing.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum StdinScript {
    /// These lines, in order.
    Lines(Vec<String>),
    /// One line per message the server will receive, `{n}` replaced by 1, 2, 3, …
    Reply {
        /// The line, with `{n}` where the number goes.
        template: String,
        /// How many lines: the messages sent to this server in the whole scenario.
        lines: u64,
    },
}

impl StdinScript {
    /// The lines to type, without line terminators.
    pub fn lines(&self) -> Box<dyn Iterator<Item = String> + Send + '_> {
        match self {
            StdinScript::Lines(lines) => Box::new(lines.iter().cloned()),
            StdinScript::Reply { template, lines } => {
                Box::new((1..=*lines).map(move |n| numbered(template, n)))
            }
        }
    }
}

/// A reply template (`"reply {n}"`) for message `n`, counted from 1: the operator of a chat
/// server labrun launches and the one of a chat server it plays speak alike.
pub fn numbered(template: &str, n: u64) -> String {
    template.replace("{n}", &n.to_string())
}

/// What process a server is.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Launch {
    /// A reference server built into labrun, run as `labrun serve NAME --port P`.
    Builtin(Builtin),
    /// Any program; `{port}` in its arguments is replaced by the port, `{port:NAME}` by
    /// server NAME's. Its paths are absolute once the plan is made (see `paths`).
    Command(Vec<String>),
    /// No process of its own: the program of the server named here listens on this
    /// server's port too (`process = "NAME"`, lab 4 written as one program).
    Process(String),
    /// Not launched at all: a server already running at this address (`address =
    /// "host:port"`, or `--target NAME=HOST:PORT`). labrun connects to it and never signals
    /// it.
    Address(Target),
}

/// Where a server labrun does not launch listens: a host (a name, or an IPv4 or IPv6
/// address) and a port. The name is looked up when the run starts, not when the scenario is
/// read, so a scenario can name a service that is not up yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// A host name or an IP address (an IPv6 one without its brackets).
    pub host: String,
    pub port: u16,
}

impl Target {
    /// Reads `host:port` (`[v6]:port` for an IPv6 address).
    pub fn parse(text: &str) -> Result<Target, String> {
        let form = "an address is host:port, like \"127.0.0.1:7000\", \"echo.lab:7000\" or \"[::1]:7000\"";
        let Some((host, port)) = text.rsplit_once(':').filter(|_| !text.ends_with(']')) else {
            return Err(format!("`{text}` has no port: {form}"));
        };
        let host = match host.strip_prefix('[') {
            Some(v6) => v6
                .strip_suffix(']')
                .filter(|inner| inner.parse::<std::net::Ipv6Addr>().is_ok())
                .ok_or_else(|| format!("`{text}`: `{host}` is not an IPv6 address in brackets: {form}"))?,
            None if host.contains(':') => {
                return Err(format!("`{text}`: an IPv6 address goes in brackets: {form}"));
            }
            None => host,
        };
        if host.is_empty() || host.contains(char::is_whitespace) || host.contains('/') {
            return Err(format!("`{text}` names no host: {form}"));
        }
        match port.parse::<u16>() {
            Ok(port) if port > 0 => Ok(Target {
                host: host.to_owned(),
                port,
            }),
            _ => Err(format!("`{text}`: `{port}` is not a port (1 to 65535): {form}")),
        }
    }
}

impl Target {
    /// Whether both name one place: the same port on the same host (host names are not
    /// case-sensitive). Two servers under test at one place would test one server twice.
    pub fn is_same_place(&self, other: &Target) -> bool {
        self.port == other.port && self.host.eq_ignore_ascii_case(&other.host)
    }
}

impl std::str::FromStr for Target {
    type Err = String;

    fn from_str(text: &str) -> Result<Target, String> {
        Target::parse(text)
    }
}

/// `--target [NAME=]HOST:PORT`: a server of a scenario, by name (or its only one), and the
/// running server to aim it at instead of launching it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AimedServer {
    /// The scenario's server; `None`: its only one.
    pub server: Option<String>,
    /// Where the running server is.
    pub target: Target,
}

impl std::str::FromStr for AimedServer {
    type Err = String;

    fn from_str(text: &str) -> Result<AimedServer, String> {
        let (server, address) = match text.split_once('=') {
            Some((name, address)) if !name.is_empty() => (Some(name.to_owned()), address),
            Some(_) => {
                return Err(format!(
                    "`{text}`: name the server before `=`, like echo=127.0.0.1:7000"
                ));
            }
            None => (None, text),
        };
        Ok(AimedServer {
            server,
            target: Target::parse(address)?,
        })
    }
}

impl Plan {
    /// Aims the servers `aimed` names (an unnamed one: the only server) at their running
    /// servers; see [`Plan::aim`]. Refused before anything changes: a server aimed twice
    /// (which address would it be?), and a server whose port another server's program
    /// serves (`process`) while that program is still launched: it would listen on the
    /// port itself, so the run would test it, or fail to bind beside the running server.
    pub fn aim_all(&mut self, aimed: &[AimedServer]) -> Result<(), String> {
        let servers = self.servers_to_aim()?.servers.clone();
        let mut names: Vec<String> = Vec::with_capacity(aimed.len());
        for one in aimed {
            let name = self.aimed_name(one, &servers)?;
            if names.contains(&name) {
                return Err(format!(
                    "--target aims server `{name}` of `{}` twice: give each server one address",
                    self.source.display()
                ));
            }
            names.push(name);
        }
        for name in &names {
            let owner = servers
                .iter()
                .find(|s| &s.name == name)
                .and_then(ServerPlan::process_owner);
            if let Some(owner) = owner
                && !names.iter().any(|n| n == owner)
            {
                return Err(format!(
                    "`{}`: server `{name}`'s port is served by server `{owner}`'s program \
                     (process = \"{owner}\"), which labrun would still launch: aim `{owner}` \
                     at its running server too, or leave `{name}` to it",
                    self.source.display()
                ));
            }
        }
        for (one, name) in aimed.iter().zip(&names) {
            self.aim(name, one.target.clone())?;
        }
        Ok(())
    }

    /// The server `aimed` names, or the only one when it names none.
    fn aimed_name(&self, aimed: &AimedServer, servers: &[ServerPlan]) -> Result<String, String> {
        match (&aimed.server, servers) {
            (Some(name), _) => Ok(name.clone()),
            (None, [only]) => Ok(only.name.clone()),
            (None, servers) => Err(format!(
                "`{}` has {} servers ({}): say which to aim at {}, as --target NAME={}",
                self.source.display(),
                servers.len(),
                list_names(servers),
                aimed.target,
                aimed.target
            )),
        }
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.host.contains(':') {
            true => write!(f, "[{}]:{}", self.host, self.port),
            false => write!(f, "{}:{}", self.host, self.port),
        }
    }
}

impl Serialize for Target {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// A group of identical simulated clients.
#[derive(Debug, Clone, Serialize)]
pub struct GroupPlan {
    /// Group name, used to name clients (`name#3`).
    pub name: String,
    /// Index into [`ServersUnderTest::servers`].
    pub server: usize,
    /// How many clients.
    pub count: u32,
    /// What each client does.
    pub workload: WorkloadKind,
    /// Messages per client (for chat, the turns, `exit` included).
    pub messages: u32,
    /// The exact texts to send, when the scenario lists them (chat); otherwise generated.
    pub texts: Option<Vec<String>>,
    /// Body sizes, drawn uniformly.
    pub size: SizeRange,
    /// What bodies are made of.
    pub payload: PayloadKind,
    /// Pause after each reply before the next message.
    #[serde(serialize_with = "as_human")]
    pub think: Duration,
    /// How clients are started.
    pub start: StartSchedule,
    /// How long each reply may take.
    #[serde(serialize_with = "as_human")]
    pub reply_timeout: Duration,
    /// Clients of the group that misbehave on purpose, if any.
    pub fault: Option<FaultPlan>,
    /// Delay before the group's first client starts (late joiners).
    #[serde(serialize_with = "as_human")]
    pub start_after: Duration,
    /// Broadcast: each client leaves the room after sending this many messages.
    pub leave_after: Option<u32>,
    /// How a broadcast member with `leave_after`, or a chat session that does not end in
    /// `exit`, leaves: by closing or by a reset.
    pub leave: LeaveMode,
    /// Broadcast: messages are meant to reach their sender too.
    pub include_sender: bool,
    /// Broadcast load mode: senders wait only until the relay has taken each message, and
    /// receivers pause reading in turn until the relay holds more for them than the kernel
    /// can buffer (see `workload::broadcast`).
    pub load: bool,
    /// TCP or UDP (always its server's).
    pub transport: Transport,
    /// Open loop: messages per second for the whole group, sent on schedule whatever the
    /// replies do; `None` is closed loop.
    pub rate: Option<f64>,
    /// Open loop: the rate grows linearly from zero to `rate` over this long.
    #[serde(serialize_with = "as_human")]
    pub rate_ramp: Duration,
    /// TCP echo: messages each client keeps in flight (1 = wait for each echo).
    pub pipeline: u32,
    /// TCP: connect paced to the server's accept queue, or all at once.
    pub connect: ConnectMode,
    /// TCP echo: each client shuts down its sending side as soon as its last message is
    /// written, then wants every echo and the server's close (`half_close = true`).
    pub half_close: bool,
}

impl GroupPlan {
    /// Chat: the operator's replies this group's session asks for (every turn but `exit`).
    pub fn chat_replies(&self) -> usize {
        match &self.texts {
            Some(texts) => texts.iter().filter(|t| *t != "exit").count(),
            None => self.messages.saturating_sub(1) as usize,
        }
    }

    /// Whether client `index` of this group is one of its faulty ones (the first `clients`).
    pub fn is_faulty(&self, index: u32) -> bool {
        self.fault.is_some_and(|fault| index < fault.clients)
    }

    /// Clients that behave.
    pub fn well_behaved(&self) -> u32 {
        self.count - self.fault.map_or(0, |fault| fault.clients)
    }
}

/// `faulty = N` with `fault = { kind, after }`: the first N clients of a group misbehave.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct FaultPlan {
    /// How they misbehave.
    pub kind: FaultKind,
    /// Messages exchanged normally before misbehaving.
    pub after: u32,
    /// How many clients misbehave.
    pub clients: u32,
}

impl std::fmt::Display for FaultPlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let plural = if self.after == 1 { "" } else { "s" };
        write!(f, "{} after {} message{plural}", self.kind.label(), self.after)
    }
}

/// When the clients of a group start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum StartSchedule {
    /// All at once.
    Together,
    /// Client `i` of `n` starts at `i * ramp / n`.
    Ramp(#[serde(serialize_with = "as_human")] Duration),
}

impl StartSchedule {
    /// Delay before client `index` of `count` starts.
    pub fn offset(self, index: u32, count: u32) -> Duration {
        match self {
            StartSchedule::Together => Duration::ZERO,
            StartSchedule::Ramp(ramp) => ramp.mul_f64(f64::from(index) / f64::from(count.max(1))),
        }
    }
}

/// The checks a run is judged by.
#[derive(Debug, Clone, Serialize)]
pub struct Expectations {
    /// Echo comparison mode.
    pub echo: EchoExpectation,
    /// Client errors (connect failures, resets, deadline) tolerated.
    pub max_errors: u64,
    /// Upper bounds on latency percentiles.
    pub latency: Vec<LatencyBound>,
    /// Least acceptable throughput, messages per second over the whole run.
    pub min_msgs_per_sec: Option<f64>,
    /// Largest acceptable share of clients ending in a connection error.
    pub max_error_rate: Option<f64>,
    /// What kind of server the run must show, judged per server.
    pub concurrency: Option<ConcurrencyExpectation>,
    /// Whether every server must still serve a fresh client after the run.
    pub survives: bool,
    /// Whether every server's processes must be back to (at most) their count at ready once
    /// the clients left, with at most one zombie child (see `supervise::Children`).
    pub reaps: bool,
    /// How broadcast deliveries are judged.
    pub fanout: FanoutExpectation,
    /// Largest acceptable share of UDP datagrams lost.
    pub max_loss: Option<f64>,
}

/// `latency.p99 = "50ms"` and friends.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct LatencyBound {
    /// Which distribution.
    pub view: LatencyView,
    /// Which percentile.
    pub percentile: Percentile,
    /// Largest acceptable value.
    #[serde(serialize_with = "as_human")]
    pub limit: Duration,
}

/// One of the latency distributions a run records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum LatencyView {
    /// TCP connect time (`expect.connect`).
    Connect,
    /// First send until the first reply (`expect.wait`).
    Wait,
    /// Round trip of each later message (`expect.latency`).
    Rtt,
    /// Broadcast send until each receiver's copy (`expect.fanout_latency`).
    Fanout,
}

impl LatencyView {
    /// The name used in check names and reports.
    pub fn label(self) -> &'static str {
        match self {
            LatencyView::Connect => "connect",
            LatencyView::Wait => "wait",
            LatencyView::Rtt => "rtt",
            LatencyView::Fanout => "fanout",
        }
    }
}

/// A point of a latency distribution: a percentile (`p50`, `p95`, `p99.9`, up to three
/// decimals) or the largest value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Percentile {
    /// The value below which this many thousandths of a percent of the samples lie: `p95`
    /// is 95,000, `p99.9` is 99,900.
    At(u32),
    /// Largest value.
    Max,
}

impl Percentile {
    /// Median.
    pub const P50: Percentile = Percentile::At(50_000);
    /// 99th percentile.
    pub const P99: Percentile = Percentile::At(99_000);
    /// 99.9th percentile.
    pub const P999: Percentile = Percentile::At(99_900);

    /// The quantile in `0.0..=1.0`.
    pub fn quantile(self) -> f64 {
        match self {
            Percentile::At(thousandths) => f64::from(thousandths) / 100_000.0,
            Percentile::Max => 1.0,
        }
    }

    /// The name used in scenario files and reports: `p95`, `p99.9`, `max`.
    pub fn label(self) -> String {
        match self {
            Percentile::At(thousandths) => {
                let (whole, fraction) = (thousandths / 1000, thousandths % 1000);
                match fraction {
                    0 => format!("p{whole}"),
                    _ => format!("p{whole}.{}", format!("{fraction:03}").trim_end_matches('0')),
                }
            }
            Percentile::Max => "max".to_owned(),
        }
    }
}

impl std::str::FromStr for Percentile {
    type Err = String;

    fn from_str(text: &str) -> Result<Percentile, String> {
        let refused = || {
            format!(
                "`{text}` is not a percentile: write `p` and a number above 0 and below 100 with \
                 at most three decimals (p50, p95, p99.9), or `max`"
            )
        };
        if text == "max" {
            return Ok(Percentile::Max);
        }
        let number = text.strip_prefix('p').ok_or_else(refused)?;
        let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
        let digits = |part: &str| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit());
        if !digits(whole)
            || whole.len() > 2
            || (!fraction.is_empty() && !digits(fraction))
            || fraction.len() > 3
        {
            return Err(refused());
        }
        let whole: u32 = whole.parse().map_err(|_| refused())?;
        let fraction: u32 = format!("{fraction:0<3}").parse().map_err(|_| refused())?;
        match whole * 1000 + fraction {
            0 => Err(refused()),
            thousandths => Ok(Percentile::At(thousandths)),
        }
    }
}

impl Serialize for Percentile {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.label())
    }
}

pub(super) fn as_human<S: serde::Serializer>(duration: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&humantime::format_duration(*duration))
}

pub(super) fn port_as_text<S: serde::Serializer>(port: &PortChoice, s: S) -> Result<S::Ok, S::Error> {
    match port {
        PortChoice::Auto => s.serialize_str("auto"),
        PortChoice::Fixed(port) => s.serialize_u16(*port),
    }
}

/// Builds located errors for one file.
pub(super) struct Locator<'a> {
    path: &'a Path,
    source: &'a str,
}

impl Locator<'_> {
    pub(super) fn error(&self, span: Range<usize>, message: impl Into<String>) -> Diagnostic {
        Diagnostic::new(self.path, self.source, Some(span), message.into())
    }

    /// An error at the first place `needle` is written inside `span` (a placeholder inside a
    /// `command` array, say), or at the whole span when it is not written there as is.
    pub(super) fn error_within(
        &self,
        span: Range<usize>,
        needle: &str,
        message: impl Into<String>,
    ) -> Diagnostic {
        let narrowed = self
            .source
            .get(span.clone())
            .and_then(|text| text.find(needle))
            .map_or(span.clone(), |at| span.start + at..span.start + at + needle.len());
        self.error(narrowed, message)
    }
}

/// A scenario of client programs has no servers under test: their tables and `[expect]`
/// are refused where they are written.
fn refuse_server_tables(raw: &RawScenario, name_span: Range<usize>, at: &Locator) -> Result<(), Diagnostic> {
    let server_tables = [
        ("[[server]]", raw.server.first().map(toml::Spanned::span)),
        ("[[clients]]", raw.clients.first().map(toml::Spanned::span)),
        ("[[events]]", raw.events.first().map(toml::Spanned::span)),
    ];
    if let Some((table, span)) = server_tables.into_iter().find_map(|(t, s)| s.map(|s| (t, s))) {
        return Err(at.error(
            span,
            format!(
                "a scenario tests either servers ([[server]] with [[clients]]) or client programs \
                 ([[client_program]] with [[played_server]]), not both: move {table} to a scenario of its own"
            ),
        ));
    }
    if raw.expect.is_some() {
        return Err(at.error(
            name_span,
            "[expect] judges servers under test; a client program's expectations go in its own \
             `expect = { sent = [...], printed = [...] }`",
        ));
    }
    Ok(())
}

/// The servers, named once each, with each one's span.
/// The plans of one kind of table (servers, client groups, events), each with its table's
/// span; or the problems of every table of that kind.
type Resolved<T> = Result<(Vec<T>, Vec<Range<usize>>), Vec<Diagnostic>>;

fn resolve_servers(tables: Vec<toml::Spanned<RawServer>>, at: &Locator) -> Resolved<ServerPlan> {
    let siblings: Vec<Sibling> = tables.iter().map(|table| Sibling::of(table.get_ref())).collect();
    let mut servers = Vec::with_capacity(tables.len());
    let mut server_spans = Vec::with_capacity(tables.len());
    let mut problems = Vec::new();
    for table in tables {
        let span = table.span();
        let server = match resolve_server(table.into_inner(), span.clone(), &siblings, at) {
            Ok(server) => server,
            Err(problem) => {
                problems.push(problem);
                continue;
            }
        };
        if servers.iter().any(|s: &ServerPlan| s.name == server.name) {
            problems.push(at.error(span, format!("two servers are named `{}`", server.name)));
            continue;
        }
        if let Some((other, target)) = servers.iter().find_map(|s: &ServerPlan| {
            let both = s
                .target()
                .zip(server.target())
                .filter(|(a, b)| a.is_same_place(b));
            both.filter(|_| s.transport == server.transport)
                .map(|(_, b)| (&s.name, b))
        }) {
            problems.push(at.error(
                span,
                format!(
                    "servers `{other}` and `{}` are both at {target}: each server under test \
                     needs its own address, or one server would be tested twice",
                    server.name
                ),
            ));
            continue;
        }
        server_spans.push(span);
        servers.push(server);
    }
    match problems.is_empty() {
        true => Ok((servers, server_spans)),
        false => Err(problems),
    }
}

/// `sandbox = true` runs the scenario in a private network, from which no server at an
/// `address` can be reached.
fn refuse_sandboxed_address(
    sandbox: Option<&toml::Spanned<bool>>,
    servers: &[ServerPlan],
    at: &Locator,
) -> Result<(), Diagnostic> {
    match (
        sandbox.filter(|on| *on.get_ref()),
        servers.iter().find(|s| s.target().is_some()),
    ) {
        (Some(on), Some(server)) => Err(at.error(
            on.span(),
            format!(
                "server `{}` is a running server at an `address`, which the sandbox's private \
                 network cannot reach: leave out `sandbox = true`; there is no program of yours \
                 to sandbox",
                server.name
            ),
        )),
        _ => Ok(()),
    }
}

/// A `stdin = { reply = … }` server is typed one line per message its clients send.
fn count_reply_lines(servers: &mut [ServerPlan], groups: &[GroupPlan]) {
    for (index, server) in servers.iter_mut().enumerate() {
        if let Some(StdinScript::Reply { lines, .. }) = &mut server.stdin {
            *lines = groups
                .iter()
                .filter(|g| g.server == index)
                .map(|g| u64::from(g.count) * u64::from(g.messages))
                .sum();
        }
    }
}

/// The events in the order they happen, with each one's span; or every event's problem.
fn resolve_events(
    tables: Vec<toml::Spanned<RawEvent>>,
    servers: &[ServerPlan],
    timeout: Duration,
    at: &Locator,
) -> Resolved<EventPlan> {
    let mut events = Vec::with_capacity(tables.len());
    let mut problems = Vec::new();
    for table in tables {
        let span = table.span();
        match resolve_event(table.into_inner(), span.clone(), servers, timeout, at) {
            Ok(event) => events.push((event, span)),
            Err(problem) => problems.push(problem),
        }
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    events.sort_by_key(|(event, _)| event.at);
    Ok(events.into_iter().unzip())
}

/// Latency bounds judge the round trips after each client's first message: every group
/// must send two at least.
fn check_latency_bounds(
    expect: Option<&RawExpect>,
    groups: &[GroupPlan],
    at: &Locator,
) -> Result<(), Diagnostic> {
    match (
        expect.and_then(|e| e.latency.as_ref()),
        groups.iter().find(|g| g.messages < 2),
    ) {
        (Some(latency), Some(group)) => Err(at.error(
            latency.span(),
            format!(
                "latency bounds apply to round trips after each client's first message (the first is \
                 its wait), but client group `{}` sends only 1 message per client; send at least 2",
                group.name
            ),
        )),
        _ => Ok(()),
    }
}

/// Applies defaults and checks everything that spans more than one value. The problems of
/// one kind of table (every server's, every client group's, every event's) are reported
/// together; those of later kinds only once the earlier ones are mended, as they may be
/// echoes (a group aimed at a server that did not resolve).
pub fn resolve(raw: RawScenario, path: &Path, source: &str) -> Result<Plan, Vec<Diagnostic>> {
    let at = Locator { path, source };
    let name_span = raw.name.span();
    let tests_programs = !raw.client_program.is_empty() || !raw.played_server.is_empty();
    if tests_programs {
        refuse_server_tables(&raw, name_span.clone(), &at)?;
    }
    let name = raw.name.into_inner();
    if name.trim().is_empty() {
        return Err(at.error(name_span, "scenario `name` must not be empty").into());
    }
    let timeout = raw
        .timeout
        .as_ref()
        .map_or(DEFAULT_RUN_TIMEOUT, |t| t.get_ref().0);
    if let Some(zero) = raw.timeout.as_ref().filter(|_| timeout.is_zero()) {
        return Err(at
            .error(zero.span(), "the scenario `timeout` must be longer than zero")
            .into());
    }
    // What every plan has; the branches below say what is under test.
    let plan = |expect, under_test| Plan {
        name,
        description: raw.description,
        source: path.to_owned(),
        timeout,
        seed: raw.seed.unwrap_or(0),
        sandbox: raw.sandbox.as_ref().is_some_and(|on| *on.get_ref()),
        expect,
        formats: raw.report.and_then(|r| r.formats).unwrap_or_default(),
        under_test,
    };
    if tests_programs {
        let (played, programs) =
            super::programs::resolve(raw.played_server, raw.client_program, timeout, name_span, &at)?;
        let under_test = UnderTest::ClientPrograms(ProgramsUnderTest { played, programs });
        return Ok(plan(resolve_expect(None, &at)?, under_test));
    }
    if raw.server.is_empty() {
        return Err(at
            .error(
                name_span,
                "this scenario has no server; add a [[server]] table with `name` and `builtin` or \
             `command` (or, to test a client program, [[client_program]] with [[played_server]])",
            )
            .into());
    }
    if raw.clients.is_empty() {
        return Err(at
            .error(
                name_span,
                "this scenario has no clients; add a [[clients]] table with `name` and `count`",
            )
            .into());
    }

    let (mut servers, server_spans) = resolve_servers(raw.server, &at)?;
    refuse_sandboxed_address(raw.sandbox.as_ref(), &servers, &at)?;
    let (groups, group_spans) = resolve_groups(raw.clients, &servers, &at)?;

    check_rooms(&servers, &groups, name_span.clone(), &at)?;

    count_reply_lines(&mut servers, &groups);

    check_latency_bounds(raw.expect.as_ref(), &groups, &at)?;

    if let Some(expect) = &raw.expect {
        check_probe_expectations(expect, &servers, &groups, &at)?;
    }
    if groups.iter().all(|g| g.well_behaved() == 0) {
        return Err(at
            .error(
                name_span,
                "every client of this scenario is `faulty`; keep at least one well-behaved client, \
             on whom the run is judged",
            )
            .into());
    }

    let (events, event_spans) = resolve_events(raw.events, &servers, timeout, &at)?;
    let reaps_span = raw
        .expect
        .as_ref()
        .and_then(|e| e.reaps.as_ref())
        .map(toml::Spanned::span);

    let under_test = ServersUnderTest {
        shard: None,
        start_at: None,
        servers,
        groups,
        events,
    };
    let expect = resolve_expect(raw.expect, &at)?;
    if let Some((need, why)) = under_test.needs_a_process(&expect) {
        let span = match need {
            ProcessNeed::Group(index) => group_spans[index].clone(),
            ProcessNeed::Event(index) => event_spans[index].clone(),
            ProcessNeed::Reaps => reaps_span.unwrap_or(name_span),
            ProcessNeed::Server(index) => server_spans[index].clone(),
        };
        return Err(at.error(span, why).into());
    }
    Ok(plan(expect, UnderTest::Servers(under_test)))
}

/// The client groups, each checked against the groups before it and against the
/// scenario's limits on clients and on memory held in flight; with each group's span.
fn resolve_groups(
    tables: Vec<toml::Spanned<RawClients>>,
    servers: &[ServerPlan],
    at: &Locator,
) -> Resolved<GroupPlan> {
    if let Some(extra) = tables.get(MAX_GROUPS) {
        return Err(vec![at.error(
            extra.span(),
            format!(
                "this scenario has {} client groups; the limit is {MAX_GROUPS}",
                tables.len()
            ),
        )]);
    }
    let mut groups: Vec<GroupPlan> = Vec::with_capacity(tables.len());
    let mut problems = Vec::new();
    let mut total_clients = 0u64;
    let mut in_flight_bytes = 0u64;
    let mut group_spans = Vec::with_capacity(tables.len());
    for table in tables {
        let span = table.span();
        let group = match resolve_group(table.into_inner(), servers, at) {
            Ok(group) => group,
            Err(problem) => {
                problems.push(problem);
                continue;
            }
        };
        if groups.iter().any(|g| g.name == group.name) {
            problems.push(at.error(span, format!("two client groups are named `{}`", group.name)));
            continue;
        }
        if group.workload == WorkloadKind::Chat
            && let Err(problem) = check_chat(&group, servers, &groups, span.clone(), at)
        {
            problems.push(problem);
            continue;
        }
        total_clients += u64::from(group.count);
        if total_clients > MAX_CLIENTS {
            // Past a limit, the running totals of later groups mean nothing.
            problems.push(at.error(
                span,
                format!("this scenario asks for {total_clients} clients in all; the limit is {MAX_CLIENTS}"),
            ));
            break;
        }
        // Each client holds the messages it has in flight twice (the bytes queued to send and
        // the bytes owed back); a UDP client keeps every datagram until its echo, and one the
        // server never answers until the end.
        let held_messages = match group.transport {
            Transport::Tcp => 2 * u64::from(group.pipeline),
            Transport::Udp => u64::from(group.messages),
        };
        in_flight_bytes = in_flight_bytes.saturating_add(
            u64::from(group.count)
                .saturating_mul(group.size.max)
                .saturating_mul(held_messages),
        );
        if in_flight_bytes > MAX_IN_FLIGHT_BYTES {
            problems.push(at.error(
                span,
                format!(
                    "clients × largest message needs {} of memory; the limit is {} (fewer clients or smaller `size`)",
                    crate::units::bytes(in_flight_bytes),
                    crate::units::bytes(MAX_IN_FLIGHT_BYTES)
                ),
            ));
            break;
        }
        group_spans.push(span);
        groups.push(group);
    }
    match problems.is_empty() {
        true => Ok((groups, group_spans)),
        false => Err(problems),
    }
}

fn resolve_event(
    raw: RawEvent,
    span: Range<usize>,
    servers: &[ServerPlan],
    timeout: Duration,
    at: &Locator,
) -> Result<EventPlan, Diagnostic> {
    let actions = [
        (EventAction::Stop, raw.stop),
        (EventAction::Kill, raw.kill),
        (EventAction::Restart, raw.restart),
    ];
    let mut chosen = actions
        .into_iter()
        .filter_map(|(action, server)| server.map(|s| (action, s)));
    let (Some((action, server)), None) = (chosen.next(), chosen.next()) else {
        return Err(at.error(
            span,
            "an event needs exactly one of `stop`, `kill` or `restart` = \"server name\"",
        ));
    };
    let wanted = server.get_ref();
    let index = servers.iter().position(|s| &s.name == wanted).ok_or_else(|| {
        at.error(
            server.span(),
            format!(
                "no server named `{wanted}`; servers in this scenario: {}",
                list_names(servers)
            ),
        )
    })?;
    let shares_with = match servers[index].process_owner() {
        Some(owner) => Some(owner),
        None => servers
            .iter()
            .find(|s| s.process_owner() == Some(wanted.as_str()))
            .map(|s| s.name.as_str()),
    };
    if let Some(partner) = shares_with {
        return Err(at.error(
            server.span(),
            format!(
                "server `{wanted}` shares one process with server `{partner}`, so {} it would take \
                 both down: events are refused on servers that share a process; to test that two \
                 servers are independent, run each as its own process (a `command` each)",
                match action {
                    EventAction::Stop => "stopping",
                    EventAction::Kill => "killing",
                    EventAction::Restart => "restarting",
                }
            ),
        ));
    }
    if raw.at.0 >= timeout {
        return Err(at.error(
            span,
            format!(
                "this event is at {} but the scenario's timeout is {}",
                humantime::format_duration(raw.at.0),
                humantime::format_duration(timeout)
            ),
        ));
    }
    Ok(EventPlan {
        at: raw.at.0,
        action,
        server: index,
    })
}

/// What checking one server needs to know about the others: their names (`{port:NAME}`,
/// `process`), who has no process of its own, and whose port a program must be given.
struct Sibling {
    name: String,
    process: Option<String>,
    builtin: bool,
    addressed: bool,
    fixed_port: bool,
}

impl Sibling {
    fn of(raw: &RawServer) -> Sibling {
        Sibling {
            name: raw.name.get_ref().clone(),
            process: raw.process.as_ref().map(|p| p.get_ref().clone()),
            builtin: raw.builtin.is_some(),
            addressed: raw.address.is_some(),
            fixed_port: matches!(raw.port, Some(PortChoice::Fixed(_))),
        }
    }
}

/// A server's transport: its `transport`, or the one its built-in speaks.
fn resolve_transport(
    builtin: Option<Builtin>,
    transport: Option<Transport>,
    name: &str,
    span: Range<usize>,
    at: &Locator,
) -> Result<Transport, Diagnostic> {
    Ok(match (builtin, transport) {
        (Some(Builtin::UdpEcho), None | Some(Transport::Udp)) => Transport::Udp,
        (Some(Builtin::UdpEcho), Some(Transport::Tcp)) => {
            return Err(at.error(
                span,
                format!("server `{name}`: built-in `udp-echo` speaks UDP, not TCP"),
            ));
        }
        (Some(builtin), Some(Transport::Udp)) => {
            return Err(at.error(
                span,
                format!(
                    "server `{name}`: built-in `{}` speaks TCP; the UDP one is `udp-echo`",
                    builtin.name()
                ),
            ));
        }
        (_, transport) => transport.unwrap_or_default(),
    })
}

/// How a server is launched: exactly one of `builtin` and `command`.
fn resolve_launch(
    builtin: Option<Builtin>,
    command: Option<toml::Spanned<Vec<String>>>,
    name: &str,
    span: Range<usize>,
    at: &Locator,
) -> Result<Launch, Diagnostic> {
    Ok(match (builtin, command) {
        (Some(builtin), None) => Launch::Builtin(builtin),
        (None, Some(command)) => {
            let command_span = command.span();
            let argv = command.into_inner();
            if argv.first().is_none_or(|program| program.is_empty()) {
                return Err(at.error(
                    command_span,
                    "`command` must name a program, like [\"python3\", \"server.py\", \"{port}\"]",
                ));
            }
            Launch::Command(argv)
        }
        (Some(_), Some(command)) => {
            return Err(at.error(
                command.span(),
                format!("server `{name}` has both `builtin` and `command`; keep one"),
            ));
        }
        (None, None) => {
            return Err(at.error(
                span,
                format!("server `{name}` needs `builtin = \"...\"` or `command = [...]`"),
            ));
        }
    })
}

/// A server's `stdin` script: fixed lines, or a reply per client message.
fn resolve_stdin(table: toml::Spanned<RawStdin>, at: &Locator) -> Result<StdinScript, Diagnostic> {
    let span = table.span();
    Ok(match table.into_inner() {
        RawStdin {
            lines: Some(lines),
            reply: None,
        } => StdinScript::Lines(lines),
        // The line count depends on the client groups; `resolve` fills it in.
        RawStdin {
            lines: None,
            reply: Some(template),
        } => StdinScript::Reply { template, lines: 0 },
        _ => {
            return Err(at.error(
                span,
                "`stdin` needs exactly one of `lines = [\"...\", ...]` or `reply = \"... {n} ...\"`",
            ));
        }
    })
}

fn resolve_server(
    mut raw: RawServer,
    span: Range<usize>,
    siblings: &[Sibling],
    at: &Locator,
) -> Result<ServerPlan, Diagnostic> {
    let name = raw.name.get_ref();
    // `--target NAME=HOST:PORT` and `{port:NAME}` must be able to name every server.
    if name.is_empty() || name.contains(|c: char| c.is_whitespace() || "=:{}".contains(c)) {
        return Err(at.error(
            raw.name.span(),
            format!(
                "server name `{name}` must be one word without `=`, `:`, `{{` or `}}`, like \"echo\", \
                 so that --target NAME=HOST:PORT and {{port:NAME}} can name it"
            ),
        ));
    }
    if let (Some(_), Some(address)) = (&raw.process, &raw.address) {
        return Err(at.error(
            address.span(),
            format!(
                "server `{}` has both `process` (its port served by another server's program) and \
                 `address` (a server already running elsewhere); keep one",
                raw.name.get_ref()
            ),
        ));
    }
    if let Some(owner) = raw.process.take() {
        return resolve_shared_server(raw, owner, siblings, at);
    }
    if let Some(address) = raw.address.take() {
        return resolve_addressed_server(raw, address, at);
    }
    check_placeholders(&raw, siblings, at)?;
    let name = raw.name.into_inner();
    let port = raw.port.unwrap_or_default();
    let transport = resolve_transport(raw.builtin, raw.transport, &name, span.clone(), at)?;
    let launch = resolve_launch(raw.builtin, raw.command, &name, span, at)?;
    let (ready_timeout, ready) = resolve_ready(raw.ready, at)?;
    let stdin = raw.stdin.map(|table| resolve_stdin(table, at)).transpose()?;
    Ok(ServerPlan {
        name,
        launch,
        port,
        ready_timeout,
        env: raw
            .env
            .map(toml::Spanned::into_inner)
            .unwrap_or_default()
            .into_iter()
            .collect(),
        cwd: raw.cwd.map(PathBuf::from),
        exits: raw.exits.unwrap_or_default(),
        ready,
        stdin,
        limits: resolve_limits(raw.limits),
        transport,
    })
}

/// The first key of `raw` that describes a process of its own, with where it is written
/// (`None` for a key whose value carries no span): what a server without a process of its
/// own (`process`, `address`) cannot have. `with_ready`: whether `ready` counts as one (an
/// addressed server keeps `ready = { timeout }`, the time it gets to answer).
fn first_process_key(raw: &RawServer, with_ready: bool) -> Option<(&'static str, Option<Range<usize>>)> {
    let spanned = |value: Option<Range<usize>>| (value.is_some(), value);
    let keys = [
        ("builtin", (raw.builtin.is_some(), None)),
        ("command", spanned(raw.command.as_ref().map(toml::Spanned::span))),
        ("env", spanned(raw.env.as_ref().map(toml::Spanned::span))),
        ("cwd", (raw.cwd.is_some(), None)),
        ("stdin", spanned(raw.stdin.as_ref().map(toml::Spanned::span))),
        ("limits", (raw.limits.is_some(), None)),
        ("exits", (raw.exits.is_some(), None)),
        ("address", spanned(raw.address.as_ref().map(toml::Spanned::span))),
        ("ready", (with_ready && raw.ready.is_some(), None)),
    ];
    keys.into_iter()
        .find(|(_, (given, _))| *given)
        .map(|(key, (_, span))| (key, span))
}

/// A server with `address = "host:port"`: one already running, that labrun aims at and
/// never launches, so nothing about a process (command, environment, stdin, limits, exit,
/// a readiness line, a port to choose) can be given; its readiness is a connection (for
/// UDP, an answered datagram) within `ready.timeout`.
fn resolve_addressed_server(
    raw: RawServer,
    address: toml::Spanned<String>,
    at: &Locator,
) -> Result<ServerPlan, Diagnostic> {
    let address_span = address.span();
    let name = raw.name.get_ref().clone();
    let target = Target::parse(address.get_ref()).map_err(|why| at.error(address_span.clone(), why))?;
    let refusal = |key: &str| {
        format!(
            "server `{name}` is a running server labrun does not launch (`address`), so it cannot \
             have `{key}`: labrun has no process of it to run, type at, limit or watch"
        )
    };
    if let Some((key, key_span)) = first_process_key(&raw, false) {
        return Err(at.error(key_span.unwrap_or_else(|| address_span.clone()), refusal(key)));
    }
    if raw.port.is_some() {
        return Err(at.error(
            address_span,
            format!("{}; its port is the address's", refusal("port")),
        ));
    }
    if let Some(pattern) = raw
        .ready
        .as_ref()
        .and_then(|r| r.stdout.as_ref().or(r.stderr.as_ref()))
    {
        return Err(at.error(
            pattern.span(),
            format!(
                "{}; it is ready when it answers",
                refusal("a readiness line (`ready.stdout`, `ready.stderr`)")
            ),
        ));
    }
    let (ready_timeout, _) = resolve_ready(raw.ready, at)?;
    let port = PortChoice::Fixed(target.port);
    Ok(ServerPlan::without_process(
        name,
        Launch::Address(target),
        port,
        ready_timeout,
        raw.transport.unwrap_or_default(),
    ))
}

/// A server with `process = "OWNER"`: its port is served by OWNER's program, so everything
/// about a process (command, environment, stdin, limits, readiness, exit) is OWNER's, and
/// OWNER must be a program of its own (not a built-in, which listens on one port).
fn resolve_shared_server(
    raw: RawServer,
    owner: toml::Spanned<String>,
    siblings: &[Sibling],
    at: &Locator,
) -> Result<ServerPlan, Diagnostic> {
    let owner_span = owner.span();
    let owner = owner.into_inner();
    let name = raw.name.get_ref().clone();
    if let Some((key, key_span)) = first_process_key(&raw, true) {
        return Err(at.error(
            key_span.unwrap_or_else(|| owner_span.clone()),
            format!(
                "server `{name}` is served by server `{owner}`'s process (`process = \"{owner}\"`), \
                 so `{key}` belongs to `{owner}`: one process has one command, environment, working \
                 directory, stdin, limits, readiness and exit policy"
            ),
        ));
    }
    if owner == name {
        return Err(at.error(
            owner_span,
            format!(
                "server `{name}` cannot be served by its own process: give it a `command`, or name \
                 the server whose program also listens on its port"
            ),
        ));
    }
    let Some(sibling) = siblings.iter().find(|s| s.name == owner) else {
        let names: Vec<String> = siblings.iter().map(|s| format!("`{}`", s.name)).collect();
        return Err(at.error(
            owner_span,
            format!(
                "no server named `{owner}`; servers in this scenario: {}",
                names.join(", ")
            ),
        ));
    };
    if let Some(theirs) = &sibling.process {
        return Err(at.error(
            owner_span,
            format!(
                "server `{owner}` has no process of its own either (it is served by `{theirs}`'s): \
                 write process = \"{theirs}\""
            ),
        ));
    }
    if sibling.addressed {
        return Err(at.error(
            owner_span,
            format!(
                "server `{owner}` is a running server labrun does not launch (`address`), so it has \
                 no process to serve another port: give server `{name}` an `address` of its own"
            ),
        ));
    }
    if sibling.builtin {
        return Err(at.error(
            owner_span,
            format!(
                "server `{owner}` is a built-in, which listens on one port only; `process` names a \
                 server whose `command` runs a program that serves several ports"
            ),
        ));
    }
    Ok(ServerPlan::without_process(
        name,
        Launch::Process(owner),
        raw.port.unwrap_or_default(),
        DEFAULT_READY_TIMEOUT,
        raw.transport.unwrap_or_default(),
    ))
}

/// Every placeholder in a server's `command` and `env` must be one labrun substitutes, and
/// a program that serves other servers' automatic ports must be given them: otherwise the
/// program would get `{port:nosuch}` literally, or have no way to learn a port.
fn check_placeholders(raw: &RawServer, siblings: &[Sibling], at: &Locator) -> Result<(), Diagnostic> {
    let names: Vec<&str> = siblings.iter().map(|s| s.name.as_str()).collect();
    let command = raw
        .command
        .iter()
        .flat_map(|c| c.get_ref().iter().map(move |arg| (arg, c.span())));
    let env = raw
        .env
        .iter()
        .flat_map(|e| e.get_ref().values().map(move |value| (value, e.span())));
    let texts: Vec<(&String, Range<usize>)> = command.chain(env).collect();
    for (text, within) in &texts {
        if let Some((placeholder, why)) = super::placeholders::first_unknown(text, true, &names, "server") {
            return Err(at.error_within(within.clone(), placeholder, why));
        }
    }
    let addressed = texts.iter().find_map(|(text, within)| {
        let placeholders = super::placeholders::placeholders(text);
        let found = placeholders.into_iter().find(|p| {
            siblings
                .iter()
                .any(|s| s.addressed && p.port_of() == Some(Some(s.name.as_str())))
        })?;
        Some((found.text, within.clone()))
    });
    if let Some((placeholder, within)) = addressed {
        return Err(at.error_within(
            within,
            placeholder,
            format!(
                "`{placeholder}` names a server labrun does not launch (it has an `address`): the \
                 port alone does not say where it is; write its address itself"
            ),
        ));
    }
    let name = raw.name.get_ref();
    let passed = |other: &str| {
        texts.iter().any(|(text, _)| {
            super::placeholders::placeholders(text)
                .iter()
                .any(|p| p.port_of() == Some(Some(other)))
        })
    };
    let unpassed = siblings
        .iter()
        .find(|s| s.process.as_deref() == Some(name.as_str()) && !s.fixed_port && !passed(&s.name));
    if let Some(other) = unpassed {
        let where_ = raw.command.as_ref().map_or(raw.name.span(), toml::Spanned::span);
        return Err(at.error(
            where_,
            format!(
                "server `{}` is served by this program (`process = \"{name}\"`) on an automatic \
                 port, but nothing passes that port to it: add \"{{port:{}}}\" to `command` (or \
                 to `env`), or give `{}` a fixed `port`",
                other.name, other.name, other.name
            ),
        ));
    }
    Ok(())
}

/// `limits = { ... }` of a server or a client program.
pub(super) fn resolve_limits(raw: Option<RawLimits>) -> Limits {
    raw.map(|l| Limits {
        // Rounded up: a limit of "1500ms" must not become one second.
        cpu_seconds: l.cpu.map(|d| d.0.as_secs() + u64::from(d.0.subsec_nanos() > 0)),
        memory_bytes: l.memory.map(|b| b.0),
        processes: l.processes,
        open_files: l.open_files,
        file_size_bytes: l.file_size.map(|b| b.0),
    })
    .unwrap_or_default()
}

fn resolve_ready(raw: Option<RawReady>, at: &Locator) -> Result<(Duration, ReadySignal), Diagnostic> {
    let Some(raw) = raw else {
        return Ok((DEFAULT_READY_TIMEOUT, ReadySignal::Listening));
    };
    let timeout = raw.timeout.map_or(DEFAULT_READY_TIMEOUT, |t| t.0);
    let compiled = |pattern: &toml::Spanned<String>| {
        regex::Regex::new(pattern.get_ref())
            .map_err(|err| at.error(pattern.span(), format!("invalid regular expression: {err}")))
    };
    let signal = match (&raw.stdout, &raw.stderr) {
        (None, None) => ReadySignal::Listening,
        (Some(pattern), None) => ReadySignal::Stdout(compiled(pattern)?),
        (None, Some(pattern)) => ReadySignal::Stderr(compiled(pattern)?),
        (Some(_), Some(pattern)) => {
            return Err(at.error(pattern.span(), "`ready` takes `stdout` or `stderr`, not both"));
        }
    };
    Ok((timeout, signal))
}

fn resolve_group(mut raw: RawClients, servers: &[ServerPlan], at: &Locator) -> Result<GroupPlan, Diagnostic> {
    let name_span = raw.name.span();
    let name = raw.name.get_ref().clone();
    if name.is_empty() || name.contains(char::is_whitespace) {
        return Err(at.error(
            name_span,
            "a client group `name` must be one word, like \"echoers\"",
        ));
    }
    let server = group_server(&raw, &name, name_span.clone(), servers, at)?;
    let server_transport = group_transport(&raw, &name, name_span.clone(), &servers[server], at)?;
    let workload = raw.workload.unwrap_or(WorkloadKind::Echo);
    let (pipeline, half_close, connect) = group_sending(&raw, server_transport, workload, at)?;
    let (count, size, start) = group_shape(&raw, at)?;
    let (messages, texts) = group_messages(raw.messages.take(), workload, at)?;
    let fault = resolve_fault(raw.faulty.take(), raw.fault.take(), count, messages, &name, at)?;
    check_workload_keys(&raw, workload, size, fault.is_some(), name_span.clone(), at)?;
    let (leave_after, leave) = group_leaving(&raw, messages, workload, texts.as_ref(), at)?;
    let reply_timeout = raw
        .timeout
        .as_ref()
        .map_or(DEFAULT_REPLY_TIMEOUT, |t| t.get_ref().0);
    if let Some(zero) = raw.timeout.as_ref().filter(|_| reply_timeout.is_zero()) {
        return Err(at.error(
            zero.span(),
            format!("client group `{name}` has a zero reply `timeout`"),
        ));
    }
    Ok(GroupPlan {
        name,
        server,
        count,
        workload,
        messages,
        texts,
        size,
        payload: raw.payload.unwrap_or_default(),
        think: raw.think.map_or(Duration::ZERO, |t| t.0),
        start,
        reply_timeout,
        fault,
        start_after: raw.start_after.map_or(Duration::ZERO, |d| d.0),
        leave_after,
        leave,
        include_sender: raw.include_sender.is_some_and(toml::Spanned::into_inner),
        load: raw.load.is_some_and(toml::Spanned::into_inner),
        transport: server_transport,
        rate: raw.rate.map(|r| r.into_inner().0),
        rate_ramp: raw.rate_ramp.map_or(Duration::ZERO, |r| r.into_inner().0),
        pipeline,
        connect,
        half_close,
    })
}

/// The server a client group talks to: the one it names, or the only one.
fn group_server(
    raw: &RawClients,
    name: &str,
    name_span: Range<usize>,
    servers: &[ServerPlan],
    at: &Locator,
) -> Result<usize, Diagnostic> {
    Ok(match &raw.server {
        Some(reference) => {
            let wanted = reference.get_ref();
            servers.iter().position(|s| &s.name == wanted).ok_or_else(|| {
                at.error(
                    reference.span(),
                    format!(
                        "no server named `{wanted}`; servers in this scenario: {}",
                        list_names(servers)
                    ),
                )
            })?
        }
        None if servers.len() == 1 => 0,
        None => {
            return Err(at.error(
                name_span,
                format!("client group `{name}` must say which server it talks to (`server = \"...\"`); servers: {}", list_names(servers)),
            ));
        }
    })
}

/// The group's transport, its server's: a group that says another is refused, and so is
/// what a UDP group cannot do.
fn group_transport(
    raw: &RawClients,
    name: &str,
    name_span: Range<usize>,
    server: &ServerPlan,
    at: &Locator,
) -> Result<Transport, Diagnostic> {
    let server_transport = server.transport;
    if let Some(wanted) = &raw.transport
        && *wanted.get_ref() != server_transport
    {
        return Err(at.error(
            wanted.span(),
            format!(
                "client group `{name}` says {} but server `{}` speaks {}",
                wanted.get_ref().label(),
                server.name,
                server_transport.label()
            ),
        ));
    }
    if server_transport == Transport::Udp {
        if raw.workload.is_some_and(|w| w != WorkloadKind::Echo) {
            return Err(at.error(
                name_span,
                format!("client group `{name}`: a UDP server is tested with the echo workload"),
            ));
        }
        if raw.faulty.is_some() || raw.fault.is_some() {
            return Err(at.error(
                name_span,
                format!("client group `{name}`: faulty clients are for TCP servers"),
            ));
        }
        if let Some(size) = &raw.size
            && size.get_ref().max > MAX_DATAGRAM_BODY
        {
            return Err(at.error(
                size.span(),
                format!(
                    "a UDP datagram holds at most 65,507 bytes; with labrun's tag, bodies up to {MAX_DATAGRAM_BODY} bytes"
                ),
            ));
        }
    }
    Ok(server_transport)
}

/// How the group's clients send: the open loop's keys checked, the pipeline depth, whether
/// they half-close, how they connect.
fn group_sending(
    raw: &RawClients,
    server_transport: Transport,
    workload: WorkloadKind,
    at: &Locator,
) -> Result<(u32, bool, ConnectMode), Diagnostic> {
    if let Some(rate) = &raw.rate
        && workload != WorkloadKind::Echo
    {
        return Err(at.error(
            rate.span(),
            "`rate` (open loop) is for echo groups: a chat or broadcast client waits for its turn",
        ));
    }
    if let Some(ramp) = &raw.rate_ramp
        && raw.rate.is_none()
    {
        return Err(at.error(
            ramp.span(),
            "`rate_ramp` ramps an open-loop `rate`; this group has none",
        ));
    }
    let pipeline = match &raw.pipeline {
        None => 1,
        Some(depth) if !(1..=MAX_PIPELINE).contains(depth.get_ref()) => {
            return Err(at.error(
                depth.span(),
                format!("`pipeline` must be from 1 to {MAX_PIPELINE} messages in flight"),
            ));
        }
        Some(depth)
            if *depth.get_ref() > 1
                && (server_transport == Transport::Udp || workload != WorkloadKind::Echo) =>
        {
            return Err(at.error(
                depth.span(),
                "`pipeline` is for echo groups of a TCP server (a UDP open loop already sends without waiting)",
            ));
        }
        Some(depth) if *depth.get_ref() > 1 && raw.think.is_some_and(|t| !t.0.is_zero()) => {
            return Err(at.error(
                depth.span(),
                "`think` pauses between one echo and the next message; with `pipeline` above 1 use `rate` to pace the sending",
            ));
        }
        Some(depth) => *depth.get_ref(),
    };
    let half_close = match &raw.half_close {
        Some(half)
            if *half.get_ref() && (server_transport == Transport::Udp || workload != WorkloadKind::Echo) =>
        {
            return Err(at.error(
                half.span(),
                "`half_close` is for echo groups of a TCP server: it shuts down a connection's sending side",
            ));
        }
        half => half.as_ref().is_some_and(|h| *h.get_ref()),
    };
    let connect = match &raw.connect {
        Some(mode) if server_transport == Transport::Udp => {
            return Err(at.error(
                mode.span(),
                "`connect` paces TCP connects; a UDP server has no connections",
            ));
        }
        Some(mode) => *mode.get_ref(),
        None => ConnectMode::Paced,
    };
    Ok((pipeline, half_close, connect))
}

/// How many clients, how large their messages, and how they start.
fn group_shape(raw: &RawClients, at: &Locator) -> Result<(u32, SizeRange, StartSchedule), Diagnostic> {
    let count = match &raw.count {
        Some(count) if *count.get_ref() == 0 => {
            return Err(at.error(count.span(), "`count` must be at least 1"));
        }
        Some(count) => *count.get_ref(),
        None => 1,
    };
    let size = match &raw.size {
        Some(size) => {
            let range = *size.get_ref();
            if range.min == 0 {
                return Err(at.error(size.span(), "message size must be at least 1 byte"));
            }
            if range.max > MAX_MESSAGE_BYTES {
                return Err(at.error(
                    size.span(),
                    format!("message size is limited to {MAX_MESSAGE_BYTES} bytes (64 MiB)"),
                ));
            }
            range
        }
        None => SizeRange { min: 64, max: 64 },
    };
    let start = match (raw.start.as_ref().map(|s| (s.span(), *s.get_ref())), raw.ramp) {
        (None | Some((_, StartKind::Together)), None) => StartSchedule::Together,
        (None | Some((_, StartKind::Ramp)), Some(ramp)) => StartSchedule::Ramp(ramp.0),
        (Some((span, StartKind::Together)), Some(_)) => {
            return Err(at.error(span, "`start = \"together\"` contradicts `ramp`; remove one"));
        }
        (Some((span, StartKind::Ramp)), None) => {
            return Err(at.error(
                span,
                "`start = \"ramp\"` needs a `ramp` duration, like ramp = \"2s\"",
            ));
        }
    };
    Ok((count, size, start))
}

/// How many messages each client sends, and a chat's texts.
fn group_messages(
    messages: Option<toml::Spanned<MessagesValue>>,
    workload: WorkloadKind,
    at: &Locator,
) -> Result<(u32, Option<Vec<String>>), Diagnostic> {
    Ok(match messages.map(|m| (m.span(), m.into_inner())) {
        Some((span, MessagesValue::Count(n))) if n == 0 || n > MAX_MESSAGES => {
            return Err(at.error(span, format!("`messages` must be from 1 to {MAX_MESSAGES}")));
        }
        Some((_, MessagesValue::Count(n))) => (n, None),
        Some((span, MessagesValue::Texts(texts))) => {
            if workload != WorkloadKind::Chat {
                return Err(at.error(
                    span,
                    format!(
                        "a list of texts is for `workload = \"chat\"`; the {} workload takes a count, like messages = 20",
                        workload.label()
                    ),
                ));
            }
            if texts.is_empty() || texts.len() > MAX_CHAT_TURNS {
                return Err(at.error(span, format!("a chat needs from 1 to {MAX_CHAT_TURNS} messages")));
            }
            if let Some(bad) = texts.iter().find(|t| t.is_empty() || t.contains(['\n', '\r'])) {
                return Err(at.error(
                    span,
                    format!(
                        "chat message {bad:?} must be one non-empty line: the server reads a message per turn"
                    ),
                ));
            }
            (texts.len() as u32, Some(texts))
        }
        None => (10, None),
    })
}

/// Keys of one workload given to a group of another, and what a broadcast group cannot be.
fn check_workload_keys(
    raw: &RawClients,
    workload: WorkloadKind,
    size: SizeRange,
    faulty: bool,
    name_span: Range<usize>,
    at: &Locator,
) -> Result<(), Diagnostic> {
    let broadcast_only = [
        ("leave_after", raw.leave_after.as_ref().map(toml::Spanned::span)),
        (
            "include_sender",
            raw.include_sender.as_ref().map(toml::Spanned::span),
        ),
        ("load", raw.load.as_ref().map(toml::Spanned::span)),
    ];
    if workload != WorkloadKind::Broadcast
        && let Some((key, span)) = broadcast_only.into_iter().find_map(|(k, s)| s.map(|s| (k, s)))
    {
        return Err(at.error(span, format!("`{key}` is for `workload = \"broadcast\"`")));
    }
    if let Some(mode) = &raw.leave
        && workload == WorkloadKind::Echo
    {
        return Err(at.error(
            mode.span(),
            "`leave` is for broadcast members and chat sessions; an echo client that resets is \
             a `fault`",
        ));
    }
    if workload == WorkloadKind::Broadcast {
        if size.max > crate::wire::frame::MAX_BODY_BYTES {
            return Err(at.error(
                name_span,
                format!(
                    "broadcast messages are at most {} bytes, so that one always fits a lab recv(1024) \
                     with its tag; lower `size`",
                    crate::wire::frame::MAX_BODY_BYTES
                ),
            ));
        }
        if raw.payload.is_some_and(|p| p != PayloadKind::Ascii) {
            return Err(at.error(
                name_span,
                "broadcast messages are tagged ASCII text; remove `payload`",
            ));
        }
        if faulty {
            return Err(at.error(name_span, "`faulty` clients are for the echo workload"));
        }
    }
    Ok(())
}

/// When and how a member leaves a room, or a chat session ends without `exit`.
fn group_leaving(
    raw: &RawClients,
    messages: u32,
    workload: WorkloadKind,
    texts: Option<&Vec<String>>,
    at: &Locator,
) -> Result<(Option<u32>, LeaveMode), Diagnostic> {
    let leave_after = match &raw.leave_after {
        Some(n) if *n.get_ref() == 0 || *n.get_ref() > messages => {
            return Err(at.error(
                n.span(),
                format!("`leave_after` must be from 1 to the group's {messages} message(s)"),
            ));
        }
        other => other.as_ref().map(|n| *n.get_ref()),
    };
    let leave = match (&raw.leave, leave_after) {
        (Some(mode), None) if workload == WorkloadKind::Broadcast => {
            return Err(at.error(
                mode.span(),
                "`leave` says how a member leaves the room: it needs `leave_after`",
            ));
        }
        (Some(mode), _)
            if workload == WorkloadKind::Chat
                && texts.is_none_or(|t| t.last().is_some_and(|last| last == "exit")) =>
        {
            return Err(at.error(
                mode.span(),
                "`leave` says how a chat session ends without `exit`: list the messages, \
                 without `exit` last",
            ));
        }
        (mode, _) => mode.as_ref().map_or(LeaveMode::Close, |m| *m.get_ref()),
    };
    Ok((leave_after, leave))
}

/// A broadcast room needs at least two members (three under `load`), one opinion on
/// `include_sender`, and no clients of other workloads mixed in (their bytes would be
/// relayed into the room).
fn check_rooms(
    servers: &[ServerPlan],
    groups: &[GroupPlan],
    span: Range<usize>,
    at: &Locator,
) -> Result<(), Diagnostic> {
    for (index, server) in servers.iter().enumerate() {
        let room: Vec<&GroupPlan> = groups
            .iter()
            .filter(|g| g.server == index && g.workload == WorkloadKind::Broadcast)
            .collect();
        let Some(first) = room.first() else { continue };
        let fail = |message: String| Err(at.error(span.clone(), message));
        if room.iter().map(|g| u64::from(g.count)).sum::<u64>() < 2 {
            return fail(format!(
                "the broadcast room on server `{}` has only 1 client; a broadcast needs at least 2",
                server.name
            ));
        }
        if let Some(loaded) = room.iter().find(|g| g.load)
            && room.iter().map(|g| u64::from(g.count)).sum::<u64>() < 3
        {
            return fail(format!(
                "client group `{}` sets `load`, which needs at least 3 clients in the room on \
                 server `{}`: while one pauses, another must read what the relay takes",
                loaded.name, server.name
            ));
        }
        if let Some(other) = room.iter().find(|g| g.include_sender != first.include_sender) {
            return fail(format!(
                "client groups `{}` and `{}` share server `{}` but disagree on `include_sender`",
                first.name, other.name, server.name
            ));
        }
        if groups
            .iter()
            .any(|g| g.server == index && g.workload != WorkloadKind::Broadcast)
        {
            return fail(format!(
                "server `{}` is a broadcast room; every client group aimed at it must use \
                 workload = \"broadcast\"",
                server.name
            ));
        }
    }
    Ok(())
}

/// A lab chat server talks to one client at a time and answers from its operator's lines,
/// so a chat group is one client of a server with a `stdin` script. Several chat groups of
/// one server are sessions, run one after another in the order they are written, each
/// answered by the lines after those of the sessions before; the lines must cover them all.
fn check_chat(
    group: &GroupPlan,
    servers: &[ServerPlan],
    earlier: &[GroupPlan],
    span: Range<usize>,
    at: &Locator,
) -> Result<(), Diagnostic> {
    let server = &servers[group.server];
    if server.target().is_some() {
        // No operator to type for: refused with its reason once the plan is whole (see
        // `Plan::needs_a_process`), like every other use of a process labrun did not start.
        return Ok(());
    }
    let fail = |message: String| Err(at.error(span.clone(), message));
    if server.stdin.is_none() {
        return fail(format!(
            "chat group `{}` needs its server's operator: give server `{}` a stdin script, \
             stdin = {{ lines = [\"...\", ...] }} or stdin = {{ reply = \"reply {{n}}\" }}",
            group.name, server.name
        ));
    }
    if group.count != 1 {
        return fail(format!(
            "a chat is one client talking to server `{}` (its operator's lines answer one \
             conversation at a time): use count = 1, and one chat group per session",
            server.name
        ));
    }
    if group.fault.is_some() {
        return fail("`faulty` clients are for the echo workload".to_owned());
    }
    if group.payload == PayloadKind::Binary {
        return fail("chat messages are text: use payload = \"ascii\" or \"utf8\"".to_owned());
    }
    if let Some(texts) = &group.texts
        && let Some(position) = texts.iter().position(|t| t == "exit")
        && position + 1 != texts.len()
    {
        return fail(format!(
            "`exit` ends a chat, so it can only be the last message (it is message {} of {})",
            position + 1,
            texts.len()
        ));
    }
    let turns: usize = earlier
        .iter()
        .filter(|g| g.server == group.server && g.workload == WorkloadKind::Chat)
        .chain([group])
        .map(GroupPlan::chat_replies)
        .sum();
    if let Some(StdinScript::Lines(_)) = &server.stdin {
        let lines = server.operator_lines().len();
        if lines < turns {
            return fail(format!(
                "server `{}` has {lines} non-empty operator line(s) but its chat sessions up to \
                 group `{}` expect {turns} replies; add lines or use stdin = {{ reply = \"reply {{n}}\" }}",
                server.name, group.name
            ));
        }
    }
    Ok(())
}

fn resolve_fault(
    faulty: Option<toml::Spanned<u32>>,
    fault: Option<toml::Spanned<RawFault>>,
    count: u32,
    messages: u32,
    group: &str,
    at: &Locator,
) -> Result<Option<FaultPlan>, Diagnostic> {
    match (faulty, fault) {
        (None, None) => Ok(None),
        (Some(faulty), None) => Err(at.error(
            faulty.span(),
            "`faulty` needs `fault = { kind = \"abort\" | \"abort-idle\" | \"abort-in-sendall\" | \"half-close\" | \"garbage\" | \"stall\", after = N }`",
        )),
        (None, Some(fault)) => Err(at.error(
            fault.span(),
            format!("`fault` needs `faulty = N`: how many clients of group `{group}` misbehave"),
        )),
        (Some(faulty), Some(fault)) => {
            let clients = *faulty.get_ref();
            if clients == 0 || clients > count {
                return Err(at.error(
                    faulty.span(),
                    format!("`faulty` must be from 1 to the group's `count` ({count})"),
                ));
            }
            let span = fault.span();
            let RawFault { kind, after } = fault.into_inner();
            let after = after.unwrap_or(1);
            if after > messages {
                return Err(at.error(
                    span,
                    format!(
                        "`after = {after}` is past the group's {messages} message(s); a faulty client \
                         misbehaves after exchanging `after` messages normally"
                    ),
                ));
            }
            Ok(Some(FaultPlan { kind, after, clients }))
        }
    }
}

/// `concurrency` and `survives` probe the servers after the clients are done, so each judged
/// server must still be running then, and concurrency needs overlapping service to judge.
fn check_probe_expectations(
    expect: &RawExpect,
    servers: &[ServerPlan],
    groups: &[GroupPlan],
    at: &Locator,
) -> Result<(), Diagnostic> {
    let keys = [
        expect.concurrency.as_ref().map(|c| ("concurrency", c.span())),
        expect
            .survives
            .as_ref()
            .filter(|s| *s.get_ref())
            .map(|s| ("survives", s.span())),
    ];
    for (key, span) in keys.into_iter().flatten() {
        if let Some(server) = servers.iter().find(|s| s.transport == Transport::Udp) {
            return Err(at.error(
                span,
                format!(
                    "`{key}` probes TCP servers, but server `{}` speaks UDP",
                    server.name
                ),
            ));
        }
        if let Some(server) = servers.iter().find(|s| s.exits == ExitPolicy::AfterClients) {
            return Err(at.error(
                span,
                format!(
                    "`{key}` probes the servers after the clients are done, but server `{}` is \
                     allowed to exit then (exits = \"after-clients\")",
                    server.name
                ),
            ));
        }
    }
    let Some(concurrency) = &expect.concurrency else {
        return Ok(());
    };
    for (index, server) in servers.iter().enumerate() {
        let aimed: Vec<&GroupPlan> = groups.iter().filter(|g| g.server == index).collect();
        let clients: u64 = aimed.iter().map(|g| u64::from(g.count)).sum();
        if clients == 0 {
            continue;
        }
        if clients < 2 {
            return Err(at.error(
                concurrency.span(),
                format!(
                    "concurrency is judged from clients served at the same time, but server `{}` \
                     has only 1 client; give it at least 2 that start together",
                    server.name
                ),
            ));
        }
        if let Some(group) = aimed.iter().find(|g| g.messages < 2) {
            return Err(at.error(
                concurrency.span(),
                format!(
                    "concurrency is judged from each client's service interval (first reply to last), \
                     but client group `{}` sends only 1 message per client; send several, with \
                     `think` time, so that service intervals can overlap",
                    group.name
                ),
            ));
        }
    }
    Ok(())
}

fn resolve_expect(raw: Option<RawExpect>, at: &Locator) -> Result<Expectations, Diagnostic> {
    let Some(raw) = raw else {
        return Ok(Expectations {
            echo: EchoExpectation::Exact,
            max_errors: 0,
            latency: Vec::new(),
            min_msgs_per_sec: None,
            max_error_rate: None,
            concurrency: None,
            survives: false,
            reaps: false,
            fanout: FanoutExpectation::ExactlyOnce,
            max_loss: None,
        });
    };
    let mut latency = Vec::new();
    for (view, table) in [
        (LatencyView::Rtt, raw.latency),
        (LatencyView::Wait, raw.wait),
        (LatencyView::Connect, raw.connect),
        (LatencyView::Fanout, raw.fanout_latency),
    ] {
        let mut bounds = Vec::new();
        for (key, limit) in table
            .map(toml::Spanned::into_inner)
            .map(|t| t.0)
            .unwrap_or_default()
        {
            let written: Vec<(String, Range<usize>, DurationValue)> = match limit {
                RawLimit::Limit(limit) => vec![(key.get_ref().clone(), key.span(), limit)],
                RawLimit::Decimals(decimals) => decimals
                    .into_iter()
                    .map(|(decimal, limit)| {
                        let span = key.span().start..decimal.span().end;
                        (format!("{}.{}", key.get_ref(), decimal.get_ref()), span, limit)
                    })
                    .collect(),
            };
            for (text, span, limit) in written {
                let percentile = text.parse::<Percentile>().map_err(|why| at.error(span, why))?;
                bounds.push(LatencyBound {
                    view,
                    percentile,
                    limit: limit.0,
                });
            }
        }
        // In the order of the distribution (p50 before p99 before max), whatever the file's.
        bounds.sort_by(|a, b| a.percentile.quantile().total_cmp(&b.percentile.quantile()));
        latency.extend(bounds);
    }
    Ok(Expectations {
        echo: raw.echo.unwrap_or_default(),
        max_errors: raw.errors.unwrap_or(0),
        latency,
        min_msgs_per_sec: raw.msgs_per_sec.map(|m| m.0),
        max_error_rate: raw.error_rate.map(|r| r.0),
        concurrency: raw.concurrency.map(toml::Spanned::into_inner),
        survives: raw.survives.is_some_and(toml::Spanned::into_inner),
        reaps: raw.reaps.is_some_and(toml::Spanned::into_inner),
        fanout: raw.fanout.unwrap_or_default(),
        max_loss: raw.loss.map(|l| l.0),
    })
}

fn list_names(servers: &[ServerPlan]) -> String {
    servers
        .iter()
        .map(|s| format!("`{}`", s.name))
        .collect::<Vec<_>>()
        .join(", ")
}
