//! Judging a run: client records, figures and server ends in; checks and findings out.
//!
//! Pure functions, no I/O. A *check* is one line of the verdict (PASS/FAIL and why); a
//! *finding* is one concrete thing that went wrong (which client, which message, when, what
//! was expected and seen) with a hint in the lab's terms. A wrong server yields findings and
//! exit 1; it is never an `Error`, which is reserved for labrun being unable to do its job.

pub mod chat;
pub mod concurrency;
pub mod datagrams;
pub mod fanout;
pub mod program;

use serde::Serialize;

use crate::metrics::GroupFigures;
use crate::scenario::{
    EchoExpectation, ExitPolicy, FanoutExpectation, LatencyView, Plan, ServersUnderTest, Transport,
    UnderTest, WorkloadKind,
};
use crate::supervise::{Children, EventRecord, ServerEnd};
use crate::units;
use crate::wire::stream::{EchoFault, StreamEnd};
use crate::workload::probe::ProbeOutcome;
use crate::workload::{ClientEnd, ClientErrorKind, ClientRecord};
use concurrency::ServerConcurrency;

/// One verdict line.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// Short stable name, such as `echo` or `latency rtt p99`.
    pub name: String,
    /// Whether it held.
    pub passed: bool,
    /// The figure or the first failure, in one line.
    pub summary: String,
}

/// One concrete thing that went wrong.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    /// The check it belongs to.
    pub check: String,
    /// The fault class: `corrupted`, `truncated`, `missing`, `extra`, `connect`, `reset`, ….
    pub class: String,
    /// The client it happened to (`group#n`, 1-based), if any.
    pub client: Option<String>,
    /// The message (1-based), if any.
    pub message: Option<u32>,
    /// Milliseconds since the start of the run.
    pub at_ms: Option<f64>,
    /// What was expected and what was seen.
    pub text: String,
    /// What usually causes it, in the lab's terms.
    pub hint: &'static str,
}

impl Finding {
    /// A finding about the run as a whole (a server, a room), not one client's message.
    pub fn whole_run(check: &str, class: &str, text: String, hint: &'static str) -> Finding {
        Finding {
            check: check.to_owned(),
            class: class.to_owned(),
            client: None,
            message: None,
            at_ms: None,
            text,
            hint,
        }
    }
}

/// The judgement of a run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Verdict {
    /// Verdict lines in a stable order.
    pub checks: Vec<Check>,
    /// Everything that went wrong: findings about whole servers first, then per client.
    pub findings: Vec<Finding>,
}

impl Verdict {
    /// Whether every check held.
    pub fn passed(&self) -> bool {
        self.checks.iter().all(|c| c.passed)
    }
}

/// What the judgement is based on.
pub struct Evidence<'a> {
    /// The plan, for expectations.
    pub plan: &'a Plan,
    /// The servers and client groups of the plan, for names.
    pub under_test: &'a ServersUnderTest,
    /// Every client's record.
    pub records: &'a [ClientRecord],
    /// Figures per group, indexed like `ServersUnderTest::groups`.
    pub groups: &'a [GroupFigures],
    /// Figures over all groups (errors and latencies merged).
    pub total: &'a GroupFigures,
    /// How each server ended.
    pub servers: &'a [ServerEnd],
    /// Concurrency of each server that had clients.
    pub concurrency: &'a [ServerConcurrency],
    /// The survival probe of each server, when `expect.survives` asked for it.
    pub survival: &'a [Survival],
    /// The ledger of each broadcast room.
    pub rooms: &'a [crate::workload::room::RoomOutcome],
    /// What the scenario's events did, in order.
    pub events: &'a [EventRecord],
}

/// What the survival probe found for one server.
#[derive(Debug, Clone, Serialize)]
pub struct Survival {
    pub server: String,
    /// What the fresh client saw.
    #[serde(flatten)]
    pub outcome: ProbeOutcome,
}

