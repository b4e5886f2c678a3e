//! The echo workload: connect, send messages, expect every byte back, repeat.
//!
//! A client keeps up to `pipeline` messages in flight (1 by default: send, wait for the whole
//! echo, think, send the next). Closed loop, the next message leaves when a slot frees up;
//! open loop (`rate`), each leaves when its schedule says, and its round trip is measured
//! from that *intended* time, so a server that falls behind shows as latency instead of
//! silently slowing the load down (coordinated omission).
//!
//! The conversation is one hand-written state machine per client (see [`Conversation`]):
//! each wake-up queues whatever is due, writes what the socket takes, reads what arrived and
//! checks it, all on buffers allocated once. Sending and receiving progress together, so a
//! client that writes a 1 MiB message never deadlocks against a server blocked sending its
//! echo back. Every wait is bounded by the reply timeout, the run deadline and Ctrl-C.
//!
//! A group's faulty clients run the same exchange for their first `after` messages, then
//! misbehave ([`FaultKind`]) the way real clients do to a lab server: die mid-message,
//! between messages or while the server is stuck writing an echo they do not read,
//! half-close, send bytes that are not text, or go silent while holding the connection.
//! A `half_close` group's clients shut down their sending side right after their last
//! message and then want every echo and the server's close.

use std::collections::VecDeque;
use std::io;
use std::ops::ControlFlow;
use std::rc::Rc;
use std::task::Poll;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

use super::client::{ClientContext, Interruption, failed, interrupted_end, is_reset, socket_failure};
use super::payload::PayloadGenerator;
use super::reactor::{Exchange, Reactor, Socket};
use super::record::{ClientEnd, ClientErrorKind, ClientRecord, Timeline};
use super::schedule::SendSchedule;
use crate::scenario::FaultKind;
use crate::wire::stream::{EXCERPT_BYTES, EchoFault, StreamEnd, StreamMatcher};

/// The buffer for a client's reads outside the conversation (trailing bytes, faults): small,
/// since ten thousand clients may hold one at once. The conversation reads into its
/// worker's shared buffer instead.
const SPARE_BUFFER_BYTES: usize = 2048;
/// After the last message, how long to watch for bytes nobody sent before closing.
const TRAILING_BYTES_WINDOW: Duration = Duration::from_millis(200);
/// When the very first bytes back are wrong, how long to keep counting what the server
/// sends, to tell a flood from a wrong echo.
const SURPLUS_WINDOW: Duration = Duration::from_millis(200);
/// How long the socket must take no bytes before an `abort-in-sendall` client concludes
/// that its server is stuck writing, and resets.
const STUCK_WINDOW: Duration = Duration::from_millis(200);
/// The most an `abort-in-sendall` client writes without reading: far beyond what a
/// loopback connection buffers both ways, so reaching it means the server is not echoing.
const MAX_UNREAD_BYTES: u64 = 64 << 20;
/// What an `abort-in-sendall` client hands the socket per write, at least.
const UNREAD_BATCH_BYTES: usize = 64 << 10;
/// What a `garbage` client sends: invalid UTF-8, NUL, a terminal escape, stray line ends.
const GARBAGE: &[u8] = b"\xff\xfe\x00\x1b[2J\xc3\x28\r\n\xa0\xa1\x00\xe2\x28\xa1\xf0\x28\x8c\xbc\x80\n";
/// How many times [`GARBAGE`] is repeated: about a kilobyte, one lab `recv(1024)`.
const GARBAGE_REPEATS: usize = 48;

/// How the exchange went wrong.
pub enum ExchangeError {
    Interrupted(Interruption),
    /// The oldest message's reply did not complete within the reply timeout.
    ReplyTimedOut(StreamEnd),
    Closed,
    Fault(EchoFault),
    Socket(io::Error),
}

/// Runs one echo client to completion, its conversation in its worker's `reactor`, and
/// returns what it did.
pub async fn run(ctx: ClientContext, reactor: Rc<Reactor<Talk>>) -> ClientRecord {
    let ctx = Rc::new(ctx);
    let (mut session, end) = Session::new(&ctx).run(&ctx, &reactor).await;
    if session.in_service {
        ctx.server_activity.left();
    }
    if session.timeline.closed.is_none() {
        session.timeline.closed = Some(ctx.since_start());
    }
    ClientRecord {
        group: ctx.group_index,
        index: ctx.index,
        timeline: session.timeline,
        messages_completed: session.completed,
        bytes_sent: session.matcher.sent_bytes(),
        bytes_received: session.matcher.received_bytes(),
        end,
        fault: session.fault,
        datagrams: None,
    }
}

/// One client's conversation as its worker's [`Reactor`] steps it.
pub struct Talk {
    session: Box<Session>,
    conversation: Conversation,
    ctx: Rc<ClientContext>,
}

impl Exchange for Talk {
    type Output = Result<(), ExchangeError>;

    fn step(
        &mut self,
        socket: &mut Socket,
        buffer: &mut [u8],
        deadline: &mut Option<Instant>,
    ) -> Poll<Self::Output> {
        self.session
            .step(&self.ctx, &mut self.conversation, socket, buffer, deadline)
    }

