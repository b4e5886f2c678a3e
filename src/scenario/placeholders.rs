//! `{port}` and `{port:NAME}` in the commands and environments of programs labrun launches:
//! finding them, checking them, substituting them.
//!
//! One scanner serves servers (`[[server]]`) and client programs (`[[client_program]]`)
//! alike, so validation and substitution can never disagree on what a placeholder is, and a
//! placeholder labrun would not substitute (`{prot}`, `{port:nosuch}`) is a located scenario
//! error instead of reaching the program literally. A placeholder is `{`, a word, optionally
//! `:` and an argument without spaces or braces, and `}`, not preceded by `$`: so `${PORT}`
//! (a shell's), `{print $1}` (awk's), `{}` and `{0}` (Python format fields) are left alone.

use std::ops::Range;

/// One `{word}` or `{word:argument}` in a text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Placeholder<'a> {
    /// Where it is in the text, braces included.
    pub span: Range<usize>,
    /// The whole placeholder, braces included, as written.
    pub text: &'a str,
    /// The word before `:` (or the whole inside).
    pub key: &'a str,
    /// What follows `:`, if there is a `:`.
    pub argument: Option<&'a str>,
}

impl<'a> Placeholder<'a> {
    /// Whose port it stands for: `Some(None)` for `{port}` (the program's own server),
    /// `Some(Some(NAME))` for `{port:NAME}`, `None` when it is not a port placeholder.
    pub fn port_of(&self) -> Option<Option<&'a str>> {
        (self.key == "port").then_some(self.argument)
    }
}

/// Every placeholder in `text`, in order.
pub(super) fn placeholders(text: &str) -> Vec<Placeholder<'_>> {
    let mut found = Vec::new();
    let mut from = 0;
    while let Some(open) = text[from..].find('{').map(|i| from + i) {
        from = open + 1;
        if text[..open].ends_with('$') {
            continue;
        }
        let Some(close) = text[open + 1..].find(['{', '}']).map(|i| open + 1 + i) else {
            break;
        };
        if text.as_bytes()[close] == b'{' {
            continue;
        }
        let inside = &text[open + 1..close];
        let (key, argument) = match inside.split_once(':') {
            Some((key, argument)) => (key, Some(argument)),
            None => (inside, None),
        };
        let is_word = key
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if is_word && !argument.is_some_and(|a| a.contains(char::is_whitespace)) {
            found.push(Placeholder {
                span: open..close + 1,
                text: &text[open..=close],
                key,
                argument,
            });
            from = close + 1;
        } else if looks_like_a_port_typo(inside) {
            // `{port }`, `{ port:b }`, `{port-b}`: meant as a placeholder, and never substituted.
            found.push(Placeholder {
                span: open..close + 1,
                text: &text[open..=close],
                key: inside,
                argument: None,
            });
            from = close + 1;
        }
    }
    found
}

/// Whether the inside of braces that is no placeholder still reads as a mistyped port one.
fn looks_like_a_port_typo(inside: &str) -> bool {
    inside.len() <= 64 && inside.trim_start().to_ascii_lowercase().starts_with("port")
}

/// The first placeholder in `text` that labrun would not substitute, and why: anything but
/// `{port}` (when `own_port` says the program has a port of its own) and `{port:NAME}` for a
/// NAME in `names`. `kind` names what `names` are, for the message (`server`, `played server`).
pub(super) fn first_unknown<'a>(
    text: &'a str,
    own_port: bool,
    names: &[&str],
    kind: &str,
) -> Option<(&'a str, String)> {
    let listed = || {
        names
            .iter()
            .map(|name| format!("`{name}`"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    placeholders(text).into_iter().find_map(|found| {
        let why = match found.port_of() {
            Some(None) if own_port => return None,
            Some(Some(name)) if names.contains(&name) => return None,
            Some(None) => format!(
                "`{{port}}` is the port of the server it belongs to, and there is none here; write \
                 `{{port:NAME}}`; {kind}s in this scenario: {}",
                listed()
            ),
            Some(Some(name)) => format!(
                "`{}`: no {kind} named `{name}`; {kind}s in this scenario: {}",
                found.text,
                listed()
            ),
            None => format!(
                "`{}` is not a placeholder labrun substitutes: write `{{port}}`, or `{{port:NAME}}` for \
                 the port of {kind} NAME; {kind}s in this scenario: {}",
                found.text,
                listed()
            ),
        };
        Some((found.text, why))
    })
}

/// `text` with every port placeholder `port` resolves replaced by that port (`None` asks for
/// the program's own, `Some(NAME)` for NAME's); anything else is left as written (the plan
/// has refused scenarios where that would happen).
pub fn substitute_ports(text: &str, port: impl Fn(Option<&str>) -> Option<u16>) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = 0;
    for found in placeholders(text) {
        if let Some(number) = found.port_of().and_then(&port) {
            out.push_str(&text[rest..found.span.start]);
            out.push_str(&number.to_string());
            rest = found.span.end;
        }
    }
    out.push_str(&text[rest..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(text: &str) -> Vec<&str> {
        placeholders(text).into_iter().map(|p| p.text).collect()
    }

    #[test]
    fn finds_placeholders_but_not_shell_awk_or_format_braces() {
        assert_eq!(
            keys("a{port}b{port:two}{prot}{port:"),
            ["{port}", "{port:two}", "{prot}"]
        );
        assert!(keys("${PORT} {print $1} {} {0} {'a': 1} {{port}").len() == 1);
        assert_eq!(keys("{{port}"), ["{port}"]);
        assert_eq!(keys("x{port:}"), ["{port:}"]);
        assert_eq!(
            keys("{port } {port: b} { port:b } {port-b} {print $1}"),
            ["{port }", "{port: b}", "{ port:b }", "{port-b}"]
        );
        assert!(first_unknown("--port={port }", true, &["a"], "server").is_some());
    }

    #[test]
    fn unknown_placeholders_are_named() {
        let names = ["first", "second"];
        assert_eq!(
            first_unknown("{port} {port:second}", true, &names, "server"),
            None
        );
        let (text, why) = first_unknown("--port={prot}", true, &names, "server").unwrap();
        assert_eq!(text, "{prot}");
        assert!(why.contains("not a placeholder labrun substitutes"), "{why}");
        let (text, why) = first_unknown("{port:nosuch}", true, &names, "server").unwrap();
        assert_eq!(text, "{port:nosuch}");
        assert!(why.contains("no server named `nosuch`; servers in this scenario: `first`, `second`"));
        assert!(first_unknown("{port}", false, &names, "played server").is_some());
    }

    #[test]
    fn substitutes_only_what_resolves() {
        let port = |name: Option<&str>| match name {
            None => Some(6000),
            Some("two") => Some(6001),
            Some(_) => None,
        };
        assert_eq!(
            substitute_ports("{port} {port:two} {port:x} ${PORT} {n}", port),
            "6000 6001 {port:x} ${PORT} {n}"
        );
    }
}
