//! Probes run after the clients are done: deterministic questions to a server, beside the
//! statistics of the run.
//!
//! The *concurrency probe* opens `holders` connections that stay silent, the way a client
//! that is slow to type does, and then asks whether one more client is answered within a
//! deadline. A server that serves one client at a time is stuck in `recv()` on the first
//! silent connection and cannot answer; a thread per client answers at once however loaded
//! the machine is; a pool of `k` workers answers only while `holders < k`. The *survival
//! probe* asks whether a fresh client still gets its echo after everything the run did.
//!
//! The probe's connects are paced to the server's accept queue like the clients' (see
//! [`super::pacer`]): eight connects in a row overflow a `listen(5)` queue before a Python
//! accept loop has taken the first, and a dropped SYN would cost the probe a second.

use std::net::SocketAddr;
use std::time::Duration;

use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::pacer::ConnectPacer;
use crate::scenario::ConcurrencyExpectation;

/// How long the probing client waits for its echo.
pub const PROBE_DEADLINE: Duration = Duration::from_secs(2);
/// Most silent connections the concurrency probe holds open. The statistics of a run of
/// many clients on a loaded machine can look like `bounded (96)`, and only a probe holding
/// 96 can refute that; a server that answers a new client while this many others sit
/// silent has no cap a lab can tell from a thread per client (see
/// `verify::concurrency::reconcile`). The run opened at least `k` clients already, so
/// labrun's file budget covers the holders.
pub const MAX_HOLDERS: u32 = 1024;
/// Time each silent connection adds to the probe's connect deadline: a `listen(1)` server
/// has its holders connected one accept at a time, and a Python accept loop that starts a
/// thread per client takes a millisecond or so for each on a loaded 2-CPU machine.
const CONNECT_ALLOWANCE_PER_HOLDER: Duration = Duration::from_millis(5);
/// Silent connections the concurrency probe holds for `expected`, for a server that the
/// scenario gives `clients` clients: one for an iterative server (which must then not answer),
/// up to 7 for "concurrent" (a pool smaller than the scenario's load gets caught), N - 1 for
/// "at-least N".
pub fn holders_for(expected: ConcurrencyExpectation, clients: u64) -> u32 {
    match expected {
        ConcurrencyExpectation::Iterative => 1,
        ConcurrencyExpectation::Concurrent => (clients.clamp(2, 8) - 1) as u32,
        ConcurrencyExpectation::AtLeast(n) => n - 1,
    }
    .min(MAX_HOLDERS)
}

/// What the probing client sends: short, printable, ending in a newline for line servers.
const PROBE_MESSAGE: &[u8] = b"labrun probe: is anybody there?\n";

/// What a probe saw.
#[derive(Debug, Clone, Serialize)]
pub struct ProbeOutcome {
    /// Silent connections held open while probing (0 for the survival probe).
    pub holders: u32,
    /// Whether the probing client got its whole message back.
    pub served: bool,
    /// How long its echo took, in microseconds, when it came.
    pub answered_after_us: Option<u64>,
    /// What happened, in one sentence.
    pub detail: String,
}

/// Holds `holders` silent connections to `address` and asks whether one more client is
/// served within [`PROBE_DEADLINE`]; `None` when interrupted.
pub async fn concurrency(
    address: SocketAddr,
    holders: u32,
    cancel: &CancellationToken,
) -> Option<ProbeOutcome> {
    let connect_window = PROBE_DEADLINE + CONNECT_ALLOWANCE_PER_HOLDER * holders;
    let deadline = Instant::now() + connect_window;
    let pacer = ConnectPacer::open(address);
    let mut silent = Vec::with_capacity(holders as usize);
    for held in 0..holders {
        let connect = tokio::time::timeout_at(deadline, connect(address, pacer.as_ref()));
        let connected = tokio::select! {
            () = cancel.cancelled() => return None,
            connected = connect => connected,
        };
        match connected {
            Ok(Ok(stream)) => silent.push(stream),
            Ok(Err(err)) => {
                return Some(ProbeOutcome {
                    holders,
                    served: false,
                    answered_after_us: None,
                    detail: format!(
                        "silent connection {} of {holders} could not connect: {err}",
                        held + 1
                    ),
                });
            }
            Err(_) => {
                return Some(ProbeOutcome {
                    holders,
                    served: false,
                    answered_after_us: None,
                    detail: format!(
                        "silent connection {} of {holders} was not accepted within {}",
                        held + 1,
                        crate::units::duration(connect_window)
                    ),
                });
            }
        }
    }
    let asked = exchange(address, pacer.as_ref(), cancel).await?;
    drop(silent);
    let silent_ones = match holders {
        1 => "1 other client sat silent".to_owned(),
        n => format!("{n} other clients sat silent"),
    };
    Some(ProbeOutcome::answer(
        holders,
        asked,
        "a new client",
        &format!("while {silent_ones}"),
    ))
}

