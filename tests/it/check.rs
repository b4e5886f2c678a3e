//! Issue 20: `labrun check LAB -- COMMAND` runs a lab's whole battery against a program, with
//! no scenario to write. Correct servers of every style pass every phase; each buggy one is
//! caught by the phases made for its bug and by no other.

use std::time::{Duration, Instant};

use crate::util::{Run, Scratch, fixture};

/// Runs `labrun check LAB PROGRAM…` quietly in a scratch folder; returns the run, the phases
/// that failed and how long it took.
fn check(lab: &str, program: &[&str]) -> (Run, Vec<String>, Duration) {
    let scratch = Scratch::new();
    let started = Instant::now();
    let output = scratch
        .labrun()
        .timeout(Duration::from_secs(180))
        .args(["check", lab, "--quiet", "--out"])
        .arg(scratch.reports())
        .arg("--")
        .args(program)
        .output()
        .expect("labrun runs");
    let took = started.elapsed();
    let run = Run::from(output);
    let prefix = format!("FAIL {lab}-");
    let failed = run
        .stdout
        .lines()
        .filter_map(|line| line.strip_prefix(&prefix))
        .filter_map(|rest| rest.split(':').next())
        .map(str::to_owned)
        .collect();
    scratch.assert_nothing_left();
    (run, failed, took)
}

/// [`check`] on each `(lab, program)`, two at a time, results in order: a battery mostly
/// waits on its program, so two share the machine without slowing each other much, and the
/// suite stays within its time budget.
fn check_two_at_a_time(cases: &[(&str, String)]) -> Vec<(Run, Vec<String>, Duration)> {
    let mut results = Vec::with_capacity(cases.len());
    for pair in cases.chunks(2) {
        std::thread::scope(|scope| {
            let running: Vec<_> = pair
                .iter()
                .map(|(lab, program)| scope.spawn(move || check(lab, &[program.as_str()])))
                .collect();
            results.extend(running.into_iter().map(|r| r.join().expect("the check ran")));
        });
    }
    results
}

