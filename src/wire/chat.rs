//! The chat turn classifier: what can go wrong in a turn-by-turn conversation with a server
//! whose operator answers each message (lab 2), and how to say it.
//!
//! labrun types the operator's lines at the server's standard input, so it knows the reply
//! each turn must bring: turn *k* is answered with the operator's line *k*. A reply that is
//! an earlier line is *lagging* (the server is turns behind), a later line is *out of turn*,
//! bytes nobody asked for are *unsolicited*, and `exit` must close the session without a
//! reply.

use std::fmt;
use std::time::Duration;

use crate::escape::escape_bytes;

/// Longest excerpt of a reply shown in a finding.
const EXCERPT_BYTES: usize = 80;

/// One thing that went wrong in a chat session. Turns and lines are 1-based.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChatIssue {
    /// Nothing came back within the reply timeout.
    NoReply {
        turn: u32,
        /// How long labrun waited.
        waited: Duration,
    },
    /// The reply was the operator's line for an earlier turn.
    Lagging {
        turn: u32,
        /// The line it was.
        line: u32,
    },
    /// The reply was the operator's line for a later turn.
    OutOfTurn {
        turn: u32,
        /// The line it was.
        line: u32,
    },
    /// The reply was none of the operator's lines.
    Wrong {
        turn: u32,
        /// The operator's line for the turn.
        expected: Vec<u8>,
        /// What came back.
        received: Vec<u8>,
    },
    /// Bytes arrived when no reply was due.
    Unsolicited {
        /// The last turn answered before them (0: before the first message).
        after_turn: u32,
        bytes: Vec<u8>,
    },
    /// The server answered `exit`.
    RepliedToExit {
        /// The answer.
        bytes: Vec<u8>,
    },
    /// The server kept the connection open after `exit`.
    KeptOpenAfterExit {
        /// How long labrun waited for it to close.
        waited: Duration,
    },
    /// The server closed the connection before the conversation was over.
    ClosedEarly {
        /// The turn whose reply was due.
        turn: u32,
    },
}

impl ChatIssue {
    /// Stable fault class for reports.
    pub fn class(&self) -> &'static str {
        match self {
            ChatIssue::NoReply { .. } => "no-reply",
            ChatIssue::Lagging { .. } => "lagging",
            ChatIssue::OutOfTurn { .. } => "out-of-turn",
            ChatIssue::Wrong { .. } => "wrong-reply",
            ChatIssue::Unsolicited { .. } => "unsolicited",
            ChatIssue::RepliedToExit { .. } => "replied-to-exit",
            ChatIssue::KeptOpenAfterExit { .. } => "kept-open",
            ChatIssue::ClosedEarly { .. } => "closed-early",
        }
    }

    /// The turn it concerns, if one.
    pub fn turn(&self) -> Option<u32> {
        match self {
            ChatIssue::NoReply { turn, .. }
            | ChatIssue::Lagging { turn, .. }
            | ChatIssue::OutOfTurn { turn, .. }
            | ChatIssue::Wrong { turn, .. }
            | ChatIssue::ClosedEarly { turn } => Some(*turn),
            ChatIssue::Unsolicited { .. }
            | ChatIssue::RepliedToExit { .. }
            | ChatIssue::KeptOpenAfterExit { .. } => None,
        }
    }

    /// What usually causes it, in the lab's terms.
    pub fn hint(&self) -> &'static str {
        match self {
            ChatIssue::NoReply { .. } => {
                "no reply: the server must answer every message with the operator's next line; is it \
                 waiting for more input, or did it read the operator's line too early or too late?"
            }
            ChatIssue::Lagging { .. } => {
                "the reply belongs to an earlier turn: the server answers one message late (it sends the \
                 line typed for the previous message), so every reply lags behind"
            }
            ChatIssue::OutOfTurn { .. } => {
                "the reply belongs to a later turn: the server read more than one operator line for \
                 one message (a message split over two recv() calls counts as two turns)"
            }
            ChatIssue::Wrong { .. } => {
                "the reply is not what the operator typed: send exactly the line input() returned, \
                 whole (sendall()) and encoded as UTF-8, without adding text"
            }
            ChatIssue::Unsolicited { .. } => {
                "the server sent something nobody asked for: a reply sent twice, or a message longer \
                 than one recv(1024) answered once per piece"
            }
            ChatIssue::RepliedToExit { .. } => "`exit` ends the chat: the server should close, not answer it",
            ChatIssue::KeptOpenAfterExit { .. } => {
                "after `exit` the server must close the connection (and end); it kept it open"
            }
            ChatIssue::ClosedEarly { .. } => {
                "the server closed the connection while the conversation was still going: did it treat \
                 an ordinary message as `exit`, or crash? (see its output)"
            }
        }
    }
}