/// Evaluates every expectation of the plan.
pub fn evaluate(evidence: &Evidence) -> Verdict {
    let mut verdict = Verdict::default();
    let runs = |kind| evidence.under_test.drives_tcp(kind);
    if evidence.plan.expect.echo == EchoExpectation::Exact && runs(WorkloadKind::Echo) {
        check_echo(evidence, &mut verdict);
    }
    datagrams::check(evidence, &mut verdict);
    if runs(WorkloadKind::Chat) {
        chat::check(evidence, &mut verdict);
    }
    fanout::check(evidence, &mut verdict);
    check_errors(evidence, &mut verdict);
    check_latency(evidence, &mut verdict);
    check_throughput(evidence, &mut verdict);
    check_isolation(evidence, &mut verdict);
    check_independence(evidence, &mut verdict);
    if let Some(expected) = evidence.plan.expect.concurrency {
        for server in evidence.concurrency {
            let name = per_server("concurrency", &server.server, evidence.under_test);
            let others_failed = verdict.checks.iter().any(|c| !c.passed);
            let (check, finding) = concurrency::judge(expected, server, &name, others_failed);
            verdict.checks.push(check);
            verdict.findings.extend(finding);
        }
    }
    check_servers(evidence, &mut verdict);
    check_survival(evidence, &mut verdict);
    // Findings about a whole server say what kind of bug it is; the per-client ones that
    // follow are its symptoms.
    verdict.findings.sort_by_key(|f| f.client.is_some());
    verdict
}

/// The names of the checks a run of `plan` can have, in the order they are judged: what a
/// grading suite may name in `requires`, `weights` and `feedback`. A run never has others
/// (the suite checks every shipped scenario's reports against this); it may have fewer (a
/// server that died is not probed).
pub fn possible_checks(plan: &Plan) -> Vec<String> {
    let under_test = match &plan.under_test {
        UnderTest::ClientPrograms(programs) => return program::possible_checks(programs),
        UnderTest::Servers(servers) => servers,
    };
    let expect = &plan.expect;
    let groups = &under_test.groups;
    let tcp = |kind| under_test.drives_tcp(kind);
    let per = |check: &str, server: &str| per_server(check, server, under_test);
    let mut names: Vec<String> = Vec::new();
    if expect.echo == EchoExpectation::Exact && tcp(WorkloadKind::Echo) {
        names.push("echo".into());
    }
    if groups.iter().any(|g| g.transport == Transport::Udp) {
        names.push("datagrams".into());
        names.extend(expect.max_loss.map(|_| "loss".to_owned()));
    }
    if tcp(WorkloadKind::Chat) {
        names.push("chat".into());
    }
    let serves =
        |index: usize, kind: WorkloadKind| groups.iter().any(|g| g.server == index && g.workload == kind);
    if expect.fanout != FanoutExpectation::Ignore {
        for (index, server) in under_test.servers.iter().enumerate() {
            if serves(index, WorkloadKind::Broadcast) {
                names.push(per("fanout", &server.name));
            }
        }
    }
    names.push("errors".into());
    names.extend(expect.max_error_rate.map(|_| "error rate".to_owned()));
    for bound in &expect.latency {
        names.push(format!(
            "latency {} {}",
            bound.view.label(),
            bound.percentile.label()
        ));
    }
    names.extend(expect.min_msgs_per_sec.map(|_| "throughput".to_owned()));
    if groups.iter().any(|g| g.fault.is_some()) {
        names.push("isolation".into());
    }
    if !under_test.events.is_empty() {
        names.push("independence".into());
    }
    for (index, server) in under_test.servers.iter().enumerate() {
        if expect.concurrency.is_some() && under_test.clients_of(index) > 0 {
            names.push(per("concurrency", &server.name));
        }
    }
    for server in &under_test.servers {
        names.push(format!("server {}", server.name));
        if expect.reaps {
            names.push(per("reaps", &server.name));
        }
    }
    if expect.survives {
        names.extend(under_test.servers.iter().map(|s| per("survives", &s.name)));
    }
    names
}

/// `check` alone with one server, `check NAME` with several.
pub fn per_server(check: &str, server: &str, under_test: &ServersUnderTest) -> String {
    if under_test.servers.len() == 1 {
        check.to_owned()
    } else {
        format!("{check} {server}")
    }
}

