//! Client programs under test: `[[client_program]]` and the `[[played_server]]`s labrun plays
//! for them, validated into [`ProgramPlan`]s and [`PlayedServerPlan`]s.
//!
//! A scenario tests either servers (`[[server]]` with `[[clients]]`) or client programs, never
//! both: the two runs share nothing but the report, and one verdict over a mix would blur
//! whose bug a failure is. What a program must send and print defaults to what its server's
//! role implies (an echo client must not send `exit`, a chat client must), so a scenario
//! usually lists only the lines to type; `expect` overrides either list.

use std::ops::Range;
use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;

use super::diagnostic::Diagnostic;
use super::placeholders::{first_unknown, placeholders, substitute_ports};
use super::plan::{Limits, Locator, as_human, port_as_text, resolve_limits};
use super::raw::{PlayedRole, RawClientProgram, RawPlayedServer, RawProgramExpect, TracebackPolicy};
use super::values::{PortChoice, PrintedValue, RepliesValue, TypedLineValue};

/// How long a client program may run, from launch to exit, unless it says otherwise.
pub const DEFAULT_PROGRAM_TIMEOUT: Duration = Duration::from_secs(10);
/// Pause before each typed line, unless the scenario says otherwise.
pub const DEFAULT_TYPING_DELAY: Duration = Duration::from_millis(100);
/// Most bytes typed at one program, all lines together (after `repeat`). What it types comes
/// back in what its server receives and in what it prints, and both are judged from what
/// labrun keeps (256 KiB per connection, the first 512 KiB of stdout): a budget well inside
/// both means a correct client is never failed for labrun's own truncation.
pub const MAX_TYPED_BYTES: usize = 192 * 1024;
/// Longest line typed at a program that talks to a played chat server: the server answers
/// each read it makes, so a message must arrive in one (it reads up to 64 KiB).
pub const MAX_CHAT_LINE_BYTES: usize = 4 * 1024;
/// Most lines one program may be given.
pub const MAX_TYPED_LINES: usize = 10_000;

/// A server labrun plays for the client programs: in process, every byte recorded.
#[derive(Debug, Clone, Serialize)]
pub struct PlayedServerPlan {
    /// Name programs refer to (`reaches`, `{port:NAME}`).
    pub name: String,
    /// What it does with what it receives.
    pub role: PlayedRole,
    /// Which port it listens on (a `down` server holds the port without listening).
    #[serde(serialize_with = "port_as_text")]
    pub port: PortChoice,
    /// A chat server's answers.
    pub replies: Option<Replies>,
    /// Closes each connection after answering this many messages (0: at once).
    pub close_after: Option<u32>,
}

/// A played chat server's operator.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Replies {
    /// These lines, in order; when they run out the operator has nothing more to say and
    /// the chat ends, as a lab chat server does at the end of its input.
    Lines(Vec<String>),
    /// This line for every message, `{n}` replaced by its number (from 1).
    Template(String),
}

impl Replies {
    /// The answer to message `n` (1-based), if the operator has one.
    pub fn reply(&self, n: u32) -> Option<String> {
        match self {
            Replies::Lines(lines) => lines.get(n.checked_sub(1)? as usize).cloned(),
            Replies::Template(template) => Some(super::plan::numbered(template, u64::from(n))),
        }
    }
}

/// A client program under test, and what is typed at it.
#[derive(Debug, Clone, Serialize)]
pub struct ProgramPlan {
    /// Its name, in check names when there are several programs.
    pub name: String,
    /// The program and its arguments; `{port}` and `{port:NAME}` are substituted. Its
    /// paths are absolute once the plan is made (see `paths`).
    pub command: Vec<String>,
    /// Working directory, absolute once the plan is made (a relative `cwd` is the scenario
    /// folder's: see `paths`); `None`: labrun's own.
    pub cwd: Option<PathBuf>,
    /// Extra environment variables (ports substituted as in `command`).
    pub env: Vec<(String, String)>,
    /// How long it may run, from launch to exit.
    #[serde(serialize_with = "as_human")]
    pub timeout: Duration,
    /// What is typed at its standard input.
    pub stdin: Typing,
    /// Index into [`super::ProgramsUnderTest::played`]: the server it should connect to.
    pub reaches: Option<usize>,
    /// Resource limits, as for servers.
    pub limits: Limits,
    /// What it must send and print.
    pub expect: ProgramExpectations,
}

