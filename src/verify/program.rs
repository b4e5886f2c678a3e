//! Judging client programs under test: their sessions in, checks and findings out.
//!
//! Each program gets up to four checks, each answering one question:
//!
//! | check | question | present when |
//! |---|---|---|
//! | `sent` | did its server receive the expected messages, byte for byte, in order? | it has a server to reach |
//! | `printed` | does its stdout show each expected reply, in order? | it has a server to reach |
//! | `reached` | did it connect to the server it should (and no other)? | it has a server to reach |
//! | `exit` / `server closed` / `server down` | how did it end, given what its server did? | always |
//!
//! `sent` compares the concatenation of everything the played servers received from the
//! program with the concatenation of the expected messages, through the echo stream matcher:
//! how TCP split the bytes, or how many connections carried them, does not matter, and the
//! first difference is named by message and offset. The last check is named for the
//! situation the scenario sets up: an ordinary server (`exit`: it ends by itself with status
//! 0), a server that closes the connection (`server closed`: it notices and ends instead of
//! hanging), a server that is down (`server down`: it says so and ends, no traceback).
//! With several programs, each check name ends with the program's name.

use std::time::Duration;

use super::{Check, Finding, Verdict};
use crate::clientprog::{Ending, ProgramRecord};
use crate::escape::escape_bytes;
use crate::scenario::{PlayedRole, PrintedPattern, ProgramPlan, ProgramsUnderTest, TracebackPolicy};
use crate::supervise::capture::find_bytes;
use crate::units;
use crate::wire::stream::{EchoFault, StreamEnd, StreamMatcher};

/// Most characters of a message or reply quoted in a finding.
const QUOTE_CHARS: usize = 40;
/// Shortest start of a reply that counts as the reply printed in part; a few characters
/// found anywhere in the output are a coincidence, not a truncated echo.
const PARTIAL_REPLY_BYTES: usize = 16;

/// The names of the checks a run of these client programs can have, in the order they
/// are judged (see [`super::possible_checks`]).
pub fn possible_checks(under_test: &ProgramsUnderTest) -> Vec<String> {
    let mut names = Vec::new();
    for program in &under_test.programs {
        let name = |check: &str| check_name(check, program, under_test);
        if talks_to_a_live_server(program, under_test) {
            names.push(name("sent"));
            names.push(name("printed"));
            if program.reaches.is_some() {
                names.push(name("reached"));
            }
        }
        names.push(name(situation(program, under_test).check()));
    }
    names
}

/// `check` alone with one program, `check NAME` with several.
fn check_name(check: &str, program: &ProgramPlan, under_test: &ProgramsUnderTest) -> String {
    if under_test.programs.len() == 1 {
        check.to_owned()
    } else {
        format!("{check} {}", program.name)
    }
}

/// Whether `program` has a played server that is up to talk to: what it sent, printed and
/// reached are judged only then (a program whose server is down is judged on its ending).
fn talks_to_a_live_server(program: &ProgramPlan, under_test: &ProgramsUnderTest) -> bool {
    program
        .target(&under_test.played)
        .is_some_and(|target| target.role != PlayedRole::Down)
}

/// What `program`'s last check is about, from the server it talks to.
fn situation(program: &ProgramPlan, under_test: &ProgramsUnderTest) -> Situation {
    match program.target(&under_test.played) {
        Some(target) if target.role == PlayedRole::Down => Situation::ServerDown,
        Some(target) if target.close_after.is_some() => Situation::ServerClosed,
        _ => Situation::Exit,
    }
}

/// Judges every client program's session.
pub fn evaluate(under_test: &ProgramsUnderTest, records: &[ProgramRecord]) -> Verdict {
    let mut verdict = Verdict::default();
    for record in records {
        let judge = Judge {
            under_test,
            program: &under_test.programs[record.program],
            record,
        };
        if talks_to_a_live_server(judge.program, under_test) {
            judge.sent(&mut verdict);
            judge.printed(&mut verdict);
            judge.reached(&mut verdict);
        }
        judge.ending(&mut verdict);
    }
    verdict
}