/// With events in the scenario: did the clients of the servers left alone carry on?
fn check_independence(evidence: &Evidence, verdict: &mut Verdict) {
    if evidence.events.is_empty() {
        return;
    }
    let touched: Vec<&str> = evidence.events.iter().map(|e| e.server.as_str()).collect();
    let server_of = |r: &ClientRecord| {
        evidence.under_test.servers[evidence.under_test.groups[r.group].server]
            .name
            .as_str()
    };
    let (theirs, others): (Vec<&ClientRecord>, Vec<&ClientRecord>) = evidence
        .records
        .iter()
        .partition(|r| touched.contains(&server_of(r)));
    let affected: Vec<&&ClientRecord> = others
        .iter()
        .filter(|r| {
            matches!(
                r.end,
                ClientEnd::EchoFault(_) | ClientEnd::Failed(_) | ClientEnd::ChatFault(_)
            )
        })
        .collect();
    let cut = theirs.iter().filter(|r| cut_off(evidence, r)).count();
    let what: Vec<String> = evidence
        .events
        .iter()
        .map(|e| {
            format!(
                "{} of `{}` at {}",
                e.action,
                e.server,
                units::micros((e.at_ms * 1000.0) as u64)
            )
        })
        .collect();
    let what = what.join(", ");
    let failed_events: Vec<String> = evidence
        .events
        .iter()
        .filter(|e| !e.ok)
        .map(|e| format!("{} of `{}`: {}", e.action, e.server, e.outcome))
        .collect();
    let summary = if let Some(first) = affected.first() {
        format!(
            "{} of {} clients of the other servers were affected by the {what}; first: {}",
            affected.len(),
            others.len(),
            client_name(evidence.under_test, first)
        )
    } else if !failed_events.is_empty() {
        format!("an event did not do what it should: {}", failed_events.join("; "))
    } else {
        format!(
            "{} clients of the other servers carried on through the {what}; {cut} of its own clients were cut off by it",
            others.len()
        )
    };
    let passed = affected.is_empty() && failed_events.is_empty();
    if !affected.is_empty() {
        verdict.findings.push(Finding {
            check: "independence".into(),
            class: "independence".into(),
            client: None,
            message: None,
            at_ms: None,
            text: summary.clone(),
            hint: "independent servers share nothing: one stopping must not disturb the other's \
                   clients (separate sockets, threads and state; no shared lock held across a client)",
        });
    }
    verdict.checks.push(Check {
        name: "independence".into(),
        passed,
        summary,
    });
}

/// With faulty clients in the scenario: were the well-behaved ones left alone?
fn check_isolation(evidence: &Evidence, verdict: &mut Verdict) {
    let faults: Vec<String> = evidence
        .under_test
        .groups
        .iter()
        .filter_map(|g| g.fault.map(|f| format!("{} {f}", f.clients)))
        .collect();
    if faults.is_empty() {
        return;
    }
    let well_behaved: Vec<&ClientRecord> = evidence.records.iter().filter(|r| r.fault.is_none()).collect();
    // A client cut off by a scenario event was affected by the event, not by a faulty client.
    let affected: Vec<&&ClientRecord> = well_behaved
        .iter()
        .filter(|r| matches!(r.end, ClientEnd::EchoFault(_) | ClientEnd::Failed(_)) && !cut_off(evidence, r))
        .collect();
    let faulty = evidence.records.len() - well_behaved.len();
    let cause = format!("{faulty} faulty ({})", faults.join(", "));
    let summary = match affected.first() {
        None => format!(
            "{} well-behaved clients unaffected by {cause}",
            well_behaved.len()
        ),
        Some(first) => format!(
            "{} of {} well-behaved clients were affected by {cause}; first: {}",
            affected.len(),
            well_behaved.len(),
            client_name(evidence.under_test, first)
        ),
    };
    if !affected.is_empty() {
        verdict.findings.push(Finding {
            check: "isolation".into(),
            class: "isolation".into(),
            client: None,
            message: None,
            at_ms: None,
            text: summary.clone(),
            hint: "one client misbehaving must not affect the others: give each client its own \
                   thread and handle that client's errors (ConnectionResetError, \
                   UnicodeDecodeError, b'') inside its handler, closing only its socket",
        });
    }
    verdict.checks.push(Check {
        name: "isolation".into(),
        passed: affected.is_empty(),
        summary,
    });
}

fn check_survival(evidence: &Evidence, verdict: &mut Verdict) {
    for survival in evidence.survival {
        let name = per_server("survives", &survival.server, evidence.under_test);
        if !survival.outcome.served {
            verdict.findings.push(Finding {
                check: name.clone(),
                class: "survival".into(),
                client: None,
                message: None,
                at_ms: None,
                text: format!("server `{}`: {}", survival.server, survival.outcome.detail),
                hint: "after the run's clients, faulty ones included, the server must still accept and \
                       serve a new client: keep the accept loop running and handle each client's \
                       errors in its own handler",
            });
        }
        verdict.checks.push(Check {
            name,
            passed: survival.outcome.served,
            summary: survival.outcome.detail.clone(),
        });
    }
}

