//! `labrun check LAB -- COMMAND`: a lab's whole battery of tests against one program, with
//! no scenario to write.
//!
//! A student asking "is my server right?" should not have to know which loads reveal which
//! bugs: that a plain text payload misses a server that uppercases, that thirty messages
//! miss one that drops every fiftieth, that a reset client is what kills a server that does
//! not catch `ConnectionResetError`. Each lab's battery here carries that knowledge as
//! phases, each an ordinary scenario (so it is validated, run, judged and reported exactly
//! as a file would be) with a fresh server, so that one bug cannot hide another. The
//! batteries are data: scenario text with the program put in where `@SERVER@` stands.

mod batteries;

use std::path::PathBuf;

use crate::scenario::{self, Plan, ScenarioError, ServerPlan};

pub use batteries::Lab;

/// One phase of a battery: a scenario of its own, run against a fresh server.
pub struct Phase {
    /// Its name, which names its report (`LAB-NAME`).
    pub name: &'static str,
    /// What it checks, and the bug it is there to catch, for `labrun check --list`.
    pub catches: &'static str,
    /// The scenario, with `@SERVER@` where the program under test goes (the `command` of
    /// its `[[server]]` or `[[client_program]]` tables).
    scenario: &'static str,
}

/// Why a battery cannot be built for the program given.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    /// Neither a command nor a file was given.
    #[error(
        "name the program to check: `labrun check {lab} -- python3 my_server.py {{port}}`, or a \
         lone Python file: `labrun check {lab} my_server.py`"
    )]
    NoProgram { lab: &'static str },
    /// The lab gives the program a port its command has no place for.
    #[error(
        "the {lab} lab gives your program two ports: put {port} in the command where the \
         second goes, e.g. `labrun check {lab} -- python3 two_servers.py {{port}} {port}`"
    )]
    MissingPort {
        lab: &'static str,
        /// The placeholder missing.
        port: &'static str,
    },
    /// `--target` was given a number of times the lab's servers do not match, or for a lab
    /// whose program is a client.
    #[error("{0}")]
    Targets(String),
    /// A phase did not validate: a defect of labrun's, or a command the scenario refuses.
    #[error("phase `{phase}` of the {lab} battery: {source}")]
    Phase {
        lab: &'static str,
        phase: &'static str,
        /// What the scenario check said.
        #[source]
        source: Box<ScenarioError>,
    },
}

/// The program to check, as a scenario's `command`: the arguments after `--` as given, or a
/// lone `.py` file run as `python3 FILE {port}` (and `{port2}` for two servers), in the
/// words of the battery's scenarios (see [`Lab::scenario_word`]).
pub fn command_of(lab: Lab, program: &[String]) -> Result<Vec<String>, CheckError> {
    match program {
        [] => Err(CheckError::NoProgram { lab: lab.name() }),
        [file] if file.ends_with(".py") => Ok(lab
            .python_command(file)
            .iter()
            .map(|word| lab.scenario_word(word))
            .collect()),
        command => {
            let words: Vec<String> = command.iter().map(|word| lab.scenario_word(word)).collect();
            // `{port2}`, or the scenario's own name for it, somewhere in the command.
            let missing = lab.extra_ports().iter().find(|port| {
                let wanted = lab.scenario_word(port);
                !words.iter().any(|word| word.contains(&wanted))
            });
            if let Some(port) = missing {
                return Err(CheckError::MissingPort {
                    lab: lab.name(),
                    port,
                });
            }
            Ok(words)
        }
    }
}

/// The plans of `lab`'s battery for `command`, one per phase, in order. Each is parsed as a
/// scenario file named after the phase in the current folder, so that the program's
/// relative paths mean what they mean on the command line.
pub fn plans(lab: Lab, command: &[String]) -> Result<Vec<Plan>, CheckError> {
    lab.phases()
        .into_iter()
        .map(|phase| {
            let name = format!("{}-{}", lab.name(), phase.name);
            let text = scenario_text(lab, phase, command);
            scenario::parse(&PathBuf::from(format!("{name}.toml")), &text).map_err(|source| {
                CheckError::Phase {
                    lab: lab.name(),
                    phase: phase.name,
                    source: Box::new(source),
                }
            })
        })
        .collect()
}

