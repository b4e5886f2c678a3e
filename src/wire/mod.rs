//! What goes over a client's socket and how each byte that comes back is checked: the echo
//! stream matcher, the broadcast frame codec (also the UDP datagram tag's checksum) and the
//! chat turn classifier.
//!
//! A leaf: the drivers in `workload` use it as bytes arrive, the scenario stage reads its
//! size limits, and the judges in `verify` only read the faults it names in client records.
//! It depends on nothing of labrun's but byte escaping.

pub mod chat;
pub mod frame;
pub mod stream;
