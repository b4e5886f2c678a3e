//! Iterative or concurrent: how many clients a server really served at the same time.
//!
//! Each client's *service interval* runs from its first reply to its last; its *presence*
//! runs from connecting until it closed (or gave up). The largest number of service
//! intervals overlapping at one instant, against the largest number of clients present at
//! one instant, gives the verdict. A client whose wait for its first reply spanned another
//! client's departure was *held*: the server served it only once someone left, which is
//! what an iterative server or a fixed pool does and a thread per client never does.
//!
//! Timing noise cannot turn a concurrent server into an iterative or bounded one here: both
//! verdicts need a client held for longer than any scheduling hiccup ([`LONG_WAIT`]). Scenarios that judge concurrency give their clients
//! think time, so service intervals last long enough to overlap unambiguously.
//!
//! Nor can the kernel: a client whose handshake the kernel left unfinished (its accept
//! queue was full, see `workload::pacer`) waited for a retransmission, not for the server,
//! and is never counted as held. And a server is called `bounded (k)` only when the probe
//! agrees: the run asks the probe to hold `k` silent connections, and a server that still
//! answers a new client then has no cap of `k` (see [`reconcile`]).

use std::fmt;
use std::time::Duration;

use serde::Serialize;

use super::{Check, Finding};
use crate::scenario::ConcurrencyExpectation;
use crate::workload::probe::ProbeOutcome;
use crate::workload::{ClientRecord, PacingFigures};

/// A wait this long that ended only after another client left is a queue, not noise.
pub const LONG_WAIT: Duration = Duration::from_millis(20);

/// What kind of server the timelines show.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConcurrencyVerdict {
    /// Clients never overlapped enough to tell.
    Undetermined,
    /// One client at a time.
    Iterative,
    /// This many clients at once, as many as wanted service (or no client waited for another).
    Concurrent(u32),
    /// At most this many at once while others waited for one of them to leave.
    Bounded(u32),
}

impl ConcurrencyVerdict {
    /// The verdict's kind without its count: a finding's class, so that a suite's advice can
    /// be meant for one kind (`concurrency.bounded`) and not another.
    pub fn kind(self) -> &'static str {
        match self {
            ConcurrencyVerdict::Undetermined => "undetermined",
            ConcurrencyVerdict::Iterative => "iterative",
            ConcurrencyVerdict::Concurrent(_) => "concurrent",
            ConcurrencyVerdict::Bounded(_) => "bounded",
        }
    }
}

impl fmt::Display for ConcurrencyVerdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConcurrencyVerdict::Undetermined => f.write_str("undetermined"),
            ConcurrencyVerdict::Iterative => f.write_str("iterative"),
            ConcurrencyVerdict::Concurrent(k) => write!(f, "concurrent ({k})"),
            ConcurrencyVerdict::Bounded(k) => write!(f, "bounded ({k})"),
        }
    }
}

impl Serialize for ConcurrencyVerdict {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// The overlap figures of the clients of one server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Overlap {
    /// Clients that connected.
    pub clients: u32,
    /// Most clients connected at one instant.
    pub connected_together: u32,
    /// Most clients in service at one instant.
    pub served_together: u32,
    /// Clients whose first reply came only after another client left.
    pub held: u32,
    /// Of those, the ones that waited at least [`LONG_WAIT`].
    pub held_long: u32,
    /// The longest wait of a held client, in microseconds.
    pub longest_held_wait_us: u64,
    /// What the figures add up to.
    pub verdict: ConcurrencyVerdict,
}

