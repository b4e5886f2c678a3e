//! Where a scenario's relative paths point: at the scenario file's folder, as the paths in
//! a docker-compose file point at its folder and a k6 script's `open()` at the script's,
//! not at whatever folder labrun happens to be started in.
//!
//! | written in the scenario                           | resolved against               |
//! |---------------------------------------------------|--------------------------------|
//! | `cwd = "labs/alice"`                              | the scenario's folder          |
//! | `command`'s program with a `/` (`./server.sh`)    | the program's `cwd`, if given, |
//! | an argument naming an existing file or folder     | else the scenario's folder     |
//! | a bare program (`python3`)                        | `PATH`, untouched              |
//! | any other argument (`{port}`, `-u`, `hello`)      | untouched                      |
//!
//! A program with no `cwd` still runs in the folder labrun was started in, so a student's
//! server that opens files relative to its working directory behaves as it does by hand;
//! only its paths move. An argument that names something both there and next to the
//! scenario means the one next to the scenario. Which arguments are paths is decided by
//! looking: one that names nothing (yet) is left for the program, which may create it, so
//! nothing here is an error. Resolved paths are absolute, which is also what the sandbox
//! needs to show a program the script it runs (`supervise::sandbox`).
//!
//! Scenario text with no folder of its own (a bare name such as `check.toml`, a scenario
//! built in memory) is anchored at labrun's working directory, where its author's paths
//! point.

use std::path::{Component, Path, PathBuf};

use super::plan::{Launch, Plan, UnderTest};

/// The folder a scenario's relative paths are resolved against.
#[derive(Debug, Clone)]
pub struct Anchor {
    /// Absolute, with its links resolved.
    folder: PathBuf,
}

impl Anchor {
    /// The anchor of the scenario file at `scenario`: its folder.
    pub fn of(scenario: &Path) -> Anchor {
        let folder = match scenario.parent() {
            Some(folder) if !folder.as_os_str().is_empty() => folder,
            _ => Path::new("."),
        };
        Anchor {
            folder: std::fs::canonicalize(folder)
                .or_else(|_| std::path::absolute(folder))
                .unwrap_or_else(|_| folder.to_owned()),
        }
    }

    /// A program's working directory as written (`cwd = "..."`), resolved.
    pub fn cwd(&self, cwd: &Path) -> PathBuf {
        tidy(&self.folder.join(cwd))
    }

    /// A command with its program (when written with a `/`) and every argument that names an
    /// existing file or folder resolved against `cwd` (already resolved) or, without one,
    /// the scenario's folder.
    pub fn command(&self, argv: &[String], cwd: Option<&Path>) -> Vec<String> {
        let base = cwd.unwrap_or(&self.folder);
        argv.iter()
            .enumerate()
            .map(|(index, arg)| {
                let path = Path::new(arg);
                let candidate = !arg.is_empty() && !arg.starts_with('-') && path.is_relative();
                // `python3` is looked up on PATH; `./server.sh` names a file, found or not
                // (if not, the launch error then shows where it was looked for).
                let is_path = match index {
                    0 => candidate && arg.contains('/'),
                    _ => candidate && base.join(path).exists(),
                };
                // A folder whose name is not UTF-8 cannot be written into an argument.
                let resolved = is_path.then(|| tidy(&base.join(path)).into_os_string().into_string());
                match resolved {
                    Some(Ok(resolved)) => resolved,
                    _ => arg.clone(),
                }
            })
            .collect()
    }

    /// Resolves every path of `plan`'s programs, servers and client programs alike.
    pub(super) fn apply(&self, plan: &mut Plan) {
        match &mut plan.under_test {
            UnderTest::Servers(under_test) => {
                for server in &mut under_test.servers {
                    server.cwd = server.cwd.as_deref().map(|cwd| self.cwd(cwd));
                    if let Launch::Command(argv) = &mut server.launch {
                        *argv = self.command(argv, server.cwd.as_deref());
                    }
                }
            }
            UnderTest::ClientPrograms(under_test) => {
                for program in &mut under_test.programs {
                    program.cwd = program.cwd.as_deref().map(|cwd| self.cwd(cwd));
                    program.command = self.command(&program.command, program.cwd.as_deref());
                }
            }
        }
    }
}

