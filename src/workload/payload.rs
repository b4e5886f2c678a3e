//! Message bodies: deterministic, varied, and shaped to catch the lab's classic bugs.
//!
//! Each client gets its own generator seeded from the scenario seed and its identity, so a
//! run sends the same bytes every time (a failure can be reproduced) while no two clients
//! send the same stream (a server that mixes up clients is caught). Bodies are written into a
//! reused buffer: no allocation per message.
//!
//! A payload kind must exercise what its name claims, or a server that mangles one character
//! passes (a server that uppercases `q` passed "utf8" when utf8 drew from ten sample
//! characters). So each kind reads from a pool built to cover its whole alphabet densely:
//!
//! | kind | pool | covered |
//! |---|---|---|
//! | ascii | 1 MiB of shuffled blocks, each the 95 printable characters once | all 95 in any 189 bytes |
//! | binary | 1 MiB of shuffled blocks, each the 256 byte values once | all 256 in any 511 bytes |
//! | utf8 | text of shuffled blocks, each every word of [`VOCABULARY`] once | every ASCII letter, digit and punctuation mark, 2-, 3- and 4-byte characters, in every block |
//!
//! A client starts at a random place in its pool and each message continues where the last
//! one stopped, so a client's stream covers the alphabet after one or two blocks however small
//! its messages are, and no two clients line up. ASCII and binary bodies are plain copies,
//! an order of magnitude cheaper than drawing bytes, which matters at gigabytes a second of
//! pipelined echo. UTF-8 bodies also put a 4-byte character across every 1024th byte (a
//! lab `recv(1024)` boundary), so a server that decodes each chunk is caught on any message
//! longer than one read.

use std::sync::OnceLock;

use crate::scenario::{PayloadKind, SizeRange};

/// Bytes in each pool of ASCII or binary body bytes.
const POOL_BYTES: usize = 1 << 20;
/// Bytes in the pool of UTF-8 text (at least; it ends after a whole block).
const TEXT_POOL_BYTES: usize = 1 << 18;
/// The pools' fixed seed: bodies then depend only on the scenario seed and the client.
const POOL_SEED: u64 = 0x6c61_6272_756e_2121;
/// The read size of a lab server (`recv(1024)`): UTF-8 bodies split a character at each
/// multiple of it.
const LAB_READ_BYTES: usize = 1024;

/// The words of UTF-8 bodies: lab-chat text that holds every ASCII letter in both cases,
/// every digit and every punctuation mark, and characters of 2, 3 and 4 bytes. Each block of
/// the text pool holds every word once, in a shuffled order.
const VOCABULARY: &[&str] = &[
    // Both pangrams in both cases: all 26 letters, lower and upper.
    "The",
    "quick",
    "brown",
    "fox",
    "jumps",
    "over",
    "the",
    "lazy",
    "dog.",
    "THE",
    "QUICK",
    "BROWN",
    "FOX",
    "JUMPS",
    "OVER",
    "LAZY",
    "DOG!",
    "Sphinx",
    "of",
    "black",
    "quartz,",
    "judge",
    "my",
    "vow?",
    "SPHINX",
    "BLACK",
    "QUARTZ",
    "JUDGE",
    "VOW",
    // Digits and every ASCII punctuation mark, the way they turn up in lab chat.
    "0123456789",
    "127.0.0.1:6000",
    "port=5000;",
    "(x+y)*z",
    "50%",
    "#include",
    "<stdio.h>",
    "\"quoted\"",
    "it's",
    "a_b-c",
    "[1,2,3]",
    "{key:value}",
    "~/lab/echo.py",
    "C:\\Users\\lab",
    "$HOME",
    "^_^",
    "a|b",
    "`ls`",
    "me@uni.edu",
    "&&",
    "!=",
    "@everyone",
    // Two-byte characters.
    "café",
    "Straße",
    "naïve",
    "Жизнь",
    "Ελλάδα",
    "ñandú",
    "Dvořák",
    "עברית",
    "العربية",
    // Three-byte characters.
    "€42",
    "中文",
    "日本語",
    "한국어",
    "✓",
    "…",
    "—",
    "°C",
    "ก่อน",
    // Four-byte characters.
    "😀",
    "🚀",
    "𝄞",
    "🐍",
    "👍🏽",
    "𠜎",
];

