//! What a grading run leaves behind: `grades.csv`, a Gradescope `results.json` per
//! submission, a Markdown feedback file per student, and a summary on the terminal.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::{Grades, SubmissionResult, Suite, TestResult};
use crate::report::saved::{SavedCheck, SavedFinding};
use crate::report::writer::write_atomically;
use crate::scenario::Side;

/// Writes every output under `dir`; returns the paths written.
pub fn write_all(grades: &Grades, suite: &Suite, dir: &Path) -> io::Result<Vec<PathBuf>> {
    let mut written = Vec::new();
    let csv = dir.join("grades.csv");
    write_atomically(&csv, csv_text(grades, suite).as_bytes())?;
    written.push(csv);
    for submission in &grades.submissions {
        let stem = &submission.stem;
        let results = dir.join("results").join(stem).join("results.json");
        write_gradescope(submission, suite, None, &results)?;
        written.push(results);
        let feedback = dir.join("feedback").join(format!("{stem}.md"));
        write_atomically(
            &feedback,
            feedback_text(submission, suite, grades.max_score).as_bytes(),
        )?;
        written.push(feedback);
    }
    let index = dir.join("index.html");
    write_atomically(&index, super::class_page::render(grades, suite).as_bytes())?;
    written.push(index);
    let all = dir.join("grades.json");
    let mut json = serde_json::to_vec_pretty(grades).expect("serializes");
    json.push(b'\n');
    write_atomically(&all, &json)?;
    written.push(all);
    Ok(written)
}

/// One row per submission, a column per test, then total, max and flags.
pub fn csv_text(grades: &Grades, suite: &Suite) -> String {
    let mut csv = String::from("submission");
    for test in &suite.tests {
        let _ = write!(csv, ",{}", csv_field(&test.name));
    }
    csv.push_str(",total,max,flags\n");
    for submission in &grades.submissions {
        csv.push_str(&csv_field(&submission.name));
        for test in &submission.tests {
            let _ = write!(csv, ",{}", number(test.score));
        }
        let flags = flags_of(submission);
        let _ = writeln!(
            csv,
            ",{},{},{}",
            number(submission.score()),
            number(grades.max_score),
            csv_field(&flags.join(" "))
        );
    }
    csv
}

/// What a TA should look at in a submission's results, as `FLAG:TEST` words (see
/// [`result_flags`]).
fn flags_of(submission: &SubmissionResult) -> Vec<String> {
    submission
        .tests
        .iter()
        .flat_map(|test| {
            result_flags(test)
                .into_iter()
                .map(|flag| format!("{flag}:{}", test.test))
        })
        .collect()
}

/// What a TA should look at in one test's result: `no-file` (nothing matched its file
/// patterns), `ambiguous` (several files matched; the first by name was graded), `unstable`
/// (runs disagreed), `limits` (the submission reached a resource limit).
pub(super) fn result_flags(result: &TestResult) -> Vec<&'static str> {
    let mut flags = Vec::new();
    if result.no_file {
        flags.push("no-file");
    }
    if result.file.as_ref().is_some_and(|f| !f.also_matched.is_empty()) {
        flags.push("ambiguous");
    }
    if result.unstable {
        flags.push("unstable");
    }
    if result.findings.iter().any(|f| f.class.contains("limit")) {
        flags.push("limits");
    }
    flags
}

/// Joins the `grades.csv` files of a sharded grading run into one: the headers must agree;
/// rows are sorted by submission; a submission in two parts is an error.
pub fn merge_csv(parts: &[(PathBuf, String)]) -> Result<String, String> {
    let header = parts
        .first()
        .and_then(|(_, text)| text.lines().next())
        .ok_or("no grades to merge")?;
    let mut rows: Vec<&str> = Vec::new();
    for (path, text) in parts {
        let mut lines = text.lines();
        if lines.next() != Some(header) {
            return Err(format!(
                "{}: its columns differ from the first file's",
                path.display()
            ));
        }
        rows.extend(lines.filter(|l| !l.is_empty()));
    }
    // The first field is the submission (names with commas are quoted; sorting by the
    // whole line keeps the order by name either way).
    rows.sort_unstable();
    if let Some(pair) = rows.windows(2).find(|w| first_field(w[0]) == first_field(w[1])) {
        return Err(format!(
            "submission {} is in more than one part",
            first_field(pair[0])
        ));
    }
    let mut merged = format!("{header}\n");
    for row in rows {
        merged.push_str(row);
        merged.push('\n');
    }
    Ok(merged)
}