fn example(name: &str) -> String {
    format!("{}/examples/{name}", env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn correct_servers_of_every_style_pass_the_threaded_battery() {
    // Threads: the shipped example; the others are fixtures in each style.
    let mut programs: Vec<(&str, String)> = [
        "echo_selectors.py",
        "echo_asyncio.py",
        "echo_forking.py",
        "echo_socketserver.py",
    ]
    .iter()
    .map(|name| ("echo-threaded", fixture(name)))
    .collect();
    programs.push(("echo-threaded", example("echo_server_threaded.py")));
    for ((_, program), (run, failed, took)) in programs.iter().zip(check_two_at_a_time(&programs)) {
        assert!(failed.is_empty(), "{program} failed {failed:?}:\n{}", run.stdout);
        run.expect_code(0)
            .stdout_has("PASS echo-threaded: 10 of 10 phases passed");
        assert!(
            took < Duration::from_secs(30),
            "{program}: the battery took {took:?}"
        );
    }
}

#[test]
fn the_lab_1_servers_pass_their_batteries() {
    let (run, failed, _) = check("echo-once", &[&example("echo_server_iterative_once.py")]);
    assert!(failed.is_empty(), "{failed:?}:\n{}", run.stdout);
    run.expect_code(0)
        .stdout_has("PASS echo-once: 6 of 6 phases passed");
    let (run, failed, took) = check("echo-iterative", &[&example("echo_server_iterative.py")]);
    assert!(failed.is_empty(), "{failed:?}:\n{}", run.stdout);
    run.expect_code(0)
        .stdout_has("PASS echo-iterative: 9 of 9 phases passed");
    assert!(took < Duration::from_secs(30), "the battery took {took:?}");
}

/// Each bug is caught by the phases written for it, and a correct part of the program is
/// never blamed: the failing phases are exactly these.
#[test]
fn each_bug_is_caught_by_its_own_phases() {
    let fixtures = [
        (
            "echo-threaded",
            "echo_drops_every_100th.py",
            &["conversation"][..],
        ),
        ("echo-threaded", "echo_bug_spins_on_eof.py", &["half-close"][..]),
        (
            "echo-threaded",
            "echo_select_bug_reset_in_sendall.py",
            &["reset-in-sendall"][..],
        ),
        (
            "echo-iterative",
            "echo_iterative_bug_reset_in_sendall.py",
            &["reset-in-sendall"][..],
        ),
        ("echo-threaded", "echo_bug_full_read_means_more.py", &["text"][..]),
        ("echo-threaded", "echo_bug_ascii_terminal.py", &["utf8"][..]),
        (
            "echo-threaded",
            "echo_select_bug_reset_in_recv.py",
            &["resets"][..],
        ),
        (
            "echo-iterative",
            "echo_iterative_bug_listens_per_client.py",
            &["queue"][..],
        ),
        (
            "echo-iterative",
            "echo_iterative_bug_reset_in_recv.py",
            &["resets"][..],
        ),
        ("echo-threaded", "echo_bug_c_string.py", &["binary"][..]),
        ("echo-threaded", "echo_fork_bug_zombies.py", &["children"][..]),
        (
            "echo-threaded",
            "echo_fork_bug_child_lives_on.py",
            &["children"][..],
        ),
        (
            "echo-threaded",
            "echo_fork_bug_grandchild_lives_on.py",
            &["children"][..],
        ),
    ];
    let examples = [
        ("echo_bug_send_ignored.py", &["large"][..]),
        ("echo_bug_decode_per_chunk.py", &["utf8", "binary"][..]),
        ("echo_bug_dies_on_reset.py", &["resets", "reset-in-sendall"][..]),
        ("echo_bug_fake_threaded.py", &["concurrent"][..]),
    ];
    let cases: Vec<(&str, String, &[&str])> = fixtures
        .iter()
        .map(|(lab, bug, caught_by)| (*lab, fixture(bug), *caught_by))
        .chain(
            examples
                .iter()
                .map(|(bug, caught_by)| ("echo-threaded", example(bug), *caught_by)),
        )
        .collect();
    let programs: Vec<(&str, String)> = cases.iter().map(|(lab, bug, _)| (*lab, bug.clone())).collect();
    for ((_, bug, caught_by), (run, failed, _)) in cases.iter().zip(check_two_at_a_time(&programs)) {
        run.expect_code(1);
        assert_eq!(&failed, caught_by, "{bug}:\n{}", run.stdout);
    }
}

/// A server that uppercases is named by the checks of what it sends back; one that ends
/// after its first client, which lab 1 allows, fails every phase of the iterative lab,
/// whose server must go on, and says why.
#[test]
fn an_uppercasing_server_and_a_one_client_server_are_named() {
    let (run, failed, _) = check("echo-threaded", &[&example("echo_bug_uppercase.py")]);
    run.expect_code(1)
        .stdout_has("FAIL  echo  ")
        .stdout_has("FAIL echo-threaded: 0 of 10 phases passed; failed: text, large");
    assert!(failed.contains(&"text".to_owned()), "{failed:?}");
    let (run, failed, _) = check("echo-iterative", &[&example("echo_server_iterative_once.py")]);
    run.expect_code(1)
        .stdout_has("server `server` exited with status 0 during the run");
    assert_eq!(failed.len(), 9, "{failed:?}\n{}", run.stdout);
}

#[test]
fn the_labs_are_listed_and_a_missing_program_is_a_usage_error() {
    let scratch = Scratch::new();
    let listed = Run::from(scratch.labrun().args(["check", "--list"]).output().expect("runs"));
    listed.expect_code(0);
    for lab in ["echo-once", "echo-iterative", "echo-threaded"] {
        listed.stdout_has(lab);
    }
    listed.stdout_has("resets").stdout_has("ConnectionResetError");
    let missing = Run::from(
        scratch
            .labrun()
            .args(["check", "echo-threaded"])
            .output()
            .expect("runs"),
    );
    missing.expect_code(2).stderr_has("name the program to check");
}

/// The chat, two-server, broadcast and UDP labs: every correct program shipped or used by
/// the tests passes its whole battery.
#[test]
fn the_other_labs_pass_their_correct_programs() {
    for (lab, program, phases) in [
        ("chat", example("chat_server.py"), 3),
        ("two-servers", example("two_servers.py"), 3),
        ("two-servers", fixture("two_servers_selectors.py"), 3),
        ("broadcast", example("broadcast_server.py"), 3),
        ("broadcast", fixture("broadcast_selectors_queues.py"), 3),
        ("udp-echo", example("udp_echo_server.py"), 3),
    ] {
        let (run, failed, took) = check(lab, &[&program]);
        assert!(failed.is_empty(), "{program} failed {failed:?}:\n{}", run.stdout);
        run.expect_code(0)
            .stdout_has(&format!("PASS {lab}: {phases} of {phases} phases passed"));
        assert!(
            took < Duration::from_secs(30),
            "{program}: the battery took {took:?}"
        );
    }
}

/// Each buggy program of those labs fails exactly the phases written for its bug.
#[test]
fn the_other_labs_catch_each_bug_in_its_own_phases() {
    let cases = [
        (
            "chat",
            example("chat_bug_ignores_exit.py"),
            &["turns", "long-replies", "sessions"][..],
        ),
        ("chat", fixture("chat_one_session.py"), &["sessions"][..]),
        ("chat", fixture("chat_bug_sends_empty_reply.py"), &["turns"][..]),
        (
            "chat",
            fixture("chat_bug_cuts_long_replies.py"),
            &["long-replies"][..],
        ),
        (
            "two-servers",
            fixture("two_servers_bug_shared_connection.py"),
            &["both"][..],
        ),
        (
            "two-servers",
            fixture("two_servers_dies_on_reset.py"),
            &["resets"][..],
        ),
        (
            "two-servers",
            fixture("two_servers_bug_in_turn.py"),
            &["independent"][..],
        ),
        (
            "broadcast",
            fixture("broadcast_bug_replays_history.py"),
            &["room"][..],
        ),
        (
            "broadcast",
            example("broadcast_bug_ignores_short_send.py"),
            &["load"][..],
        ),
        (
            "broadcast",
            example("broadcast_bug_keeps_dead_clients.py"),
            &["room", "departures"][..],
        ),
        (
            "broadcast",
            example("broadcast_bug_prunes_while_iterating.py"),
            &["departures"][..],
        ),
        (
            "broadcast",
            fixture("broadcast_select_bug_dies_on_reset.py"),
            &["departures"][..],
        ),
        ("udp-echo", fixture("udp_echo_recvfrom_16k.py"), &["large"][..]),
        ("udp-echo", fixture("udp_echo_bug_decodes.py"), &["binary"][..]),
        (
            "udp-echo",
            fixture("udp_echo_bug_remembers_first_client.py"),
            &["datagrams"][..],
        ),
        (
            "udp-echo",
            example("udp_echo_bug_recvfrom_1024.py"),
            &["datagrams", "large", "binary"][..],
        ),
    ];
    // Two at a time, like the echo bugs: load members are shaped so that a lossy relay
    // overflows even on a machine running at a third of its speed.
    let programs: Vec<(&str, String)> = cases.iter().map(|(lab, bug, _)| (*lab, bug.clone())).collect();
    for ((_, bug, caught_by), (run, failed, _)) in cases.iter().zip(check_two_at_a_time(&programs)) {
        run.expect_code(1);
        assert_eq!(&failed, caught_by, "{bug}:\n{}", run.stdout);
    }
}

/// The two-server lab needs a second port: a command without `{port2}` is told where it goes.
#[test]
fn a_two_server_command_without_its_second_port_is_told_where_it_goes() {
    let scratch = Scratch::new();
    let run = Run::from(
        scratch
            .labrun()
            .args(["check", "two-servers", "--", "python3", "two.py", "{port}"])
            .output()
            .expect("runs"),
    );
    run.expect_code(2).stderr_has("put {port2} in the command");
}

/// The client labs: the shipped clients pass, and each buggy client fails exactly the phase
/// written for its bug.
#[test]
fn the_client_labs_pass_correct_clients_and_name_each_bug() {
    for (lab, client, phases) in [
        ("echo-client", "echo_client.py", 3),
        ("chat-client", "chat_client.py", 1),
        ("choose-client", "choose_client.py", 1),
    ] {
        let (run, failed, took) = check(lab, &[&example(client)]);
        assert!(failed.is_empty(), "{client} failed {failed:?}:\n{}", run.stdout);
        let plural = if phases == 1 { "phase" } else { "phases" };
        run.expect_code(0)
            .stdout_has(&format!("PASS {lab}: {phases} of {phases} {plural} passed"));
        assert!(
            took < Duration::from_secs(30),
            "{client}: the battery took {took:?}"
        );
    }
    for (lab, client, caught_by) in [
        ("echo-client", "echo_client_bug_single_recv.py", "typed"),
        ("echo-client", "echo_client_bug_ignores_exit.py", "typed"),
        (
            "echo-client",
            "echo_client_bug_spins_on_close.py",
            "server-closes",
        ),
        ("echo-client", "echo_client_bug_crash_when_down.py", "server-down"),
        ("chat-client", "chat_client_bug_no_exit.py", "turns"),
        ("choose-client", "choose_client_bug_always_first.py", "choose"),
    ] {
        let (run, failed, _) = check(lab, &[&example(client)]);
        run.expect_code(1);
        assert_eq!(failed, [caught_by], "{client}:\n{}", run.stdout);
    }
}

/// `labrun grade --lab` grades folders with a lab's battery, a test per phase worth 10
/// points all or nothing; a suite's `lab` key does the same beside its own tests, with
/// `lab_points` per phase.
#[test]
fn a_lab_battery_grades_a_class_with_or_without_a_suite_file() {
    let scratch = Scratch::new();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let students: Vec<std::path::PathBuf> = ["alice", "carol", "grace"]
        .iter()
        .map(|name| root.join("tests/fixtures/submissions").join(name))
        .collect();
    let out = scratch.dir.path().join("by-lab");
    let run = Run::from(
        scratch
            .labrun()
            .timeout(Duration::from_secs(240))
            .args(["grade", "--lab", "echo-threaded", "-j", "2", "--out"])
            .arg(&out)
            .args(&students)
            .output()
            .expect("labrun runs"),
    );
    run.expect_code(0);
    let csv = std::fs::read_to_string(out.join("grades.csv")).expect("grades.csv");
    let header = "submission,text,large,utf8,binary,half-close,conversation,concurrent,resets,reset-in-sendall,children,total,max";
    assert!(csv.starts_with(header), "{csv}");
    // alice is correct; carol joins each client's thread (concurrent fails); grace reads one
    // recv(1024) per client (every echo phase fails; resets and concurrency with tiny
    // messages are none of her bug).
    assert!(
        csv.contains("\nalice,10,10,10,10,10,10,10,10,10,10,100,100,"),
        "{csv}"
    );
    assert!(
        csv.contains("\ncarol,10,10,10,10,10,10,0,10,10,10,90,100,"),
        "{csv}"
    );
    let grace = csv
        .lines()
        .find(|line| line.starts_with("grace,"))
        .expect("grace");
    assert!(grace.starts_with("grace,0,0,0,0,0,"), "{csv}");

    let suite = scratch.file(
        "suite.toml",
        &format!(
            "name = \"lab3\"\nlab = \"echo-threaded\"\nlab_points = 5\n\
             [submission]\ncommand = [\"python3\", \"{{file}}\", \"{{port}}\"]\nfiles = [\"server.py\"]\n\
             [[test]]\nname = \"echo\"\nscenario = \"{}\"\npoints = 10\n",
            root.join("tests/fixtures/suites/echo.toml").display()
        ),
    );
    let out = scratch.dir.path().join("by-suite");
    let run = Run::from(
        scratch
            .labrun()
            .timeout(Duration::from_secs(240))
            .arg("grade")
            .arg(&suite)
            .arg(&students[0])
            .arg("--out")
            .arg(&out)
            .output()
            .expect("labrun runs"),
    );
    run.expect_code(0);
    let csv = std::fs::read_to_string(out.join("grades.csv")).expect("grades.csv");
    assert!(csv.contains("\nalice,5,5,5,5,5,5,5,5,5,5,10,60,60,"), "{csv}");
    scratch.assert_nothing_left();
}