    fn interrupted(&self) -> Self::Output {
        Err(ExchangeError::Interrupted(Interruption::Cancelled))
    }
}

struct Session {
    matcher: StreamMatcher,
    timeline: Timeline,
    completed: u32,
    payloads: PayloadGenerator,
    fault: Option<FaultKind>,
    /// Every byte read from the socket, verified or not.
    arrived: u64,
    /// Every byte the socket accepted from us.
    written: u64,
    /// Counted in its server's clients in service (see [`super::activity`]).
    in_service: bool,
}

impl Session {
    /// A session, boxed: its owner's future and, while it converses, its worker's reactor
    /// then hold a pointer to it rather than a copy each (ten thousand clients in 45 MiB).
    fn new(ctx: &ClientContext) -> Box<Self> {
        let plan = &ctx.group;
        Box::new(Session {
            matcher: StreamMatcher::new(),
            timeline: Timeline::default(),
            completed: 0,
            payloads: PayloadGenerator::new(ctx.seed, ctx.group_index, ctx.index, plan.size, plan.payload),
            fault: plan.fault.filter(|_| plan.is_faulty(ctx.index)).map(|f| f.kind),
            arrived: 0,
            written: 0,
            in_service: false,
        })
    }

    /// The whole session: connect, converse in `reactor`, then end the way the group asks.
    async fn run(
        mut self: Box<Self>,
        ctx: &Rc<ClientContext>,
        reactor: &Reactor<Talk>,
    ) -> (Box<Session>, ClientEnd) {
        let mut stream = match ctx.connect(&mut self.timeline).await {
            Ok(stream) => stream,
            Err(end) => return (self, end),
        };
        let normal_messages = match (self.fault, ctx.group.fault) {
            (Some(_), Some(plan)) => plan.after,
            _ => ctx.group.messages,
        };
        // A faulty client's exchange ends in its fault, not in a half-close.
        let half_close = ctx.group.half_close && self.fault.is_none();
        let exchange = match normal_messages {
            0 => Ok(()),
            total => {
                let talk = Talk {
                    session: self,
                    conversation: Conversation::new(ctx, total, half_close),
                    ctx: Rc::clone(ctx),
                };
                let (talk, handed_back) = reactor.converse(talk, stream).await;
                self = talk.session;
                match handed_back {
                    Ok((exchange, back)) => {
                        stream = back;
                        exchange
                    }
                    Err(err) => {
                        let end = socket_failure(&err, Some(self.completed));
                        return (self, end);
                    }
                }
            }
        };
        let mut receive_buffer = vec![0u8; SPARE_BUFFER_BYTES];
        let end = match (exchange, self.fault) {
            (Err(error), _) => {
                self.end_of_exchange(error, ctx, &mut stream, &mut receive_buffer)
                    .await
            }
            (Ok(()), Some(kind)) => self.misbehave(kind, ctx, stream, &mut receive_buffer).await,
            (Ok(()), None) => {
                self.after_last_echo(ctx, &mut stream, &mut receive_buffer, half_close)
                    .await
            }
        };
        (self, end)
    }

    /// One wake-up of the conversation: queue what is due, write, read and verify, then
    /// either finish, fail, or set `deadline` to when to look again if the socket is silent.
    fn step(
        &mut self,
        ctx: &ClientContext,
        conversation: &mut Conversation,
        socket: &mut Socket,
        receive_buffer: &mut [u8],
        deadline: &mut Option<Instant>,
    ) -> Poll<Result<(), ExchangeError>> {
        loop {
            let now = Instant::now();
            while let Some(intended) = conversation.next_due(now) {
                if conversation.queued == 0 {
                    self.timeline.first_send = Some(ctx.since_start());
                }
                conversation.queue(&mut self.payloads, &mut self.matcher, intended, now);
            }
            let written_before = conversation.written_bytes;
            if let Err(err) = self.write_queued(conversation, socket, now) {
                return Poll::Ready(Err(err));
            }
            // One clock read per wake-up: what arrives is stamped with it, unless this step
            // wrote since, when an echo must not seem older than what it answers.
            let arrival = (conversation.written_bytes == written_before).then_some(now);
            if conversation.peer_closed && !conversation.in_flight.is_empty() {
                return Poll::Ready(Err(ExchangeError::Closed));
            }
            let slots_before = conversation.free_slots();
            if let ControlFlow::Break(end) =
                self.read_arrived(ctx, conversation, socket, receive_buffer, arrival)
            {
                return Poll::Ready(end);
            }
            // An echo that freed a slot may make the next message due at once.
            if conversation.free_slots() > slots_before && conversation.next_due(now).is_some() {
                continue;
            }
            if now >= ctx.run_deadline {
                return Poll::Ready(Err(ExchangeError::Interrupted(Interruption::RunDeadline)));
            }
            let watchdog = match self.reply_watchdog(ctx, conversation, now) {
                Ok(watchdog) => watchdog,
                Err(timed_out) => return Poll::Ready(Err(timed_out)),
            };
            let wake_at = [watchdog, conversation.next_send_time(now)]
                .into_iter()
                .flatten()
                .fold(ctx.run_deadline, Instant::min);
            // The deadline is moved earlier when needed, but left alone when the moment to
            // check has only moved later: it then comes early, finds nothing due and is set
            // again, once per reply timeout instead of once per message.
            if deadline.is_none_or(|at| now >= at || wake_at < at) {
                *deadline = Some(wake_at);
            }
            if deadline.is_some_and(|at| at > now) {
                return Poll::Pending;
            }
        }
    }

