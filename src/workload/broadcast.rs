//! The broadcast workload (lab 5): clients join a chat room and send tagged messages that
//! every other member must receive exactly once, in order.
//!
//! Each client reads and writes at the same time: its reader hands every frame it finds to
//! the room's [`Room`] ledger; its writer first *joins* (repeats its join marker until every
//! connected member has read it), waits for the others that started with it (the join
//! barrier), then sends its messages. A sender never has more than
//! [`MAX_UNSETTLED_BYTES`](crate::verify::frame::MAX_UNSETTLED_BYTES) on their way, so no
//! relay can cut a message (see `verify::frame`). A client with `leave_after` leaves once its
//! last message has reached everyone; the others stay until every sender is done.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::client::{ClientContext, Interruption, failed, interrupted_end};
use super::record::{ClientEnd, ClientErrorKind, ClientRecord, Timeline};
use crate::verify::frame::{self, FrameReader, Tag};
use crate::verify::ledger::Room;

/// How often a joining client repeats its marker.
const MARKER_INTERVAL: Duration = Duration::from_millis(100);
/// After the last sender is done, how long readers keep reading for late or duplicate frames.
pub const LINGER: Duration = Duration::from_millis(300);
/// Body bytes: printable ASCII without the frame's `~`.
const ALPHABET: &[u8] =
    b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 .,;:!?-_+=()[]{}<>/*&%$#@'\"";

/// Who a client is in its room.
pub struct Membership {
    /// The room.
    pub room: Arc<Room>,
    /// Its id in the room, which is also the sender number in its frames.
    pub id: u32,
}

/// Runs one broadcast client.
pub async fn run(ctx: ClientContext, member: Membership) -> ClientRecord {
    let mut timeline = Timeline::default();
    let mut sent = 0u32;
    let (mut bytes_sent, mut bytes_received) = (0u64, 0u64);
    let mut signalled_done = false;
    let end = match ctx.connect(&mut timeline).await {
        Err(end) => end,
        Ok(stream) => {
            member.room.connected(member.id);
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
        let _ = writer.shutdown().await;
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
        let read = tokio::select! {
            biased;
            () = member.room.done.cancelled() => break ClientEnd::Completed,
            () = leave.cancelled() => break ClientEnd::Completed,
            read = ctx.bounded(None, reader.read(&mut buffer)) => read,
        };
        match read {
            Ok(Ok(0)) | Ok(Err(_)) => break closed_by_server(ctx),
            Ok(Ok(n)) => {
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
