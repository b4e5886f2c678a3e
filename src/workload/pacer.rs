//! Connects paced to a server's accept queue, so the kernel never drops a client's handshake.
//!
//! A lab server written from the textbook calls `listen(5)`: its accept queue holds five
//! connections the server has not yet `accept()`ed. Fifty clients that connect at once
//! overflow it, and the kernel drops their SYNs, or the ACKs that finish their handshakes;
//! those clients wait out one-second (then 3 s, 7 s …) retransmissions before the server
//! ever sees them, and a correct thread-per-client server looked like a pool that holds
//! clients back. Real clients rarely arrive within the same millisecond; labrun's do.
//!
//! So by default a client connects only when the server's accept queue has room: the pacer
//! reads the queue's length and capacity, and the handshakes still half-open to it, from the
//! kernel (see [`super::accept_queue`]) at most once a millisecond per server, and counts
//! the connects it let through since, so that queued + half-open + let through + still
//! connecting stays below the backlog. One client at a
//! time waits for room (a fair queue), so ten thousand clients waiting cost one poll a
//! millisecond, not ten thousand. After each connect it asks the kernel whether the
//! server's side of the connection is established; if not, the kernel dropped its last ACK
//! and the client is marked as held by the kernel ([`Timeline::handshake_stalled`]), which
//! the verdicts never blame on the server.
//!
//! A group with `connect = "storm"` connects at once, as before, to show what the kernel
//! does to a small backlog; it is still marked when the kernel held it. When the server's
//! listener cannot be read (no sock_diag, or it listens elsewhere), nothing is paced.
//! A server that accepts nobody and answers nobody for a whole reply timeout is not waited
//! for any longer: the clients connect anyway and the kernel's answer (a connect timeout) is
//! the finding. One busy answering earlier clients (an iterative server) is waited for.

use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Duration;

use serde::Serialize;
use tokio::net::TcpStream;
use tokio::time::Instant;

use super::accept_queue::{AcceptQueue, ServerSide, SockDiag};
use super::activity::ServerActivity;
use super::record::{ClientEnd, ClientErrorKind, ClientRecord};
use crate::wire::stream::EchoFault;

/// How stale a reading of the accept queue may be.
const POLL_INTERVAL: Duration = Duration::from_millis(1);

/// The connect pacer of one server.
pub struct ConnectPacer {
    server: SocketAddr,
    state: Mutex<State>,
    /// Whose turn it is to wait for room: one client at a time polls.
    turn: tokio::sync::Mutex<()>,
}

struct State {
    diag: SockDiag,
    /// The last reading, `None` when the listener could not be found then.
    reading: Option<AcceptQueue>,
    read_at: Instant,
    /// Connects completed since the last reading: in the queue as far as we know.
    completed_since_reading: u32,
    /// Connects let through and not yet completed.
    in_flight: u32,
    /// Clients whose connect completed while the server's side was still half-open: each
    /// joins the queue when the kernel processes its last ACK, which on a loaded machine
    /// comes well after the connect returned. Looked up again at every reading.
    half_open: Vec<SocketAddr>,
    last_admission: Instant,
    figures: PacingFigures,
}

/// What the pacer did for one server, for the report.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct PacingFigures {
    /// The listen backlog read from the kernel (its accept queue's capacity).
    pub backlog: u32,
    /// Connects that waited for room in the accept queue.
    pub paced: u32,
    /// The longest such wait, in microseconds.
    pub longest_pacing_wait_us: u64,
    /// Clients whose handshake the kernel had not finished on the server's side when their
    /// connect returned (an ACK dropped or still to be processed), however they connected:
    /// held by the kernel, not by the server.
    pub stalled: u32,
    /// Connects that went ahead into a full queue because the server accepted nobody for a
    /// whole reply timeout.
    pub overflowed: u32,
    /// Connects made with `connect = "storm"`, unpaced.
    pub stormed: u32,
}

/// A connect the pacer let through; completing or dropping it frees its place.
pub struct Admission<'a> {
    pacer: &'a ConnectPacer,
    done: bool,
}

impl ConnectPacer {
    /// A pacer for the server at `server`, when the kernel tells its accept queue.
    pub fn open(server: SocketAddr) -> Option<ConnectPacer> {
        let mut diag = SockDiag::open().ok()?;
        let reading = diag.accept_queue(server).ok()??;
        let now = Instant::now();
        Some(ConnectPacer {
            server,
            state: Mutex::new(State {
                diag,
                reading: Some(reading),
                read_at: now,
                completed_since_reading: 0,
                in_flight: 0,
                half_open: Vec::new(),
                last_admission: now,
                figures: PacingFigures {
                    backlog: reading.backlog,
                    ..PacingFigures::default()
                },
            }),
            turn: tokio::sync::Mutex::new(()),
        })
    }

