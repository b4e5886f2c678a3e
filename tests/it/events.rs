//! Lab 4, two independent servers, and `[[events]]` that stop, kill or restart a server
//! while its clients run.

use serde_json::Value;

use crate::util::{Scratch, check, read_report, run_text as run};

/// Ends of the clients of `group`, from the report's timeline.
fn ends(report: &Value, group: &str) -> Vec<String> {
    report["timeline"]["shown"]
        .as_array()
        .expect("timeline")
        .iter()
        .filter(|s| {
            s["client"]
                .as_str()
                .expect("client")
                .starts_with(&format!("{group}#"))
        })
        .map(|s| s["end"].as_str().expect("end").to_owned())
        .collect()
}

#[test]
fn stopping_one_server_cuts_off_only_its_own_clients() {
    for (scenario, name) in [
        ("scenarios/two-servers.toml", "two-servers"),
        ("scenarios/python/two-servers.toml", "python-two-servers"),
    ] {
        let scratch = Scratch::new();
        scratch
            .run_shipped(scenario)
            .expect_code(0)
            .stdout_has("stop `first`: it exited on SIGTERM")
            .stdout_has("PASS  independence");
        scratch.assert_nothing_left();
        let report = read_report(&scratch.reports().join(format!("{name}.json")));
        // Due at 1 s; a loaded machine may wake the timer a few milliseconds late, so the
        // printed time is not always "1.00 s".
        let at_ms = report["events"][0]["at_ms"].as_f64().expect("at_ms");
        assert!(
            (1000.0..2000.0).contains(&at_ms),
            "{scenario}: event at {at_ms} ms"
        );
        let cut = ends(&report, "to-first");
        assert!(
            cut.len() == 2 && cut.iter().all(|e| e != "completed"),
            "{scenario}: {cut:?}"
        );
        assert_eq!(
            ends(&report, "to-second"),
            ["completed", "completed"],
            "{scenario}"
        );
        assert_eq!(report["events"][0]["ok"], true);
        assert!(
            check(&report, "server first")["summary"]
                .as_str()
                .expect("summary")
                .starts_with("stopped by the scenario (stop at")
        );
    }
}

#[test]
fn a_restarted_server_serves_the_clients_that_come_after() {
    let (code, report) = run(
        "restart",
        "name = \"restart\"\ntimeout = \"30s\"\n[[server]]\nname = \"echo\"\nbuiltin = \"echo-threaded\"\n\
         [[clients]]\nname = \"early\"\ncount = 2\nmessages = 30\nthink = \"50ms\"\n\
         [[clients]]\nname = \"late\"\ncount = 3\nmessages = 3\nstart_after = \"1500ms\"\n\
         [[events]]\nat = \"500ms\"\nrestart = \"echo\"\n",
    );
    assert_eq!(code, Some(0), "{:#}", report["checks"]);
    let outcome = report["events"][0]["outcome"].as_str().expect("outcome");
    assert!(outcome.contains("started again on port"), "{outcome}");
    let cut = ends(&report, "early");
    assert!(cut.len() == 2 && cut.iter().all(|e| e != "completed"), "{cut:?}");
    assert_eq!(ends(&report, "late"), ["completed", "completed", "completed"]);
}

#[test]
fn trouble_on_the_other_server_fails_independence() {
    // The second server dies with its first aborting client: its clients' failures are not
    // the event's doing, so independence (and the second server's own check) fails.
    let root = env!("CARGO_MANIFEST_DIR");
    let scenario = format!(
        "name = \"shaky\"\ntimeout = \"30s\"\n\
         [[server]]\nname = \"first\"\nbuiltin = \"echo-threaded\"\n\
         [[server]]\nname = \"second\"\ncommand = [\"python3\", \"{root}/examples/echo_bug_dies_on_reset.py\", \"{{port}}\"]\n\
         [[clients]]\nname = \"a\"\nserver = \"first\"\ncount = 2\nmessages = 20\nthink = \"50ms\"\n\
         [[clients]]\nname = \"b\"\nserver = \"second\"\ncount = 3\nmessages = 20\nthink = \"50ms\"\n\
         [[clients]]\nname = \"crasher\"\nserver = \"second\"\nfaulty = 1\nfault = {{ kind = \"abort\", after = 2 }}\n\
         [[events]]\nat = \"300ms\"\nstop = \"first\"\n"
    );
    let (code, report) = run("shaky", &scenario);
    assert_eq!(code, Some(1));
    assert_eq!(check(&report, "independence")["passed"], false);
    assert_eq!(check(&report, "server second")["passed"], false);
    assert_eq!(check(&report, "server first")["passed"], true);
}

#[test]
fn a_killed_server_is_killed_at_once_and_leaves_nothing() {
    let (code, report) = run(
        "kill",
        &format!(
            "name = \"kill\"\ntimeout = \"30s\"\n[[server]]\nname = \"stubborn\"\n\
             command = [\"python3\", \"{}\", \"{{port}}\"]\n\
             [[server]]\nname = \"steady\"\nbuiltin = \"echo-threaded\"\n\
             [[clients]]\nname = \"a\"\nserver = \"stubborn\"\ncount = 2\nmessages = 30\nthink = \"50ms\"\n\
             [[clients]]\nname = \"b\"\nserver = \"steady\"\ncount = 2\nmessages = 20\nthink = \"50ms\"\n\
             [[events]]\nat = \"500ms\"\nkill = \"stubborn\"\n",
            crate::util::fixture("stubborn_fork.py")
        ),
    );
    assert_eq!(code, Some(0), "{:#}", report["checks"]);
    assert_eq!(report["events"][0]["outcome"], "it was killed");
    assert_eq!(report["servers"][0]["teardown"], "killed");
    assert_eq!(ends(&report, "b"), ["completed", "completed"]);
}
