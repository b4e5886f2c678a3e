//! Bounded capture of a server's stdout and stderr.
//!
//! Lab servers print a line per message; a server whose pipe fills up blocks in `print` and
//! looks hung, so both pipes are drained continuously from the moment it starts. What is
//! kept is bounded whatever the server writes: the first and the last few KiB (a traceback
//! is at the end, the banner at the start), plus a count of everything.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use regex::Regex;

use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::task::JoinHandle;

use crate::escape::escape_lines;

/// Bytes kept from the start of the stream.
const HEAD_BYTES: usize = 4 * 1024;
/// Bytes kept from the end of the stream.
const TAIL_BYTES: usize = 8 * 1024;

/// The kept part of one output stream.
#[derive(Debug, Default)]
pub struct Capture {
    head: Vec<u8>,
    tail: VecDeque<u8>,
    total: u64,
}

impl Capture {
    fn push(&mut self, mut bytes: &[u8]) {
        self.total += bytes.len() as u64;
        let head_room = HEAD_BYTES - self.head.len();
        let into_head = head_room.min(bytes.len());
        self.head.extend_from_slice(&bytes[..into_head]);
        bytes = &bytes[into_head..];
        if bytes.len() >= TAIL_BYTES {
            self.tail.clear();
            bytes = &bytes[bytes.len() - TAIL_BYTES..];
        }
        let overflow = (self.tail.len() + bytes.len()).saturating_sub(TAIL_BYTES);
        self.tail.drain(..overflow);
        self.tail.extend(bytes);
    }

    /// Everything the stream carried, in bytes, including what was not kept.
    pub fn total_bytes(&self) -> u64 {
        self.total
    }

    /// The last `max_lines` lines, escaped for display, with a note when output was dropped.
    pub fn tail_text(&self, max_lines: usize) -> String {
        let mut kept: Vec<u8> = self.head.clone();
        let dropped = self.total - (self.head.len() + self.tail.len()) as u64;
        if dropped > 0 {
            kept.extend_from_slice(format!("\n[… {dropped} bytes not kept …]\n").as_bytes());
        }
        kept.extend(self.tail.iter());
        let text = escape_lines(trim_final_newline(&kept));
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(max_lines)..].join("\n")
    }
}

fn trim_final_newline(bytes: &[u8]) -> &[u8] {
    bytes.strip_suffix(b"\n").unwrap_or(bytes)
}

/// A capture shared between its drain task and the supervisor.
pub type SharedCapture = Arc<Mutex<Capture>>;

/// Longest line kept for readiness matching; longer lines are matched on their start.
const MATCH_LINE_BYTES: usize = 4096;

/// A drained output stream: what was kept, whether the readiness pattern was seen.
pub struct Drained {
    /// The kept output.
    pub capture: SharedCapture,
    /// Set once a line matched the pattern given to [`drain`].
    pub matched: Arc<AtomicBool>,
    /// The task draining the pipe; it ends at EOF or on a read error.
    pub task: JoinHandle<()>,
}

/// Starts draining `pipe` into a new capture, watching each line for `pattern`.
pub fn drain(mut pipe: impl AsyncRead + Unpin + Send + 'static, pattern: Option<Regex>) -> Drained {
    let capture = SharedCapture::default();
    let matched = Arc::new(AtomicBool::new(false));
    let (sink, flag) = (Arc::clone(&capture), Arc::clone(&matched));
    let task = tokio::spawn(async move {
        let mut buffer = vec![0u8; 8 * 1024];
        let mut line = Vec::new();
        while let Ok(n @ 1..) = pipe.read(&mut buffer).await {
            let chunk = &buffer[..n];
            lock(&sink).push(chunk);
            if let Some(pattern) = &pattern
                && !flag.load(Ordering::Relaxed)
                && watch_lines(pattern, &mut line, chunk)
            {
                flag.store(true, Ordering::Relaxed);
            }
        }
    });
    Drained {
        capture,
        matched,
        task,
    }
}

/// Feeds `chunk` into the line being assembled; true when a line (complete, or the partial
/// one so far, for prompts printed without a newline) matches.
fn watch_lines(pattern: &Regex, line: &mut Vec<u8>, chunk: &[u8]) -> bool {
    let mut found = false;
    for piece in chunk.split_inclusive(|&b| b == b'\n') {
        let room = MATCH_LINE_BYTES.saturating_sub(line.len());
        line.extend_from_slice(&piece[..piece.len().min(room)]);
        let text = String::from_utf8_lossy(line);
        found |= pattern.is_match(text.trim_end_matches(['\n', '\r']));
        if piece.ends_with(b"\n") {
            line.clear();
        }
    }
    found
}

/// Locks a capture; a poisoned lock still holds valid bytes, so it is used as is.
pub fn lock(capture: &SharedCapture) -> std::sync::MutexGuard<'_, Capture> {
    capture.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readiness_pattern_matches_across_chunks() {
        let pattern = Regex::new("listening on [0-9]+$").unwrap();
        let mut line = Vec::new();
        assert!(!watch_lines(&pattern, &mut line, b"booting\nlisten"));
        assert!(watch_lines(&pattern, &mut line, b"ing on 6000\n"));
        assert!(!watch_lines(&pattern, &mut line, b"\xff\xfe garbage\n"));
    }

    #[test]
    fn keeps_head_and_tail_of_a_flood() {
        let mut capture = Capture::default();
        capture.push(b"banner\n");
        for i in 0..100_000 {
            capture.push(format!("line {i}\n").as_bytes());
        }
        capture.push(b"Traceback: boom\x1b[2J");
        assert!(capture.head.len() <= HEAD_BYTES && capture.tail.len() <= TAIL_BYTES);
        let tail = capture.tail_text(2);
        assert_eq!(tail, "line 99999\nTraceback: boom\\x1b[2J");
        assert!(capture.tail_text(10_000).starts_with("banner\n"));
        assert!(capture.tail_text(10_000).contains("bytes not kept"));
    }
}