fn first_field(row: &str) -> &str {
    if let Some(quoted) = row.strip_prefix('"') {
        let end = quoted.find("\",").map_or(row.len(), |i| i + 2);
        &row[..end]
    } else {
        row.split(',').next().unwrap_or(row)
    }
}

fn csv_field(text: &str) -> String {
    // A leading =, +, -, @, tab or carriage return would be a formula to a spreadsheet.
    let guarded = if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{text}")
    } else {
        text.to_owned()
    };
    if guarded.contains([',', '"', '\n', '\r', '\t']) {
        format!("\"{}\"", guarded.replace('"', "\"\""))
    } else {
        guarded
    }
}

/// A score as people write it: at most two decimals, no trailing zeros.
pub(super) fn number(n: f64) -> String {
    let text = format!("{n:.2}");
    text.trim_end_matches('0').trim_end_matches('.').to_owned()
}

/// Gradescope's autograder results (`results.json`), with only keys its specification
/// defines; outputs are Markdown.
#[derive(Serialize)]
struct GradescopeResults {
    score: f64,
    execution_time: f64,
    output: String,
    output_format: &'static str,
    tests: Vec<GradescopeTest>,
}

#[derive(Serialize)]
struct GradescopeTest {
    name: String,
    score: f64,
    max_score: f64,
    status: &'static str,
    output: String,
    output_format: &'static str,
    visibility: &'static str,
}

/// Writes `submission`'s results in Gradescope's format to `path`, atomically; `note` (why
/// the sandbox was not used, say) is added to the overall output.
pub fn write_gradescope(
    submission: &SubmissionResult,
    suite: &Suite,
    note: Option<&str>,
    path: &Path,
) -> io::Result<()> {
    let mut json = serde_json::to_vec_pretty(&gradescope(submission, suite, note)).expect("serializes");
    json.push(b'\n');
    write_atomically(path, &json)
}

fn gradescope(submission: &SubmissionResult, suite: &Suite, note: Option<&str>) -> GradescopeResults {
    let mut output = format!(
        "Graded by labrun {} with suite `{}`: {} / {}.",
        env!("CARGO_PKG_VERSION"),
        suite.name,
        number(submission.score()),
        number(suite.max_score())
    );
    if let Some(note) = note {
        output.push_str("\n\n");
        output.push_str(note);
    }
    GradescopeResults {
        score: submission.score(),
        execution_time: submission.tests.iter().map(|t| t.seconds).sum(),
        output,
        output_format: "md",
        tests: submission
            .tests
            .iter()
            .zip(&suite.tests)
            .map(|(result, test)| GradescopeTest {
                name: test.name.clone(),
                score: result.score,
                max_score: result.max_score,
                // By the checks, not the points: a failed test worth 0 points still failed.
                status: if result.fully_passed() { "passed" } else { "failed" },
                output: match test.hidden {
                    true => "This is a hidden test: its details are withheld.".to_owned(),
                    false => format!("```\n{}```\n", test_text(result, test).replace("```", "'''")),
                },
                output_format: "md",
                visibility: if test.hidden { "after_published" } else { "visible" },
            })
            .collect(),
    }
}

/// What a student reads about one test: each check, and the suite's advice for the failed.
fn test_text(result: &TestResult, test: &super::Test) -> String {
    let mut text = String::new();
    if let Some(file) = &result.file {
        let _ = writeln!(text, "File graded: {}", file.graded);
        if !file.also_matched.is_empty() {
            let _ = writeln!(
                text,
                "Note: {} matched too; the first by name was graded. Keep one file that \
                 matches {}.",
                file.also_matched.join(", "),
                test.launch.files.join(" or ")
            );
        }
    }
    let program = match test.under_test {
        Side::Servers => "server",
        Side::ClientPrograms => "client",
    };
    if let Some(error) = &result.error {
        let _ = writeln!(text, "The test could not judge your {program}: {error}");
    }
    for check in &result.checks {
        let mark = if check.passed { "PASS" } else { "FAIL" };
        let _ = writeln!(text, "{mark} {}: {}", check.name, check.summary);
        if !check.passed {
            failure_text(check, result, test, &mut text);
        }
    }
    if result.unstable {
        let _ = writeln!(
            text,
            "Note: this test gave different results on repeated runs ({} runs); the majority counted.",
            result.runs
        );
    }
    if !result.fully_passed()
        && let Some(command) = reproduction(result, test)
    {
        let _ = writeln!(text, "Run it yourself: {command}");
    }
    text
}

