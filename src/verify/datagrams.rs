//! The `datagrams` and `loss` checks of UDP echo clients.
//!
//! Truncated and corrupted echoes are wrong whatever the transport (an echo server must send
//! back what it got), so they fail `datagrams`; loss, duplication and reordering are what UDP
//! is allowed to do, so they are reported as rates and fail only a bound the scenario sets
//! (`expect.loss = "<= 1%"`).

use super::{Check, Evidence, Finding, Verdict, at_ms, client_name};
use crate::scenario::EchoExpectation;
use crate::units;
use crate::workload::DatagramTally;

/// Judges the UDP clients of the run, if there are any.
pub fn check(evidence: &Evidence, verdict: &mut Verdict) {
    let mut total = DatagramTally::default();
    let mut udp_clients = 0;
    for record in evidence.records {
        let Some(tally) = &record.datagrams else { continue };
        udp_clients += 1;
        total.add(tally);
        for example in &tally.examples {
            let truncated = example.contains("came back with") && example.contains(" of its ");
            verdict.findings.push(Finding {
                check: "datagrams".into(),
                class: if truncated { "truncated" } else { "corrupted" }.into(),
                client: Some(client_name(evidence.under_test, record)),
                message: None,
                at_ms: at_ms(record),
                text: example.clone(),
                hint: if truncated {
                    "the echo is a prefix of the datagram: recvfrom(1024) keeps only the first 1024 bytes \
                     of a larger datagram and drops the rest; read with a buffer of 65,507 bytes"
                } else {
                    "the server sent back other bytes than it received: send back exactly the bytes \
                     recvfrom() returned, to the address it returned"
                },
            });
        }
    }
    if udp_clients == 0 {
        return;
    }
    let share = |n: u64| 100.0 * n as f64 / total.sent.max(1) as f64;
    let summary = format!(
        "{} datagrams from {udp_clients} clients: {} echoed byte-exact, {} lost ({:.2}%), {} duplicated, \
         {} reordered, {} truncated, {} corrupted",
        units::count(total.sent),
        units::count(total.echoed),
        units::count(total.lost),
        share(total.lost),
        units::count(total.duplicated),
        units::count(total.reordered),
        units::count(total.truncated),
        units::count(total.corrupted),
    );
    let wrong = total.truncated + total.corrupted;
    verdict.checks.push(Check {
        name: "datagrams".into(),
        passed: wrong == 0 || evidence.plan.expect.echo == EchoExpectation::Ignore,
        summary,
    });
    if let Some(limit) = evidence.plan.expect.max_loss {
        let lost = total.lost as f64 / total.sent.max(1) as f64;
        verdict.checks.push(Check {
            name: "loss".into(),
            passed: lost <= limit,
            summary: format!(
                "{:.2}% of {} datagrams lost ({} {:.2}%)",
                lost * 100.0,
                units::count(total.sent),
                if lost <= limit { "≤" } else { ">" },
                limit * 100.0
            ),
        });
    }
}