/// `path` (absolute) as reports should show it: when it exists, through its folder's real
/// location, so `scenarios/python/../../examples/x.py` reads `examples/x.py` under the real
/// root; the last name is kept as written, since a program may look at its own `argv[0]`.
/// Otherwise only `.` components are dropped: `..` cannot be folded without knowing whether
/// what precedes it is a link.
fn tidy(path: &Path) -> PathBuf {
    let real = match (path.parent(), path.components().next_back()) {
        (Some(folder), Some(Component::Normal(name))) if path.exists() => {
            std::fs::canonicalize(folder).ok().map(|folder| folder.join(name))
        }
        _ if path.exists() => std::fs::canonicalize(path).ok(),
        _ => None,
    };
    real.unwrap_or_else(|| path.components().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A folder holding a scenario, `server.py`, `bin/run.sh` and `data/`.
    fn layout() -> (tempfile::TempDir, Anchor) {
        let dir = tempfile::tempdir().expect("temporary folder");
        std::fs::write(dir.path().join("server.py"), "").expect("write");
        std::fs::create_dir_all(dir.path().join("bin")).expect("mkdir");
        std::fs::create_dir_all(dir.path().join("data")).expect("mkdir");
        std::fs::write(dir.path().join("bin/run.sh"), "").expect("write");
        let anchor = Anchor::of(&dir.path().join("lab.toml"));
        (dir, anchor)
    }

    fn argv(words: &[&str]) -> Vec<String> {
        words.iter().map(|w| (*w).to_owned()).collect()
    }

    #[test]
    fn arguments_that_name_files_next_to_the_scenario_become_absolute() {
        let (dir, anchor) = layout();
        let real = std::fs::canonicalize(dir.path()).expect("real path");
        let at = |name: &str| real.join(name).display().to_string();
        let resolved = anchor.command(
            &argv(&[
                "python3",
                "-u",
                "server.py",
                "{port}",
                "hello",
                "./data",
                "missing.py",
            ]),
            None,
        );
        assert_eq!(
            resolved,
            argv(&[
                "python3",
                "-u",
                &at("server.py"),
                "{port}",
                "hello",
                &at("data"),
                "missing.py"
            ])
        );
    }

    #[test]
    fn a_program_with_a_slash_is_resolved_found_or_not_and_a_bare_one_is_left_to_path() {
        let (dir, anchor) = layout();
        let real = std::fs::canonicalize(dir.path()).expect("real path");
        let resolved = anchor.command(&argv(&["./bin/run.sh", "bin/run.sh"]), None);
        let script = real.join("bin/run.sh").display().to_string();
        assert_eq!(resolved, [script.clone(), script]);
        assert_eq!(
            anchor.command(&argv(&["./nowhere"]), None),
            [real.join("nowhere").display().to_string()]
        );
        assert_eq!(anchor.command(&argv(&["server.py"]), None), ["server.py"]);
    }

    #[test]
    fn with_a_cwd_paths_are_relative_to_it_and_parent_steps_are_folded() {
        let (dir, anchor) = layout();
        let real = std::fs::canonicalize(dir.path()).expect("real path");
        let cwd = anchor.cwd(Path::new("bin"));
        assert_eq!(cwd, real.join("bin"));
        let resolved = anchor.command(&argv(&["sh", "run.sh", "../server.py", "server.py"]), Some(&cwd));
        assert_eq!(
            resolved,
            argv(&[
                "sh",
                &real.join("bin/run.sh").display().to_string(),
                &real.join("server.py").display().to_string(),
                "server.py",
            ])
        );
        // A folder that does not exist (yet) is still placed under the scenario's.
        assert_eq!(anchor.cwd(Path::new("./later/")), real.join("later"));
    }

    #[test]
    fn text_with_no_folder_is_anchored_where_labrun_runs() {
        let here = std::fs::canonicalize(".").expect("working directory");
        assert_eq!(
            Anchor::of(Path::new("t.toml")).cwd(Path::new("lab")),
            here.join("lab")
        );
        assert_eq!(
            Anchor::of(Path::new("t.toml")).cwd(Path::new("/srv/x")),
            Path::new("/srv/x")
        );
    }
}