/// Under a failed check: each kind of fault found (its first example and what usually
/// causes it, in the lab's terms), then the suite's advice: `feedback."CHECK.CLASS"` for a
/// fault of that class, else `feedback.CHECK`. Advice meant for one cause never reaches a
/// student whose check failed for another.
fn failure_text(check: &SavedCheck, result: &TestResult, test: &super::Test, text: &mut String) {
    let findings: Vec<&SavedFinding> = result.findings.iter().filter(|f| f.check == check.name).collect();
    for finding in &findings {
        // A whole-server finding ("server `srv`: bounded (2) …") or the first example often
        // is the check's summary already: said once is enough.
        let said = finding
            .text
            .split_once("`: ")
            .filter(|(server, _)| server.starts_with("server `"))
            .map_or(finding.text.as_str(), |(_, rest)| rest);
        if !check.summary.contains(said) {
            let _ = writeln!(text, "     found: {}", finding.text);
        }
        if !finding.hint.is_empty() {
            let _ = writeln!(text, "     why: {}", finding.hint);
        }
    }
    let by_class = findings
        .iter()
        .find_map(|f| test.feedback.get(&format!("{}.{}", check.name, f.class)));
    if let Some(advice) = by_class.or_else(|| test.feedback.get(&check.name)) {
        let _ = writeln!(text, "     → {advice}");
    }
}

/// A command the student can run to see the test's result on their own machine: a lab's
/// `labrun check` battery, or the course's scenario file (hidden tests give none).
fn reproduction(result: &TestResult, test: &super::Test) -> Option<String> {
    if test.hidden {
        return None;
    }
    let file = result.file.as_ref().map_or("server.py", |f| f.graded.as_str());
    match &test.scenario {
        super::suite::Source::Battery { lab, .. } => Some(format!("labrun check {} {file}", lab.name())),
        super::suite::Source::File { path, .. } => path.file_name().map(|name| {
            format!(
                "labrun run {} (the course's scenario, with `{}` as the {} it launches)",
                name.to_string_lossy(),
                test.launch.command.join(" ").replace("{file}", file),
                match test.under_test {
                    Side::Servers => "server",
                    Side::ClientPrograms => "client program",
                }
            )
        }),
    }
}

fn feedback_text(submission: &SubmissionResult, suite: &Suite, max: f64) -> String {
    let mut md = format!(
        "# {} — {}\n\n**Score: {} / {}**\n",
        suite.name,
        submission.name,
        number(submission.score()),
        number(max)
    );
    for (result, test) in submission.tests.iter().zip(&suite.tests) {
        let _ = write!(
            md,
            "\n## {} — {} / {}\n\n",
            test.name,
            number(result.score),
            number(result.max_score)
        );
        if test.hidden {
            md.push_str("This is a hidden test: its details are withheld.\n");
            continue;
        }
        md.push_str("```\n");
        md.push_str(&test_text(result, test).replace("```", "'''"));
        md.push_str("```\n");
    }
    md
}

/// The check names a test's `requires`, `weights` or `feedback` gives that no run of it had:
/// most likely typos, which would give everyone 0 (`requires`), weigh nothing (`weights`)
/// or never reach a student (`feedback`). One line each, for the TA.
pub fn unknown_check_names(grades: &Grades, suite: &Suite) -> Vec<String> {
    let mut warnings = Vec::new();
    for (index, test) in suite.tests.iter().enumerate() {
        let seen: Vec<&str> = grades
            .submissions
            .iter()
            .filter_map(|s| s.tests.get(index))
            .flat_map(|r| r.checks.iter().map(|c| c.name.as_str()))
            .collect();
        if seen.is_empty() {
            continue;
        }
        let named = [
            (
                "requires",
                test.requires
                    .iter()
                    .flatten()
                    .map(String::as_str)
                    .collect::<Vec<_>>(),
            ),
            ("weights", test.weights.keys().map(String::as_str).collect()),
            (
                "feedback",
                test.feedback
                    .keys()
                    .map(|key| key.split_once('.').map_or(key.as_str(), |(check, _)| check))
                    .collect(),
            ),
        ];
        for (key, names) in named {
            for name in names.into_iter().filter(|name| !seen.contains(name)) {
                warnings.push(format!(
                    "test `{}`: `{key}` names check `{name}`, which no run of it had (its checks: {})",
                    test.name,
                    distinct(&seen).join(", ")
                ));
            }
        }
    }
    warnings.dedup();
    warnings
}

/// `names` once each, in first-seen order.
fn distinct<'a>(names: &[&'a str]) -> Vec<&'a str> {
    let mut once: Vec<&str> = Vec::new();
    for name in names {
        if !once.contains(name) {
            once.push(name);
        }
    }
    once
}

