//! The `chat` check: every turn of every chat client answered with the operator's line.
//! What each kind of wrong turn is, and how to say it, is [`crate::wire::chat`]'s: the chat
//! driver names each turn as it happens, and this check gathers them.

use super::{Check, Evidence, Finding, Verdict, at_ms, client_name};
use crate::workload::ClientEnd;

/// The `chat` check: every turn of every chat client answered with the operator's line.
pub fn check(evidence: &Evidence, verdict: &mut Verdict) {
    let mut sessions = 0usize;
    let mut faulty = 0usize;
    let mut turns = 0u64;
    for record in evidence.records {
        let group = &evidence.under_test.groups[record.group];
        if group.workload != crate::scenario::WorkloadKind::Chat {
            continue;
        }
        sessions += 1;
        turns += u64::from(record.messages_completed);
        if let ClientEnd::ChatFault(issues) = &record.end {
            faulty += 1;
            for issue in issues {
                verdict.findings.push(Finding {
                    check: "chat".into(),
                    class: issue.class().into(),
                    client: Some(client_name(evidence.under_test, record)),
                    message: issue.turn(),
                    at_ms: at_ms(record),
                    text: issue.to_string(),
                    hint: issue.hint(),
                });
            }
        }
    }
    let summary = if faulty == 0 {
        format!("{turns} turn(s) in {sessions} chat(s) answered with the operator's lines, in order")
    } else {
        let first = verdict
            .findings
            .iter()
            .find(|f| f.check == "chat")
            .map_or_else(String::new, |f| format!("; first: {}", f.text));
        format!("{faulty} of {sessions} chat(s) went wrong{first}")
    };
    verdict.checks.push(Check {
        name: "chat".into(),
        passed: faulty == 0,
        summary,
    });
}