/// Lines typed at a client program.
#[derive(Debug, Clone, Serialize)]
pub struct Typing {
    /// In order.
    pub lines: Vec<TypedLine>,
    /// Pause before each line (after its prompt, if it waits for one).
    #[serde(serialize_with = "as_human")]
    pub delay: Duration,
    /// Close stdin after the last line (end of input); by default it stays open, so a
    /// program that ignores `exit` is caught hanging instead of being ended by EOF.
    pub close: bool,
}

/// One typed line.
#[derive(Debug, Clone, Serialize)]
pub struct TypedLine {
    /// The text, without the line end.
    pub text: String,
    /// Typed only once the program's stdout shows this (after the previous prompt waited for).
    pub after: Option<String>,
}

/// What a client program must do, defaults applied.
#[derive(Debug, Clone, Serialize)]
pub struct ProgramExpectations {
    /// The messages its server must receive, in order (compared as one byte stream).
    pub sent: Vec<String>,
    /// What its stdout must show, in order.
    pub printed: Vec<PrintedPattern>,
    /// Whether a Python traceback fails how it ended.
    pub traceback: TracebackPolicy,
}

/// One thing a program must print.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PrintedPattern {
    /// These characters.
    Text(String),
    /// A match of this regular expression, written as the text it was compiled from.
    Regex(#[serde(serialize_with = "regex_as_text")] regex::bytes::Regex),
}

/// A compiled regular expression, written as the text it was compiled from.
fn regex_as_text<S: serde::Serializer>(regex: &regex::bytes::Regex, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(regex.as_str())
}

impl ProgramPlan {
    /// The server it should reach, if any.
    pub fn target<'a>(&self, played: &'a [PlayedServerPlan]) -> Option<&'a PlayedServerPlan> {
        self.reaches.map(|index| &played[index])
    }

    /// `text` with `{port}` (its target's port) and `{port:NAME}` substituted; `ports` is
    /// indexed like `played`. The plan has checked that every reference resolves.
    pub fn substitute(&self, text: &str, played: &[PlayedServerPlan], ports: &[u16]) -> String {
        substitute_ports(text, |name| {
            let index = match name {
                Some(name) => played.iter().position(|s| s.name == name),
                None => self.reaches,
            };
            index.map(|index| ports[index])
        })
    }
}

/// Validates the played servers and client programs of a client-program scenario.
pub(super) fn resolve(
    raw_played: Vec<toml::Spanned<RawPlayedServer>>,
    raw_programs: Vec<toml::Spanned<RawClientProgram>>,
    scenario_timeout: Duration,
    name_span: Range<usize>,
    at: &Locator,
) -> Result<(Vec<PlayedServerPlan>, Vec<ProgramPlan>), Diagnostic> {
    if raw_programs.is_empty() {
        return Err(at.error(
            name_span,
            "[[played_server]] tables serve client programs; add a [[client_program]] with `name` and `command`",
        ));
    }
    if raw_played.is_empty() {
        return Err(at.error(
            name_span,
            "a client program needs a server to talk to: add a [[played_server]] with `name` \
             (and `role = \"echo\"`, `\"chat\"` or `\"down\"`)",
        ));
    }
    let mut played: Vec<PlayedServerPlan> = Vec::with_capacity(raw_played.len());
    for table in raw_played {
        let span = table.span();
        let server = resolve_played(table.into_inner(), span.clone(), at)?;
        if played.iter().any(|s| s.name == server.name) {
            return Err(at.error(span, format!("two played servers are named `{}`", server.name)));
        }
        if let PortChoice::Fixed(port) = server.port
            && let Some(other) = played.iter().find(|s| s.port == server.port)
        {
            return Err(at.error(
                span,
                format!(
                    "played servers `{}` and `{}` both use port {port}",
                    other.name, server.name
                ),
            ));
        }
        played.push(server);
    }
    let mut programs: Vec<ProgramPlan> = Vec::with_capacity(raw_programs.len());
    let mut total = Duration::ZERO;
    for table in raw_programs {
        let span = table.span();
        let program = resolve_program(table.into_inner(), span.clone(), &played, at)?;
        if programs.iter().any(|p| p.name == program.name) {
            return Err(at.error(span, format!("two client programs are named `{}`", program.name)));
        }
        total += program.timeout;
        if total > scenario_timeout {
            return Err(at.error(
                span,
                format!(
                    "the client programs run one after another and may take up to {} together, \
                     but the scenario's `timeout` is {}; raise it or lower the programs' `timeout`",
                    humantime::format_duration(total),
                    humantime::format_duration(scenario_timeout)
                ),
            ));
        }
        programs.push(program);
    }
    Ok((played, programs))
}

