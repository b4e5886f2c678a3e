//! Issue 18 item 5: lab 4 written as one program serving two ports (`process = "first"`,
//! `{port:NAME}`), and placeholders labrun would not substitute.

use serde_json::Value;

use crate::util::{Scratch, check, fixture, group, run_text};

/// Two servers, one program: `first` runs `program` with both ports, `second` is served by
/// its process; a client group aimed at each. `ready` and `clients` are TOML appended to
/// `first`'s table and to each group.
fn one_program(name: &str, program: &str, ready: &str, clients: &str) -> String {
    format!(
        "name = \"{name}\"\ntimeout = \"40s\"\n\n[[server]]\nname = \"first\"\n\
         command = [\"python3\", \"{program}\", \"{{port}}\", \"{{port:second}}\"]\n{ready}\n\n\
         [[server]]\nname = \"second\"\nprocess = \"first\"\n\n\
         [[clients]]\nname = \"to-first\"\nserver = \"first\"\n{clients}\n\n\
         [[clients]]\nname = \"to-second\"\nserver = \"second\"\n{clients}\n"
    )
}

#[test]
fn one_program_serving_two_ports_passes_with_both_ports_exercised() {
    let scenario = one_program(
        "one-program",
        &fixture("two_servers_selectors.py"),
        "",
        "count = 3\nmessages = 25\nsize = { min = 1, max = \"3KiB\" }\nthink = \"5ms\"",
    );
    let (code, report) = run_text(
        "one-program",
        &format!("{scenario}\n[expect]\necho = \"exact\"\nerrors = 0\nsurvives = true\n"),
    );
    assert_eq!(code, Some(0), "{:#}", report["checks"]);
    for name in ["to-first", "to-second"] {
        let figures = group(&report, name);
        assert_eq!(figures["messages"], 75, "{name}: {figures:#}");
        assert_eq!(figures["clients_completed"], 3, "{name}");
        assert!(
            figures["bytes_sent"].as_u64() > Some(0) && figures["bytes_sent"] == figures["bytes_received"],
            "{name}: {figures:#}"
        );
    }
    let servers = report["servers"].as_array().expect("servers");
    assert_eq!(servers[0]["pid"], servers[1]["pid"], "one process serves both");
    assert_ne!(servers[0]["address"], servers[1]["address"]);
    assert_eq!(servers[1]["process_of"], "first");
    assert_eq!(servers[0]["process_of"], Value::Null);
    assert_eq!(report["scenario"]["servers"][1]["launch"]["process"], "first");
    for name in [
        "server first",
        "server second",
        "survives first",
        "survives second",
    ] {
        assert_eq!(check(&report, name)["passed"], true, "{name}");
    }
}

#[test]
fn the_shipped_one_program_scenario_passes_on_the_threaded_example() {
    let scratch = Scratch::new();
    scratch
        .run_shipped("scenarios/python/two-servers-one-program.toml")
        .expect_code(0)
        .stdout_has("(pid ")
        .stdout_has(", the process of server first)")
        .stdout_has("PASS  server second");
    scratch.assert_nothing_left();
}