/// Four-byte characters put across each [`LAB_READ_BYTES`] boundary of a UTF-8 body.
const STRADDLERS: [char; 4] = ['😀', '🚀', '𝄞', '🐍'];
/// One-byte characters that pad a UTF-8 body to its exact length or to a boundary.
const FILLER: &[u8] = b"abcdefghijklmnopqrstuvwxyz";

/// Produces message bodies for one client.
pub struct PayloadGenerator {
    rng: fastrand::Rng,
    size: SizeRange,
    kind: PayloadKind,
    /// Where in its pool the next body starts (a character boundary for UTF-8).
    cursor: usize,
}

impl PayloadGenerator {
    /// A generator for client `client` of group `group` under scenario seed `seed`.
    pub fn new(seed: u64, group: usize, client: u32, size: SizeRange, kind: PayloadKind) -> Self {
        let identity = splitmix64(seed ^ splitmix64(((group as u64) << 32) | u64::from(client)));
        let mut generator = PayloadGenerator {
            rng: fastrand::Rng::with_seed(identity),
            size,
            kind,
            cursor: 0,
        };
        generator.jump();
        generator
    }

    /// Moves the cursor to a random place in the pool: where a client starts, and where the
    /// body after one as long as the pool starts, which would otherwise repeat it.
    fn jump(&mut self) {
        self.cursor = match self.kind {
            PayloadKind::Ascii | PayloadKind::Binary => self.rng.usize(..POOL_BYTES),
            PayloadKind::Utf8 => {
                let text = text_pool();
                let mut at = self.rng.usize(..text.len());
                while !text.is_char_boundary(at) {
                    at += 1;
                }
                at
            }
        };
    }

    /// Replaces `body` with the next message.
    pub fn next_into(&mut self, body: &mut Vec<u8>) {
        body.clear();
        self.append_next(body);
    }

    /// Appends the next message to `buffer` (a send queue, say, sparing a copy).
    pub fn append_next(&mut self, buffer: &mut impl BodySink) {
        let length = self.rng.u64(self.size.min..=self.size.max) as usize;
        let pool_bytes = match self.kind {
            PayloadKind::Ascii | PayloadKind::Binary => {
                self.copy_from_pool(buffer, length);
                POOL_BYTES
            }
            PayloadKind::Utf8 => {
                self.write_text(buffer, length);
                text_pool().len()
            }
        };
        if length >= pool_bytes {
            self.jump();
        }
    }

    /// Copies `length` bytes of the ASCII or binary pool from the cursor on, wrapping round.
    fn copy_from_pool(&mut self, buffer: &mut impl BodySink, length: usize) {
        let pool = pool(self.kind);
        let end = buffer.len() + length;
        while buffer.len() < end {
            let take = (end - buffer.len()).min(POOL_BYTES - self.cursor);
            buffer.extend_from_slice(&pool[self.cursor..self.cursor + take]);
            self.cursor = (self.cursor + take) % POOL_BYTES;
        }
    }

    /// Writes exactly `length` bytes of UTF-8 text from the cursor on, with a four-byte
    /// character across every [`LAB_READ_BYTES`] boundary the body reaches past.
    fn write_text(&mut self, buffer: &mut impl BodySink, length: usize) {
        let text = text_pool();
        let start = buffer.len();
        let mut encoded = [0u8; 4];
        while buffer.len() - start < length {
            let offset = buffer.len() - start;
            let room = length - offset;
            // The character split here lands two bytes on either side of the boundary.
            let split_at = (offset / LAB_READ_BYTES + 1) * LAB_READ_BYTES - 2;
            let splits = length >= split_at + 4;
            if splits && offset == split_at {
                let straddler = STRADDLERS[self.rng.usize(..STRADDLERS.len())];
                buffer.extend_from_slice(straddler.encode_utf8(&mut encoded).as_bytes());
                continue;
            }
            let next = text[self.cursor..].chars().next().unwrap_or(' ');
            let width = next.len_utf8();
            if width > room {
                // Too wide for what is left: skip it rather than wait for it, or a client whose
                // messages are all shorter would send filler for ever.
                self.cursor = (self.cursor + width) % text.len();
                continue;
            }
            if splits && offset + width > split_at {
                buffer.push(FILLER[self.rng.usize(..FILLER.len())]);
                continue;
            }
            buffer.extend_from_slice(next.encode_utf8(&mut encoded).as_bytes());
            self.cursor = (self.cursor + width) % text.len();
        }
    }
}