impl fmt::Display for ChatIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChatIssue::NoReply { turn, waited } => write!(
                f,
                "no reply to message {turn} within {}",
                humantime::format_duration(*waited)
            ),
            ChatIssue::Lagging { turn, line } => write!(
                f,
                "lagging: the reply to message {turn} is the operator's line {line}, meant for message {line}"
            ),
            ChatIssue::OutOfTurn { turn, line } => write!(
                f,
                "out of turn: the reply to message {turn} is the operator's line {line}, meant for message {line}"
            ),
            ChatIssue::Wrong {
                turn,
                expected,
                received,
            } => {
                let same = expected.iter().zip(received).take_while(|(e, r)| e == r).count();
                if same == received.len() && received.len() < expected.len() {
                    write!(
                        f,
                        "the reply to message {turn} was cut short: {} of the operator's {} bytes \
                         came, ending \"{}\"",
                        received.len(),
                        expected.len(),
                        excerpt_around(received, received.len())
                    )
                } else {
                    write!(
                        f,
                        "the reply to message {turn} differs at byte {same}: the operator's line \
                         has \"{}\", the reply \"{}\"",
                        excerpt_around(expected, same),
                        excerpt_around(received, same)
                    )
                }
            }
            ChatIssue::Unsolicited { after_turn, bytes } => write!(
                f,
                "{} unsolicited byte(s) after the reply to message {after_turn}: \"{}\"",
                bytes.len(),
                excerpt(bytes)
            ),
            ChatIssue::RepliedToExit { bytes } => {
                write!(f, "the server answered `exit` with \"{}\"", excerpt(bytes))
            }
            ChatIssue::KeptOpenAfterExit { waited } => write!(
                f,
                "the server kept the connection open for {} after `exit`",
                humantime::format_duration(*waited)
            ),
            ChatIssue::ClosedEarly { turn } => {
                write!(
                    f,
                    "the server closed the connection instead of answering message {turn}"
                )
            }
        }
    }
}

fn excerpt(bytes: &[u8]) -> String {
    let shown = escape_bytes(&bytes[..bytes.len().min(EXCERPT_BYTES)]);
    if bytes.len() > EXCERPT_BYTES {
        format!("{shown}…")
    } else {
        shown
    }
}

/// An excerpt of `bytes` that shows byte `at`: from a little before it on, after `…` where
/// bytes are left out, so that two texts alike for their first hundred bytes are told apart
/// where they differ.
fn excerpt_around(bytes: &[u8], at: usize) -> String {
    let start = at.saturating_sub(EXCERPT_BYTES / 4).min(bytes.len());
    let shown = excerpt(&bytes[start..]);
    match start {
        0 => shown,
        _ => format!("…{shown}"),
    }
}

/// Names a reply that is not the expected line: one of the operator's other lines (lagging
/// or out of turn), or simply wrong. `lines` are the operator's lines, `turn` is 1-based.
pub fn classify(turn: u32, expected: &[u8], received: &[u8], lines: &[String]) -> ChatIssue {
    let other = lines
        .iter()
        .enumerate()
        .find(|(index, line)| *index + 1 != turn as usize && line.as_bytes() == received);
    match other {
        Some((index, _)) if (index as u32) < turn => ChatIssue::Lagging {
            turn,
            line: index as u32 + 1,
        },
        Some((index, _)) => ChatIssue::OutOfTurn {
            turn,
            line: index as u32 + 1,
        },
        None => ChatIssue::Wrong {
            turn,
            expected: expected.to_vec(),
            received: received.to_vec(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_are_named_by_whose_turn_they_belong_to() {
        let lines: Vec<String> = ["one", "two", "three"].map(String::from).to_vec();
        assert_eq!(
            classify(2, b"two", b"one", &lines),
            ChatIssue::Lagging { turn: 2, line: 1 }
        );
        assert_eq!(
            classify(1, b"one", b"three", &lines),
            ChatIssue::OutOfTurn { turn: 1, line: 3 }
        );
        let wrong = classify(3, b"three", b"THREE\x1b", &lines);
        assert_eq!(wrong.class(), "wrong-reply");
        assert_eq!(
            wrong.to_string(),
            "the reply to message 3 differs at byte 0: the operator's line has \"three\", the reply \"THREE\\x1b\""
        );
    }

    /// A long reply that differs only past what an excerpt shows, or that stops short, is
    /// shown where it goes wrong, not as two excerpts that look the same.
    #[test]
    fn long_replies_are_shown_where_they_go_wrong() {
        let line = format!("{}{}", "a".repeat(1024), "tail of the line");
        let cut = classify(1, line.as_bytes(), &line.as_bytes()[..1024], &[]);
        assert_eq!(
            cut.to_string(),
            format!(
                "the reply to message 1 was cut short: 1024 of the operator's 1040 bytes came, ending \"…{}\"",
                "a".repeat(20)
            )
        );
        let changed = line.replace("tail", "TAIL");
        let wrong = classify(1, line.as_bytes(), changed.as_bytes(), &[]);
        assert!(
            wrong.to_string().starts_with("the reply to message 1 differs at byte 1024: the operator's line has \"…aaaaaaaaaaaaaaaaaaaatail of the line\""),
            "{wrong}"
        );
    }
}