fn resolve_played(
    raw: RawPlayedServer,
    span: Range<usize>,
    at: &Locator,
) -> Result<PlayedServerPlan, Diagnostic> {
    let name_span = raw.name.span();
    let name = raw.name.into_inner();
    if name.is_empty() || name.contains(char::is_whitespace) {
        return Err(at.error(
            name_span,
            "a played server's `name` must be one word, like \"echo\"",
        ));
    }
    let role = raw.role.unwrap_or_default();
    let replies = match (role, raw.replies) {
        (PlayedRole::Chat, None) => {
            return Err(at.error(
                span,
                format!(
                    "played chat server `{name}` needs its operator's `replies`: a list, like \
                     [\"hi\", \"bye\"], or a template, like \"reply {{n}}\""
                ),
            ));
        }
        (PlayedRole::Chat, Some(replies)) => {
            let replies_span = replies.span();
            match replies.into_inner() {
                RepliesValue::Lines(lines) => {
                    if let Some(bad) = lines.iter().find(|l| l.is_empty() || l.contains(['\n', '\r'])) {
                        return Err(
                            at.error(replies_span, format!("reply {bad:?} must be one non-empty line"))
                        );
                    }
                    Some(Replies::Lines(lines))
                }
                RepliesValue::Template(template) if template.is_empty() => {
                    return Err(at.error(replies_span, "the reply template must not be empty"));
                }
                RepliesValue::Template(template) => Some(Replies::Template(template)),
            }
        }
        (_, Some(replies)) => {
            return Err(at.error(
                replies.span(),
                format!(
                    "`replies` is for `role = \"chat\"`; `{name}` plays {}",
                    role.label()
                ),
            ));
        }
        (_, None) => None,
    };
    if role == PlayedRole::Down
        && let Some(close) = &raw.close_after
    {
        return Err(at.error(
            close.span(),
            format!("`close_after` needs connections, but nothing listens on down server `{name}`"),
        ));
    }
    Ok(PlayedServerPlan {
        name,
        role,
        port: raw.port.unwrap_or_default(),
        replies,
        close_after: raw.close_after.map(toml::Spanned::into_inner),
    })
}

/// The played server a client program's `reaches` names (its index), or the only one.
fn resolve_reaches(
    reaches: Option<toml::Spanned<String>>,
    played: &[PlayedServerPlan],
    at: &Locator,
) -> Result<Option<usize>, Diagnostic> {
    Ok(match reaches {
        Some(reference) => Some(
            played
                .iter()
                .position(|s| s.name == *reference.get_ref())
                .ok_or_else(|| {
                    at.error(
                        reference.span(),
                        format!(
                            "no played server named `{}`; played servers: {}",
                            reference.get_ref(),
                            list_names(played)
                        ),
                    )
                })?,
        ),
        None if played.len() == 1 => Some(0),
        None => None,
    })
}

