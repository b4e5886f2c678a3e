//! The `fanout` check: a broadcast room's ledger, judged.
//!
//! Each kind of fault is one finding, with its count and the first occurrences in words
//! (a room of 50 that loses everything would otherwise bury the report in 245,000 lines).

use super::{Check, Evidence, Finding, Verdict, per_server};
use crate::scenario::FanoutExpectation;
use crate::units;
use crate::workload::room::{RoomOutcome, Tally};

/// Occurrences of one fault spelled out in its finding.
const EXAMPLES_SHOWN: usize = 5;

/// Judges every room.
pub fn check(evidence: &Evidence, verdict: &mut Verdict) {
    if evidence.plan.expect.fanout == FanoutExpectation::Ignore {
        return;
    }
    for room in evidence.rooms {
        let name = per_server("fanout", &room.server, evidence.under_test);
        let before = verdict.findings.len();
        if !room.not_joined.is_empty() {
            verdict.findings.push(Finding {
                check: name.clone(),
                class: "join".into(),
                client: None,
                message: None,
                at_ms: None,
                text: format!(
                    "{} of {} members never got into the room: {}",
                    room.not_joined.len(),
                    room.members,
                    room.not_joined.join("; ")
                ),
                hint: "every client's first message must reach every other client: keep all \
                       connected sockets in the list and relay each recv() to all of them",
            });
        }
        for (tally, class, what, hint) in fault_kinds(room) {
            if tally.count == 0 {
                continue;
            }
            let mut text = format!("{} {what}", units::count(tally.count));
            for example in tally.examples.iter().take(EXAMPLES_SHOWN) {
                text.push_str(&format!("\n{example}"));
            }
            if tally.count > EXAMPLES_SHOWN as u64 {
                text.push_str("\n…");
            }
            verdict
                .findings
                .push(Finding::whole_run(&name, class, text, hint));
        }
        let passed = verdict.findings.len() == before;
        verdict.checks.push(Check {
            name,
            passed,
            summary: summary(room, passed, evidence),
        });
    }
}

/// Each kind of delivery fault of `room`: its tally, class, what it means and its hint.
fn fault_kinds(room: &RoomOutcome) -> [(&Tally, &'static str, &'static str, &'static str); 8] {
    let faults = &room.faults;
    [
        (
            &faults.lost,
            "lost",
            "owed deliveries never happened",
            if room.load.is_some() {
                LOST_UNDER_LOAD_HINT
            } else {
                LOST_HINT
            },
        ),
        (
            &faults.duplicated,
            "duplicated",
            "messages were read twice",
            DUPLICATED_HINT,
        ),
        (
            &faults.to_sender,
            "to-sender",
            "messages went back to their sender",
            TO_SENDER_HINT,
        ),
        (
            &faults.not_to_sender,
            "not-to-sender",
            "messages did not go back to their sender (include_sender = true)",
            NOT_TO_SENDER_HINT,
        ),
        (
            &faults.replayed,
            "replayed",
            "messages reached a member that began to connect over a second after everyone \
             else had them",
            REPLAYED_HINT,
        ),
        (
            &faults.out_of_order,
            "out-of-order",
            "messages overtook an earlier one from the same sender",
            ORDER_HINT,
        ),
        (
            &faults.corrupted,
            "corrupted",
            "messages arrived with changed bytes",
            CORRUPTED_HINT,
        ),
        (
            &faults.garbled,
            "garbled",
            "runs of bytes were no message at all",
            GARBLED_HINT,
        ),
    ]
}

fn summary(room: &RoomOutcome, passed: bool, evidence: &Evidence) -> String {
    let to_whom = if room.include_sender {
        "every member, sender included"
    } else {
        "every other member"
    };
    let p99 = evidence
        .total
        .latency
        .fanout
        .quantile(0.99)
        .map_or_else(String::new, |p| format!(", fan-out p99 {}", units::duration(p)));
    let load = room.load.as_ref().map_or_else(String::new, |load| {
        format!(
            "; under load: {} pauses, {} of them with more waiting in the relay than the kernel \
             can buffer ({}); up to {} waiting for one receiver",
            load.pauses,
            load.full_pauses,
            units::bytes(load.target_bytes),
            units::bytes(load.largest_backlog_bytes)
        )
    });
    if passed {
        return format!(
            "{} deliveries of {} messages, each exactly once to {to_whom}, in order ({:.0} deliveries/s{p99}){load}",
            units::count(room.delivered),
            units::count(room.messages),
            room.deliveries_per_second
        );
    }
    let f = &room.faults;
    let parts: Vec<String> = [
        (f.lost.count, "lost"),
        (f.duplicated.count, "duplicated"),
        (f.to_sender.count, "back to sender"),
        (f.not_to_sender.count, "not back to sender"),
        (f.replayed.count, "replayed to latecomers"),
        (f.out_of_order.count, "out of order"),
        (f.corrupted.count, "corrupted"),
        (f.garbled.count, "garbled"),
    ]
    .iter()
    .filter(|(n, _)| *n > 0)
    .map(|(n, what)| format!("{} {what}", units::count(*n)))
    .collect();
    let joined = match room.not_joined.len() {
        0 => String::new(),
        n => format!("{n} never joined; "),
    };
    format!(
        "{joined}{} of {} owed deliveries happened; {}{load}",
        units::count(room.owed - f.lost.count.min(room.owed)),
        units::count(room.owed),
        if parts.is_empty() {
            "no other fault".to_owned()
        } else {
            parts.join(", ")
        }
    )
}

const LOST_HINT: &str = "a member missed messages: is every connected client in the list, and does one failing \
                         send (a client that left) stop the relay loop or skip the next client?";
const LOST_UNDER_LOAD_HINT: &str = "a member that read slowly missed messages: a non-blocking send() sends only \
                                    what fits and raises BlockingIOError when nothing does; keep the rest in a \
                                    per-client queue and send it when select() says the socket is writable, or \
                                    use blocking sockets and sendall()";
const DUPLICATED_HINT: &str =
    "a member got the same message twice: is a client in the list twice, or is a chunk relayed twice?";
const REPLAYED_HINT: &str = "a member that joins gets only what is said from then on: relay each message to \
                              the clients connected when it arrives, and keep no history to replay";
const TO_SENDER_HINT: &str = "a broadcast goes to every *other* client: skip the sender in the relay loop \
                              (or set include_sender = true if the lab asks for it)";
const NOT_TO_SENDER_HINT: &str =
    "this lab relays to everyone, the sender included, but the sender did not get its own message";
const ORDER_HINT: &str = "messages of one sender must arrive in the order sent: relaying each message from its \
                          own thread, or through an unordered queue, reorders them";
const CORRUPTED_HINT: &str =
    "relay the bytes recv() returned unchanged: no decode/encode per chunk, no strip()";
const GARBLED_HINT: &str = "the server cut messages or sent bytes nobody sent: relay each recv() whole, with \
                            sendall(), and never interleave two senders' bytes inside one send";
