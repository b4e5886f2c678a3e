//! Bounded capture of a supervised program's stdout and stderr.
//!
//! Lab programs print a line per message; a program whose pipe fills up blocks in `print`
//! and looks hung, so both pipes are drained continuously from the moment it starts. What is
//! kept is bounded whatever the program writes: the first and the last bytes (a traceback is
//! at the end, the banner at the start), plus a count of everything. A server's output is
//! only shown, so a few KiB suffice; a client program's stdout is judged (did it print the
//! replies?), so its callers keep more of the start.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use regex::Regex;

use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::escape::escape_lines;

/// How much of a stream is kept: its first `head_bytes` and its last `tail_bytes`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CaptureLimits {
    /// Bytes kept from the start of the stream.
    pub head_bytes: usize,
    /// Bytes kept from the end of the stream.
    pub tail_bytes: usize,
}

impl CaptureLimits {
    /// A server's output: shown in reports, never judged.
    pub const SERVER: CaptureLimits = CaptureLimits {
        head_bytes: 4 * 1024,
        tail_bytes: 8 * 1024,
    };
    /// A client program's output: its stdout is searched for prompts and replies, so a
    /// whole session is kept: everything it may be typed (`MAX_TYPED_BYTES`, 192 KiB)
    /// printed back, plus a prompt and a prefix for each of up to 10,000 lines.
    pub const PROGRAM: CaptureLimits = CaptureLimits {
        head_bytes: 512 * 1024,
        tail_bytes: 8 * 1024,
    };
}

impl Default for CaptureLimits {
    fn default() -> Self {
        CaptureLimits::SERVER
    }
}

/// The kept part of one output stream.
#[derive(Debug, Default)]
pub struct Capture {
    limits: CaptureLimits,
    head: Vec<u8>,
    tail: VecDeque<u8>,
    total: u64,
}

impl Capture {
    /// An empty capture keeping what `limits` says.
    pub fn new(limits: CaptureLimits) -> Capture {
        Capture {
            limits,
            ..Capture::default()
        }
    }

    fn push(&mut self, mut bytes: &[u8]) {
        self.total += bytes.len() as u64;
        let head_room = self.limits.head_bytes - self.head.len();
        let into_head = head_room.min(bytes.len());
        self.head.extend_from_slice(&bytes[..into_head]);
        bytes = &bytes[into_head..];
        let tail_bytes = self.limits.tail_bytes;
        if bytes.len() >= tail_bytes {
            self.tail.clear();
            bytes = &bytes[bytes.len() - tail_bytes..];
        }
        let overflow = (self.tail.len() + bytes.len()).saturating_sub(tail_bytes);
        self.tail.drain(..overflow);
        self.tail.extend(bytes);
    }

    /// Bytes written but not kept (between the head and the tail).
    pub fn dropped_bytes(&self) -> u64 {
        self.total - (self.head.len() + self.tail.len()) as u64
    }

    /// The kept bytes, each run with its offset in the stream: one run when nothing was
    /// dropped, else the head and the tail.
    pub fn kept(&self) -> Vec<(u64, Vec<u8>)> {
        let tail: Vec<u8> = self.tail.iter().copied().collect();
        if self.dropped_bytes() == 0 {
            let mut all = self.head.clone();
            all.extend(tail);
            return vec![(0, all)];
        }
        vec![(0, self.head.clone()), (self.total - tail.len() as u64, tail)]
    }

    /// Where the first `needle` at or after stream offset `from` ends, in the kept bytes.
    /// Called on every chunk while a prompt is awaited, so the head is searched in place and
    /// only the (small) tail is copied.
    pub fn find(&self, needle: &[u8], from: u64) -> Option<u64> {
        let head_len = self.head.len() as u64;
        if from < head_len
            && let Some(at) = find_bytes(&self.head[from as usize..], needle)
        {
            return Some(from + (at + needle.len()) as u64);
        }
        let tail_start = self.total - self.tail.len() as u64;
        // Without a gap the head runs straight into the tail, and a match may straddle them.
        let straddle = if self.dropped_bytes() == 0 {
            needle.len().saturating_sub(1) as u64
        } else {
            0
        };
        let start = tail_start.saturating_sub(straddle).max(from);
        let mut window = Vec::with_capacity(self.tail.len() + straddle as usize);
        if start < head_len {
            window.extend_from_slice(&self.head[start as usize..]);
        }
        window.extend(self.tail.iter().skip(start.saturating_sub(tail_start) as usize));
        find_bytes(&window, needle).map(|at| start + (at + needle.len()) as u64)
    }

    /// Everything the stream carried, in bytes, including what was not kept.
    pub fn total_bytes(&self) -> u64 {
        self.total
    }

