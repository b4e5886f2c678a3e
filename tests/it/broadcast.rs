//! Lab 5, the broadcast chat room: every message to every other member exactly once, in
//! order; each buggy room is caught by the fault that names its bug.

use serde_json::Value;

use crate::util::{
    Scratch, check, example_server, python_server, read_report, run_text as run, shipped_with_example,
};

/// The shipped Python room scenario with `program` as the server, after `edit`.
fn python_room(program: &str, edit: impl Fn(String) -> String) -> String {
    edit(shipped_with_example(
        "scenarios/python/broadcast.toml",
        "broadcast_server.py",
        program,
    ))
}

fn fault_count(report: &Value, fault: &str) -> u64 {
    report["rooms"][0]["faults"][fault]["count"]
        .as_u64()
        .unwrap_or_else(|| panic!("no {fault} tally in {:#}", report["rooms"]))
}

/// Bytes the room's server added around messages (prefixes, newlines).
fn decoration_bytes(report: &Value) -> u64 {
    report["rooms"][0]["decoration_bytes"]
        .as_u64()
        .expect("decoration bytes")
}

/// The report's finding of `class`.
fn finding<'a>(report: &'a Value, class: &str) -> &'a Value {
    report["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .find(|f| f["class"] == class)
        .unwrap_or_else(|| panic!("no {class} finding in {:#}", report["findings"]))
}

fn fanout_passed(report: &Value) -> bool {
    check(report, "fanout")["passed"] == true
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
    let lost = finding(&report, "lost");
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
    // Start times fix the server's list: [leavers..., quiet, talkers...]. The leavers leave
    // while the talkers talk; when the last of them is pruned, the loop skips the member
    // after it, `quiet`, which sends nothing then and so always misses that message.
    let root = env!("CARGO_MANIFEST_DIR");
    let scenario = format!(
        "name = \"prune\"\ntimeout = \"60s\"\n[[server]]\nname = \"room\"\n\
         command = [\"python3\", \"{root}/examples/broadcast_bug_prunes_while_iterating.py\", \"{{port}}\"]\n\
         [[clients]]\nname = \"leavers\"\ncount = 4\nworkload = \"broadcast\"\nmessages = 30\nleave_after = 12\n\
         think = \"30ms\"\n\
         [[clients]]\nname = \"quiet\"\ncount = 1\nworkload = \"broadcast\"\nmessages = 1\nstart_after = \"100ms\"\n\
         [[clients]]\nname = \"talkers\"\ncount = 6\nworkload = \"broadcast\"\nmessages = 40\nthink = \"20ms\"\n\
         start_after = \"200ms\"\ntimeout = \"2s\"\n"
    );
    let (code, report) = run("prune", &scenario);
    assert_eq!(code, Some(1), "{:#}", report["checks"]);
    assert!(fault_count(&report, "lost") > 0);
    assert_eq!(fault_count(&report, "duplicated"), 0);
    let examples = report["rooms"][0]["faults"]["lost"]["examples"].to_string();
    assert!(examples.contains("quiet#1 never read message"), "{examples}");
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
    assert!(decoration_bytes(&report) > 0);
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

/// `scenarios/broadcast-load.toml` with its one `builtin = "broadcast"` line replaced by
/// `server` (a `command` and its `port`), as a TA tests a student's relay.
fn load_room(server: &str) -> String {
    let shipped = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/scenarios/broadcast-load.toml"
    ))
    .expect("shipped scenario");
    assert_eq!(shipped.matches("[[server]]").count(), 1);
    assert_eq!(shipped.matches("\nbuiltin = \"broadcast\"\n").count(), 1);
    shipped.replace("\nbuiltin = \"broadcast\"\n", &format!("\n{server}\n"))
}

/// The room's load figures: pauses taken and the most the relay held for one receiver.
fn load_figures(report: &Value) -> (u64, u64) {
    let load = &report["rooms"][0]["load"];
    (
        load["pauses"]
            .as_u64()
            .unwrap_or_else(|| panic!("no load figures in {load:#}")),
        load["largest_backlog_bytes"].as_u64().expect("largest backlog"),
    )
}

#[test]
fn the_builtin_room_passes_under_load_with_a_paused_receivers_buffers_full() {
    let scratch = Scratch::new();
    scratch
        .run_shipped("scenarios/broadcast-load.toml")
        .expect_code(0)
        .stdout_has("each exactly once to every other member, in order")
        .stdout_has("under load:");
    scratch.assert_nothing_left();
    let report = read_report(&scratch.reports().join("broadcast-load.json"));
    let (pauses, backlog) = load_figures(&report);
    assert!(pauses >= 1, "{:#}", report["rooms"]);
    // The built-in room blocks in write_all() once a paused member's buffers are full: the
    // kernel held over half a megabyte for it by then (load members ask for Ethernet's
    // segments, which keeps a relay's send buffer near 800 KiB).
    assert!(backlog >= 512 * 1024, "{:#}", report["rooms"]);
    // Every member of the four paused at least once.
    assert!(pauses >= 4, "{:#}", report["rooms"]);
    assert_eq!(report["rooms"][0]["owed"], report["rooms"][0]["delivered"]);
}

/// Runs a correct relay under load and returns its report, asserting that it passed.
fn passes_under_load(server: &str) -> Value {
    let (code, report) = run("broadcast-load", &load_room(server));
    assert_eq!(code, Some(0), "{:#}", report["checks"]);
    assert!(fanout_passed(&report));
    assert_eq!(fault_count(&report, "lost"), 0);
    let (pauses, backlog) = load_figures(&report);
    assert!(pauses >= 1 && backlog > 0, "{:#}", report["rooms"]);
    report
}

#[test]
fn a_thread_per_client_room_with_sendall_passes_under_load() {
    passes_under_load(&example_server("broadcast_server.py"));
}

#[test]
fn a_selectors_room_with_per_client_queues_passes_under_load() {
    passes_under_load(&python_server("broadcast_selectors_queues.py"));
}

#[test]
fn a_room_that_prefixes_every_chunk_passes_under_load() {
    let report = passes_under_load(&python_server("broadcast_threads_prefixed.py"));
    assert!(decoration_bytes(&report) > 0);
}

#[test]
fn a_select_room_that_ignores_short_sends_passes_paced_and_loses_messages_under_load() {
    let lossy = "broadcast_bug_ignores_short_send.py";
    // The hole: paced, no receiver ever falls behind, and the lossy room passes.
    let (code, report) = run("python-broadcast", &python_room(lossy, |s| s));
    assert_eq!(code, Some(0), "{:#}", report["checks"]);

    let (code, report) = run("broadcast-load", &load_room(&example_server(lossy)));
    assert_eq!(code, Some(1), "{:#}", report["checks"]);
    assert!(fault_count(&report, "lost") > 0);
    let lost = finding(&report, "lost");
    let text = lost["text"].as_str().expect("text");
    // Each loss names its receiver, the message and its sender.
    let named = regex::Regex::new(r"\nmembers#[1-4] never read message [1-9][0-9]* of members#[1-4]")
        .expect("pattern");
    assert!(named.is_match(text), "{lost:#}");
    assert!(
        lost["hint"].as_str().expect("hint").contains("BlockingIOError"),
        "{lost:#}"
    );
}