/// Measures the overlap of the given clients' timelines (all aimed at one server).
pub fn measure<'a>(records: impl IntoIterator<Item = &'a ClientRecord>) -> Overlap {
    let mut presence = Vec::new();
    let mut service = Vec::new();
    let mut waits = Vec::new();
    for record in records {
        let t = &record.timeline;
        let Some(connected) = t.connected else { continue };
        let departure = t.closed.or(t.last_reply).unwrap_or(connected);
        presence.push((connected, departure));
        if let Some(first_reply) = t.first_reply {
            service.push((first_reply, t.last_reply.unwrap_or(departure).max(first_reply)));
        }
        // The kernel, not the server, kept a stalled client waiting.
        if let Some(first_send) = t.first_send.filter(|_| !t.handshake_stalled) {
            // A client never served waited until it gave up.
            waits.push((presence.len() - 1, first_send, t.first_reply.unwrap_or(departure)));
        }
    }
    // Sorted, so that "did anyone else leave during this wait?" is two binary searches: a
    // run of 100,000 clients must not cost 10^10 comparisons.
    let mut departures: Vec<Duration> = presence.iter().map(|&(_, end)| end).collect();
    departures.sort_unstable();
    let (mut held, mut held_long, mut longest) = (0u32, 0u32, Duration::ZERO);
    for &(who, from, until) in &waits {
        let left_during =
            departures.partition_point(|&d| d <= until) - departures.partition_point(|&d| d <= from);
        let own = presence[who].1;
        let own_counted = usize::from(from < own && own <= until);
        let someone_left = left_during > own_counted;
        if someone_left {
            held += 1;
            let wait = until.saturating_sub(from);
            longest = longest.max(wait);
            if wait >= LONG_WAIT {
                held_long += 1;
            }
        }
    }
    let connected_together = most_at_once(&presence);
    let served_together = most_at_once(&service);
    let verdict = if connected_together < 2 || served_together == 0 {
        ConcurrencyVerdict::Undetermined
    } else if served_together == 1 {
        if held_long > 0 {
            ConcurrencyVerdict::Iterative
        } else {
            ConcurrencyVerdict::Undetermined
        }
    } else if served_together >= connected_together || held_long == 0 {
        ConcurrencyVerdict::Concurrent(served_together)
    } else {
        ConcurrencyVerdict::Bounded(served_together)
    };
    Overlap {
        clients: presence.len() as u32,
        connected_together,
        served_together,
        held,
        held_long,
        longest_held_wait_us: longest.as_micros() as u64,
        verdict,
    }
}

/// Everything known about one server's concurrency: the overlap of its clients and, when
/// the scenario expects a kind of server, the probe's answer.
#[derive(Debug, Clone, Serialize)]
pub struct ServerConcurrency {
    pub server: String,
    /// Overlap of its clients' timelines.
    #[serde(flatten)]
    pub overlap: Overlap,
    /// The concurrency probe, when one ran.
    pub probe: Option<ProbeOutcome>,
    /// The server ended during the run, so its verdict is left undetermined.
    pub exited_during_run: bool,
    /// How the clients' connects were paced to the server's accept queue, when the kernel
    /// told its backlog.
    pub accept_queue: Option<PacingFigures>,
}

/// A backlog this small is the textbook's `listen(5)`, not the default of `listen()`.
pub const SMALL_BACKLOG: u32 = 16;

/// Holds the statistics to the probe: `bounded (k)` stands only if the probe, holding at
/// least `k` silent connections, found no free worker for a new client. Otherwise the waits
/// were not a cap of the server's (the kernel's retransmissions, a loaded machine), and
/// the server served as many clients as it was given. A cap beyond the probe's
/// [`MAX_HOLDERS`](crate::workload::probe::MAX_HOLDERS) is no cap a lab can tell from a
/// thread per client, so a probe holding that many refutes any `k`.
pub fn reconcile(verdict: ConcurrencyVerdict, probe: Option<&ProbeOutcome>) -> ConcurrencyVerdict {
    match (verdict, probe) {
        (ConcurrencyVerdict::Bounded(k), Some(probe))
            if probe.served && probe.holders >= k.min(crate::workload::probe::MAX_HOLDERS) =>
        {
            ConcurrencyVerdict::Concurrent(k)
        }
        (verdict, _) => verdict,
    }
}

/// Silent connections the probe must hold to confirm a `verdict` that would fail
/// `expected`: `bounded (k)` against "concurrent" needs `k`. (Against "at-least N" the
/// probe already holds N - 1, and a cap of N or more passes.)
pub fn holders_to_confirm(expected: ConcurrencyExpectation, verdict: ConcurrencyVerdict) -> u32 {
    match (expected, verdict) {
        (ConcurrencyExpectation::Concurrent, ConcurrencyVerdict::Bounded(k)) => k,
        _ => 0,
    }
}