    /// Writes what is queued until the socket would block; once everything is out and the
    /// last message was queued, half-closes when the group asks for it.
    #[inline]
    fn write_queued(
        &mut self,
        conversation: &mut Conversation,
        socket: &mut Socket,
        now: Instant,
    ) -> Result<(), ExchangeError> {
        while conversation.written_bytes < conversation.queued_bytes {
            match socket.write(self.matcher.unwritten()) {
                Poll::Ready(Ok(0)) => {
                    return Err(ExchangeError::Socket(io::ErrorKind::WriteZero.into()));
                }
                Poll::Ready(Ok(n)) => {
                    self.matcher.wrote(n);
                    conversation.wrote(n, now);
                    self.written += n as u64;
                }
                Poll::Ready(Err(err)) => return Err(ExchangeError::Socket(err)),
                Poll::Pending => break,
            }
        }
        if conversation.written_bytes == conversation.queued_bytes
            && conversation.half_close
            && !conversation.sending_closed
            && conversation.queued == conversation.total
        {
            // The last message is out: say so with a FIN at once, before its echo. A server
            // that reset the moment it echoed can make this fail (ENOTCONN) with the whole
            // echo still to be read: what the reads bring decides, not this.
            let _ = socket.shutdown_write();
            conversation.sending_closed = true;
        }
        Ok(())
    }

    /// Reads and verifies what has arrived until the socket would block: breaks with the
    /// exchange's end when every message is answered or something went wrong. What arrives
    /// is stamped `arrival`, the step's one clock reading, or (when `None`) read afresh.
    #[inline]
    fn read_arrived(
        &mut self,
        ctx: &ClientContext,
        conversation: &mut Conversation,
        socket: &mut Socket,
        receive_buffer: &mut [u8],
        arrival: Option<Instant>,
    ) -> ControlFlow<Result<(), ExchangeError>> {
        while !conversation.peer_closed {
            match socket.read(receive_buffer) {
                Poll::Ready(Ok(0)) => {
                    if !conversation.in_flight.is_empty() {
                        return ControlFlow::Break(Err(ExchangeError::Closed));
                    }
                    // Closed between messages: the next one will find out, and its
                    // finding then names a message, as it would for a real client.
                    conversation.peer_closed = true;
                }
                Poll::Ready(Ok(received)) => {
                    let chunk = &receive_buffer[..received];
                    let now = arrival.unwrap_or_else(Instant::now);
                    self.arrived += chunk.len() as u64;
                    if self.timeline.first_reply.is_none() {
                        self.timeline.first_reply = Some(now.saturating_duration_since(ctx.run_start));
                        let activity = &ctx.server_activity;
                        let written = conversation.oldest_written_at();
                        let queued = written.is_some() && activity.busy_since(written);
                        conversation.first_reply(now, queued);
                        // A faulty client about to stall is not service that others
                        // may wait behind without limit.
                        if self.fault.is_none() {
                            activity.began_service();
                            self.in_service = true;
                        }
                    }
                    ctx.server_activity.answered(now);
                    conversation.piece_arrived(now);
                    let echoed = match self.matcher.accept(chunk) {
                        Ok(echoed) => echoed,
                        Err(fault) => return ControlFlow::Break(Err(ExchangeError::Fault(fault))),
                    };
                    conversation.last_progress = now;
                    for _ in 0..echoed {
                        let left_at = conversation.answered(now);
                        ctx.message_done(
                            (self.completed > 0).then(|| now.saturating_duration_since(left_at)),
                        );
                        self.completed += 1;
                    }
                    if echoed > 0 {
                        self.timeline.last_reply = Some(now.saturating_duration_since(ctx.run_start));
                        if self.matcher.front_received() > 0 {
                            // The chunk's tail already began the next message's echo.
                            conversation.piece_arrived(now);
                        }
                    }
                    if conversation.all_answered() {
                        return ControlFlow::Break(Ok(()));
                    }
                }
                Poll::Ready(Err(err)) => return ControlFlow::Break(Err(ExchangeError::Socket(err))),
                Poll::Pending => break,
            }
        }
        ControlFlow::Continue(())
    }

