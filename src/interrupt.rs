//! Ctrl-C, SIGTERM, SIGHUP and SIGQUIT: the first stops the run gracefully, the second kills
//! servers now. (A closed terminal sends SIGHUP; its default action would end labrun
//! without teardown.)
//!
//! The first signal cancels a token that every client wait selects on; the run then tears
//! its servers down in the normal way and prints partial results marked as such. A second
//! signal means the user is done waiting: every server process group gets SIGKILL at once.

use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;

use crate::supervise::registry;

/// Installs the handlers and returns the token the first signal cancels.
pub fn watch() -> std::io::Result<CancellationToken> {
    let token = CancellationToken::new();
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    let mut hangup = signal(SignalKind::hangup())?;
    let mut quit = signal(SignalKind::quit())?;
    let cancel = token.clone();
    tokio::spawn(async move {
        let mut received = 0;
        loop {
            tokio::select! {
                _ = interrupt.recv() => {}
                _ = terminate.recv() => {}
                _ = hangup.recv() => {}
                _ = quit.recv() => {}
            }
            received += 1;
            if received == 1 {
                eprintln!(
                    "labrun: interrupted; stopping clients and servers (press Ctrl-C again to kill them now)"
                );
                cancel.cancel();
            } else {
                eprintln!("labrun: killing servers now");
                registry::kill_all();
            }
        }
    });
    Ok(token)
}
