//! Making untrusted bytes safe to show on a terminal or in a report.
//!
//! Everything a server under test sends or prints may be binary, invalid UTF-8, or carry
//! terminal escape sequences that would repaint or hijack the user's terminal. Nothing a
//! server wrote reaches a human without passing through [`escape_bytes`]: valid UTF-8 text
//! stays readable, everything else becomes a visible escape (`\n`, `\x1b`, `\u{202e}`).

use std::fmt::Write;

/// Renders bytes as printable text: printable characters as themselves, common controls as
/// `\n` `\r` `\t`, other bytes as `\xNN`, and invisible or bidi-control characters as
/// `\u{...}`. The output never contains a control character.
pub fn escape_bytes(bytes: &[u8]) -> String {
    escape(bytes, Backslash::Escaped)
}

/// Like [`escape_bytes`] but keeps line breaks, for multi-line output tails shown as a block.
pub fn escape_lines(bytes: &[u8]) -> String {
    lines(bytes, Backslash::Escaped)
}

/// For labrun's own output, which carries a program's bytes already escaped (a child
/// `labrun run`'s error): like [`escape_lines`], but a backslash stays one, so what was
/// escaped once is not escaped again; anything that should not be there still is.
pub fn escape_lines_once(bytes: &[u8]) -> String {
    lines(bytes, Backslash::Kept)
}

/// What a backslash becomes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Backslash {
    /// `\\`: the text is a program's, and a backslash in it must not pass for an escape.
    Escaped,
    /// `\`: the text is labrun's, whose backslashes are its escapes.
    Kept,
}

fn lines(bytes: &[u8], backslash: Backslash) -> String {
    bytes
        .split(|&b| b == b'\n')
        .map(|line| escape(line, backslash))
        .collect::<Vec<_>>()
        .join("\n")
}

fn escape(bytes: &[u8], backslash: Backslash) -> String {
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '\\' if backslash == Backslash::Kept => out.push(c),
                c => push_char(&mut out, c),
            }
        }
        for byte in chunk.invalid() {
            let _ = write!(out, "\\x{byte:02x}");
        }
    }
    out
}

fn push_char(out: &mut String, c: char) {
    match c {
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        '\\' => out.push_str("\\\\"),
        c if (c as u32) < 0x80 && c.is_ascii_control() => {
            let _ = write!(out, "\\x{:02x}", c as u32);
        }
        c if c.is_control() || is_invisible_format(c) => {
            let _ = write!(out, "\\u{{{:x}}}", c as u32);
        }
        c => out.push(c),
    }
}

/// Characters that can reorder, hide or fake text: bidi marks and overrides, zero-width
/// joiners, line and paragraph separators, tag characters, and the Hangul fillers that
/// render as blanks (so `alice` and `alice` plus one of these look the same).
fn is_invisible_format(c: char) -> bool {
    matches!(
        c as u32,
        0x061C
            | 0x115F..=0x1160
            | 0x180E
            | 0x200B..=0x200F
            | 0x2028..=0x202E
            | 0x2060..=0x2064
            | 0x2066..=0x206F
            | 0x3164
            | 0xFEFF
            | 0xFFA0
            | 0xE0000..=0xE007F
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_text_and_escapes_everything_else() {
        assert_eq!(escape_bytes(b"hello"), "hello");
        assert_eq!(escape_bytes("héllo".as_bytes()), "héllo");
        assert_eq!(escape_bytes(b"a\nb\x1b[2J\xff\x00"), "a\\nb\\x1b[2J\\xff\\x00");
        assert_eq!(escape_bytes("\u{202e}evil".as_bytes()), "\\u{202e}evil");
        assert_eq!(escape_bytes("\u{9b}".as_bytes()), "\\u{9b}");
        for hidden in ['\u{61c}', '\u{2028}', '\u{3164}', '\u{e0041}', '\u{ffa0}'] {
            let shown = escape_bytes(format!("alice{hidden}").as_bytes());
            assert_eq!(shown, format!("alice\\u{{{:x}}}", hidden as u32));
        }
    }

    #[test]
    fn lines_keep_breaks_but_nothing_else() {
        assert_eq!(escape_lines(b"one\ntwo\x07"), "one\ntwo\\x07");
    }

    #[test]
    fn escaped_text_is_not_escaped_twice() {
        let once = escape_lines(b"raise \"\\x1b\"\nbad \x1b[31m\xff");
        assert_eq!(once, "raise \"\\\\x1b\"\nbad \\x1b[31m\\xff");
        assert_eq!(escape_lines_once(once.as_bytes()), once);
        assert_eq!(escape_lines_once(b"left \x1b[2J\xfe"), "left \\x1b[2J\\xfe");
    }
}