/// The situation a program's last check is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Situation {
    /// Its server behaves: it must end by itself with status 0.
    Exit,
    /// Its server closes the connection: it must notice and end.
    ServerClosed,
    /// Its server is down: it must say so and end.
    ServerDown,
}

impl Situation {
    /// The name of the check about it.
    fn check(self) -> &'static str {
        match self {
            Situation::Exit => "exit",
            Situation::ServerClosed => "server closed",
            Situation::ServerDown => "server down",
        }
    }
}

struct Judge<'a> {
    under_test: &'a ProgramsUnderTest,
    program: &'a ProgramPlan,
    record: &'a ProgramRecord,
}

impl Judge<'_> {
    fn name(&self, check: &str) -> String {
        check_name(check, self.program, self.under_test)
    }

    fn push(&self, verdict: &mut Verdict, check: &str, failure: Result<String, Failure>) {
        let name = self.name(check);
        let (passed, summary) = match failure {
            Ok(summary) => (true, summary),
            Err(failure) => {
                verdict.findings.push(Finding {
                    check: name.clone(),
                    class: failure.class.into(),
                    client: Some(self.program.name.clone()),
                    message: failure.message,
                    at_ms: None,
                    text: match &failure.detail {
                        Some(detail) => format!("{}\n{detail}", failure.summary),
                        None => failure.summary.clone(),
                    },
                    hint: failure.hint,
                });
                (false, failure.summary)
            }
        };
        verdict.checks.push(Check {
            name,
            passed,
            summary,
        });
    }

    fn situation(&self) -> Situation {
        situation(self.program, self.under_test)
    }

    fn sent(&self, verdict: &mut Verdict) {
        let expected = &self.program.expect.sent;
        let received: Vec<u8> = self
            .record
            .connections
            .iter()
            .flat_map(|c| c.received.iter().copied())
            .collect();
        let mut matcher = StreamMatcher::new();
        for (index, message) in expected.iter().enumerate() {
            matcher.expect(index as u32, message.as_bytes());
        }
        let fault = matcher
            .accept(&received)
            .err()
            .or_else(|| matcher.shortfall(StreamEnd::Closed));
        let result = match fault {
            None => Ok(format!(
                "its server received the {} expected message(s), {} in all, byte-exact",
                expected.len(),
                units::bytes(received.len() as u64)
            )),
            Some(fault) => Err(self.sent_failure(&fault, received.len())),
        };
        self.push(verdict, "sent", result);
    }

    /// Where expected message `message` starts in the stream of everything typed, for
    /// offsets across messages.
    fn start_of(&self, message: u32) -> usize {
        self.program.expect.sent[..message as usize]
            .iter()
            .map(String::len)
            .sum()
    }

    /// Bytes the server received that nobody typed, `after_message` (or before the first).
    fn sent_extra(&self, after_message: Option<u32>, excerpt: &[u8]) -> (&'static str, String, &'static str) {
        let expected = &self.program.expect.sent;
        let after = match after_message {
            Some(m) => format!(
                "after message {} (\"{}\"), at byte {}",
                m + 1,
                quote(expected[m as usize].as_bytes()),
                self.start_of(m + 1)
            ),
            None => "before the first expected message, at byte 0".to_owned(),
        };
        let hint = match excerpt.starts_with(b"exit") {
            true => HINT_SENT_EXIT,
            false => HINT_SENT_EXTRA,
        };
        let text = format!(
            "the server received bytes nobody typed {after}: \"{}\"",
            escape_bytes(excerpt)
        );
        ("extra", text, hint)
    }

    fn sent_failure(&self, fault: &EchoFault, received: usize) -> Failure {
        let expected = &self.program.expect.sent;
        let start_of = |message: u32| self.start_of(message);
        let quote = |message: u32| quote(expected[message as usize].as_bytes());
        let (class, summary, hint) = match fault {
            EchoFault::Corrupted {
                message,
                offset,
                expected: wanted,
                received: got,
            } => (
                "corrupted",
                format!(
                    "message {} (\"{}\") differs at byte {offset} (byte {} of everything sent): \
                     expected \"{}\", the server received \"{}\"",
                    message + 1,
                    quote(*message),
                    start_of(*message) as u64 + offset,
                    escape_bytes(wanted),
                    escape_bytes(got)
                ),
                HINT_SENT_CORRUPTED,
            ),
            EchoFault::Skipped {
                message,
                offset,
                skipped,
            } => (
                "skipped",
                format!(
                    "the server never received {} of message {} (\"{}\") from its byte {offset} on, \
                     but what was typed after them arrived",
                    units::bytes(*skipped),
                    message + 1,
                    quote(*message)
                ),
                HINT_SENT_TRUNCATED,
            ),
            EchoFault::Extra {
                after_message,
                excerpt,
            } => self.sent_extra(*after_message, excerpt),
            // The stream matcher never judges a flood; should it ever, it reads as extra bytes.
            EchoFault::Unsolicited { excerpt, .. } => (
                "extra",
                format!(
                    "the server received bytes nobody typed: \"{}\"",
                    escape_bytes(excerpt)
                ),
                HINT_SENT_EXTRA,
            ),
            EchoFault::Truncated {
                message,
                received: got,
                length,
                ..
            } => (
                "truncated",
                format!(
                    "the server received only {got} of the {length} bytes of message {} (\"{}\")",
                    message + 1,
                    quote(*message)
                ),
                HINT_SENT_TRUNCATED,
            ),
            EchoFault::Missing { message, .. } => (
                "missing",
                format!(
                    "message {} (\"{}\") never reached the server ({} of {} message(s) did, {received} byte(s) in all)",
                    message + 1,
                    quote(*message),
                    message,
                    expected.len()
                ),
                match expected[*message as usize] == "exit" {
                    true => HINT_SENT_NO_EXIT,
                    false => HINT_SENT_MISSING,
                },
            ),
        };
        Failure {
            class,
            summary,
            detail: None,
            message: fault.message().map(|m| m + 1),
            hint,
        }
    }

    fn printed(&self, verdict: &mut Verdict) {
        let stdout = &self.record.stdout;
        let expected = &self.program.expect.printed;
        let mut cursor = 0usize;
        let mut result = Ok(format!(
            "its output shows the {} expected repl{} in order",
            expected.len(),
            if expected.len() == 1 { "y" } else { "ies" }
        ));
        for (index, pattern) in expected.iter().enumerate() {
            match find_pattern(pattern, &stdout[cursor..]) {
                Some(end) => cursor += end,
                None => {
                    result = Err(self.printed_failure(index, pattern, &stdout[cursor..]));
                    break;
                }
            }
        }
        self.push(verdict, "printed", result);
    }

    fn printed_failure(&self, index: usize, pattern: &PrintedPattern, rest: &[u8]) -> Failure {
        let (what, partial) = match pattern {
            PrintedPattern::Text(text) => {
                let longest = longest_prefix_in(text.as_bytes(), rest);
                let partial = (longest >= PARTIAL_REPLY_BYTES && longest < text.len())
                    .then(|| format!("; it printed only its first {longest} of {} bytes", text.len()));
                (format!("\"{}\"", quote(text.as_bytes())), partial)
            }
            PrintedPattern::Regex(regex) => (
                format!("a match of /{}/", escape_bytes(regex.as_str().as_bytes())),
                None,
            ),
        };
        let dropped = match self.record.stdout_dropped {
            0 => String::new(),
            n => format!(" ({n} bytes of its output in the middle were not kept)"),
        };
        let summary = format!(
            "reply {} of {}, {what}, is not in its output after the previous one{}{dropped}",
            index + 1,
            self.program.expect.printed.len(),
            partial.as_deref().unwrap_or_default()
        );
        Failure {
            class: if partial.is_some() {
                "truncated"
            } else {
                "not-printed"
            },
            summary,
            detail: Some(format!("its last output:\n{}", self.record.stdout_tail)),
            message: Some(index as u32 + 1),
            hint: if partial.is_some() {
                HINT_PRINTED_TRUNCATED
            } else {
                HINT_PRINTED_MISSING
            },
        }
    }

    fn reached(&self, verdict: &mut Verdict) {
        let Some(target) = self.program.reaches else {
            return;
        };
        let played = &self.under_test.played;
        let describe =
            |server: usize| format!("`{}` (port {})", played[server].name, self.record.ports[server]);
        let connections = &self.record.connections;
        let to_target = connections.iter().filter(|c| c.server == target).count();
        let elsewhere: Vec<usize> = connections
            .iter()
            .map(|c| c.server)
            .filter(|&s| s != target)
            .collect();
        let result = match (to_target, elsewhere.first()) {
            (n, None) if n > 0 => Ok(format!(
                "it connected to {} ({n} connection{})",
                describe(target),
                crate::units::plural(n as u64)
            )),
            (_, Some(&wrong)) => Err(Failure {
                class: "wrong-server",
                summary: format!(
                    "it connected to {} but should reach {}{}",
                    describe(wrong),
                    describe(target),
                    if to_target > 0 { " (it reached both)" } else { "" }
                ),
                detail: None,
                message: None,
                hint: HINT_WRONG_SERVER,
            }),
            (_, None) => Err(Failure {
                class: "no-connection",
                summary: format!("it never connected to {}", describe(target)),
                detail: Some(format!("its last output:\n{}", self.output_tail())),
                message: None,
                hint: HINT_NO_CONNECTION,
            }),
        };
        self.push(verdict, "reached", result);
    }

    /// Its stderr if it wrote any, else its stdout.
    fn output_tail(&self) -> &str {
        if self.record.stderr_bytes > 0 {
            &self.record.stderr_tail
        } else {
            &self.record.stdout_tail
        }
    }

    fn ending(&self, verdict: &mut Verdict) {
        let situation = self.situation();
        let check = situation.check();
        let result = match self.record.ending {
            Ending::Exited { status, after } => self.judge_exit(situation, status, after),
            Ending::TimedOut { after } => Err(self.hung(situation, after)),
            Ending::Interrupted => Err(Failure {
                class: "interrupted",
                summary: "the run was interrupted before it ended".to_owned(),
                detail: None,
                message: None,
                hint: HINT_INTERRUPTED,
            }),
        };
        self.push(verdict, check, result);
    }

    fn judge_exit(
        &self,
        situation: Situation,
        status: crate::supervise::ExitDescription,
        after: Duration,
    ) -> Result<String, Failure> {
        let crashed = self.record.traceback && self.program.expect.traceback == TracebackPolicy::Fail;
        let ended = format!("it {status} after {}", units::duration(after));
        let early = self
            .record
            .typing
            .stopped
            .as_ref()
            .filter(|_| situation == Situation::Exit)
            .map(|stop| format!("{ended}, before all its input was typed: {stop}"));
        let silent =
            situation == Situation::ServerDown && self.record.stdout_bytes + self.record.stderr_bytes == 0;
        let failure = |class, summary: String, hint| Failure {
            class,
            summary,
            detail: Some(format!("its last output:\n{}", self.output_tail())),
            message: None,
            hint,
        };
        if crashed {
            let last = self.output_tail().lines().last().unwrap_or_default().to_owned();
            return Err(failure(
                "traceback",
                format!("{ended} with a Python traceback: {last}"),
                match situation {
                    Situation::ServerDown => HINT_DOWN,
                    Situation::ServerClosed => HINT_CLOSED,
                    Situation::Exit => HINT_TRACEBACK,
                },
            ));
        }
        if status.signal.is_some() {
            return Err(failure("killed", ended.clone(), HINT_KILLED));
        }
        if let Some(early) = early {
            return Err(failure("ended-early", early, HINT_ENDED_EARLY));
        }
        let unread = self
            .record
            .connections
            .iter()
            .filter(|c| c.end == Some(crate::clientprog::ConnectionEnd::ClientReset))
            .count();
        if situation == Situation::Exit && unread > 0 {
            return Err(failure(
                "unread-replies",
                format!(
                    "{ended}, but it closed {unread} connection(s) with replies it never read \
                     (the kernel reset them)"
                ),
                HINT_UNREAD,
            ));
        }
        if situation == Situation::Exit && status.code != Some(0) {
            return Err(failure(
                "exit-status",
                format!("{ended}; expected status 0"),
                HINT_EXIT_STATUS,
            ));
        }
        if silent {
            return Err(failure(
                "silent",
                format!("{ended} without a word: it should say it could not connect"),
                HINT_DOWN,
            ));
        }
        Ok(match situation {
            Situation::Exit => format!("{ended}, once its input was done"),
            Situation::ServerClosed => format!("{ended}, after its server closed the connection"),
            Situation::ServerDown => format!("{ended}, with a message and no traceback"),
        })
    }

    fn hung(&self, situation: Situation, after: Duration) -> Failure {
        let running = format!("it was still running {} after launch", units::duration(after));
        let typed = &self.record.typing;
        let (summary, hint) = match situation {
            Situation::Exit => {
                let last = self.program.stdin.lines.get(typed.typed.wrapping_sub(1));
                let since = match (last, typed.last_typed_at) {
                    (Some(line), Some(at)) => format!(
                        ", {} after its last line (\"{}\") was typed",
                        units::duration(after.saturating_sub(at)),
                        quote(line.text.as_bytes())
                    ),
                    _ => String::new(),
                };
                let why = match &typed.stopped {
                    Some(stop) => format!("; {stop}"),
                    None if last.is_some_and(|l| l.text == "exit") => {
                        ": it does not end on `exit`".to_owned()
                    }
                    None => ": it does not end once its input is done".to_owned(),
                };
                (format!("{running}{since}{why}"), HINT_HANGS_ON_EXIT)
            }
            Situation::ServerClosed => {
                let closed = self
                    .record
                    .connections
                    .iter()
                    .filter(|c| c.end == Some(crate::clientprog::ConnectionEnd::ServerClosed))
                    .filter_map(|c| c.ended_at)
                    .next();
                let since = closed
                    .map(|at| {
                        format!(
                            ", {} after its server closed the connection",
                            units::duration(after.saturating_sub(at))
                        )
                    })
                    .unwrap_or_default();
                (
                    format!("{running}{since}: it hangs when the server closes"),
                    HINT_CLOSED,
                )
            }
            Situation::ServerDown => (
                format!("{running}: it neither gave up nor said that the server is down"),
                HINT_DOWN,
            ),
        };
        Failure {
            class: "hangs",
            summary,
            detail: Some(format!("its last output:\n{}", self.output_tail())),
            message: None,
            hint,
        }
    }
}

