//! Servers labrun does not launch (`address = "host:port"`, `--target`): judged like any
//! other, and left running exactly as they were.

use std::time::{Duration, Instant};

use crate::util::{ByHand, MARKER, Run, Scratch, fixture, free_port, read_report};

/// A scenario whose only server is the one at `address`.
fn aimed_scenario(address: &str, extra_server_keys: &str, clients: &str, expect: &str) -> String {
    format!(
        "name = \"aimed\"\ntimeout = \"30s\"\n\n[[server]]\nname = \"echo\"\naddress = \"{address}\"\n\
         {extra_server_keys}\n\n[[clients]]\nname = \"c\"\n{clients}\n\n[expect]\n{expect}\n"
    )
}

/// A built-in started by hand is reached at its address, judged on echo, concurrency and
/// survival like a launched one, reported as addressed (no pid, not torn down), and left
/// running and serving.
#[test]
fn a_scenario_aimed_at_a_running_builtin_passes_and_leaves_it_running() {
    let scratch = Scratch::new();
    let mut server = ByHand::builtin("echo-threaded");
    let scenario = scratch.file(
        "aimed.toml",
        &aimed_scenario(
            &server.address(),
            "",
            "count = 20\nmessages = 20\nsize = { min = 1, max = 2000 }\nstart = \"together\"",
            "echo = \"exact\"\nerrors = 0\nconcurrency = \"concurrent\"\nsurvives = true",
        ),
    );
    let run = scratch.run(&scenario);
    run.expect_code(0)
        .stdout_has(&format!(
            "addressed as {}, not launched by labrun",
            server.address()
        ))
        .stdout_has(&format!("still answered at {} after the run", server.address()));
    let report = read_report(&scratch.reports().join("aimed.json"));
    let end = &report["servers"][0];
    assert_eq!(end["addressed"], server.address(), "{end}");
    assert!(end["pid"].is_null(), "{end}");
    assert_eq!(end["teardown"], "not-launched", "{end}");
    let verdict = report["concurrency"][0]["verdict"].as_str().unwrap_or_default();
    assert!(verdict.starts_with("concurrent"), "{verdict}");
    server.assert_untouched();
    scratch.assert_nothing_left();
}

/// The same for UDP: ready once a datagram comes back, every datagram judged.
#[test]
fn a_running_udp_server_is_reached_by_a_datagram() {
    let scratch = Scratch::new();
    let server = ByHand::builtin("udp-echo");
    let scenario = scratch.file(
        "aimed.toml",
        &aimed_scenario(
            &server.address(),
            "transport = \"udp\"",
            "count = 4\nmessages = 50\nsize = { min = 1, max = 4000 }",
            "echo = \"exact\"\nloss = \"<= 1%\"",
        ),
    );
    scratch.run(&scenario).expect_code(0).stdout_has("addressed as");
    drop(server);
    scratch.assert_nothing_left();
}

/// `--target` puts a running Python server in place of a shipped scenario's built-in, and
/// `labrun check --target` runs a lab battery against it, leaving out the phase that counts
/// processes it did not start; the program is untouched afterwards.
#[test]
fn target_swaps_a_shipped_scenarios_server_and_checks_a_running_one() {
    let scratch = Scratch::new();
    let mut server = ByHand::python("echo_threads.py");
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let target = format!("echo={}", server.address());
    let run = scratch.run_with(&root.join("scenarios/threaded.toml"), &["--target", &target]);
    run.expect_code(0).stdout_has("addressed as");
    server.assert_untouched();

    let checked = Run::from(
        scratch
            .labrun()
            .args(["check", "echo-threaded", "--quiet", "--no-report", "--target"])
            .arg(server.address())
            .output()
            .expect("labrun runs"),
    );
    checked
        .expect_code(0)
        .stdout_has("PASS echo-threaded: 9 of 9 phases passed, 1 not run against a running server (children)")
        .stderr_has("SKIP echo-threaded-children: server `server` is addressed");
    server.assert_untouched();
    scratch.assert_nothing_left();
}