impl ServerConcurrency {
    /// One line: the verdict and the figures behind it.
    pub fn describe(&self) -> String {
        let o = &self.overlap;
        if self.exited_during_run {
            return format!(
                "{}: the server exited during the run, so when it died decided what its clients saw",
                o.verdict
            );
        }
        let mut text = match o.served_together {
            0 => format!(
                "{}: none of {} connected clients was seen being served",
                o.verdict, o.connected_together
            ),
            served => format!(
                "{}: up to {served} of {} connected clients served at once",
                o.verdict, o.connected_together
            ),
        };
        // Short holds are coincidences of timing; only queues are worth a reader's attention
        // (and with nobody served, nobody waited for a turn).
        if o.held_long > 0 && o.served_together > 0 {
            text.push_str(&format!(
                "; {} served only after another left (waits up to {})",
                o.held_long,
                crate::units::micros(o.longest_held_wait_us)
            ));
        }
        if let Some(probe) = &self.probe {
            text.push_str(&format!("; probe: {}", probe.detail));
            if o.held_long > 0 && matches!(o.verdict, ConcurrencyVerdict::Concurrent(_)) && probe.served {
                text.push_str(", so those waits were not a cap of the server's");
            }
        }
        if let Some(note) = self.accept_queue.and_then(|figures| accept_queue_note(&figures)) {
            text.push_str("; ");
            text.push_str(&note);
        }
        text
    }
}

/// A note on a small accept queue, and what the kernel did to clients that overflowed it:
/// `listen(5)` is correct, but real clients arriving together would meet 1 s retransmissions.
fn accept_queue_note(figures: &PacingFigures) -> Option<String> {
    let mut parts = Vec::new();
    if figures.backlog < SMALL_BACKLOG {
        let mut note = format!(
            "the accept queue holds {} (listen({})); labrun paced its connects to it",
            figures.backlog, figures.backlog
        );
        if figures.paced > 0 {
            note.push_str(&format!(
                " ({} waited, up to {})",
                figures.paced,
                crate::units::micros(figures.longest_pacing_wait_us)
            ));
        }
        if figures.stormed > 0 {
            note = format!(
                "the accept queue holds {} (listen({})); {} clients connected as a storm",
                figures.backlog, figures.backlog, figures.stormed
            );
        }
        note.push_str(
            ": clients arriving together beyond it wait for the kernel's 1 s retransmissions; \
             call listen() without an argument (or listen(128)) to queue them",
        );
        parts.push(note);
    }
    if figures.stalled > 0 {
        parts.push(format!(
            "{} clients had their handshake dropped by the kernel (accept queue full) and were \
             not counted against the server",
            figures.stalled
        ));
    }
    if figures.overflowed > 0 {
        parts.push(format!(
            "{} connects went ahead into a full accept queue after the server accepted nobody \
             for a whole reply timeout",
            figures.overflowed
        ));
    }
    (!parts.is_empty()).then(|| parts.join("; "))
}

