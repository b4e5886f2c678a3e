//! The broadcast tag: how a message says who sent it, which one it is, and whether it
//! arrived intact, through any relay.
//!
//! A frame is `~LB:<sender>.<seq>.<length>.<check>|<body>\n`: the sender's number, the
//! message's sequence number (0 for a join marker), the body's length in bytes and an
//! FNV-1a checksum of the body in hex. Bodies never contain `~`, so the start token can
//! never appear inside one. The reader finds frames by their start token and their length,
//! not by line ends, so it is indifferent to how TCP split or merged the bytes, to text a
//! server adds around them (`[127.0.0.1:51234] `), and to a relay that strips the newline.
//!
//! Why frames cannot be cut by a relay: the broadcast workload never lets a sender have more
//! than [`MAX_UNSETTLED_BYTES`] on their way (sent but not yet delivered everywhere), fewer
//! than one lab `recv(1024)`, so a relay always reads whole frames and forwards each run of
//! them in one piece. Another sender's bytes may come between two frames, never inside one.

use std::fmt::Write;

/// Starts every frame.
pub const START: &[u8] = b"~LB:";
/// Most bytes a sender may have sent that the room has not yet delivered everywhere.
pub const MAX_UNSETTLED_BYTES: usize = 1000;
/// Longest header: start token, four numbers and separators.
pub const MAX_HEADER_BYTES: usize = 64;
/// Longest body, so that a whole frame fits in [`MAX_UNSETTLED_BYTES`].
pub const MAX_BODY_BYTES: u64 = 900;
/// Most undecodable bytes kept before they are reported and dropped.
const MAX_PENDING_BYTES: usize = 64 * 1024;

/// A frame's identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Tag {
    /// Who sent it.
    pub sender: u32,
    /// Its sequence number; 0 marks a join marker.
    pub seq: u32,
}

/// Something read from a receiver's stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    /// A whole frame; `intact` says whether its length and checksum held.
    Frame {
        /// Whose and which.
        tag: Tag,
        /// Its body matched its checksum.
        intact: bool,
    },
    /// Bytes that are neither a frame nor text around one: a frame that was cut or mangled.
    Garbled(Vec<u8>),
}

/// FNV-1a, 32 bits: cheap, and any corruption of a short body changes it.
pub fn checksum(body: &[u8]) -> u32 {
    body.iter().fold(0x811c_9dc5u32, |hash, &b| {
        (hash ^ u32::from(b)).wrapping_mul(0x0100_0193)
    })
}

/// Appends the frame of `body` to `out`. `body` must not contain `~`.
pub fn encode(tag: Tag, body: &[u8], out: &mut Vec<u8>) {
    debug_assert!(
        !body.contains(&b'~'),
        "bodies never contain the start token's `~`"
    );
    let mut header = String::with_capacity(MAX_HEADER_BYTES);
    let _ = write!(
        header,
        "~LB:{}.{}.{}.{:08x}|",
        tag.sender,
        tag.seq,
        body.len(),
        checksum(body)
    );
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(body);
    out.push(b'\n');
}

/// Reassembles frames from one receiver's stream, chunk by chunk.
#[derive(Debug, Default)]
pub struct FrameReader {
    pending: Vec<u8>,
    /// Bytes around frames that were not part of any (a relay's prefixes, newlines).
    pub decoration_bytes: u64,
}

impl FrameReader {
    /// Takes the next chunk and returns every piece completed by it.
    pub fn push(&mut self, chunk: &[u8]) -> Vec<Piece> {
        self.pending.extend_from_slice(chunk);
        let mut pieces = Vec::new();
        let mut consumed = 0;
        let mut decoration = 0u64;
        loop {
            let rest = &self.pending[consumed..];
            let Some(start) = find(rest, START) else {
                // Keep a tail that could be the beginning of a start token.
                let keep = (1..=(START.len() - 1).min(rest.len()))
                    .rev()
                    .find(|&n| START.starts_with(&rest[rest.len() - n..]))
                    .unwrap_or(0);
                decoration += (rest.len() - keep) as u64;
                consumed += rest.len() - keep;
                break;
            };
            let (before, at) = rest.split_at(start);
            let header_end = at.iter().take(MAX_HEADER_BYTES).position(|&b| b == b'|');
            let Some(header_end) = header_end else {
                if at.len() < MAX_HEADER_BYTES && !at[START.len()..].contains(&b'~') {
                    // The header is still arriving.
                    decoration += before.len() as u64;
                    consumed += start;
                    break;
                }
                decoration += before.len() as u64;
                pieces.push(Piece::Garbled(at[..START.len()].to_vec()));
                consumed += start + START.len();
                continue;
            };
            let Some((tag, length, check)) = parse_header(&at[START.len()..header_end]) else {
                decoration += before.len() as u64;
                pieces.push(Piece::Garbled(at[..=header_end].to_vec()));
                consumed += start + header_end + 1;
                continue;
            };
            let body_start = header_end + 1;
            let available = &at[body_start..];
            // A start token inside the body's span means this frame was cut short.
            let cut_at = find(&available[..available.len().min(length)], START);
            if let Some(cut) = cut_at {
                decoration += before.len() as u64;
                pieces.push(Piece::Garbled(at[..body_start + cut].to_vec()));
                consumed += start + body_start + cut;
                continue;
            }
            if available.len() < length {
                decoration += before.len() as u64;
                consumed += start;
                break;
            }
            decoration += before.len() as u64;
            let body = &available[..length];
            pieces.push(Piece::Frame {
                tag,
                intact: checksum(body) == check,
            });
            consumed += start + body_start + length;
        }
        self.decoration_bytes += decoration;
        self.pending.drain(..consumed);
        if self.pending.len() > MAX_PENDING_BYTES {
            pieces.push(Piece::Garbled(std::mem::take(&mut self.pending)));
        }
        pieces
    }
}

