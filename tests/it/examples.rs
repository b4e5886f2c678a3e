//! The lab's example programs in `examples/`: correct ones pass their shipped scenarios,
//! buggy ones are caught with the finding that names their bug.

use crate::util::{Scratch, echo_scenario, example_server, read_report};

#[test]
fn correct_echo_examples_pass_their_shipped_scenarios() {
    for scenario in ["threaded", "iterative", "iterative-once"] {
        let scratch = Scratch::new();
        scratch
            .run_shipped(&format!("scenarios/python/{scenario}.toml"))
            .expect_code(0)
            .stdout_has("PASS  echo");
        scratch.assert_nothing_left();
    }
}

/// Runs a buggy example and returns the classes of its echo findings.
fn echo_fault_classes(example: &str, clients: &str) -> Vec<String> {
    let scratch = Scratch::new();
    let path = scratch.file(
        "bug.toml",
        &echo_scenario("bug", &example_server(example), clients, ""),
    );
    scratch.run(&path).expect_code(1).stdout_has("FAIL  echo");
    scratch.assert_nothing_left();
    let report = read_report(&scratch.reports().join("bug.json"));
    let findings = report["findings"].as_array().expect("findings").clone();
    findings
        .iter()
        .filter(|f| f["check"] == "echo")
        .map(|f| f["class"].as_str().expect("class").to_owned())
        .collect()
}

fn assert_classes(classes: &[String], allowed: &[&str]) {
    assert!(!classes.is_empty(), "no echo finding");
    assert!(
        classes.iter().all(|c| allowed.contains(&c.as_str())),
        "unexpected classes {classes:?}, allowed {allowed:?}"
    );
}

#[test]
fn single_recv_truncates() {
    let classes = echo_fault_classes(
        "echo_bug_single_recv.py",
        "count = 1\nmessages = 2\nsize = 3000\ntimeout = \"1s\"",
    );
    assert_classes(&classes, &["truncated"]);
}

#[test]
fn decoding_per_chunk_corrupts_utf8() {
    let clients = "count = 2\nmessages = 10\nsize = { min = 2000, max = \"8KiB\" }\npayload = \"utf8\"\ntimeout = \"1s\"";
    assert_classes(
        &echo_fault_classes("echo_bug_decode_per_chunk.py", clients),
        &["corrupted"],
    );
}

#[test]
fn never_replying_is_missing() {
    let clients = "count = 2\nmessages = 2\ntimeout = \"500ms\"";
    assert_classes(
        &echo_fault_classes("echo_bug_never_replies.py", clients),
        &["missing"],
    );
}

#[test]
fn ignoring_send_results_loses_bytes_of_large_messages() {
    let clients = "count = 2\nmessages = 4\nsize = \"64KiB\"\ntimeout = \"1s\"";
    assert_classes(
        &echo_fault_classes("echo_bug_send_ignored.py", clients),
        &["skipped", "truncated"],
    );
}

#[test]
fn uppercasing_corrupts() {
    assert_classes(
        &echo_fault_classes("echo_bug_uppercase.py", "count = 1\nmessages = 2\nsize = 200"),
        &["corrupted"],
    );
}

#[test]
fn double_sending_sends_extra_bytes() {
    let clients = "count = 1\nmessages = 3\nsize = 100\nthink = \"50ms\"";
    assert_classes(
        &echo_fault_classes("echo_bug_double_send.py", clients),
        &["extra", "corrupted"],
    );
}

#[test]
fn crashing_at_start_shows_the_traceback() {
    let scratch = Scratch::new();
    let path = scratch.file(
        "crash.toml",
        &echo_scenario("crash", &example_server("echo_bug_crash_at_start.py"), "", ""),
    );
    scratch
        .run(&path)
        .expect_code(3)
        .stderr_has("exited with status 1")
        .stderr_has("AttributeError");
    scratch.assert_nothing_left();
}

#[test]
fn a_stubborn_forked_child_is_still_torn_down() {
    let scratch = Scratch::new();
    let path = scratch.file(
        "fork.toml",
        &echo_scenario(
            "fork",
            &example_server("echo_bug_forks_stubborn_child.py"),
            "count = 2",
            "",
        ),
    );
    scratch.run(&path).expect_code(0);
    scratch.assert_nothing_left();
}
