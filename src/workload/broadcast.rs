//! The broadcast workload (lab 5): clients join a chat room and send tagged messages that
//! every other member must receive exactly once, in order.
//!
//! Each client reads and writes at the same time: its reader hands every frame it finds to
//! the room's [`Room`] ledger; its writer first *joins* (repeats its join marker until every
//! connected member has read it), waits for the others that started with it (the join
//! barrier), then sends its messages. A sender never has more than
//! [`MAX_UNSETTLED_BYTES`](crate::wire::frame::MAX_UNSETTLED_BYTES) on their way, so no
//! relay can cut a message (see `wire::frame`). A client with `leave_after` leaves once its
//! last message has reached everyone; the others stay until every sender is done.
//!
//! Load mode (`load = true`) is there to overflow a relay's per-receiver buffers, which the
//! paced room never does: a relay that ignores a short or failed non-blocking `send()` loses
//! bytes only once a receiver's socket buffers are full. Two changes make that happen while
//! keeping every correct relay correct:
//!
//! - A sender waits only until *some* receiver has read each message (the relay has taken
//!   it), not every receiver. The relay still never has more than
//!   [`MAX_UNSETTLED_BYTES`](crate::wire::frame::MAX_UNSETTLED_BYTES) of one sender to
//!   read, so it still reads whole frames and no relay, prefixing ones included, can cut one;
//!   but nothing waits for a slow receiver any more.
//! - Receivers pause reading in turn, one at a time (someone must keep reading, or senders
//!   would stop). A pause lasts until the relay holds more for the receiver than the kernel
//!   could ever buffer (its largest send buffer, `net.ipv4.tcp_wmem`, plus the receiver's
//!   own receive buffer, set small), or until that backlog stops growing (a relay that blocks in
//!   `sendall()` is waiting for this receiver: correct, and nothing more will come), or a
//!   limit of half the shortest reply timeout. Then it drains. A lossy relay has by then
//!   dropped bytes; a correct one queued them or waited.
//!
//! The limit is needed: a relay whose threads share one lock, the holder blocked in
//! `sendall()` to the paused member, can starve one sender's thread of the lock for
//! seconds while the others' messages still flow, so the backlog grows and that sender
//! waits. And it must not let a lossy relay through on a slow machine, where the backlog
//! grows slowly: members are shaped like clients across a real network (see
//! [`shape_load_socket`]), so that a relay's kernel buffers a few hundred kilobytes for
//! them, which even a machine running at a third of its speed piles up within the limit.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpSocket;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::client::{ClientContext, Interruption, failed, interrupted_end};
use super::record::{ClientEnd, ClientErrorKind, ClientRecord, Timeline};
use crate::scenario::LeaveMode;
use crate::wire::frame::{self, FrameReader, Tag};
use crate::workload::room::Room;

