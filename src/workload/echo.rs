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
//! half-close, send bytes that are not text, or go silent while holding the connection.

use std::collections::VecDeque;
use std::future::{Future, poll_fn};
use std::io;
use std::pin::{Pin, pin};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::{Instant, Sleep};

use super::client::{ClientContext, Interruption, interrupted_end, is_reset, socket_failure};
use super::payload::PayloadGenerator;
use super::record::{ClientEnd, ClientRecord, Timeline};
use super::schedule::SendSchedule;
use crate::scenario::FaultKind;
use crate::verify::stream::{EXCERPT_BYTES, EchoFault, StreamEnd, StreamMatcher};

/// The buffer for a client's reads outside the conversation (trailing bytes, faults): small,
/// since ten thousand clients may hold one at once. The conversation reads into its
/// worker's shared buffer instead.
const SPARE_BUFFER_BYTES: usize = 2048;
/// After the last message, how long to watch for bytes nobody sent before closing.
const TRAILING_BYTES_WINDOW: Duration = Duration::from_millis(200);
/// When the very first bytes back are wrong, how long to keep counting what the server
/// sends, to tell a flood from a wrong echo.
const SURPLUS_WINDOW: Duration = Duration::from_millis(200);
/// What a `garbage` client sends: invalid UTF-8, NUL, a terminal escape, stray line ends.
const GARBAGE: &[u8] = b"\xff\xfe\x00\x1b[2J\xc3\x28\r\n\xa0\xa1\x00\xe2\x28\xa1\xf0\x28\x8c\xbc\x80\n";
/// How many times [`GARBAGE`] is repeated: about a kilobyte, one lab `recv(1024)`.
const GARBAGE_REPEATS: usize = 48;

/// How the exchange went wrong.
enum ExchangeError {
    Interrupted(Interruption),
    Closed,
    Fault(EchoFault),
    Socket(io::Error),
}

/// Runs one echo client to completion and returns what it did.
pub async fn run(ctx: ClientContext) -> ClientRecord {
    let mut session = Session::new(&ctx);
    let end = session.run(&ctx).await;
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
}

impl Session {
    fn new(ctx: &ClientContext) -> Self {
        let plan = &ctx.group;
        Session {
            matcher: StreamMatcher::new(),
            timeline: Timeline::default(),
            completed: 0,
            payloads: PayloadGenerator::new(ctx.seed, ctx.group_index, ctx.index, plan.size, plan.payload),
            fault: plan.fault.filter(|_| plan.is_faulty(ctx.index)).map(|f| f.kind),
            arrived: 0,
            written: 0,
        }
    }

    async fn run(&mut self, ctx: &ClientContext) -> ClientEnd {
        let mut stream = match ctx.connect(&mut self.timeline).await {
            Ok(stream) => stream,
            Err(end) => return end,
        };
        let normal_messages = match (self.fault, ctx.group.fault) {
            (Some(_), Some(plan)) => plan.after,
            _ => ctx.group.messages,
        };
        let exchange = match normal_messages {
            0 => Ok(()),
            total => {
                self.converse(ctx, &mut Conversation::new(ctx, total), &mut stream)
                    .await
            }
        };
        let mut receive_buffer = vec![0u8; SPARE_BUFFER_BYTES];
        if let Err(error) = exchange {
            return self
                .end_of_exchange(error, ctx, &mut stream, &mut receive_buffer)
                .await;
        }
        match self.fault {
            Some(kind) => self.misbehave(kind, ctx, stream, &mut receive_buffer).await,
            None => {
                self.check_trailing_bytes(ctx, &mut stream, &mut receive_buffer)
                    .await
            }
        }
    }

