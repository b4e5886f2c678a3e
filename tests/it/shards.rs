//! `--shard K/N` and `labrun merge`: a load split over processes reports as one run.

use std::time::{Duration, SystemTime};

use crate::util::{ByHand, Run, Scratch, echo_scenario, fixture, read_report};

/// Seven clients, each sending a 3,000-byte message first: a single-recv server truncates
/// every one of them, so every client yields exactly one finding.
fn scenario(scratch: &Scratch) -> std::path::PathBuf {
    scratch.file(
        "split.toml",
        &echo_scenario(
            "split",
            &format!(
                "command = [\"python3\", \"{}\", \"{{port}}\"]",
                fixture("single_recv.py")
            ),
            "count = 7\nmessages = 2\nsize = 3000\ntimeout = \"1s\"",
            "",
        ),
    )
}

/// A merge's totals are the whole run's in clients, messages and bytes.
fn assert_same_counts(merged: &serde_json::Value, whole: &serde_json::Value) {
    for figure in [
        "clients",
        "clients_completed",
        "messages",
        "bytes_sent",
        "bytes_received",
    ] {
        assert_eq!(merged["total"][figure], whole["total"][figure], "{figure}");
    }
}

fn labrun(scratch: &Scratch, args: &[&std::ffi::OsStr]) -> Run {
    Run::from(scratch.labrun().args(args).output().expect("labrun runs"))
}

#[test]
fn two_halves_merged_equal_the_whole_run() {
    let scratch = Scratch::new();
    let path = scenario(&scratch);
    let dir = scratch.dir.path();
    for (shard, out) in [("1/2", "one"), ("2/2", "two"), ("1/1", "whole")] {
        labrun(
            &scratch,
            &[
                "run".as_ref(),
                path.as_os_str(),
                "--shard".as_ref(),
                shard.as_ref(),
                "--out".as_ref(),
                dir.join(out).as_os_str(),
            ],
        )
        .expect_code(1);
    }
    scratch.assert_nothing_left();
    let (one, two) = (
        read_report(&dir.join("one/split.json")),
        read_report(&dir.join("two/split.json")),
    );
    assert_eq!(one["scenario"]["shard"], "1/2");
    assert_eq!(
        (one["total"]["clients"].as_u64(), two["total"]["clients"].as_u64()),
        (Some(4), Some(3))
    );

    labrun(
        &scratch,
        &[
            "merge".as_ref(),
            dir.join("one/split.json").as_os_str(),
            dir.join("two/split.json").as_os_str(),
            "--out".as_ref(),
            dir.as_os_str(),
        ],
    )
    .expect_code(1)
    .stdout_has("split: 2 reports merged");
    let merged = read_report(&dir.join("split.merged.json"));
    let whole = read_report(&dir.join("whole/split.json"));
    assert_same_counts(&merged, &whole);
    assert_eq!(merged["total"]["errors"], whole["total"]["errors"]);
    assert_eq!(
        merged["findings"].as_u64(),
        whole["findings"].as_array().map(|f| f.len() as u64)
    );
    assert_eq!(
        merged["total"]["latency"]["wait"]["count"],
        whole["total"]["latency"]["wait"]["count"]
    );
}

#[test]
fn shards_and_merges_refuse_what_they_cannot_do() {
    let scratch = Scratch::new();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    labrun(
        &scratch,
        &[
            "run".as_ref(),
            root.join("scenarios/chat.toml").as_os_str(),
            "--shard".as_ref(),
            "1/2".as_ref(),
        ],
    )
    .expect_code(2)
    .stderr_has("--shard splits echo clients only");
    labrun(
        &scratch,
        &[
            "run".as_ref(),
            root.join("scenarios/threaded.toml").as_os_str(),
            "--shard".as_ref(),
            "3/2".as_ref(),
        ],
    )
    .expect_code(2)
    .stderr_has("expected K/N with 1 <= K <= N");
    let two_clients = scratch.file(
        "two.toml",
        "name = \"two\"\n\n[[server]]\nname = \"e\"\nbuiltin = \"echo-threaded\"\n\n\
         [[clients]]\nname = \"c\"\ncount = 2\nmessages = 1\n",
    );
    labrun(
        &scratch,
        &[
            "run".as_ref(),
            two_clients.as_os_str(),
            "--shard".as_ref(),
            "3/3".as_ref(),
        ],
    )
    .expect_code(2)
    .stderr_has("has 2 client(s), so some of 3 shards would run none; use at most 2 shards");
    let bogus = scratch.file("bogus.json", "{\"hello\": 1}");
    labrun(&scratch, &["merge".as_ref(), bogus.as_os_str()])
        .expect_code(2)
        .stderr_has("not a labrun run report");
}

