//! Whole runs against real servers: correct ones pass, buggy ones fail with the right finding.

use std::path::Path;

use crate::util::{Scratch, echo_scenario, python_server, read_report};

/// Messages well over one `recv(1024)` and over a socket buffer, in several sizes.
const MIXED_LOAD: &str =
    "count = 8\nmessages = 12\nsize = { min = 1, max = \"96KiB\" }\npayload = \"binary\"";

#[test]
fn shipped_builtin_scenarios_pass_and_write_reports() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for name in ["threaded", "iterative", "async"] {
        let scratch = Scratch::new();
        let run = scratch.run(&root.join(format!("scenarios/{name}.toml")));
        run.expect_code(0)
            .stdout_has("PASS  echo")
            .stdout_has("round-trip time")
            .stdout_has("p99.9")
            .stdout_has(&format!("PASS {name}:"));
        let report = read_report(&scratch.reports().join(format!("{name}.json")));
        assert_eq!(report["schema_version"], 2);
        assert_eq!(report["outcome"], "pass");
        assert_eq!(report["complete"], true);
        let expected: u64 = report["scenario"]["groups"]
            .as_array()
            .expect("groups")
            .iter()
            .map(|g| g["count"].as_u64().unwrap() * g["messages"].as_u64().unwrap())
            .sum();
        assert_eq!(
            report["total"]["messages"].as_u64(),
            Some(expected),
            "every message echoed"
        );
        assert!(
            report["total"]["latency"]["rtt"]["hdr"]
                .as_str()
                .is_some_and(|h| !h.is_empty())
        );
        scratch.assert_nothing_left();
    }
}

#[test]
fn the_iterative_server_makes_later_clients_wait() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let scratch = Scratch::new();
    scratch.run(&root.join("scenarios/iterative.toml")).expect_code(0);
    let report = read_report(&scratch.reports().join("iterative.json"));
    let latency = &report["total"]["latency"];
    let (wait_max, rtt_p99) = (
        latency["wait"]["max_us"].as_u64().unwrap(),
        latency["rtt"]["p99_us"].as_u64().unwrap(),
    );
    // Five clients each hold the server for nine 20 ms think times: the last waits for the
    // four before it, whatever the machine's speed.
    assert!(
        wait_max >= 4 * 9 * 20_000,
        "last client waited only {wait_max} µs"
    );
    assert!(
        wait_max > 10 * rtt_p99,
        "wait {wait_max} µs should dwarf rtt p99 {rtt_p99} µs"
    );
}

/// A correct server passes however it is written.
#[test]
fn correct_python_servers_of_every_style_pass() {
    for fixture in [
        "echo_threads.py",
        "echo_selectors.py",
        "echo_asyncio.py",
        "echo_forking.py",
    ] {
        let scratch = Scratch::new();
        let path = scratch.file(
            "ok.toml",
            &echo_scenario("ok", &python_server(fixture), MIXED_LOAD, "echo = \"exact\""),
        );
        scratch.run(&path).expect_code(0).stdout_has("PASS  echo");
        scratch.assert_nothing_left();
    }
}

#[test]
fn utf8_payloads_pass_a_correct_server() {
    let scratch = Scratch::new();
    let clients = "count = 4\nmessages = 10\nsize = { min = 1, max = \"8KiB\" }\npayload = \"utf8\"";
    let path = scratch.file(
        "u.toml",
        &echo_scenario("u", &python_server("echo_threads.py"), clients, ""),
    );
    scratch.run(&path).expect_code(0);
}

/// Runs a buggy fixture and returns the first finding of the report.
fn first_finding(fixture: &str, clients: &str) -> (crate::util::Run, serde_json::Value) {
    let scratch = Scratch::new();
    let path = scratch.file(
        "bug.toml",
        &echo_scenario("bug", &python_server(fixture), clients, ""),
    );
    let run = scratch.run(&path);
    run.expect_code(1).stdout_has("FAIL  echo");
    scratch.assert_nothing_left();
    let report = read_report(&scratch.reports().join("bug.json"));
    assert_eq!(report["outcome"], "fail");
    let finding = report["findings"][0].clone();
    (run, finding)
}

#[test]
fn a_corrupting_server_is_caught_at_the_exact_byte() {
    // 1000-byte messages: stream byte 1500 is byte 500 of message 2.
    let (run, finding) = first_finding("corrupt_echo.py", "count = 2\nmessages = 3\nsize = 1000");
    assert_eq!(finding["class"], "corrupted");
    assert_eq!(finding["client"], "c#1");
    assert_eq!(finding["message"], 2);
    let text = finding["text"].as_str().unwrap();
    assert!(text.contains("message 2 differs at byte 500"), "{text}");
    assert!(
        text.contains("expected \"") && text.contains("received \""),
        "{text}"
    );
    run.stdout_has("2 of 2 clients got a wrong echo")
        .stdout_has("hint:");
}

