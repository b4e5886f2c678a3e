//! Terminal styling decided once, from facts passed in, so renderers stay testable.
//!
//! Colour is on only when stdout is a terminal, `NO_COLOR` is unset or empty and `TERM` is
//! not `dumb`. Progress bars additionally need stderr to be a terminal and `CI` to be unset;
//! elsewhere progress is a line every few seconds, and nothing with `--quiet`.

use super::progress::ProgressDisplay;

/// The facts output decisions depend on.
#[derive(Debug, Clone, Copy, Default)]
pub struct Environment {
    /// stdout is a terminal.
    pub stdout_tty: bool,
    /// stderr is a terminal.
    pub stderr_tty: bool,
    /// `NO_COLOR` is set to something non-empty.
    pub no_color: bool,
    /// `TERM=dumb`.
    pub dumb_terminal: bool,
    /// `CI` is set.
    pub ci: bool,
    /// Columns of the terminal on stdout, or of `COLUMNS`, when known.
    pub columns: Option<usize>,
}

impl Environment {
    /// Reads the real process environment.
    pub fn detect() -> Self {
        use std::io::IsTerminal;
        let set = |name| std::env::var_os(name).is_some_and(|v| !v.is_empty());
        Environment {
            stdout_tty: std::io::stdout().is_terminal(),
            stderr_tty: std::io::stderr().is_terminal(),
            no_color: set("NO_COLOR"),
            dumb_terminal: std::env::var_os("TERM").is_some_and(|t| t == "dumb"),
            ci: set("CI"),
            columns: terminal_columns(),
        }
    }
}

/// Width assumed when output goes to a file or pipe: wide enough for two histograms side
/// by side, narrow enough for a CI log.
pub const DEFAULT_WIDTH: usize = 110;
/// Charts never shrink below this, however narrow the terminal says it is.
const MIN_WIDTH: usize = 60;

/// `COLUMNS` if set (the user's word wins), else the size of the terminal on stdout.
fn terminal_columns() -> Option<usize> {
    if let Some(columns) = std::env::var("COLUMNS").ok().and_then(|c| c.trim().parse().ok()) {
        return Some(columns);
    }
    rustix::termios::tcgetwinsize(std::io::stdout())
        .ok()
        .map(|size| usize::from(size.ws_col))
        .filter(|&columns| columns > 0)
}

/// How to paint output.
#[derive(Debug, Clone, Copy)]
pub struct Styles {
    /// Emit ANSI colours on stdout.
    pub color: bool,
    /// How progress shows on stderr.
    pub progress: ProgressDisplay,
    /// Columns charts may use.
    pub width: usize,
}

impl Default for Styles {
    fn default() -> Self {
        Styles {
            color: false,
            progress: ProgressDisplay::Off,
            width: DEFAULT_WIDTH,
        }
    }
}

/// What a piece of text means, for painting.
#[derive(Debug, Clone, Copy)]
pub enum Tone {
    /// A check that held.
    Pass,
    /// A check that failed.
    Fail,
    /// Secondary text.
    Dim,
    /// Headings.
    Bold,
}

impl Styles {
    /// Decides styling from the environment and the `--quiet` flag.
    pub fn resolve(env: Environment, quiet: bool) -> Self {
        Styles {
            color: env.stdout_tty && !env.no_color && !env.dumb_terminal,
            progress: if quiet {
                ProgressDisplay::Off
            } else if env.stderr_tty && !env.ci && !env.dumb_terminal {
                ProgressDisplay::Bar
            } else {
                ProgressDisplay::Lines
            },
            width: env.columns.unwrap_or(DEFAULT_WIDTH).max(MIN_WIDTH),
        }
    }

    /// Wraps `text` in the tone's colour when colour is on.
    pub fn paint(&self, tone: Tone, text: &str) -> String {
        if !self.color {
            return text.to_owned();
        }
        let code = match tone {
            Tone::Pass => "1;32",
            Tone::Fail => "1;31",
            Tone::Dim => "2",
            Tone::Bold => "1",
        };
        format!("\x1b[{code}m{text}\x1b[0m")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colour_and_bars_follow_the_environment() {
        let tty = Environment {
            stdout_tty: true,
            stderr_tty: true,
            ..Default::default()
        };
        assert!(Styles::resolve(tty, false).color);
        assert_eq!(Styles::resolve(tty, false).progress, ProgressDisplay::Bar);
        assert!(
            !Styles::resolve(
                Environment {
                    no_color: true,
                    ..tty
                },
                false
            )
            .color
        );
        // A CI log gets a line every few seconds instead of a bar; --quiet gets nothing.
        assert_eq!(
            Styles::resolve(Environment { ci: true, ..tty }, false).progress,
            ProgressDisplay::Lines
        );
        assert_eq!(
            Styles::resolve(Environment::default(), false).progress,
            ProgressDisplay::Lines
        );
        assert_eq!(Styles::resolve(tty, true).progress, ProgressDisplay::Off);
        assert!(!Styles::resolve(Environment::default(), false).color);
        assert_eq!(Styles::default().paint(Tone::Fail, "FAIL"), "FAIL");
    }
}