/// A failed check: its summary, the finding's class, hint and detail.
struct Failure {
    class: &'static str,
    summary: String,
    detail: Option<String>,
    message: Option<u32>,
    hint: &'static str,
}

/// Where the first match of `pattern` in `output` ends.
fn find_pattern(pattern: &PrintedPattern, output: &[u8]) -> Option<usize> {
    match pattern {
        PrintedPattern::Text(text) => find_bytes(output, text.as_bytes()).map(|at| at + text.len()),
        PrintedPattern::Regex(regex) => regex.find(output).map(|m| m.end()),
    }
}

/// Length of the longest prefix of `text` that occurs in `output` (a prefix that occurs
/// makes every shorter one occur, so a binary search finds it).
fn longest_prefix_in(text: &[u8], output: &[u8]) -> usize {
    let (mut found, mut missing) = (0, text.len() + 1);
    while missing - found > 1 {
        let middle = (found + missing) / 2;
        if find_bytes(output, &text[..middle]).is_some() {
            found = middle;
        } else {
            missing = middle;
        }
    }
    found
}

/// A message or reply shortened for a one-line finding, escaped.
fn quote(bytes: &[u8]) -> String {
    let text = escape_bytes(bytes);
    match text.char_indices().nth(QUOTE_CHARS) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text,
    }
}