#[test]
fn a_truncating_server_is_caught_with_the_shortfall() {
    let (_, finding) = first_finding(
        "truncate_echo.py",
        "count = 1\nmessages = 2\nsize = 3000\ntimeout = \"1s\"",
    );
    assert_eq!(finding["class"], "truncated");
    assert_eq!(finding["message"], 1);
    let text = finding["text"].as_str().unwrap();
    assert!(text.contains("came back with 1024 of its 3000 bytes"), "{text}");
    assert!(text.contains("nothing more arrived within 1s"), "{text}");
}

#[test]
fn a_single_recv_server_truncates_big_messages() {
    let (_, finding) = first_finding(
        "single_recv.py",
        "count = 1\nmessages = 2\nsize = 5000\ntimeout = \"2s\"",
    );
    assert_eq!(finding["class"], "truncated");
    let text = finding["text"].as_str().unwrap();
    assert!(text.contains("came back with 1024 of its 5000 bytes"), "{text}");
}

#[test]
fn a_double_replying_server_sends_extra_bytes() {
    let (_, finding) = first_finding(
        "double_reply.py",
        "count = 1\nmessages = 3\nsize = 100\nthink = \"50ms\"",
    );
    assert_eq!(finding["class"], "extra");
    assert!(
        finding["text"]
            .as_str()
            .unwrap()
            .contains("after message 1 was fully echoed"),
        "{finding}"
    );
}

#[test]
fn a_silent_server_is_reported_missing_on_time() {
    let started = std::time::Instant::now();
    let (_, finding) = first_finding("never_replies.py", "count = 3\nmessages = 2\ntimeout = \"500ms\"");
    assert_eq!(finding["class"], "missing");
    assert!(
        finding["text"].as_str().unwrap().contains("no byte of message 1"),
        "{finding}"
    );
    // Bounded by the reply timeout plus start-up, not by the 45 s scenario deadline.
    assert!(started.elapsed() < std::time::Duration::from_secs(20));
}

#[test]
fn a_latency_bound_that_is_not_met_fails_its_check() {
    let scratch = Scratch::new();
    let clients = "count = 2\nmessages = 5";
    let path = scratch.file(
        "lat.toml",
        &echo_scenario(
            "lat",
            "builtin = \"echo-async\"",
            clients,
            "latency = { p50 = \"1us\", max = \"10s\" }",
        ),
    );
    scratch
        .run(&path)
        .expect_code(1)
        .stdout_has("FAIL  latency rtt p50")
        .stdout_has("> 1 µs")
        .stdout_has("PASS  latency rtt max")
        .stdout_has("PASS  echo");
}

#[test]
fn ramped_clients_start_spread_over_the_ramp() {
    let scratch = Scratch::new();
    let clients = "count = 4\nmessages = 2\nramp = \"600ms\"";
    let path = scratch.file(
        "ramp.toml",
        &echo_scenario("ramp", "builtin = \"echo-threaded\"", clients, ""),
    );
    scratch.run(&path).expect_code(0);
    let report = read_report(&scratch.reports().join("ramp.json"));
    // The last of four clients starts 3/4 of the way through a 600 ms ramp.
    assert!(
        report["total"]["active_ms"].as_f64().unwrap() >= 400.0,
        "{}",
        report["total"]
    );
}

#[test]
fn a_server_that_exits_during_the_run_is_a_finding() {
    let scratch = Scratch::new();
    let clients = "count = 2\nmessages = 3\nramp = \"400ms\"\ntimeout = \"1s\"";
    let path = scratch.file(
        "exit.toml",
        &echo_scenario(
            "exit",
            &python_server("one_client_then_exit.py"),
            clients,
            "errors = 5",
        ),
    );
    let run = scratch.run(&path);
    run.expect_code(1)
        .stdout_has("FAIL  server srv")
        .stdout_has("exited with status 0 during the run")
        .stdout_has("client left, bye");
    scratch.assert_nothing_left();
}

/// The classic lab 1 server serves one client and exits; readiness must not use up that
/// one connection, and `exits = "after-clients"` makes the exit expected.
#[test]
fn a_server_allowed_to_exit_after_its_client_passes() {
    let scratch = Scratch::new();
    let server = format!(
        "{}\nexits = \"after-clients\"",
        python_server("one_client_then_exit.py")
    );
    let path = scratch.file(
        "once.toml",
        &echo_scenario("once", &server, "count = 1\nmessages = 5", ""),
    );
    scratch
        .run(&path)
        .expect_code(0)
        .stdout_has("exited with status 0 after its clients");
    scratch.assert_nothing_left();
}

