//! The echo workload over UDP: tagged datagrams, and a tally of what came back.
//!
//! UDP promises nothing, so nothing here is an error by itself: each datagram carries a tag
//! (`LBU:<group>.<client>.<seq>.<length>.<checksum>|`) and every reply is classified as an
//! exact echo, a duplicate, one that overtook a later one (reordered), a truncation (a
//! prefix of what was sent: a `recvfrom(1024)` server), or a corruption; what never comes
//! back within the reply timeout is lost. The rates are judged later (`verify::datagrams`).
//!
//! Closed loop by default (send, wait for the echo or the timeout, send the next); with a
//! group `rate`, open loop: datagrams leave on a fixed schedule whatever the server does,
//! and latency is measured from the *intended* send time, so a server that falls behind
//! shows its queueing instead of slowing the sender down (no coordinated omission).

use std::collections::HashMap;
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::time::Instant;

use super::client::{ClientContext, Interruption, failed, interrupted_end, socket_failure};
use super::payload::PayloadGenerator;
use super::record::{ClientEnd, ClientErrorKind, ClientRecord, DatagramTally, Timeline};
use super::schedule::SendSchedule;
use crate::wire::frame::checksum;

/// Largest datagram a reply can be.
const MAX_DATAGRAM: usize = 65_507;
/// Receive buffer asked for each client socket (the kernel caps it at `rmem_max`).
const CLIENT_RECEIVE_BUFFER: usize = 4 * 1024 * 1024;

/// Runs one UDP echo client.
pub async fn run(ctx: ClientContext) -> ClientRecord {
    let mut session = Session {
        timeline: Timeline::default(),
        tally: DatagramTally::default(),
        in_flight: HashMap::new(),
        replies: HashMap::new(),
        highest: None,
        bytes_sent: 0,
        bytes_received: 0,
    };
    let end = session.run(&ctx).await;
    if session.timeline.closed.is_none() {
        session.timeline.closed = Some(ctx.since_start());
    }
    session.tally.lost = session.tally.sent - session.replies.len() as u64;
    ClientRecord {
        group: ctx.group_index,
        index: ctx.index,
        timeline: session.timeline,
        messages_completed: session.tally.echoed as u32,
        bytes_sent: session.bytes_sent,
        bytes_received: session.bytes_received,
        end,
        fault: None,
        datagrams: Some(session.tally),
    }
}

/// A datagram sent: its bytes until its first echo has been compared with them (later
/// copies are duplicates, counted without looking), and when it was (meant to be) sent.
struct Sent {
    bytes: Vec<u8>,
    at: Instant,
}

struct Session {
    timeline: Timeline,
    tally: DatagramTally,
    in_flight: HashMap<u32, Sent>,
    /// Replies per sequence number.
    replies: HashMap<u32, u32>,
    highest: Option<u32>,
    bytes_sent: u64,
    bytes_received: u64,
}

impl Session {
    async fn run(&mut self, ctx: &ClientContext) -> ClientEnd {
        if let Err(interruption) = ctx.bounded(None, tokio::time::sleep_until(ctx.start_at)).await {
            return interrupted_end(interruption, None, &ctx.group);
        }
        self.timeline.connect_start = Some(ctx.since_start());
        let socket = match UdpSocket::bind(("127.0.0.1", 0)).await {
            Ok(socket) => socket,
            Err(err) => return socket_failure(&err, None),
        };
        // A large receive buffer, so that echoes are lost at the server, not in labrun.
        let _ = rustix::net::sockopt::set_socket_recv_buffer_size(&socket, CLIENT_RECEIVE_BUFFER);
        if let Err(err) = socket.connect(ctx.address).await {
            return failed(
                ClientErrorKind::Connect,
                None,
                format!("cannot reach {}: {err}", ctx.address),
            );
        }
        self.timeline.connected = Some(ctx.since_start());
        let group = &ctx.group;
        let mut payloads =
            PayloadGenerator::new(ctx.seed, ctx.group_index, ctx.index, group.size, group.payload);
        let mut body = Vec::new();
        let mut buffer = vec![0u8; MAX_DATAGRAM];
        // Open loop: this client's share of the group's rate.
        let schedule = SendSchedule::of(group, ctx.index, Instant::now());
        for seq in 0..group.messages {
            payloads.next_into(&mut body);
            let mut datagram = format!(
                "LBU:{}.{}.{seq}.{}.{:08x}|",
                ctx.group_index,
                ctx.index,
                body.len(),
                checksum(&body)
            )
            .into_bytes();
            datagram.extend_from_slice(&body);
            let intended = match &schedule {
                Some(schedule) => schedule.due(seq),
                None => Instant::now(),
            };
            // Until it is time to send, take whatever replies arrive.
            if let Err(end) = self
                .receive_until(ctx, &socket, &mut buffer, intended, None)
                .await
            {
                return end;
            }
            if seq == 0 {
                self.timeline.first_send = Some(ctx.since_start());
            }
            match socket.send(&datagram).await {
                Ok(_) => {
                    self.tally.sent += 1;
                    self.bytes_sent += datagram.len() as u64;
                }
                // A refused send (ICMP port unreachable from an earlier datagram) loses
                // this datagram, as UDP may; the run goes on.
                Err(_) => self.tally.sent += 1,
            }
            self.in_flight.insert(
                seq,
                Sent {
                    bytes: datagram,
                    at: intended,
                },
            );
            if schedule.is_none() {
                // Closed loop: wait for this one's echo (or give it up), then think.
                let deadline = Instant::now() + group.reply_timeout;
                if let Err(end) = self
                    .receive_until(ctx, &socket, &mut buffer, deadline, Some(seq))
                    .await
                {
                    return end;
                }
                if !group.think.is_zero()
                    && let Err(interruption) = ctx.bounded(None, tokio::time::sleep(group.think)).await
                {
                    return interrupted_end(interruption, Some(seq), group);
                }
            }
        }
        // Stragglers: everything still owed gets one reply timeout from now.
        let deadline = Instant::now() + group.reply_timeout;
        let owed = self.tally.sent as usize;
        if self.replies.len() < owed
            && let Err(end) = self
                .receive_until(ctx, &socket, &mut buffer, deadline, Some(u32::MAX))
                .await
        {
            return end;
        }
        ClientEnd::Completed
    }

