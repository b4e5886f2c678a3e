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
fn all_four_formats_come_from_one_run() {
    let scratch = Scratch::new();
    let path = failing_scenario(&scratch);
    let run = Run::from(
        scratch
            .labrun()
            .arg("run")
            .arg(&path)
            .args(["--out"])
            .arg(scratch.reports())
            .args(["--format", "json,md,junit,html"])
            .output()
            .expect("labrun runs"),
    );
    run.expect_code(1)
        .stdout_has("formats.junit.xml")
        .stdout_has("formats.html");
    assert!(scratch.reports().join("formats.html").is_file());
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
    // Each case is timed by the phase it judges (the clients ran for a while), and the
    // run's seed, version and target are properties.
    let time = |case: &roxmltree::Node| case.attribute("time").and_then(|t| t.parse::<f64>().ok());
    assert!(cases.iter().all(|c| time(c).is_some_and(|t| t > 0.0)), "{xml}");
    let property = |name: &str| {
        document
            .descendants()
            .find(|n| n.has_tag_name("property") && n.attribute("name") == Some(name))
            .and_then(|n| n.attribute("value"))
            .map(str::to_owned)
    };
    assert_eq!(property("seed").as_deref(), Some("0"), "{xml}");
    assert!(property("labrun_version").is_some(), "{xml}");
    assert!(
        property("target.srv").is_some_and(|t| t.starts_with("127.0.0.1:")),
        "{xml}"
    );

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

#[test]
fn the_html_report_is_self_contained_and_renders_in_a_headless_browser() {
    let scratch = Scratch::new();
    let path = failing_scenario(&scratch);
    Run::from(
        scratch
            .labrun()
            .arg("run")
            .arg(&path)
            .arg("--out")
            .arg(scratch.reports())
            .args(["--format", "html"])
            .output()
            .expect("labrun runs"),
    )
    .expect_code(1);
    scratch.assert_nothing_left();
    let page_path = scratch.reports().join("formats.html");
    let page = std::fs::read_to_string(&page_path).expect("html report");
    assert!(
        page.starts_with("<!DOCTYPE html>") && page.contains("<svg"),
        "not a page with charts"
    );
    for external in ["http://", "https://", "src=", "<link"] {
        let outside = page.replace("http://www.w3.org/2000/svg", "");
        assert!(
            !outside.contains(external),
            "the page must not load anything: found {external}"
        );
    }
    assert!(page.contains("differs at byte"), "the findings are on the page");

    crate::util::assert_renders(&page_path, &scratch.dir.path().join("shot.png"), 0.02);
}

#[test]
fn the_scenario_chooses_its_formats_and_the_command_line_overrides_them() {
    let scratch = Scratch::new();
    let text = echo_scenario(
        "chosen",
        "builtin = \"echo-async\"",
        "count = 2\nmessages = 2",
        "",
    );
    let path = scratch.file(
        "chosen.toml",
        &format!("{text}\n[report]\nformats = [\"md\", \"junit\"]\n"),
    );
    let written = |args: &[&str]| {
        let out = scratch.dir.path().join(format!("out{}", args.join("-")));
        Run::from(
            scratch
                .labrun()
                .arg(&path)
                .arg("--out")
                .arg(&out)
                .args(args)
                .output()
                .expect("runs"),
        )
        .expect_code(0);
        let mut names: Vec<String> = std::fs::read_dir(&out)
            .expect("reports written")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    };
    assert_eq!(written(&[]), ["chosen.junit.xml", "chosen.md"]);
    assert_eq!(written(&["--format", "json"]), ["chosen.json"]);
    scratch.assert_nothing_left();
}

/// A server that will not start is the most common student bug: its run still writes every
/// requested report, each saying why, and the next scenario on the command line still runs;
/// the exit code is the worst (3). With `--fail-fast` the second is not run, and said so.
#[test]
fn a_run_that_cannot_start_writes_every_report_and_the_next_one_runs() {
    let scratch = Scratch::new();
    let crashing = scratch.file(
        "crashes.toml",
        &echo_scenario(
            "crashes",
            &crate::util::python_server("crash_at_start.py"),
            "count = 1\nmessages = 2",
            "",
        ),
    );
    let passing = scratch.file(
        "passes.toml",
        &echo_scenario(
            "passes",
            "builtin = \"echo-threaded\"",
            "count = 2\nmessages = 2",
            "",
        ),
    );
    let run_both = |extra: &[&str]| {
        Run::from(
            scratch
                .labrun()
                .arg("run")
                .arg(&crashing)
                .arg(&passing)
                .arg("--out")
                .arg(scratch.reports())
                .args(["--format", "json,md,junit,html"])
                .args(extra)
                .output()
                .expect("labrun runs"),
        )
    };
    let run = run_both(&[]);
    run.expect_code(3)
        .stderr_has("AttributeError")
        .stdout_has("ERROR crashes: could not run")
        .stdout_has("PASS passes");
    let reports = scratch.reports();
    let json = read_report(&reports.join("crashes.json"));
    assert_eq!(json["outcome"], "error", "{json}");
    assert!(
        json["error"].as_str().is_some_and(|e| e.contains("listne")),
        "{json}"
    );
    for file in ["crashes.md", "crashes.html"] {
        let text = std::fs::read_to_string(reports.join(file)).expect(file);
        assert!(
            text.contains("ERROR") && text.contains("listne"),
            "{file}: {text}"
        );
    }
    let junit = std::fs::read_to_string(reports.join("crashes.junit.xml")).expect("junit");
    assert!(
        junit.contains("errors=\"1\"") && junit.contains("<error message="),
        "{junit}"
    );
    assert!(junit.contains("listne"), "{junit}");
    assert_eq!(read_report(&reports.join("passes.json"))["outcome"], "pass");

    std::fs::remove_dir_all(&reports).expect("reports removed");
    let fast = run_both(&["--fail-fast"]);
    fast.expect_code(3).stderr_has("not run: passes");
    assert!(reports.join("crashes.json").is_file() && !reports.join("passes.json").exists());
    scratch.assert_nothing_left();
}

/// Without a terminal (a CI log: `CI` is set here) a long run is not silent: a progress line
/// every few seconds on stderr, counting every message; `--quiet` turns it off.
#[test]
fn a_long_run_without_a_terminal_prints_a_progress_line_every_few_seconds() {
    let scratch = Scratch::new();
    let path = scratch.file(
        "slow.toml",
        &echo_scenario(
            "slow",
            "builtin = \"echo-threaded\"",
            "count = 2\nmessages = 30\nthink = \"200ms\"",
            "",
        ),
    );
    let run = |extra: &[&str]| {
        Run::from(
            scratch
                .labrun()
                .arg("run")
                .arg(&path)
                .arg("--no-report")
                .args(extra)
                .output()
                .expect("labrun runs"),
        )
    };
    let shown = run(&[]);
    shown.expect_code(0);
    let line = shown
        .stderr
        .lines()
        .find(|l| l.starts_with("slow: ") && l.contains(" of 60 messages ("))
        .unwrap_or_else(|| panic!("no progress line in {}", shown.stderr));
    let done: u64 = line["slow: ".len()..]
        .split(' ')
        .next()
        .and_then(|n| n.parse().ok())
        .expect("a count");
    // After 5 s of 2 clients at about 5 messages a second each (some 50; fewer on a busy
    // machine): counted as they complete, not held back until a client finishes.
    assert!((10..60).contains(&done), "{line}");
    let quiet = run(&["--quiet"]);
    quiet.expect_code(0);
    assert!(!quiet.stderr.contains("messages ("), "{}", quiet.stderr);
}
