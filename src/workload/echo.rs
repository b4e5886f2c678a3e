//! The echo workload: connect, send each message, expect every byte back, think, repeat.
//!
//! Sending and receiving run concurrently within a message. A client that wrote a whole
//! 1 MiB message before reading would deadlock against any echo server: the server blocks
//! sending its echo into our full receive buffer while we block sending into its full one.
//! Every wait is bounded by the reply timeout, the run deadline and Ctrl-C, whichever comes
//! first, so a server that hangs can never hang labrun.
//!
//! A group's faulty clients run the same exchange for their first `after` messages, then
//! misbehave ([`FaultKind`]) the way real clients do to a lab server: die mid-message,
//! half-close, send bytes that are not text, or go silent while holding the connection.

use std::io;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

use super::client::{ClientContext, Interruption, interrupted_end, is_reset, socket_failure};
use super::payload::PayloadGenerator;
use super::record::{ClientEnd, ClientRecord, Timeline};
use crate::scenario::FaultKind;
use crate::verify::stream::{StreamEnd, StreamMatcher};

/// Receive buffer per client: large enough that big echoes arrive in few reads.
const RECEIVE_BUFFER_BYTES: usize = 64 * 1024;
/// After the last message, how long to watch for bytes nobody sent before closing.
const TRAILING_BYTES_WINDOW: Duration = Duration::from_millis(200);
/// What a `garbage` client sends: invalid UTF-8, NUL, a terminal escape, stray line ends.
const GARBAGE: &[u8] = b"\xff\xfe\x00\x1b[2J\xc3\x28\r\n\xa0\xa1\x00\xe2\x28\xa1\xf0\x28\x8c\xbc\x80\n";
/// How many times [`GARBAGE`] is repeated: about a kilobyte, one lab `recv(1024)`.
const GARBAGE_REPEATS: usize = 48;

/// How one message exchange went wrong.
enum ExchangeError {
    Interrupted(Interruption),
    Closed,
    Fault(crate::verify::stream::EchoFault),
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
        rtt_us: session.rtt_us,
        end,
        fault: session.fault,
        datagrams: None,
    }
}

struct Session {
    matcher: StreamMatcher,
    timeline: Timeline,
    completed: u32,
    rtt_us: Vec<u64>,
    payloads: PayloadGenerator,
    fault: Option<FaultKind>,
}

impl Session {
    fn new(ctx: &ClientContext) -> Self {
        let plan = &ctx.group;
        Session {
            matcher: StreamMatcher::new(),
            timeline: Timeline::default(),
            completed: 0,
            rtt_us: Vec::with_capacity(plan.messages.saturating_sub(1) as usize),
            payloads: PayloadGenerator::new(ctx.seed, ctx.group_index, ctx.index, plan.size, plan.payload),
            fault: plan.fault.filter(|_| plan.is_faulty(ctx.index)).map(|f| f.kind),
        }
    }

    async fn run(&mut self, ctx: &ClientContext) -> ClientEnd {
        let mut stream = match ctx.connect(&mut self.timeline).await {
            Ok(stream) => stream,
            Err(end) => return end,
        };

        let mut body = Vec::new();
        let mut receive_buffer = vec![0u8; RECEIVE_BUFFER_BYTES];
        let normal_messages = match (self.fault, ctx.group.fault) {
            (Some(_), Some(plan)) => plan.after,
            _ => ctx.group.messages,
        };
        for message in 0..normal_messages {
            self.payloads.next_into(&mut body);
            self.matcher.expect(message, &body);
            let sent_at = Instant::now();
            if message == 0 {
                self.timeline.first_send = Some(ctx.since_start());
            }
            let exchange = self.exchange(ctx, &mut stream, &body, &mut receive_buffer);
            if let Err(error) = exchange.await {
                return self.end_of_exchange(error, message, ctx);
            }
            let rtt = sent_at.elapsed();
            self.timeline.last_reply = Some(ctx.since_start());
            if message > 0 {
                self.rtt_us.push(rtt.as_micros() as u64);
            }
            self.completed += 1;
            ctx.progress.fetch_add(1, Ordering::Relaxed);
            let more_to_send = message + 1 < normal_messages;
            if more_to_send
                && !ctx.group.think.is_zero()
                && let Err(interruption) = ctx.bounded(None, tokio::time::sleep(ctx.group.think)).await
            {
                return interrupted_end(interruption, None, &ctx.group);
            }
        }
        match self.fault {
            Some(kind) => {
                self.misbehave(kind, ctx, stream, &mut body, &mut receive_buffer)
                    .await
            }
            None => {
                self.check_trailing_bytes(ctx, &mut stream, &mut receive_buffer)
                    .await
            }
        }
    }