fn resolve_program(
    raw: RawClientProgram,
    span: Range<usize>,
    played: &[PlayedServerPlan],
    at: &Locator,
) -> Result<ProgramPlan, Diagnostic> {
    let name_span = raw.name.span();
    let name = raw.name.into_inner();
    if name.is_empty() || name.contains(char::is_whitespace) {
        return Err(at.error(
            name_span,
            "a client program's `name` must be one word, like \"student\"",
        ));
    }
    let reaches = resolve_reaches(raw.reaches, played, at)?;
    let command_span = raw.command.span();
    let command = raw.command.into_inner();
    if command.first().is_none_or(|program| program.is_empty()) {
        return Err(at.error(
            command_span,
            "`command` must name a program, like [\"python3\", \"client.py\", \"{port}\"]",
        ));
    }
    let env_span = raw.env.as_ref().map_or(command_span.clone(), toml::Spanned::span);
    let env: Vec<(String, String)> = raw
        .env
        .map(toml::Spanned::into_inner)
        .unwrap_or_default()
        .into_iter()
        .collect();
    let names: Vec<&str> = played.iter().map(|s| s.name.as_str()).collect();
    let texts = command
        .iter()
        .map(|text| (text, &command_span))
        .chain(env.iter().map(|(_, value)| (value, &env_span)));
    for (text, within) in texts {
        if reaches.is_none()
            && let Some(own) = placeholders(text).into_iter().find(|p| p.port_of() == Some(None))
        {
            return Err(at.error_within(
                within.clone(),
                own.text,
                format!(
                    "`{{port}}` is the port of the server client program `{name}` reaches, but \
                     there are several: say which with `reaches = \"...\"`, or write \
                     `{{port:NAME}}`; played servers: {}",
                    list_names(played)
                ),
            ));
        }
        if let Some((placeholder, why)) = first_unknown(text, true, &names, "played server") {
            return Err(at.error_within(within.clone(), placeholder, why));
        }
    }
    if reaches.is_none() {
        return Err(at.error(
            span,
            format!(
                "client program `{name}` must say which played server it should connect to \
                 (`reaches = \"...\"`); played servers: {}",
                list_names(played)
            ),
        ));
    }
    let timeout = raw.timeout.map_or(DEFAULT_PROGRAM_TIMEOUT, |t| t.0);
    if timeout.is_zero() {
        return Err(at.error(name_span, format!("client program `{name}` has a zero `timeout`")));
    }
    let stdin = resolve_typing(raw.stdin, at)?;
    let target = reaches.map(|index| &played[index]);
    if let Some(server) = target.filter(|server| server.role == PlayedRole::Chat)
        && stdin
            .lines
            .iter()
            .any(|line| line.text.len() > MAX_CHAT_LINE_BYTES)
    {
        return Err(at.error(
            span,
            format!(
                "client program `{name}` talks to chat server `{}`, which answers each read it \
                 makes: its lines may be at most {MAX_CHAT_LINE_BYTES} bytes",
                server.name
            ),
        ));
    }
    let expect = resolve_program_expect(raw.expect, &stdin, target, &name, span, at)?;
    Ok(ProgramPlan {
        name,
        command,
        cwd: raw.cwd.map(PathBuf::from),
        env,
        timeout,
        stdin,
        reaches,
        limits: resolve_limits(raw.limits),
        expect,
    })
}

fn resolve_typing(
    raw: Option<toml::Spanned<super::raw::RawTyping>>,
    at: &Locator,
) -> Result<Typing, Diagnostic> {
    let Some(raw) = raw else {
        return Ok(Typing {
            lines: Vec::new(),
            delay: DEFAULT_TYPING_DELAY,
            close: false,
        });
    };
    let span = raw.span();
    let raw = raw.into_inner();
    if raw.lines.len() > MAX_TYPED_LINES {
        return Err(at.error(span, format!("at most {MAX_TYPED_LINES} lines can be typed")));
    }
    let mut lines = Vec::with_capacity(raw.lines.len());
    let mut typed_bytes = 0usize;
    for line in raw.lines {
        let line_span = line.span();
        let TypedLineValue { text, after, repeat } = line.into_inner();
        if text.contains(['\n', '\r']) {
            return Err(at.error(
                line_span,
                "a typed line must be one line: labrun adds the line end; give each line its own entry",
            ));
        }
        typed_bytes = typed_bytes.saturating_add(text.len().saturating_mul(repeat as usize) + 1);
        if repeat == 0 || typed_bytes > MAX_TYPED_BYTES {
            return Err(at.error(
                line_span,
                format!(
                    "`repeat` must be at least 1, and all lines together at most {} (what labrun keeps \
                     of the program's output and its server's input must hold them)",
                    crate::units::bytes(MAX_TYPED_BYTES as u64)
                ),
            ));
        }
        if after.as_deref() == Some("") {
            return Err(at.error(line_span, "`after` must name the prompt text to wait for"));
        }
        lines.push(TypedLine {
            text: text.repeat(repeat as usize),
            after,
        });
    }
    Ok(Typing {
        lines,
        delay: raw.delay.map_or(DEFAULT_TYPING_DELAY, |d| d.0),
        close: raw.close.unwrap_or(false),
    })
}