#[test]
fn a_program_that_never_opens_its_second_port_fails_readiness_naming_it() {
    let scratch = Scratch::new();
    let path = scratch.file(
        "second-never-starts.toml",
        &one_program(
            "second-never-starts",
            &fixture("two_servers_second_never_starts.py"),
            "ready = { timeout = \"2s\" }",
            "count = 1",
        ),
    );
    let run = scratch.run(&path);
    run.expect_code(3)
        .stderr_has("server `second`: nothing listens on 127.0.0.1:")
        .stderr_has("after 2s");
    scratch.assert_nothing_left();
    // The program printed the port it did open; the error must name exactly that one.
    let opened = run
        .stderr
        .split("Server 1 listening on port ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("the program's output is quoted: {}", run.stderr));
    run.stderr_has(&format!(
        "the program (started as server `first`) listens only on 127.0.0.1:{opened} (server `first`'s port)"
    ));
}

#[test]
fn a_shared_process_that_crashes_is_one_finding_and_is_torn_down_once() {
    let scenario = one_program(
        "shared-crash",
        &fixture("two_servers_dies_on_reset.py"),
        "",
        "count = 2\nmessages = 40\nthink = \"20ms\"",
    );
    // One client of `second` resets its connection after 3 messages: the program dies.
    let (code, report) = run_text(
        "shared-crash",
        &format!(
            "{scenario}\n[[clients]]\nname = \"aborter\"\nserver = \"second\"\nfaulty = 1\n\
             fault = {{ kind = \"abort\", after = 3 }}\n\n[expect]\nerrors = 100\necho = \"ignore\"\n"
        ),
    );
    assert_eq!(code, Some(1), "{:#}", report["checks"]);
    let exits: Vec<&Value> = report["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .filter(|f| f["class"] == "server-exit")
        .collect();
    assert_eq!(exits.len(), 1, "one process, one exit: {exits:#?}");
    assert_eq!(exits[0]["check"], "server first");
    assert!(
        exits[0]["text"]
            .as_str()
            .is_some_and(|t| t.contains("ConnectionResetError")),
        "{:#}",
        exits[0]
    );
    let second = check(&report, "server second");
    assert_eq!(second["passed"], false);
    assert!(
        second["summary"]
            .as_str()
            .is_some_and(|s| s.starts_with("served by server `first`'s process, which exited")),
        "{second:#}"
    );
}

#[test]
fn bad_placeholders_and_bad_process_are_located_errors() {
    let base = one_program("bad", "s.py", "", "count = 2");
    let cases = [
        // A typo in a placeholder, in the command and in the environment.
        (
            base.replace("{port:second}", "{prot:second}"),
            "6:42: `{prot:second}` is not a placeholder labrun substitutes",
        ),
        (
            base.replace(
                "[[server]]\nname = \"second\"",
                "env = { OTHER = \"{port:nosuch}\" }\n[[server]]\nname = \"second\"",
            ),
            "9:18: `{port:nosuch}`: no server named `nosuch`; servers in this scenario: `first`, `second`",
        ),
        (
            base.replace("process = \"first\"", "process = \"frist\""),
            "11:11: no server named `frist`",
        ),
        (
            base.replace("process = \"first\"", "process = \"second\""),
            "11:11: server `second` cannot be served by its own process",
        ),
        (
            base.replace(
                "process = \"first\"",
                "process = \"first\"\nstdin = { lines = [\"hi\"] }",
            ),
            "12:9: server `second` is served by server `first`'s process",
        ),
        (
            base.replace(", \"{port:second}\"", ""),
            "6:11: server `second` is served by this program (`process = \"first\"`) on an \
             automatic port, but nothing passes that port to it",
        ),
        (
            format!("{base}\n[[events]]\nat = \"1s\"\nkill = \"second\"\n"),
            "25:8: server `second` shares one process with server `first`",
        ),
    ];
    let scratch = Scratch::new();
    for (text, wanted) in cases {
        let path = scratch.file("bad.toml", &text);
        scratch
            .validate(&path)
            .expect_code(2)
            .stderr_has(&format!("bad.toml:{wanted}"));
    }
    // Client programs: the same scanner.
    let client = "name = \"c\"\n[[played_server]]\nname = \"echo\"\n[[client_program]]\nname = \"student\"\n\
                  command = [\"python3\", \"c.py\", \"{port:echo}\", \"{ports}\"]\n";
    let path = scratch.file("client.toml", client);
    scratch
        .validate(&path)
        .expect_code(2)
        .stderr_has("client.toml:6:47: `{ports}` is not a placeholder labrun substitutes");
    // Shell variables and format fields are not placeholders.
    let shell = base.replace(
        "\"python3\", \"s.py\", \"{port}\", \"{port:second}\"",
        "\"sh\", \"-c\", \"exec python3 s.py ${PORT} {port:second} '{}'\"",
    );
    let path = scratch.file("shell.toml", &shell);
    scratch.validate(&path).expect_code(0);
}

#[test]
fn a_suite_grades_one_program_serving_both_ports() {
    let scratch = Scratch::new();
    for (student, program) in [
        ("ann", "two_servers_selectors.py"),
        ("ben", "two_servers_second_never_starts.py"),
    ] {
        let folder = scratch.dir.path().join(student);
        std::fs::create_dir(&folder).expect("submission folder");
        std::fs::copy(fixture(program), folder.join("lab4.py")).expect("copy");
    }
    // The submission replaces `first`'s program; `second` (process = "first") keeps none.
    let scenario = format!(
        "{}/scenarios/python/two-servers-one-program.toml",
        env!("CARGO_MANIFEST_DIR")
    );
    let suite = scratch.file(
        "lab4.toml",
        &format!(
            "name = \"lab4\"\n[submission]\ncommand = [\"python3\", \"{{file}}\", \"{{port}}\", \"{{port:second}}\"]\n\
             files = [\"lab4.py\"]\ntimeout = \"40s\"\n[[test]]\nname = \"two-ports\"\nscenario = \"{scenario}\"\n\
             points = 10\npartial = false\n"
        ),
    );
    let out = scratch.dir.path().join("grades");
    let run = crate::util::Run::from(
        scratch
            .labrun()
            .arg("grade")
            .arg(&suite)
            .arg(scratch.dir.path().join("ann"))
            .arg(scratch.dir.path().join("ben"))
            .args(["-j", "2", "--out"])
            .arg(&out)
            .output()
            .expect("labrun runs"),
    );
    run.expect_code(0);
    scratch.assert_nothing_left();
    let grades = std::fs::read_to_string(out.join("grades.csv")).expect("grades.csv");
    assert!(grades.contains("\nann,10,10,10,"), "{grades}");
    assert!(grades.contains("\nben,0,0,10,"), "{grades}");
    let feedback = std::fs::read_to_string(out.join("feedback/ben.md")).expect("feedback");
    assert!(
        feedback.contains("server `second`: nothing listens on 127.0.0.1:"),
        "{feedback}"
    );
}