    /// Does what a faulty client does instead of finishing politely. Errors on the way are
    /// expected (the server may close first) and ignored: nothing after this point is judged.
    async fn misbehave(
        &mut self,
        kind: FaultKind,
        ctx: &ClientContext,
        mut stream: TcpStream,
        body: &mut Vec<u8>,
        receive_buffer: &mut [u8],
    ) -> ClientEnd {
        let timeout = ctx.group.reply_timeout;
        let first_part = match kind {
            FaultKind::Garbage => GARBAGE.repeat(GARBAGE_REPEATS),
            FaultKind::Abort | FaultKind::HalfClose | FaultKind::Stall => {
                self.payloads.next_into(body);
                body[..body.len() / 2].to_vec()
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

    /// Sends one message while reading its echo; returns once every byte came back. The
    /// reply timeout is an idle timeout: it restarts whenever bytes arrive, so a slow but
    /// steady echo of a large message is not mistaken for a stalled one.
    async fn exchange(
        &mut self,
        ctx: &ClientContext,
        stream: &mut TcpStream,
        body: &[u8],
        receive_buffer: &mut [u8],
    ) -> Result<(), ExchangeError> {
        let timeout = ctx.group.reply_timeout;
        let mut reply_deadline = Instant::now() + timeout;
        let (mut reader, mut writer) = stream.split();
        let write = writer.write_all(body);
        tokio::pin!(write);
        let mut written = false;
        loop {
            tokio::select! {
                outcome = &mut write, if !written => {
                    outcome.map_err(ExchangeError::Socket)?;
                    written = true;
                }
                outcome = ctx.bounded(Some(reply_deadline), reader.read(receive_buffer)) => {
                    let received = outcome.map_err(ExchangeError::Interrupted)?.map_err(ExchangeError::Socket)?;
                    if received == 0 {
                        return Err(ExchangeError::Closed);
                    }
                    reply_deadline = Instant::now() + timeout;
                    if self.timeline.first_reply.is_none() {
                        self.timeline.first_reply = Some(ctx.since_start());
                    }
                    self.matcher.accept(&receive_buffer[..received]).map_err(ExchangeError::Fault)?;
                    if written && self.matcher.caught_up() {
                        return Ok(());
                    }
                }
            }
        }
    }

    fn end_of_exchange(&self, error: ExchangeError, message: u32, ctx: &ClientContext) -> ClientEnd {
        let shortfall = |end| {
            let fault = self
                .matcher
                .shortfall(end)
                .expect("an unfinished exchange owes bytes");
            ClientEnd::EchoFault(fault)
        };
        match error {
            ExchangeError::Fault(fault) => ClientEnd::EchoFault(fault),
            ExchangeError::Closed => shortfall(StreamEnd::Closed),
            ExchangeError::Interrupted(Interruption::ReplyTimeout) => {
                shortfall(StreamEnd::TimedOut(ctx.group.reply_timeout))
            }
            ExchangeError::Interrupted(other) => interrupted_end(other, Some(message), &ctx.group),
            // A reset in the middle of an echo is a short echo with an abrupt end: report
            // how much came back, which is what the student needs to see.
            ExchangeError::Socket(err) if is_reset(&err) => shortfall(StreamEnd::Reset),
            ExchangeError::Socket(err) => socket_failure(&err, Some(message)),
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
