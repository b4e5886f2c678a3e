//! Message bodies: deterministic, varied, and shaped to catch the lab's classic bugs.
//!
//! Each client gets its own generator seeded from the scenario seed and its identity, so a
//! run sends the same bytes every time (a failure can be reproduced) while no two clients
//! send the same stream (a server that mixes up clients is caught). Bodies are written into a
//! reused buffer: no allocation per message.

use crate::scenario::{PayloadKind, SizeRange};

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
        let length = self.rng.u64(self.size.min..=self.size.max) as usize;
        body.clear();
        match self.kind {
            PayloadKind::Ascii => {
                // Bulk random bytes folded onto the 95 printable characters: a 16 MiB body
                // must not cost a generator call per byte on the runtime's threads.
                body.resize(length, 0);
                self.rng.fill(body);
                body.iter_mut().for_each(|b| *b = b' ' + *b % 95);
            }
            PayloadKind::Binary => {
                body.resize(length, 0);
                self.rng.fill(body);
            }
            PayloadKind::Utf8 => {
                let mut encoded = [0u8; 4];
                while body.len() < length {
                    let c = UTF8_SAMPLES[self.rng.usize(..UTF8_SAMPLES.len())];
                    let room = length - body.len();
                    let c = if c.len_utf8() <= room { c } else { 'a' };
                    body.extend_from_slice(c.encode_utf8(&mut encoded).as_bytes());
                }
            }
        }
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
    fn same_identity_same_bytes_different_identity_different_bytes() {
        assert_eq!(bodies(PayloadKind::Binary, 3), bodies(PayloadKind::Binary, 3));
        assert_ne!(bodies(PayloadKind::Binary, 3), bodies(PayloadKind::Binary, 4));
    }
}