/// A battery aimed at running servers: the phases that can run, and those that cannot
/// (they need a process labrun launched), each with why.
pub struct AimedBattery {
    /// The phases to run.
    pub plans: Vec<Plan>,
    /// The phases left out: name and reason.
    pub skipped: Vec<(&'static str, String)>,
}

/// The plans of `lab`'s battery aimed at servers already running at `targets` (the lab's
/// servers in order: the first port, then the second), launching nothing. A phase that
/// needs the server's process (its operator's stdin, a count of its children) is left out
/// and said why; a lab with no phase left is an error.
pub fn aimed_plans(lab: Lab, targets: &[crate::scenario::Target]) -> Result<AimedBattery, CheckError> {
    let wanted = 1 + lab.extra_ports().len();
    if lab == Lab::EchoOnce {
        return Err(CheckError::Targets(
            "the echo-once lab's server serves one client and may end: labrun's readiness \
             connection would be that client, and every phase needs a fresh server; check a \
             running server with echo-iterative or echo-threaded, or let labrun launch it"
                .into(),
        ));
    }
    if lab.tests_a_client() {
        return Err(CheckError::Targets(format!(
            "the {} lab tests a client program, which labrun runs against servers it plays: \
             --target aims at a running server; name the client instead",
            lab.name()
        )));
    }
    if targets.len() != wanted {
        return Err(CheckError::Targets(format!(
            "the {} lab has {wanted} server port(s): give --target {wanted} time(s), in order, \
             where {} given",
            lab.name(),
            match targets.len() {
                1 => "1 was".to_owned(),
                n => format!("{n} were"),
            }
        )));
    }
    let command = lab
        .python_command("labrun-aims-at-a-running-server")
        .iter()
        .map(|word| lab.scenario_word(word))
        .collect::<Vec<_>>();
    let mut battery = AimedBattery {
        plans: Vec::new(),
        skipped: Vec::new(),
    };
    for (mut plan, phase) in plans(lab, &command)?.into_iter().zip(lab.phases()) {
        let servers = plan
            .under_test
            .servers()
            .map_or(&[][..], |u| u.servers.as_slice());
        let (launched, shared): (Vec<&ServerPlan>, Vec<&ServerPlan>) =
            servers.iter().partition(|s| s.process_owner().is_none());
        let names: Vec<String> = launched.iter().chain(&shared).map(|s| s.name.clone()).collect();
        // The program is the first server's; a second port is the next server's, in order.
        for (name, target) in names.iter().zip(targets) {
            plan.aim(name, target.clone()).map_err(CheckError::Targets)?;
        }
        let needs_a_process = plan
            .under_test
            .servers()
            .and_then(|under_test| under_test.needs_a_process(&plan.expect));
        match needs_a_process {
            Some((_, why)) => battery.skipped.push((phase.name, why)),
            None => battery.plans.push(plan),
        }
    }
    if battery.plans.is_empty() {
        let (_, why) = &battery.skipped[0];
        return Err(CheckError::Targets(format!(
            "no phase of the {} battery can run against a server labrun does not launch: {why}",
            lab.name()
        )));
    }
    Ok(battery)
}

/// The scenario of `phase` of `lab`'s battery running `command` (in the words of scenarios),
/// named `LAB-PHASE`.
pub fn scenario_text(lab: Lab, phase: &Phase, command: &[String]) -> String {
    format!(
        "name = \"{}-{}\"\n{}",
        lab.name(),
        phase.name,
        phase.scenario.replace("@SERVER@", &server_lines(command))
    )
}

/// The `command` line of the server table, the program's words as a TOML array.
fn server_lines(command: &[String]) -> String {
    let words = toml::Value::Array(command.iter().cloned().map(toml::Value::String).collect());
    format!("command = {words}")
}

/// `labrun check --list`: every lab, its battery and what each phase catches.
pub fn list(out: &mut impl std::io::Write) -> std::io::Result<()> {
    for lab in Lab::ALL {
        writeln!(out, "{}  {}", lab.name(), lab.summary())?;
        for phase in lab.phases() {
            writeln!(out, "    {:<14} {}", phase.name, phase.catches)?;
        }
        writeln!(out)?;
    }
    writeln!(
        out,
        "Run one: labrun check LAB -- COMMAND ({{port}} where the port goes), or labrun check \
         LAB FILE.py"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_phase_of_every_battery_is_a_valid_scenario() {
        for lab in Lab::ALL {
            let command = command_of(lab, &["server.py".to_owned()]).expect("command");
            let plans = plans(lab, &command).unwrap_or_else(|err| panic!("{err}"));
            assert_eq!(plans.len(), lab.phases().len());
            for plan in &plans {
                assert!(plan.name.starts_with(lab.name()), "{}", plan.name);
                // The broadcast load alone may take longer: a deadline must not cut it short.
                let bound = if plan.name == "broadcast-load" { 60 } else { 20 };
                assert!(
                    plan.timeout.as_secs() <= bound,
                    "{} may take {:?}",
                    plan.name,
                    plan.timeout
                );
            }
        }
    }

    #[test]
    fn a_lone_python_file_is_run_with_python3_and_its_port() {
        let file = vec!["my_server.py".to_owned()];
        assert_eq!(
            command_of(Lab::EchoThreaded, &file).expect("command"),
            ["python3", "my_server.py", "{port}"]
        );
        let given = vec!["./server".to_owned(), "{port}".to_owned()];
        assert_eq!(command_of(Lab::EchoThreaded, &given).expect("command"), given);
        assert!(command_of(Lab::EchoOnce, &[]).is_err());
        assert_eq!(
            command_of(Lab::TwoServers, &["two.py".to_owned()]).expect("command"),
            ["python3", "two.py", "{port}", "{port:second}"]
        );
        let named = ["python3", "two.py", "{port}", "{port:second}"].map(str::to_owned);
        assert_eq!(command_of(Lab::TwoServers, &named).expect("command"), named);
        let one_port = ["python3".to_owned(), "two.py".to_owned(), "{port}".to_owned()];
        let err = command_of(Lab::TwoServers, &one_port).expect_err("no second port");
        assert!(err.to_string().contains("put {port2} in the command"), "{err}");
    }

    #[test]
    fn words_with_quotes_and_backslashes_reach_the_command_unchanged() {
        let command = vec![
            "sh".to_owned(),
            "-c".to_owned(),
            r#"echo "a\b" {port}"#.to_owned(),
        ];
        let plans = plans(Lab::EchoOnce, &command).expect("plans");
        let crate::scenario::Launch::Command(argv) = &plans[0].servers_side().servers[0].launch else {
            panic!("a command");
        };
        assert_eq!(argv[2], r#"echo "a\b" {port}"#);
    }
}
