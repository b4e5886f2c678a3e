//! Scenario files: reading TOML, validating it, and producing a [`Plan`].
//!
//! Every plan is made here, from scenario text: `check` and `grade` write scenario text (a
//! lab battery's phases, a submission's test with its command filled in) and it is read
//! here like any file, so one validator stands behind every run. `raw` mirrors the file with spans,
//! `values` parses scalar values, `plan` applies defaults and cross-checks (`programs` for
//! scenarios whose programs under test are clients), `placeholders` finds `{port}` and
//! `{port:NAME}` in commands, `paths` anchors relative paths at the scenario's folder, `derive`
//! writes a scenario with its programs under test replaced (for `grade`),
//! `diagnostic` renders located errors. The result is either a `Plan` or a `path:line:col`
//! error.

mod derive;
mod diagnostic;
mod paths;
mod placeholders;
mod plan;
mod programs;
mod raw;
mod values;

use std::path::{Path, PathBuf};

pub use derive::{Replacement, replace_programs};
pub use diagnostic::Diagnostic;
pub use paths::Anchor;
pub use placeholders::substitute_ports;
pub use plan::{
    AimedServer, EventAction, EventPlan, GroupPlan, LatencyView, Launch, Limits, MAX_GROUPS, Percentile,
    Plan, ProgramsUnderTest, ReadySignal, ServerPlan, ServersUnderTest, Shard, Side, StartAt, StdinScript,
    Target, UnderTest,
};
pub use programs::{PlayedServerPlan, PrintedPattern, ProgramPlan, Replies, Typing};
pub use raw::{
    ConnectMode, EchoExpectation, ExitPolicy, FanoutExpectation, FaultKind, LeaveMode, PayloadKind,
    PlayedRole, TracebackPolicy, Transport, WorkloadKind,
};
pub use values::{ByteCount, ConcurrencyExpectation, DurationValue, Format, PortChoice, SizeRange};

/// Why a scenario could not be turned into a plan.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    /// A folder was given where a scenario file belongs.
    #[error("`{}` is a folder, not a scenario file: give the files in it (`{}/*.toml`)", path.display(), path.display())]
    Folder {
        /// The folder.
        path: PathBuf,
    },
    /// The file could not be read at all.
    #[error("cannot read scenario `{}`: {why}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why (in the message: `validate` prints errors without their causes).
        why: std::io::Error,
    },
    /// The file was read but is not a valid scenario: every problem found, in file order.
    #[error("{}", problems_text(.0))]
    Invalid(Vec<Diagnostic>),
}

/// Every problem, one `error:` each; a list cut at [`MAX_PROBLEMS`] says it was cut.
fn problems_text(problems: &[Diagnostic]) -> String {
    let mut text = problems
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\nerror: ");
    if problems.len() >= MAX_PROBLEMS {
        text.push_str(&format!(
            "\nnote: stopped at {MAX_PROBLEMS} problems; mend these and validate again for the rest"
        ));
    }
    text
}

/// Most problems reported from one file: past a few, the rest are usually one mistake's
/// echoes, and a screenful is enough to start on.
const MAX_PROBLEMS: usize = 20;

/// Reads and validates one scenario file.
pub fn load(path: &Path) -> Result<Plan, ScenarioError> {
    if path.is_dir() {
        return Err(ScenarioError::Folder {
            path: path.to_owned(),
        });
    }
    let source = std::fs::read_to_string(path).map_err(|why| ScenarioError::Read {
        path: path.to_owned(),
        why,
    })?;
    parse(path, &source)
}

/// Validates scenario text as if it were read from `path`: errors name it, and relative
/// paths in it are resolved against its folder (labrun's own for a bare name).
pub fn parse(path: &Path, source: &str) -> Result<Plan, ScenarioError> {
    let raw = read_raw(path, source).map_err(ScenarioError::Invalid)?;
    let mut plan = plan::resolve(raw, path, source).map_err(|mut problems| {
        problems.truncate(MAX_PROBLEMS);
        ScenarioError::Invalid(problems)
    })?;
    Anchor::of(path).apply(&mut plan);
    Ok(plan)
}

/// The file's tables, or every key and type problem in it (up to [`MAX_PROBLEMS`]) in one
/// pass: after each, the line it is on is blanked (offsets kept, so the next problem is
/// located in the original text) and the file read again. Reading stops at a problem that
/// blanking may have caused: a missing key, or text that is no longer TOML.
fn read_raw(path: &Path, source: &str) -> Result<raw::RawScenario, Vec<Diagnostic>> {
    let mut text = source.to_owned();
    let mut problems: Vec<Diagnostic> = Vec::new();
    while problems.len() < MAX_PROBLEMS {
        let err = match toml::from_str::<raw::RawScenario>(&text) {
            Ok(raw) if problems.is_empty() => return Ok(raw),
            Ok(_) => break,
            Err(err) => err,
        };
        let echo = !problems.is_empty()
            && (err.message().starts_with("missing field") || toml::from_str::<toml::Table>(&text).is_err());
        if echo {
            break;
        }
        problems.push(Diagnostic::new(
            path,
            source,
            err.span(),
            err.message().to_owned(),
        ));
        match err.span() {
            Some(span) if blank_line_at(&mut text, span.start) => {}
            _ => break,
        }
    }
    problems.sort_by_key(|p| (p.line, p.column));
    Err(problems)
}