const HINT_SENT_CORRUPTED: &str =
    "send exactly the typed text: line.encode(), with no strip(), upper() or added prefix";
const HINT_SENT_EXTRA: &str =
    "send only the typed text: no added newline (\\n) or prefix, and each line once";
const HINT_SENT_EXIT: &str = "`exit` ends an echo client: leave the loop when the line is \"exit\" (compare with ==, \
     not `is`) without sending it";
const HINT_SENT_TRUNCATED: &str = "send() may send only part of the bytes: use sendall()";
const HINT_SENT_MISSING: &str = "every non-empty line must be sent: is the client still connected and reading input, \
     or did it stop after the first message?";
const HINT_SENT_NO_EXIT: &str = "a chat client sends `exit` before it closes, so the server knows the chat is over: \
     sendall(b\"exit\"), then close()";
const HINT_PRINTED_TRUNCATED: &str = "one recv(1024) is not one message: keep receiving until you have as many bytes as \
     you sent, then print the whole echo";
const HINT_PRINTED_MISSING: &str = "print what the server answered (the whole reply, decoded) before asking for the next \
     line; a reply that is never received cannot be printed";
const HINT_WRONG_SERVER: &str = "the answer must pick the port: for \"2\" connect to the second port \
     (ports[int(choice) - 1]), and only after reading the choice";
