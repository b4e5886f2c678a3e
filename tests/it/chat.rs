//! Lab 2, the turn-by-turn chat: labrun types the operator's lines at the server and checks
//! every reply, in turn, against them.

use serde_json::Value;

use crate::util::{Scratch, read_report, run_text, shipped_with_example};

fn finding_classes(report: &Value) -> Vec<String> {
    report["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .filter(|f| f["check"] == "chat")
        .map(|f| f["class"].as_str().expect("class").to_owned())
        .collect()
}

/// Runs the shipped Python chat scenario with `program` in place of the correct server.
fn run_python_chat(program: &str) -> (Option<i32>, Value) {
    run_text(
        "python-chat",
        &shipped_with_example("scenarios/python/chat.toml", "chat_server.py", program),
    )
}

/// The built-in server ends with its one chat, as it may; the lab's Python one goes back
/// to accept() for the next client.
#[test]
fn the_builtin_and_the_python_chat_server_pass() {
    for (scenario, report_name, server_end) in [
        (
            "scenarios/chat.toml",
            "chat",
            "exited with status 0 after its clients, as allowed",
        ),
        (
            "scenarios/python/chat.toml",
            "python-chat",
            "stayed up (it was allowed to exit)",
        ),
    ] {
        let scratch = Scratch::new();
        scratch
            .run_shipped(scenario)
            .expect_code(0)
            .stdout_has("PASS  chat")
            .stdout_has("4 turn(s) in 1 chat(s) answered with the operator's lines, in order")
            .stdout_has(server_end);
        scratch.assert_nothing_left();
        let report = read_report(&scratch.reports().join(format!("{report_name}.json")));
        assert_eq!(report["total"]["messages"], 4);
    }
}

#[test]
fn a_lagging_server_is_named_lagging() {
    let (code, report) = run_python_chat("chat_bug_lagging_reply.py");
    assert_eq!(code, Some(1));
    let classes = finding_classes(&report);
    assert_eq!(
        classes,
        ["no-reply", "lagging", "lagging", "lagging"],
        "{:#}",
        report["findings"]
    );
    let second = report["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .find(|f| f["message"] == 2)
        .expect("a finding for message 2");
    assert_eq!(
        second["text"],
        "lagging: the reply to message 2 is the operator's line 1, meant for message 1"
    );
}

#[test]
fn a_server_that_ignores_exit_is_caught() {
    let (code, report) = run_python_chat("chat_bug_ignores_exit.py");
    assert_eq!(code, Some(1));
    assert_eq!(finding_classes(&report), ["kept-open"]);
}

#[test]
fn a_message_longer_than_one_recv_is_answered_twice() {
    let scratch = Scratch::new();
    let path = scratch.file(
        "long.toml",
        "name = \"long\"\n[[server]]\nname = \"chat\"\nbuiltin = \"chat-stdin\"\nexits = \"after-clients\"\n\
         stdin = { reply = \"reply {n}\" }\n[[clients]]\nname = \"c\"\nworkload = \"chat\"\nmessages = 2\n\
         size = 2000\ntimeout = \"1s\"\n",
    );
    scratch.run(&path).expect_code(1);
    scratch.assert_nothing_left();
    let report = read_report(&scratch.reports().join("long.json"));
    let findings = report["findings"].as_array().expect("findings");
    let unsolicited = findings
        .iter()
        .find(|f| f["class"] == "unsolicited")
        .unwrap_or_else(|| panic!("no unsolicited finding in {findings:#?}"));
    // The 2000-byte message was read as two turns: the second reply is the operator's line 2.
    assert!(
        unsolicited["text"]
            .as_str()
            .expect("text")
            .ends_with("\"reply 2\""),
        "{unsolicited:#}"
    );
}
