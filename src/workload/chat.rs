//! The chat workload (lab 2): one client takes turns with a server whose operator answers
//! each message with `input()`. labrun plays both people: this client sends the messages,
//! and the server's `stdin` script is the operator, so reply *k* must be line *k*. Several
//! chat groups of one server are sessions, one after another (see [`Sessions`]); each is
//! answered by the lines after those of the sessions before it.
//!
//! Lab chat messages carry no framing (plain text, no newline), so a reply is read until it
//! is as long as the expected line, or until it matches another of the operator's lines and
//! nothing more arrives shortly after, or until the reply timeout. Between turns the
//! connection is watched for bytes nobody asked for. `exit` must close the session unanswered.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_util::sync::{CancellationToken, DropGuard};

use super::client::{ClientContext, Interruption, interrupted_end, is_reset, socket_failure};
use super::payload::PayloadGenerator;
use super::record::{ClientEnd, ClientRecord, Timeline};
use crate::scenario::{GroupPlan, LeaveMode};
use crate::wire::chat::{self, ChatIssue};

/// The message that ends a lab chat.
pub const EXIT: &str = "exit";
/// After a reply that matches one of the operator's lines, how long to wait for more bytes
/// before taking it as the whole reply.
const SETTLE: Duration = Duration::from_millis(100);
/// After each reply, the least time spent watching for bytes nobody asked for.
const UNSOLICITED_WINDOW: Duration = Duration::from_millis(50);
/// Most bytes of one reply kept.
const REPLY_CAP: usize = 64 * 1024;

/// One chat session's place among its server's sessions, which run one after another: a
/// lab chat server talks to one client at a time, and its operator's lines answer them in
/// turn.
pub struct Seat {
    /// Every operator line of the server.
    operator: Arc<Vec<String>>,
    /// The line that answers this session's first message.
    first_line: usize,
    /// Done when the session before this one on the server ended.
    after: Option<CancellationToken>,
    /// Marks this one done when dropped: when the session ends, or if it never runs.
    done: DropGuard,
}

/// Hands out the seats of the sessions this run drives, server by server, in the order the
/// scenario lists them (a shard runs its own server, which answers only its own sessions).
pub struct Sessions {
    /// Per server: the operator lines taken by the sessions so far, and the last session.
    lines_taken: Vec<usize>,
    last: Vec<Option<CancellationToken>>,
}

impl Sessions {
    /// No session handed out yet, for a plan of `servers` servers.
    pub fn new(servers: usize) -> Sessions {
        Sessions {
            lines_taken: vec![0; servers],
            last: vec![None; servers],
        }
    }

    /// The seat of `group`'s one client, after the sessions handed out before it.
    pub fn seat(&mut self, group: &GroupPlan, operator: &Arc<Vec<String>>) -> Seat {
        let done = CancellationToken::new();
        let seat = Seat {
            operator: Arc::clone(operator),
            first_line: self.lines_taken[group.server],
            after: self.last[group.server].replace(done.clone()),
            done: done.drop_guard(),
        };
        self.lines_taken[group.server] += group.chat_replies();
        seat
    }
}

/// Runs one chat session once the one before it on its server ended.
pub async fn run(ctx: ClientContext, seat: Seat) -> ClientRecord {
    // However this session ends, the next one may start.
    let _done = seat.done;
    let mut session = Session {
        timeline: Timeline::default(),
        completed: 0,
        bytes_sent: 0,
        bytes_received: 0,
        issues: Vec::new(),
    };
    let operator = seat.operator.get(seat.first_line..).unwrap_or_default();
    let waited = match &seat.after {
        Some(before) => ctx.bounded(None, before.cancelled()).await,
        None => Ok(()),
    };
    let end = match waited {
        Err(interruption) => interrupted_end(interruption, Some(0), &ctx.group),
        Ok(()) => match ctx.connect(&mut session.timeline).await {
            Ok(stream) => session.converse(&ctx, stream, operator).await,
            Err(end) => end,
        },
    };
    if session.timeline.closed.is_none() {
        session.timeline.closed = Some(ctx.since_start());
    }
    let end = match (end, session.issues.is_empty()) {
        (ClientEnd::Completed, false) => ClientEnd::ChatFault(session.issues),
        (end, _) => end,
    };
    ClientRecord {
        group: ctx.group_index,
        index: ctx.index,
        timeline: session.timeline,
        messages_completed: session.completed,
        bytes_sent: session.bytes_sent,
        bytes_received: session.bytes_received,
        end,
        fault: None,
        datagrams: None,
    }
}