/// How often a joining client repeats its marker.
const MARKER_INTERVAL: Duration = Duration::from_millis(100);
/// After the last sender is done, how long readers keep reading for late or duplicate frames.
pub const LINGER: Duration = Duration::from_millis(300);
/// Load mode: a member's receive buffer, small so that a pause fills the relay's side soon.
const LOAD_RECEIVE_BUFFER_BYTES: usize = 64 * 1024;
/// Load mode: a member's segment size, Ethernet's (see [`shape_load_socket`]).
const LOAD_SEGMENT_BYTES: u32 = 1460;
/// Load mode: how often a paused reader looks at its backlog.
const PAUSE_POLL: Duration = Duration::from_millis(10);
/// Load mode: a member pauses again only once less than this waits for it in the relay.
const DRAINED_BYTES: u64 = 512 * 1024;
/// Load mode: a pause ends once the backlog has not grown for this long.
const PAUSE_STALL: Duration = Duration::from_millis(300);
/// Load mode: after a pause that ended because the relay stopped sending to the paused
/// member (it blocks on that member: correct), no member that has paused before pauses
/// again for this long (the first round goes on at once). Blocking again at once would
/// teach nothing new and stall the whole room every few hundred milliseconds.
const REST_AFTER_STALL: Duration = Duration::from_secs(1);
/// Load mode: the longest pause, whatever the reply timeout.
const MAX_PAUSE: Duration = Duration::from_secs(5);
/// Load mode: the kernel's largest TCP send buffer when `/proc` does not say (Linux's default).
const DEFAULT_SEND_BUFFER_MAX_BYTES: u64 = 4 * 1024 * 1024;
/// Load mode: what a pause aims for beyond the kernel's buffers, so a full pause proves that
/// a relay's `send()` had to fall short.
const PAUSE_MARGIN_BYTES: u64 = 256 * 1024;
/// Body bytes: printable ASCII without the frame's `~`.
const ALPHABET: &[u8] =
    b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 .,;:!?-_+=()[]{}<>/*&%$#@'\"";

/// Who a client is in its room.
pub struct Membership {
    pub room: Arc<Room>,
    /// Its id in the room, which is also the sender number in its frames.
    pub id: u32,
    /// Load mode: how its reader pauses.
    pub load: Option<LoadPause>,
}

/// How a load member's reader pauses, the same for the whole room.
#[derive(Debug, Clone, Copy)]
pub struct LoadPause {
    /// The longest pause: half the room's shortest reply timeout (at most [`MAX_PAUSE`]), so
    /// a sender starved by a relay blocked on the paused member never times out and stops
    /// pacing.
    limit: Duration,
    /// The kernel's largest TCP send buffer: what a relay's socket can hold for a receiver.
    send_buffer_max_bytes: u64,
}

impl LoadPause {
    /// The pauses of a room whose shortest reply timeout is `shortest_timeout`.
    pub fn new(shortest_timeout: Duration) -> LoadPause {
        LoadPause {
            limit: (shortest_timeout / 2).min(MAX_PAUSE),
            send_buffer_max_bytes: send_buffer_max_bytes().unwrap_or(DEFAULT_SEND_BUFFER_MAX_BYTES),
        }
    }
}

/// The third field of `net.ipv4.tcp_wmem`: how far the kernel grows a socket's send buffer.
fn send_buffer_max_bytes() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/sys/net/ipv4/tcp_wmem").ok()?;
    text.split_whitespace().nth(2)?.parse().ok()
}

/// Runs one broadcast client.
pub async fn run(ctx: ClientContext, member: Membership) -> ClientRecord {
    let mut timeline = Timeline::default();
    let mut sent = 0u32;
    let (mut bytes_sent, mut bytes_received) = (0u64, 0u64);
    let mut signalled_done = false;
    let connected = match member.load {
        Some(_) => ctx.connect_shaped(&mut timeline, shape_load_socket).await,
        None => ctx.connect(&mut timeline).await,
    };
    let end = match connected {
        Err(end) => end,
        Ok(stream) => {
            member
                .room
                .connected(member.id, timeline.connect_start.unwrap_or_default());
            let (reader, writer) = stream.into_split();
            let leave = CancellationToken::new();
            let reading = read_room(&ctx, &member, reader, &leave, &mut timeline, &mut bytes_received);
            let writing = async {
                let end = write_room(
                    &ctx,
                    &member,
                    writer,
                    &leave,
                    &mut sent,
                    &mut bytes_sent,
                    &mut signalled_done,
                )
                .await;
                // However the writer ended, the reader has nothing left to wait for.
                leave.cancel();
                end
            };
            let (read_end, write_end) = tokio::join!(reading, writing);
            match (write_end, read_end) {
                (ClientEnd::Completed, other) => other,
                (end, _) => end,
            }
        }
    };
    // Whatever happened, this member sends no more; the room must not wait for it.
    if !signalled_done {
        member.room.finished_sending(LINGER);
    }
    if matches!(&end, ClientEnd::Failed(error) if error.kind == ClientErrorKind::Io) {
        // Cut off by the server: owed nothing from now on (the error itself is reported).
        member.room.left(member.id, ctx.since_start());
    }
    if timeline.closed.is_none() {
        timeline.closed = Some(ctx.since_start());
    }
    ClientRecord {
        group: ctx.group_index,
        index: ctx.index,
        timeline,
        messages_completed: sent,
        bytes_sent,
        bytes_received,
        end,
        fault: None,
        datagrams: None,
    }
}

/// Joins, waits for the barrier, sends every message, then leaves (early with `leave_after`).
#[allow(clippy::too_many_arguments)] // the session's counters, kept apart from the shared context
async fn write_room(
    ctx: &ClientContext,
    member: &Membership,
    mut writer: OwnedWriteHalf,
    leave: &CancellationToken,
    sent: &mut u32,
    bytes_sent: &mut u64,
    signalled_done: &mut bool,
) -> ClientEnd {
    let room = &member.room;
    let timeout = ctx.group.reply_timeout;
    let mut frame_bytes = Vec::with_capacity(frame::MAX_UNSETTLED_BYTES);
    let join_deadline = Instant::now() + timeout;
    let marker = Tag {
        sender: member.id,
        seq: 0,
    };
    let mut next_marker = Instant::now();
    loop {
        // Markers go out at a steady pace, however often other members' markers wake us:
        // a marker storm would fill the buffers and let a relay cut frames.
        if Instant::now() >= next_marker {
            frame_bytes.clear();
            frame::encode(marker, b"", &mut frame_bytes);
            if writer.write_all(&frame_bytes).await.is_err() {
                return closed_by_server(ctx);
            }
            next_marker = Instant::now() + MARKER_INTERVAL;
        }
        if room.try_join(member.id, ctx.since_start()) {
            break;
        }
        let next = next_marker.min(join_deadline);
        match ctx.bounded(Some(next), room.markers.notified()).await {
            Ok(()) | Err(Interruption::ReplyTimeout) if Instant::now() < join_deadline => {}
            Ok(()) | Err(Interruption::ReplyTimeout) => {
                if room.try_join(member.id, ctx.since_start()) {
                    break;
                }
                return not_joined(timeout);
            }
            Err(other) => return interrupted_end(other, None, &ctx.group),
        }
    }
    if room.in_barrier(member.id) {
        while !room.barrier_complete() {
            let next = (Instant::now() + MARKER_INTERVAL).min(join_deadline);
            match ctx.bounded(Some(next), room.markers.notified()).await {
                Ok(()) | Err(Interruption::ReplyTimeout) if Instant::now() < join_deadline => {}
                Ok(()) | Err(Interruption::ReplyTimeout) => return not_joined(timeout),
                Err(other) => return interrupted_end(other, None, &ctx.group),
            }
        }
    }

    let mut rng = fastrand::Rng::with_seed(ctx.seed ^ (u64::from(member.id) << 20) ^ 0x6272_6f61);
    let mut body = Vec::new();
    let leave_after = ctx.group.leave_after.unwrap_or(ctx.group.messages);
    for seq in 1..=leave_after {
        let length = rng.u64(ctx.group.size.min..=ctx.group.size.max) as usize;
        body.clear();
        body.extend((0..length).map(|_| ALPHABET[rng.usize(..ALPHABET.len())]));
        frame_bytes.clear();
        frame::encode(
            Tag {
                sender: member.id,
                seq,
            },
            &body,
            &mut frame_bytes,
        );
        if let Err(end) = wait_until(ctx, member, |room| room.may_send(member.id, frame_bytes.len())).await {
            return end;
        }
        if ctx.group.think.is_zero() || seq == 1 {
            // no pause
        } else if let Err(interruption) = ctx.bounded(None, tokio::time::sleep(ctx.group.think)).await {
            return interrupted_end(interruption, Some(seq - 1), &ctx.group);
        }
        room.sent(member.id, seq, frame_bytes.len(), ctx.since_start());
        if writer.write_all(&frame_bytes).await.is_err() {
            return closed_by_server(ctx);
        }
        *sent += 1;
        *bytes_sent += frame_bytes.len() as u64;
        ctx.message_done(None);
    }
    if let Err(end) = wait_until(ctx, member, |room| room.all_settled(member.id)).await {
        return end;
    }
    if ctx.group.leave_after.is_some() {
        room.left(member.id, ctx.since_start());
        leave.cancel();
        match ctx.group.leave {
            LeaveMode::Close => {
                let _ = writer.shutdown().await;
            }
            // SO_LINGER 0: the close, once the reader half is gone too, sends RST; the
            // write half must not send its FIN on drop first, or the relay reads b''.
            LeaveMode::Reset => {
                let _ = writer.as_ref().set_zero_linger();
                writer.forget();
            }
        }
    } else {
        // Stay in the room, reading, until every sender is done.
        room.finished_sending(LINGER);
        *signalled_done = true;
        let _ = ctx.bounded(None, room.done.cancelled()).await;
    }
    ClientEnd::Completed
}

/// Waits until `ready` holds for the room, woken by this member's settled messages. After the
/// reply timeout without progress it gives up on its unsettled messages (their missing
/// deliveries are reported as lost) and goes on.
async fn wait_until(
    ctx: &ClientContext,
    member: &Membership,
    ready: impl Fn(&Room) -> bool,
) -> Result<(), ClientEnd> {
    let room = &member.room;
    let deadline = Instant::now() + ctx.group.reply_timeout;
    if room.gave_up(member.id) {
        room.give_up(member.id);
        return Ok(());
    }
    loop {
        let settled = room.settled(member.id).notified();
        tokio::pin!(settled);
        settled.as_mut().enable();
        if ready(room) {
            return Ok(());
        }
        match ctx.bounded(Some(deadline), settled).await {
            Ok(()) => {}
            Err(Interruption::ReplyTimeout) => {
                room.give_up(member.id);
                return Ok(());
            }
            Err(other) => return Err(interrupted_end(other, None, &ctx.group)),
        }
    }
}

/// Reads the room until the room is done, this member leaves, or the server closes.
async fn read_room(
    ctx: &ClientContext,
    member: &Membership,
    mut reader: OwnedReadHalf,
    leave: &CancellationToken,
    timeline: &mut Timeline,
    bytes_received: &mut u64,
) -> ClientEnd {
    let mut frames = FrameReader::default();
    let mut buffer = vec![0u8; 16 * 1024];
    let end = loop {
        // A load member also wakes when the turn to pause may have come to it; listening
        // before asking, so a turn passed on in between is not missed.
        let turn_passed = member.room.pause_turns.notified();
        tokio::pin!(turn_passed);
        turn_passed.as_mut().enable();
        if let Some(load) = &member.load
            && member
                .room
                .take_pause_turn(member.id, DRAINED_BYTES, ctx.since_start())
        {
            // No `continue`: the select below, which ends the session when the room is done
            // or the run is over, must be reached after every pause.
            pause_reading(ctx, member, load, &reader, leave).await;
        }
        let read = tokio::select! {
            biased;
            () = member.room.done.cancelled() => break ClientEnd::Completed,
            () = leave.cancelled() => break ClientEnd::Completed,
            read = ctx.bounded(None, reader.read(&mut buffer)) => read,
            () = &mut turn_passed, if member.load.is_some() => continue,
        };
        match read {
            Ok(Ok(0)) | Ok(Err(_)) => break closed_by_server(ctx),
            Ok(Ok(n)) => {
                if member.load.is_some() {
                    ack_at_once(&reader);
                }
                *bytes_received += n as u64;
                let now = ctx.since_start();
                for piece in frames.push(&buffer[..n]) {
                    if matches!(piece, frame::Piece::Frame { tag, .. } if tag.seq > 0) {
                        timeline.first_reply.get_or_insert(now);
                        timeline.last_reply = Some(now);
                    }
                    member.room.read(member.id, piece, now);
                }
            }
            Err(other) => break interrupted_end(other, None, &ctx.group),
        }
    };
    member.room.decoration(frames.decoration_bytes);
    timeline.closed.get_or_insert(ctx.since_start());
    end
}

/// Load mode: a load member's socket is shaped like a client's across a real network
/// before it connects, so that what a relay's kernel can buffer for it, and hence what a
/// pause must pile up, is hundreds of kilobytes rather than loopback's megabytes:
///
/// - a small, fixed receive buffer (no autotuning up to `tcp_rmem`'s tens of megabytes);
/// - Ethernet's segment size ([`LOAD_SEGMENT_BYTES`]) instead of loopback's 64 KiB. Linux
///   grows a sender's buffer to twice its congestion window in segments, so with 64 KiB
///   segments a relay's socket holds `tcp_wmem`'s 4 MiB for this member, and with 1,460-byte
///   ones about 800 KiB. A lossy relay then drops bytes five times sooner, which a slow
///   machine (a CI runner with other tests beside it) reaches within a pause.
///
/// Best effort: a socket that refuses only makes pauses longer.
fn shape_load_socket(socket: &TcpSocket) {
    let _ = socket.set_recv_buffer_size(LOAD_RECEIVE_BUFFER_BYTES as u32);
    let _ = socket2::SockRef::from(socket).set_tcp_mss(LOAD_SEGMENT_BYTES);
}

/// Load mode: acknowledges what was read at once rather than after the kernel's delayed-ACK
/// timer (up to 40 ms). A lab relay seldom sets `TCP_NODELAY`, so Nagle holds its next small
/// send to this member until that ACK; with delayed ACKs a room that waits for the relay to
/// take each message would crawl. Linux leaves quick-ACK mode by itself, hence once per read.
fn ack_at_once(reader: &OwnedReadHalf) {
    let _ = rustix::net::sockopt::set_tcp_quickack(reader.as_ref(), true);
}

/// Stops reading until the relay holds more for this member than the kernel can buffer,
/// or its backlog stops growing, or the pause limit passes, or the room is done.
async fn pause_reading(
    ctx: &ClientContext,
    member: &Membership,
    load: &LoadPause,
    reader: &OwnedReadHalf,
    leave: &CancellationToken,
) {
    let room = &member.room;
    let receive_buffer = rustix::net::sockopt::socket_recv_buffer_size(reader.as_ref())
        .map_or(LOAD_RECEIVE_BUFFER_BYTES as u64 * 2, |b| b as u64);
    let target = load.send_buffer_max_bytes + receive_buffer + PAUSE_MARGIN_BYTES;
    let started = Instant::now();
    let mut peak = room.backlog(member.id);
    let mut grew_at = started;
    // Whether the pause ended because the relay stopped sending to this member.
    let stalled = loop {
        let wait = async {
            tokio::select! {
                biased;
                () = room.done.cancelled() => false,
                () = leave.cancelled() => false,
                () = tokio::time::sleep(PAUSE_POLL) => true,
            }
        };
        if !matches!(ctx.bounded(None, wait).await, Ok(true)) {
            break false;
        }
        let backlog = room.backlog(member.id);
        let now = Instant::now();
        if backlog > peak {
            peak = backlog;
            grew_at = now;
        }
        if peak >= target {
            break false;
        }
        if now - grew_at >= PAUSE_STALL {
            break true;
        }
        if now - started >= load.limit {
            break false;
        }
    };
    let rest = if stalled { REST_AFTER_STALL } else { Duration::ZERO };
    room.end_pause(member.id, peak, target, ctx.since_start() + rest);
}

fn closed_by_server(ctx: &ClientContext) -> ClientEnd {
    failed(
        ClientErrorKind::Io,
        None,
        format!(
            "the server closed the connection to {} while the room was still talking",
            ctx.address
        ),
    )
}

fn not_joined(waited: Duration) -> ClientEnd {
    failed(
        ClientErrorKind::Join,
        None,
        format!(
            "did not get into the room within {}: its join marker, or the others', was not relayed to everyone",
            humantime::format_duration(waited)
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Bytes a non-blocking sender gets into the kernel for a peer that reads nothing, the
    /// way a lossy relay's `send()` does before `EAGAIN`: sent in rounds with short gaps, so
    /// that ACKs come back and the send buffer grows as far as Linux lets it.
    async fn buffered_for(shaped: bool) -> usize {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let socket = TcpSocket::new_v4().unwrap();
        if shaped {
            shape_load_socket(&socket);
        }
        let _member = socket.connect(listener.local_addr().unwrap()).await.unwrap();
        let (relay, _) = listener.accept().await.unwrap();
        let chunk = [b'x'; 900];
        let mut buffered = 0;
        for _ in 0..100 {
            while let Ok(n) = relay.try_write(&chunk) {
                buffered += n;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        buffered
    }

    #[tokio::test]
    async fn a_load_member_gets_a_relay_to_buffer_hundreds_of_kilobytes_not_megabytes() {
        let plain = buffered_for(false).await;
        let shaped = buffered_for(true).await;
        // Loopback's 64 KiB segments let the relay's buffer grow to tcp_wmem's maximum (4
        // MiB by default); Ethernet's segments keep it to some 800 KiB.
        assert!(shaped < 1536 * 1024, "shaped: {shaped} bytes (plain: {plain})");
        assert!(shaped <= plain, "shaped: {shaped} bytes, plain: {plain}");
    }
}
