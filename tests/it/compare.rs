//! `labrun compare`: the CI regression gate over two JSON reports.

use crate::util::{Run, Scratch, echo_scenario, example_server};

const LOAD: &str = "count = 4\nmessages = 10\nsize = 2000";

/// Runs `server` under the scenario `gate`'s load (as a CI job would run one scenario on
/// two versions of a server) and returns the path of its JSON report, kept as `name.json`.
fn report_of(scratch: &Scratch, name: &str, server: &str) -> std::path::PathBuf {
    let path = scratch.file(&format!("{name}.toml"), &echo_scenario("gate", server, LOAD, ""));
    scratch.run(&path).expect_code(0);
    let kept = scratch.dir.path().join(format!("{name}.json"));
    std::fs::rename(scratch.reports().join("gate.json"), &kept).expect("report kept");
    kept
}

fn compare(scratch: &Scratch, baseline: &std::path::Path, current: &std::path::Path, gates: &[&str]) -> Run {
    Run::from(
        scratch
            .labrun()
            .arg("compare")
            .arg(baseline)
            .arg(current)
            .args(gates)
            .output()
            .expect("labrun runs"),
    )
}

#[test]
fn a_slower_server_regresses_and_a_report_never_regresses_against_itself() {
    let scratch = Scratch::new();
    let fast = report_of(&scratch, "fast", "builtin = \"echo-async\"");
    // The Python lab server without TCP_NODELAY: a 2000-byte echo waits on a delayed ACK.
    let slow = report_of(&scratch, "slow", &example_server("echo_server_threaded.py"));
    scratch.assert_nothing_left();

    compare(&scratch, &fast, &slow, &[])
        .expect_code(1)
        .stdout_has("REGRESSION: rtt p50 +")
        .stdout_has("rtt p99 +")
        .stdout_has("REGRESSED");
    compare(&scratch, &fast, &fast, &[])
        .expect_code(0)
        .stdout_has("OK: no gated figure regressed");
    // Only the named gates count: the slow server is never gated on what is not named.
    compare(&scratch, &fast, &slow, &["--max-regress", "errors=0"]).expect_code(0);
    // Any percentile can be gated, and the gated one has its row.
    compare(&scratch, &fast, &slow, &["--max-regress", "p95=5%"])
        .expect_code(1)
        .stdout_has("rtt p95")
        .stdout_has("REGRESSION: rtt p95 +");
    compare(&scratch, &fast, &slow, &["--max-regress", "p100=5%"])
        .expect_code(2)
        .stderr_has("`p100` is not a percentile");
    compare(&scratch, &fast, &scratch.dir.path().join("missing.json"), &[])
        .expect_code(2)
        .stderr_has("cannot read report");
    // The same figures for a CI step to read.
    let json = compare(&scratch, &fast, &slow, &["--json"]);
    json.expect_code(1);
    let value: serde_json::Value = serde_json::from_str(&json.stdout).expect("JSON on stdout");
    assert_eq!(value["regressed"], true, "{value}");
    let p99 = value["figures"]
        .as_array()
        .expect("figures")
        .iter()
        .find(|f| f["figure"] == "rtt p99")
        .expect("rtt p99");
    assert!(p99["current"].as_f64() > p99["baseline"].as_f64(), "{p99}");
    assert_eq!(p99["regressed"], true, "{p99}");
}

