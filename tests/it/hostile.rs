//! Hostile servers: each run ends by itself, within its deadline, with a named finding, and
//! leaves nothing behind.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::util::{check, echo_scenario, python_server, run_text};

/// Runs a hostile fixture under a small load with a 5 s deadline.
fn against(fixture: &str) -> (Option<i32>, Value, Duration) {
    let started = Instant::now();
    let scenario = echo_scenario(
        "hostile",
        &python_server(fixture),
        "count = 3\nmessages = 5\nsize = \"200KiB\"\ntimeout = \"1s\"",
        "",
    )
    .replace("timeout = \"45s\"", "timeout = \"5s\"");
    let (code, report) = run_text("hostile", &scenario);
    assert_bounded_memory(&report);
    (code, report, started.elapsed())
}

/// The bound on labrun's own memory whatever a server does: the runs here take about
/// 15–25 MiB; a server's flood must not add to it.
const RSS_BOUND_BYTES: u64 = 64 * 1024 * 1024;

fn assert_bounded_memory(report: &Value) {
    let rss = report["labrun_peak_rss_bytes"]
        .as_u64()
        .expect("peak RSS on Linux");
    assert!(rss < RSS_BOUND_BYTES, "labrun's peak RSS was {rss} bytes");
}

fn classes(report: &Value) -> Vec<String> {
    report["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .map(|f| f["class"].as_str().expect("class").to_owned())
        .collect()
}

#[test]
fn a_flooding_server_is_caught_and_labrun_stays_bounded() {
    let (code, report, took) = against("flood.py");
    assert_eq!(code, Some(1));
    // Every client is flooded; on a loaded machine the thread that floods one may start
    // only after that client's 1 s reply timeout, which is then rightly a missing echo.
    let classes = classes(&report);
    assert!(classes.contains(&"unsolicited".to_owned()), "{classes:?}");
    assert!(
        classes.iter().all(|c| c == "unsolicited" || c == "missing"),
        "{classes:?}"
    );
    assert!(took < Duration::from_secs(15), "{took:?}");
    // What the flood sent is shown escaped, never as a terminal escape.
    let text = report["findings"][0]["text"].as_str().expect("text");
    assert!(text.contains("\\x1b[2J") && !text.contains('\u{1b}'), "{text}");
}

#[test]
fn a_one_byte_at_a_time_server_runs_out_of_reply_time() {
    let (code, report, took) = against("slowloris.py");
    assert_eq!(code, Some(1));
    // Each byte restarts no timer: the 1 s reply timeout bounds the whole reply.
    assert!(
        classes(&report).iter().all(|c| c == "truncated"),
        "{:?}",
        classes(&report)
    );
    assert!(
        took < Duration::from_secs(15),
        "the 1 s reply timeout held: {took:?}"
    );
}

#[test]
fn servers_that_never_read_or_close_at_once_give_missing_echoes() {
    let (code, report, _) = against("never_reads.py");
    assert_eq!(code, Some(1));
    assert!(
        classes(&report).iter().all(|c| c == "missing"),
        "{:?}",
        classes(&report)
    );
    let (code, report, _) = against("closes_at_once.py");
    assert_eq!(code, Some(1));
    // Whether the kernel ends that connection with a FIN or a reset depends on whether the
    // client's bytes reached it before the server's close: either is the server's doing.
    let text = report["findings"][0]["text"].as_str().expect("text");
    assert!(
        text.contains("the server closed the connection") || text.contains("the server reset the connection"),
        "{text}"
    );
    assert_eq!(report["findings"][0]["class"], "missing", "{report:#}");
}

#[test]
fn a_server_that_floods_stderr_is_captured_within_bounds() {
    let (code, report, _) = against("stderr_flood.py");
    assert_eq!(code, Some(0), "{:#}", report["checks"]);
    assert_eq!(check(&report, "server srv")["passed"], true);
    let server = &report["servers"][0];
    assert!(
        server["stderr_bytes"].as_u64().expect("bytes") > 1_000_000,
        "{server:#}"
    );
    assert!(server["output_tail"].as_str().expect("tail").len() < 16 * 1024);
}

#[test]
fn a_fork_bomb_is_held_at_its_process_limit_reported_and_torn_down() {
    let started = Instant::now();
    let server = format!(
        "{}\nlimits = {{ processes = 24, cpu = \"20s\" }}",
        python_server("fork_bomb.py")
    );
    let scenario = echo_scenario(
        "forkbomb",
        &server,
        "count = 2\nmessages = 2\ntimeout = \"1s\"",
        "",
    )
    .replace("timeout = \"45s\"", "timeout = \"8s\"");
    // `run_text` also fails the test if any process of the bomb outlived the run.
    let (code, report) = run_text("forkbomb", &scenario);
    assert_eq!(code, Some(1));
    assert_bounded_memory(&report);
    assert!(
        started.elapsed() < Duration::from_secs(40),
        "{:?}",
        started.elapsed()
    );
    let usage = &report["servers"][0]["process_limit"];
    if usage.is_null() {
        // No pids cgroup here: only RLIMIT_NPROC limits it, which the kernel ignores for root.
        assert!(
            !rustix::process::geteuid().is_root(),
            "running as root, the process limit must come from a pids cgroup"
        );
        return;
    }
    assert_eq!(usage["limit"], 24);
    assert!(usage["refused_forks"].as_u64().expect("count") > 0, "{usage:#}");
    assert!(
        classes(&report).contains(&"process-limit".to_owned()),
        "{:?}",
        classes(&report)
    );
    let server = check(&report, "server srv");
    assert_eq!(server["passed"], false);
    assert!(
        server["summary"]
            .as_str()
            .expect("summary")
            .contains("reached its process limit (24)"),
        "{server:#}"
    );
}

#[test]
fn hostile_bytes_are_escaped_on_the_terminal_and_in_every_report_format() {
    let scratch = crate::util::Scratch::new();
    let scenario = echo_scenario("flood", &python_server("flood.py"), "count = 1\nmessages = 2", "");
    let path = scratch.file("flood.toml", &scenario);
    let run = scratch
        .labrun()
        .arg("run")
        .arg(&path)
        .arg("--out")
        .arg(scratch.reports())
        .args(["--format", "json,md,junit,html"])
        .output()
        .expect("labrun runs");
    scratch.assert_nothing_left();
    assert_eq!(run.status.code(), Some(1));
    let mut outputs = vec![("stdout".to_owned(), run.stdout)];
    for name in ["flood.json", "flood.md", "flood.junit.xml", "flood.html"] {
        let bytes = std::fs::read(scratch.reports().join(name)).expect("report written");
        outputs.push((name.to_owned(), bytes));
    }
    for (name, bytes) in outputs {
        let text = String::from_utf8(bytes).unwrap_or_else(|_| panic!("{name} is not UTF-8"));
        assert!(!text.contains('\u{1b}'), "{name} carries a raw escape");
        // JSON doubles the backslash; the other formats show it once.
        assert!(text.contains(r"x1b[2J"), "{name} lacks the escaped excerpt");
        assert!(text.contains("unsolicited"), "{name} does not name the finding");
    }
}
