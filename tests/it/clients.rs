//! Issue 12, client programs under test: labrun plays the server and types at the client.
//! The lab's clients pass their shipped scenarios; each buggy client in `examples/` fails
//! with the finding that names its bug; nothing a client started outlives the run; runs
//! sharing a hard-coded port do not meet.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::util::{Run, Scratch, check, read_report, shipped_with_example};

/// The shipped scenario with the example `from` replaced by `to` and the programs' timeout
/// shortened (a buggy client that hangs is stopped after it).
fn scenario_with(scenario: &str, from: &str, to: &str, timeout: &str) -> String {
    shipped_with_example(scenario, from, to).replace("timeout = \"20s\"", &format!("timeout = \"{timeout}\""))
}

/// Runs `scenarios/clients/SCENARIO.toml` with the buggy example `to` in place of `from`;
/// it must fail. Returns the report.
fn run_buggy(scenario: &str, from: &str, to: &str, timeout: &str) -> Value {
    let text = scenario_with(&format!("scenarios/clients/{scenario}.toml"), from, to, timeout);
    run_client_scenario(&text, 1)
}

/// Runs scenario text; checks the exit code, that nothing survived and that each client's
/// process group is gone; returns the report.
fn run_client_scenario(text: &str, code: i32) -> Value {
    let scratch = Scratch::new();
    let path = scratch.file("client.toml", text);
    scratch.run(&path).expect_code(code);
    scratch.assert_nothing_left();
    let name = toml::from_str::<toml::Table>(text).expect("toml")["name"]
        .as_str()
        .expect("name")
        .to_owned();
    let report = read_report(&scratch.reports().join(format!("{name}.json")));
    for program in report["client_programs"].as_array().expect("programs") {
        assert_group_gone(program["pid"].as_u64().expect("pid") as u32);
    }
    report
}

/// Fails unless no process is left in the group the client led (its pid is its group id).
fn assert_group_gone(group: u32) {
    let members = || -> Vec<u32> {
        std::fs::read_dir("/proc")
            .into_iter()
            .flatten()
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
            .filter(|pid| {
                let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                    return false;
                };
                // Fields after the command name: state, ppid, pgrp, …
                let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
                let fields: Vec<&str> = after.split_whitespace().collect();
                fields.first() != Some(&"Z") && fields.get(2) == Some(&group.to_string().as_str())
            })
            .collect()
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    while !members().is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        members().is_empty(),
        "processes of group {group} survived: {:?}",
        members()
    );
}

