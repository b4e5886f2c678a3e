//! Message bodies: deterministic, varied, and shaped to catch the lab's classic bugs.
//!
//! Each client gets its own generator seeded from the scenario seed and its identity, so a
//! run sends the same bytes every time (a failure can be reproduced) while no two clients
//! send the same stream (a server that mixes up clients is caught). Bodies are written into a
//! reused buffer: no allocation per message.
//!
//! ASCII and binary bodies are copied out of a 1 MiB pool of random bytes, made once per
//! process, from a position the client's generator draws: copying is an order of magnitude
//! cheaper than drawing every byte, which matters at gigabytes a second of pipelined echo,
//! and a million starting points keep consecutive messages (and clients) distinct.

use std::sync::OnceLock;

use crate::scenario::{PayloadKind, SizeRange};

/// Bytes in each pool of random body bytes.
const POOL_BYTES: usize = 1 << 20;
/// The pools' fixed seed: bodies then depend only on the scenario seed and the client.
const POOL_SEED: u64 = 0x6c61_6272_756e_2121;

/// Characters of 1 to 4 bytes in UTF-8: a chunked decoder is bound to split one of them.
const UTF8_SAMPLES: [char; 10] = ['a', 'é', 'ß', 'Ж', '€', '中', '✓', '😀', '🚀', 'z'];

/// Produces message bodies for one client.
pub struct PayloadGenerator {
    rng: fastrand::Rng,
    size: SizeRange,
    kind: PayloadKind,
}

impl PayloadGenerator {
    /// A generator for client `client` of group `group` under scenario seed `seed`.
    pub fn new(seed: u64, group: usize, client: u32, size: SizeRange, kind: PayloadKind) -> Self {
        let identity = splitmix64(seed ^ splitmix64(((group as u64) << 32) | u64::from(client)));
        PayloadGenerator {
            rng: fastrand::Rng::with_seed(identity),
            size,
            kind,
        }
    }

    /// Replaces `body` with the next message.
    pub fn next_into(&mut self, body: &mut Vec<u8>) {
        body.clear();
        self.append_next(body);
    }

    /// Appends the next message to `buffer` (a send queue, say, sparing a copy).
    pub fn append_next(&mut self, buffer: &mut Vec<u8>) {
        let length = self.rng.u64(self.size.min..=self.size.max) as usize;
        let end = buffer.len() + length;
        match self.kind {
            PayloadKind::Ascii | PayloadKind::Binary => {
                let pool = pool(self.kind);
                let mut from = self.rng.usize(..POOL_BYTES);
                while buffer.len() < end {
                    let take = (end - buffer.len()).min(POOL_BYTES - from);
                    buffer.extend_from_slice(&pool[from..from + take]);
                    from = 0;
                }
            }
            PayloadKind::Utf8 => {
                let mut encoded = [0u8; 4];
                while buffer.len() < end {
                    let c = UTF8_SAMPLES[self.rng.usize(..UTF8_SAMPLES.len())];
                    let room = end - buffer.len();
                    let c = if c.len_utf8() <= room { c } else { 'a' };
                    buffer.extend_from_slice(c.encode_utf8(&mut encoded).as_bytes());
                }
            }
        }
    }
}

/// The pool of random bytes for ASCII (the 95 printable characters) or binary bodies.
fn pool(kind: PayloadKind) -> &'static [u8] {
    static ASCII: OnceLock<Box<[u8]>> = OnceLock::new();
    static BINARY: OnceLock<Box<[u8]>> = OnceLock::new();
    let make = |printable: bool| {
        let mut bytes = vec![0u8; POOL_BYTES].into_boxed_slice();
        fastrand::Rng::with_seed(POOL_SEED).fill(&mut bytes);
        if printable {
            bytes.iter_mut().for_each(|b| *b = b' ' + *b % 95);
        }
        bytes
    };
    match kind {
        PayloadKind::Ascii => ASCII.get_or_init(|| make(true)),
        _ => BINARY.get_or_init(|| make(false)),
    }
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
    use super::*;

    fn bodies(kind: PayloadKind, client: u32) -> Vec<Vec<u8>> {
        let mut generator = PayloadGenerator::new(7, 0, client, SizeRange { min: 1, max: 300 }, kind);
        (0..50)
            .map(|_| {
                let mut body = Vec::new();
                generator.next_into(&mut body);
                body
            })
            .collect()
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
        assert_ne!(body, next, "another starting point");
    }

    #[test]
    fn same_identity_same_bytes_different_identity_different_bytes() {
        assert_eq!(bodies(PayloadKind::Binary, 3), bodies(PayloadKind::Binary, 3));
        assert_ne!(bodies(PayloadKind::Binary, 3), bodies(PayloadKind::Binary, 4));
    }
}
