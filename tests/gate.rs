//! The CI regression gate against the machine's noise: `labrun compare` over reports of
//! `--repeat` runs.
//!
//! A binary of its own because its verdicts are about timing: cargo runs test binaries one
//! after another, so no other test of the suite loads the machine while these runs are
//! measured — as in a CI job, where the gate runs on a machine of its own.

#[allow(dead_code)]
#[path = "it/util.rs"]
mod util;

use std::path::{Path, PathBuf};

use util::{Run, Scratch, fixture};

/// Runs per report, as the README advises for a gate.
const REPEAT: &str = "5";

/// Back-to-back reports per server.
const REPORTS: usize = 5;

/// Runs `scenario` with `--repeat` into its own folder `name` and returns its JSON report.
fn repeated_report(scratch: &Scratch, scenario: &Path, name: &str) -> PathBuf {
    let out = scratch.dir.path().join(name);
    let output = scratch
        .labrun()
        .arg(scenario)
        .args(["--repeat", REPEAT, "--quiet", "--out"])
        .arg(&out)
        .output()
        .expect("labrun runs");
    Run::from(output).expect_code(0);
    let stem = scenario
        .file_stem()
        .expect("a scenario file")
        .to_string_lossy()
        .into_owned();
    out.join(format!("{stem}.json"))
}

/// `labrun compare --json BASELINE CURRENT`, its exit code and its JSON.
fn compare(scratch: &Scratch, baseline: &Path, current: &Path) -> (Option<i32>, serde_json::Value) {
    let output = scratch
        .labrun()
        .args(["compare", "--json"])
        .arg(baseline)
        .arg(current)
        .output()
        .expect("labrun runs");
    let json = serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "compare --json printed no JSON ({e}): {}",
            String::from_utf8_lossy(&output.stdout)
        )
    });
    (output.status.code(), json)
}

/// The gated figures a comparison found regressed.
fn regressed_figures(comparison: &serde_json::Value) -> Vec<String> {
    comparison["figures"]
        .as_array()
        .expect("figures")
        .iter()
        .filter(|f| f["regressed"] == true)
        .map(|f| {
            format!(
                "{} ({}, worse by at least {})",
                f["figure"], f["change"], f["worse_by_at_least"]
            )
        })
        .collect()
}

/// The shipped CI scenario, five reports of five runs each, back to back: no report is a
/// regression against any other, in either direction.
fn correct_runs_never_regress_against_each_other(scratch: &Scratch) {
    let scenario = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/threaded.toml");
    let reports: Vec<PathBuf> = (1..=REPORTS)
        .map(|k| repeated_report(scratch, &scenario, &format!("threaded-{k}")))
        .collect();
    for (i, baseline) in reports.iter().enumerate() {
        for (j, current) in reports.iter().enumerate().filter(|(j, _)| *j != i) {
            let (code, comparison) = compare(scratch, baseline, current);
            assert_eq!(
                code,
                Some(0),
                "report {} against {} of the same correct server flagged: {:?}\n{comparison:#}",
                j + 1,
                i + 1,
                regressed_figures(&comparison)
            );
        }
    }
}

/// The same thread-per-client server with and without 2 ms per reply under one load: every
/// slowed report is a regression against every plain one, on the figures (no check flips:
/// the slowed server is correct).
fn a_server_slowed_by_two_ms_is_flagged_in_every_pair(scratch: &Scratch) {
    let scenario_with = |delay_ms: u32| {
        let text =
            std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/threaded-10.toml"))
                .expect("shipped scenario");
        let server = format!(
            "command = [\"python3\", \"{}\", \"{{port}}\", \"{delay_ms}\"]",
            fixture("echo_threads_delay.py")
        );
        let edited = text.replace("builtin = \"echo-threaded\"", &server);
        assert_ne!(edited, text, "threaded-10.toml runs the built-in server");
        let folder = scratch.dir.path().join(format!("delay-{delay_ms}"));
        std::fs::create_dir_all(&folder).expect("scenario folder");
        let path = folder.join("threaded-10.toml");
        std::fs::write(&path, edited).expect("scenario written");
        path
    };
    let (plain, slowed) = (scenario_with(0), scenario_with(2));
    let reports = |scenario: &Path, name: &str| -> Vec<PathBuf> {
        (1..=REPORTS)
            .map(|k| repeated_report(scratch, scenario, &format!("{name}-{k}")))
            .collect()
    };
    let (plain, slowed) = (reports(&plain, "plain"), reports(&slowed, "slowed"));
    for (i, baseline) in plain.iter().enumerate() {
        for (j, current) in slowed.iter().enumerate() {
            let (code, comparison) = compare(scratch, baseline, current);
            assert_eq!(
                code,
                Some(1),
                "slowed {} against plain {} not flagged:\n{comparison:#}",
                j + 1,
                i + 1
            );
            assert_eq!(comparison["flips"], serde_json::json!([]), "{comparison:#}");
            // Every message is 2 ms slower: the median round trip shows it in each pair.
            let figures = regressed_figures(&comparison);
            assert!(
                figures.iter().any(|f| f.contains("rtt p50")),
                "slowed {} against plain {}: {figures:?}",
                j + 1,
                i + 1
            );
        }
    }
}

/// One test, so that its two halves never run at the same time either.
#[test]
fn compare_over_repeated_runs_flags_a_slower_server_and_never_the_noise() {
    let scratch = Scratch::new();
    correct_runs_never_regress_against_each_other(&scratch);
    a_server_slowed_by_two_ms_is_flagged_in_every_pair(&scratch);
    scratch.assert_nothing_left();
}