/// Judges one server against `expect.concurrency`: the statistics and the probe must agree.
/// `others_failed`: another check of the run failed already, which is then the likely
/// reason nothing could be judged.
pub fn judge(
    expected: ConcurrencyExpectation,
    server: &ServerConcurrency,
    check_name: &str,
    others_failed: bool,
) -> (Check, Option<Finding>) {
    let verdict = server.overlap.verdict;
    let probe_served = server.probe.as_ref().map(|p| p.served);
    let failure: Option<&'static str> = match (expected, verdict) {
        (_, ConcurrencyVerdict::Undetermined) if server.exited_during_run => {
            Some("the server must stay up to be judged: it exited during the run (see its check)")
        }
        (_, ConcurrencyVerdict::Undetermined) if others_failed => Some(
            "the clients were never served side by side long enough to tell, because of the \
             other failures: fix those first (a server that fails the echo or closes \
             connections early gives nothing to judge)",
        ),
        (_, ConcurrencyVerdict::Undetermined) => Some(
            "the clients were never served side by side long enough to tell: the scenario must \
             start several clients together and keep them busy (several messages, `think` \
             time) for concurrency to show",
        ),
        (ConcurrencyExpectation::Iterative, ConcurrencyVerdict::Iterative) => (probe_served == Some(true))
            .then_some(
                "a new client was answered while another sat silent: the server serves clients \
                 concurrently, but this lab asks for one client at a time",
            ),
        (ConcurrencyExpectation::Iterative, _) => Some(
            "clients were served at the same time, but this lab asks for an iterative server: \
             accept one client, serve it until it leaves, then accept the next",
        ),
        (_, ConcurrencyVerdict::Iterative) => Some(
            "clients were served one after another: this is an iterative server; a concurrent \
             server gives each accepted client its own thread (start it, and do not join() it)",
        ),
        (ConcurrencyExpectation::Concurrent, ConcurrencyVerdict::Bounded(_)) => Some(
            "only a fixed number of clients were served at once while the others waited for one \
             to leave: a pool of workers (or a semaphore) caps concurrency; a thread per client \
             has no such cap",
        ),
        (ConcurrencyExpectation::AtLeast(n), _) if server.overlap.served_together < n => Some(
            "fewer clients were served at once than required: a pool of workers caps concurrency, \
             or too few clients were connected together to show more",
        ),
        (_, _) => (probe_served == Some(false)).then_some(
            "clients overlapped in the run, yet a new client was not answered while others sat \
             silent: the server blocks on a client that sends nothing (a loop waiting in recv(), \
             or every worker of a pool busy)",
        ),
    };
    let summary = format!("{} (expected {expected})", server.describe());
    let finding = failure.map(|hint| Finding {
        check: check_name.to_owned(),
        class: verdict.kind().into(),
        client: None,
        message: None,
        at_ms: None,
        text: format!("server `{}`: {summary}", server.server),
        hint,
    });
    (
        Check {
            name: check_name.to_owned(),
            passed: failure.is_none(),
            summary,
        },
        finding,
    )
}