/// The messages this client sends: the scenario's list, or generated text ending in `exit`.
fn script(ctx: &ClientContext) -> Vec<String> {
    if let Some(texts) = &ctx.group.texts {
        return texts.clone();
    }
    let group = &ctx.group;
    let mut payloads = PayloadGenerator::new(ctx.seed, ctx.group_index, ctx.index, group.size, group.payload);
    let mut body = Vec::new();
    let mut texts: Vec<String> = (1..group.messages)
        .map(|_| {
            payloads.next_into(&mut body);
            String::from_utf8_lossy(&body).into_owned()
        })
        .collect();
    texts.push(EXIT.to_owned());
    texts
}

/// What came back for one turn.
struct Reply {
    bytes: Vec<u8>,
    closed: bool,
}

struct Session {
    timeline: Timeline,
    completed: u32,
    bytes_sent: u64,
    bytes_received: u64,
    issues: Vec<ChatIssue>,
}

impl Session {
    async fn converse(
        &mut self,
        ctx: &ClientContext,
        mut stream: TcpStream,
        operator: &[String],
    ) -> ClientEnd {
        let texts = script(ctx);
        let timeout = ctx.group.reply_timeout;
        for (index, text) in texts.iter().enumerate() {
            let turn = index as u32 + 1;
            if text == EXIT {
                return self.say_exit(ctx, &mut stream).await;
            }
            let sent_at = Instant::now();
            if index == 0 {
                self.timeline.first_send = Some(ctx.since_start());
            }
            match ctx
                .bounded(Some(sent_at + timeout), stream.write_all(text.as_bytes()))
                .await
            {
                Ok(Ok(())) => self.bytes_sent += text.len() as u64,
                Ok(Err(err)) if is_reset(&err) => {
                    self.issues.push(ChatIssue::ClosedEarly { turn });
                    return ClientEnd::Completed;
                }
                Ok(Err(err)) => return socket_failure(&err, Some(index as u32)),
                Err(Interruption::ReplyTimeout) => {
                    self.issues.push(ChatIssue::NoReply {
                        turn,
                        waited: timeout,
                    });
                    return ClientEnd::Completed;
                }
                Err(other) => return interrupted_end(other, Some(index as u32), &ctx.group),
            }
            let expected = operator.get(index).map_or(&b""[..], |line| line.as_bytes());
            let reply = match self.read_reply(ctx, &mut stream, expected, operator).await {
                Ok(reply) => reply,
                Err(end) => return end,
            };
            if !reply.bytes.is_empty() && self.timeline.first_reply.is_none() {
                self.timeline.first_reply = Some(ctx.since_start());
            }
            if reply.bytes.is_empty() {
                if reply.closed {
                    self.issues.push(ChatIssue::ClosedEarly { turn });
                    return ClientEnd::Completed;
                }
                self.issues.push(ChatIssue::NoReply {
                    turn,
                    waited: timeout,
                });
                continue;
            }
            if let Some(rest) = reply.bytes.strip_prefix(expected) {
                self.timeline.last_reply = Some(ctx.since_start());
                self.completed += 1;
                ctx.message_done((index > 0).then(|| sent_at.elapsed()));
                if !rest.is_empty() {
                    self.issues.push(ChatIssue::Unsolicited {
                        after_turn: turn,
                        bytes: rest.to_vec(),
                    });
                }
            } else {
                self.issues
                    .push(chat::classify(turn, expected, &reply.bytes, operator));
            }
            if reply.closed {
                if index + 1 < texts.len() {
                    self.issues.push(ChatIssue::ClosedEarly { turn: turn + 1 });
                }
                return ClientEnd::Completed;
            }
            let pause = ctx.group.think.max(UNSOLICITED_WINDOW);
            if let Err(end) = self.watch_between_turns(ctx, &mut stream, turn, pause).await {
                return end;
            }
        }
        // No `exit` in the script: a killed client resets; any other closes its side and
        // still watches for stray bytes.
        if ctx.group.leave == LeaveMode::Reset {
            let _ = stream.set_zero_linger();
            drop(stream);
            self.timeline.closed = Some(ctx.since_start());
            return ClientEnd::Completed;
        }
        let _ = stream.shutdown().await;
        self.timeline.closed = Some(ctx.since_start());
        let turns = texts.len() as u32;
        match self
            .watch_between_turns(ctx, &mut stream, turns, UNSOLICITED_WINDOW * 4)
            .await
        {
            Ok(()) => ClientEnd::Completed,
            Err(end) => end,
        }
    }