#[test]
fn command_gets_env_port_and_cwd() {
    let scratch = Scratch::new();
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/servers");
    let server = format!(
        "command = [\"sh\", \"-c\", \"exec python3 \\\"$SCRIPT\\\" \\\"$PORT\\\"\"]\nenv = {{ SCRIPT = \"echo_threads.py\" }}\ncwd = \"{}\"",
        fixtures.display()
    );
    let path = scratch.file("env.toml", &echo_scenario("env", &server, "count = 2", ""));
    scratch.run(&path).expect_code(0).stdout_has("PASS  echo");
}

#[test]
fn scripted_stdin_and_a_stdout_ready_line() {
    let scratch = Scratch::new();
    let server = format!(
        "{}\nstdin = {{ lines = [\"start\"] }}\nready = {{ stdout = \"ready on [0-9]+$\" }}",
        python_server("waits_for_operator.py")
    );
    let path = scratch.file("op.toml", &echo_scenario("op", &server, "count = 2", ""));
    scratch.run(&path).expect_code(0);

    // Without its operator the program fails at start, and says why.
    let silent = format!(
        "{}\nready = {{ stdout = \"^ready\" }}",
        python_server("waits_for_operator.py")
    );
    let path = scratch.file("silent.toml", &echo_scenario("silent", &silent, "count = 2", ""));
    scratch.run(&path).expect_code(3).stderr_has("EOFError");
    scratch.assert_nothing_left();
}

#[test]
fn a_ready_line_that_never_comes_is_named() {
    let scratch = Scratch::new();
    let server = format!(
        "{}\nready = {{ stdout = \"never printed\", timeout = \"600ms\" }}",
        python_server("echo_threads.py")
    );
    let path = scratch.file("line.toml", &echo_scenario("line", &server, "", ""));
    scratch
        .run(&path)
        .expect_code(3)
        .stderr_has("did not print a line matching `never printed` on stdout within 600ms");
    scratch.assert_nothing_left();
}

#[test]
fn a_reply_template_types_one_line_per_message() {
    let scratch = Scratch::new();
    let server = format!(
        "{}\nstdin = {{ reply = \"ok {{n}}\" }}",
        python_server("echo_with_operator.py")
    );
    let clients = "count = 1\nmessages = 3\nsize = 100\nthink = \"20ms\"";
    let path = scratch.file("reply.toml", &echo_scenario("reply", &server, clients, ""));
    scratch.run(&path).expect_code(0);
    let report = read_report(&scratch.reports().join("reply.json"));
    let tail = report["servers"][0]["output_tail"].as_str().unwrap();
    assert_eq!(tail, "operator said ok 1\noperator said ok 2\noperator said ok 3");
}

/// The reply timeout is an idle timeout: a steady trickle is slow, not stalled.
#[test]
fn a_slow_but_steady_echo_is_not_a_timeout() {
    let scratch = Scratch::new();
    // About 1.2 s of echo per message, most of it while the message is still being written:
    // the reply timeout counts from the last byte written.
    let clients = "count = 1\nmessages = 2\nsize = \"600KiB\"\ntimeout = \"3s\"";
    let path = scratch.file(
        "slow.toml",
        &echo_scenario("slow", &python_server("slow_steady_echo.py"), clients, ""),
    );
    scratch.run(&path).expect_code(0);
}

#[test]
fn clients_scheduled_past_the_deadline_are_errors_not_silence() {
    let scratch = Scratch::new();
    let scenario = echo_scenario(
        "late",
        "builtin = \"echo-async\"",
        "count = 10\nmessages = 2\nramp = \"5s\"",
        "",
    )
    .replace("timeout = \"45s\"", "timeout = \"1s\"");
    let path = scratch.file("late.toml", &scenario);
    scratch
        .run(&path)
        .expect_code(1)
        .stdout_has("FAIL  errors")
        .stdout_has("deadline")
        .stdout_has("more did not finish");
}

/// Without `exits = "after-clients"`, a server that ends after its one client is a finding,
/// however quickly the run finishes after that client.
#[test]
fn a_server_that_ends_after_one_client_is_caught_without_permission() {
    for _ in 0..3 {
        let scratch = Scratch::new();
        let path = scratch.file(
            "classic.toml",
            &echo_scenario(
                "classic",
                &python_server("one_client_then_exit.py"),
                "count = 1\nmessages = 3",
                "",
            ),
        );
        scratch
            .run(&path)
            .expect_code(1)
            .stdout_has("FAIL  server srv")
            .stdout_has("exited with status 0");
    }
}