/// The defaults follow the lab's protocols: an echo client sends every non-empty line but
/// `exit` and prints each echo; a chat client sends `exit` too (its server must learn that
/// the chat is over) and prints each reply. A server that closes after N messages can only
/// receive and answer N. A down server receives nothing.
fn resolve_program_expect(
    raw: Option<toml::Spanned<RawProgramExpect>>,
    stdin: &Typing,
    target: Option<&PlayedServerPlan>,
    name: &str,
    program_span: Range<usize>,
    at: &Locator,
) -> Result<ProgramExpectations, Diagnostic> {
    let (span, raw) = match raw {
        Some(raw) => (raw.span(), Some(raw.into_inner())),
        None => (program_span, None),
    };
    let role = target.map_or(PlayedRole::Down, |t| t.role);
    let cap = target
        .and_then(|t| t.close_after)
        .map_or(usize::MAX, |n| n as usize);
    let sent = match raw.as_ref().and_then(|r| r.sent.clone()) {
        Some(sent) => sent,
        None if role == PlayedRole::Down => Vec::new(),
        None => stdin
            .lines
            .iter()
            .map(|line| line.text.clone())
            .filter(|text| !text.is_empty() && (role == PlayedRole::Chat || text != "exit"))
            .take(cap)
            .collect(),
    };
    if sent.iter().map(String::len).sum::<usize>() > MAX_TYPED_BYTES {
        return Err(at.error(
            span,
            format!(
                "client program `{name}` is expected to send more than {}: labrun keeps only that much \
                 of what a played server receives",
                crate::units::bytes(MAX_TYPED_BYTES as u64)
            ),
        ));
    }
    let turns = sent.iter().filter(|text| *text != "exit").count();
    if let Some(Replies::Lines(lines)) = target.and_then(|t| t.replies.as_ref())
        && lines.len() < turns
    {
        return Err(at.error(
            span,
            format!(
                "client program `{name}` sends {turns} message(s) to chat server `{}`, which has only \
                 {} reply line(s); add replies or use a template like replies = \"reply {{n}}\"",
                target.map_or("", |t| t.name.as_str()),
                lines.len()
            ),
        ));
    }
    let printed = match raw.as_ref().and_then(|r| r.printed.clone()) {
        Some(patterns) => {
            let mut printed = Vec::with_capacity(patterns.len());
            for pattern in patterns {
                let pattern_span = pattern.span();
                printed.push(match pattern.into_inner() {
                    PrintedValue::Text(text) => PrintedPattern::Text(text),
                    PrintedValue::Regex(text) => {
                        PrintedPattern::Regex(regex::bytes::Regex::new(&text).map_err(|err| {
                            at.error(pattern_span, format!("invalid regular expression: {err}"))
                        })?)
                    }
                });
            }
            printed
        }
        None => match (role, target.and_then(|t| t.replies.as_ref())) {
            (PlayedRole::Echo, _) => sent.iter().cloned().map(PrintedPattern::Text).collect(),
            (PlayedRole::Chat, Some(replies)) => (1..=turns as u32)
                .filter_map(|n| replies.reply(n))
                .map(PrintedPattern::Text)
                .collect(),
            _ => Vec::new(),
        },
    };
    Ok(ProgramExpectations {
        sent,
        printed,
        traceback: raw.and_then(|r| r.traceback).unwrap_or_default(),
    })
}

fn list_names(played: &[PlayedServerPlan]) -> String {
    played
        .iter()
        .map(|s| format!("`{}`", s.name))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_substituted_by_name_or_target() {
        let played = |name: &str| PlayedServerPlan {
            name: name.into(),
            role: PlayedRole::Echo,
            port: PortChoice::Auto,
            replies: None,
            close_after: None,
        };
        let program = ProgramPlan {
            name: "p".into(),
            command: Vec::new(),
            cwd: None,
            env: Vec::new(),
            timeout: DEFAULT_PROGRAM_TIMEOUT,
            stdin: Typing {
                lines: Vec::new(),
                delay: Duration::ZERO,
                close: false,
            },
            reaches: Some(1),
            limits: Limits::default(),
            expect: ProgramExpectations {
                sent: Vec::new(),
                printed: Vec::new(),
                traceback: TracebackPolicy::Fail,
            },
        };
        let servers = [played("one"), played("two")];
        assert_eq!(
            program.substitute("{port:one} {port} {port:x}", &servers, &[6000, 6001]),
            "6000 6001 {port:x}"
        );
    }

    #[test]
    fn replies_run_out_or_repeat() {
        let lines = Replies::Lines(vec!["hi".into(), "bye".into()]);
        assert_eq!(lines.reply(2).as_deref(), Some("bye"));
        assert_eq!(lines.reply(3), None);
        assert_eq!(lines.reply(0), None);
        assert_eq!(Replies::Template("r{n}".into()).reply(12).as_deref(), Some("r12"));
    }
}
