//! The shape of the code, kept by a test so it cannot drift back: data flows one way
//! through the top-level modules of `src/`, so the graph of their `crate::` references
//! (outside `#[cfg(test)]` code, where tests may reach anywhere) has no cycle.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Who refers to whom: each top-level module and the top-level modules its code names.
type Graph = BTreeMap<String, BTreeSet<String>>;

/// `text` with comments removed and the contents of string and character literals blanked,
/// so that neither a doc comment naming a module nor a brace in a string counts as code.
fn code_only(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < bytes.len() {
        let rest = &text[i..];
        if rest.starts_with("//") {
            i += rest.find('\n').unwrap_or(rest.len());
        } else if rest.starts_with("/*") {
            i += rest.find("*/").map_or(rest.len(), |end| end + 2);
        } else if let Some(hashes) = raw_string_start(rest) {
            let closing = format!("\"{}", "#".repeat(hashes));
            let body = 2 + hashes;
            i += body
                + rest[body..]
                    .find(&closing)
                    .map_or(rest.len() - body, |end| end + closing.len());
            out.push_str("\"\"");
        } else if rest.starts_with('"') {
            let mut j = 1;
            while j < rest.len() && rest.as_bytes()[j] != b'"' {
                j += if rest.as_bytes()[j] == b'\\' { 2 } else { 1 };
            }
            i += (j + 1).min(rest.len());
            out.push_str("\"\"");
        } else if let Some(len) = char_literal(rest) {
            i += len;
            out.push_str("' '");
        } else {
            let c = rest.chars().next().expect("not at the end");
            out.push(c);
            i += c.len_utf8();
        }
    }
    out
}

/// The number of `#` of a raw string literal starting `text` (`r"`, `r#"`, `br##"`…).
fn raw_string_start(text: &str) -> Option<usize> {
    let after_r = text.strip_prefix("br").or_else(|| text.strip_prefix('r'))?;
    let hashes = after_r.len() - after_r.trim_start_matches('#').len();
    after_r[hashes..].starts_with('"').then_some(hashes)
}

/// The length of a character literal starting `text` (`'{'`, `'\n'`, `'\u{7f}'`), not a
/// lifetime.
fn char_literal(text: &str) -> Option<usize> {
    let rest = text.strip_prefix('\'')?;
    let body = if rest.starts_with('\\') {
        rest.find('\'')?
    } else {
        rest.chars().next()?.len_utf8()
    };
    (rest.as_bytes().get(body) == Some(&b'\'')).then_some(body + 2)
}

/// `code` without the items marked `#[cfg(test)]`.
fn without_test_items(code: &str) -> String {
    let mut out = String::with_capacity(code.len());
    let mut rest = code;
    while let Some(at) = rest.find("#[cfg(test)]") {
        out.push_str(&rest[..at]);
        let item = &rest[at..];
        let brace = item.find('{');
        let semicolon = item.find(';');
        let end = match (brace, semicolon) {
            (_, Some(semi)) if brace.is_none_or(|b| semi < b) => semi + 1,
            (Some(open), _) => {
                let mut depth = 0usize;
                let mut close = item.len();
                for (offset, c) in item[open..].char_indices() {
                    match c {
                        '{' => depth += 1,
                        '}' => {
                            depth -= 1;
                            if depth == 0 {
                                close = open + offset + 1;
                                break;
                            }
                        }
                        _ => {}
                    }
                }
                close
            }
            _ => item.len(),
        };
        rest = &item[end..];
    }
    out.push_str(rest);
    out
}

/// The top-level modules `code` names: `crate::NAME` anywhere, and each first name inside
/// `crate::{NAME::…, NAME, …}`.
fn referenced(code: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for (at, _) in code.match_indices("crate::") {
        let after = &code[at + "crate::".len()..];
        if let Some(group) = after.strip_prefix('{') {
            let mut depth = 1usize;
            let mut expecting_name = true;
            let mut name = String::new();
            for c in group.chars() {
                if depth == 1 && expecting_name {
                    if c.is_alphanumeric() || c == '_' {
                        name.push(c);
                    } else if !name.is_empty() {
                        names.insert(std::mem::take(&mut name));
                        expecting_name = false;
                    }
                }
                match c {
                    '{' => depth += 1,
                    '}' if depth == 1 => break,
                    '}' => depth -= 1,
                    ',' if depth == 1 => expecting_name = true,
                    _ => {}
                }
            }
        } else {
            let name: String = after
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            names.insert(name);
        }
    }
    names
}

