//! Ctrl-C, SIGTERM, SIGHUP and SIGQUIT: the first stops the run gracefully, the second kills
//! servers now. (A closed terminal sends SIGHUP; its default action would end labrun
//! without teardown.)
//!
//! The first signal cancels a token that every client wait selects on; the run then tears
//! its servers down in the normal way and prints partial results marked as such. A second
//! signal means the user is done waiting: every server process group gets SIGKILL at once.
//!
//! The signals are received on a thread of their own (signal-hook's self-pipe), not by a
//! tokio signal driver: with tokio's `signal` and `process` features off, every runtime —
//! each client worker's included — is built without the drivers those features wrap around
//! its IO driver, which would otherwise run on every one of the workers' wake-ups.

use signal_hook::consts::{SIGHUP, SIGINT, SIGQUIT, SIGTERM};
use signal_hook::iterator::Signals;
use tokio_util::sync::CancellationToken;

use crate::supervise::registry;

/// Installs the handlers and returns the token the first signal cancels.
pub fn watch() -> std::io::Result<CancellationToken> {
    let token = CancellationToken::new();
    let mut signals = Signals::new([SIGINT, SIGTERM, SIGHUP, SIGQUIT])?;
    let cancel = token.clone();
    std::thread::Builder::new()
        .name("labrun-signals".into())
        .spawn(move || {
            for (received, _) in signals.forever().enumerate() {
                if received == 0 {
                    eprintln!(
                        "labrun: interrupted; stopping clients and servers (press Ctrl-C again to kill them now)"
                    );
                    cancel.cancel();
                } else {
                    eprintln!("labrun: killing servers now");
                    registry::kill_all();
                }
            }
        })?;
    Ok(token)
}
