//! Command-line behaviour that needs no server: validation errors, listing, `serve`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command as StdCommand, Stdio};

use crate::util::{Scratch, echo_scenario};

const VALID: &str = "builtin = \"echo-async\"";

#[test]
fn validate_accepts_every_shipped_scenario() {
    let scratch = Scratch::new();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let shipped: Vec<_> = std::fs::read_dir(root.join("scenarios"))
        .expect("scenarios folder")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    assert!(
        shipped.len() >= 3,
        "expected the three built-in scenarios, found {shipped:?}"
    );
    let run = scratch
        .labrun()
        .arg("validate")
        .args(&shipped)
        .output()
        .expect("runs");
    let run = crate::util::Run::from(run);
    run.expect_code(0).stdout_has("ok ");
    assert_eq!(run.stdout.lines().count(), shipped.len(), "{}", run.stdout);
}

#[test]
fn unknown_key_exits_2_with_location_and_suggestion() {
    let scratch = Scratch::new();
    let path = scratch.file("typo.toml", &echo_scenario("typo", VALID, "cout = 5", ""));
    let run = scratch.validate(&path);
    run.expect_code(2)
        .stderr_has(&format!("{}:10:1: unknown key `cout`", path.display()))
        .stderr_has("did you mean `count`?");
}

#[test]
fn wrong_type_exits_2_pointing_at_the_value() {
    let scratch = Scratch::new();
    let path = scratch.file(
        "type.toml",
        &echo_scenario("type", VALID, "count = \"fifty\"", ""),
    );
    let run = scratch.run(&path);
    run.expect_code(2)
        .stderr_has(&format!("{}:10:9:", path.display()));
    assert!(!scratch.reports().exists(), "nothing may run on bad input");
}

#[test]
fn missing_server_exits_2_naming_the_reference() {
    let scratch = Scratch::new();
    let path = scratch.file("ref.toml", &echo_scenario("ref", VALID, "server = \"nope\"", ""));
    let run = scratch.run(&path);
    run.expect_code(2)
        .stderr_has(&format!("{}:10:10: no server named `nope`", path.display()))
        .stderr_has("`srv`");
}

#[test]
fn bad_duration_and_missing_file_exit_2() {
    let scratch = Scratch::new();
    let path = scratch.file("dur.toml", &echo_scenario("dur", VALID, "think = 5", ""));
    scratch
        .run(&path)
        .expect_code(2)
        .stderr_has("a duration needs a unit");
    let missing = scratch.dir.path().join("absent.toml");
    scratch
        .run(&missing)
        .expect_code(2)
        .stderr_has("cannot read scenario");
}

#[test]
fn one_bad_file_stops_the_run_before_anything_starts() {
    let scratch = Scratch::new();
    let good = scratch.file("good.toml", &echo_scenario("good", VALID, "count = 1", ""));
    let bad = scratch.file("bad.toml", &echo_scenario("bad", VALID, "count = 0", ""));
    let run = crate::util::Run::from(
        scratch
            .labrun()
            .arg(&good)
            .arg(&bad)
            .arg("--out")
            .arg(scratch.reports())
            .output()
            .expect("runs"),
    );
    run.expect_code(2).stderr_has("`count` must be at least 1");
    assert!(!scratch.reports().exists());
}

#[test]
fn list_names_every_builtin_workload_and_fault() {
    let scratch = Scratch::new();
    let run = crate::util::Run::from(scratch.labrun().arg("list").output().expect("runs"));
    run.expect_code(0);
    for name in [
        "echo-iterative",
        "echo-threaded",
        "echo-async",
        "chat-stdin",
        "broadcast",
        "chat",
        "abort",
        "half-close",
        "garbage",
        "stall",
        "down",
    ] {
        run.stdout_has(&format!("  {name} "));
    }
}

#[test]
fn completions_cover_the_subcommands() {
    let scratch = Scratch::new();
    for shell in ["bash", "zsh", "fish"] {
        let run = crate::util::Run::from(
            scratch
                .labrun()
                .args(["completions", shell])
                .output()
                .expect("runs"),
        );
        run.expect_code(0)
            .stdout_has("compare")
            .stdout_has("merge")
            .stdout_has("validate");
    }
}