    /// Exchanges the conversation's messages until all are echoed or something goes wrong.
    async fn converse(
        &mut self,
        ctx: &ClientContext,
        conversation: &mut Conversation,
        stream: &mut TcpStream,
    ) -> Result<(), ExchangeError> {
        let mut timer = pin!(tokio::time::sleep_until(ctx.run_deadline));
        let mut cancelled = pin!(ctx.cancel.cancelled());
        poll_fn(|cx| {
            if cancelled.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Err(ExchangeError::Interrupted(Interruption::Cancelled)));
            }
            // The worker's buffer is borrowed only for this synchronous step, so its other
            // clients, which run between steps, can never find it taken.
            let mut receive_buffer = ctx.receive_buffer.borrow_mut();
            self.step(cx, ctx, conversation, stream, &mut receive_buffer, timer.as_mut())
        })
        .await
    }

    /// One wake-up of the conversation: queue what is due, write, read and verify, then
    /// either finish, fail, or arrange to be woken by the socket or the timer.
    fn step(
        &mut self,
        cx: &mut Context<'_>,
        ctx: &ClientContext,
        conversation: &mut Conversation,
        stream: &mut TcpStream,
        receive_buffer: &mut [u8],
        mut timer: Pin<&mut Sleep>,
    ) -> Poll<Result<(), ExchangeError>> {
        loop {
            let now = Instant::now();
            while let Some(intended) = conversation.next_due(now) {
                if conversation.queued == 0 {
                    self.timeline.first_send = Some(ctx.since_start());
                }
                conversation.queue(&mut self.payloads, &mut self.matcher, intended, now);
            }
            while conversation.written < conversation.outgoing.len() {
                let unwritten = &conversation.outgoing[conversation.written..];
                match Pin::new(&mut *stream).poll_write(cx, unwritten) {
                    Poll::Ready(Ok(0)) => {
                        return Poll::Ready(Err(ExchangeError::Socket(io::ErrorKind::WriteZero.into())));
                    }
                    Poll::Ready(Ok(n)) => {
                        conversation.written += n;
                        self.written += n as u64;
                    }
                    Poll::Ready(Err(err)) => return Poll::Ready(Err(ExchangeError::Socket(err))),
                    Poll::Pending => break,
                }
            }
            if conversation.written == conversation.outgoing.len() {
                conversation.outgoing.clear();
                conversation.written = 0;
            }
            if conversation.peer_closed && !conversation.in_flight.is_empty() {
                return Poll::Ready(Err(ExchangeError::Closed));
            }
            let slots_before = conversation.free_slots();
            while !conversation.peer_closed {
                let mut filled = ReadBuf::new(receive_buffer);
                match Pin::new(&mut *stream).poll_read(cx, &mut filled) {
                    Poll::Ready(Ok(())) if filled.filled().is_empty() => {
                        if !conversation.in_flight.is_empty() {
                            return Poll::Ready(Err(ExchangeError::Closed));
                        }
                        // Closed between messages: the next one will find out, and its
                        // finding then names a message, as it would for a real client.
                        conversation.peer_closed = true;
                    }
                    Poll::Ready(Ok(())) => {
                        let chunk = filled.filled();
                        let now = Instant::now();
                        self.arrived += chunk.len() as u64;
                        if self.timeline.first_reply.is_none() {
                            self.timeline.first_reply = Some(ctx.since_start());
                        }
                        let echoed = match self.matcher.accept(chunk) {
                            Ok(echoed) => echoed,
                            Err(fault) => return Poll::Ready(Err(ExchangeError::Fault(fault))),
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
                            self.timeline.last_reply = Some(ctx.since_start());
                        }
                        if conversation.all_answered() {
                            return Poll::Ready(Ok(()));
                        }
                    }
                    Poll::Ready(Err(err)) => return Poll::Ready(Err(ExchangeError::Socket(err))),
                    Poll::Pending => break,
                }
            }
            // An echo that freed a slot may make the next message due at once.
            if conversation.free_slots() > slots_before && conversation.next_due(Instant::now()).is_some() {
                continue;
            }
            let now = Instant::now();
            if now >= ctx.run_deadline {
                return Poll::Ready(Err(ExchangeError::Interrupted(Interruption::RunDeadline)));
            }
            let watchdog = conversation.reply_deadline(ctx.group.reply_timeout);
            if watchdog.is_some_and(|at| now >= at) {
                return Poll::Ready(Err(ExchangeError::Interrupted(Interruption::ReplyTimeout)));
            }
            let wake_at = [watchdog, conversation.next_send_time(now)]
                .into_iter()
                .flatten()
                .fold(ctx.run_deadline, Instant::min);
            // The timer is moved earlier when needed, but left alone when the moment to
            // check has only moved later: it then fires early, finds nothing due and is
            // re-armed, once per reply timeout instead of once per message.
            if timer.is_elapsed() || wake_at < timer.deadline() {
                timer.as_mut().reset(wake_at);
            }
            if timer.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
        }
    }

    /// Turns a failed exchange into how the session ended.
    async fn end_of_exchange(
        &mut self,
        error: ExchangeError,
        ctx: &ClientContext,
        stream: &mut TcpStream,
        receive_buffer: &mut [u8],
    ) -> ClientEnd {
        let shortfall = |end| {
            let fault = self
                .matcher
                .shortfall(end)
                .expect("an unfinished exchange owes bytes");
            ClientEnd::EchoFault(fault)
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
            ExchangeError::Interrupted(Interruption::ReplyTimeout) => {
                shortfall(StreamEnd::TimedOut(ctx.group.reply_timeout))
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
            FaultKind::Abort => {
                // SO_LINGER 0 makes close() send RST, as when a client process is killed.
                let _ = stream.set_zero_linger();
                Ok(())
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

    /// Half-closes and watches briefly for bytes that were never sent, such as a reply
    /// sent twice. A server that keeps the connection open after our FIN is not at fault.
    async fn check_trailing_bytes(
        &mut self,
        ctx: &ClientContext,
        stream: &mut TcpStream,
        receive_buffer: &mut [u8],
    ) -> ClientEnd {
        let _ = stream.shutdown().await;
        self.timeline.closed = Some(ctx.since_start());
        let window = Instant::now() + TRAILING_BYTES_WINDOW.min(ctx.group.reply_timeout);
        loop {
            match ctx.bounded(Some(window), stream.read(receive_buffer)).await {
                Ok(Ok(0)) | Ok(Err(_)) | Err(Interruption::ReplyTimeout) => return ClientEnd::Completed,
                Ok(Ok(received)) => {
                    if let Err(fault) = self.matcher.accept(&receive_buffer[..received]) {
                        return ClientEnd::EchoFault(fault);
                    }
                }
                Err(other) => return interrupted_end(other, None, &ctx.group),
            }
        }
    }
}

/// Where one client's exchange of messages stands between wake-ups.
struct Conversation {
    /// Messages to exchange.
    total: u32,
    /// Most messages in flight at once.
    pipeline: usize,
    /// Messages generated and queued for sending so far.
    queued: u32,
    /// Bytes of queued messages, `written` of them already accepted by the socket.
    outgoing: Vec<u8>,
    written: usize,
    /// When each unanswered message left (closed loop) or was due (open loop), oldest first.
    in_flight: VecDeque<Instant>,
    /// Open loop: when each message is due.
    schedule: Option<SendSchedule>,
    /// Closed loop: the pause after each echo before the next message.
    think: Duration,
    /// Closed loop with think time: no message before this.
    resting_until: Option<Instant>,
    /// Last time the server showed life: bytes arrived, or a message left onto an idle
    /// connection. The reply timeout counts from here.
    last_progress: Instant,
    /// The server closed its side while nothing was owed.
    peer_closed: bool,
}

impl Conversation {
    fn new(ctx: &ClientContext, total: u32) -> Conversation {
        let group = &ctx.group;
        let pipeline = group.pipeline.max(1) as usize;
        Conversation {
            total,
            pipeline,
            queued: 0,
            outgoing: Vec::new(),
            written: 0,
            in_flight: VecDeque::with_capacity(pipeline),
            schedule: SendSchedule::of(group, ctx.index, Instant::now()),
            think: group.think,
            resting_until: None,
            last_progress: Instant::now(),
            peer_closed: false,
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
        let start = self.outgoing.len();
        payloads.append_next(&mut self.outgoing);
        matcher.expect(self.queued, &self.outgoing[start..]);
        if self.in_flight.is_empty() {
            self.last_progress = now;
        }
        self.in_flight.push_back(counts_from);
        self.queued += 1;
        self.resting_until = None;
    }

    /// The oldest message in flight was echoed at `now`: returns when it counts from.
    fn answered(&mut self, now: Instant) -> Instant {
        let counts_from = self
            .in_flight
            .pop_front()
            .expect("the matcher completes only messages that were queued");
        if !self.think.is_zero() && self.schedule.is_none() {
            self.resting_until = Some(now + self.think);
        }
        counts_from
    }

    fn all_answered(&self) -> bool {
        self.queued == self.total && self.in_flight.is_empty()
    }

    /// When the reply timeout runs out, while a reply is owed.
    fn reply_deadline(&self, timeout: Duration) -> Option<Instant> {
        (!self.in_flight.is_empty()).then(|| self.last_progress + timeout)
    }
}