/// Where a body is written: a plain buffer, or the echo matcher's queue of bytes owed, which
/// is then also what the client sends (one copy of each body, not two).
pub trait BodySink {
    /// Bytes in it so far.
    fn len(&self) -> usize;
    /// Appends `bytes`.
    fn extend_from_slice(&mut self, bytes: &[u8]);
    /// Appends one byte.
    fn push(&mut self, byte: u8);
}

impl BodySink for Vec<u8> {
    fn len(&self) -> usize {
        Vec::len(self)
    }
    fn extend_from_slice(&mut self, bytes: &[u8]) {
        Vec::extend_from_slice(self, bytes);
    }
    fn push(&mut self, byte: u8) {
        Vec::push(self, byte);
    }
}

impl BodySink for std::collections::VecDeque<u8> {
    fn len(&self) -> usize {
        std::collections::VecDeque::len(self)
    }
    fn extend_from_slice(&mut self, bytes: &[u8]) {
        self.extend(bytes);
    }
    fn push(&mut self, byte: u8) {
        self.push_back(byte);
    }
}

/// Builds the pool `kind`'s bodies are cut from, if it is not built yet. Called before any
/// client starts: built lazily, a 1 MiB pool would be made inside the first run's first
/// connections (1.6 ms of their connect time in a release build, 50 ms in a debug one),
/// the one run of a process whose figures then differ from every later run's.
pub fn prepare(kind: PayloadKind) {
    match kind {
        PayloadKind::Ascii | PayloadKind::Binary => {
            pool(kind);
        }
        PayloadKind::Utf8 => {
            text_pool();
        }
    }
}

/// The pool for ASCII (the 95 printable characters) or binary (all 256 values) bodies: blocks
/// that each hold every character of the alphabet once, shuffled.
fn pool(kind: PayloadKind) -> &'static [u8] {
    static ASCII: OnceLock<Box<[u8]>> = OnceLock::new();
    static BINARY: OnceLock<Box<[u8]>> = OnceLock::new();
    let make = |alphabet: Vec<u8>| {
        let mut rng = fastrand::Rng::with_seed(POOL_SEED);
        let mut bytes = Vec::with_capacity(POOL_BYTES + alphabet.len());
        let mut block = alphabet;
        while bytes.len() < POOL_BYTES {
            rng.shuffle(&mut block);
            bytes.extend_from_slice(&block);
        }
        bytes.truncate(POOL_BYTES);
        bytes.into_boxed_slice()
    };
    match kind {
        PayloadKind::Ascii => ASCII.get_or_init(|| make((b' '..=b'~').collect())),
        _ => BINARY.get_or_init(|| make((0..=u8::MAX).collect())),
    }
}

/// The pool of UTF-8 text: blocks of every [`VOCABULARY`] word once, shuffled, joined by
/// spaces.
fn text_pool() -> &'static str {
    static TEXT: OnceLock<String> = OnceLock::new();
    TEXT.get_or_init(|| {
        let mut rng = fastrand::Rng::with_seed(POOL_SEED);
        let mut words = VOCABULARY.to_vec();
        let mut text = String::with_capacity(TEXT_POOL_BYTES + 1024);
        while text.len() < TEXT_POOL_BYTES {
            rng.shuffle(&mut words);
            for word in &words {
                text.push_str(word);
                text.push(' ');
            }
        }
        text
    })
}