/// Replaces the line holding byte `at` with spaces, keeping every offset; false when there
/// is nothing left to blank there.
fn blank_line_at(text: &mut String, at: usize) -> bool {
    let at = at.min(text.len());
    let start = text[..at].rfind('\n').map_or(0, |i| i + 1);
    let end = text[at..].find('\n').map_or(text.len(), |i| at + i);
    if text[start..end].trim().is_empty() {
        return false;
    }
    let blank = " ".repeat(text[start..end].len());
    text.replace_range(start..end, &blank);
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error_of(source: &str) -> String {
        match parse(Path::new("t.toml"), source) {
            Ok(_) => panic!("expected an error for:\n{source}"),
            Err(err) => err.to_string(),
        }
    }

    const MINIMAL: &str = "name = \"t\"\n[[server]]\nname = \"echo\"\nbuiltin = \"echo-async\"\n[[clients]]\nname = \"c\"\ncount = 3\n";

    /// Addresses are host:port, with IPv6 in brackets, and say what is wrong otherwise;
    /// they print back as written.
    #[test]
    fn addresses_read_as_host_and_port() {
        for (text, host, port) in [
            ("127.0.0.1:7000", "127.0.0.1", 7000),
            ("echo.lab:80", "echo.lab", 80),
            ("[::1]:7000", "::1", 7000),
        ] {
            let target = Target::parse(text).expect(text);
            assert_eq!((target.host.as_str(), target.port), (host, port));
            assert_eq!(target.to_string(), text);
        }
        for (text, why) in [
            ("localhost", "has no port"),
            ("[::1]", "has no port"),
            ("::1:7000", "an IPv6 address goes in brackets"),
            ("[nonsense]:7000", "is not an IPv6 address"),
            (":7000", "names no host"),
            ("host:0", "is not a port"),
            ("host:70000", "is not a port"),
        ] {
            let err = Target::parse(text).expect_err(text);
            assert!(err.contains(why), "{text}: {err}");
        }
        let utc: StartAt = "2026-12-01T10:00:00Z".parse().expect("UTC");
        let offset: StartAt = "2026-12-01T11:30:00+01:30".parse().expect("an offset");
        let behind: StartAt = "2026-12-01T05:00:00-05:00".parse().expect("a negative offset");
        assert_eq!((utc, behind), (offset, offset));
        assert_eq!(utc.to_string(), "2026-12-01T10:00:00.000Z");
        assert!(
            "tomorrow"
                .parse::<StartAt>()
                .expect_err("a word")
                .contains("RFC 3339")
        );
        for bad in [
            "aé12345",
            "2026-12-01T10:00:00+-1:00",
            "2026-12-01T10:00:00+99:99",
            "1970-01-01T00:30:00+01:00",
            "9999-12-31T23:30:00-01:00",
        ] {
            assert!(bad.parse::<StartAt>().is_err(), "{bad}");
        }
        let first: StartAt = "1970-01-01T01:00:00+01:00".parse().expect("the epoch");
        assert_eq!(first.to_string(), "1970-01-01T00:00:00.000Z");
        let aimed: AimedServer = "echo=127.0.0.1:7000".parse().expect("aimed");
        assert_eq!(aimed.server.as_deref(), Some("echo"));
        assert!("=127.0.0.1:7000".parse::<AimedServer>().is_err());
    }

    /// `--target` aims each server once, and never a port whose program labrun would still
    /// launch (`process`): that program would listen on it too.
    #[test]
    fn aiming_refuses_a_server_twice_and_a_port_of_a_launched_program() {
        let two = "name = \"t\"\n[[server]]\nname = \"a\"\ncommand = [\"prog\", \"{port}\", \"{port:b}\"]\n\
                   [[server]]\nname = \"b\"\nprocess = \"a\"\n[[clients]]\nname = \"c\"\nserver = \"a\"\ncount = 1\n";
        let plan = parse(Path::new("t.toml"), two).expect("two servers, one program");
        let aimed =
            |texts: &[&str]| -> Vec<AimedServer> { texts.iter().map(|t| t.parse().expect(t)).collect() };
        let refused = |texts: &[&str]| plan.clone().aim_all(&aimed(texts)).expect_err("refused");
        let twice = refused(&["a=127.0.0.1:7000", "a=127.0.0.1:7001"]);
        assert!(twice.contains("server `a` of `t.toml` twice"), "{twice}");
        let owned = refused(&["b=127.0.0.1:7001"]);
        assert!(
            owned.contains("server `b`'s port is served by server `a`'s program"),
            "{owned}"
        );
        let unnamed = refused(&["127.0.0.1:7000"]);
        assert!(unnamed.contains("has 2 servers"), "{unnamed}");
        let mut both = plan.clone();
        both.aim_all(&aimed(&["b=127.0.0.1:7001", "a=127.0.0.1:7000"]))
            .expect("both aimed");
        assert!(both.servers_side().servers.iter().all(|s| s.target().is_some()));
        both.check_aims().expect("nothing needs a process");
    }

    #[test]
    fn minimal_scenario_gets_defaults() {
        let plan = parse(Path::new("t.toml"), MINIMAL).unwrap();
        assert_eq!(plan.servers_side().groups[0].count, 3);
        assert_eq!(plan.servers_side().groups[0].messages, 10);
        assert_eq!(plan.servers_side().groups[0].server, 0);
        assert_eq!(plan.expect.max_errors, 0);
    }

    #[test]
    fn unknown_key_is_located_with_suggestion() {
        let text = error_of(&MINIMAL.replace("count = 3", "cout = 3"));
        assert!(text.starts_with("t.toml:7:1: unknown key `cout`"), "{text}");
        assert!(text.contains("did you mean `count`?"), "{text}");
    }

    #[test]
    fn wrong_type_points_at_value() {
        let text = error_of(&MINIMAL.replace("count = 3", "count = \"many\""));
        assert!(text.starts_with("t.toml:7:9:"), "{text}");
    }

    #[test]
    fn missing_server_reference_points_at_reference() {
        let text = error_of(&format!("{MINIMAL}server = \"nope\"\n"));
        assert!(text.starts_with("t.toml:8:10: no server named `nope`"), "{text}");
    }

    #[test]
    fn unknown_builtin_lists_choices() {
        let text = error_of(&MINIMAL.replace("echo-async", "echo-thread"));
        assert!(text.starts_with("t.toml:4:11:"), "{text}");
        assert!(text.contains("did you mean `echo-threaded`?"), "{text}");
    }

    #[test]
    fn server_environment_and_exit_policy() {
        let text = MINIMAL.replace(
            "builtin = \"echo-async\"",
            "command = [\"python3\", \"s.py\"]\nenv = { MODE = \"x\" }\ncwd = \"lab\"\nexits = \"after-clients\"",
        );
        let plan = parse(Path::new("t.toml"), &text).unwrap();
        let server = &plan.servers_side().servers[0];
        assert_eq!(server.env, vec![("MODE".to_owned(), "x".to_owned())]);
        let here = std::fs::canonicalize(".").unwrap();
        assert_eq!(
            server.cwd,
            Some(here.join("lab")),
            "relative to the scenario's folder"
        );
        assert_eq!(server.exits, ExitPolicy::AfterClients);
    }

    #[test]
    fn faults_need_both_keys_and_sane_counts() {
        let plan = parse(
            Path::new("t.toml"),
            &format!("{MINIMAL}faulty = 2\nfault = {{ kind = \"abort\", after = 3 }}\n"),
        )
        .unwrap();
        let group = &plan.servers_side().groups[0];
        assert!(group.is_faulty(1) && !group.is_faulty(2));
        assert_eq!(group.well_behaved(), 1);
        assert!(error_of(&format!("{MINIMAL}faulty = 1\n")).contains("`faulty` needs `fault"));
        assert!(
            error_of(&format!("{MINIMAL}fault = {{ kind = \"stall\" }}\n")).contains("needs `faulty = N`")
        );
        let text = error_of(&format!(
            "{MINIMAL}faulty = 4\nfault = {{ kind = \"garbage\" }}\n"
        ));
        assert!(text.starts_with("t.toml:8:10: `faulty` must be from 1"), "{text}");
        let text = error_of(&format!(
            "{MINIMAL}faulty = 3\nfault = {{ kind = \"garbage\" }}\n"
        ));
        assert!(text.contains("keep at least one well-behaved client"), "{text}");
        let text = error_of(&format!("{MINIMAL}faulty = 1\nfault = {{ kind = \"crash\" }}\n"));
        assert!(
            text.contains("`abort`, `abort-idle`, `abort-in-sendall`, `half-close`, `garbage`"),
            "{text}"
        );
        let text = error_of(&format!(
            "{MINIMAL}faulty = 1\nfault = {{ kind = \"abort\", after = 11 }}\n"
        ));
        assert!(text.contains("past the group's 10 message(s)"), "{text}");
    }

    #[test]
    fn concurrency_expectations_are_checked_against_the_plan() {
        let expect = |value: &str| format!("{MINIMAL}messages = 3\n[expect]\nconcurrency = {value}\n");
        let plan = parse(Path::new("t.toml"), &expect("\"at-least 3\"")).unwrap();
        assert_eq!(plan.expect.concurrency, Some(ConcurrencyExpectation::AtLeast(3)));
        let text = error_of(&expect("\"parallel\""));
        assert!(
            text.starts_with("t.toml:10:15: invalid concurrency `parallel`"),
            "{text}"
        );
        let one_message = expect("\"concurrent\"").replace("messages = 3", "messages = 1");
        assert!(error_of(&one_message).contains("sends only 1 message per client"));
        let one_client = expect("\"iterative\"").replace("count = 3", "count = 1");
        assert!(error_of(&one_client).contains("has only 1 client"));
        let exits = format!(
            "{}survives = true\n",
            MINIMAL.replace("[[clients]]", "exits = \"after-clients\"\n[[clients]]")
        )
        .replace("count = 3\n", "count = 3\n[expect]\n");
        let text = error_of(&exits);
        assert!(
            text.contains("`survives` probes the servers after the clients are done"),
            "{text}"
        );
    }

    #[test]
    fn chats_need_an_operator_one_client_and_exit_last() {
        const CHAT: &str = "name = \"t\"\n[[server]]\nname = \"chat\"\nbuiltin = \"chat-stdin\"\n\
                            stdin = { lines = [\"hi\", \"\", \"bye\"] }\n[[clients]]\nname = \"c\"\n\
                            workload = \"chat\"\nmessages = [\"hello\", \"see you\", \"exit\"]\n";
        let plan = parse(Path::new("t.toml"), CHAT).unwrap();
        assert_eq!(plan.servers_side().groups[0].messages, 3);
        assert_eq!(plan.servers_side().servers[0].operator_lines(), ["hi", "bye"]);
        let no_operator = CHAT.replace("stdin = { lines = [\"hi\", \"\", \"bye\"] }\n", "");
        assert!(error_of(&no_operator).contains("needs its server's operator"));
        let too_few = CHAT.replace("\"\", \"bye\"", "\"\"");
        assert!(
            error_of(&too_few)
                .contains("has 1 non-empty operator line(s) but its chat sessions up to group `c` expect 2")
        );
        // Sessions one after another share the operator's lines, in turn; one that ends
        // without `exit` may end by a reset.
        let sessions = CHAT.replace("\"\", \"bye\"", "\"bye\", \"later\"")
            + "[[clients]]\nname = \"d\"\nworkload = \"chat\"\nmessages = [\"again\"]\nleave = \"reset\"\n";
        let plan = parse(Path::new("t.toml"), &sessions).unwrap();
        assert_eq!(plan.servers_side().groups[1].chat_replies(), 1);
        assert_eq!(plan.servers_side().groups[1].leave, LeaveMode::Reset);
        let one_line_short = sessions.replace(", \"later\"", "");
        assert!(error_of(&one_line_short).contains("up to group `d` expect 3"));
        let reset_after_exit = format!("{CHAT}leave = \"reset\"\n");
        assert!(error_of(&reset_after_exit).contains("without `exit` last"));
        let crowd = format!("{CHAT}count = 2\n");
        assert!(error_of(&crowd).contains("use count = 1"));
        let early_exit = CHAT.replace("[\"hello\", \"see you\", \"exit\"]", "[\"exit\", \"hello\"]");
        assert!(error_of(&early_exit).contains("it is message 1 of 2"));
        let texts_for_echo = MINIMAL.replace("count = 3", "messages = [\"a\"]");
        assert!(error_of(&texts_for_echo).contains("a list of texts is for `workload = \"chat\"`"));
    }

    #[test]
    fn broadcast_rooms_are_checked() {
        const ROOM: &str = "name = \"t\"\n[[server]]\nname = \"room\"\nbuiltin = \"broadcast\"\n[[clients]]\n\
                            name = \"m\"\nworkload = \"broadcast\"\ncount = 3\nmessages = 5\n";
        let plan = parse(
            Path::new("t.toml"),
            &format!("{ROOM}leave_after = 2\nstart_after = \"1s\"\n"),
        )
        .unwrap();
        assert_eq!(plan.servers_side().groups[0].leave_after, Some(2));
        assert_eq!(
            plan.servers_side().groups[0].start_after,
            std::time::Duration::from_secs(1)
        );
        assert!(error_of(&format!("{ROOM}size = 1000\n")).contains("at most 900 bytes"));
        assert!(error_of(&format!("{ROOM}leave_after = 6\n")).contains("`leave_after` must be from 1"));
        let killed = parse(
            Path::new("t.toml"),
            &format!("{ROOM}leave_after = 2\nleave = \"reset\"\n"),
        )
        .unwrap();
        assert_eq!(killed.servers_side().groups[0].leave, LeaveMode::Reset);
        assert_eq!(plan.servers_side().groups[0].leave, LeaveMode::Close);
        assert!(error_of(&format!("{ROOM}leave = \"reset\"\n")).contains("it needs `leave_after`"));
        assert!(error_of(&ROOM.replace("count = 3", "count = 1")).contains("has only 1 client"));
        let mixed = format!("{ROOM}[[clients]]\nname = \"e\"\ncount = 1\n");
        assert!(error_of(&mixed).contains("every client group aimed at it must use"));
        let disagree =
            format!("{ROOM}include_sender = true\n[[clients]]\nname = \"n\"\nworkload = \"broadcast\"\n");
        assert!(error_of(&disagree).contains("disagree on `include_sender`"));
        let text = error_of(&format!("{MINIMAL}include_sender = true\n"));
        assert!(text.starts_with("t.toml:8:18: `include_sender` is for"), "{text}");
        let loaded = parse(Path::new("t.toml"), &format!("{ROOM}load = true\n")).unwrap();
        assert!(loaded.servers_side().groups[0].load);
        let pair = format!("{}load = true\n", ROOM.replace("count = 3", "count = 2"));
        assert!(error_of(&pair).contains("`load`, which needs at least 3 clients"));
        let text = error_of(&format!("{MINIMAL}load = true\n"));
        assert!(text.starts_with("t.toml:8:8: `load` is for"), "{text}");
    }

    #[test]
    fn events_name_one_action_on_a_known_server_within_the_run() {
        let plan = parse(
            Path::new("t.toml"),
            &format!("{MINIMAL}[[events]]\nat = \"2s\"\nkill = \"echo\"\n[[events]]\nat = \"1s\"\nstop = \"echo\"\n"),
        )
        .unwrap();
        let order: Vec<EventAction> = plan.servers_side().events.iter().map(|e| e.action).collect();
        assert_eq!(order, [EventAction::Stop, EventAction::Kill]);
        let two = error_of(&format!(
            "{MINIMAL}[[events]]\nat = \"1s\"\nstop = \"echo\"\nkill = \"echo\"\n"
        ));
        assert!(
            two.contains("exactly one of `stop`, `kill` or `restart`"),
            "{two}"
        );
        let unknown = error_of(&format!("{MINIMAL}[[events]]\nat = \"1s\"\nrestart = \"ehco\"\n"));
        assert!(
            unknown.starts_with("t.toml:10:11: no server named `ehco`"),
            "{unknown}"
        );
        let late = error_of(&format!("{MINIMAL}[[events]]\nat = \"2m\"\nstop = \"echo\"\n"));
        assert!(late.contains("but the scenario's timeout is 1m"), "{late}");
    }

    const SHARED: &str = "name = \"t\"\n[[server]]\nname = \"first\"\n\
                          command = [\"python3\", \"s.py\", \"{port}\", \"{port:second}\"]\n\
                          [[server]]\nname = \"second\"\nprocess = \"first\"\n\
                          [[clients]]\nname = \"c\"\nserver = \"second\"\n";

    #[test]
    fn a_server_may_be_served_by_another_servers_process() {
        let plan = parse(Path::new("t.toml"), SHARED).unwrap();
        assert_eq!(plan.servers_side().servers[1].process_owner(), Some("first"));
        assert_eq!(plan.servers_side().servers[0].process_owner(), None);
        let cases = [
            (
                "process = \"first\"",
                "process = \"nosuch\"",
                "t.toml:7:11: no server named `nosuch`",
            ),
            (
                "process = \"first\"",
                "process = \"second\"",
                "t.toml:7:11: server `second` cannot be served by its own",
            ),
            (
                "process = \"first\"",
                "process = \"first\"\ncommand = [\"x\"]",
                "t.toml:8:11: server `second` is served by server `first`'s process",
            ),
            (
                "process = \"first\"",
                "process = \"first\"\nlimits = { cpu = \"1s\" }",
                "t.toml:7:11: server `second` is served by server `first`'s process (`process = \"first\"`), so `limits` belongs",
            ),
            (
                ", \"{port:second}\"",
                "",
                "t.toml:4:11: server `second` is served by this program",
            ),
            (
                "{port:second}",
                "{port:nosuch}",
                "t.toml:4:42: `{port:nosuch}`: no server named `nosuch`",
            ),
            (
                "{port:second}",
                "{prot}",
                "t.toml:4:42: `{prot}` is not a placeholder labrun substitutes",
            ),
        ];
        for (from, to, wanted) in cases {
            let text = error_of(&SHARED.replace(from, to));
            assert!(text.starts_with(wanted), "{from} -> {to}: {text}");
        }
        // A fixed port needs no placeholder: the program may know it.
        let fixed = SHARED
            .replace(", \"{port:second}\"", "")
            .replace("process = ", "port = 6001\nprocess = ");
        assert!(parse(Path::new("t.toml"), &fixed).is_ok());
        // A chain: `third` names `second`, which has no process of its own either.
        let chain = format!("{SHARED}[[server]]\nname = \"third\"\nport = 7\nprocess = \"second\"\n");
        assert!(
            error_of(&chain).contains("write process = \"first\""),
            "{}",
            error_of(&chain)
        );
        let builtin = "name = \"t\"\n[[server]]\nname = \"first\"\nbuiltin = \"echo-async\"\n[[server]]\n\
                       name = \"second\"\nport = 7\nprocess = \"first\"\n[[clients]]\nname = \"c\"\nserver = \"second\"\n";
        assert!(error_of(builtin).contains("is a built-in, which listens on one port only"));
        let env = SHARED.replace(
            "[[server]]\nname = \"second\"",
            "env = { OTHER = \"{port:third}\" }\n[[server]]\nname = \"second\"",
        );
        assert!(
            error_of(&env).starts_with("t.toml:5:18: `{port:third}`: no server named `third`"),
            "{}",
            error_of(&env)
        );
    }

    #[test]
    fn events_on_a_shared_process_are_refused() {
        for (action, server) in [("stop", "first"), ("kill", "second"), ("restart", "first")] {
            let text = error_of(&format!(
                "{SHARED}[[events]]\nat = \"1s\"\n{action} = \"{server}\"\n"
            ));
            assert!(text.starts_with("t.toml:13:"), "{text}");
            assert!(
                text.contains("events are refused on servers that share a process"),
                "{text}"
            );
        }
    }

    #[test]
    fn shards_are_disjoint_and_cover_every_client() {
        let two_groups = format!("{MINIMAL}[[clients]]\nname = \"d\"\ncount = 4\n");
        let mut plan = parse(Path::new("t.toml"), &two_groups).unwrap();
        let clients: Vec<(usize, u32)> = vec![(0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 2), (1, 3)];
        let mut seen = Vec::new();
        for index in 1..=3 {
            plan.servers_side_mut().shard = Some(format!("{index}/3").parse().unwrap());
            seen.extend(
                clients
                    .iter()
                    .filter(|(g, i)| plan.servers_side().runs(*g, *i))
                    .copied(),
            );
        }
        seen.sort();
        assert_eq!(seen, clients);
        assert!("0/2".parse::<Shard>().is_err() && "3/2".parse::<Shard>().is_err());
    }

    #[test]
    fn udp_servers_and_groups_are_checked() {
        const UDP: &str = "name = \"t\"\n[[server]]\nname = \"u\"\nbuiltin = \"udp-echo\"\n[[clients]]\nname = \"c\"\ncount = 2\n";
        let plan = parse(Path::new("t.toml"), &format!("{UDP}rate = \"1_000/s\"\n")).unwrap();
        assert_eq!(plan.servers_side().servers[0].transport, Transport::Udp);
        assert_eq!(
            (
                plan.servers_side().groups[0].transport,
                plan.servers_side().groups[0].rate
            ),
            (Transport::Udp, Some(1000.0))
        );
        assert!(error_of(&format!("{UDP}size = \"64KiB\"\n")).contains("at most 65,507 bytes"));
        // Every datagram is kept until its echo: a million of 60 KB per client is refused.
        assert!(
            error_of(&format!("{UDP}messages = 1000000\nsize = 60000\n")).contains("of memory; the limit is")
        );
        assert!(
            error_of(&format!("{UDP}transport = \"tcp\"\n")).contains("says tcp but server `u` speaks udp")
        );
        assert!(error_of(&format!("{UDP}rate = \"fast\"\n")).contains("invalid rate"));
        let tcp_builtin = UDP.replace(
            "builtin = \"udp-echo\"",
            "builtin = \"echo-async\"\ntransport = \"udp\"",
        );
        assert!(error_of(&tcp_builtin).contains("speaks TCP; the UDP one is `udp-echo`"));
        let probed = format!("{UDP}messages = 3\n[expect]\nsurvives = true\n");
        assert!(error_of(&probed).contains("probes TCP servers"));
    }

    #[test]
    fn half_close_is_for_tcp_echo_groups() {
        let half = |text: &str| parse(Path::new("t.toml"), text).unwrap().servers_side().groups[0].half_close;
        assert!(!half(MINIMAL));
        assert!(half(&format!("{MINIMAL}half_close = true\n")));
        assert!(
            error_of(&format!("{MINIMAL}leave = \"reset\"\n"))
                .contains("`leave` is for broadcast members and chat sessions")
        );
        let udp = MINIMAL.replace(
            "builtin = \"echo-async\"",
            "builtin = \"udp-echo\"\ntransport = \"udp\"",
        );
        let error = error_of(&format!("{udp}half_close = true\n"));
        assert!(
            error.starts_with("t.toml:9:14: `half_close` is for echo groups of a TCP server"),
            "{error}"
        );
    }

    #[test]
    fn connects_are_paced_unless_a_storm_is_asked_for() {
        let connect = |text: &str| parse(Path::new("t.toml"), text).unwrap().servers_side().groups[0].connect;
        assert_eq!(connect(MINIMAL), ConnectMode::Paced);
        assert_eq!(
            connect(&format!("{MINIMAL}connect = \"storm\"\n")),
            ConnectMode::Storm
        );
        assert!(
            error_of(&format!("{MINIMAL}connect = \"flood\"\n")).contains("`flood` is not a choice here")
        );
        let udp = MINIMAL.replace(
            "builtin = \"echo-async\"",
            "builtin = \"udp-echo\"\ntransport = \"udp\"",
        );
        let error = error_of(&format!("{udp}connect = \"storm\"\n"));
        assert!(
            error.contains("t.toml:") && error.contains("a UDP server has no connections"),
            "{error}"
        );
    }

    #[test]
    fn open_loop_and_pipelining_are_checked() {
        let plan = parse(
            Path::new("t.toml"),
            &format!("{MINIMAL}rate = \"2000/s\"\nrate_ramp = \"1s\"\npipeline = 8\n"),
        )
        .unwrap();
        let group = &plan.servers_side().groups[0];
        assert_eq!(
            (group.rate, group.rate_ramp, group.pipeline),
            (Some(2000.0), std::time::Duration::from_secs(1), 8)
        );
        assert_eq!(
            parse(Path::new("t.toml"), MINIMAL).unwrap().servers_side().groups[0].pipeline,
            1
        );
        assert!(error_of(&format!("{MINIMAL}pipeline = 0\n")).contains("`pipeline` must be from 1 to 1024"));
        assert!(
            error_of(&format!("{MINIMAL}pipeline = 4\nthink = \"5ms\"\n")).contains("use `rate` to pace")
        );
        assert!(error_of(&format!("{MINIMAL}rate_ramp = \"1s\"\n")).contains("this group has none"));
        assert!(
            error_of(&format!("{MINIMAL}workload = \"chat\"\nrate = \"5/s\"\n"))
                .contains("`rate` (open loop) is for echo groups")
        );
        // Memory for messages in flight grows with the pipeline.
        assert!(
            error_of(&format!("{MINIMAL}size = \"64MiB\"\npipeline = 1024\n"))
                .contains("of memory; the limit is")
        );
    }

    proptest::proptest! {
        /// Whatever text a hand-edited file holds, parsing ends in a plan or in an error
        /// that names the file, never in a panic.
        #[test]
        fn any_text_is_a_plan_or_a_located_error(text in "\\PC{0,300}") {
            if let Err(err) = parse(Path::new("t.toml"), &text) {
                proptest::prop_assert!(err.to_string().starts_with("t.toml"), "{}", err);
            }
        }

        /// The same for near misses: a valid scenario with a stretch of it replaced.
        #[test]
        fn mutated_scenarios_are_plans_or_located_errors(
            start in 0usize..400,
            length in 0usize..12,
            splice in "[a-z0-9 =\\[\\]\\{\\}\",.#_-]{0,12}",
        ) {
            let valid = format!("{MINIMAL}messages = 4\nthink = \"5ms\"\n[expect]\nlatency = {{ p99 = \"1s\" }}\nerrors = 2\n");
            let start = start.min(valid.len());
            let end = (start + length).min(valid.len());
            let text = format!("{}{splice}{}", &valid[..start], &valid[end..]);
            if let Err(err) = parse(Path::new("t.toml"), &text) {
                proptest::prop_assert!(err.to_string().starts_with("t.toml"), "{}", err);
            }
        }
    }

    const CLIENT: &str = "name = \"t\"\n[[played_server]]\nname = \"echo\"\n[[client_program]]\nname = \"student\"\n\
                          command = [\"python3\", \"c.py\", \"{port}\"]\n\
                          stdin = { lines = [\"hello\", \"\", { text = \"ab\", repeat = 3, after = \"> \" }, \"exit\"] }\n";

    /// Any percentile is a bound (`p95`, `p99.99`), written quoted or not (`p99.9` unquoted
    /// is a dotted key to TOML), listed in the distribution's order; a key that is not one
    /// is an error at the key.
    #[test]
    fn latency_bounds_take_any_percentile() {
        let text = format!(
            "{MINIMAL}messages = 4\n[expect]\nlatency = {{ max = \"2s\", p99.9 = \"1s\", p95 = \"5ms\" }}\nwait = {{ \"p99.99\" = \"3s\" }}\n"
        );
        let plan = parse(Path::new("t.toml"), &text).expect("valid");
        let bounds: Vec<String> = plan
            .expect
            .latency
            .iter()
            .map(|b| format!("{} {} {:?}", b.view.label(), b.percentile.label(), b.limit))
            .collect();
        assert_eq!(
            bounds,
            ["rtt p95 5ms", "rtt p99.9 1s", "rtt max 2s", "wait p99.99 3s"]
        );
        for (key, wrong) in [
            ("p100", "p100"),
            ("p9.1234", "p9.1234"),
            ("q50", "q50"),
            ("p0", "p0"),
        ] {
            let text = error_of(&format!(
                "{MINIMAL}messages = 4\n[expect]\nlatency = {{ {key} = \"1s\" }}\n"
            ));
            assert!(text.contains(&format!("`{wrong}` is not a percentile")), "{text}");
            assert!(text.contains("t.toml:10:13"), "{text}");
        }
    }

    #[test]
    fn client_programs_get_defaults_from_their_server() {
        let plan = parse(Path::new("t.toml"), CLIENT).unwrap();
        let program = &plan.programs_side().programs[0];
        assert_eq!(program.reaches, Some(0));
        assert_eq!(program.stdin.lines[2].text, "ababab");
        assert_eq!(program.stdin.lines[2].after.as_deref(), Some("> "));
        assert_eq!(
            program.expect.sent,
            ["hello", "ababab"],
            "echo: every non-empty line but exit"
        );
        assert_eq!(program.expect.printed.len(), 2);
        assert!(matches!(plan.under_test, UnderTest::ClientPrograms(_)));

        let chat = CLIENT.replace(
            "name = \"echo\"\n",
            "name = \"echo\"\nrole = \"chat\"\nreplies = \"reply {n}\"\nclose_after = 1\n",
        );
        let plan = parse(Path::new("t.toml"), &chat).unwrap();
        assert_eq!(
            plan.programs_side().programs[0].expect.sent,
            ["hello"],
            "a server closing after 1 hears 1"
        );
        let with_exit = chat.replace("close_after = 1\n", "");
        let plan = parse(Path::new("t.toml"), &with_exit).unwrap();
        assert_eq!(
            plan.programs_side().programs[0].expect.sent,
            ["hello", "ababab", "exit"],
            "chat: exit is sent"
        );
        match &plan.programs_side().programs[0].expect.printed[1] {
            PrintedPattern::Text(text) => assert_eq!(text, "reply 2"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn what_a_client_program_is_typed_fits_what_labrun_keeps() {
        let big = CLIENT.replace("repeat = 3", "repeat = 100000");
        assert!(
            error_of(&big).contains("all lines together at most 192.0 KiB"),
            "{}",
            error_of(&big)
        );
        let chat = CLIENT
            .replace(
                "name = \"echo\"\n",
                "name = \"echo\"\nrole = \"chat\"\nreplies = \"r{n}\"\n",
            )
            .replace("repeat = 3", "repeat = 3000");
        assert!(
            error_of(&chat).contains("its lines may be at most 4096 bytes"),
            "{}",
            error_of(&chat)
        );
        let sent = CLIENT.replace("stdin = {", "expect = { sent = [\"hello\"] }\nstdin = {");
        assert!(parse(Path::new("t.toml"), &sent).is_ok());
    }

    #[test]
    fn client_program_scenarios_are_checked() {
        let text = error_of(&format!(
            "{CLIENT}[[server]]\nname = \"s\"\nbuiltin = \"echo-async\"\n"
        ));
        assert!(text.contains("tests either servers"), "{text}");
        let two = CLIENT.replace(
            "[[client_program]]",
            "[[played_server]]\nname = \"two\"\n[[client_program]]",
        );
        assert!(
            error_of(&two).contains("say which with `reaches"),
            "{}",
            error_of(&two)
        );
        let unknown = two.replace("\"{port}\"]", "\"{port:three}\"]\nreaches = \"two\"");
        assert!(error_of(&unknown).contains("no played server named `three`"));
        let typo = two.replace("\"{port}\"]", "\"{prot}\"]\nreaches = \"two\"");
        assert!(
            error_of(&typo).starts_with("t.toml:8:32: `{prot}` is not a placeholder labrun substitutes"),
            "{}",
            error_of(&typo)
        );
        let wrong_reach = CLIENT.replace("[[client_program]]\n", "[[client_program]]\nreaches = \"ehco\"\n");
        let text = error_of(&wrong_reach);
        assert!(
            text.starts_with("t.toml:5:11: no played server named `ehco`"),
            "{text}"
        );
        let chat = CLIENT.replace("name = \"echo\"\n", "name = \"echo\"\nrole = \"chat\"\n");
        assert!(error_of(&chat).contains("needs its operator's `replies`"));
        let few = chat.replace("role = \"chat\"\n", "role = \"chat\"\nreplies = [\"one\"]\n");
        assert!(
            error_of(&few).contains("has only 1 reply line(s)"),
            "{}",
            error_of(&few)
        );
        let down = CLIENT.replace(
            "name = \"echo\"\n",
            "name = \"echo\"\nrole = \"down\"\nclose_after = 2\n",
        );
        assert!(error_of(&down).contains("nothing listens on down server"));
        let multi = CLIENT.replace("\"hello\"", "\"a\\nb\"");
        assert!(error_of(&multi).contains("must be one line"));
        let regex = format!("{CLIENT}expect = {{ printed = [{{ regex = \"(\" }}] }}\n");
        assert!(error_of(&regex).contains("invalid regular expression"));
        let long = format!(
            "timeout = \"5s\"\n{}",
            CLIENT.replace("[[client_program]]\n", "[[client_program]]\ntimeout = \"6s\"\n")
        );
        assert!(
            error_of(&long).contains("may take up to 6s together"),
            "{}",
            error_of(&long)
        );
        let expect = format!("{CLIENT}[expect]\nerrors = 0\n");
        assert!(error_of(&expect).contains("its own"));
        let typo = CLIENT.replace("stdin = {", "stdn = {");
        assert!(
            error_of(&typo).contains("did you mean `stdin`?"),
            "{}",
            error_of(&typo)
        );
    }

    #[test]
    fn absurd_client_count_is_refused_before_running() {
        let text = error_of(&MINIMAL.replace("count = 3", "count = 4000000000"));
        assert!(text.contains("limit is 100000"), "{text}");
    }
}
