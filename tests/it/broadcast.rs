//! Lab 5, the broadcast chat room: every message to every other member exactly once, in
//! order; each buggy room is caught by the fault that names its bug.

use serde_json::Value;

use crate::util::{Scratch, python_server, read_report};

/// Runs `scenario` and returns its exit code and report, checking nothing outlived it.
fn run(name: &str, scenario: &str) -> (Option<i32>, Value) {
    let scratch = Scratch::new();
    let path = scratch.file(&format!("{name}.toml"), scenario);
    let outcome = scratch.run(&path);
    scratch.assert_nothing_left();
    (
        outcome.code,
        read_report(&scratch.reports().join(format!("{name}.json"))),
    )
}

/// The shipped Python room scenario with `program` as the server, after `edit`.
fn python_room(program: &str, edit: impl Fn(String) -> String) -> String {
    let root = env!("CARGO_MANIFEST_DIR");
    let shipped =
        std::fs::read_to_string(format!("{root}/scenarios/python/broadcast.toml")).expect("scenario");
    let scenario = shipped.replace(
        "examples/broadcast_server.py",
        &format!("{root}/examples/{program}"),
    );
    assert_ne!(scenario, shipped);
    edit(scenario)
}

fn fault_count(report: &Value, fault: &str) -> u64 {
    report["rooms"][0]["faults"][fault]["count"]
        .as_u64()
        .unwrap_or_else(|| panic!("no {fault} tally in {:#}", report["rooms"]))
}

fn fanout_passed(report: &Value) -> bool {
    report["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .any(|c| c["name"] == "fanout" && c["passed"] == true)
}

#[test]
fn fifty_members_verify_all_245000_deliveries_on_the_builtin_room() {
    let scratch = Scratch::new();
    scratch
        .run_shipped("scenarios/broadcast.toml")
        .expect_code(0)
        .stdout_has("245,000 deliveries of 5,000 messages, each exactly once to every other member")
        .stdout_has("fan-out: send to each receiver");
    scratch.assert_nothing_left();
    let report = read_report(&scratch.reports().join("broadcast.json"));
    let room = &report["rooms"][0];
    assert_eq!(room["owed"], 245_000);
    assert_eq!(room["delivered"], 245_000);
    assert_eq!(report["total"]["latency"]["fanout"]["count"], 245_000);
}

#[test]
fn the_python_room_passes_with_members_leaving_and_joining_late() {
    let (code, report) = run("python-broadcast", &python_room("broadcast_server.py", |s| s));
    assert_eq!(code, Some(0), "{:#}", report["checks"]);
    assert_eq!(report["rooms"][0]["joined"], 16);
    assert!(fanout_passed(&report));
}

#[test]
fn relaying_to_the_sender_is_caught_unless_the_lab_asks_for_it() {
    let (code, report) = run(
        "python-broadcast",
        &python_room("broadcast_bug_echo_to_sender.py", |s| s),
    );
    assert_eq!(code, Some(1));
    assert!(fault_count(&report, "to_sender") > 0);
    assert_eq!(fault_count(&report, "lost"), 0);

    let everyone = |s: String| {
        s.replace(
            "workload = \"broadcast\"",
            "workload = \"broadcast\"\ninclude_sender = true",
        )
    };
    let (code, report) = run(
        "python-broadcast",
        &python_room("broadcast_bug_echo_to_sender.py", everyone),
    );
    assert_eq!(code, Some(0), "{:#}", report["checks"]);
    // And the correct room, which never echoes, now fails: senders miss their own messages.
    let (code, report) = run("python-broadcast", &python_room("broadcast_server.py", everyone));
    assert_eq!(code, Some(1));
    assert!(fault_count(&report, "not_to_sender") > 0);
}

#[test]
fn a_room_that_keeps_dead_clients_loses_messages() {
    let (code, report) = run(
        "python-broadcast",
        &python_room("broadcast_bug_keeps_dead_clients.py", |s| s),
    );
    assert_eq!(code, Some(1));
    assert!(fault_count(&report, "lost") > 0);
    let lost = report["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .find(|f| f["class"] == "lost")
        .expect("a lost finding");
    assert!(
        lost["text"]
            .as_str()
            .expect("text")
            .contains(" never read message "),
        "{lost:#}"
    );
}

#[test]
fn a_client_registered_twice_gets_duplicates() {
    let (code, report) = run(
        "python-broadcast",
        &python_room("broadcast_bug_registers_twice.py", |s| s),
    );
    assert_eq!(code, Some(1));
    assert!(fault_count(&report, "duplicated") > 0);
    assert_eq!(fault_count(&report, "lost"), 0);
}

#[test]
fn pruning_while_iterating_skips_a_member() {
    // The leavers connect first, so they head the server's list, and leave while the stayers
    // are still talking: pruning the last of them skips the stayer after it in the list,
    // which then misses that message.
    let root = env!("CARGO_MANIFEST_DIR");
    let scenario = format!(
        "name = \"prune\"\ntimeout = \"60s\"\n[[server]]\nname = \"room\"\n\
         command = [\"python3\", \"{root}/examples/broadcast_bug_prunes_while_iterating.py\", \"{{port}}\"]\n\
         [[clients]]\nname = \"leavers\"\ncount = 4\nworkload = \"broadcast\"\nmessages = 3\nleave_after = 3\nthink = \"10ms\"\n\
         [[clients]]\nname = \"stayers\"\ncount = 8\nworkload = \"broadcast\"\nmessages = 20\n\
         think = \"10ms\"\ntimeout = \"2s\"\n"
    );
    let (code, report) = run("prune", &scenario);
    assert_eq!(code, Some(1), "{:#}", report["checks"]);
    assert!(fault_count(&report, "lost") > 0);
    assert_eq!(fault_count(&report, "duplicated"), 0);
}

#[test]
fn an_asyncio_room_that_prefixes_every_chunk_passes() {
    let scenario = format!(
        "name = \"prefixed\"\n[[server]]\nname = \"room\"\n{}\n\
         [[clients]]\nname = \"m\"\ncount = 12\nworkload = \"broadcast\"\nmessages = 40\nsize = {{ min = 1, max = 900 }}\n",
        python_server("broadcast_asyncio_prefixed.py")
    );
    let (code, report) = run("prefixed", &scenario);
    assert_eq!(code, Some(0), "{:#}", report["checks"]);
    assert!(
        report["rooms"][0]["decoration_bytes"]
            .as_u64()
            .expect("decoration")
            > 0
    );
}

#[test]
fn a_lifo_outbox_reorders_messages() {
    let root = env!("CARGO_MANIFEST_DIR");
    // No think time: messages queue up in the outboxes, where a stack reverses them.
    let scenario = format!(
        "name = \"lifo\"\n[[server]]\nname = \"room\"\n\
         command = [\"python3\", \"{root}/examples/broadcast_bug_lifo_outbox.py\", \"{{port}}\"]\n\
         [[clients]]\nname = \"m\"\ncount = 10\nworkload = \"broadcast\"\nmessages = 50\nsize = {{ min = 10, max = 40 }}\n"
    );
    let (code, report) = run("lifo", &scenario);
    assert_eq!(code, Some(1));
    assert!(fault_count(&report, "out_of_order") > 0);
    assert_eq!(fault_count(&report, "lost"), 0);
}