/// `group#n`, 1-based, as clients are named everywhere.
pub fn client_name(under_test: &ServersUnderTest, record: &ClientRecord) -> String {
    format!("{}#{}", under_test.groups[record.group].name, record.index + 1)
}

/// When the client left, in milliseconds since the start of the run.
pub fn at_ms(record: &ClientRecord) -> Option<f64> {
    record.timeline.closed.map(|t| t.as_secs_f64() * 1000.0)
}

/// Whether `record` was cut off by a scenario event that stopped, killed or restarted its
/// server: its session failed after the event, which is what the scenario asked for.
pub fn cut_off(evidence: &Evidence, record: &ClientRecord) -> bool {
    if !matches!(
        record.end,
        ClientEnd::EchoFault(_) | ClientEnd::Failed(_) | ClientEnd::ChatFault(_)
    ) {
        return false;
    }
    let server = &evidence.under_test.servers[evidence.under_test.groups[record.group].server].name;
    let ended_ms = at_ms(record).unwrap_or(f64::MAX);
    evidence
        .events
        .iter()
        .any(|event| &event.server == server && event.at_ms <= ended_ms)
}

fn check_echo(evidence: &Evidence, verdict: &mut Verdict) {
    // TCP echo groups only: chats, rooms and UDP clients have checks of their own.
    let groups = &evidence.under_test.groups;
    let is_tcp_echo =
        |g: usize| groups[g].workload == WorkloadKind::Echo && groups[g].transport == Transport::Tcp;
    let records: Vec<&ClientRecord> = evidence.records.iter().filter(|r| is_tcp_echo(r.group)).collect();
    let groups: Vec<&GroupFigures> = evidence
        .groups
        .iter()
        .enumerate()
        .filter(|(g, _)| is_tcp_echo(*g))
        .map(|(_, figures)| figures)
        .collect();
    let mut faulty = 0usize;
    for record in records.iter().copied().filter(|r| !cut_off(evidence, r)) {
        if let ClientEnd::EchoFault(fault) = &record.end {
            faulty += 1;
            verdict.findings.push(Finding {
                check: "echo".into(),
                class: fault.class().into(),
                client: Some(client_name(evidence.under_test, record)),
                message: fault.message().map(|m| m + 1),
                at_ms: at_ms(record),
                text: fault.to_string(),
                hint: echo_hint(fault),
            });
        }
    }
    let clients = records.len();
    let summary = if faulty == 0 {
        let messages: u64 = groups.iter().map(|g| g.messages).sum();
        let bytes: u64 = groups.iter().map(|g| g.bytes_received).sum();
        let verified: u64 = groups.iter().map(|g| u64::from(g.clients_completed)).sum();
        let misbehaved: u64 = groups.iter().map(|g| u64::from(g.clients_misbehaved)).sum();
        let cut = records.iter().filter(|r| cut_off(evidence, r)).count() as u64;
        let unverified = (clients as u64).saturating_sub(verified + misbehaved + cut);
        let mut others = Vec::new();
        if unverified > 0 {
            others.push(format!("{unverified} more did not finish; see errors"));
        }
        if cut > 0 {
            others.push(format!("{cut} cut off by the scenario's events"));
        }
        if misbehaved > 0 {
            others.push(format!("{misbehaved} faulty ones misbehaved as planned"));
        }
        let others = match others.is_empty() {
            true => String::new(),
            false => format!(" ({})", others.join("; ")),
        };
        format!(
            "{} messages ({}) echoed byte-exact to {} clients{others}",
            units::count(messages),
            units::bytes(bytes),
            units::count(verified)
        )
    } else {
        let first = verdict
            .findings
            .iter()
            .find(|f| f.check == "echo")
            .expect("a fault was recorded");
        format!(
            "{faulty} of {clients} clients got a wrong echo; first: {} {}",
            first.client.as_deref().unwrap_or("?"),
            first.text
        )
    };
    verdict.checks.push(Check {
        name: "echo".into(),
        passed: faulty == 0,
        summary,
    });
}

/// A server check that fails because the server no longer listens: its finding, and the
/// check's result.
fn stopped_listening(verdict: &mut Verdict, check: &str, text: String, hint: &'static str) -> (bool, String) {
    verdict.findings.push(Finding {
        check: check.to_owned(),
        class: "stopped-listening".into(),
        client: None,
        message: None,
        at_ms: None,
        text: text.clone(),
        hint,
    });
    (false, text)
}

