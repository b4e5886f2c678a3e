//! The echo stream matcher: are the bytes coming back exactly the bytes that went out?
//!
//! TCP is a byte stream. A server that reads with `recv(1024)` echoes a 4 KiB message in
//! four pieces, and the kernel may split or merge those pieces again on the way back. So
//! the matcher never looks at "replies": it keeps the bytes sent and not yet echoed, and
//! checks each received chunk against the front of that queue, whatever its length. It
//! remembers where each message starts, so a fault names the message and the offset inside
//! it. The first fault ends matching: after one wrong byte, every later byte is suspect.

use std::collections::VecDeque;
use std::fmt;
use std::time::Duration;

use serde::Serialize;

/// How many bytes of context a fault carries.
pub const EXCERPT_BYTES: usize = 16;

/// Why no more bytes will arrive on a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "cause", content = "after")]
pub enum StreamEnd {
    /// The server closed the connection (EOF).
    Closed,
    /// The server reset the connection (RST), typically by closing with unread data.
    Reset,
    /// Nothing more arrived within the reply timeout.
    TimedOut(#[serde(serialize_with = "crate::units::serialize_millis")] Duration),
    /// The reply was still incomplete when its timeout ran out, though bytes were still
    /// coming.
    TooSlow {
        /// The reply timeout.
        #[serde(serialize_with = "crate::units::serialize_millis")]
        timeout: Duration,
        /// Reads that brought bytes of the reply.
        pieces: u32,
        /// How long before the timeout the last of them came.
        #[serde(serialize_with = "crate::units::serialize_millis")]
        quiet: Duration,
    },
}

impl fmt::Display for StreamEnd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StreamEnd::Closed => f.write_str("the server closed the connection"),
            StreamEnd::Reset => f.write_str("the server reset the connection"),
            StreamEnd::TimedOut(after) => {
                write!(
                    f,
                    "nothing more arrived within {}",
                    humantime::format_duration(*after)
                )
            }
            StreamEnd::TooSlow {
                timeout,
                pieces,
                quiet,
            } => {
                write!(
                    f,
                    "its {} reply timeout ran out: those bytes came in {pieces} piece{}, the last {} \
                     before the timeout",
                    humantime::format_duration(*timeout),
                    crate::units::plural(*pieces as u64),
                    crate::units::duration(*quiet)
                )?;
                if *pieces > 1 {
                    f.write_str(" (still arriving when time ran out)")?;
                }
                Ok(())
            }
        }
    }
}

/// A way the echoed stream differed from the sent one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum EchoFault {
    /// A byte came back different from the one sent.
    Corrupted {
        /// Index of the message (0-based) the byte belongs to.
        message: u32,
        /// Offset of the first wrong byte inside that message.
        offset: u64,
        /// Bytes sent from that offset on (at most [`EXCERPT_BYTES`]).
        expected: Vec<u8>,
        /// Bytes received from that offset on (at most [`EXCERPT_BYTES`]).
        received: Vec<u8>,
    },
    /// Bytes never came back but the echo went on with the bytes sent after them: the
    /// server dropped part of the stream (most often a `send()` that wrote only part of
    /// its buffer, its return value ignored).
    Skipped {
        /// Index of the message (0-based) where the gap starts.
        message: u32,
        /// Offset inside that message of the first byte that never came back.
        offset: u64,
        /// How many bytes were left out.
        skipped: u64,
    },
    /// Part of a message came back, then the stream ended.
    Truncated {
        /// Index of the message.
        message: u32,
        /// Bytes of it that came back.
        received: u64,
        length: u64,
        /// Why the rest will not come.
        end: StreamEnd,
    },
    /// None of a message came back.
    Missing {
        /// Index of the message.
        message: u32,
        length: u64,
        /// Why it will not come.
        end: StreamEnd,
    },
    /// Before echoing anything, the server sent more bytes than it was sent: it writes
    /// without being asked (a flood, a banner, a loop that sends without reading).
    Unsolicited {
        /// Bytes it sent (counted until labrun stopped listening).
        received: u64,
        /// Bytes it had been sent by then.
        sent: u64,
        /// Its first bytes (at most [`EXCERPT_BYTES`]).
        excerpt: Vec<u8>,
    },
    /// Bytes arrived that were never sent (or arrived twice).
    Extra {
        /// The last message fully echoed before them, if any.
        after_message: Option<u32>,
        /// The first extra bytes (at most [`EXCERPT_BYTES`]).
        excerpt: Vec<u8>,
    },
}

