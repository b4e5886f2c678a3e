//! A scenario's text with its programs under test replaced by another program: how `grade`
//! runs a submission in a test's scenario. The result is scenario text, read back through
//! [`super::parse`] like any file, so the same validator judges it; only this stage knows
//! which tables and keys hold a program.

use std::path::Path;

use super::paths::Anchor;
use super::plan::Side;

/// What replaces the programs under test.
pub struct Replacement<'a> {
    /// Whose programs: the `[[server]]`s or the `[[client_program]]`s.
    pub side: Side,
    /// Only the server of this name (the others are kept); `None`: every one.
    pub only: Option<&'a str>,
    /// The command line, placeholders such as `{port}` left for the run.
    pub command: &'a [String],
    /// The folder it runs in.
    pub cwd: &'a Path,
    /// The port the servers use (`6000` or `"auto"`), as in a scenario; servers only.
    pub port: Option<&'a toml::Value>,
    /// Resource limits, as in a scenario's `limits`.
    pub limits: Option<&'a toml::Value>,
    /// The folder the original scenario's relative paths are resolved against: the derived
    /// text is written elsewhere, so the programs it keeps get absolute paths.
    pub anchor: &'a Anchor,
}

/// `text` with every program under test that `with` names replaced; an error says in
/// plain words why it cannot be (the scenario does not parse, has no such table or server).
pub fn replace_programs(text: &str, with: &Replacement) -> Result<String, String> {
    let mut table: toml::Table =
        toml::from_str(text).map_err(|e| format!("the scenario does not parse: {e}"))?;
    let key = match with.side {
        Side::Servers => "server",
        Side::ClientPrograms => "client_program",
    };
    let Some(toml::Value::Array(programs)) = table.get_mut(key) else {
        return Err(format!("the scenario has no [[{key}]]"));
    };
    let argv: Vec<toml::Value> = with.command.iter().cloned().map(toml::Value::String).collect();
    let mut replaced = 0;
    for program in programs.iter_mut().filter_map(toml::Value::as_table_mut) {
        let name = program
            .get("name")
            .and_then(toml::Value::as_str)
            .unwrap_or_default();
        if with.only.is_some_and(|wanted| wanted != name) {
            anchor_kept(program, with.anchor);
            continue;
        }
        // A server served by another's process (`process = "…"`) has no program to replace:
        // the replacement takes its owner's place, and is given its port there.
        if let Some(owner) = program.get("process").and_then(toml::Value::as_str) {
            if with.only.is_some() {
                return Err(format!(
                    "server `{name}` is served by server `{owner}`'s process: name `{owner}` in the \
                     test's `server`"
                ));
            }
            continue;
        }
        program.remove("builtin");
        program.insert("command".into(), toml::Value::Array(argv.clone()));
        program.insert("cwd".into(), toml::Value::String(with.cwd.display().to_string()));
        // The port is the server's to use; a client's ports are its played servers'.
        if let (Side::Servers, Some(port)) = (with.side, with.port) {
            program.insert("port".into(), port.clone());
        }
        if let Some(limits) = with.limits {
            program.insert("limits".into(), limits.clone());
        }
        replaced += 1;
    }
    if replaced == 0 {
        return Err(format!(
            "the scenario has no server named `{}`",
            with.only.unwrap_or_default()
        ));
    }
    toml::to_string(&table).map_err(|e| format!("cannot write the scenario: {e}"))
}

/// A program kept beside the replacement (a reference server) runs from the derived text,
/// which is written elsewhere: its paths are resolved against the original scenario's
/// folder here, as `labrun run` on the original would resolve them.
fn anchor_kept(program: &mut toml::Table, anchor: &Anchor) {
    let cwd = program
        .get("cwd")
        .and_then(toml::Value::as_str)
        .map(|cwd| anchor.cwd(Path::new(cwd)));
    let argv: Option<Vec<String>> = program
        .get("command")
        .and_then(toml::Value::as_array)
        .and_then(|argv| argv.iter().map(|arg| arg.as_str().map(str::to_owned)).collect());
    if let Some(argv) = argv {
        let argv = anchor.command(&argv, cwd.as_deref());
        let argv = argv.into_iter().map(toml::Value::String).collect();
        program.insert("command".into(), toml::Value::Array(argv));
    }
    if let Some(cwd) = cwd.and_then(|cwd| cwd.into_os_string().into_string().ok()) {
        program.insert("cwd".into(), toml::Value::String(cwd));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TWO_SERVERS: &str = r#"
name = "two"
[[server]]
name = "first"
builtin = "echo-threaded"
[[server]]
name = "second"
command = ["python3", "reference.py", "{port}"]
[[server]]
name = "shared"
process = "first"
[[clients]]
name = "c"
count = 1
"#;

    /// The scenario's folder, with the reference program a kept server runs.
    fn course() -> tempfile::TempDir {
        let folder = tempfile::tempdir().expect("a temporary folder");
        std::fs::write(folder.path().join("reference.py"), "").expect("written");
        folder
    }

    fn replaced(text: &str, side: Side, only: Option<&str>) -> Result<toml::Table, String> {
        let folder = course();
        let anchor = Anchor::of(&folder.path().join("two.toml"));
        let command = ["python3".to_owned(), "{file}".to_owned()];
        let port = toml::Value::Integer(6000);
        let with = Replacement {
            side,
            only,
            command: &command,
            cwd: Path::new("/tmp/copy"),
            port: Some(&port),
            limits: None,
            anchor: &anchor,
        };
        replace_programs(text, &with).map(|out| toml::from_str(&out).expect("derived text parses"))
    }

    fn server(table: &toml::Table, index: usize) -> &toml::Table {
        table["server"].as_array().expect("servers")[index]
            .as_table()
            .expect("a table")
    }

    #[test]
    fn every_server_is_replaced_but_one_served_by_another_process() {
        let table = replaced(TWO_SERVERS, Side::Servers, None).expect("replaced");
        for index in [0, 1] {
            let one = server(&table, index);
            assert_eq!(one["command"].as_array().map(Vec::len), Some(2));
            assert_eq!(one["cwd"].as_str(), Some("/tmp/copy"));
            assert_eq!(one["port"].as_integer(), Some(6000));
            assert!(!one.contains_key("builtin"));
        }
        assert!(
            !server(&table, 2).contains_key("command"),
            "the shared port keeps its owner's process"
        );
    }

    #[test]
    fn a_named_server_is_replaced_and_the_others_keep_absolute_paths() {
        let table = replaced(TWO_SERVERS, Side::Servers, Some("first")).expect("replaced");
        assert_eq!(server(&table, 0)["cwd"].as_str(), Some("/tmp/copy"));
        let kept = server(&table, 1);
        let program = kept["command"][1].as_str().expect("an argument");
        assert!(
            program.starts_with('/') && program.ends_with("/reference.py"),
            "{program}"
        );
        assert!(!kept.contains_key("port"));
    }

    #[test]
    fn what_cannot_be_replaced_is_said() {
        let none = replaced(TWO_SERVERS, Side::Servers, Some("third")).expect_err("no such server");
        assert!(none.contains("no server named `third`"), "{none}");
        let shared = replaced(TWO_SERVERS, Side::Servers, Some("shared")).expect_err("served by first");
        assert!(shared.contains("name `first`"), "{shared}");
        let clients = replaced(TWO_SERVERS, Side::ClientPrograms, None).expect_err("no client programs");
        assert!(clients.contains("no [[client_program]]"), "{clients}");
        let broken = replaced("name = ", Side::Servers, None).expect_err("not TOML");
        assert!(broken.starts_with("the scenario does not parse"), "{broken}");
    }
}