fn echo_hint(fault: &EchoFault) -> &'static str {
    match fault {
        EchoFault::Corrupted { .. } => {
            "the echo differs from what was sent: send back exactly the bytes recv() returned \
             (no decode/encode per chunk, no strip(), no added text)"
        }
        EchoFault::Skipped { .. } => {
            "part of the data never came back but what followed it did: send() may write only \
             part of a buffer (it returns how much), so reply with sendall(); a strip() or a \
             decode that drops bytes does the same"
        }
        EchoFault::Truncated {
            end: StreamEnd::Reset,
            ..
        }
        | EchoFault::Missing {
            end: StreamEnd::Reset,
            ..
        } => {
            "the server reset the connection mid-echo: it closed the socket with data still \
             unread, or crashed; a handler must keep calling recv() until it returns b''"
        }
        EchoFault::Truncated {
            end: StreamEnd::TooSlow { .. },
            ..
        } => {
            "the reply came too slowly: the whole echo must arrive within the reply `timeout`; \
             does the server send byte by byte, sleep, or wait for more input between sends?"
        }
        EchoFault::Truncated { .. } => {
            "only part of the message came back: one recv(1024) is not a whole message; keep \
             receiving until recv() returns b'' and reply with sendall(), not send()"
        }
        EchoFault::Missing {
            end: StreamEnd::Closed,
            ..
        } => {
            "the server closed the connection without echoing: does it close right after \
             accept(), or end its handler (or crash) before replying?"
        }
        EchoFault::Missing { .. } => {
            "no reply within the reply timeout: is the server blocked waiting for more input, stuck \
             with a client it never leaves, or did it stop reading this connection?"
        }
        EchoFault::Extra { .. } => {
            "the server sent bytes nobody sent it: a reply sent twice, or text added to the echo"
        }
        EchoFault::Unsolicited { .. } => {
            "an echo server sends only what it received: something writes to the connection \
             without reading first (a loop around send(), a greeting, output meant for print())"
        }
    }
}

/// For a client still queued at the run's deadline.
const NOT_SERVED_HINT: &str = "the client was still queued when the run ended: an iterative server \
     serves one client at a time, so later clients wait for every earlier one to leave; give the \
     run a longer `timeout`, fewer clients or messages, or make the server concurrent";
/// For a client a concurrent server never answered while it served others.
const NEVER_ANSWERED_HINT: &str = "the server kept serving other clients but never answered this \
     one: did the thread or handler for this connection die or block, or was it never started?";

fn error_hint(kind: ClientErrorKind) -> &'static str {
    match kind {
        ClientErrorKind::Connect => {
            "the connection was not accepted: is the server still listening, and is its listen() \
             backlog large enough for clients arriving together?"
        }
        ClientErrorKind::Io => "the socket failed in an unusual way; see the error text",
        ClientErrorKind::Join => {
            "the client's join marker was not relayed to every other member (or theirs to it) \
             in time: does the server relay each message to all other clients?"
        }
        ClientErrorKind::NotServed => NOT_SERVED_HINT,
        ClientErrorKind::Dropped => {
            "the server ended the connection while the client still had messages to send: serve \
             each client until it closes (recv() in a loop until it returns b''); an exception in \
             the handler, or a close() after one reply, does this"
        }
        ClientErrorKind::KeptOpen => {
            "recv() returning b'' means the client has finished sending: answer what is owed, \
             then close the connection (a loop that ignores b'' spins at full CPU and never \
             closes)"
        }
        ClientErrorKind::Deadline => {
            "the run took longer than the scenario's `timeout`: the server is too slow, serves \
             clients one at a time, or stopped answering"
        }
    }
}

