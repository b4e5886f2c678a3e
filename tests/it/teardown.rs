//! Servers are torn down on every path: success, failed start, Ctrl-C, panic, hostile forks.

use std::time::{Duration, Instant};

use crate::util::{Run, Scratch, echo_scenario, python_server, read_report};

#[test]
fn a_server_that_crashes_at_start_exits_3_with_its_traceback() {
    let scratch = Scratch::new();
    let path = scratch.file(
        "crash.toml",
        &echo_scenario("crash", &python_server("crash_at_start.py"), "", ""),
    );
    scratch
        .run(&path)
        .expect_code(3)
        .stderr_has("server `srv` exited with status 1 before accepting connections")
        .stderr_has("AttributeError")
        .stderr_has("listne");
    scratch.assert_nothing_left();
}

#[test]
fn a_missing_program_exits_3() {
    let scratch = Scratch::new();
    let server = "command = [\"definitely-not-a-program-xyz\", \"{port}\"]";
    let path = scratch.file("nope.toml", &echo_scenario("nope", server, "", ""));
    scratch
        .run(&path)
        .expect_code(3)
        .stderr_has("cannot start server `srv`: `definitely-not-a-program-xyz`");
}

#[test]
fn a_server_that_never_listens_exits_3_after_its_ready_timeout() {
    let scratch = Scratch::new();
    let server = "command = [\"python3\", \"-c\", \"import time, sys; print('booting', flush=True); time.sleep(60)\", \"{port}\"]\nready = { timeout = \"700ms\" }";
    let path = scratch.file("slow.toml", &echo_scenario("slow", server, "", ""));
    scratch
        .run(&path)
        .expect_code(3)
        .stderr_has("did not listen on 127.0.0.1:")
        .stderr_has("within 700ms")
        .stderr_has("| booting");
    scratch.assert_nothing_left();
}

#[test]
fn a_fixed_port_in_use_exits_3() {
    let holder = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = holder.local_addr().expect("addr").port();
    let scratch = Scratch::new();
    let server = format!("builtin = \"echo-async\"\nport = {port}");
    let path = scratch.file("busy.toml", &echo_scenario("busy", &server, "", ""));
    scratch
        .run(&path)
        .expect_code(3)
        .stderr_has(&format!("port {port} on 127.0.0.1 is already in use"));
}

#[test]
fn children_that_ignore_sigterm_are_killed_with_the_group() {
    let scratch = Scratch::new();
    let path = scratch.file(
        "stub.toml",
        &echo_scenario("stub", &python_server("stubborn_fork.py"), "count = 2", ""),
    );
    scratch.run(&path).expect_code(0);
    let report = read_report(&scratch.reports().join("stub.json"));
    assert_eq!(
        report["servers"][0]["teardown"], "killed",
        "SIGTERM was ignored, so SIGKILL was needed"
    );
    scratch.assert_nothing_left();
}

#[test]
fn a_panic_still_tears_the_servers_down() {
    let scratch = Scratch::new();
    let path = scratch.file(
        "panic.toml",
        &echo_scenario("panic", &python_server("echo_threads.py"), "", ""),
    );
    let run = Run::from(
        scratch
            .labrun()
            .env(labrun::PANIC_INJECTION_VARIABLE, "after-ready")
            .arg(&path)
            .arg("--out")
            .arg(scratch.reports())
            .output()
            .expect("runs"),
    );
    run.expect_code(3)
        .stderr_has("injected panic")
        .stderr_has("internal error");
    scratch.assert_nothing_left();
}

#[test]
fn ctrl_c_stops_the_run_reports_partial_results_and_exits_130() {
    let scratch = Scratch::new();
    let clients = "count = 3\nmessages = 100000\nthink = \"10ms\"";
    let path = scratch.file(
        "long.toml",
        &echo_scenario("long", &python_server("echo_threads.py"), clients, ""),
    );
    let child = scratch.spawn(&path);
    // Wait until the server (it carries the marker) has accepted a client: it then holds a
    // socket besides its listener. A fixed pause after it appeared was too short on a loaded
    // machine, where Ctrl-C could land before the first echo and leave nothing partial.
    let labrun = child.id();
    let serving = || {
        scratch
            .survivors()
            .into_iter()
            .filter(|&pid| pid != labrun)
            .any(|pid| {
                std::fs::read_dir(format!("/proc/{pid}/fd"))
                    .into_iter()
                    .flatten()
                    .filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok())
                    .filter(|target| target.to_string_lossy().starts_with("socket:"))
                    .count()
                    >= 2
            })
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while !serving() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(500));
    let run = crate::util::ctrl_c(child);
    run.expect_code(130)
        .stdout_has("INTERRUPTED long")
        .stdout_has("partial");
    let report = read_report(&scratch.reports().join("long.json"));
    assert_eq!(report["complete"], false);
    assert_eq!(report["outcome"], "interrupted");
    assert!(
        report["total"]["messages"].as_u64().unwrap() > 0,
        "partial figures are kept"
    );
    scratch.assert_nothing_left();
}