/// The findings of check `name`, as (class, text).
fn findings_of(report: &Value, name: &str) -> Vec<(String, String)> {
    report["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .filter(|f| f["check"] == name)
        .map(|f| {
            (
                f["class"].as_str().expect("class").to_owned(),
                f["text"].as_str().expect("text").to_owned(),
            )
        })
        .collect()
}

fn assert_check(report: &Value, name: &str, passed: bool) {
    assert_eq!(
        check(report, name)["passed"],
        passed,
        "{name}: {:#}",
        report["checks"]
    );
}

#[test]
fn the_lab_clients_pass_their_shipped_scenarios() {
    for scenario in ["echo", "chat", "choose", "echo-server-closes", "echo-server-down"] {
        let scratch = Scratch::new();
        scratch
            .run_shipped(&format!("scenarios/clients/{scenario}.toml"))
            .expect_code(0)
            .stdout_has("PASS");
        scratch.assert_nothing_left();
    }
}

#[test]
fn an_echo_client_that_ignores_exit_is_caught_hanging_and_sending_it() {
    let report = run_buggy("echo", "echo_client.py", "echo_client_bug_ignores_exit.py", "8s");
    assert_check(&report, "exit", false);
    let hang = findings_of(&report, "exit");
    assert_eq!(hang[0].0, "hangs");
    assert!(hang[0].1.contains("it does not end on `exit`"), "{hang:?}");
    let sent = findings_of(&report, "sent");
    assert_eq!(sent[0].0, "extra");
    assert!(sent[0].1.ends_with("\"exit\""), "{sent:?}");
    assert_check(&report, "printed", true);
    assert_eq!(report["client_programs"][0]["ended"], "timed-out");
}

#[test]
fn an_echo_client_with_one_recv_prints_a_truncated_echo() {
    let report = run_buggy("echo", "echo_client.py", "echo_client_bug_single_recv.py", "10s");
    assert_check(&report, "sent", true);
    let printed = findings_of(&report, "printed");
    assert_eq!(printed[0].0, "truncated", "{printed:?}");
    assert!(printed[0].1.contains("of 2000 bytes"), "{printed:?}");
}

#[test]
fn a_chat_client_that_does_not_send_exit_is_told_so() {
    let report = run_buggy("chat", "chat_client.py", "chat_client_bug_no_exit.py", "10s");
    let sent = findings_of(&report, "sent");
    assert_eq!(sent[0].0, "missing");
    assert!(
        sent[0].1.contains("(\"exit\") never reached the server"),
        "{sent:?}"
    );
    assert_check(&report, "exit", true);
    assert_check(&report, "printed", true);
}

#[test]
fn a_client_that_crashes_when_the_server_is_down_shows_its_traceback() {
    let text = scenario_with(
        "scenarios/clients/echo-server-down.toml",
        "echo_client.py",
        "echo_client_bug_crash_when_down.py",
        "10s",
    );
    let report = run_client_scenario(&text, 1);
    let down = findings_of(&report, "server down");
    assert_eq!(down[0].0, "traceback");
    assert!(down[0].1.contains("ConnectionRefusedError"), "{down:?}");
    assert_eq!(report["client_programs"][0]["traceback"], true);
    // A traceback can be allowed: reported, not held against it.
    let allowed = text.replace("stdin = {", "expect = { traceback = \"allow\" }\nstdin = {");
    let report = run_client_scenario(&allowed, 0);
    assert_eq!(report["client_programs"][0]["traceback"], true);
}

#[test]
fn a_client_that_spins_when_the_server_closes_is_stopped_and_reported() {
    let report = run_buggy(
        "echo-server-closes",
        "echo_client.py",
        "echo_client_bug_spins_on_close.py",
        "6s",
    );
    let closed = findings_of(&report, "server closed");
    assert_eq!(closed[0].0, "hangs");
    assert!(
        closed[0].1.contains("it hangs when the server closes"),
        "{closed:?}"
    );
    let connection = &report["client_programs"][0]["connections"][0];
    assert_eq!(connection["end"], "server-closed");
    assert_eq!(connection["received"], "hello");
}

#[test]
fn a_choose_client_that_always_picks_the_first_server_is_caught_on_2() {
    let report = run_buggy(
        "choose",
        "choose_client.py",
        "choose_client_bug_always_first.py",
        "10s",
    );
    assert_check(&report, "reached picks-1", true);
    assert_check(&report, "reached picks-2", false);
    let wrong = findings_of(&report, "reached picks-2");
    assert_eq!(wrong[0].0, "wrong-server");
    assert!(
        wrong[0]
            .1
            .contains("connected to `one` (port 6000) but should reach `two` (port 6001)"),
        "{wrong:?}"
    );
}

/// A scenario on port 6000 whose client types `words`, slowly enough that two runs started
/// together overlap.
fn slow_echo_on_6000(name: &str, words: &str) -> String {
    let root = env!("CARGO_MANIFEST_DIR");
    format!(
        "name = \"{name}\"\n[[played_server]]\nname = \"echo\"\nport = 6000\n\n[[client_program]]\n\
         name = \"student\"\ncommand = [\"python3\", \"{root}/examples/echo_client.py\", \"{{port}}\"]\n\
         timeout = \"30s\"\nstdin = {{ delay = \"400ms\", lines = [\"{words} 1\", \"{words} 2\", \"{words} 3\", \"exit\"] }}\n"
    )
}

#[test]
fn two_runs_on_the_same_hard_coded_port_do_not_meet() {
    // Hold 6000 here too when it is free: the runs must not need the machine's port at all.
    let _held = std::net::TcpListener::bind("127.0.0.1:6000").ok();
    let runs: Vec<(Run, Value)> = std::thread::scope(|scope| {
        let handles: Vec<_> = ["alpha", "beta"]
            .map(|words| {
                scope.spawn(move || {
                    let scratch = Scratch::new();
                    let path = scratch.file("slow.toml", &slow_echo_on_6000(words, words));
                    let run = scratch.run(&path);
                    scratch.assert_nothing_left();
                    let report = read_report(&scratch.reports().join(format!("{words}.json")));
                    (run, report)
                })
            })
            .into_iter()
            .collect();
        handles.into_iter().map(|h| h.join().expect("thread")).collect()
    });
    for ((run, report), words) in runs.iter().zip(["alpha", "beta"]) {
        run.expect_code(0);
        let connections = report["client_programs"][0]["connections"]
            .as_array()
            .expect("connections");
        assert_eq!(connections.len(), 1, "{connections:#?}");
        assert_eq!(connections[0]["port"], 6000);
        assert_eq!(connections[0]["received"], format!("{words} 1{words} 2{words} 3"));
    }
}

#[test]
fn on_the_shared_network_a_busy_fixed_port_is_named() {
    let holder = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = holder.local_addr().expect("address").port();
    let scratch = Scratch::new();
    let text = slow_echo_on_6000("busy", "x").replace("port = 6000", &format!("port = {port}"));
    let path = scratch.file("busy.toml", &text);
    Run::from(
        scratch
            .labrun()
            .arg("run")
            .arg(&path)
            .arg("--shared-network")
            .output()
            .expect("labrun runs"),
    )
    .expect_code(3)
    .stderr_has(&format!(
        "cannot play server `echo`: port {port} on 127.0.0.1 is already in use by pid {}",
        std::process::id()
    ));
    scratch.assert_nothing_left();
}

#[test]
fn untrusted_client_output_is_escaped_in_every_format() {
    let scratch = Scratch::new();
    let client = "import sys; sys.stdout.buffer.write(b'\\xff\\x1b[2J<b>hi</b>\\n'); sys.stdout.flush()";
    let text = format!(
        "name = \"hostile\"\n[[played_server]]\nname = \"echo\"\n\n[[client_program]]\nname = \"student\"\n\
         command = [\"python3\", \"-c\", \"{}\", \"{{port}}\"]\nstdin = {{ lines = [\"hello\"] }}\n",
        client.replace('\\', "\\\\").replace('"', "\\\"")
    );
    let path = scratch.file("hostile.toml", &text);
    let run = Run::from(
        scratch
            .labrun()
            .arg("run")
            .arg(&path)
            .args(["--format", "json,md,junit,html", "--out"])
            .arg(scratch.reports())
            .output()
            .expect("labrun runs"),
    );
    run.expect_code(1).stdout_has("FAIL  reached");
    assert!(!run.stdout.contains('\u{1b}'), "{}", run.stdout);
    scratch.assert_nothing_left();
    let report = read_report(&scratch.reports().join("hostile.json"));
    assert_eq!(
        report["client_programs"][0]["stdout_tail"],
        "\\xff\\x1b[2J<b>hi</b>"
    );
    for file in ["hostile.md", "hostile.junit.xml", "hostile.html"] {
        let text = std::fs::read_to_string(scratch.reports().join(file)).expect("report file");
        assert!(!text.contains('\u{1b}'), "{file}: {text}");
        assert!(text.contains("reached"), "{file} carries the checks: {text}");
    }
    // Markdown shows output lines as code spans, where markup is inert; XML and HTML escape it.
    let markdown = std::fs::read_to_string(scratch.reports().join("hostile.md")).expect("md");
    assert!(markdown.contains("`\\xff\\x1b[2J<b>hi</b>`"), "{markdown}");
    for file in ["hostile.junit.xml", "hostile.html"] {
        let text = std::fs::read_to_string(scratch.reports().join(file)).expect("report file");
        assert!(!text.contains("<b>hi"), "{file}: {text}");
    }
    let html = std::fs::read_to_string(Path::new(&scratch.reports()).join("hostile.html")).expect("html");
    assert!(html.contains("\\xff\\x1b[2J&lt;b&gt;hi"), "{html}");
}

#[test]
fn ctrl_c_during_a_client_program_tears_it_down_and_exits_130() {
    let scratch = Scratch::new();
    // The client ignores `exit` and would wait for input until its 60 s timeout.
    let text = scenario_with(
        "scenarios/clients/echo.toml",
        "echo_client.py",
        "echo_client_bug_ignores_exit.py",
        "50s",
    );
    let path = scratch.file("hang.toml", &text);
    let child = scratch.spawn(&path);
    // labrun and its client carry the marker: wait for both, then for the client to settle.
    let deadline = Instant::now() + Duration::from_secs(20);
    while scratch.survivors().len() < 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(500));
    let run = crate::util::ctrl_c(child);
    run.expect_code(130).stdout_has("INTERRUPTED echo-client");
    scratch.assert_nothing_left();
    let report = read_report(&scratch.reports().join("echo-client.json"));
    assert_eq!(report["complete"], false);
    assert_eq!(report["client_programs"][0]["ended"], "interrupted");
    assert_group_gone(report["client_programs"][0]["pid"].as_u64().expect("pid") as u32);
}