/// Nothing at the address within the ready timeout is exit 3, naming the address and why.
#[test]
fn a_dead_address_is_exit_3_naming_it() {
    let scratch = Scratch::new();
    let address = format!("127.0.0.1:{}", free_port());
    let scenario = scratch.file(
        "dead.toml",
        &aimed_scenario(
            &address,
            "ready = { timeout = \"1s\" }",
            "count = 1\nmessages = 1",
            "errors = 0",
        ),
    );
    let started = Instant::now();
    scratch
        .run(&scenario)
        .expect_code(3)
        .stderr_has(&format!(
            "server `echo`: nothing answered at {address} (tcp) within 1s"
        ))
        .stderr_has("Connection refused");
    assert!(started.elapsed() < Duration::from_secs(10));
}

/// What needs a process labrun launched is refused where it is written, for a scenario's
/// `address` and for `--target` alike.
#[test]
fn what_needs_a_launched_process_is_refused_with_its_place() {
    let scratch = Scratch::new();
    let clients = "count = 1\nmessages = 2";
    let cases = [
        (
            aimed_scenario(
                "127.0.0.1:7000",
                "command = [\"python3\", \"s.py\", \"{port}\"]",
                clients,
                "errors = 0",
            ),
            "refused.toml:7:11: server `echo` is a running server labrun does not launch (`address`), so it cannot have `command`",
        ),
        (
            aimed_scenario(
                "127.0.0.1:7000",
                "stdin = { lines = [\"hi\"] }",
                clients,
                "errors = 0",
            ),
            "refused.toml:7:9: server `echo` is a running server labrun does not launch (`address`), so it cannot have `stdin`",
        ),
        (
            aimed_scenario("localhost", "", clients, "errors = 0"),
            "refused.toml:6:11: `localhost` has no port",
        ),
        (
            aimed_scenario("127.0.0.1:7000", "", clients, "errors = 0")
                + "\n[[events]]\nat = \"1s\"\nkill = \"echo\"\n",
            "refused.toml:17:1: server `echo` is addressed (127.0.0.1:7000), not launched by labrun, and labrun never stops",
        ),
        (
            aimed_scenario(
                "127.0.0.1:7000",
                "",
                "workload = \"chat\"\nmessages = [\"hi\"]",
                "errors = 0",
            ),
            "refused.toml:9:1: server `echo` is addressed (127.0.0.1:7000), not launched by labrun, so labrun cannot be its operator",
        ),
        (
            aimed_scenario("127.0.0.1:7000", "", clients, "errors = 0")
                .replace("name = \"c\"", "name = \"c\"\nserver = \"near\"")
                + "\n[[server]]\nname = \"near\"\ncommand = [\"python3\", \"proxy.py\", \"{port}\", \"{port:echo}\"]\n",
            "refused.toml:20:46: `{port:echo}` names a server labrun does not launch (it has an `address`)",
        ),
        (
            aimed_scenario("127.0.0.1:7000", "", clients, "errors = 0")
                .replace("name = \"echo\"", "name = \"ec=ho\""),
            "refused.toml:5:8: server name `ec=ho` must be one word without `=`",
        ),
        (
            format!(
                "sandbox = true\n{}",
                aimed_scenario("127.0.0.1:7000", "", clients, "errors = 0")
            ),
            "refused.toml:1:11: server `echo` is a running server at an `address`, which the sandbox's private network cannot reach",
        ),
    ];
    for (text, error) in cases {
        let scenario = scratch.file("refused.toml", &text);
        scratch.validate(&scenario).expect_code(2).stderr_has(error);
    }
    let chat = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/chat.toml");
    let aimed_chat = Run::from(
        scratch
            .labrun()
            .arg("run")
            .arg(&chat)
            .args(["--target", "127.0.0.1:7000", "--no-report"])
            .output()
            .expect("labrun runs"),
    );
    aimed_chat
        .expect_code(2)
        .stderr_has("so labrun cannot be its operator");
    let unknown = Run::from(
        scratch
            .labrun()
            .arg("run")
            .arg(chat)
            .args(["--target", "nosuch=127.0.0.1:7000", "--no-report"])
            .output()
            .expect("labrun runs"),
    );
    unknown.expect_code(2).stderr_has("has no server named `nosuch`");
}