impl EchoFault {
    /// One word naming the fault class, stable for reports and tests.
    pub fn class(&self) -> &'static str {
        match self {
            EchoFault::Corrupted { .. } => "corrupted",
            EchoFault::Skipped { .. } => "skipped",
            EchoFault::Truncated { .. } => "truncated",
            EchoFault::Missing { .. } => "missing",
            EchoFault::Extra { .. } => "extra",
            EchoFault::Unsolicited { .. } => "unsolicited",
        }
    }

    /// The message the fault is about, if it is about one.
    pub fn message(&self) -> Option<u32> {
        match self {
            EchoFault::Corrupted { message, .. }
            | EchoFault::Skipped { message, .. }
            | EchoFault::Truncated { message, .. }
            | EchoFault::Missing { message, .. } => Some(*message),
            // Extra bytes belong to no message; the text says which one they followed.
            EchoFault::Extra { .. } | EchoFault::Unsolicited { .. } => None,
        }
    }
}

impl fmt::Display for EchoFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use crate::escape::escape_bytes;
        match self {
            EchoFault::Corrupted {
                message,
                offset,
                expected,
                received,
            } => write!(
                f,
                "corrupted: message {} differs at byte {offset}: expected \"{}\", received \"{}\"",
                message + 1,
                escape_bytes(expected),
                escape_bytes(received)
            ),
            EchoFault::Skipped {
                message,
                offset,
                skipped,
            } => write!(
                f,
                "skipped: {} never came back from byte {offset} of message {} on, and the echo \
                 went on with the bytes sent after them",
                crate::units::bytes(*skipped),
                message + 1
            ),
            EchoFault::Truncated {
                message,
                received,
                length,
                end,
            } => write!(
                f,
                "truncated: message {} came back with {received} of its {length} bytes, then {end}",
                message + 1
            ),
            EchoFault::Missing { message, length, end } => write!(
                f,
                "missing: no byte of message {} ({length} bytes) came back; {end}",
                message + 1
            ),
            EchoFault::Unsolicited {
                received,
                sent,
                excerpt,
            } => write!(
                f,
                "unsolicited: before echoing anything the server sent at least {} where it had been sent {}, beginning \"{}\"",
                crate::units::bytes(*received),
                crate::units::bytes(*sent),
                escape_bytes(excerpt)
            ),
            EchoFault::Extra {
                after_message,
                excerpt,
            } => {
                match after_message {
                    Some(m) => write!(f, "extra: bytes arrived after message {} was fully echoed", m + 1)?,
                    None => f.write_str("extra: bytes arrived before anything was sent")?,
                }
                write!(f, " and were never sent: \"{}\"", escape_bytes(excerpt))
            }
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct MessageSpan {
    index: u32,
    start: u64,
    length: u64,
}

/// Tracks one connection's sent-but-not-yet-echoed bytes and checks what comes back.
///
/// Its queue of owed bytes can also be the connection's send queue: bodies queued with
/// [`StreamMatcher::expect_with`] are owed once written ([`StreamMatcher::wrote`]), and the
/// writer sends them from [`StreamMatcher::unwritten`], so each body is copied once, not
/// once to send and again to check.
#[derive(Debug, Default)]
pub struct StreamMatcher {
    /// Bytes queued and not yet echoed: the first `sent - received` of them written, the
    /// rest still to be written.
    pending: VecDeque<u8>,
    messages: VecDeque<MessageSpan>,
    last_completed: Option<u32>,
    /// Bytes queued so far.
    queued: u64,
    /// Bytes written so far: what an echo may return.
    sent: u64,
    received: u64,
}

impl StreamMatcher {
    /// An empty matcher.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records that message `index` with this body was sent.
    pub fn expect(&mut self, index: u32, body: &[u8]) {
        self.expect_with(index, |pending| pending.extend(body));
        self.wrote(body.len());
    }

    /// Queues message `index`, whose body `fill` appends to the owed bytes, to be written
    /// from [`StreamMatcher::unwritten`]; returns its length.
    pub fn expect_with(&mut self, index: u32, fill: impl FnOnce(&mut VecDeque<u8>)) -> usize {
        let before = self.pending.len();
        fill(&mut self.pending);
        let length = self.pending.len() - before;
        self.messages.push_back(MessageSpan {
            index,
            start: self.queued,
            length: length as u64,
        });
        self.queued += length as u64;
        length
    }

    /// The queued bytes not yet written, or as many of them as lie together in memory
    /// (write, then ask again).
    pub fn unwritten(&self) -> &[u8] {
        let written = (self.sent - self.received) as usize;
        let (front, back) = self.pending.as_slices();
        match front.get(written..) {
            Some(rest) if !rest.is_empty() => rest,
            _ => &back[written.saturating_sub(front.len())..],
        }
    }

    /// The next `n` queued bytes were written: their echo is owed now.
    pub fn wrote(&mut self, n: usize) {
        self.sent = (self.sent + n as u64).min(self.queued);
    }

    /// Checks a received chunk against the bytes still owed and returns how many messages it
    /// completed. Once it returns a fault, the stream is beyond repair and the caller should
    /// stop feeding it.
    pub fn accept(&mut self, chunk: &[u8]) -> Result<u32, EchoFault> {
        // Only written bytes are owed: bytes that match what is queued but unwritten were
        // never sent, whatever they look like.
        let owed = chunk.len().min((self.sent - self.received) as usize);
        let (matching, extra) = chunk.split_at(owed);
        if let Some(at) = first_difference(&self.pending, matching) {
            return Err(self.corruption(at, &chunk[at..]));
        }
        self.pending.drain(..owed);
        self.received += owed as u64;
        let mut completed = 0;
        while let Some(front) = self.messages.front() {
            if front.start + front.length > self.received {
                break;
            }
            self.last_completed = Some(front.index);
            self.messages.pop_front();
            completed += 1;
        }
        if extra.is_empty() {
            Ok(completed)
        } else {
            Err(EchoFault::Extra {
                after_message: self.last_completed,
                excerpt: extra[..extra.len().min(EXCERPT_BYTES)].to_vec(),
            })
        }
    }

    /// Bytes of the oldest unfinished message's echo received so far.
    pub fn front_received(&self) -> u64 {
        self.messages
            .front()
            .map_or(0, |front| self.received.saturating_sub(front.start))
    }

    /// The fault to report when the stream ends while bytes are still owed, or `None` when
    /// nothing was owed.
    pub fn shortfall(&self, end: StreamEnd) -> Option<EchoFault> {
        let front = self.messages.front()?;
        let received = self.received - front.start;
        Some(if received == 0 {
            EchoFault::Missing {
                message: front.index,
                length: front.length,
                end,
            }
        } else {
            EchoFault::Truncated {
                message: front.index,
                received,
                length: front.length,
                end,
            }
        })
    }

    /// Bytes sent so far.
    pub fn sent_bytes(&self) -> u64 {
        self.sent
    }

    /// Bytes received and verified so far.
    pub fn received_bytes(&self) -> u64 {
        self.received
    }

    fn corruption(&self, at: usize, received_from_there: &[u8]) -> EchoFault {
        let stream_offset = self.received + at as u64;
        let span = self
            .messages
            .iter()
            .find(|m| m.start + m.length > stream_offset)
            .copied()
            .expect("a differing byte lies inside a pending message");
        if let Some(skipped) = self.resumes_after_gap(at, received_from_there) {
            return EchoFault::Skipped {
                message: span.index,
                offset: stream_offset - span.start,
                skipped,
            };
        }
        EchoFault::Corrupted {
            message: span.index,
            offset: stream_offset - span.start,
            expected: self
                .pending
                .iter()
                .skip(at)
                .take(EXCERPT_BYTES)
                .copied()
                .collect(),
            received: received_from_there[..received_from_there.len().min(EXCERPT_BYTES)].to_vec(),
        }
    }

    /// How many owed bytes, from `at` on, the server left out when what it sent from there
    /// (`received_from_there`, its first [`RESUME_PROOF`] bytes) is what was sent after
    /// them; `None` when too little arrived to tell, or it is not a later part of the stream.
    fn resumes_after_gap(&self, at: usize, received_from_there: &[u8]) -> Option<u64> {
        let proof = received_from_there.get(..RESUME_PROOF)?;
        let written = (self.sent - self.received) as usize;
        let later: Vec<u8> = self.pending.iter().take(written).skip(at + 1).copied().collect();
        let gap = later.windows(RESUME_PROOF).position(|window| window == proof)?;
        Some(gap as u64 + 1)
    }
}

/// Bytes that must match a later part of the stream for a difference to count as a gap:
/// enough that payload bytes do not line up by chance (a 16-byte run of a shuffled pool
/// recurs nowhere in it).
const RESUME_PROOF: usize = 16;

/// Index of the first byte where `chunk` differs from the front of `pending`.
fn first_difference(pending: &VecDeque<u8>, chunk: &[u8]) -> Option<usize> {
    let (front, back) = pending.as_slices();
    let split = chunk.len().min(front.len());
    let (chunk_front, chunk_back) = chunk.split_at(split);
    if chunk_front != &front[..split] {
        return chunk_front.iter().zip(front).position(|(a, b)| a != b);
    }
    if chunk_back != &back[..chunk_back.len()] {
        return chunk_back
            .iter()
            .zip(back)
            .position(|(a, b)| a != b)
            .map(|i| split + i);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Messages (1..=3000 bytes each, so some exceed a 1024-byte read) and cut points that
    /// split their concatenation into arbitrary chunks.
    fn messages_and_cuts() -> impl Strategy<Value = (Vec<Vec<u8>>, Vec<usize>)> {
        prop::collection::vec(prop::collection::vec(any::<u8>(), 1..3000), 1..6).prop_flat_map(|messages| {
            let total: usize = messages.iter().map(Vec::len).sum();
            (Just(messages), prop::collection::vec(0..=total, 0..20))
        })
    }

    fn chunks(stream: &[u8], mut cuts: Vec<usize>) -> Vec<&[u8]> {
        cuts.push(0);
        cuts.push(stream.len());
        cuts.sort_unstable();
        cuts.windows(2).map(|w| &stream[w[0]..w[1]]).collect()
    }

    fn sent(messages: &[Vec<u8>]) -> StreamMatcher {
        let mut matcher = StreamMatcher::new();
        for (i, m) in messages.iter().enumerate() {
            matcher.expect(i as u32, m);
        }
        matcher
    }

    /// Which message a stream offset falls in, and the offset inside it.
    fn locate(messages: &[Vec<u8>], mut offset: usize) -> (u32, u64) {
        for (i, m) in messages.iter().enumerate() {
            if offset < m.len() {
                return (i as u32, offset as u64);
            }
            offset -= m.len();
        }
        unreachable!()
    }

    /// An echo that leaves bytes out and goes on with what was sent after them (a `send()`
    /// that wrote part of its buffer) is a gap of exactly that many bytes, found where it
    /// starts, even across messages; too little after the gap to prove it stays a plain
    /// corruption.
    #[test]
    fn the_owed_bytes_are_the_send_queue_and_unwritten_ones_are_never_owed() {
        let mut matcher = StreamMatcher::new();
        assert_eq!(matcher.expect_with(0, |q| q.extend(b"hello")), 5);
        assert_eq!(matcher.expect_with(1, |q| q.extend(b"world")), 5);
        assert_eq!(matcher.unwritten(), b"helloworld");
        matcher.wrote(3);
        assert_eq!(matcher.unwritten(), b"loworld");
        assert_eq!(matcher.sent_bytes(), 3);
        // An echo of bytes not yet written is bytes never sent, however they look.
        let mut early = StreamMatcher::new();
        early.expect_with(0, |q| q.extend(b"hello"));
        early.wrote(2);
        assert!(matches!(early.accept(b"hel"), Err(EchoFault::Extra { .. })));
        // Written bytes come back and complete their messages; the queue wraps round and the
        // unwritten tail is still handed out in order.
        assert_eq!(matcher.accept(b"hel"), Ok(0));
        matcher.wrote(7);
        assert_eq!(matcher.unwritten(), b"");
        assert_eq!(matcher.accept(b"lowor"), Ok(1));
        for index in 2..40u32 {
            matcher.expect_with(index, |q| q.extend(b"abcdefgh"));
        }
        let mut sent = Vec::new();
        while !matcher.unwritten().is_empty() {
            let piece = matcher.unwritten()[..3.min(matcher.unwritten().len())].to_vec();
            matcher.wrote(piece.len());
            sent.extend(piece);
        }
        assert_eq!(sent, b"abcdefgh".repeat(38));
        assert_eq!(matcher.accept(b"ld"), Ok(1));
        assert_eq!(matcher.accept(&sent), Ok(38));
    }

    #[test]
    fn a_gap_in_the_echo_is_measured_where_it_starts() {
        let mut rng = fastrand::Rng::with_seed(7);
        let messages: Vec<Vec<u8>> = (0..70).map(|_| (0..1000).map(|_| rng.u8(..)).collect()).collect();
        let stream = messages.concat();
        for (at, gap) in [(0, 1), (500, 100), (990, 20), (32_768, 32_768)] {
            let echo = [&stream[..at], &stream[at + gap..]].concat();
            let mut matcher = sent(&messages);
            let (message, offset) = locate(&messages, at);
            assert_eq!(
                matcher.accept(&echo),
                Err(EchoFault::Skipped {
                    message,
                    offset,
                    skipped: gap as u64
                }),
                "a gap of {gap} at {at}"
            );
        }
        let mut matcher = sent(&messages);
        let short = [&stream[..500], &stream[600..610]].concat();
        assert!(matches!(matcher.accept(&short), Err(EchoFault::Corrupted { .. })));
    }

    proptest! {
        #[test]
        fn exact_echo_passes_however_it_is_split((messages, cuts) in messages_and_cuts()) {
            let stream = messages.concat();
            let mut matcher = sent(&messages);
            for chunk in chunks(&stream, cuts) {
                prop_assert!(matcher.accept(chunk).is_ok());
            }
            prop_assert_eq!(matcher.shortfall(StreamEnd::Closed), None);
            prop_assert_eq!(matcher.received_bytes(), stream.len() as u64);
        }

        #[test]
        fn a_corrupted_byte_is_found_exactly(
            (messages, cuts) in messages_and_cuts(), position in any::<prop::sample::Index>(), flip in 1u8..=255,
        ) {
            let mut stream = messages.concat();
            let at = position.index(stream.len());
            stream[at] ^= flip;
            let mut matcher = sent(&messages);
            let fault = chunks(&stream, cuts).into_iter().find_map(|c| matcher.accept(c).err());
            let (message, offset) = locate(&messages, at);
            match fault {
                Some(EchoFault::Corrupted { message: m, offset: o, expected, received }) => {
                    prop_assert_eq!((m, o), (message, offset));
                    prop_assert_eq!(expected[0] ^ received[0], flip);
                }
                other => prop_assert!(false, "expected corruption at {}, got {:?}", at, other),
            }
        }

        #[test]
        fn a_short_echo_is_truncated_or_missing(
            (messages, cuts) in messages_and_cuts(), keep in any::<prop::sample::Index>(),
        ) {
            let stream = messages.concat();
            let kept = keep.index(stream.len());
            let mut matcher = sent(&messages);
            for chunk in chunks(&stream[..kept], cuts.into_iter().filter(|&c| c <= kept).collect()) {
                prop_assert!(matcher.accept(chunk).is_ok());
            }
            let (message, offset) = locate(&messages, kept);
            let length = messages[message as usize].len() as u64;
            let expected = if offset == 0 {
                EchoFault::Missing { message, length, end: StreamEnd::Closed }
            } else {
                EchoFault::Truncated { message, received: offset, length, end: StreamEnd::Closed }
            };
            prop_assert_eq!(matcher.shortfall(StreamEnd::Closed), Some(expected));
        }

        #[test]
        fn bytes_beyond_those_sent_are_extra(
            (messages, cuts) in messages_and_cuts(), extra in prop::collection::vec(any::<u8>(), 1..40),
        ) {
            let mut stream = messages.concat();
            let sent_len = stream.len();
            stream.extend(&extra);
            let mut matcher = sent(&messages);
            let fault = chunks(&stream, cuts.into_iter().map(|c| c.min(sent_len)).collect())
                .into_iter()
                .find_map(|c| matcher.accept(c).err());
            let last = messages.len() as u32 - 1;
            let wanted = EchoFault::Extra { after_message: Some(last), excerpt: extra[..extra.len().min(EXCERPT_BYTES)].to_vec() };
            prop_assert_eq!(fault, Some(wanted));
        }
    }

    #[test]
    fn fault_text_names_message_and_escapes_bytes() {
        let mut matcher = StreamMatcher::new();
        matcher.expect(0, b"hello");
        let fault = matcher.accept(b"he\x1bl").unwrap_err();
        assert_eq!(
            fault.to_string(),
            "corrupted: message 1 differs at byte 2: expected \"llo\", received \"\\x1bl\""
        );
    }
}
