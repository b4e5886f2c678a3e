//! Typing at a client program's standard input, the way a person would: a line at a time,
//! after a pause, and (for lines that say `after`) only once the program has asked.
//!
//! Waiting for a prompt reads the program's captured stdout from a cursor that moves past
//! each prompt found, so a prompt printed before every input (`"> "`) is waited for anew each
//! time rather than matched again at its first appearance. After the last line the pipe is
//! handed back, still open, unless the scenario closes it: a program that ignores `exit` must
//! be seen hanging, not rescued by end of input.

use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::process::ChildStdin;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::record::{TypingRecord, TypingStop};
use crate::scenario::Typing;
use crate::supervise::{SharedCapture, capture};

/// Where typing happens and until when.
pub struct Keyboard {
    /// The program's stdin; `None` when it could not be opened (nothing can be typed).
    pub stdin: Option<ChildStdin>,
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

/// Types `typing`'s lines; returns what was typed and the stdin pipe if it is to stay open.
pub async fn type_lines(mut keyboard: Keyboard, typing: &Typing) -> (TypingRecord, Option<ChildStdin>) {
    let mut record = TypingRecord::default();
    let mut cursor = 0u64;
    for (line, typed) in typing.lines.iter().enumerate() {
        if let Some(prompt) = &typed.after
            && let Err(stop) = wait_for_prompt(&mut keyboard, prompt, line, &mut cursor).await
        {
            record.stopped = Some(stop);
            return (record, keyboard.stdin);
        }
        if !pause(&keyboard, typing.delay).await {
            record.stopped = Some(TypingStop::Interrupted { line });
            return (record, keyboard.stdin);
        }
        let Some(stdin) = keyboard.stdin.as_mut() else {
            record.stopped = Some(TypingStop::InputClosed { line });
            return (record, None);
        };
        let text = format!("{}\n", typed.text);
        // A program that has ended (or closed its stdin) makes the write fail: typing stops.
        if stdin.write_all(text.as_bytes()).await.is_err() || stdin.flush().await.is_err() {
            record.stopped = Some(TypingStop::InputClosed { line });
            return (record, None);
        }
        record.typed += 1;
        record.last_typed_at = Some(keyboard.launched.elapsed());
    }
    let stdin = if typing.close { None } else { keyboard.stdin };
    (record, stdin)
}

/// Sleeps `delay` unless Ctrl-C comes first (false then); bounded by the deadline.
async fn pause(keyboard: &Keyboard, delay: Duration) -> bool {
    let until = (Instant::now() + delay).min(keyboard.deadline);
    tokio::select! {
        () = keyboard.cancel.cancelled() => false,
        () = tokio::time::sleep_until(until) => true,
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
        tokio::select! {
            changed = keyboard.stdout_growth.changed() => output_open = changed.is_ok(),
            () = tokio::time::sleep_until(keyboard.deadline) => {
                return Err(TypingStop::PromptNeverCame { line, prompt });
            }
            () = keyboard.cancel.cancelled() => return Err(TypingStop::Interrupted { line }),
        }
    }
}
