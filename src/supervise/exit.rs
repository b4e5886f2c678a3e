//! How a process ended, in words a student understands.

use std::fmt;

use rustix::process::WaitIdStatus;
use serde::Serialize;

/// A process's end: its exit code or the signal that killed it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ExitDescription {
    /// Exit code, when it exited by itself.
    pub code: Option<i32>,
    /// Signal number, when a signal killed it.
    pub signal: Option<i32>,
}

impl ExitDescription {
    /// Reads a `waitid` status.
    pub fn from_waitid(status: &WaitIdStatus) -> Self {
        ExitDescription {
            code: status.exit_status(),
            signal: status.terminating_signal(),
        }
    }

    /// The end of the program a sandbox ran, from the sandbox's own: bubblewrap exits with
    /// the program's code, or with 128 + N when signal N killed it, as a shell does.
    pub fn through_sandbox(self) -> Self {
        match self.code {
            Some(code @ 129..=192) => ExitDescription {
                code: None,
                signal: Some(code - 128),
            },
            _ => self,
        }
    }

    /// Reads a `std::process` status.
    pub fn from_std(status: std::process::ExitStatus) -> Self {
        use std::os::unix::process::ExitStatusExt;
        ExitDescription {
            code: status.code(),
            signal: status.signal(),
        }
    }
}

impl fmt::Display for ExitDescription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.code, self.signal) {
            (Some(code), _) => write!(f, "exited with status {code}"),
            (None, Some(signal)) => write!(f, "was killed by signal {signal} ({})", signal_name(signal)),
            (None, None) => f.write_str("ended in an unknown way"),
        }
    }
}

fn signal_name(signal: i32) -> &'static str {
    match signal {
        1 => "SIGHUP",
        2 => "SIGINT",
        6 => "SIGABRT",
        9 => "SIGKILL",
        11 => "SIGSEGV",
        13 => "SIGPIPE",
        15 => "SIGTERM",
        24 => "SIGXCPU",
        25 => "SIGXFSZ",
        _ => "signal",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describes_codes_and_signals() {
        assert_eq!(
            ExitDescription {
                code: Some(1),
                signal: None
            }
            .to_string(),
            "exited with status 1"
        );
        assert_eq!(
            ExitDescription {
                code: None,
                signal: Some(11)
            }
            .to_string(),
            "was killed by signal 11 (SIGSEGV)"
        );
        let through = ExitDescription {
            code: Some(137),
            signal: None,
        }
        .through_sandbox();
        assert_eq!(through.to_string(), "was killed by signal 9 (SIGKILL)");
    }
}