/// The most intervals covering one instant. Intervals are half-open: one that ends exactly
/// when another begins does not overlap it.
fn most_at_once(intervals: &[(Duration, Duration)]) -> u32 {
    let mut edges: Vec<(Duration, i32)> = intervals
        .iter()
        .flat_map(|&(start, end)| [(start, 1), (end.max(start), -1)])
        .collect();
    // Ends sort before starts at the same instant.
    edges.sort();
    let (mut now, mut most) = (0i32, 0i32);
    for (_, step) in edges {
        now += step;
        most = most.max(now);
    }
    most as u32
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload::ClientEnd;
    use crate::workload::record::Timeline;

    fn ms(n: u64) -> Option<Duration> {
        Some(Duration::from_millis(n))
    }

    /// A client present from `connected` to `closed`, served from `first_reply` to
    /// `last_reply`, having sent its first message on connecting.
    fn client(connected: u64, first_reply: u64, last_reply: u64, closed: u64) -> ClientRecord {
        ClientRecord {
            group: 0,
            index: 0,
            timeline: Timeline {
                connect_start: ms(connected),
                connected: ms(connected),
                first_send: ms(connected),
                first_reply: ms(first_reply),
                last_reply: ms(last_reply),
                closed: ms(closed),
                handshake_stalled: false,
            },
            messages_completed: 2,
            bytes_sent: 0,
            bytes_received: 0,
            end: ClientEnd::Completed,
            fault: None,
            datagrams: None,
        }
    }

    proptest::proptest! {
        /// The sorted-departures count of held clients agrees with asking every other
        /// client, one by one.
        #[test]
        fn held_clients_are_counted_exactly(
            spans in proptest::collection::vec((0u64..50, 0u64..50, 0u64..50), 1..30),
        ) {
            let records: Vec<ClientRecord> = spans
                .iter()
                .map(|&(start, wait, stay)| client(start, start + wait, start + wait + stay, start + wait + stay))
                .collect();
            let expected = records
                .iter()
                .enumerate()
                .filter(|(i, r)| {
                    let (from, until) = (r.timeline.first_send.unwrap(), r.timeline.first_reply.unwrap());
                    records.iter().enumerate().any(|(j, o)| {
                        let left = o.timeline.closed.unwrap();
                        j != *i && from < left && left <= until
                    })
                })
                .count() as u32;
            proptest::prop_assert_eq!(measure(&records).held, expected);
        }
    }

    /// Clients that connected together and were never answered, waiting for the ones who
    /// left before them: nothing to judge, and said so without "up to 0 served".
    #[test]
    fn clients_never_served_are_undetermined_and_the_hint_fits_the_run() {
        let mut silent: Vec<ClientRecord> = (0..3).map(|i| client(0, 0, 0, 3000 + i)).collect();
        for record in &mut silent {
            record.timeline.first_reply = None;
            record.timeline.last_reply = None;
        }
        let server = ServerConcurrency {
            server: "srv".into(),
            overlap: measure(&silent),
            probe: None,
            exited_during_run: false,
            accept_queue: None,
        };
        assert_eq!(server.overlap.verdict, ConcurrencyVerdict::Undetermined);
        let described = server.describe();
        assert!(
            described.contains("none of 3 connected clients was seen being served"),
            "{described}"
        );
        assert!(
            !described.contains("up to 0") && !described.contains("after another left"),
            "{described}"
        );
        let expected = ConcurrencyExpectation::Concurrent;
        let (check, finding) = judge(expected, &server, "concurrency", true);
        assert!(!check.passed);
        assert!(finding.expect("a finding").hint.contains("fix those first"));
        let (_, finding) = judge(expected, &server, "concurrency", false);
        let hint = finding.expect("a finding").hint;
        assert!(
            hint.contains("the scenario must start several clients together"),
            "{hint}"
        );
    }

    #[test]
    fn one_after_another_is_iterative() {
        // Three clients arrive together; each is served once the previous one has left.
        let records = [
            client(0, 1, 100, 101),
            client(0, 102, 200, 201),
            client(0, 202, 300, 301),
        ];
        let overlap = measure(&records);
        assert_eq!(overlap.connected_together, 3);
        assert_eq!(overlap.served_together, 1);
        assert_eq!(overlap.held, 2);
        assert_eq!(overlap.verdict, ConcurrencyVerdict::Iterative);
    }

    #[test]
    fn all_at_once_is_concurrent() {
        let records: Vec<_> = (0..5).map(|i| client(i, i + 1, 200 + i, 201 + i)).collect();
        let overlap = measure(&records);
        assert_eq!(overlap.served_together, 5);
        assert_eq!(overlap.held, 0);
        assert_eq!(overlap.verdict, ConcurrencyVerdict::Concurrent(5));
    }

    #[test]
    fn a_pool_of_two_is_bounded() {
        let records = [
            client(0, 1, 100, 101),
            client(0, 1, 100, 102),
            client(0, 103, 200, 201),
            client(0, 104, 200, 202),
            client(0, 203, 300, 301),
        ];
        let overlap = measure(&records);
        assert_eq!(overlap.served_together, 2);
        assert_eq!(overlap.held_long, 3);
        assert_eq!(overlap.verdict, ConcurrencyVerdict::Bounded(2));
    }

    #[test]
    fn a_short_coincidental_wait_is_not_a_queue() {
        // Four served at once; a fifth arrives as one leaves and is answered 1 ms later:
        // fewer than present were served together, but nobody queued.
        let mut records: Vec<_> = (0..4).map(|_| client(0, 1, 100, 100)).collect();
        records[0] = client(0, 1, 50, 50);
        records.push(client(49, 51, 150, 150));
        let overlap = measure(&records);
        assert_eq!(overlap.connected_together, 5);
        assert_eq!(overlap.served_together, 4);
        assert_eq!(overlap.held, 1);
        assert_eq!(overlap.verdict, ConcurrencyVerdict::Concurrent(4));
    }

    #[test]
    fn clients_that_never_met_say_nothing() {
        let records = [client(0, 1, 10, 11), client(20, 21, 30, 31)];
        assert_eq!(measure(&records).verdict, ConcurrencyVerdict::Undetermined);
        // Present together and served back to back, but the second waited only 3 ms: a
        // coincidence as likely as a queue, so no verdict.
        let records = [client(0, 1, 10, 11), client(9, 12, 20, 21)];
        let overlap = measure(&records);
        assert_eq!((overlap.connected_together, overlap.held), (2, 1));
        assert_eq!(overlap.verdict, ConcurrencyVerdict::Undetermined);
    }

    #[test]
    fn a_client_the_kernel_held_is_not_held_by_the_server() {
        // Five served at once; the sixth's handshake was dropped by a full accept queue and
        // got through a second later, after another client left.
        let mut records: Vec<_> = (0..5).map(|_| client(0, 1, 2000, 2000)).collect();
        records[0] = client(0, 1, 500, 500);
        let mut stalled = client(0, 1010, 2000, 2000);
        stalled.timeline.handshake_stalled = true;
        records.push(stalled);
        let overlap = measure(&records);
        assert_eq!(overlap.held, 0);
        assert_eq!(overlap.verdict, ConcurrencyVerdict::Concurrent(5));
        // The same wait without the kernel's mark is a queue.
        records[5].timeline.handshake_stalled = false;
        assert_eq!(measure(&records).verdict, ConcurrencyVerdict::Bounded(5));
    }

    #[test]
    fn bounded_stands_only_when_the_probe_agrees() {
        let probe = |holders, served| ProbeOutcome {
            holders,
            served,
            answered_after_us: served.then_some(500),
            detail: String::new(),
        };
        let bounded = ConcurrencyVerdict::Bounded(18);
        assert_eq!(
            holders_to_confirm(ConcurrencyExpectation::Concurrent, bounded),
            18
        );
        assert_eq!(holders_to_confirm(ConcurrencyExpectation::AtLeast(2), bounded), 0);
        assert_eq!(
            reconcile(bounded, Some(&probe(18, true))),
            ConcurrencyVerdict::Concurrent(18)
        );
        assert_eq!(reconcile(bounded, Some(&probe(18, false))), bounded);
        // Too few silent connections to say anything about a cap of 18.
        assert_eq!(reconcile(bounded, Some(&probe(7, true))), bounded);
        assert_eq!(reconcile(bounded, None), bounded);
        // A cap beyond what the probe holds: a probe holding its most refutes it.
        let huge = ConcurrencyVerdict::Bounded(crate::workload::probe::MAX_HOLDERS + 500);
        assert_eq!(
            reconcile(huge, Some(&probe(crate::workload::probe::MAX_HOLDERS, true))),
            ConcurrencyVerdict::Concurrent(crate::workload::probe::MAX_HOLDERS + 500)
        );
        assert_eq!(reconcile(huge, Some(&probe(64, true))), huge);
        let iterative = ConcurrencyVerdict::Iterative;
        assert_eq!(reconcile(iterative, Some(&probe(1, true))), iterative);
    }

    #[test]
    fn a_small_backlog_gets_a_note() {
        let paced = PacingFigures {
            backlog: 5,
            paced: 12,
            longest_pacing_wait_us: 3000,
            ..PacingFigures::default()
        };
        let note = accept_queue_note(&paced).unwrap();
        assert!(
            note.starts_with("the accept queue holds 5 (listen(5)); labrun paced its connects to it"),
            "{note}"
        );
        assert!(note.contains("call listen() without an argument"), "{note}");
        let roomy = PacingFigures {
            backlog: 128,
            ..PacingFigures::default()
        };
        assert_eq!(accept_queue_note(&roomy), None);
        let storm = PacingFigures {
            backlog: 128,
            stormed: 300,
            stalled: 4,
            ..PacingFigures::default()
        };
        assert!(
            accept_queue_note(&storm)
                .unwrap()
                .starts_with("4 clients had their handshake dropped")
        );
    }

    #[test]
    fn a_client_never_served_was_held_until_it_gave_up() {
        let mut starved = client(0, 0, 0, 500);
        starved.timeline.first_reply = None;
        starved.timeline.last_reply = None;
        let records = [client(0, 1, 400, 401), starved];
        let overlap = measure(&records);
        assert_eq!(overlap.served_together, 1);
        assert_eq!(overlap.held, 1);
        assert_eq!(overlap.verdict, ConcurrencyVerdict::Iterative);
    }
}