    /// When the oldest unanswered message runs out of time (none when nothing is awaited),
    /// or the timeout if it already has.
    #[inline]
    fn reply_watchdog(
        &self,
        ctx: &ClientContext,
        conversation: &Conversation,
        now: Instant,
    ) -> Result<Option<Instant>, ExchangeError> {
        let timeout = ctx.group.reply_timeout;
        let mut watchdog = conversation.reply_deadline(timeout);
        if self.timeline.first_reply.is_none()
            && let Some(own) = watchdog
        {
            // Not served yet while the server is busy with others: queued, not silent.
            // The timeout waits, and is looked at again a timeout from now.
            let activity = &ctx.server_activity;
            watchdog = Some(match activity.busy(now, timeout) {
                true => own.max(now + timeout),
                false => own.max(activity.last_answer().map_or(own, |last| last + timeout)),
            });
        }
        if watchdog.is_some_and(|at| now >= at) {
            let end = match self.timeline.first_send {
                // Kept waiting well past its timeout (it was queued), then answered by nobody: say
                // the whole wait.
                Some(sent)
                    if self.timeline.first_reply.is_none() && ctx.since_start() > sent + timeout * 2 =>
                {
                    StreamEnd::TimedOut(tenths(ctx.since_start().saturating_sub(sent)))
                }
                _ => conversation.timed_out(now, timeout),
            };
            return Err(ExchangeError::ReplyTimedOut(end));
        }
        Ok(watchdog)
    }

    /// Turns a failed exchange into how the session ended.
    async fn end_of_exchange(
        &mut self,
        error: ExchangeError,
        ctx: &ClientContext,
        stream: &mut TcpStream,
        receive_buffer: &mut [u8],
    ) -> ClientEnd {
        let completed = self.completed;
        let shortfall = |end| match self.matcher.shortfall(end) {
            Some(fault) => ClientEnd::EchoFault(fault),
            None => dropped_between_messages(end, completed),
        };
        match error {
            ExchangeError::Fault(
                fault @ (EchoFault::Corrupted {
                    message: 0,
                    offset: 0,
                    ..
                }
                | EchoFault::Extra {
                    after_message: None, ..
                }),
            ) => self.unsolicited_or(fault, ctx, stream, receive_buffer).await,
            ExchangeError::Fault(fault) => ClientEnd::EchoFault(fault),
            ExchangeError::Closed => shortfall(StreamEnd::Closed),
            ExchangeError::ReplyTimedOut(end) => shortfall(end),
            // Queued at the deadline behind clients the server was busy with: not served. (A
            // server busy with nobody meanwhile had less than a reply timeout to answer, so
            // that is only the deadline, below.)
            ExchangeError::Interrupted(Interruption::RunDeadline)
                if self.timeline.first_reply.is_none()
                    && self.timeline.first_send.is_some()
                    && ctx
                        .server_activity
                        .busy_since(self.timeline.first_send.map(|sent| ctx.run_start + sent)) =>
            {
                let waited = self
                    .timeline
                    .first_send
                    .map_or(Duration::ZERO, |sent| ctx.since_start().saturating_sub(sent));
                failed(
                    ClientErrorKind::NotServed,
                    None,
                    format!(
                        "not served: its first message waited {} for a reply until the run's deadline",
                        crate::units::duration(waited)
                    ),
                )
            }
            ExchangeError::Interrupted(other) => interrupted_end(other, Some(self.completed), &ctx.group),
            // A reset in the middle of an echo is a short echo with an abrupt end: report
            // how much came back, which is what the student needs to see.
            ExchangeError::Socket(err) if is_reset(&err) => shortfall(StreamEnd::Reset),
            ExchangeError::Socket(err) => socket_failure(&err, Some(self.completed)),
        }
    }

    /// The very first byte back was wrong. An echo is never longer than what it echoes (a
    /// wrong echo starts right, or differs but keeps to the length), so if the server goes
    /// on to send more than it was sent, it is writing unasked (a flood) rather than echoing
    /// badly; listen briefly to find out.
    async fn unsolicited_or(
        &mut self,
        fault: EchoFault,
        ctx: &ClientContext,
        stream: &mut TcpStream,
        receive_buffer: &mut [u8],
    ) -> ClientEnd {
        let until = Instant::now() + SURPLUS_WINDOW;
        let first_bytes = match &fault {
            EchoFault::Corrupted { received, .. } => received.clone(),
            EchoFault::Extra { excerpt, .. } => excerpt.clone(),
            _ => Vec::new(),
        };
        while self.arrived <= self.written {
            match ctx.bounded(Some(until), stream.read(receive_buffer)).await {
                Ok(Ok(n)) if n > 0 => self.arrived += n as u64,
                _ => break,
            }
        }
        if self.arrived > self.written {
            ClientEnd::EchoFault(EchoFault::Unsolicited {
                received: self.arrived,
                sent: self.written,
                excerpt: first_bytes[..first_bytes.len().min(EXCERPT_BYTES)].to_vec(),
            })
        } else {
            ClientEnd::EchoFault(fault)
        }
    }

