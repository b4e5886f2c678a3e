//! `labrun check LAB`: a lab's battery run against a program (or a running server), with a
//! verdict line that says which phases failed and which could not run.

use crate::cli::{self, RunArgs};
use crate::error::Error;
use crate::report::Outcome;
use crate::{check, grade, run, units};

use super::scenarios::run_plans;

/// `labrun check`: the lab's battery as plans, run as `labrun run` runs scenarios, each
/// phase shown by its verdict and what failed unless asked for more or less.
pub(crate) fn check_program(args: cli::CheckArgs) -> Result<Outcome, Error> {
    let Some(lab) = args.lab.filter(|_| !args.list) else {
        let _ = check::list(&mut std::io::stdout().lock());
        return Ok(Outcome::Pass);
    };
    let (plans, skipped) = match args.targets.as_slice() {
        [] => {
            let program: Vec<String> = args.file.into_iter().chain(args.program).collect();
            (check::plans(lab, &check::command_of(lab, &program)?)?, Vec::new())
        }
        targets => {
            let battery = check::aimed_plans(lab, targets)?;
            for (phase, why) in &battery.skipped {
                eprintln!("SKIP {}-{phase}: {why}", lab.name());
            }
            let skipped: Vec<&str> = battery.skipped.iter().map(|(phase, _)| *phase).collect();
            (battery.plans, skipped)
        }
    };
    let display = match (args.json, args.verbose) {
        (true, _) => run::Display::Nothing,
        (false, true) => run::Display::Full,
        (false, false) if args.quiet => run::Display::Verdict,
        (false, false) => run::Display::VerdictAndHints,
    };
    let run = RunArgs {
        scenarios: Vec::new(),
        out: args.out,
        seed: None,
        quiet: args.quiet,
        no_report: args.no_report,
        format: args.format,
        shard: None,
        workers: None,
        repeat: 1,
        targets: Vec::new(),
        start_at: None,
        // A network of its own where the machine allows: the program's ports then clash
        // with nothing on the machine, nor with another check running beside this one. Not
        // when checking a running server, which is out there.
        isolate_network: args.targets.is_empty() && grade::isolation_available(),
        shared_network: false,
        json: args.json,
        sandbox: args.sandbox,
        sandbox_owns_workdir: false,
        // Every phase runs, but a program that could not be started for one phase will
        // not start for the next either.
        fail_fast: false,
    };
    let names: Vec<String> = plans.iter().map(|plan| plan.name.clone()).collect();
    let (outcome, each) = run_plans(plans, &run, display, run::StopAt::FirstError)?;
    if !args.json {
        let passed = each.iter().filter(|o| **o == Outcome::Pass).count();
        let failed: Vec<&str> = names
            .iter()
            .zip(&each)
            .filter(|(_, o)| **o == Outcome::Fail)
            .map(|(name, _)| {
                name.strip_prefix(lab.name())
                    .unwrap_or(name)
                    .trim_start_matches('-')
            })
            .collect();
        let mut counted = format!(
            "{passed} of {} phase{} passed",
            names.len(),
            units::plural(names.len() as u64)
        );
        if !skipped.is_empty() {
            // A PASS that covers part of the battery must say so where it is read.
            counted += &format!(
                ", {} not run against a running server ({})",
                skipped.len(),
                skipped.join(", ")
            );
        }
        let verdict = match outcome {
            Outcome::Pass => format!("PASS {}: {counted}", lab.name()),
            Outcome::Fail => format!("FAIL {}: {counted}; failed: {}", lab.name(), failed.join(", ")),
            Outcome::Error => format!(
                "ERROR {}: {counted}; the program could not be started or reached (the error is above)",
                lab.name()
            ),
            Outcome::Interrupted => format!("INTERRUPTED {}: {counted} before Ctrl-C", lab.name()),
        };
        println!("\n{verdict}");
    }
    Ok(outcome)
}
