//! What labrun knows, printed: its built-ins, workloads, faults and played roles (`list`),
//! the scenario schema (`schema`), shell completions, and whether scenario files are valid
//! (`validate`).

use std::io::Write;

use crate::cli::Cli;
use crate::error::Error;
use crate::report::Outcome;
use crate::scenario::UnderTest;
use crate::{scenario, servers};

/// The JSON Schema of scenario files, kept in `docs/` and checked against every shipped
/// scenario by the test suite.
const SCENARIO_SCHEMA: &str = include_str!("../../docs/scenario.schema.json");

pub(crate) fn validate(files: &[std::path::PathBuf]) -> Result<Outcome, Error> {
    let mut invalid = 0;
    for path in files {
        let checked = match is_suite(path) {
            true => validate_suite(path),
            false => validate_scenario(path),
        };
        match checked {
            // A closed stdout (`| head`) is not an error worth a panic.
            Ok(line) => {
                let _ = writeln!(std::io::stdout(), "ok {}: {line}", path.display());
            }
            Err(err) => {
                invalid += 1;
                eprintln!("error: {}", err.with_causes());
            }
        }
    }
    match invalid {
        0 => Ok(Outcome::Pass),
        _ => Err(Error::ScenariosInvalid {
            invalid,
            total: files.len(),
        }),
    }
}

fn write_list(out: &mut impl Write) {
    let _ = writeln!(
        out,
        "built-in servers (builtin = \"...\", or `labrun serve NAME --port P`):"
    );
    for builtin in servers::Builtin::ALL {
        let _ = writeln!(out, "  {:<16} {}", builtin.name(), builtin.summary());
    }
    let _ = writeln!(out, "\nworkloads (workload = \"...\"):");
    for workload in scenario::WorkloadKind::ALL {
        let _ = writeln!(out, "  {:<16} {}", workload.label(), workload.summary());
    }
    let _ = writeln!(
        out,
        "\nclient faults (faulty = N, fault = {{ kind = \"...\", after = N }}, echo workload):"
    );
    for kind in scenario::FaultKind::ALL {
        let _ = writeln!(out, "  {:<16} {}", kind.label(), kind.summary());
    }
    let _ = writeln!(
        out,
        "\nplayed servers for client programs under test ([[played_server]] role = \"...\"):"
    );
    for role in scenario::PlayedRole::ALL {
        let _ = writeln!(out, "  {:<16} {}", role.label(), role.summary());
    }
}

/// Whether `path` holds a grading suite (`[submission]`, `[[test]]` or `lab`) rather than a
/// scenario.
fn is_suite(path: &std::path::Path) -> bool {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    toml::from_str::<toml::Table>(&text).is_ok_and(|table| {
        ["submission", "test", "lab"]
            .iter()
            .any(|key| table.contains_key(*key))
    })
}

/// One scenario: what it holds and the checks its runs can have.
fn validate_scenario(path: &std::path::Path) -> Result<String, Error> {
    let plan = scenario::load(path)?;
    let contents = match &plan.under_test {
        UnderTest::ClientPrograms(under_test) => format!(
            "{} client program(s), {} played server(s)",
            under_test.programs.len(),
            under_test.played.len()
        ),
        UnderTest::Servers(under_test) => format!(
            "{} server(s), {} client group(s), {} client(s)",
            under_test.servers.len(),
            under_test.groups.len(),
            under_test.total_clients()
        ),
    };
    let checks = crate::verify::possible_checks(&plan).join(", ");
    Ok(format!("`{}`, {contents}; checks: {checks}", plan.name))
}

/// One grading suite, read as `labrun grade` reads it: its own keys, every test's scenario,
/// and every check a test names in `requires`, `weights` and `feedback`.
fn validate_suite(path: &std::path::Path) -> Result<String, Error> {
    let suite = crate::grade::Suite::load(path)?;
    let tests: Vec<String> = suite
        .tests
        .iter()
        .map(|test| format!("{} ({} points)", test.name, test.points))
        .collect();
    Ok(format!(
        "suite `{}`, {} test(s): {}; {} points in all",
        suite.name,
        tests.len(),
        tests.join(", "),
        suite.max_score()
    ))
}

/// `labrun list`.
pub(crate) fn list() -> Outcome {
    write_list(&mut std::io::stdout().lock());
    Outcome::Pass
}

/// `labrun schema`: the JSON Schema of scenario files.
pub(crate) fn schema() -> Outcome {
    // A closed stdout (`| head`) is not an error.
    let _ = std::io::stdout().lock().write_all(SCENARIO_SCHEMA.as_bytes());
    Outcome::Pass
}

/// `labrun completions SHELL`: a completion script for that shell.
pub(crate) fn completions(shell: clap_complete::Shell) -> Outcome {
    use clap::CommandFactory;
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "labrun", &mut script);
    // A closed stdout (`| head`) is not an error.
    let _ = std::io::stdout().lock().write_all(&script);
    Outcome::Pass
}
