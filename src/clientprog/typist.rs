//! Typing at a client program's standard input, the way a person would: a line at a time,
//! after a pause, and (for lines that say `after`) only once the program has asked.
//!
//! Waiting for a prompt reads the program's captured stdout from a cursor that moves past
//! each prompt found, so a prompt printed before every input (`"> "`) is waited for anew each
//! time rather than matched again at its first appearance. After the last line the pipe is
//! handed back, still open, unless the scenario closes it: a program that ignores `exit` must
//! be seen hanging, not rescued by end of input.

use tokio::io::AsyncWriteExt;
use tokio::net::unix::pipe;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::record::{TypingRecord, TypingStop};
use crate::scenario::Typing;
use crate::supervise::{SharedCapture, capture};

/// Where typing happens and until when.
pub struct Keyboard {
    /// The program's stdin; `None` when it could not be opened (nothing can be typed).
    pub stdin: Option<pipe::Sender>,
    /// Its stdout, as captured.
    pub stdout: SharedCapture,
    /// Changes as its stdout grows; closed at EOF.
    pub stdout_growth: watch::Receiver<()>,
    /// Its launch: typing times are offsets from it.
    pub launched: Instant,
    /// When to give up waiting.
    pub deadline: Instant,
    /// Ctrl-C.
    pub cancel: CancellationToken,
}

/// Types `typing`'s lines, noting each in `record`; leaves `keyboard.stdin` open after the
/// last one unless the scenario closes it. Every wait is bounded by the deadline and Ctrl-C,
/// and the caller may drop this future at any point (the program ended): `record` then
/// holds what was typed so far.
pub async fn type_lines(keyboard: &mut Keyboard, typing: &Typing, record: &mut TypingRecord) {
    let mut cursor = 0u64;
    let (deadline, cancel) = (keyboard.deadline, keyboard.cancel.clone());
    for (line, typed) in typing.lines.iter().enumerate() {
        if let Some(prompt) = &typed.after
            && let Err(stop) = wait_for_prompt(keyboard, prompt, line, &mut cursor).await
        {
            record.stopped = Some(stop);
            return;
        }
        if let Err(stop) = bounded(deadline, &cancel, line, tokio::time::sleep(typing.delay)).await {
            record.stopped = Some(stop);
            return;
        }
        let Some(stdin) = keyboard.stdin.as_mut() else {
            record.stopped = Some(TypingStop::InputClosed { line });
            return;
        };
        let text = format!("{}\n", typed.text);
        // A program that does not read its stdin fills the pipe and blocks the write: that
        // wait is bounded too. One that has ended (or closed stdin) makes the write fail.
        let write = async { stdin.write_all(text.as_bytes()).await.and(stdin.flush().await) };
        match bounded(deadline, &cancel, line, write).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => {
                keyboard.stdin = None;
                record.stopped = Some(TypingStop::InputClosed { line });
                return;
            }
            Err(stop) => {
                record.stopped = Some(stop);
                return;
            }
        }
        record.typed += 1;
        record.last_typed_at = Some(keyboard.launched.elapsed());
    }
    if typing.close {
        keyboard.stdin = None;
    }
}

/// Waits for `work` unless the deadline or Ctrl-C comes first; `line` is the line being
/// typed, for the record.
async fn bounded<T>(
    deadline: Instant,
    cancel: &CancellationToken,
    line: usize,
    work: impl Future<Output = T>,
) -> Result<T, TypingStop> {
    tokio::select! {
        () = cancel.cancelled() => Err(TypingStop::Interrupted { line }),
        () = tokio::time::sleep_until(deadline) => Err(TypingStop::TimeRanOut { line }),
        done = work => Ok(done),
    }
}

/// Waits until `prompt` appears in stdout at or after `cursor`, then moves the cursor past it.
async fn wait_for_prompt(
    keyboard: &mut Keyboard,
    prompt: &str,
    line: usize,
    cursor: &mut u64,
) -> Result<(), TypingStop> {
    let mut output_open = true;
    loop {
        if let Some(end) = capture::lock(&keyboard.stdout).find(prompt.as_bytes(), *cursor) {
            *cursor = end;
            return Ok(());
        }
        let prompt = prompt.to_owned();
        if !output_open {
            return Err(TypingStop::OutputEnded { line, prompt });
        }
        let (deadline, cancel) = (keyboard.deadline, keyboard.cancel.clone());
        match bounded(deadline, &cancel, line, keyboard.stdout_growth.changed()).await {
            Ok(changed) => output_open = changed.is_ok(),
            Err(TypingStop::TimeRanOut { line }) => {
                return Err(TypingStop::PromptNeverCame { line, prompt });
            }
            Err(stop) => return Err(stop),
        }
    }
}
