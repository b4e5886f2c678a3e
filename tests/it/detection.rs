//! Issue 18: verdicts that hold on the programs students really write. Bugs a thorough
//! checker catches are caught; correct servers written the usual ways are never failed.

use crate::util::{Scratch, check, echo_scenario, fixture, read_report};

/// Runs a one-group echo scenario against `server` and returns the exit code and report.
fn run_echo(name: &str, server: &str, clients: &str) -> (Option<i32>, serde_json::Value) {
    let scratch = Scratch::new();
    let path = scratch.file(&format!("{name}.toml"), &echo_scenario(name, server, clients, ""));
    let outcome = scratch.run(&path);
    scratch.assert_nothing_left();
    (
        outcome.code,
        read_report(&scratch.reports().join(format!("{name}.json"))),
    )
}

/// Item 3: every payload kind holds every character it claims, so a server that mangles one
/// of them fails even with small default-sized messages.
#[test]
fn issue_18_every_payload_kind_catches_a_server_that_changes_one_character() {
    let cases = [
        ("ascii", b'q', b'Q'),
        ("utf8", b'q', b'Q'),
        ("utf8", b'~', b'-'),
        ("utf8", b'7', b'1'),
        ("binary", 0x00, 0x20),
        ("binary", 0xff, 0xfe),
    ];
    for (payload, old, new) in cases {
        let server = format!(
            "command = [\"python3\", \"{}\", \"{{port}}\", \"{old}\", \"{new}\"]",
            fixture("mangles_one_byte.py")
        );
        let clients = format!("count = 2\nmessages = 20\npayload = \"{payload}\"");
        let (code, report) = run_echo("mangled", &server, &clients);
        assert_eq!(
            code,
            Some(1),
            "{payload} payload, byte {old} -> {new}: {:#}",
            report["checks"]
        );
        let echo = check(&report, "echo");
        assert_eq!(echo["passed"], false, "{payload}: {echo:#}");
        let classes: Vec<&str> = report["findings"]
            .as_array()
            .expect("findings")
            .iter()
            .filter(|f| f["check"] == "echo")
            .filter_map(|f| f["class"].as_str())
            .collect();
        assert!(
            classes.iter().all(|c| *c == "corrupted"),
            "{payload}: {classes:?}"
        );
    }
}