    /// Reads one reply: until it is as long as `expected`, or equals another operator line
    /// and nothing follows within [`SETTLE`], or the reply timeout passes in silence.
    async fn read_reply(
        &mut self,
        ctx: &ClientContext,
        stream: &mut TcpStream,
        expected: &[u8],
        operator: &[String],
    ) -> Result<Reply, ClientEnd> {
        let timeout = ctx.group.reply_timeout;
        let mut reply = Reply {
            bytes: Vec::new(),
            closed: false,
        };
        let mut buffer = [0u8; 4096];
        let mut deadline = Instant::now() + timeout;
        while reply.bytes.len() < expected.len().max(1) && reply.bytes.len() < REPLY_CAP {
            match ctx.bounded(Some(deadline), stream.read(&mut buffer)).await {
                Ok(Ok(0)) => {
                    reply.closed = true;
                    break;
                }
                Ok(Ok(n)) => {
                    self.bytes_received += n as u64;
                    reply.bytes.extend_from_slice(&buffer[..n]);
                    let another_line = operator.iter().any(|line| line.as_bytes() == reply.bytes);
                    deadline = Instant::now() + if another_line { SETTLE } else { timeout };
                }
                Ok(Err(err)) if is_reset(&err) => {
                    reply.closed = true;
                    break;
                }
                Ok(Err(err)) => return Err(socket_failure(&err, None)),
                Err(Interruption::ReplyTimeout) => break,
                Err(other) => return Err(interrupted_end(other, None, &ctx.group)),
            }
        }
        Ok(reply)
    }

    /// Watches the connection for `pause` when no reply is due: anything that arrives is
    /// unsolicited. A close here means the server ended the chat early.
    async fn watch_between_turns(
        &mut self,
        ctx: &ClientContext,
        stream: &mut TcpStream,
        turn: u32,
        pause: Duration,
    ) -> Result<(), ClientEnd> {
        let until = Instant::now() + pause;
        let mut stray = Vec::new();
        let mut buffer = [0u8; 4096];
        let outcome = loop {
            match ctx.bounded(Some(until), stream.read(&mut buffer)).await {
                Ok(Ok(0)) | Ok(Err(_)) | Err(Interruption::ReplyTimeout) => break Ok(()),
                Ok(Ok(n)) => {
                    self.bytes_received += n as u64;
                    if stray.len() < REPLY_CAP {
                        stray.extend_from_slice(&buffer[..n]);
                    }
                }
                Err(other) => break Err(interrupted_end(other, None, &ctx.group)),
            }
        };
        if !stray.is_empty() {
            self.issues.push(ChatIssue::Unsolicited {
                after_turn: turn,
                bytes: stray,
            });
        }
        outcome
    }

    /// Sends `exit`: the server must close without answering, within the reply timeout.
    async fn say_exit(&mut self, ctx: &ClientContext, stream: &mut TcpStream) -> ClientEnd {
        let timeout = ctx.group.reply_timeout;
        let said = ctx
            .bounded(Some(Instant::now() + timeout), stream.write_all(EXIT.as_bytes()))
            .await;
        match said {
            Ok(Ok(())) => self.bytes_sent += EXIT.len() as u64,
            // Already closed: nothing was answered, and the session is over.
            Ok(Err(_)) | Err(Interruption::ReplyTimeout) => return ClientEnd::Completed,
            Err(other) => return interrupted_end(other, None, &ctx.group),
        }
        let mut answer = Vec::new();
        let mut buffer = [0u8; 4096];
        let until = Instant::now() + timeout;
        let closed = loop {
            match ctx.bounded(Some(until), stream.read(&mut buffer)).await {
                Ok(Ok(0)) | Ok(Err(_)) => break true,
                Ok(Ok(n)) => {
                    self.bytes_received += n as u64;
                    if answer.len() < REPLY_CAP {
                        answer.extend_from_slice(&buffer[..n]);
                    }
                }
                Err(Interruption::ReplyTimeout) => break false,
                Err(other) => return interrupted_end(other, None, &ctx.group),
            }
        };
        self.timeline.closed = Some(ctx.since_start());
        if !answer.is_empty() {
            self.issues.push(ChatIssue::RepliedToExit { bytes: answer });
        }
        if !closed {
            self.issues.push(ChatIssue::KeptOpenAfterExit { waited: timeout });
        }
        ClientEnd::Completed
    }
}