/// `labrun serve` is usable by hand: it announces its port and echoes what `nc` would send.
#[test]
fn serve_runs_a_builtin_standalone() {
    for builtin in ["echo-iterative", "echo-threaded", "echo-async"] {
        let mut server = StdCommand::new(assert_cmd::cargo::cargo_bin("labrun"))
            .args(["serve", builtin, "--port", "0"])
            .stdout(Stdio::piped())
            .spawn()
            .expect("serve starts");
        let mut banner = String::new();
        BufReader::new(server.stdout.take().expect("stdout"))
            .read_line(&mut banner)
            .expect("banner");
        let address = banner
            .trim()
            .rsplit(' ')
            .next()
            .expect("address in banner")
            .to_owned();
        let mut client = TcpStream::connect(&address).expect("connects");
        let message = vec![b'x'; 5000];
        client.write_all(&message).expect("sends");
        client.shutdown(std::net::Shutdown::Write).expect("half-close");
        let mut echoed = Vec::new();
        client.read_to_end(&mut echoed).expect("reads");
        server.kill().expect("kill");
        server.wait().expect("reap");
        assert!(
            banner.starts_with(&format!("{builtin} listening on 127.0.0.1:")),
            "{banner}"
        );
        assert_eq!(echoed, message, "{builtin} echoed wrongly");
    }
}

#[test]
fn latency_bounds_need_two_messages() {
    let scratch = Scratch::new();
    let path = scratch.file(
        "one.toml",
        &echo_scenario("one", VALID, "messages = 1", "latency = { p99 = \"5ms\" }"),
    );
    let run = scratch.validate(&path);
    run.expect_code(2)
        .stderr_has(&format!("{}:13:11:", path.display()))
        .stderr_has("send at least 2");
}

#[test]
fn more_clients_than_open_files_is_refused_up_front() {
    let scratch = Scratch::new();
    let path = scratch.file("many.toml", &echo_scenario("many", VALID, "count = 500", ""));
    let labrun = assert_cmd::cargo::cargo_bin("labrun");
    let output = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "ulimit -n 256 && exec \"{}\" run \"{}\" --no-report",
            labrun.display(),
            path.display()
        ))
        .output()
        .expect("sh runs");
    crate::util::Run::from(output)
        .expect_code(3)
        .stderr_has("opens 500 client sockets, but labrun may open only 256");
}

/// Errors in plain words at their place: a folder is said to be one, a number in quotes
/// is said to be text with the fix, and a zero timeout points at the timeout, not line 1.
#[test]
fn validation_errors_say_what_is_wrong_where_it_is() {
    let scratch = Scratch::new();
    let folder = scratch.dir.path().join("scenarios");
    std::fs::create_dir_all(&folder).expect("folder");
    scratch
        .validate(&folder)
        .expect_code(2)
        .stderr_has("is a folder, not a scenario file: give the files in it");
    let quoted = scratch.file(
        "quoted.toml",
        &echo_scenario("quoted", VALID, "count = \"5\"", ""),
    );
    scratch
        .validate(&quoted)
        .expect_code(2)
        .stderr_has("quoted.toml:10:9: expected a whole number, 0 or more, found the text \"5\" (write 5, without quotes)");
    let zero = scratch.file(
        "zero.toml",
        &echo_scenario("zero", VALID, "count = 1", "").replace("timeout = \"45s\"", "timeout = \"0s\""),
    );
    scratch
        .validate(&zero)
        .expect_code(2)
        .stderr_has("zero.toml:2:11: the scenario `timeout` must be longer than zero");
}

