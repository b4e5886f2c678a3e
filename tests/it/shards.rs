//! `--shard K/N` and `labrun merge`: a load split over processes reports as one run.

use crate::util::{Run, Scratch, echo_scenario, fixture, read_report};

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
    for figure in [
        "clients",
        "clients_completed",
        "messages",
        "bytes_sent",
        "bytes_received",
    ] {
        assert_eq!(merged["total"][figure], whole["total"][figure], "{figure}");
    }
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
    let bogus = scratch.file("bogus.json", "{\"hello\": 1}");
    labrun(&scratch, &["merge".as_ref(), bogus.as_os_str()])
        .expect_code(2)
        .stderr_has("not a labrun run report");
}