    /// Takes replies until `deadline`, or until the reply to `waiting_for` has come
    /// (`u32::MAX`: until every datagram sent has one).
    async fn receive_until(
        &mut self,
        ctx: &ClientContext,
        socket: &UdpSocket,
        buffer: &mut [u8],
        deadline: Instant,
        waiting_for: Option<u32>,
    ) -> Result<(), ClientEnd> {
        // Whatever is already here is taken first, even when the sender is behind schedule
        // and has no time to wait: echoes must not pile up in labrun's own buffer.
        loop {
            match socket.try_recv(buffer) {
                Ok(n) => self.take(ctx, &buffer[..n]),
                Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(_) => break,
            }
        }
        loop {
            let satisfied = match waiting_for {
                Some(u32::MAX) => self.replies.len() as u64 >= self.tally.sent,
                Some(seq) => self.replies.contains_key(&seq),
                None => false,
            };
            if satisfied || Instant::now() >= deadline {
                return Ok(());
            }
            match ctx.bounded(Some(deadline), socket.recv(buffer)).await {
                Ok(Ok(n)) => self.take(ctx, &buffer[..n]),
                // ICMP port unreachable surfaces as a refused receive: nobody is there now.
                Ok(Err(_)) => tokio::time::sleep(Duration::from_millis(5)).await,
                Err(Interruption::ReplyTimeout) => return Ok(()),
                Err(other) => return Err(interrupted_end(other, None, &ctx.group)),
            }
        }
    }

    /// Classifies one reply.
    fn take(&mut self, ctx: &ClientContext, reply: &[u8]) {
        let now = Instant::now();
        self.bytes_received += reply.len() as u64;
        let since_start = ctx.since_start();
        self.timeline.first_reply.get_or_insert(since_start);
        self.timeline.last_reply = Some(since_start);
        let Some(seq) = sequence_of(reply, ctx.group_index, ctx.index) else {
            self.tally.corrupted += 1;
            self.tally.note(format!(
                "a reply that is none of its datagrams ({} bytes)",
                reply.len()
            ));
            return;
        };
        let Some(sent) = self.in_flight.get_mut(&seq) else {
            self.tally.corrupted += 1;
            self.tally.note(format!(
                "a reply tagged as datagram {} which was never sent",
                seq + 1
            ));
            return;
        };
        let count = self.replies.entry(seq).or_insert(0);
        *count += 1;
        if *count > 1 {
            self.tally.duplicated += 1;
            return;
        }
        if self.highest.is_some_and(|h| h > seq) {
            self.tally.reordered += 1;
        }
        self.highest = Some(self.highest.map_or(seq, |h| h.max(seq)));
        let bytes = std::mem::take(&mut sent.bytes);
        if reply == bytes.as_slice() {
            self.tally.echoed += 1;
            ctx.message_done((seq > 0).then(|| now.saturating_duration_since(sent.at)));
        } else if reply.len() < bytes.len() && bytes.starts_with(reply) {
            self.tally.truncated += 1;
            self.tally.note(format!(
                "datagram {} came back with {} of its {} bytes",
                seq + 1,
                reply.len(),
                bytes.len()
            ));
        } else {
            self.tally.corrupted += 1;
            self.tally
                .note(format!("datagram {} came back with different bytes", seq + 1));
        }
    }
}

/// The sequence number of a reply tagged for this client, if the tag is intact.
fn sequence_of(reply: &[u8], group: usize, index: u32) -> Option<u32> {
    let header_end = reply.iter().take(64).position(|&b| b == b'|')?;
    let header = std::str::from_utf8(reply.get(4..header_end)?).ok()?;
    if !reply.starts_with(b"LBU:") {
        return None;
    }
    let mut parts = header.split('.');
    let (g, i, seq) = (parts.next()?, parts.next()?, parts.next()?);
    (g.parse::<usize>().ok()? == group && i.parse::<u32>().ok()? == index).then_some(())?;
    seq.parse().ok()
}