/// Aiming that cannot mean what it says is refused before anything starts: a client-program
/// scenario has no server to aim, the sandbox's private network reaches no address, one
/// server aimed twice is ambiguous, and a port served by a program labrun still launches
/// cannot be elsewhere.
#[test]
fn aiming_that_cannot_hold_is_refused_before_anything_starts() {
    let scratch = Scratch::new();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let refused = |scenario: &std::path::Path, flags: &[&str], error: &str| {
        let run = Run::from(
            scratch
                .labrun()
                .arg("run")
                .arg(scenario)
                .args(flags)
                .arg("--no-report")
                .output()
                .expect("labrun runs"),
        );
        run.expect_code(2).stderr_has(error);
        assert!(
            !run.stdout.contains("PASS") && !run.stdout.contains("FAIL"),
            "nothing ran: {}",
            run.stdout
        );
    };
    refused(
        &root.join("scenarios/clients/echo.toml"),
        &["--target", "127.0.0.1:7000"],
        "tests client programs against servers labrun plays",
    );
    let aimed = scratch.file(
        "aimed.toml",
        &aimed_scenario("127.0.0.1:7000", "", "count = 1\nmessages = 1", "errors = 0"),
    );
    refused(
        &aimed,
        &["--sandbox"],
        "which the sandbox's private network cannot reach",
    );
    refused(
        &root.join("scenarios/threaded.toml"),
        &["--sandbox", "--target", "127.0.0.1:7000"],
        "which the sandbox's private network cannot reach",
    );
    refused(
        &root.join("scenarios/threaded.toml"),
        &[
            "--target",
            "echo=127.0.0.1:7000",
            "--target",
            "echo=127.0.0.1:7001",
        ],
        "aims server `echo` of",
    );
    refused(
        &root.join("scenarios/two-servers.toml"),
        &[
            "--target",
            "first=localhost:7000",
            "--target",
            "second=LocalHost:7000",
        ],
        "servers `first` and `second` would both be LocalHost:7000",
    );
    let twice = scratch.file(
        "twice.toml",
        "name = \"twice\"\n\n[[server]]\nname = \"a\"\naddress = \"127.0.0.1:7000\"\n\n\
         [[server]]\nname = \"b\"\naddress = \"127.0.0.1:7000\"\n\n\
         [[clients]]\nname = \"c\"\nserver = \"b\"\ncount = 1\nmessages = 1\n",
    );
    refused(
        &twice,
        &[],
        "twice.toml:7:1: servers `a` and `b` are both at 127.0.0.1:7000",
    );
    let checked = Run::from(
        scratch
            .labrun()
            .args([
                "check",
                "two-servers",
                "--no-report",
                "--target",
                "127.0.0.1:7000",
                "--target",
            ])
            .arg("127.0.0.1:7000")
            .output()
            .expect("labrun runs"),
    );
    checked.expect_code(2).stderr_has("would both be 127.0.0.1:7000");
    let one_program = scratch.file(
        "one-program.toml",
        "name = \"one-program\"\n\n[[server]]\nname = \"first\"\n\
         command = [\"python3\", \"s.py\", \"{port}\", \"{port:second}\"]\n\n\
         [[server]]\nname = \"second\"\nprocess = \"first\"\n\n\
         [[clients]]\nname = \"c\"\nserver = \"second\"\ncount = 1\nmessages = 1\n",
    );
    refused(
        &one_program,
        &["--target", "second=127.0.0.1:7000"],
        "server `second`'s port is served by server `first`'s program",
    );
    scratch.assert_nothing_left();
}