/// Who a client that was never served waited behind: the clients of its server that were
/// being served while it waited, as the text to append to its finding.
fn queued_behind(evidence: &Evidence, waiting: &ClientRecord) -> (String, &'static str) {
    // A client that never got past the pacer has no first send: it waited from the start.
    let from = waiting.timeline.first_send.unwrap_or_default();
    let Some(until) = waiting.timeline.closed else {
        return (String::new(), NOT_SERVED_HINT);
    };
    let server = evidence.under_test.groups[waiting.group].server;
    let served: Vec<String> = evidence
        .records
        .iter()
        .filter(|other| evidence.under_test.groups[other.group].server == server)
        .filter(|other| {
            let t = &other.timeline;
            match (t.first_reply, t.last_reply.or(t.closed)) {
                (Some(start), Some(end)) => start < until && end > from,
                _ => false,
            }
        })
        .map(|other| client_name(evidence.under_test, other))
        .collect();
    match served.len() {
        0 => (
            "; the server answered nobody meanwhile".to_owned(),
            NOT_SERVED_HINT,
        ),
        n => {
            let mut names = served.iter().take(6).cloned().collect::<Vec<_>>().join(", ");
            if n > 6 {
                names.push_str(&format!(" and {} more", n - 6));
            }
            let server_name = &evidence.under_test.servers[server].name;
            let iterative = evidence.concurrency.iter().any(|c| {
                &c.server == server_name && c.overlap.verdict == concurrency::ConcurrencyVerdict::Iterative
            });
            match iterative {
                true => (
                    format!(
                        "; queued behind {names} (served meanwhile; an iterative server serves one \
                         client at a time)"
                    ),
                    NOT_SERVED_HINT,
                ),
                false => (
                    format!("; the server served {names} meanwhile but never this client"),
                    NEVER_ANSWERED_HINT,
                ),
            }
        }
    }
}

fn check_errors(evidence: &Evidence, verdict: &mut Verdict) {
    let mut by_kind: std::collections::BTreeMap<ClientErrorKind, u64> = std::collections::BTreeMap::new();
    for record in evidence.records.iter().filter(|r| !cut_off(evidence, r)) {
        if let ClientEnd::Failed(error) = &record.end {
            *by_kind.entry(error.kind).or_default() += 1;
            let (text, hint) = match error.kind {
                ClientErrorKind::NotServed => {
                    let (behind, hint) = queued_behind(evidence, record);
                    (format!("{error}{behind}"), hint)
                }
                _ => (error.to_string(), error_hint(error.kind)),
            };
            verdict.findings.push(Finding {
                check: "errors".into(),
                class: error.kind.label().into(),
                client: Some(client_name(evidence.under_test, record)),
                message: error.message.map(|m| m + 1),
                at_ms: at_ms(record),
                text,
                hint,
            });
        }
    }
    let total: u64 = by_kind.values().sum();
    let allowed = evidence.plan.expect.max_errors;
    let breakdown: Vec<String> = by_kind
        .iter()
        .map(|(k, n)| format!("{n} {}", k.label()))
        .collect();
    let summary = match total {
        0 => format!("no connection errors (allowed {allowed})"),
        _ => format!(
            "{total} connection errors (allowed {allowed}): {}",
            breakdown.join(", ")
        ),
    };
    verdict.checks.push(Check {
        name: "errors".into(),
        passed: total <= allowed,
        summary,
    });
    if let Some(rate) = evidence.plan.expect.max_error_rate {
        let clients = evidence.records.len().max(1) as f64;
        let share = total as f64 / clients;
        verdict.checks.push(Check {
            name: "error rate".into(),
            passed: share <= rate,
            summary: format!(
                "{:.2}% of {} clients ended in an error ({} {:.2}%)",
                share * 100.0,
                units::count(evidence.records.len() as u64),
                if share <= rate { "≤" } else { ">" },
                rate * 100.0
            ),
        });
    }
}

fn check_latency(evidence: &Evidence, verdict: &mut Verdict) {
    for bound in &evidence.plan.expect.latency {
        let name = format!("latency {} {}", bound.view.label(), bound.percentile.label());
        let limit = units::duration(bound.limit);
        let latency = evidence.total.latency.view(bound.view);
        let (passed, summary) = match latency.quantile(bound.percentile.quantile()) {
            Some(value) => (
                value <= bound.limit,
                format!(
                    "{} {} {limit}",
                    units::duration(value),
                    if value <= bound.limit { "≤" } else { ">" }
                ),
            ),
            None => (false, no_samples(bound.view).to_owned()),
        };
        verdict.checks.push(Check {
            name,
            passed,
            summary,
        });
    }
}

fn no_samples(view: LatencyView) -> &'static str {
    match view {
        LatencyView::Rtt => {
            "no round trips measured: each connection's first message counts as wait, so send at \
             least 2 messages per client"
        }
        LatencyView::Wait => "no client sent a message, so there is no wait to judge",
        LatencyView::Connect => "no client connected",
        LatencyView::Fanout => "no broadcast delivery was measured",
    }
}