/// A well-mixed 64-bit hash, so neighbouring client numbers get unrelated seeds.
fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    fn generator(kind: PayloadKind, client: u32, min: u64, max: u64) -> PayloadGenerator {
        PayloadGenerator::new(7, 0, client, SizeRange { min, max }, kind)
    }

    fn bodies(kind: PayloadKind, client: u32) -> Vec<Vec<u8>> {
        let mut generator = generator(kind, client, 1, 300);
        (0..50)
            .map(|_| {
                let mut body = Vec::new();
                generator.next_into(&mut body);
                body
            })
            .collect()
    }

    /// The first `bytes` bytes a client sends in messages of 1 to `max` bytes.
    fn stream_of_small_messages(kind: PayloadKind, client: u32, max: u64, bytes: usize) -> Vec<u8> {
        let mut generator = generator(kind, client, 1, max);
        let mut stream = Vec::new();
        while stream.len() < bytes {
            generator.append_next(&mut stream);
        }
        stream.truncate(bytes);
        stream
    }

    #[test]
    fn sizes_stay_in_range_and_kinds_hold() {
        for body in bodies(PayloadKind::Ascii, 1) {
            assert!((1..=300).contains(&body.len()));
            assert!(body.iter().all(|b| (b' '..=b'~').contains(b)));
        }
        for body in bodies(PayloadKind::Utf8, 1) {
            assert!((1..=300).contains(&body.len()));
            assert!(std::str::from_utf8(&body).is_ok());
        }
    }

    #[test]
    fn every_client_sends_every_printable_character_and_every_byte_value_soon() {
        for client in 0..200 {
            let ascii: BTreeSet<u8> = stream_of_small_messages(PayloadKind::Ascii, client, 3, 2 * 95 - 1)
                .into_iter()
                .collect();
            assert_eq!(ascii, (b' '..=b'~').collect(), "client {client}");
            let binary: BTreeSet<u8> = stream_of_small_messages(PayloadKind::Binary, client, 3, 2 * 256 - 1)
                .into_iter()
                .collect();
            assert_eq!(binary.len(), 256, "client {client}");
        }
    }

    #[test]
    fn utf8_messages_too_short_for_wide_characters_still_cover_ascii() {
        for client in 0..50 {
            let stream = stream_of_small_messages(PayloadKind::Utf8, client, 3, 2000);
            let text = String::from_utf8_lossy(&stream);
            let absent: Vec<char> = ('!'..='~').filter(|c| !text.contains(*c)).collect();
            assert!(absent.is_empty(), "client {client}: never sends {absent:?}");
        }
    }

    #[test]
    fn utf8_text_holds_every_ascii_letter_digit_and_mark_and_wide_characters() {
        let block_bytes: usize = VOCABULARY.iter().map(|w| w.len() + 1).sum();
        for client in 0..100 {
            // Messages too short for a wide character carry filler letters meanwhile, so allow
            // a third block.
            let stream = stream_of_small_messages(PayloadKind::Utf8, client, 64, 3 * block_bytes);
            let text = String::from_utf8_lossy(&stream);
            let absent: Vec<char> = ('!'..='~').filter(|c| !text.contains(*c)).collect();
            assert!(absent.is_empty(), "client {client}: never sends {absent:?}");
            for width in 2..=4 {
                assert!(
                    text.chars().any(|c| c.len_utf8() == width),
                    "client {client}: no {width}-byte character"
                );
            }
        }
    }

    #[test]
    fn utf8_bodies_are_exact_and_split_a_character_at_every_lab_read_boundary() {
        let mut generator = generator(PayloadKind::Utf8, 3, 1, 5000);
        let mut body = Vec::new();
        let mut long_bodies = 0;
        for _ in 0..500 {
            let before = generator.rng.clone().u64(1..=5000) as usize;
            generator.next_into(&mut body);
            assert_eq!(body.len(), before, "exact length");
            assert!(std::str::from_utf8(&body).is_ok());
            for boundary in (LAB_READ_BYTES..body.len().saturating_sub(1)).step_by(LAB_READ_BYTES) {
                long_bodies += 1;
                assert_eq!(
                    body[boundary] & 0xc0,
                    0x80,
                    "byte {boundary} of a {}-byte body continues a character",
                    body.len()
                );
            }
        }
        assert!(long_bodies > 100, "bodies long enough to split: {long_bodies}");
    }

    #[test]
    fn bodies_larger_than_the_pool_wrap_around_it() {
        let size = SizeRange {
            min: 3 * POOL_BYTES as u64,
            max: 3 * POOL_BYTES as u64,
        };
        let mut generator = PayloadGenerator::new(1, 0, 0, size, PayloadKind::Ascii);
        let mut body = Vec::new();
        generator.next_into(&mut body);
        assert_eq!(body.len(), 3 * POOL_BYTES);
        assert!(body.iter().all(|b| (b' '..=b'~').contains(b)));
        let mut next = Vec::new();
        generator.next_into(&mut next);
        assert!(body != next, "another starting point");
    }

    #[test]
    fn same_identity_same_bytes_different_identity_different_bytes() {
        for kind in [PayloadKind::Binary, PayloadKind::Utf8] {
            assert_eq!(bodies(kind, 3), bodies(kind, 3));
            assert_ne!(bodies(kind, 3), bodies(kind, 4));
        }
    }
}
