//! The broadcast room's ledger: who was in the room, what each member sent, and who
//! received it. Live state shared by the room's clients while they run (it paces senders and
//! wakes them), so it lives with the broadcast driver; the `fanout` judge reads only the
//! [`RoomOutcome`] it leaves.
//!
//! Every simulated client of a broadcast room reports here: when it connected, each frame it
//! sent, each frame it read, when it left. Because labrun plays every member, the ledger
//! knows the exact set of receivers each message owed: the members that had joined before it
//! was sent. At the end it proves exactly-once delivery to each of them, per-sender order,
//! and sender exclusion, and it names every loss, duplicate, reordering and corruption.
//!
//! Membership is decided by join markers: a client has *joined* once every other connected
//! member has read its marker, which proves the server relays its messages to all of them.
//! A member that leaves is owed nothing it had not received by then.
//!
//! Pacing, which keeps a relay from ever cutting a frame (see `wire::frame`): a sender may
//! have at most [`MAX_UNSETTLED_BYTES`] that the relay may still have to read. Normally that
//! is every byte not yet delivered *everywhere*. A load-mode member counts only the bytes no
//! receiver has read yet: once one receiver has read a message, the relay has taken it, and
//! what it still owes a paused receiver piles up in the relay (the member's *backlog*, which
//! the ledger keeps per receiver). Pauses go round the load members one at a time, so
//! someone is always reading what the relay takes.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use serde::Serialize;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::escape::escape_bytes;
use crate::histogram::Latency;
use crate::wire::frame::{MAX_UNSETTLED_BYTES, Piece, Tag};

/// How long before a member began to connect a message must have reached everyone it was
/// owed to for its arrival at that member to be a replay. A relay that walks its live list
/// of clients without a lock can add a newcomer while it is still relaying; a thread
/// descheduled in that loop on a loaded machine can take a while to get there.
const REPLAY_MARGIN: Duration = Duration::from_secs(1);

/// Examples of each kind of fault kept for the report; the rest are counted.
pub const EXAMPLES_KEPT: usize = 10;

/// One room: the clients of one server that run the broadcast workload.
pub struct Room {
    state: Mutex<RoomState>,
    /// Wakes a sender when one of its messages has reached everyone it owed.
    settled: Vec<Notify>,
    /// Wakes joiners when a marker was read.
    pub markers: Notify,
    /// Wakes load members when the turn to pause may have moved: a pause ended, the first
    /// message was sent, or a member left.
    pub pause_turns: Notify,
    /// Fires when every member has finished sending and the stragglers had time to arrive.
    pub done: CancellationToken,
    include_sender: bool,
}

struct Member {
    name: String,
    group: usize,
    in_barrier: bool,
    connected: bool,
    /// When it began to connect (since the start of the run).
    connect_started_at: Option<Duration>,
    joined_at: Option<Duration>,
    left_at: Option<Duration>,
    /// `seen_by[r]`: member `r` has read this member's marker.
    seen_by: Vec<bool>,
    /// Highest sequence number read from each sender.
    last_from: HashMap<u32, u32>,
    /// Bytes sent that have not reached everyone yet.
    unsettled_bytes: usize,
    /// Its messages not yet settled, oldest first.
    unsettled: Vec<u32>,
    /// Its messages stopped reaching the room once; it no longer waits for them.
    gave_up: bool,
    /// Load mode: paced by [`Member::untaken_bytes`] and pausing its reads in turn.
    load: bool,
    /// Bytes sent that no receiver has read yet (the relay may not have taken them).
    untaken_bytes: usize,
    /// Bytes owed to it that another receiver has read (so the relay has taken them) and it
    /// has not: what the relay holds for it.
    backlog_bytes: u64,
    /// Load mode: it has paused at least once.
    paused_once: bool,
}

struct Sent {
    at: Duration,
    bytes: usize,
    owed: Vec<u32>,
    received: Vec<u32>,
    /// When the last member it was owed to read it, if every one of them did.
    reached_everyone_at: Option<Duration>,
}