/// Merging shard 1/2 of the run in `scratch`'s `one/` with anything but its own shard 2/2
/// is refused, naming why: itself again, nothing, an unsharded run, a shard aimed at another
/// server (`elsewhere`), drawn from another seed, started at another instant or well after
/// the instant, or run from a changed scenario.
fn merges_of_other_runs_are_refused(
    scratch: &Scratch,
    path: &std::path::Path,
    elsewhere: &std::path::Path,
    start_at: &str,
) {
    let dir = scratch.dir.path();
    labrun(
        scratch,
        &[
            "run".as_ref(),
            elsewhere.as_os_str(),
            "--shard".as_ref(),
            "2/2".as_ref(),
            "--quiet".as_ref(),
            "--out".as_ref(),
            dir.join("other").as_os_str(),
        ],
    )
    .expect_code(0);
    let second_shard = |out: &str, extra: &[&str]| {
        let mut args: Vec<&std::ffi::OsStr> = vec![
            "run".as_ref(),
            path.as_os_str(),
            "--shard".as_ref(),
            "2/2".as_ref(),
            "--quiet".as_ref(),
        ];
        args.extend(extra.iter().map(std::ffi::OsStr::new));
        let out = dir.join(out);
        args.extend(["--out".as_ref(), out.as_os_str()]);
        labrun(scratch, &args).expect_code(0);
    };
    // The instant is past by now: the shard starts at once, but its report still names it.
    second_shard("reseeded", &["--start-at", start_at, "--seed", "7"]);
    second_shard("unsynchronised", &[]);
    // A shard that starts its clients more than a second after the instant.
    let instant = humantime::parse_rfc3339(start_at).expect("an instant");
    let late_by = instant + Duration::from_millis(1500);
    if let Ok(ahead) = late_by.duration_since(SystemTime::now()) {
        std::thread::sleep(ahead);
    }
    second_shard("late", &["--start-at", start_at]);
    let changed = scratch.file(
        "changed.toml",
        &std::fs::read_to_string(path)
            .expect("scenario")
            .replace("messages = 30", "messages = 31"),
    );
    labrun(
        scratch,
        &[
            "run".as_ref(),
            changed.as_os_str(),
            "--shard".as_ref(),
            "2/2".as_ref(),
            "--start-at".as_ref(),
            start_at.as_ref(),
            "--quiet".as_ref(),
            "--out".as_ref(),
            dir.join("changed").as_os_str(),
        ],
    )
    .expect_code(0);
    let report = |name: &str| dir.join(name).join("spread.json");
    for (parts, why) in [
        (vec![report("one"), report("reseeded")], "its seed is 7, that of"),
        (
            vec![report("one"), report("unsynchronised")],
            "it ran with no --start-at",
        ),
        (vec![report("one"), report("one")], "it is shard 1/2 again"),
        (vec![report("one"), report("late")], "after --start-at"),
        (
            vec![report("one"), report("changed")],
            "its scenario's `groups` differs from that of",
        ),
        (
            vec![report("one")],
            "shard 2/2 is missing: the run was split 2 ways and 1 of its reports was given",
        ),
        (vec![report("one"), report("whole")], "it is not a shard"),
        (
            vec![dir.join("spread.merged.json"), report("one")],
            "it is a merged report (the output of `labrun merge`), not one run's",
        ),
        (
            vec![report("one"), report("other")],
            "shards of one run aim at the same servers",
        ),
    ] {
        let mut args: Vec<&std::ffi::OsStr> = vec!["merge".as_ref(), "--no-report".as_ref()];
        args.extend(parts.iter().map(|p| p.as_os_str()));
        labrun(scratch, &args).expect_code(2).stderr_has(why);
    }
}

