//! Errors in scenario files, rendered the way editors and CI annotators parse them.
//!
//! Every problem with a scenario is reported as `path:line:col: message`, followed by the
//! offending source line and a caret under the span, plus a "did you mean" hint when an
//! unknown name is close to a known one. The TOML parser gives byte spans; this module turns
//! them into line and column numbers (1-based, columns counted in characters) so the first
//! line of the error is clickable in a terminal and matchable by CI problem matchers.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// One located problem in a scenario file.
#[derive(Debug, Clone)]
pub struct Diagnostic {
    /// File the problem is in.
    pub path: PathBuf,
    /// 1-based line of the start of the span.
    pub line: usize,
    /// 1-based column (in characters) of the start of the span.
    pub column: usize,
    /// What is wrong and what was expected.
    pub message: String,
    source_line: String,
    caret_width: usize,
    help: Option<String>,
}

impl Diagnostic {
    /// Locates `span` (byte offsets into `source`) and builds the diagnostic. A missing span
    /// (a problem with the file as a whole) points at the first line.
    pub fn new(path: &Path, source: &str, span: Option<Range<usize>>, message: String) -> Self {
        let span = span.unwrap_or(0..0);
        let start = floor_char_boundary(source, span.start.min(source.len()));
        let line_start = source[..start].rfind('\n').map_or(0, |i| i + 1);
        let line_end = source[start..].find('\n').map_or(source.len(), |i| start + i);
        let line = source[..start].matches('\n').count() + 1;
        let column = source[line_start..start].chars().count() + 1;
        let source_line = source[line_start..line_end].trim_end_matches('\r').to_owned();
        let span_end = floor_char_boundary(source, span.end.clamp(start, line_end));
        let caret_width = source[start..span_end].chars().count().max(1);
        let help = suggestion_for(&message);
        Diagnostic {
            path: path.to_owned(),
            line,
            column,
            message,
            source_line,
            caret_width,
            help,
        }
    }
}

fn floor_char_boundary(s: &str, mut index: usize) -> usize {
    while !s.is_char_boundary(index) {
        index -= 1;
    }
    index
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.path.display(),
            self.line,
            self.column,
            self.message
        )?;
        if self.source_line.is_empty() {
            return Ok(());
        }
        let gutter = self.line.to_string().len();
        let pad: String = self
            .source_line
            .chars()
            .take(self.column - 1)
            .map(|c| if c == '\t' { '\t' } else { ' ' })
            .collect();
        write!(
            f,
            "\n {:>gutter$} | {}\n {:>gutter$} | {}{}",
            self.line,
            self.source_line,
            "",
            pad,
            "^".repeat(self.caret_width)
        )?;
        if let Some(help) = &self.help {
            write!(f, " {help}")?;
        }
        Ok(())
    }
}

/// For serde's "unknown field `x`, expected one of `a`, `b`" (and the same for variants),
/// proposes the closest expected name when it is plausibly a typo.
fn suggestion_for(message: &str) -> Option<String> {
    let rest = message
        .strip_prefix("unknown field `")
        .or_else(|| message.strip_prefix("unknown variant `"))?;
    let (given, rest) = rest.split_once('`')?;
    let candidates = rest.split('`').skip(1).step_by(2);
    let (best, distance) = candidates
        .map(|candidate| (candidate, edit_distance(given, candidate)))
        .min_by_key(|&(_, distance)| distance)?;
    let plausible = distance <= 2.max(given.chars().count() / 3);
    plausible.then(|| format!("did you mean `{best}`?"))
}

/// Levenshtein distance over characters; names are short, so the quadratic table is fine.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let substitution = diagonal + usize::from(ca != cb);
            diagonal = row[j + 1];
            row[j + 1] = substitution.min(row[j] + 1).min(row[j + 1] + 1);
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locates_span_and_suggests_near_name() {
        let source = "name = \"x\"\n\n[[clients]]\ncout = 50\n";
        let start = source.find("cout").unwrap();
        let diagnostic = Diagnostic::new(
            Path::new("s.toml"),
            source,
            Some(start..start + 4),
            "unknown field `cout`, expected one of `name`, `count`, `server`".into(),
        );
        let text = diagnostic.to_string();
        assert!(text.starts_with("s.toml:4:1: unknown field `cout`"), "{text}");
        assert!(text.contains(" 4 | cout = 50"), "{text}");
        assert!(text.contains("^^^^ did you mean `count`?"), "{text}");
    }

    #[test]
    fn columns_count_characters_not_bytes() {
        let source = "name = \"é\" bad";
        let start = source.find("bad").unwrap();
        let d = Diagnostic::new(Path::new("s.toml"), source, Some(start..start + 3), "m".into());
        assert_eq!((d.line, d.column), (1, 12));
    }

    #[test]
    fn no_suggestion_for_unrelated_names() {
        assert_eq!(
            suggestion_for("unknown field `zzzzzz`, expected one of `name`, `count`"),
            None
        );
    }
}