    /// Waits until the accept queue has room for one more connection, or until the server
    /// has accepted nobody for `patience` and is not busy with a client (`activity`, when
    /// known): a full queue in front of an iterative server serving earlier clients is waited
    /// for, a server that does nothing at all is not. `storm` lets the connect through
    /// at once.
    pub async fn admit(
        &self,
        storm: bool,
        patience: Duration,
        activity: Option<&ServerActivity>,
    ) -> Admission<'_> {
        if storm {
            self.with_state(|state| {
                state.figures.stormed += 1;
                state.in_flight += 1;
            });
            return Admission {
                pacer: self,
                done: false,
            };
        }
        let _turn = self.turn.lock().await;
        let asked = Instant::now();
        loop {
            let admitted = self.with_state(|state| {
                let now = Instant::now();
                if now.duration_since(state.read_at) >= POLL_INTERVAL {
                    // A reading the kernel would not give keeps the last one and what was let
                    // through since: never more room than known. No listener at all (the
                    // server restarting, say) paces nothing until the next reading.
                    if let Ok(reading) = state.diag.accept_queue(self.server) {
                        state.reading = reading;
                        state.completed_since_reading = 0;
                    }
                    state.read_at = now;
                    state.recheck_half_open(self.server);
                }
                let room = match state.reading {
                    None => true,
                    Some(queue) => {
                        let taken = queue.queued
                            + state.half_open.len() as u32
                            + state.completed_since_reading
                            + state.in_flight;
                        taken < queue.backlog.max(1)
                    }
                };
                let busy = activity.is_some_and(|activity| activity.busy(now, patience));
                let stuck = !busy && now.duration_since(state.last_admission.max(asked)) >= patience;
                if !(room || stuck) {
                    return false;
                }
                let waited = now.duration_since(asked);
                if !room {
                    state.figures.overflowed += 1;
                }
                if waited >= POLL_INTERVAL {
                    state.figures.paced += 1;
                    let waited_us = waited.as_micros() as u64;
                    state.figures.longest_pacing_wait_us =
                        state.figures.longest_pacing_wait_us.max(waited_us);
                }
                state.in_flight += 1;
                state.last_admission = now;
                true
            });
            if admitted {
                return Admission {
                    pacer: self,
                    done: false,
                };
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    /// The figures so far.
    pub fn figures(&self) -> PacingFigures {
        self.with_state(|state| state.figures)
    }

    fn with_state<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        // A poisoned lock means another client's thread panicked, which the driver carries
        // to the caller anyway; the figures themselves are never left half-updated.
        let mut state = self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        f(&mut state)
    }
}

impl State {
    /// Forgets the half-open clients whose handshakes the server's side has finished since
    /// (or that are gone): only the rest still wait to join the queue.
    fn recheck_half_open(&mut self, server: SocketAddr) {
        let State { diag, half_open, .. } = self;
        half_open.retain(|&client| matches!(diag.server_side(client, server), Ok(ServerSide::HalfOpen)));
    }
}

impl Admission<'_> {
    /// The connect finished: its place moves from "connecting" to "in the queue" until the
    /// next reading. Returns whether the kernel left the server's side of `stream`
    /// unfinished, the client held by the kernel rather than by the server.
    pub fn connected(mut self, stream: &TcpStream) -> bool {
        self.done = true;
        let client = stream.local_addr().ok();
        self.pacer.with_state(|state| {
            state.in_flight = state.in_flight.saturating_sub(1);
            state.completed_since_reading += 1;
            let Some(client) = client else {
                return false;
            };
            let side = state.diag.server_side(client, self.pacer.server);
            let side = side.unwrap_or(ServerSide::Other);
            if side == ServerSide::HalfOpen {
                state.half_open.push(client);
            }
            if side.unfinished() {
                state.figures.stalled += 1;
            }
            side.unfinished()
        })
    }
}

impl Drop for Admission<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.pacer
                .with_state(|state| state.in_flight = state.in_flight.saturating_sub(1));
        }
    }
}

/// A client the kernel held whose first reply never came before its reply timeout is not a
/// missing echo: the server never saw its bytes. It becomes a connect failure that says so.
pub fn blame_the_kernel(record: &mut ClientRecord, backlog: u32) {
    if !record.timeline.handshake_stalled || record.messages_completed > 0 {
        return;
    }
    if let ClientEnd::EchoFault(EchoFault::Missing { .. }) = record.end {
        record.end = super::client::failed(
            ClientErrorKind::Connect,
            Some(0),
            format!(
                "the server's accept queue (listen backlog {backlog}) was full when this client \
                 connected: the kernel dropped the end of its handshake, and the server never \
                 saw the client before its reply timeout"
            ),
        );
    }
}