    /// The last `max_lines` lines, escaped for display, with a note when output was dropped.
    pub fn tail_text(&self, max_lines: usize) -> String {
        let mut kept: Vec<u8> = self.head.clone();
        let dropped = self.dropped_bytes();
        if dropped > 0 {
            kept.extend_from_slice(format!("\n[… {dropped} bytes not kept …]\n").as_bytes());
        }
        kept.extend(self.tail.iter());
        let text = escape_lines(trim_final_newline(&kept));
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(max_lines)..].join("\n")
    }
}

/// Index of the first occurrence of `needle` in `haystack` (an empty needle is at 0).
pub fn find_bytes(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return Some(0);
    }
    haystack.windows(needle.len()).position(|window| window == needle)
}

fn trim_final_newline(bytes: &[u8]) -> &[u8] {
    bytes.strip_suffix(b"\n").unwrap_or(bytes)
}

/// A capture shared between its drain task and the supervisor.
pub type SharedCapture = Arc<Mutex<Capture>>;

/// Longest line kept for readiness matching; longer lines are matched on their start.
const MATCH_LINE_BYTES: usize = 4096;

/// A drained output stream: what was kept, whether the watched pattern was seen.
pub struct Drained {
    /// The kept output.
    pub capture: SharedCapture,
    /// Set once a line matched the pattern given to [`drain`].
    pub matched: Arc<AtomicBool>,
    /// Changes after every chunk; its sender is dropped at EOF, so a waiter learns that no
    /// more output will come (a watch, not a notify: a change between a look at the capture
    /// and the wait is never lost).
    pub grew: watch::Receiver<()>,
    /// The task draining the pipe; it ends at EOF or on a read error.
    pub task: JoinHandle<()>,
}

/// Starts draining `pipe` into a new capture, watching each line for `pattern`.
pub fn drain(
    mut pipe: impl AsyncRead + Unpin + Send + 'static,
    limits: CaptureLimits,
    pattern: Option<Regex>,
) -> Drained {
    let capture = Arc::new(Mutex::new(Capture::new(limits)));
    let matched = Arc::new(AtomicBool::new(false));
    let (sink, flag) = (Arc::clone(&capture), Arc::clone(&matched));
    let (grown, grew) = watch::channel(());
    let task = tokio::spawn(async move {
        let mut buffer = vec![0u8; 8 * 1024];
        let mut line = Vec::new();
        while let Ok(n @ 1..) = pipe.read(&mut buffer).await {
            let chunk = &buffer[..n];
            lock(&sink).push(chunk);
            grown.send_replace(());
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
        grew,
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
        let mut capture = Capture::new(CaptureLimits::SERVER);
        capture.push(b"banner\n");
        for i in 0..100_000 {
            capture.push(format!("line {i}\n").as_bytes());
        }
        capture.push(b"Traceback: boom\x1b[2J");
        assert!(capture.head.len() <= 4096 && capture.tail.len() <= 8192);
        let tail = capture.tail_text(2);
        assert_eq!(tail, "line 99999\nTraceback: boom\\x1b[2J");
        assert!(capture.tail_text(10_000).starts_with("banner\n"));
        assert!(capture.tail_text(10_000).contains("bytes not kept"));
        assert_eq!(capture.find(b"banner", 0), Some(6));
        assert!(capture.find(b"line 99999", 7).is_some());
        assert_eq!(capture.find(b"banner", 1), None);
    }

    #[test]
    fn finds_prompts_after_a_cursor() {
        let mut capture = Capture::new(CaptureLimits::PROGRAM);
        capture.push(b"> Echo: hi\n> ");
        let first = capture.find(b"> ", 0).expect("first prompt");
        assert_eq!(first, 2);
        assert_eq!(capture.find(b"> ", first), Some(13));
        assert_eq!(capture.find(b"> ", 13), None);
    }

    #[test]
    fn finds_a_prompt_across_the_head_and_the_tail() {
        let limits = CaptureLimits {
            head_bytes: 4,
            tail_bytes: 8,
        };
        let mut capture = Capture::new(limits);
        capture.push(b"abc1 or 2?");
        assert_eq!(capture.find(b"1 or 2?", 0), Some(10), "straddles head and tail");
        assert_eq!(capture.find(b"1 or 2?", 3), Some(10));
        assert_eq!(capture.find(b"1 or 2?", 4), None, "it starts before the cursor");
        capture.push(b"0123456789> ");
        assert_eq!(capture.dropped_bytes(), 10);
        assert_eq!(capture.find(b"> ", 0), Some(22), "found in the tail after a gap");
        assert_eq!(capture.find(b"abc", 0), Some(3));
        assert_eq!(capture.find(b"abc", 1), None);
    }
}