#[derive(Default)]
struct RoomState {
    members: Vec<Member>,
    messages: HashMap<Tag, Sent>,
    senders_active: usize,
    faults: Faults,
    fanout: Vec<Latency>,
    first_send: Option<Duration>,
    last_delivery: Option<Duration>,
    deliveries: u64,
    decoration_bytes: u64,
    /// The load member reading nothing right now, if any.
    pausing: Option<u32>,
    /// Where the search for the next member to pause starts.
    pause_next: usize,
    /// No pause starts before this time since the start of the run.
    pauses_resume_at: Duration,
    load: LoadOutcome,
}

/// What the load mode did to the relay: how often receivers paused and how much piled up.
#[derive(Debug, Clone, Default, Serialize)]
pub struct LoadOutcome {
    /// Pauses taken by the room's load members.
    pub pauses: u32,
    /// Pauses that ended with more waiting in the relay than the kernel can buffer.
    pub full_pauses: u32,
    /// The most bytes the relay held for one paused receiver.
    pub largest_backlog_bytes: u64,
    /// What a pause aimed for: the kernel's largest send buffer plus the receiver's own.
    pub target_bytes: u64,
}

/// Counts and examples of each kind of fault.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Faults {
    /// Owed deliveries that never happened.
    pub lost: Tally,
    /// Messages a member read more than once.
    pub duplicated: Tally,
    /// Messages relayed back to their sender (with `include_sender = false`).
    pub to_sender: Tally,
    /// Messages not relayed back to their sender (with `include_sender = true`).
    pub not_to_sender: Tally,
    /// Messages read after a later one from the same sender.
    pub out_of_order: Tally,
    /// Messages a member read that had reached everyone they were owed to well before it
    /// began to connect: a relay that replays what was said before a member joined.
    pub replayed: Tally,
    /// Frames whose body failed its checksum.
    pub corrupted: Tally,
    /// Bytes that were no frame: cut, merged or invented by the server.
    pub garbled: Tally,
}

/// How often one fault happened, with the first few occurrences described.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Tally {
    /// How many times.
    pub count: u64,
    /// The first [`EXAMPLES_KEPT`], in words.
    pub examples: Vec<String>,
}

impl Tally {
    fn add(&mut self, describe: impl FnOnce() -> String) {
        self.count += 1;
        if self.examples.len() < EXAMPLES_KEPT {
            self.examples.push(describe());
        }
    }
}

/// What the room's members were, for [`Room::new`].
pub struct MemberSpec {
    /// `group#n`.
    pub name: String,
    /// Index of its group in the plan.
    pub group: usize,
    /// It starts with the room and waits for everyone else to join before sending.
    pub in_barrier: bool,
    /// Its group runs in load mode.
    pub load: bool,
}

/// The ledger's verdict material for one room.
#[derive(Debug, Clone, Serialize)]
pub struct RoomOutcome {
    pub server: String,
    pub members: usize,
    /// Members that joined.
    pub joined: usize,
    /// Barrier members that never joined, with who had not read their marker.
    pub not_joined: Vec<String>,
    /// Messages sent (join markers not counted).
    pub messages: u64,
    /// Deliveries owed to members that stayed.
    pub owed: u64,
    /// Distinct intact deliveries read.
    pub delivered: u64,
    /// Whether messages were meant to reach their sender too.
    pub include_sender: bool,
    /// Everything that went wrong.
    pub faults: Faults,
    /// Bytes the server added around frames (prefixes, newlines): allowed, and counted.
    pub decoration_bytes: u64,
    /// With load members: their pauses and the backlogs they built.
    pub load: Option<LoadOutcome>,
    /// Deliveries per second, first send to last delivery.
    pub deliveries_per_second: f64,
    /// Fan-out latency (send → each receiver) by the sender's group, indexed like the plan.
    #[serde(skip)]
    pub fanout: Vec<Latency>,
}