/// The terminal summary: a row per submission, the score distribution and the most
/// common failures.
pub fn render_summary(grades: &Grades, suite: &Suite, out: &mut impl Write) -> io::Result<()> {
    let name_width = grades
        .submissions
        .iter()
        .map(|s| s.name.chars().count())
        .max()
        .unwrap_or(10)
        .max(10);
    writeln!(
        out,
        "{} — {} submission(s){}",
        suite.name,
        grades.submissions.len(),
        if grades.isolated {
            ", each in its own network namespace"
        } else {
            " (no private network namespaces on this machine)"
        }
    )?;
    for submission in &grades.submissions {
        let detail: Vec<String> = submission
            .tests
            .iter()
            .map(|t| {
                let flags = result_flags(t);
                let flag = match flags.is_empty() {
                    true => String::new(),
                    false => format!(" ({})", flags.join(", ")),
                };
                format!("{} {}/{}{flag}", t.test, number(t.score), number(t.max_score))
            })
            .collect();
        writeln!(
            out,
            "  {:<name_width$}  {:>6} / {}   {}",
            submission.name,
            number(submission.score()),
            number(grades.max_score),
            detail.join(" · ")
        )?;
    }
    let mut failures: BTreeMap<String, usize> = BTreeMap::new();
    for test in grades.submissions.iter().flat_map(|s| &s.tests) {
        for check in test.checks.iter().filter(|c| !c.passed) {
            *failures
                .entry(format!("{}: {}", test.test, check.name))
                .or_default() += 1;
        }
        if test.error.is_some() {
            *failures
                .entry(format!("{}: could not run", test.test))
                .or_default() += 1;
        }
    }
    let mut common: Vec<(String, usize)> = failures.into_iter().collect();
    common.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    if !common.is_empty() {
        writeln!(out, "most common failures:")?;
        for (what, n) in common.iter().take(5) {
            writeln!(out, "  {n:>4} × {what}")?;
        }
    }
    let mut distribution: BTreeMap<u32, usize> = BTreeMap::new();
    for submission in &grades.submissions {
        // Tenths of the maximum, so the spread reads at a glance: 0-10%, ..., 100%.
        let share = submission.score() / grades.max_score.max(f64::MIN_POSITIVE);
        *distribution
            .entry(((share * 10.0).floor() as u32).min(10) * 10)
            .or_default() += 1;
    }
    writeln!(
        out,
        "score distribution (share of the maximum, rounded down to 10%):"
    )?;
    for (percent, n) in distribution.iter().rev() {
        writeln!(out, "  {percent:>3}%  {} {n}", "█".repeat((*n).min(60)))?;
    }
    let full = grades
        .submissions
        .iter()
        .filter(|s| s.score() >= grades.max_score)
        .count();
    writeln!(
        out,
        "{full} of {} submissions earned full marks",
        grades.submissions.len()
    )
}

#[cfg(test)]
mod tests {
    use super::csv_field;

    #[test]
    fn shards_merge_into_one_sorted_file_and_overlaps_are_refused() {
        use std::path::PathBuf;
        let part = |rows: &str| (PathBuf::from("p.csv"), format!("submission,echo,total\n{rows}"));
        let merged = super::merge_csv(&[part("bob,1,1\n"), part("\"a,b\",2,2\nalice,3,3\n")]).unwrap();
        assert_eq!(merged, "submission,echo,total\n\"a,b\",2,2\nalice,3,3\nbob,1,1\n");
        assert!(
            super::merge_csv(&[part("bob,1,1\n"), part("bob,2,2\n")])
                .unwrap_err()
                .contains("bob")
        );
        let other = (PathBuf::from("q.csv"), "submission,chat,total\n".to_owned());
        assert!(
            super::merge_csv(&[part(""), other])
                .unwrap_err()
                .contains("columns differ")
        );
    }

    #[test]
    fn csv_fields_are_quoted_and_never_formulas() {
        assert_eq!(csv_field("alice"), "alice");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("=HYPERLINK(1)"), "'=HYPERLINK(1)");
        assert_eq!(csv_field("\tcmd"), "\"'\tcmd\"");
        assert_eq!(csv_field("\r=1"), "\"'\r=1\"");
    }

    #[test]
    fn submission_names_are_escaped() {
        use std::os::unix::ffi::OsStrExt;
        let hostile = std::path::Path::new(std::ffi::OsStr::from_bytes(b"/subs/eve\nmallory,20,20\x1b[2J"));
        assert_eq!(
            super::super::submission_name(hostile),
            "eve\\nmallory,20,20\\x1b[2J"
        );
    }
}
