//! Thresholds in `[expect]` over the recorded figures: each is a check with its own line.

use crate::util::{check, echo_scenario, run_text};

const CLIENTS: &str = "count = 4\nmessages = 5\nthink = \"20ms\"\ntimeout = \"5s\"";

#[test]
fn every_threshold_is_its_own_check() {
    // An iterative server: round trips stay small while waits climb client by client.
    let expect = "latency = { p99 = \"100ms\" }\nwait = { max = \"30ms\" }\nconnect = { p50 = \"1s\" }\n\
                  msgs_per_sec = \">= 1_000_000\"\nerror_rate = \"<= 0%\"";
    let (code, report) = run_text(
        "limits",
        &echo_scenario("limits", "builtin = \"echo-iterative\"", CLIENTS, expect),
    );
    assert_eq!(code, Some(1));
    assert_eq!(check(&report, "latency rtt p99")["passed"], true);
    assert_eq!(check(&report, "latency connect p50")["passed"], true);
    assert_eq!(check(&report, "error rate")["passed"], true);
    let wait = check(&report, "latency wait max");
    assert_eq!(wait["passed"], false, "{wait:#}");
    assert!(
        wait["summary"].as_str().expect("summary").contains("> 30.0 ms"),
        "{wait:#}"
    );
    let throughput = check(&report, "throughput");
    assert_eq!(throughput["passed"], false);
    assert!(
        throughput["summary"]
            .as_str()
            .expect("summary")
            .ends_with("< 1,000,000 msgs/s"),
        "{throughput:#}"
    );
}

#[test]
fn a_client_never_served_counts_in_the_wait() {
    // One client holds the iterative server for its whole session; the other gives up after
    // its 300 ms reply timeout, so the wait's maximum is at least that long.
    let (code, report) = run_text(
        "starved",
        &echo_scenario(
            "starved",
            "builtin = \"echo-iterative\"",
            "count = 2\nmessages = 20\nthink = \"50ms\"\ntimeout = \"300ms\"",
            "errors = 1\nwait = { max = \"250ms\" }",
        ),
    );
    assert_eq!(code, Some(1));
    assert_eq!(check(&report, "latency wait max")["passed"], false);
    assert!(
        report["total"]["latency"]["wait"]["max_us"]
            .as_u64()
            .expect("max")
            >= 300_000
    );
}