/// A server that is labrun's own child without labrun having started it (`server & exec
/// labrun …`, as a container entry script might do) is left alone: neither the final sweep
/// nor teardown signals it.
#[test]
fn a_server_labrun_inherited_as_a_child_outlives_the_run() {
    let scratch = Scratch::new();
    let port = free_port();
    let scenario = scratch.file(
        "aimed.toml",
        &aimed_scenario(
            &format!("127.0.0.1:{port}"),
            "",
            "count = 3\nmessages = 5",
            "echo = \"exact\"\nerrors = 0",
        ),
    );
    let pid_file = scratch.dir.path().join("server.pid");
    let script = format!(
        "env -u {MARKER} python3 \"$1\" {port} >/dev/null 2>&1 & echo $! > \"$2\"; exec \"$3\" run \"$4\" --out \"$5\""
    );
    let run = Run::from(
        std::process::Command::new("sh")
            .args(["-c", &script, "sh"])
            .arg(fixture("echo_threads.py"))
            .arg(&pid_file)
            .arg(assert_cmd::cargo::cargo_bin("labrun"))
            .arg(&scenario)
            .arg(scratch.reports())
            .env(MARKER, &scratch.marker)
            .env("CI", "true")
            .current_dir(scratch.dir.path())
            .output()
            .expect("sh runs"),
    );
    run.expect_code(0).stdout_has("addressed as");
    let pid: i32 = std::fs::read_to_string(&pid_file)
        .expect("pid file")
        .trim()
        .parse()
        .expect("a pid");
    let alive = std::path::Path::new(&format!("/proc/{pid}")).exists();
    let answers = std::net::TcpStream::connect(("127.0.0.1", port)).is_ok();
    let _ = std::process::Command::new("kill").arg(pid.to_string()).status();
    assert!(alive && answers, "the inherited server was stopped by labrun");
    scratch.assert_nothing_left();
}

/// A host name whose lookup never comes back (a resolver that does not answer) ends at the
/// ready timeout, exit 3, instead of when the system resolver gives up: labrun runs in a
/// mount namespace of its own whose `/etc/resolv.conf` names a silent nameserver.
#[test]
fn a_lookup_that_hangs_ends_at_the_ready_timeout() {
    let scratch = Scratch::new();
    let silent = std::net::UdpSocket::bind("127.0.0.53:53")
        .or_else(|_| std::net::UdpSocket::bind("127.0.0.54:53"))
        .expect("a silent nameserver");
    let nameserver = silent.local_addr().expect("address").ip();
    let resolv = scratch.file(
        "resolv.conf",
        &format!("nameserver {nameserver}\noptions timeout:30 attempts:1\n"),
    );
    let scenario = scratch.file(
        "lookup.toml",
        &aimed_scenario(
            "server.lab.invalid:7000",
            "ready = { timeout = \"1s\" }",
            "count = 1\nmessages = 1",
            "errors = 0",
        ),
    );
    let started = Instant::now();
    let run = Run::from(
        std::process::Command::new("unshare")
            .args(["--mount", "sh", "-c"])
            .arg("mount --bind \"$1\" /etc/resolv.conf && exec \"$2\" run \"$3\" --no-report")
            .arg("sh")
            .arg(&resolv)
            .arg(assert_cmd::cargo::cargo_bin("labrun"))
            .arg(&scenario)
            .env(MARKER, &scratch.marker)
            .env("CI", "true")
            .output()
            .expect("unshare runs"),
    );
    run.expect_code(3)
        .stderr_has("nothing answered at server.lab.invalid:7000 (tcp) within 1s: looking up `server.lab.invalid` took too long");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "labrun waited for the resolver: {:?}",
        started.elapsed()
    );
    scratch.assert_nothing_left();
}