/// The module graph of the crate whose sources are in `src`: `lib.rs` and `main.rs`, which
/// put the modules together, are left out.
fn module_graph(src: &Path) -> Graph {
    let mut modules = BTreeSet::new();
    for entry in std::fs::read_dir(src).expect("src/ is readable") {
        let path = entry.expect("a directory entry").path();
        let stem = path
            .file_stem()
            .and_then(|s| s.to_str())
            .expect("a UTF-8 name")
            .to_owned();
        if path.is_dir() || (path.extension().is_some_and(|e| e == "rs") && stem != "lib" && stem != "main") {
            modules.insert(stem);
        }
    }
    let mut graph = Graph::new();
    for module in &modules {
        let mut files = Vec::new();
        let dir = src.join(module);
        if dir.is_dir() {
            collect_sources(&dir, &mut files);
        } else {
            files.push(src.join(format!("{module}.rs")));
        }
        let targets = graph.entry(module.clone()).or_default();
        for file in files {
            let text = std::fs::read_to_string(&file).expect("a source file is readable");
            for name in referenced(&without_test_items(&code_only(&text))) {
                if modules.contains(&name) && &name != module {
                    targets.insert(name);
                }
            }
        }
    }
    graph
}

fn collect_sources(dir: &Path, files: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("a module folder is readable") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            collect_sources(&path, files);
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
}

/// A cycle of `graph` as the modules along it (the first repeated at the end), if any.
fn find_cycle(graph: &Graph) -> Option<Vec<String>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Open,
        Done,
    }
    fn visit(
        node: &str,
        graph: &Graph,
        marks: &mut BTreeMap<String, Mark>,
        path: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        match marks.get(node) {
            Some(Mark::Done) => return None,
            Some(Mark::Open) => {
                let start = path
                    .iter()
                    .position(|n| n == node)
                    .expect("an open node is on the path");
                let mut cycle = path[start..].to_vec();
                cycle.push(node.to_owned());
                return Some(cycle);
            }
            None => {}
        }
        marks.insert(node.to_owned(), Mark::Open);
        path.push(node.to_owned());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, graph, marks, path) {
                return Some(cycle);
            }
        }
        path.pop();
        marks.insert(node.to_owned(), Mark::Done);
        None
    }
    let mut marks = BTreeMap::new();
    graph
        .keys()
        .find_map(|node| visit(node, graph, &mut marks, &mut Vec::new()))
}

#[test]
fn the_top_level_modules_form_no_import_cycle() {
    let graph = module_graph(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"));
    for stage in [
        "scenario",
        "supervise",
        "workload",
        "verify",
        "report",
        "wire",
        "histogram",
    ] {
        assert!(graph.contains_key(stage), "no module `{stage}` in {graph:?}");
    }
    // The stages refer downstream only: the graph is not trivially empty.
    assert!(graph["verify"].contains("workload"), "{graph:?}");
    assert!(graph["workload"].contains("wire"), "{graph:?}");
    if let Some(cycle) = find_cycle(&graph) {
        panic!(
            "the modules refer to each other in a cycle: {}. Move what both need into a leaf \
             (as `wire` and `histogram` are), or pass it downstream as data.\nThe graph: {graph:#?}",
            cycle.join(" → ")
        );
    }
}

/// The checker itself: it finds references in every form the code uses, ignores comments,
/// strings and test code, and finds a cycle when there is one.
#[test]
fn the_cycle_finder_sees_what_the_code_names_and_only_that() {
    let text = r#"
        //! Uses `crate::report` in a comment only.
        use crate::{scenario::Plan, units, wire::{frame, stream}};
        use crate::histogram::Latency;
        const NOT_CODE: &str = "crate::grade";
        const BRACE: char = '{';
        fn f<'a>(x: &'a str) -> crate::metrics::Figures { todo!() }
        #[cfg(test)]
        mod tests { use crate::check; fn g() { let _ = '}'; } }
        #[cfg(test)]
        use crate::servers;
        fn h() { crate::escape::escape_bytes(b"") }
    "#;
    let found = referenced(&without_test_items(&code_only(text)));
    let expected: BTreeSet<String> = ["scenario", "units", "wire", "histogram", "metrics", "escape"]
        .map(String::from)
        .into();
    assert_eq!(found, expected);

    let graph: Graph = [
        ("a", vec!["b"]),
        ("b", vec!["c"]),
        ("c", vec!["d"]),
        ("d", vec![]),
    ]
    .into_iter()
    .map(|(n, to)| (n.to_owned(), to.into_iter().map(String::from).collect()))
    .collect();
    assert_eq!(find_cycle(&graph), None);
    let mut looped = graph;
    looped.get_mut("d").expect("d").insert("b".into());
    assert_eq!(
        find_cycle(&looped),
        Some(["b", "c", "d", "b"].map(String::from).to_vec())
    );
}

/// The library's public face is what `main.rs` needs: the command line and the errors. Every
/// other module is `pub(crate)`, so rustc reports what nothing uses.
#[test]
fn only_cli_and_error_are_public_modules() {
    let lib =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/lib.rs")).expect("lib.rs");
    let code = code_only(&lib);
    let public: Vec<&str> = code
        .lines()
        .filter_map(|line| line.trim().strip_prefix("pub mod "))
        .map(|rest| rest.trim_end_matches(';').trim())
        .collect();
    assert_eq!(public, ["cli", "error"], "public modules of src/lib.rs");
}
