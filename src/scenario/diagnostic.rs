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

/// One problem is a list of problems, so that `?` carries a single check's problem out of
/// code that collects several.
impl From<Diagnostic> for Vec<Diagnostic> {
    fn from(problem: Diagnostic) -> Vec<Diagnostic> {
        vec![problem]
    }
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
        let message = in_plain_words(&message);
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

/// The parser's "invalid type: string \"5\", expected u32" in the words of a scenario
/// file: "expected a whole number, found the text \"5\" (write 5, without quotes)". Other
/// messages are kept as they are.
fn in_plain_words(message: &str) -> String {
    // "unknown field `x`, expected one of `a`, `b`": TOML calls them keys and values.
    for (serde, plain, takes) in [
        ("unknown field `", "unknown key `", "this table takes"),
        ("unknown variant `", "", "the choices are"),
    ] {
        if let Some((given, rest)) = message.strip_prefix(serde).and_then(|r| r.split_once('`')) {
            let choices = rest
                .trim_start_matches(", expected one of ")
                .trim_start_matches(", expected ")
                .replace(" or ", ", ");
            return match plain {
                "" => format!("`{given}` is not a choice here; {takes} {choices}"),
                _ => format!("{plain}{given}`; {takes} {choices}"),
            };
        }
    }
    let Some(rest) = message
        .strip_prefix("invalid type: ")
        .or_else(|| message.strip_prefix("invalid value: "))
    else {
        return message.to_owned();
    };
    let Some((found, expected)) = rest.split_once(", expected ") else {
        return message.to_owned();
    };
    let quoted = |text: &str, open: char, close: char| {
        text.strip_prefix(open)
            .and_then(|t| t.strip_suffix(close))
            .map(str::to_owned)
    };
    let number_expected = matches!(
        expected,
        "u8" | "u16" | "u32" | "u64" | "usize" | "i8" | "i16" | "i32" | "i64" | "f32" | "f64"
    );
    let (found_words, hint) = match found.split_once(' ') {
        Some(("string", text)) => {
            let text = quoted(text, '"', '"').unwrap_or_else(|| text.to_owned());
            let hint = (number_expected && text.trim().parse::<f64>().is_ok())
                .then(|| format!(" (write {}, without quotes)", text.trim()));
            (format!("the text \"{text}\""), hint)
        }
        Some(("integer" | "floating", number)) => {
            let number = quoted(number.trim_start_matches("point "), '`', '`').unwrap_or_default();
            let hint = (expected == "a string").then(|| format!(" (write \"{number}\", in quotes)"));
            (format!("the number {number}"), hint)
        }
        Some(("boolean", value)) => (quoted(value, '`', '`').unwrap_or_default(), None),
        _ => match found {
            "sequence" => ("a list".to_owned(), None),
            "map" => ("a table".to_owned(), None),
            other => (other.to_owned(), None),
        },
    };
    let expected_words = match expected {
        "u8" | "u16" | "u32" | "u64" | "usize" => "a whole number, 0 or more".to_owned(),
        "i8" | "i16" | "i32" | "i64" => "a whole number".to_owned(),
        "f32" | "f64" => "a number".to_owned(),
        "a string" => "text in quotes".to_owned(),
        "a boolean" => "true or false".to_owned(),
        "a sequence" => "a list, like [\"a\", \"b\"]".to_owned(),
        "a map" => "a table".to_owned(),
        other if other.starts_with("struct ") => "a table".to_owned(),
        other => other.to_owned(),
    };
    format!(
        "expected {expected_words}, found {found_words}{}",
        hint.unwrap_or_default()
    )
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
    fn parser_jargon_becomes_the_words_of_a_scenario_file() {
        assert_eq!(
            in_plain_words("invalid type: string \"5\", expected u32"),
            "expected a whole number, 0 or more, found the text \"5\" (write 5, without quotes)"
        );
        assert_eq!(
            in_plain_words("invalid type: integer `5`, expected a string"),
            "expected text in quotes, found the number 5 (write \"5\", in quotes)"
        );
        assert_eq!(
            in_plain_words("invalid value: integer `-1`, expected u32"),
            "expected a whole number, 0 or more, found the number -1"
        );
        assert_eq!(
            in_plain_words("invalid type: map, expected a sequence"),
            "expected a list, like [\"a\", \"b\"], found a table"
        );
        assert_eq!(
            in_plain_words("invalid type: boolean `true`, expected u32"),
            "expected a whole number, 0 or more, found true"
        );
        assert_eq!(in_plain_words("missing field `name`"), "missing field `name`");
        assert_eq!(
            in_plain_words("unknown field `cout`, expected one of `name`, `count`"),
            "unknown key `cout`; this table takes `name`, `count`"
        );
        assert_eq!(
            in_plain_words("unknown variant `exactly`, expected `exact` or `ignore`"),
            "`exactly` is not a choice here; the choices are `exact`, `ignore`"
        );
    }

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
        assert!(text.starts_with("s.toml:4:1: unknown key `cout`"), "{text}");
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
