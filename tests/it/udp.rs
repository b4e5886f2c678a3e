//! UDP echo servers: every datagram back once and whole; loss under overload measured,
//! not failed; a recvfrom(1024) server caught truncating.

use serde_json::Value;

use crate::util::{Scratch, check, fixture, group, read_report, run_text, shipped_with_example};

fn total_datagrams(report: &Value) -> &Value {
    &report["total"]["datagrams"]
}

#[test]
fn the_builtin_and_the_python_udp_echo_servers_pass() {
    for (scenario, name) in [
        ("scenarios/udp.toml", "udp"),
        ("scenarios/python/udp.toml", "python-udp"),
    ] {
        let scratch = Scratch::new();
        scratch
            .run_shipped(scenario)
            .expect_code(0)
            .stdout_has("PASS  datagrams");
        scratch.assert_nothing_left();
        let report = read_report(&scratch.reports().join(format!("{name}.json")));
        let datagrams = total_datagrams(&report);
        assert_eq!(datagrams["sent"], 1000, "{scenario}");
        assert_eq!(datagrams["truncated"], 0);
        assert_eq!(datagrams["corrupted"], 0);
        assert_eq!(check(&report, "loss")["passed"], true);
    }
}

#[test]
fn a_recvfrom_1024_server_is_caught_truncating() {
    let scenario = shipped_with_example(
        "scenarios/python/udp.toml",
        "udp_echo_server.py",
        "udp_echo_bug_recvfrom_1024.py",
    );
    let (code, report) = run_text("python-udp", &scenario);
    assert_eq!(code, Some(1));
    assert_eq!(check(&report, "datagrams")["passed"], false);
    assert!(total_datagrams(&report)["truncated"].as_u64().expect("count") > 0);
    let finding = report["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .find(|f| f["class"] == "truncated")
        .expect("a truncation finding");
    assert!(
        finding["text"]
            .as_str()
            .expect("text")
            .contains("came back with 1024 of its"),
        "{finding:#}"
    );
}

#[test]
fn the_shipped_tcp_versus_udp_scenario_passes() {
    let scratch = Scratch::new();
    // Open loop far above what the Python server can take: whether the kernel drops datagrams
    // here depends on the machine, so this asserts only what holds on every machine.
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let run = scratch
        .labrun()
        .arg("run")
        .arg(root.join("scenarios/tcp-vs-udp.toml"))
        .args(["--workers", "2", "--out"])
        .arg(scratch.reports())
        .output()
        .expect("labrun runs");
    assert_eq!(run.status.code(), Some(0));
    scratch.assert_nothing_left();
    let report = read_report(&scratch.reports().join("tcp-vs-udp.json"));
    assert_eq!(group(&report, "over-tcp")["messages"], 3000, "TCP loses nothing");
    let datagrams = &group(&report, "over-udp")["datagrams"];
    assert_eq!(datagrams["sent"], 3000, "{datagrams:#}");
    assert_eq!(
        datagrams["echoed"].as_u64().expect("echoed") + datagrams["lost"].as_u64().expect("lost"),
        3000,
        "every datagram is either echoed or counted lost: {datagrams:#}"
    );
    assert!(check(&report, "echo")["passed"] == true && check(&report, "datagrams")["passed"] == true);
}

#[test]
fn an_overloaded_udp_server_loses_datagrams_and_the_run_still_passes() {
    // The shipped scenario with a UDP server that spends 2 ms per datagram behind an 8 KiB
    // receive buffer: 3000 datagrams offered within milliseconds cannot all fit, on any machine.
    let scenario = shipped_with_example(
        "scenarios/tcp-vs-udp.toml",
        "echo_server_threaded.py",
        "echo_server_threaded.py",
    )
    .replace(
        "\"../examples/udp_echo_server.py\"",
        &format!("\"{}\"", fixture("udp_echo_slow_reader.py")),
    );
    let (code, report) = run_text("tcp-vs-udp", &scenario);
    assert_eq!(code, Some(0));
    let datagrams = &group(&report, "over-udp")["datagrams"];
    assert!(datagrams["lost"].as_u64().expect("lost") > 0, "{datagrams:#}");
    assert!(datagrams["echoed"].as_u64().expect("echoed") > 0, "{datagrams:#}");
    assert_eq!(group(&report, "over-tcp")["messages"], 3000, "TCP loses nothing");
    assert!(check(&report, "echo")["passed"] == true && check(&report, "datagrams")["passed"] == true);
    // With a bound on loss, the same run fails that check alone.
    let (code, report) = run_text(
        "tcp-vs-udp",
        &scenario.replace("errors = 0", "errors = 0\nloss = \"<= 1%\""),
    );
    assert_eq!(code, Some(1));
    assert_eq!(check(&report, "loss")["passed"], false);
    assert_eq!(check(&report, "echo")["passed"], true);
}