const HINT_NO_CONNECTION: &str = "connect to 127.0.0.1 on the port given on the command line (sys.argv), not a \
     hard-coded one";
const HINT_HANGS_ON_EXIT: &str = "leave the input loop when the line is \"exit\" (compare with ==), close the socket \
     and return: stdin stays open, so a client waiting for more input never ends";
const HINT_ENDED_EARLY: &str = "the client must keep reading input until `exit` (or end of input): did it stop after one \
     message, or crash?";
const HINT_KILLED: &str = "a signal killed it (SIGSEGV, SIGABRT, …): it crashed rather than ended; end \
     with a message and a return from main instead";
const HINT_UNREAD: &str = "receive each reply before printing it and before closing: closing a socket \
     with unread data resets the connection, and the 'reply' printed was never read";
const HINT_EXIT_STATUS: &str =
    "a clean end is status 0: return from main (or sys.exit(0)) after closing the socket";
const HINT_TRACEBACK: &str = "it crashed: read the last line of the traceback; catch the error where it happens and \
     end with a message instead";
const HINT_CLOSED: &str = "recv() returning b'' means the server closed the connection: stop, say so and end (a loop \
     that keeps calling recv() on a closed socket spins forever)";
const HINT_DOWN: &str = "connect() raises ConnectionRefusedError when nothing listens on the port: catch it, print a \
     message such as \"could not connect to 127.0.0.1:6000\" and end";
const HINT_INTERRUPTED: &str = "the run was stopped (Ctrl-C) before the client ended; run it again";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn longest_prefix_is_found_by_bisection() {
        assert_eq!(longest_prefix_in(b"abcdef", b"xxabcdyy"), 4);
        assert_eq!(longest_prefix_in(b"abc", b"abc"), 3);
        assert_eq!(longest_prefix_in(b"abc", b"zzz"), 0);
    }

    #[test]
    fn quotes_are_short_and_escaped() {
        assert_eq!(quote(b"a\x1bb"), "a\\x1bb");
        assert_eq!(quote(&[b'x'; 100]).chars().count(), QUOTE_CHARS + 1);
    }
}