/// `expect.msgs_per_sec`: messages over the whole run's active time.
fn check_throughput(evidence: &Evidence, verdict: &mut Verdict) {
    let Some(minimum) = evidence.plan.expect.min_msgs_per_sec else {
        return;
    };
    let rate = evidence.total.messages_per_second();
    verdict.checks.push(Check {
        name: "throughput".into(),
        passed: rate >= minimum,
        summary: format!(
            "{} msgs/s {} {} msgs/s",
            units::count(rate.round() as u64),
            if rate >= minimum { "≥" } else { "<" },
            units::count(minimum.round() as u64)
        ),
    });
}

/// The limits of a server's cgroups that its processes ran into: the finding's class, its
/// text and the hint.
fn limits_reached(server: &ServerEnd) -> Vec<(&'static str, String, &'static str)> {
    let mut reached = Vec::new();
    if let Some(usage) = server.process_limit.filter(|usage| usage.refused_forks > 0) {
        reached.push((
            "process-limit",
            format!(
                "server `{}` reached its process limit ({}): the kernel refused {} fork{}",
                server.name,
                usage.limit,
                units::count(usage.refused_forks),
                units::plural(usage.refused_forks)
            ),
            "a server forks (or starts a thread) per client, not in a loop: a fork that forks \
             again is a fork bomb, and children that are never waited for pile up as zombies",
        ));
    }
    if let Some(usage) = server.memory_limit.filter(|usage| usage.oom_kills > 0) {
        reached.push((
            "memory-limit",
            format!(
                "server `{}` reached its memory limit ({} for all its processes together): the \
                 kernel killed {} of its processes",
                server.name,
                units::bytes(usage.limit_bytes),
                units::count(usage.oom_kills)
            ),
            "memory grows with what a server keeps: read and send in bounded chunks \
             (recv(1024) in a loop), and forget a client's buffers and thread when it leaves",
        ));
    }
    if let Some(usage) = server.cpu_limit.filter(|usage| usage.stopped) {
        reached.push((
            "cpu-limit",
            format!(
                "server `{}` used its CPU limit ({} s for all its processes together) and was \
                 stopped",
                server.name, usage.limit_seconds
            ),
            "a server waits in accept() and recv(), which costs no CPU: a loop that polls, \
             spins or computes per message burns the time every client shares",
        ));
    }
    if let Some(usage) = &server.disk_limit {
        let mut evidence: Vec<String> = usage
            .full
            .iter()
            .map(|space| format!("{space} was full when it was stopped"))
            .collect();
        evidence.extend(
            usage
                .said
                .iter()
                .map(|words| format!("it said \u{201c}{words}\u{201d}")),
        );
        reached.push((
            "disk-limit",
            format!(
                "server `{}` ran out of the space it may write: {}",
                server.name,
                evidence.join("; ")
            ),
            "a server writes what it must (a log line per client at most), never something that \
             grows with the traffic: a sandboxed program has a bounded working directory, /tmp \
             and /dev/shm",
        ));
    }
    reached
}

/// How a launched server ended against its `exits` policy: its check's verdict and
/// summary, with a finding when it ended when it must not have.
fn judge_exit(
    plan: &crate::scenario::ServerPlan,
    server: &ServerEnd,
    name: &str,
    verdict: &mut Verdict,
) -> (bool, String) {
    match (server.exited_during_run, plan.exits) {
        (None, ExitPolicy::Never) if server.still_listening => {
            (true, "stayed up for the whole run".to_owned())
        }
        (None, ExitPolicy::Never) => stopped_listening(
            verdict,
            name,
            format!(
                "server `{}` stopped listening on its port during the run",
                server.name
            ),
            "the listening socket was closed while the program kept running: new clients can \
             no longer connect",
        ),
        (None, ExitPolicy::AfterClients) => (true, "stayed up (it was allowed to exit)".to_owned()),
        (Some(status), ExitPolicy::AfterClients) if status.code == Some(0) => (
            true,
            "exited with status 0 after its clients, as allowed".to_owned(),
        ),
        (Some(status), policy) => {
            let text = format!("server `{}` {status} during the run", server.name);
            let hint = match policy {
                ExitPolicy::Never => {
                    "a server must keep running between clients: catch per-client errors \
                     (ConnectionResetError, BrokenPipeError) instead of letting them end the \
                     program; if it is meant to exit after its client, set exits = \"after-clients\""
                }
                ExitPolicy::AfterClients => {
                    "the server may end after its clients, but only cleanly (status 0): read its \
                     last output for the error"
                }
            };
            verdict.findings.push(Finding {
                check: name.to_owned(),
                class: "server-exit".into(),
                client: None,
                message: None,
                at_ms: None,
                text: if server.output_tail.is_empty() {
                    text.clone()
                } else {
                    format!("{text}; its last output:\n{}", server.output_tail)
                },
                hint,
            });
            (false, text)
        }
    }
}