impl Room {
    /// A room for `members` (room-local ids are their indices), in a plan of `groups` groups.
    pub fn new(members: Vec<MemberSpec>, groups: usize, include_sender: bool) -> Room {
        let count = members.len();
        let members: Vec<Member> = members
            .into_iter()
            .map(|spec| Member {
                name: spec.name,
                group: spec.group,
                in_barrier: spec.in_barrier,
                connected: false,
                connect_started_at: None,
                joined_at: None,
                left_at: None,
                seen_by: vec![false; count],
                last_from: HashMap::new(),
                unsettled_bytes: 0,
                unsettled: Vec::new(),
                gave_up: false,
                load: spec.load,
                untaken_bytes: 0,
                backlog_bytes: 0,
                paused_once: false,
            })
            .collect();
        Room {
            state: Mutex::new(RoomState {
                senders_active: count,
                fanout: vec![Latency::default(); groups],
                members,
                ..RoomState::default()
            }),
            settled: (0..count).map(|_| Notify::new()).collect(),
            markers: Notify::new(),
            pause_turns: Notify::new(),
            done: CancellationToken::new(),
            include_sender,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, RoomState> {
        // A panicking client is a labrun bug that aborts the run anyway; the data is still
        // consistent enough to read, so poisoning is not worth a second panic.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The settle notification of member `id`.
    pub fn settled(&self, id: u32) -> &Notify {
        &self.settled[id as usize]
    }

    /// Member `id`, which began to connect at `started_at` (since the start of the run), is
    /// connected.
    pub fn connected(&self, id: u32, started_at: Duration) {
        let mut state = self.lock();
        let member = &mut state.members[id as usize];
        member.connected = true;
        member.connect_started_at = Some(started_at);
    }

    /// Whether member `id` has joined (deciding it now if every connected member read its
    /// marker).
    pub fn try_join(&self, id: u32, now: Duration) -> bool {
        let mut state = self.lock();
        let id = id as usize;
        if state.members[id].joined_at.is_some() {
            return true;
        }
        let seen_by_all = state
            .members
            .iter()
            .enumerate()
            .all(|(r, m)| r == id || !m.connected || m.left_at.is_some() || state.members[id].seen_by[r]);
        if seen_by_all {
            state.members[id].joined_at = Some(now);
        }
        seen_by_all
    }

    /// Whether member `id` started with the room and so waits at the join barrier.
    pub fn in_barrier(&self, id: u32) -> bool {
        self.lock().members[id as usize].in_barrier
    }

    /// Whether every barrier member has joined.
    pub fn barrier_complete(&self) -> bool {
        self.lock()
            .members
            .iter()
            .filter(|m| m.in_barrier)
            .all(|m| m.joined_at.is_some())
    }

    /// Whether member `id` may send `bytes` more without exceeding its allowance: bytes not
    /// yet delivered everywhere, or under load, bytes no receiver has read yet.
    pub fn may_send(&self, id: u32, bytes: usize) -> bool {
        let state = self.lock();
        let member = &state.members[id as usize];
        let pending = if member.load {
            member.untaken_bytes
        } else {
            member.unsettled_bytes
        };
        pending == 0 || pending + bytes <= MAX_UNSETTLED_BYTES
    }

    /// Whether everything member `id` sent has settled.
    pub fn all_settled(&self, id: u32) -> bool {
        self.lock().members[id as usize].unsettled.is_empty()
    }

    /// Stops waiting for member `id`'s unsettled messages (they timed out): what was not
    /// delivered is lost, which `finish` reports. From then on the member sends without
    /// waiting, so a broken relay costs one reply timeout, not one per message.
    pub fn give_up(&self, id: u32) {
        let mut state = self.lock();
        let member = &mut state.members[id as usize];
        member.unsettled.clear();
        member.unsettled_bytes = 0;
        member.untaken_bytes = 0;
        member.gave_up = true;
    }

    /// Whether member `id` has given up waiting for its messages to settle.
    pub fn gave_up(&self, id: u32) -> bool {
        self.lock().members[id as usize].gave_up
    }

    /// Member `id` sent message `seq` of `bytes` bytes at `now`: it is owed to every member
    /// that had joined by then and has not left.
    pub fn sent(&self, id: u32, seq: u32, bytes: usize, now: Duration) {
        let mut state = self.lock();
        let owed: Vec<u32> = state
            .members
            .iter()
            .enumerate()
            .filter(|(r, m)| {
                (*r != id as usize || self.include_sender)
                    && m.joined_at.is_some_and(|joined| joined <= now)
                    && m.left_at.is_none()
            })
            .map(|(r, _)| r as u32)
            .collect();
        if state.first_send.is_none() {
            state.first_send = Some(now);
            self.pause_turns.notify_waiters();
        }
        let tag = Tag { sender: id, seq };
        let settled_now = owed.is_empty();
        state.messages.insert(
            tag,
            Sent {
                at: now,
                bytes,
                owed,
                received: Vec::new(),
                reached_everyone_at: None,
            },
        );
        if !settled_now {
            let member = &mut state.members[id as usize];
            member.unsettled_bytes += bytes;
            member.untaken_bytes += bytes;
            member.unsettled.push(seq);
        }
    }

    /// Member `receiver` read `piece` at `now`.
    pub fn read(&self, receiver: u32, piece: Piece, now: Duration) {
        let mut state = self.lock();
        let state = &mut *state;
        let Some(tag) = intact_frame(state, receiver, piece) else {
            return;
        };
        // Names are looked up only when a fault is described: no allocation per delivery.
        let (r, from) = (receiver as usize, tag.sender as usize);
        if tag.seq == 0 {
            state.members[tag.sender as usize].seen_by[receiver as usize] = true;
            self.markers.notify_waiters();
            return;
        }
        let Some(sent) = state.messages.get_mut(&tag) else {
            state.faults.garbled.add(|| {
                format!(
                    "{receiver_name} read message {} of {sender_name}, which was never sent",
                    tag.seq,
                    receiver_name = state.members[r].name,
                    sender_name = state.members[from].name
                )
            });
            return;
        };
        if sent.received.contains(&receiver) {
            state.faults.duplicated.add(|| {
                format!(
                    "{receiver_name} read message {} of {sender_name} again",
                    tag.seq,
                    receiver_name = state.members[r].name,
                    sender_name = state.members[from].name
                )
            });
            return;
        }
        // A correct relay sends a member only what it reads while that member is in its
        // list. One that had relayed a message to everyone a whole second before this member
        // even began to connect cannot send it here unless it kept it to replay.
        if let Some(everywhere) = sent.reached_everyone_at
            && !sent.owed.contains(&receiver)
            && state.members[r]
                .connect_started_at
                .is_some_and(|started| started > everywhere + REPLAY_MARGIN)
        {
            state.faults.replayed.add(|| {
                format!(
                    "{receiver_name} read message {} of {sender_name}, which had reached everyone \
                     it was owed to more than {} before {receiver_name} began to connect",
                    tag.seq,
                    crate::units::duration(REPLAY_MARGIN),
                    receiver_name = state.members[r].name,
                    sender_name = state.members[from].name
                )
            });
            return;
        }
        let first_read = sent.received.is_empty();
        sent.received.push(receiver);
        if sent.reached_everyone_at.is_none() && sent.owed.iter().all(|owed| sent.received.contains(owed)) {
            sent.reached_everyone_at = Some(now);
        }
        take(&mut state.members, sent, tag.sender, receiver, first_read);
        if first_read {
            self.settled[tag.sender as usize].notify_waiters();
        }
        if receiver == tag.sender && !self.include_sender {
            state.faults.to_sender.add(|| {
                format!(
                    "{sender_name} got its own message {} back",
                    tag.seq,
                    sender_name = state.members[from].name
                )
            });
        }
        let latency = now.saturating_sub(sent.at);
        // Members who left are owed nothing more (see `left`).
        let members = &state.members;
        let all_in = sent
            .owed
            .iter()
            .all(|r| sent.received.contains(r) || members[*r as usize].left_at.is_some());
        let bytes = sent.bytes;
        let sender_group = state.members[tag.sender as usize].group;
        state.fanout[sender_group].record(latency);
        state.deliveries += 1;
        state.last_delivery = Some(now);
        note_order(state, receiver, tag);
        if all_in {
            let member = &mut state.members[tag.sender as usize];
            if let Some(position) = member.unsettled.iter().position(|&s| s == tag.seq) {
                member.unsettled.remove(position);
                member.unsettled_bytes = member.unsettled_bytes.saturating_sub(bytes);
                self.settled[tag.sender as usize].notify_waiters();
            }
        }
    }

    /// Whether load member `id` should stop reading now: nobody else is paused, messages are
    /// flowing, and it is the next member in turn that is still in the room and has drained
    /// its last pause (less than `drained_bytes` waiting for it; one that never drains, having
    /// lost messages, is passed over). A member that has paused before waits, besides, until
    /// `now` (since the start of the run) is no earlier than the last pause asked: every
    /// member gets its first pause at once. Taking the turn starts its pause;
    /// [`Room::end_pause`] passes it on.
    pub fn take_pause_turn(&self, id: u32, drained_bytes: u64, now: Duration) -> bool {
        let mut state = self.lock();
        let member = &state.members[id as usize];
        if !member.load
            || state.pausing.is_some()
            || (member.paused_once && now < state.pauses_resume_at)
            || state.first_send.is_none()
            || self.done.is_cancelled()
        {
            return false;
        }
        let count = state.members.len();
        let next = (0..count)
            .map(|step| (state.pause_next + step) % count)
            .find(|&m| {
                let member = &state.members[m];
                member.load
                    && member.joined_at.is_some()
                    && member.left_at.is_none()
                    && member.backlog_bytes < drained_bytes
            });
        if next != Some(id as usize) {
            return false;
        }
        state.pausing = Some(id);
        state.pause_next = id as usize + 1;
        state.members[id as usize].paused_once = true;
        true
    }

    /// What the relay holds for member `id`: owed bytes another receiver has read and it
    /// has not.
    pub fn backlog(&self, id: u32) -> u64 {
        self.lock().members[id as usize].backlog_bytes
    }

    /// Member `id` reads again after a pause in which up to `peak_bytes` waited for it; the
    /// pause aimed for `target_bytes`. The next pause may start at `next_at` (since the start
    /// of the run).
    pub fn end_pause(&self, id: u32, peak_bytes: u64, target_bytes: u64, next_at: Duration) {
        let mut state = self.lock();
        if state.pausing == Some(id) {
            state.pausing = None;
        }
        state.pauses_resume_at = next_at;
        let load = &mut state.load;
        load.pauses += 1;
        load.full_pauses += u32::from(peak_bytes >= target_bytes);
        load.largest_backlog_bytes = load.largest_backlog_bytes.max(peak_bytes);
        load.target_bytes = load.target_bytes.max(target_bytes);
        drop(state);
        self.pause_turns.notify_waiters();
    }

    /// Bytes a member's reader skipped around frames.
    pub fn decoration(&self, bytes: u64) {
        self.lock().decoration_bytes += bytes;
    }

    /// Member `id` left (or was disconnected) at `now`: nothing more is owed to it.
    pub fn left(&self, id: u32, now: Duration) {
        let mut state = self.lock();
        state.members[id as usize].left_at.get_or_insert(now);
        // Messages that were waiting only for members who have left are settled now.
        let mut woken = Vec::new();
        let RoomState {
            members, messages, ..
        } = &mut *state;
        let gone: Vec<bool> = members.iter().map(|m| m.left_at.is_some()).collect();
        for (sender, member) in members.iter_mut().enumerate() {
            let (mut freed_untaken, mut freed_unsettled) = (0, 0);
            member.unsettled.retain(|&seq| {
                let tag = Tag {
                    sender: sender as u32,
                    seq,
                };
                let Some(sent) = messages.get(&tag) else {
                    return false;
                };
                let waiting = sent
                    .owed
                    .iter()
                    .any(|r| !sent.received.contains(r) && !gone[*r as usize]);
                if !waiting {
                    freed_unsettled += sent.bytes;
                    if sent.received.is_empty() {
                        freed_untaken += sent.bytes;
                    }
                }
                waiting
            });
            if freed_unsettled > 0 {
                member.unsettled_bytes = member.unsettled_bytes.saturating_sub(freed_unsettled);
                member.untaken_bytes = member.untaken_bytes.saturating_sub(freed_untaken);
                woken.push(sender);
            }
        }
        drop(state);
        for sender in woken {
            self.settled[sender].notify_waiters();
        }
        self.pause_turns.notify_waiters();
    }

    /// Member `id` will send no more. When the last one stops, the room closes after
    /// `linger`, time for late or duplicate frames to show up.
    pub fn finished_sending(&self, linger: Duration) {
        let mut state = self.lock();
        state.senders_active = state.senders_active.saturating_sub(1);
        if state.senders_active == 0 {
            let done = self.done.clone();
            tokio::spawn(async move {
                tokio::time::sleep(linger).await;
                done.cancel();
            });
        }
    }

    /// Settles the accounts: every owed delivery to a member that stayed must have happened.
    pub fn finish(&self, server: &str) -> RoomOutcome {
        let mut state = self.lock();
        let state = &mut *state;
        let mut owed_total = 0u64;
        let mut tags: Vec<&Tag> = state.messages.keys().collect();
        tags.sort_by_key(|t| (t.sender, t.seq));
        for tag in tags {
            let sent = &state.messages[tag];
            for &r in &sent.owed {
                let member = &state.members[r as usize];
                let received = sent.received.contains(&r);
                if member.left_at.is_some() && !received {
                    continue;
                }
                owed_total += 1;
                if !received {
                    let sender = &state.members[tag.sender as usize].name;
                    let text = if r == tag.sender {
                        format!("{sender} never got its own message {} back", tag.seq)
                    } else {
                        format!("{} never read message {} of {sender}", member.name, tag.seq)
                    };
                    if r == tag.sender {
                        state.faults.not_to_sender.add(|| text);
                    } else {
                        state.faults.lost.add(|| text);
                    }
                }
            }
        }
        let not_joined = state
            .members
            .iter()
            .enumerate()
            .filter(|(_, m)| m.in_barrier && m.joined_at.is_none())
            .map(|(id, m)| {
                let missing: Vec<&str> = state
                    .members
                    .iter()
                    .enumerate()
                    .filter(|(r, other)| *r != id && other.connected && !m.seen_by[*r])
                    .map(|(_, other)| other.name.as_str())
                    .take(5)
                    .collect();
                if missing.is_empty() {
                    format!("{} (never connected or never sent its marker)", m.name)
                } else {
                    format!("{} (its marker never reached {})", m.name, missing.join(", "))
                }
            })
            .collect();
        let span = match (state.first_send, state.last_delivery) {
            (Some(first), Some(last)) => last.saturating_sub(first).as_secs_f64(),
            _ => 0.0,
        };
        RoomOutcome {
            server: server.to_owned(),
            members: state.members.len(),
            joined: state.members.iter().filter(|m| m.joined_at.is_some()).count(),
            not_joined,
            messages: state.messages.len() as u64,
            owed: owed_total,
            delivered: state.deliveries,
            include_sender: self.include_sender,
            faults: state.faults.clone(),
            decoration_bytes: state.decoration_bytes,
            load: state.members.iter().any(|m| m.load).then(|| state.load.clone()),
            deliveries_per_second: if span > 0.0 {
                state.deliveries as f64 / span
            } else {
                0.0
            },
            fanout: state.fanout.clone(),
        }
    }
}

/// The tag of `piece` if it is an intact frame from a member that exists; otherwise the
/// fault is tallied and there is nothing to deliver.
fn intact_frame(state: &mut RoomState, receiver: u32, piece: Piece) -> Option<Tag> {
    // Names are looked up only when a fault is described: no allocation per delivery.
    let r = receiver as usize;
    let (tag, intact) = match piece {
        Piece::Garbled(bytes) => {
            state.faults.garbled.add(|| {
                let shown = escape_bytes(&bytes[..bytes.len().min(60)]);
                format!(
                    "{receiver_name} read {} byte(s) that are no message: \"{shown}\"",
                    bytes.len(),
                    receiver_name = state.members[r].name
                )
            });
            return None;
        }
        Piece::Frame { tag, intact } => (tag, intact),
    };
    if state.members.get(tag.sender as usize).is_none() {
        state.faults.garbled.add(|| {
            format!(
                "{receiver_name} read a message from sender {} who does not exist",
                tag.sender,
                receiver_name = state.members[r].name
            )
        });
        return None;
    }
    let from = tag.sender as usize;
    if !intact {
        state.faults.corrupted.add(|| {
            format!(
                "{receiver_name} read message {} of {sender_name} with its bytes changed",
                tag.seq,
                receiver_name = state.members[r].name,
                sender_name = state.members[from].name
            )
        });
        return None;
    }
    Some(tag)
}

/// Records that `receiver` read message `tag`, tallying it out of order when it read a
/// later message of the same sender before.
fn note_order(state: &mut RoomState, receiver: u32, tag: Tag) {
    let (r, from) = (receiver as usize, tag.sender as usize);
    let previous = state.members[receiver as usize]
        .last_from
        .insert(tag.sender, tag.seq);
    if let Some(previous) = previous.filter(|&p| p > tag.seq) {
        state.members[receiver as usize]
            .last_from
            .insert(tag.sender, previous);
        state.faults.out_of_order.add(|| {
            format!(
                "{receiver_name} read message {} of {sender_name} after its message {previous}",
                tag.seq,
                receiver_name = state.members[r].name,
                sender_name = state.members[from].name
            )
        });
    }
}

/// `receiver` read `sent` (from `sender`) for the first time. The first read of a message
/// shows the relay has taken it: it leaves its sender's untaken bytes and joins the backlog
/// of every other receiver it is owed to, until each reads it.
fn take(members: &mut [Member], sent: &Sent, sender: u32, receiver: u32, first_read: bool) {
    let bytes = sent.bytes as u64;
    if first_read {
        let member = &mut members[sender as usize];
        member.untaken_bytes = member.untaken_bytes.saturating_sub(sent.bytes);
        for &r in sent.owed.iter().filter(|&&r| r != receiver) {
            members[r as usize].backlog_bytes += bytes;
        }
    } else if sent.owed.contains(&receiver) {
        let member = &mut members[receiver as usize];
        member.backlog_bytes = member.backlog_bytes.saturating_sub(bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn joined_room(load: bool) -> Room {
        let members = (1..=3)
            .map(|n| MemberSpec {
                name: format!("m#{n}"),
                group: 0,
                in_barrier: true,
                load,
            })
            .collect();
        let room = Room::new(members, 1, false);
        for id in 0..3 {
            room.connected(id, Duration::ZERO);
        }
        for (sender, receiver) in (0..3).flat_map(|s| (0..3).map(move |r| (s, r))) {
            if sender != receiver {
                deliver(&room, receiver, sender, 0);
            }
        }
        for id in 0..3 {
            assert!(room.try_join(id, Duration::ZERO));
        }
        room
    }

    fn deliver(room: &Room, receiver: u32, sender: u32, seq: u32) {
        let piece = Piece::Frame {
            tag: Tag { sender, seq },
            intact: true,
        };
        room.read(receiver, piece, Duration::from_millis(1));
    }

    #[test]
    fn under_load_a_sender_waits_only_for_the_relay_to_take_its_message() {
        for load in [false, true] {
            let room = joined_room(load);
            room.sent(0, 1, 900, Duration::ZERO);
            assert!(!room.may_send(0, 900));
            deliver(&room, 1, 0, 1);
            // Member 2 has not read it: the paced room still waits, the loaded one goes on.
            assert_eq!(room.may_send(0, 900), load);
            assert_eq!(room.backlog(2), 900);
            assert_eq!(room.backlog(1), 0);
            deliver(&room, 2, 0, 1);
            assert!(room.may_send(0, 900));
            assert_eq!(room.backlog(2), 0);
            assert_eq!(room.finish("s").faults.lost.count, 0);
        }
    }

    #[test]
    fn what_was_said_well_before_a_member_connected_is_a_replay_if_it_reaches_it() {
        let at = Duration::from_millis;
        let members = (1..=3)
            .map(|n| MemberSpec {
                name: format!("m#{n}"),
                group: 0,
                in_barrier: false,
                load: false,
            })
            .collect();
        let room = Room::new(members, 1, false);
        room.connected(0, at(0));
        room.connected(1, at(0));
        deliver(&room, 0, 1, 0);
        deliver(&room, 1, 0, 0);
        assert!(room.try_join(0, at(10)) && room.try_join(1, at(10)));
        let frame = |seq| Piece::Frame {
            tag: Tag { sender: 0, seq },
            intact: true,
        };
        // Message 1 reaches member 1, its only receiver, at 100 ms; message 2 at 4.5 s.
        room.sent(0, 1, 100, at(50));
        room.read(1, frame(1), at(100));
        room.sent(0, 2, 100, at(4400));
        room.read(1, frame(2), at(4500));
        // Member 2 begins to connect at 5 s and gets both: message 1 had reached everyone
        // long before, message 2 could still have been on its way through the relay.
        room.connected(2, at(5000));
        room.read(2, frame(1), at(5100));
        room.read(2, frame(2), at(5100));
        let outcome = room.finish("s");
        assert_eq!(outcome.faults.replayed.count, 1);
        assert_eq!(
            outcome.faults.replayed.examples,
            [
                "m#3 read message 1 of m#1, which had reached everyone it was owed to more than 1.00 s before m#3 began to connect"
            ]
        );
        assert_eq!(outcome.faults.lost.count + outcome.faults.duplicated.count, 0);
    }

    #[test]
    fn every_member_gets_its_first_pause_without_a_rest() {
        const DRAINED: u64 = 1000;
        let room = joined_room(true);
        room.sent(1, 1, 100, Duration::ZERO);
        let rest_until = Duration::from_secs(1);
        for id in 0..3 {
            assert!(
                room.take_pause_turn(id, DRAINED, Duration::ZERO),
                "member {id}: its first pause"
            );
            room.end_pause(id, 100, 4000, rest_until);
        }
        assert!(
            !room.take_pause_turn(0, DRAINED, Duration::ZERO),
            "second round rests"
        );
        assert!(room.take_pause_turn(0, DRAINED, rest_until));
    }

    #[test]
    fn members_pause_one_at_a_time_in_turn() {
        const DRAINED: u64 = 1000;
        let room = joined_room(true);
        assert!(
            !room.take_pause_turn(0, DRAINED, Duration::ZERO),
            "nothing sent yet, nothing to pause for"
        );
        room.sent(1, 1, 100, Duration::ZERO);
        assert!(
            !room.take_pause_turn(1, DRAINED, Duration::ZERO),
            "member 0 goes first"
        );
        assert!(room.take_pause_turn(0, DRAINED, Duration::ZERO));
        assert!(
            !room.take_pause_turn(1, DRAINED, Duration::ZERO),
            "one pause at a time"
        );
        room.end_pause(0, 5000, 4000, Duration::ZERO);
        // Member 2 reads message 2 of member 1; member 0, still owed it, is now behind.
        room.sent(1, 2, 2000, Duration::ZERO);
        deliver(&room, 2, 1, 2);
        assert_eq!(room.backlog(0), 2000);
        assert!(room.take_pause_turn(1, DRAINED, Duration::ZERO));
        // A pause that asks for a rest before the next one.
        let rested = Duration::from_secs(1);
        room.end_pause(1, 3000, 4000, rested);
        room.left(2, Duration::from_millis(2));
        assert!(!room.take_pause_turn(0, DRAINED, rested), "not drained yet");
        deliver(&room, 0, 1, 2);
        assert!(
            !room.take_pause_turn(0, DRAINED, rested - Duration::from_millis(1)),
            "drained, but resting after its first pause"
        );
        assert!(
            room.take_pause_turn(0, DRAINED, rested),
            "drained and rested; a member that left is skipped"
        );
        room.end_pause(0, 100, 4000, Duration::ZERO);
        room.done.cancel();
        assert!(
            !room.take_pause_turn(1, DRAINED, Duration::ZERO),
            "no pause once the room is done"
        );
        let load = room.finish("s").load.expect("a room with load members");
        assert_eq!((load.pauses, load.full_pauses), (3, 1));
        assert_eq!(load.largest_backlog_bytes, 5000);
        assert!(joined_room(false).finish("s").load.is_none());
    }
}
