//! The process groups labrun has started and not yet reaped: the backstop for teardown.
//!
//! Normal teardown goes through [`super::ServerHandle`]. This registry exists for the paths
//! where that cannot run in time: a panic on any thread (the hook kills every group before
//! the unwinding starts) and a second Ctrl-C (kill now, do not wait for the grace period).

use std::sync::Mutex;

use rustix::process::{Pid, Signal, kill_process_group};

static LIVE_GROUPS: Mutex<Vec<Pid>> = Mutex::new(Vec::new());

fn groups() -> std::sync::MutexGuard<'static, Vec<Pid>> {
    LIVE_GROUPS
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Remembers a group leader's process group until [`forget`].
pub fn remember(group: Pid) {
    groups().push(group);
}

/// Forgets a group once it has been killed and reaped.
pub fn forget(group: Pid) {
    groups().retain(|&g| g != group);
}

/// Sends SIGKILL to every remembered group and to every descendant of labrun. Leaders are
/// reaped later by their handles; an unreaped leader keeps its group id reserved, so the
/// signal cannot hit a stranger.
pub fn kill_all() {
    for &group in groups().iter() {
        let _ = kill_process_group(group, Signal::KILL);
    }
    super::tree::kill_descendants_of_labrun();
}

/// Makes every panic kill the servers first, then report as usual.
pub fn install_panic_hook() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        kill_all();
        previous(info);
    }));
}