fn parse_header(header: &[u8]) -> Option<(Tag, usize, u32)> {
    let text = std::str::from_utf8(header).ok()?;
    let mut parts = text.split('.');
    let sender = parts.next()?.parse().ok()?;
    let seq = parts.next()?.parse().ok()?;
    let length: usize = parts.next()?.parse().ok()?;
    let check = u32::from_str_radix(parts.next()?, 16).ok()?;
    if parts.next().is_some() || length as u64 > MAX_BODY_BYTES {
        return None;
    }
    Some((Tag { sender, seq }, length, check))
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn frames(pieces: &[Piece]) -> Vec<(u32, u32, bool)> {
        pieces
            .iter()
            .filter_map(|p| match p {
                Piece::Frame { tag, intact } => Some((tag.sender, tag.seq, *intact)),
                Piece::Garbled(_) => None,
            })
            .collect()
    }

    #[test]
    fn prefixes_and_missing_newlines_are_decoration() {
        let mut stream = b"[127.0.0.1:5000] ".to_vec();
        encode(Tag { sender: 3, seq: 1 }, b"hello", &mut stream);
        stream.pop(); // a relay that strips the newline
        stream.extend_from_slice(b"Client 4 says: ");
        encode(Tag { sender: 4, seq: 9 }, b"hi there", &mut stream);
        let mut reader = FrameReader::default();
        let pieces = reader.push(&stream);
        assert_eq!(frames(&pieces), [(3, 1, true), (4, 9, true)]);
        assert_eq!(reader.decoration_bytes, 17 + 15 + 1);
    }

    #[test]
    fn a_changed_byte_fails_the_checksum_and_a_cut_frame_is_garbled() {
        let mut stream = Vec::new();
        encode(Tag { sender: 1, seq: 2 }, b"abcdef", &mut stream);
        let at = stream.len() - 3;
        stream[at] = b'X';
        assert_eq!(frames(&FrameReader::default().push(&stream)), [(1, 2, false)]);

        let mut cut = Vec::new();
        encode(Tag { sender: 1, seq: 3 }, b"abcdefgh", &mut cut);
        cut.truncate(cut.len() - 5);
        encode(Tag { sender: 2, seq: 1 }, b"xyz", &mut cut);
        let pieces = FrameReader::default().push(&cut);
        assert_eq!(frames(&pieces), [(2, 1, true)]);
        assert!(matches!(pieces[0], Piece::Garbled(_)), "{pieces:?}");
    }

    proptest! {
        /// However the stream is split into chunks, and whatever text surrounds the frames,
        /// every frame is found once, intact, in order.
        #[test]
        fn frames_survive_any_split_and_decoration(
            bodies in prop::collection::vec("[a-z0-9 !#|.:]{0,40}", 1..20),
            prefix in "[\\[\\]0-9.: a-zA-Z]{0,20}",
            splits in prop::collection::vec(1usize..50, 1..30),
        ) {
            let mut stream = Vec::new();
            for (seq, body) in bodies.iter().enumerate() {
                stream.extend_from_slice(prefix.as_bytes());
                encode(Tag { sender: 7, seq: seq as u32 + 1 }, body.as_bytes(), &mut stream);
            }
            let mut reader = FrameReader::default();
            let mut pieces = Vec::new();
            let mut rest = &stream[..];
            for size in splits.iter().cycle() {
                if rest.is_empty() {
                    break;
                }
                let (chunk, tail) = rest.split_at((*size).min(rest.len()));
                pieces.extend(reader.push(chunk));
                rest = tail;
            }
            let expected: Vec<(u32, u32, bool)> = (1..=bodies.len() as u32).map(|seq| (7, seq, true)).collect();
            prop_assert_eq!(frames(&pieces), expected);
            let all_frames = pieces.iter().all(|p| matches!(p, Piece::Frame { .. }));
            prop_assert!(all_frames, "garbled pieces: {:?}", pieces);
        }
    }
}