#[test]
fn a_server_on_the_wrong_port_is_told_where_it_listens() {
    let scratch = Scratch::new();
    let server = format!(
        "{}\nready = {{ timeout = \"1s\" }}",
        python_server("wrong_port.py")
    );
    let path = scratch.file("wrong.toml", &echo_scenario("wrong", &server, "", ""));
    let run = scratch.run(&path);
    run.expect_code(3)
        .stderr_has("instead: it seems to hard-code its port");
    let (_, printed) = run
        .stderr
        .split_once("but listening on ")
        .expect("the server's output is shown");
    let actual: u16 = printed.split_whitespace().next().unwrap().parse().unwrap();
    run.stderr_has(&format!("it listens on 127.0.0.1:{actual} instead"));
    scratch.assert_nothing_left();
}

#[test]
fn a_daemonized_helper_in_its_own_session_is_killed_too() {
    let scratch = Scratch::new();
    let path = scratch.file(
        "daemon.toml",
        &echo_scenario("daemon", &python_server("daemonizes.py"), "count = 2", ""),
    );
    scratch.run(&path).expect_code(0);
    scratch.assert_nothing_left();
}

/// A program whose parent exits at once fails to start (exit 3), and the daemon it forked into
/// a session of its own is swept up too, though no server ever ran.
#[test]
fn a_daemon_left_by_a_program_that_failed_to_start_is_killed() {
    let scratch = Scratch::new();
    let path = scratch.file(
        "gone.toml",
        &echo_scenario(
            "gone",
            &python_server("daemonizes_then_parent_exits.py"),
            "count = 1",
            "",
        ),
    );
    scratch
        .run(&path)
        .expect_code(3)
        .stderr_has("exited with status 0 before accepting connections");
    scratch.assert_nothing_left();
}

#[test]
fn a_server_that_leaves_its_process_group_cannot_hang_teardown() {
    let scratch = Scratch::new();
    let path = scratch.file(
        "leave.toml",
        &echo_scenario("leave", &python_server("leaves_its_group.py"), "count = 3", ""),
    );
    scratch.run(&path).expect_code(0);
    scratch.assert_nothing_left();
}

#[test]
fn a_listener_handed_to_a_new_session_is_seen_and_killed() {
    let scratch = Scratch::new();
    let path = scratch.file(
        "escape.toml",
        &echo_scenario(
            "escape",
            &python_server("escapes_with_listener.py"),
            "count = 3",
            "",
        ),
    );
    scratch.run(&path).expect_code(0);
    scratch.assert_nothing_left();
}

#[test]
fn resource_limits_stop_a_cpu_hog_and_a_memory_hog() {
    use crate::util::{check, run_text};
    let clients = "count = 1\nmessages = 40\nthink = \"100ms\"\ntimeout = \"2s\"";
    let cpu = format!("{}\nlimits = {{ cpu = \"1s\" }}", python_server("cpu_hog.py"));
    let (code, report) = run_text("cpuhog", &echo_scenario("cpuhog", &cpu, clients, ""));
    assert_eq!(code, Some(1));
    let server = check(&report, "server srv");
    assert!(
        server["summary"].as_str().expect("summary").contains("SIGXCPU"),
        "{server:#}"
    );

    let memory = format!(
        "{}\nlimits = {{ memory = \"300MiB\" }}",
        python_server("memory_hog.py")
    );
    let (code, report) = run_text(
        "memhog",
        &echo_scenario("memhog", &memory, "count = 1\nmessages = 10", ""),
    );
    assert_eq!(code, Some(1));
    let findings = report["findings"].to_string();
    assert!(findings.contains("MemoryError"), "{findings}");
}