/// Reports of another scenario or another load are refused, not compared; a check that
/// passed and fails now is a regression, listed first, whatever the figures.
#[test]
fn mismatched_reports_are_refused_and_check_flips_come_first() {
    let scratch = Scratch::new();
    let good = report_of(&scratch, "good", "builtin = \"echo-threaded\"");
    let other_load = scratch.file(
        "more.toml",
        &echo_scenario(
            "gate",
            "builtin = \"echo-threaded\"",
            "count = 5\nmessages = 10\nsize = 2000",
            "",
        ),
    );
    scratch.run(&other_load).expect_code(0);
    compare(&scratch, &good, &scratch.reports().join("gate.json"), &[])
        .expect_code(2)
        .stderr_has("ran a different load in each");
    let other = scratch.file(
        "other.toml",
        &echo_scenario("other", "builtin = \"echo-threaded\"", LOAD, ""),
    );
    scratch.run(&other).expect_code(0);
    compare(&scratch, &good, &scratch.reports().join("other.json"), &[])
        .expect_code(2)
        .stderr_has("they are of different scenarios (`gate` and `other`)");
    // A server that corrupts echoes: its echo check flips, whatever its speed.
    let bad = scratch.file(
        "bad.toml",
        &echo_scenario("gate", &crate::util::python_server("corrupt_echo.py"), LOAD, ""),
    );
    scratch.run(&bad).expect_code(1);
    let flipped = compare(
        &scratch,
        &good,
        &scratch.reports().join("gate.json"),
        &["--max-regress", "errors=5"],
    );
    flipped.expect_code(1).stdout_has("FAILS NOW: echo");
    let verdict = flipped.stdout.lines().last().unwrap_or_default();
    assert!(
        verdict.starts_with("REGRESSION: check echo passed, fails now"),
        "{verdict}"
    );
    scratch.assert_nothing_left();
}

/// `--repeat 3`: the report keeps each run's outcome and figures, and a check that failed in
/// one run fails the report, saying in which run, with that run's findings; a server that
/// cannot start is started once, not three times.
#[test]
fn repeated_runs_keep_every_run_and_a_failure_in_any_of_them() {
    let scratch = Scratch::new();
    let once_broken = scratch.file(
        "gate.toml",
        &echo_scenario(
            "gate",
            &crate::util::python_server("echo_corrupts_on_second_start.py"),
            LOAD,
            "echo = \"exact\"",
        ),
    );
    let run = scratch.run_with(&once_broken, &["--repeat", "3", "--format", "json,md"]);
    run.expect_code(1)
        .stdout_has("3 runs (the report above is run 2's: the first that went worst)")
        .stderr_has("gate: run 2 of 3: FAIL");
    let report = crate::util::read_report(&scratch.reports().join("gate.json"));
    let outcomes: Vec<&serde_json::Value> = report["repeats"]
        .as_array()
        .expect("repeats")
        .iter()
        .map(|run| &run["outcome"])
        .collect();
    assert_eq!(outcomes, ["pass", "fail", "pass"], "{:#}", report["repeats"]);
    assert_eq!(report["outcome"], "fail");
    let echo = crate::util::check(&report, "echo");
    assert_eq!(echo["passed"], false);
    assert!(
        echo["summary"]
            .as_str()
            .is_some_and(|s| s.starts_with("failed in 1 of 3 runs (2); run 2: ")),
        "{echo}"
    );
    assert!(
        report["findings"]
            .as_array()
            .is_some_and(|f| f.iter().any(|f| f["check"] == "echo")),
        "{:#}",
        report["findings"]
    );
    // Each run's own figures: the broken run echoed nothing right.
    let messages: Vec<u64> = report["repeats"]
        .as_array()
        .expect("repeats")
        .iter()
        .map(|run| run["total"]["messages"].as_u64().expect("a count"))
        .collect();
    assert_eq!(messages, [40, 0, 40], "{:#}", report["repeats"]);
    assert!(report["repeats"][0]["total"]["latency"]["rtt"]["hdr"].is_string());
    let markdown = std::fs::read_to_string(scratch.reports().join("gate.md")).expect("markdown report");
    assert!(markdown.contains("| 2 | FAIL | 0 |"), "{markdown}");

    let crashes = scratch.file(
        "crash.toml",
        &echo_scenario(
            "crash",
            &crate::util::python_server("crash_at_start.py"),
            LOAD,
            "",
        ),
    );
    let run = scratch.run_with(&crashes, &["--repeat", "3"]);
    run.expect_code(3);
    assert_eq!(run.stderr.matches("AttributeError").count(), 1, "{}", run.stderr);
    scratch.assert_nothing_left();
}