/// A scenario with five mistakes reports all five in one pass, each at its own line and
/// column, in file order, and none that fixing them would not leave.
#[test]
fn five_mistakes_are_reported_in_one_pass() {
    let scratch = Scratch::new();
    let path = scratch.file(
        "five.toml",
        "name = \"five\"\ntimeout = \"30 parsecs\"\n\n[[server]]\nname = \"echo\"\nbuiltin = \"echo-threadd\"\n\n\
         [[clients]]\nname = \"c\"\ncout = 5\nmessages = \"10\"\n\n[expect]\necho = \"exactly\"\n",
    );
    assert_located(
        &scratch.validate(&path),
        "five.toml",
        &[
            ("2:11", "`30 parsecs` is not a duration"),
            ("6:11", "`echo-threadd` is not a choice here"),
            ("10:1", "unknown key `cout`"),
            ("11:12", "found the text \"10\""),
            ("14:8", "`exactly` is not a choice here"),
        ],
    );
}

/// Mistakes that only show once the file is read (a group aimed at no server, a zero reply
/// timeout, a name that is not one word, two groups of one name) are reported together too,
/// each where it is.
#[test]
fn consistency_mistakes_of_every_group_are_reported_in_one_pass() {
    let scratch = Scratch::new();
    let path = scratch.file(
        "groups.toml",
        "name = \"groups\"\n\n[[server]]\nname = \"echo\"\nbuiltin = \"echo-threaded\"\n\n\
         [[clients]]\nname = \"two words\"\ncount = 1\n\n\
         [[clients]]\nname = \"fine\"\ncount = 1\n\n\
         [[clients]]\nname = \"lost\"\nserver = \"ehco\"\ncount = 1\n\n\
         [[clients]]\nname = \"hasty\"\ncount = 1\ntimeout = \"0s\"\n\n\
         [[clients]]\nname = \"fine\"\ncount = 2\n",
    );
    assert_located(
        &scratch.validate(&path),
        "groups.toml",
        &[
            ("8:8", "must be one word"),
            ("17:10", "ehco"),
            ("23:11", "zero reply `timeout`"),
            ("25:1", "two client groups are named `fine`"),
        ],
    );
}

/// `run` refused its file (exit 2) with exactly the `expected` problems, in order, each an
/// `error:` line at `FILE:LINE:COL: ` saying what it should.
fn assert_located(run: &crate::util::Run, file: &str, expected: &[(&str, &str)]) {
    run.expect_code(2);
    let located: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| l.starts_with("error: ") && l.contains(&format!("{file}:")))
        .collect();
    assert_eq!(located.len(), expected.len(), "{}", run.stderr);
    for (line, (place, what)) in located.iter().zip(expected) {
        let place = format!("{file}:{place}: ");
        assert!(
            line.contains(&place) && line.contains(what),
            "{line} is not {place}{what}"
        );
    }
}

/// `labrun validate` reads a grading suite as `labrun grade` would, scenarios and the
/// checks its tests name included, and lists what a scenario's runs can be checked on.
#[test]
fn validate_checks_suites_and_lists_checks() {
    let scratch = Scratch::new();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let good = root.join("tests/fixtures/suites/lab3.toml");
    let listed = crate::util::Run::from(
        scratch
            .labrun()
            .arg("validate")
            .arg(&good)
            .arg(root.join("scenarios/threaded.toml"))
            .output()
            .expect("runs"),
    );
    listed
        .expect_code(0)
        .stdout_has("suite `lab3`, 2 test(s): echo (10 points), concurrency (10 points)")
        .stdout_has("checks: echo, errors, latency rtt p99, concurrency, server echo, survives");
    let typo = scratch.file(
        "typo.toml",
        &format!(
            "name = \"s\"\n[submission]\ncommand = [\"python3\", \"{{file}}\", \"{{port}}\"]\nfiles = [\"server.py\"]\n\
             [[test]]\nname = \"echo\"\nscenario = \"{}\"\npoints = 10\nrequires = [\"ecoh\"]\n",
            root.join("tests/fixtures/suites/echo.toml").display()
        ),
    );
    scratch
        .validate(&typo)
        .expect_code(2)
        .stderr_has("test `echo`: `requires` names `ecoh`, which no run of its scenario has");
}