    /// Does what a faulty client does instead of finishing politely. Errors on the way are
    /// expected (the server may close first) and ignored: nothing after this point is judged.
    async fn misbehave(
        &mut self,
        kind: FaultKind,
        ctx: &ClientContext,
        mut stream: TcpStream,
        receive_buffer: &mut [u8],
    ) -> ClientEnd {
        let timeout = ctx.group.reply_timeout;
        let first_part = match kind {
            FaultKind::Garbage => GARBAGE.repeat(GARBAGE_REPEATS),
            FaultKind::AbortIdle | FaultKind::AbortInSendall => Vec::new(),
            FaultKind::Abort | FaultKind::HalfClose | FaultKind::Stall => {
                let mut body = Vec::new();
                self.payloads.next_into(&mut body);
                body.truncate(body.len() / 2);
                body
            }
        };
        let write = ctx.bounded(Some(Instant::now() + timeout), stream.write_all(&first_part));
        if let Err(interruption @ (Interruption::Cancelled | Interruption::RunDeadline)) = write.await {
            return interrupted_end(interruption, None, &ctx.group);
        }
        let outcome = match kind {
            FaultKind::Abort | FaultKind::AbortIdle => {
                // SO_LINGER 0 makes close() send RST, as when a client process is killed.
                let _ = stream.set_zero_linger();
                Ok(())
            }
            FaultKind::AbortInSendall => {
                let outcome = self.fill_until_stuck(ctx, &mut stream).await;
                let _ = stream.set_zero_linger();
                outcome
            }
            FaultKind::Garbage => {
                let _ = stream.shutdown().await;
                Ok(())
            }
            FaultKind::HalfClose => {
                let _ = stream.shutdown().await;
                self.timeline.closed = Some(ctx.since_start());
                // Read whatever the server still sends until it closes its side.
                let until = Instant::now() + timeout;
                loop {
                    match ctx.bounded(Some(until), stream.read(receive_buffer)).await {
                        Ok(Ok(0) | Err(_)) | Err(Interruption::ReplyTimeout) => break Ok(()),
                        Ok(Ok(_)) => {}
                        Err(other) => break Err(other),
                    }
                }
            }
            FaultKind::Stall => match ctx.bounded(None, ctx.well_behaved_done.cancelled()).await {
                Ok(()) | Err(Interruption::RunDeadline | Interruption::ReplyTimeout) => Ok(()),
                Err(Interruption::Cancelled) => Err(Interruption::Cancelled),
            },
        };
        if self.timeline.closed.is_none() {
            self.timeline.closed = Some(ctx.since_start());
        }
        drop(stream);
        match outcome {
            Ok(()) => ClientEnd::Misbehaved,
            Err(interruption) => interrupted_end(interruption, None, &ctx.group),
        }
    }

    /// Writes message after message and reads nothing, until the socket has taken nothing
    /// for [`STUCK_WINDOW`]: an echo server is then blocked in `sendall()` on an echo
    /// nobody reads, with its own receive buffer full. Bounded by [`MAX_UNREAD_BYTES`].
    async fn fill_until_stuck(
        &mut self,
        ctx: &ClientContext,
        stream: &mut TcpStream,
    ) -> Result<(), Interruption> {
        let mut message = Vec::with_capacity(UNREAD_BATCH_BYTES);
        let mut written = 0u64;
        while written < MAX_UNREAD_BYTES {
            // Whole messages, batched so that tiny ones still fill the buffers in few writes.
            message.clear();
            while message.len() < UNREAD_BATCH_BYTES {
                self.payloads.append_next(&mut message);
            }
            let mut rest = &message[..];
            while !rest.is_empty() {
                let write = ctx.bounded(Some(Instant::now() + STUCK_WINDOW), stream.write(rest));
                match write.await {
                    Ok(Ok(n)) if n > 0 => {
                        rest = &rest[n..];
                        written += n as u64;
                        self.written += n as u64;
                    }
                    // Taking nothing, or gone: either way the server is no longer reading.
                    Ok(_) | Err(Interruption::ReplyTimeout) => return Ok(()),
                    Err(other) => return Err(other),
                }
            }
        }
        Ok(())
    }

    /// After the last echo: half-closes (a `half_close` client did already, right after its
    /// last message) and reads what the server still sends; bytes nobody sent, such as a
    /// reply sent twice, are judged like any others. A plain client watches briefly and does
    /// not mind a server that keeps the connection open after its FIN; a `half_close` one
    /// waits a reply timeout for the server's own close, owed once `recv()` has told it the
    /// client is done (a reset ends the connection too, which is all that is asked).
    async fn after_last_echo(
        &mut self,
        ctx: &ClientContext,
        stream: &mut TcpStream,
        receive_buffer: &mut [u8],
        wants_close: bool,
    ) -> ClientEnd {
        let _ = stream.shutdown().await;
        if !wants_close {
            self.timeline.closed = Some(ctx.since_start());
        }
        let timeout = ctx.group.reply_timeout;
        let window = match wants_close {
            true => timeout,
            false => TRAILING_BYTES_WINDOW.min(timeout),
        };
        let until = Instant::now() + window;
        loop {
            match ctx.bounded(Some(until), stream.read(receive_buffer)).await {
                Ok(Ok(0) | Err(_)) => return ClientEnd::Completed,
                Ok(Ok(received)) => {
                    if let Err(fault) = self.matcher.accept(&receive_buffer[..received]) {
                        return ClientEnd::EchoFault(fault);
                    }
                }
                Err(Interruption::ReplyTimeout) if wants_close => {
                    return failed(
                        ClientErrorKind::KeptOpen,
                        None,
                        format!(
                            "the server kept the connection open {} after the client shut down its \
                             sending side with every echo received",
                            crate::units::duration(timeout)
                        ),
                    );
                }
                Err(Interruption::ReplyTimeout) => return ClientEnd::Completed,
                Err(other) => return interrupted_end(other, None, &ctx.group),
            }
        }
    }
}

