//! Report formats and terminal etiquette: `--format json,md,junit`, `--json`, and no escape
//! codes or progress bars when stdout is not a terminal.

use crate::util::{Run, Scratch, echo_scenario, fixture, read_report};

/// A run with a failing check (a corrupting server), so every format has a failure to show.
fn failing_scenario(scratch: &Scratch) -> std::path::PathBuf {
    scratch.file(
        "formats.toml",
        &echo_scenario(
            "formats",
            &format!(
                "command = [\"python3\", \"{}\", \"{{port}}\"]",
                fixture("corrupt_echo.py")
            ),
            "count = 2\nmessages = 3\nsize = 600",
            "latency = { p99 = \"1s\" }",
        ),
    )
}

#[test]
fn json_markdown_and_junit_are_written_side_by_side() {
    let scratch = Scratch::new();
    let path = failing_scenario(&scratch);
    let run = Run::from(
        scratch
            .labrun()
            .arg("run")
            .arg(&path)
            .args(["--out"])
            .arg(scratch.reports())
            .args(["--format", "json,md,junit"])
            .output()
            .expect("labrun runs"),
    );
    run.expect_code(1).stdout_has("formats.junit.xml");
    scratch.assert_nothing_left();
    let report = read_report(&scratch.reports().join("formats.json"));
    let checks = report["checks"].as_array().expect("checks");

    let xml = std::fs::read_to_string(scratch.reports().join("formats.junit.xml")).expect("junit");
    let document = roxmltree::Document::parse(&xml).expect("well-formed XML");
    let cases: Vec<_> = document
        .descendants()
        .filter(|n| n.has_tag_name("testcase"))
        .collect();
    assert_eq!(cases.len(), checks.len());
    let failed: Vec<&str> = cases
        .iter()
        .filter(|c| c.children().any(|n| n.has_tag_name("failure")))
        .filter_map(|c| c.attribute("name"))
        .collect();
    assert_eq!(failed, ["echo"], "{xml}");
    let failure = document
        .descendants()
        .find(|n| n.has_tag_name("failure"))
        .expect("failure");
    assert!(failure.text().expect("text").contains("differs at byte"), "{xml}");

    let markdown = std::fs::read_to_string(scratch.reports().join("formats.md")).expect("markdown");
    assert!(markdown.starts_with("## labrun: formats — FAIL"), "{markdown}");
    assert!(markdown.contains("| echo | ❌ FAIL |"), "{markdown}");
    assert!(markdown.contains("### Findings"), "{markdown}");
}

#[test]
fn json_mode_prints_only_the_report_on_stdout() {
    let scratch = Scratch::new();
    let path = failing_scenario(&scratch);
    let run = Run::from(
        scratch
            .labrun()
            .arg(&path)
            .args(["--json", "--no-report"])
            .output()
            .expect("labrun runs"),
    );
    run.expect_code(1);
    let report: serde_json::Value = serde_json::from_str(&run.stdout).expect("stdout is one JSON document");
    assert_eq!(report["outcome"], "fail");
    assert_eq!(report["scenario"]["name"], "formats");
    scratch.assert_nothing_left();
}

#[test]
fn without_a_terminal_there_are_no_escape_codes_or_progress_bars() {
    let scratch = Scratch::new();
    let path = failing_scenario(&scratch);
    // CI is unset here on purpose: only the missing terminal must turn the styling off.
    let run = Run::from(
        scratch
            .labrun()
            .env_remove("CI")
            .arg(&path)
            .arg("--no-report")
            .output()
            .expect("labrun runs"),
    );
    run.expect_code(1).stdout_has("FAIL  echo");
    for (stream, text) in [("stdout", &run.stdout), ("stderr", &run.stderr)] {
        assert!(!text.contains('\u{1b}'), "escape code on {stream}:\n{text}");
        assert!(
            !text.contains('\r'),
            "carriage return (a progress bar) on {stream}:\n{text}"
        );
    }
    scratch.assert_nothing_left();
}
