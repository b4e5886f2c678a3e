//! `labrun compare`: the CI regression gate over two JSON reports.

use crate::util::{Run, Scratch, echo_scenario, example_server};

const LOAD: &str = "count = 4\nmessages = 10\nsize = 2000";

/// Runs `server` under the same load and returns the path of its JSON report.
fn report_of(scratch: &Scratch, name: &str, server: &str) -> std::path::PathBuf {
    let path = scratch.file(&format!("{name}.toml"), &echo_scenario(name, server, LOAD, ""));
    scratch.run(&path).expect_code(0);
    scratch.reports().join(format!("{name}.json"))
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
        .stdout_has("REGRESSION: rtt p99 +")
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
}