fn check_servers(evidence: &Evidence, verdict: &mut Verdict) {
    for (plan, server) in evidence.under_test.servers.iter().zip(evidence.servers) {
        let name = format!("server {}", server.name);
        if let Some(event) = &server.stopped_by_event {
            verdict.checks.push(Check {
                name,
                passed: true,
                summary: format!("stopped by the scenario ({event}), as planned"),
            });
            continue;
        }
        // A server served by another's process ended with it: the exit is one finding, the
        // process's, under that server's check; this one only points there.
        if let (Some(process), Some(status)) = (&server.process_of, server.exited_during_run) {
            let owner = evidence.under_test.servers.iter().find(|s| s.name == *process);
            let allowed =
                owner.is_some_and(|o| o.exits == ExitPolicy::AfterClients) && status.code == Some(0);
            verdict.checks.push(Check {
                name,
                passed: allowed,
                summary: match allowed {
                    true => format!(
                        "served by server `{process}`'s process, which {status} after its clients, as allowed"
                    ),
                    false => format!(
                        "served by server `{process}`'s process, which {status} during the run (see server {process})"
                    ),
                },
            });
            continue;
        }
        if let Some(target) = &server.addressed {
            // Not launched: no exit status to read, only whether it still answers.
            let (passed, summary) = match server.still_listening {
                true => (true, format!("still answered at {target} after the run")),
                false => stopped_listening(
                    verdict,
                    &name,
                    format!(
                        "server `{}` no longer answered at {target} after the run",
                        server.name
                    ),
                    "the server stopped accepting connections during the run: it crashed, or \
                     closed its listening socket (labrun did not launch it, so its exit status \
                     and output are for you to read where it runs)",
                ),
            };
            verdict.checks.push(Check {
                name,
                passed,
                summary,
            });
            continue;
        }
        let (passed, summary) = judge_exit(plan, server, &name, verdict);
        let mut passed = passed;
        let mut summary = summary;
        for (class, text, hint) in limits_reached(server) {
            summary = if passed {
                text.clone()
            } else {
                format!("{summary}; {text}")
            };
            passed = false;
            verdict
                .findings
                .push(Finding::whole_run(&name, class, text, hint));
        }
        verdict.checks.push(Check {
            name,
            passed,
            summary,
        });
        if let Some(children) = &server.children {
            check_children(evidence, &server.name, children, verdict);
        }
    }
}

/// `expect.reaps`: once its clients left, a server's processes are back where they started.
fn check_children(evidence: &Evidence, server: &str, children: &Children, verdict: &mut Verdict) {
    let name = per_server("reaps", server, evidence.under_test);
    let end = children.after_clients;
    let extra = end.live.saturating_sub(children.at_ready.live);
    let passed = children.reaped();
    let summary = match passed {
        true => format!(
            "its children were reaped: {} process{} after the clients left, as at the start",
            end.live + 1,
            if end.live == 0 { "" } else { "es" }
        ),
        false => {
            let mut parts = Vec::new();
            if end.zombies > crate::supervise::MAX_UNREAPED {
                parts.push(format!(
                    "{} zombie{} (children that ended and were never waited for)",
                    end.zombies,
                    units::plural(u64::from(end.zombies))
                ));
            }
            if extra > 0 {
                parts.push(format!(
                    "{extra} more process{} than at the start",
                    if extra == 1 { "" } else { "es" }
                ));
            }
            format!(
                "{} after every client had left, server `{server}` still had {}",
                units::duration(children.waited),
                parts.join(" and ")
            )
        }
    };
    if !passed {
        let hint = match extra {
            0 => {
                "a server that forks per client must wait for its children: os.waitpid(-1, \
                 os.WNOHANG) in a loop (or a SIGCHLD handler that does), else each finished child \
                 stays a zombie"
            }
            _ => {
                "a child forked for one client must end when that client leaves (os._exit(0) \
                 after serving it); one that falls back into the accept loop lives on beside its \
                 parent"
            }
        };
        verdict
            .findings
            .push(Finding::whole_run(&name, "unreaped", summary.clone(), hint));
    }
    verdict.checks.push(Check {
        name,
        passed,
        summary,
    });
}
