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
    let run = scratch.run_with(&once_broken, &["--repeat", "3", "--format", "json,md,html,junit"]);
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
    let html = std::fs::read_to_string(scratch.reports().join("gate.html")).expect("html report");
    assert!(
        html.contains("<h2>3 runs</h2>") && html.contains("<td>FAIL</td>"),
        "{html}"
    );
    let junit = std::fs::read_to_string(scratch.reports().join("gate.junit.xml")).expect("junit report");
    assert!(junit.contains("<property name=\"runs\" value=\"3\"/>"), "{junit}");

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
    // Client programs have no message figures: their runs' table says what failed.
    let clients = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/clients/echo.toml");
    scratch
        .run_with(&clients, &["--repeat", "2"])
        .expect_code(0)
        .stdout_has("│ run │ outcome │ failed checks │")
        .stdout_has("│ 2   │ PASS    │               │");
    scratch.assert_nothing_left();
}

/// A `--repeat 5` report of a fast built-in server, read back as JSON to be edited.
fn repeated_json(scratch: &Scratch) -> serde_json::Value {
    let path = scratch.file(
        "gate.toml",
        &echo_scenario("gate", "builtin = \"echo-async\"", LOAD, ""),
    );
    scratch.run_with(&path, &["--repeat", "5"]).expect_code(0);
    crate::util::read_report(&scratch.reports().join("gate.json"))
}

/// Writes `report` as `name.json` in the scratch folder.
fn saved(scratch: &Scratch, name: &str, report: &serde_json::Value) -> std::path::PathBuf {
    scratch.file(&format!("{name}.json"), &report.to_string())
}

/// The report with its runs' throughputs set to `rates`, one per run.
fn with_rates(report: &serde_json::Value, rates: [f64; 5]) -> serde_json::Value {
    let mut edited = report.clone();
    let runs = edited["repeats"].as_array_mut().expect("repeats");
    assert_eq!(runs.len(), rates.len());
    for (run, rate) in runs.iter_mut().zip(rates) {
        run["total"]["messages_per_second"] = rate.into();
    }
    edited
}

/// The rule over runs, on edited figures (so that timing cannot move it): halved throughput
/// in every run is a regression; the same against a baseline with one very slow run is
/// noise, and compare says which run hid it.
#[test]
fn one_slow_baseline_run_is_named_when_it_hides_a_change() {
    let scratch = Scratch::new();
    let report = repeated_json(&scratch);
    let steady = [1000.0, 1010.0, 990.0, 1005.0, 995.0];
    let baseline = saved(&scratch, "baseline", &with_rates(&report, steady));
    let halved = saved(&scratch, "halved", &with_rates(&report, steady.map(|r| r / 2.0)));
    let gate = ["--max-regress", "throughput=5%"];
    compare(&scratch, &baseline, &halved, &gate)
        .expect_code(1)
        .stdout_has("REGRESSION: throughput -50.0% (worse by ≥ 485 msgs/s)");
    let hiccup = saved(
        &scratch,
        "hiccup",
        &with_rates(&report, [1000.0, 1010.0, 990.0, 1005.0, 1.0]),
    );
    compare(&scratch, &hiccup, &halved, &gate)
        .expect_code(0)
        .stdout_has("OK: no significant change (throughput -")
        .stdout_has("note: baseline run 5 has throughput 1 against a median of 1000");
    scratch.assert_nothing_left();
}

/// Hand-made reports cannot make compare allocate without bound or print figures no run
/// has, and a gate given twice or on a figure neither report has is said.
#[test]
fn forged_repeats_and_doubtful_gates_are_refused_or_said() {
    let scratch = Scratch::new();
    let report = repeated_json(&scratch);
    let baseline = saved(&scratch, "baseline", &report);
    let mut many = report.clone();
    let run = many["repeats"][0].clone();
    many["repeats"] = serde_json::Value::Array(vec![run; 101]);
    compare(&scratch, &baseline, &saved(&scratch, "many", &many), &[])
        .expect_code(2)
        .stderr_has("it holds 101 runs; `--repeat` makes at most 100");
    let negative = with_rates(&report, [100.0, 100.0, -5.0, 100.0, 100.0]);
    compare(&scratch, &baseline, &saved(&scratch, "negative", &negative), &[])
        .expect_code(2)
        .stderr_has("not a finite number of zero or more");
    let mut other_load = report.clone();
    other_load["repeats"][2]["total"]["clients"] = 50.into();
    compare(&scratch, &baseline, &saved(&scratch, "other", &other_load), &[])
        .expect_code(2)
        .stderr_has("its runs are not of its load");
    compare(
        &scratch,
        &baseline,
        &baseline,
        &["--max-regress", "throughput=90%,throughput=5%"],
    )
    .expect_code(2)
    .stderr_has("gates `throughput` twice");
    compare(
        &scratch,
        &baseline,
        &baseline,
        &["--max-regress", "fanout.p99=1%"],
    )
    .expect_code(0)
    .stderr_has("neither report has samples of fanout p99");
    scratch.assert_nothing_left();
}

/// Ctrl-C while a later run's server is starting keeps the runs already done.
#[test]
fn ctrl_c_between_repeated_runs_keeps_the_runs_done() {
    let scratch = Scratch::new();
    // Its second start stalls (and says so with a file) until labrun gives up on it.
    let server = format!(
        "command = [\"sh\", \"-c\", \"if [ -e started ]; then touch second; sleep 30; fi; touch started; exec python3 {} \\\"$1\\\"\", \"sh\", \"{{port}}\"]\nport = \"auto\"",
        crate::util::fixture("echo_threads.py")
    );
    let path = scratch.file("gate.toml", &echo_scenario("gate", &server, LOAD, ""));
    let child = scratch.spawn_with(&path, &["--repeat", "3", "--format", "json,md"]);
    let second = scratch.dir.path().join("second");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !second.exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(second.exists(), "the second run never started its server");
    let run = crate::util::ctrl_c(child);
    run.expect_code(130).stderr_has("gate: run 1 of 3: PASS");
    let report = crate::util::read_report(&scratch.reports().join("gate.json"));
    assert_eq!(report["outcome"], "interrupted", "{report:#}");
    assert_eq!(report["complete"], false);
    assert_eq!(report["total"]["messages"], 40, "run 1's figures are kept");
    assert!(scratch.reports().join("gate.md").exists());
    scratch.assert_nothing_left();
}