/// A measured wait to the tenth of a second, as findings say it ("4s 700ms").
fn tenths(wait: Duration) -> Duration {
    Duration::from_millis((wait.as_millis() as u64).div_ceil(100) * 100)
}

/// How a session ends when the server ended the connection while nothing was owed: after an
/// echo, during the client's `think` pause or before an open-loop message was due. The client
/// still had messages to send, so the server dropped it.
fn dropped_between_messages(end: StreamEnd, completed: u32) -> ClientEnd {
    let when = match completed {
        0 => "before the first message was sent".to_owned(),
        n => format!("after message {n} was echoed, before message {} was sent", n + 1),
    };
    failed(ClientErrorKind::Dropped, None, format!("{end} {when}"))
}

/// One message sent and not yet fully echoed.
struct InFlight {
    /// When it left (closed loop) or was due (open loop): its round trip counts from here.
    counts_from: Instant,
    /// Where its last byte lies in the stream of everything queued.
    ends_at: u64,
    /// When the socket accepted its last byte: its reply clock starts here at the earliest.
    written_at: Option<Instant>,
}

/// Where one client's exchange of messages stands between wake-ups.
///
/// The reply timeout bounds each reply as a whole: from the moment a message is fully
/// written (or, pipelined, the moment the echo before it completed, whichever is later) to
/// the last byte of its echo, so a server that trickles a reply byte by byte runs out of
/// time as surely as a silent one. Until a message is fully written, the timeout bounds how
/// long the socket may accept nothing and return nothing (a server that stopped reading).
struct Conversation {
    /// Messages to exchange.
    total: u32,
    /// Most messages in flight at once.
    pipeline: usize,
    /// Messages generated and queued for sending so far.
    queued: u32,
    /// Bytes queued and written since the start, to tell when each message is fully written
    /// (the bytes themselves wait in the matcher, which sends and checks them).
    queued_bytes: u64,
    written_bytes: u64,
    /// Unanswered messages, oldest first; the first `fully_written` of them are fully written.
    in_flight: VecDeque<InFlight>,
    fully_written: usize,
    /// Open loop: when each message is due.
    schedule: Option<SendSchedule>,
    /// Closed loop: the pause after each echo before the next message.
    think: Duration,
    /// Closed loop with think time: no message before this.
    resting_until: Option<Instant>,
    /// Last time bytes moved either way, or a message left onto an idle connection: bounds
    /// the wait while a message is still being written.
    last_progress: Instant,
    /// When the last echo completed, or service began after a wait in the server's queue:
    /// the oldest message's reply clock starts no earlier.
    reply_clock_floor: Option<Instant>,
    /// Reads that brought bytes of the oldest message's echo, and when the last one came.
    pieces: u32,
    last_piece: Option<Instant>,
    /// The server closed its side while nothing was owed.
    peer_closed: bool,
    /// Shut down the sending side once the last message is written (`half_close`).
    half_close: bool,
    /// That shutdown is done.
    sending_closed: bool,
}

impl Conversation {
    fn new(ctx: &ClientContext, total: u32, half_close: bool) -> Conversation {
        let group = &ctx.group;
        let pipeline = group.pipeline.max(1) as usize;
        Conversation {
            total,
            pipeline,
            queued: 0,
            queued_bytes: 0,
            written_bytes: 0,
            in_flight: VecDeque::with_capacity(pipeline),
            fully_written: 0,
            schedule: SendSchedule::of(group, ctx.index, Instant::now()),
            think: group.think,
            resting_until: None,
            last_progress: Instant::now(),
            reply_clock_floor: None,
            pieces: 0,
            last_piece: None,
            peer_closed: false,
            half_close,
            sending_closed: false,
        }
    }

    /// Slots for more messages in flight.
    fn free_slots(&self) -> usize {
        self.pipeline - self.in_flight.len()
    }

    /// When the next message may leave (`now` if it may leave at once), if one is left to
    /// send and a slot is free.
    fn next_send_time(&self, now: Instant) -> Option<Instant> {
        if self.queued >= self.total || self.free_slots() == 0 {
            return None;
        }
        Some(match (&self.schedule, self.resting_until) {
            (Some(schedule), _) => schedule.due(self.queued),
            (None, Some(rest)) => rest,
            (None, None) => now,
        })
    }