/// Asks whether a fresh client still gets its echo; `None` when interrupted.
pub async fn survival(address: SocketAddr, cancel: &CancellationToken) -> Option<ProbeOutcome> {
    let asked = exchange(address, ConnectPacer::open(address).as_ref(), cancel).await?;
    Some(ProbeOutcome::answer(0, asked, "a fresh client", "after the run"))
}

impl ProbeOutcome {
    /// The outcome of the probing client's exchange: `who` did or did not get its echo `when`.
    fn answer(holders: u32, asked: Result<Duration, String>, who: &str, when: &str) -> ProbeOutcome {
        match asked {
            Ok(elapsed) => ProbeOutcome {
                holders,
                served: true,
                answered_after_us: Some(elapsed.as_micros() as u64),
                detail: format!("{who} was answered in {} {when}", crate::units::duration(elapsed)),
            },
            Err(why) => ProbeOutcome::unserved(holders, format!("{who} {why} {when}")),
        }
    }

    fn unserved(holders: u32, detail: String) -> ProbeOutcome {
        ProbeOutcome {
            holders,
            served: false,
            answered_after_us: None,
            detail,
        }
    }
}

/// Connects, sends [`PROBE_MESSAGE`] and waits for exactly those bytes back, all within
/// [`PROBE_DEADLINE`]. `Err` says what went wrong as a verb phrase; `None` means Ctrl-C.
async fn exchange(
    address: SocketAddr,
    pacer: Option<&ConnectPacer>,
    cancel: &CancellationToken,
) -> Option<Result<Duration, String>> {
    let started = Instant::now();
    let attempt = async {
        let mut stream = connect(address, pacer)
            .await
            .map_err(|err| format!("could not connect to {address} ({err})"))?;
        let _ = stream.set_nodelay(true);
        stream
            .write_all(PROBE_MESSAGE)
            .await
            .map_err(|err| format!("could not send ({err})"))?;
        let mut echoed = Vec::with_capacity(PROBE_MESSAGE.len());
        let mut buffer = [0u8; 256];
        while echoed.len() < PROBE_MESSAGE.len() {
            match stream.read(&mut buffer).await {
                Ok(0) => return Err(closed_early(&echoed)),
                Ok(n) => echoed.extend_from_slice(&buffer[..n]),
                Err(err) => return Err(format!("lost its connection ({err})")),
            }
        }
        if !echoed.starts_with(PROBE_MESSAGE) {
            return Err(format!(
                "got different bytes back: {}",
                crate::escape::escape_bytes(&echoed)
            ));
        }
        Ok(started.elapsed())
    };
    let limited = tokio::time::timeout(PROBE_DEADLINE, attempt);
    tokio::select! {
        () = cancel.cancelled() => None,
        outcome = limited => Some(outcome.unwrap_or_else(|_| {
            Err(format!(
                "got no echo within {}",
                humantime::format_duration(PROBE_DEADLINE)
            ))
        })),
    }
}

/// Connects once the server's accept queue has room, when its pacer can tell.
async fn connect(address: SocketAddr, pacer: Option<&ConnectPacer>) -> std::io::Result<TcpStream> {
    let admission = match pacer {
        Some(pacer) => Some(pacer.admit(false, PROBE_DEADLINE, None).await),
        None => None,
    };
    let stream = TcpStream::connect(address).await?;
    if let Some(admission) = admission {
        admission.connected(&stream);
    }
    Ok(stream)
}

fn closed_early(echoed: &[u8]) -> String {
    match echoed.len() {
        0 => "was disconnected without a reply".to_owned(),
        n => format!(
            "was disconnected after {n} of {} bytes of its echo",
            PROBE_MESSAGE.len()
        ),
    }
}