/// Two shards aimed at one running server, launched 1.5 s apart with one `--start-at`,
/// start their clients within 100 ms of each other, and their merge equals one unsharded
/// run against the same server in clients, messages, bytes and histogram counts. A merge of
/// a shard twice, of one shard alone, of a shard with an unsharded run, or of shards aimed
/// at different servers, drawn from different seeds or started at different instants is
/// refused, naming the file.
#[test]
fn shards_started_at_one_instant_drive_one_server_as_one_run() {
    let scratch = Scratch::new();
    let mut server = ByHand::builtin("echo-threaded");
    let other = ByHand::builtin("echo-threaded");
    let scenario = |address: &str| {
        format!(
            "name = \"spread\"\ntimeout = \"30s\"\n[[server]]\nname = \"echo\"\naddress = \"{address}\"\n\
             [[clients]]\nname = \"c\"\ncount = 9\nmessages = 30\nsize = {{ min = 1, max = 3000 }}\n\
             [expect]\necho = \"exact\"\nerrors = 0\n"
        )
    };
    let path = scratch.file("spread.toml", &scenario(&server.address()));
    let elsewhere = scratch.file("elsewhere.toml", &scenario(&other.address()));
    let dir = scratch.dir.path();
    let start_at = humantime::format_rfc3339_millis(SystemTime::now() + Duration::from_secs(4)).to_string();
    let shard = |scenario: &std::path::Path, k: &str, out: &str| {
        std::process::Command::new(assert_cmd::cargo::cargo_bin("labrun"))
            .env(crate::util::MARKER, &scratch.marker)
            .env("CI", "true")
            .arg("run")
            .arg(scenario)
            .args(["--shard", k, "--start-at", &start_at, "--quiet", "--out"])
            .arg(dir.join(out))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("labrun starts")
    };
    let first = shard(&path, "1/2", "one");
    std::thread::sleep(Duration::from_millis(1500));
    let second = shard(&path, "2/2", "two");
    for child in [first, second] {
        let output = child.wait_with_output().expect("labrun ends");
        assert_eq!(
            output.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let (one, two) = (
        read_report(&dir.join("one/spread.json")),
        read_report(&dir.join("two/spread.json")),
    );
    let started = |report: &serde_json::Value| {
        humantime::parse_rfc3339(report["started_at"].as_str().expect("started_at")).expect("an instant")
    };
    let (a, b) = (started(&one), started(&two));
    let apart = a
        .duration_since(b)
        .or_else(|_| b.duration_since(a))
        .expect("ordered");
    assert!(
        apart < Duration::from_millis(100),
        "the shards started {apart:?} apart"
    );
    assert_eq!(one["scenario"]["start_at"], start_at.as_str());

    labrun(
        &scratch,
        &[
            "run".as_ref(),
            path.as_os_str(),
            "--quiet".as_ref(),
            "--out".as_ref(),
            dir.join("whole").as_os_str(),
        ],
    )
    .expect_code(0);
    labrun(
        &scratch,
        &[
            "merge".as_ref(),
            dir.join("one/spread.json").as_os_str(),
            dir.join("two/spread.json").as_os_str(),
            "--out".as_ref(),
            dir.as_os_str(),
        ],
    )
    .expect_code(0);
    let merged = read_report(&dir.join("spread.merged.json"));
    let whole = read_report(&dir.join("whole/spread.json"));
    assert_same_counts(&merged, &whole);
    for latency in ["connect", "wait", "rtt"] {
        assert_eq!(
            merged["total"]["latency"][latency]["count"], whole["total"]["latency"][latency]["count"],
            "{latency}"
        );
    }

    merges_of_other_runs_are_refused(&scratch, &path, &elsewhere, &start_at);
    server.assert_untouched();
    scratch.assert_nothing_left();
}