    /// The time the next message counts from, if it may leave by `now`.
    fn next_due(&self, now: Instant) -> Option<Instant> {
        let at = self.next_send_time(now)?;
        (at <= now).then_some(if self.schedule.is_some() { at } else { now })
    }

    /// Generates the next message, registers it with the matcher and queues its bytes.
    fn queue(
        &mut self,
        payloads: &mut PayloadGenerator,
        matcher: &mut StreamMatcher,
        counts_from: Instant,
        now: Instant,
    ) {
        let length = matcher.expect_with(self.queued, |pending| payloads.append_next(pending));
        if self.in_flight.is_empty() {
            self.last_progress = now;
        }
        self.queued_bytes += length as u64;
        self.in_flight.push_back(InFlight {
            counts_from,
            ends_at: self.queued_bytes,
            written_at: None,
        });
        self.queued += 1;
        self.resting_until = None;
    }

    /// The socket accepted `n` more bytes at `now`: stamps the messages now fully written.
    fn wrote(&mut self, n: usize, now: Instant) {
        self.written_bytes += n as u64;
        self.last_progress = now;
        while let Some(message) = self.in_flight.get_mut(self.fully_written) {
            if message.ends_at > self.written_bytes {
                break;
            }
            message.written_at = Some(now);
            self.fully_written += 1;
        }
    }

    /// The first byte of the first reply arrived at `now`. A client that was `queued` (the
    /// server was busy with others after its message was written; see [`super::activity`])
    /// begins its service now, and so does its first reply's clock.
    fn first_reply(&mut self, now: Instant, queued: bool) {
        if queued {
            self.reply_clock_floor = Some(now);
        }
    }

    /// When the oldest message in flight was fully written, if it was.
    fn oldest_written_at(&self) -> Option<Instant> {
        self.in_flight.front().and_then(|m| m.written_at)
    }

    /// A read at `now` brought bytes of the oldest message's echo.
    fn piece_arrived(&mut self, now: Instant) {
        self.last_progress = now;
        self.pieces += 1;
        self.last_piece = Some(now);
    }

    /// The oldest message in flight was echoed at `now`: returns when it counts from.
    fn answered(&mut self, now: Instant) -> Instant {
        let message = self
            .in_flight
            .pop_front()
            .expect("the matcher completes only messages that were queued");
        self.fully_written = self.fully_written.saturating_sub(1);
        self.reply_clock_floor = Some(now);
        self.pieces = 0;
        self.last_piece = None;
        if !self.think.is_zero() && self.schedule.is_none() {
            self.resting_until = Some(now + self.think);
        }
        message.counts_from
    }

    fn all_answered(&self) -> bool {
        self.queued == self.total && self.in_flight.is_empty()
    }

    /// When the reply timeout runs out, while a reply is owed.
    fn reply_deadline(&self, timeout: Duration) -> Option<Instant> {
        let oldest = self.in_flight.front()?;
        Some(match oldest.written_at {
            Some(written) => written.max(self.reply_clock_floor.unwrap_or(written)) + timeout,
            None => self.last_progress + timeout,
        })
    }