/// A client program scenario around one fixture of tests/fixtures/clients.
fn fixture_scenario(name: &str, fixture: &str, played: &str, stdin: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/clients")
        .join(fixture);
    format!(
        "name = \"{name}\"\ntimeout = \"30s\"\n[[played_server]]\nname = \"srv\"\n{played}\n\
         [[client_program]]\nname = \"c\"\ncommand = [\"python3\", \"{}\", \"{{port}}\"]\n\
         timeout = \"5s\"\nstdin = {stdin}\n",
        path.display()
    )
}

#[test]
fn a_client_that_never_reads_its_replies_is_caught() {
    let stdin = "{ lines = [ { text = \"hello\", after = \"> \" }, { text = \"0123456789\", repeat = 200, after = \"> \" }, { text = \"exit\", after = \"> \" } ] }";
    let report = run_client_scenario(
        &fixture_scenario("unread", "never_reads_replies.py", "role = \"echo\"", stdin),
        1,
    );
    assert_check(&report, "exit", false);
    let findings = findings_of(&report, "exit");
    assert_eq!(findings[0].0, "unread-replies", "{findings:?}");
}

#[test]
fn a_client_killed_by_a_signal_fails_even_when_its_server_closed() {
    let report = run_client_scenario(
        &fixture_scenario(
            "segv",
            "crashes_when_closed.py",
            "role = \"echo\"\nclose_after = 0",
            "{ lines = [\"hello\"] }",
        ),
        1,
    );
    let findings = findings_of(&report, "server closed");
    assert_eq!(findings[0].0, "killed", "{findings:?}");
    assert!(findings[0].1.contains("SIGSEGV"), "{findings:?}");
}

#[test]
fn a_daemon_left_by_a_client_program_is_killed() {
    // run_client_scenario fails if any process carrying the run's marker survives: the
    // daemon, re-parented to labrun after its double fork, carries it too.
    let report = run_client_scenario(
        &fixture_scenario(
            "daemon",
            "leaves_a_daemon.py",
            "role = \"down\"",
            "{ lines = [] }",
        ),
        0,
    );
    assert_check(&report, "server down", true);
}

#[test]
fn a_program_that_does_not_read_its_stdin_cannot_stall_the_run() {
    let started = Instant::now();
    let text = "name = \"deaf\"\ntimeout = \"60s\"\n[[played_server]]\nname = \"srv\"\nrole = \"echo\"\n\
                [[client_program]]\nname = \"c\"\ncommand = [\"sleep\", \"30\"]\ntimeout = \"2s\"\n\
                stdin = { lines = [ { text = \"x\", repeat = 150000 } ] }\n";
    let report = run_client_scenario(text, 1);
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
    let findings = findings_of(&report, "exit");
    assert_eq!(findings[0].0, "hangs", "{findings:?}");
    assert!(
        findings[0].1.contains("time ran out before line 1"),
        "{findings:?}"
    );
}