    /// How the oldest message's reply ended when its timeout ran out at `now`.
    fn timed_out(&self, now: Instant, timeout: Duration) -> StreamEnd {
        let quiet = self.last_piece.map(|last| now.saturating_duration_since(last));
        match quiet {
            // Bytes were still coming in the second half of the timeout: too slow, not silent.
            Some(quiet) if self.pieces > 0 && quiet < timeout / 2 => StreamEnd::TooSlow {
                timeout,
                pieces: self.pieces,
                quiet,
            },
            _ => StreamEnd::TimedOut(timeout),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::rc::Rc;
    use std::sync::Arc;

    use proptest::prelude::*;
    use tokio::net::TcpListener;
    use tokio_util::sync::CancellationToken;

    use super::*;
    use crate::scenario::GroupPlan;
    use crate::workload::tally::WorkerTally;

    /// What the fake server does next with the connection.
    #[derive(Debug, Clone)]
    enum Move {
        /// Reads once and echoes what it read.
        Echo,
        /// Reads once and echoes only the first bytes of it.
        EchoPart(usize),
        /// Waits, within the reply timeout.
        Pause(u64),
        /// Goes silent for longer than the reply timeout.
        Stall,
        /// Writes bytes nobody sent.
        Junk,
        /// Closes (FIN).
        Close,
        /// Resets (RST).
        Reset,
    }

    const REPLY_TIMEOUT_MS: u64 = 400;

    fn moves() -> impl Strategy<Value = Vec<Move>> {
        let one = prop_oneof![
            4 => Just(Move::Echo),
            1 => (0usize..1500).prop_map(Move::EchoPart),
            2 => (0u64..60).prop_map(Move::Pause),
            1 => Just(Move::Stall),
            1 => Just(Move::Junk),
            1 => Just(Move::Close),
            1 => Just(Move::Reset),
        ];
        prop::collection::vec(one, 0..10)
    }

    /// The loads the state machine runs under: closed loop, with a pause, pipelined, open loop.
    const LOADS: [&str; 4] = ["", "think = \"30ms\"", "pipeline = 4", "rate = \"40/s\""];

    /// Small messages, one read each, and messages of up to three lab reads, so echoes come
    /// back in pieces.
    const SIZES: [&str; 2] = ["size = 10", "size = { min = 1, max = 3000 }"];

    fn group(load: &str, size: &str) -> Arc<GroupPlan> {
        let source = format!(
            "name = \"fuzz\"\n[[server]]\nname = \"s\"\nbuiltin = \"echo-threaded\"\n\
             [[clients]]\nname = \"c\"\nmessages = 4\n{size}\n\
             timeout = \"{REPLY_TIMEOUT_MS}ms\"\n{load}\n"
        );
        let plan = match crate::scenario::parse(Path::new("fuzz.toml"), &source) {
            Ok(plan) => plan,
            Err(err) => panic!("{err}"),
        };
        Arc::new(plan.servers_side().groups[0].clone())
    }

    /// Accepts one connection and plays `moves` on it, then echoes faithfully until the client
    /// leaves. Every wait is bounded.
    async fn serve(listener: TcpListener, moves: Vec<Move>) {
        let Ok((mut stream, _)) = listener.accept().await else {
            return;
        };
        let mut buffer = vec![0u8; 1024];
        let bounded = Duration::from_millis(2 * REPLY_TIMEOUT_MS);
        for next in moves {
            match next {
                Move::Echo | Move::EchoPart(_) => {
                    let Ok(Ok(n)) = tokio::time::timeout(bounded, stream.read(&mut buffer)).await else {
                        return;
                    };
                    let keep = match next {
                        Move::EchoPart(keep) => keep.min(n),
                        _ => n,
                    };
                    if stream.write_all(&buffer[..keep]).await.is_err() {
                        return;
                    }
                }
                Move::Pause(ms) => tokio::time::sleep(Duration::from_millis(ms)).await,
                Move::Stall => tokio::time::sleep(bounded).await,
                Move::Junk => {
                    let _ = stream.write_all(b"\xffjunk\x00").await;
                }
                Move::Close => return,
                Move::Reset => {
                    let _ = stream.set_zero_linger();
                    return;
                }
            }
        }
        while let Ok(Ok(n @ 1..)) = tokio::time::timeout(bounded, stream.read(&mut buffer)).await {
            if stream.write_all(&buffer[..n]).await.is_err() {
                return;
            }
        }
    }

    /// Runs one echo client against a fake server playing `moves`; the client must end, by
    /// itself and without panicking, well within its bounds.
    fn session(load: &str, size: &str, moves: Vec<Move>, seed: u64) -> ClientRecord {
        crate::workload::reactor::testing::on_a_worker(async {
            let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
            let address = listener.local_addr().expect("address");
            tokio::task::spawn_local(serve(listener, moves));
            let now = Instant::now();
            let cancel = CancellationToken::new();
            let ctx = ClientContext {
                group: group(load, size),
                group_index: 0,
                index: 0,
                address,
                server_activity: Arc::new(crate::workload::activity::ServerActivity::new(now)),
                pacer: None,
                seed,
                run_start: now,
                start_at: now,
                run_deadline: now + Duration::from_secs(5),
                cancel: cancel.clone(),
                tally: Rc::new(WorkerTally::new(
                    1,
                    Arc::new(crate::workload::tally::MessageCount::new(1)),
                    0,
                    1,
                )),
                connect_window: Rc::new(tokio::sync::Semaphore::new(1)),
                well_behaved_done: CancellationToken::new(),
            };
            let reactor = crate::workload::reactor::testing::running(&cancel);
            tokio::time::timeout(Duration::from_secs(8), run(ctx, reactor))
                .await
                .expect("the session ends within its run deadline")
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

        /// Whatever the server does, wherever it does it, the session ends with a verdict:
        /// never a panic, never a hang; a server that only echoes and pauses briefly passes.
        #[test]
        fn any_server_behaviour_ends_the_session_with_a_verdict(
            load in 0..LOADS.len(), size in 0..SIZES.len(), moves in moves(), seed in any::<u64>(),
        ) {
            let faithful = moves.iter().all(|m| matches!(m, Move::Echo | Move::Pause(_)));
            let record = session(LOADS[load], SIZES[size], moves, seed);
            prop_assert!(record.messages_completed <= 4);
            if faithful {
                prop_assert!(matches!(record.end, ClientEnd::Completed), "{:?}", record.end);
                prop_assert_eq!(record.messages_completed, 4);
            }
        }
    }

    #[test]
    fn a_reset_while_the_client_thinks_is_a_dropped_connection() {
        let moves = vec![Move::Echo, Move::Pause(50), Move::Reset];
        let record = session("think = \"200ms\"", SIZES[0], moves, 1);
        match record.end {
            ClientEnd::Failed(error) => {
                assert_eq!(error.kind, ClientErrorKind::Dropped);
                assert!(
                    error.detail.contains("after message 1 was echoed"),
                    "{}",
                    error.detail
                );
            }
            other => panic!("{other:?}"),
        }
    }
}
