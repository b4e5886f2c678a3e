//! `index.html` of a grading run: the class at a glance for the TA, one self-contained page
//! (no script, no outside file): the score distribution as a chart, the pass rate of each
//! test and check, the most common findings with the students they hit, the flags, and a
//! row per student linking to their feedback and to the HTML report of each of their runs.
//!
//! Everything a student chose (folder names, file names, their programs' output inside
//! findings) is escaped: a submission named `<script>` is text on this page.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::outputs::{number, result_flags};
use super::{Grades, SubmissionResult, Suite, TestResult};
use crate::report::escape_markup as esc;

/// Most students listed beside one finding before "and N more".
const STUDENTS_PER_FINDING: usize = 8;

/// The page, for `grades` of `suite`.
pub fn render(grades: &Grades, suite: &Suite) -> String {
    let mut page = String::new();
    let _ = write!(
        page,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>{name} — grades</title><style>{STYLE}</style></head><body>\n\
         <h1>{name}: {n} submission{s}</h1>\n",
        name = esc(&suite.name),
        n = grades.submissions.len(),
        s = if grades.submissions.len() == 1 { "" } else { "s" },
    );
    distribution(grades, &mut page);
    pass_rates(grades, suite, &mut page);
    common_findings(grades, &mut page);
    students(grades, suite, &mut page);
    page.push_str("</body></html>\n");
    page
}

const STYLE: &str = "body{font-family:sans-serif;margin:2em;color:#222}\
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:.3em .6em;text-align:left}\
td.n{text-align:right}.flag{color:#a40}a.run{font-size:smaller;margin-left:.3em}.bar{fill:#47a}svg text{font-size:12px;fill:#222}";

/// Tenths of the maximum (0-10 %, …, 100 %) as a bar chart, in SVG.
fn distribution(grades: &Grades, page: &mut String) {
    let mut tenths = [0usize; 11];
    for submission in &grades.submissions {
        let share = submission.score() / grades.max_score.max(f64::MIN_POSITIVE);
        tenths[((share * 10.0).floor().max(0.0) as usize).min(10)] += 1;
    }
    let most = tenths.iter().copied().max().unwrap_or(0).max(1);
    // Room above the bars for their counts, and below for the axis.
    let (width, height, bar, top) = (11 * 44 + 40, 180, 36, 20);
    let _ = write!(
        page,
        "<h2>Score distribution</h2>\n<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" \
         height=\"{}\" role=\"img\" aria-label=\"students per tenth of the maximum score\">",
        height + top + 30
    );
    for (tenth, count) in tenths.iter().enumerate() {
        let tall = count * height / most;
        let x = 30 + tenth * 44;
        let _ = write!(
            page,
            "<rect class=\"bar\" x=\"{x}\" y=\"{}\" width=\"{bar}\" height=\"{tall}\"/>\
             <text x=\"{}\" y=\"{}\">{count}</text><text x=\"{x}\" y=\"{}\">{}%</text>",
            top + height - tall,
            x + 12,
            top + height - tall - 5,
            top + height + 18,
            tenth * 10
        );
    }
    page.push_str("</svg>\n");
}

/// Share of submissions that passed each test whole, and each check of each test.
fn pass_rates(grades: &Grades, suite: &Suite, page: &mut String) {
    let total = grades.submissions.len();
    page.push_str("<h2>Pass rates</h2>\n<table><tr><th>test</th><th>check</th><th>passed</th></tr>\n");
    for (index, test) in suite.tests.iter().enumerate() {
        let results: Vec<&TestResult> = grades
            .submissions
            .iter()
            .filter_map(|s| s.tests.get(index))
            .collect();
        let whole = results
            .iter()
            .filter(|r| r.score >= r.max_score && r.max_score > 0.0)
            .count();
        let _ = writeln!(
            page,
            "<tr><th>{}</th><td>(whole test)</td><td class=\"n\">{whole} of {total}</td></tr>",
            esc(&test.name)
        );
        let mut checks: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
        for check in results.iter().flat_map(|r| &r.checks) {
            let (passed, seen) = checks.entry(check.name.as_str()).or_default();
            *passed += usize::from(check.passed);
            *seen += 1;
        }
        for (check, (passed, seen)) in checks {
            let _ = writeln!(
                page,
                "<tr><td></td><td>{}</td><td class=\"n\">{passed} of {seen}</td></tr>",
                esc(check)
            );
        }
    }
    page.push_str("</table>\n");
}

/// Failed checks by test, check and fault class, most frequent first, with who they hit.
fn common_findings(grades: &Grades, page: &mut String) {
    let mut hits: BTreeMap<String, Vec<&str>> = BTreeMap::new();
    for submission in &grades.submissions {
        for result in &submission.tests {
            let mut kinds: Vec<String> = result
                .checks
                .iter()
                .filter(|c| !c.passed)
                .map(|check| {
                    let class = result
                        .findings
                        .iter()
                        .find(|f| f.check == check.name)
                        .map(|f| f.class.as_str());
                    match class {
                        Some(class) => format!("{} · {} · {class}", result.test, check.name),
                        None => format!("{} · {}", result.test, check.name),
                    }
                })
                .collect();
            if result.error.is_some() {
                kinds.push(format!("{} · could not run", result.test));
            }
            for kind in kinds {
                hits.entry(kind).or_default().push(&submission.name);
            }
        }
    }
    let mut common: Vec<(String, Vec<&str>)> = hits.into_iter().collect();
    common.sort_by(|a, b| b.1.len().cmp(&a.1.len()).then(a.0.cmp(&b.0)));
    page.push_str("<h2>Most common failures</h2>\n");
    if common.is_empty() {
        page.push_str("<p>Every check of every submission passed.</p>\n");
        return;
    }
    page.push_str("<table><tr><th>test · check · kind</th><th>students</th><th>who</th></tr>\n");
    for (kind, students) in common.iter().take(10) {
        let mut who: Vec<String> = students
            .iter()
            .take(STUDENTS_PER_FINDING)
            .map(|s| esc(s))
            .collect();
        if students.len() > STUDENTS_PER_FINDING {
            who.push(format!("and {} more", students.len() - STUDENTS_PER_FINDING));
        }
        let _ = writeln!(
            page,
            "<tr><td>{}</td><td class=\"n\">{}</td><td>{}</td></tr>",
            esc(kind),
            students.len(),
            // One name a line: a folder called "alice, bob" must not read as two students.
            who.join("<br>")
        );
    }
    page.push_str("</table>\n");
}

/// A row per student: total, each test's points with its runs' reports, the flags, and
/// their feedback.
fn students(grades: &Grades, suite: &Suite, page: &mut String) {
    page.push_str("<h2>Students</h2>\n<table><tr><th>student</th><th>total</th>");
    for test in &suite.tests {
        let _ = write!(page, "<th>{}</th>", esc(&test.name));
    }
    page.push_str("<th>flags</th><th>feedback</th></tr>\n");
    for submission in &grades.submissions {
        student_row(submission, grades.max_score, page);
    }
    page.push_str("</table>\n");
}

fn student_row(submission: &SubmissionResult, max: f64, page: &mut String) {
    let _ = write!(
        page,
        "<tr><td>{}</td><td class=\"n\">{} / {}</td>",
        esc(&submission.name),
        number(submission.score()),
        number(max)
    );
    let mut all_flags = Vec::new();
    for result in &submission.tests {
        let _ = write!(page, "<td class=\"n\">{}", number(result.score));
        for (index, report) in result.reports.iter().enumerate() {
            let _ = write!(
                page,
                " <a class=\"run\" href=\"{}\">run {}</a>",
                esc(report),
                index + 1
            );
        }
        page.push_str("</td>");
        all_flags.extend(
            result_flags(result)
                .into_iter()
                .map(|flag| format!("{flag}: {}", result.test)),
        );
    }
    let _ = writeln!(
        page,
        "<td class=\"flag\">{}</td><td><a href=\"feedback/{}.md\">feedback</a></td></tr>",
        esc(&all_flags.join(", ")),
        esc(&submission.stem)
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::saved::{SavedCheck, SavedFinding};

    /// A folder name, a check summary and a finding are the students' words: on the page
    /// they are text, never markup.
    #[test]
    fn what_students_chose_is_text_on_the_page() {
        let suite = Suite::for_lab(crate::check::Lab::EchoThreaded).expect("the lab's suite");
        let hostile = "<script>alert(1)</script>";
        let result = |test: &str| TestResult {
            test: test.to_owned(),
            score: 0.0,
            max_score: 10.0,
            checks: vec![SavedCheck {
                name: "echo".into(),
                passed: false,
                summary: hostile.into(),
            }],
            error: None,
            runs: 1,
            unstable: false,
            seconds: 1.0,
            file: None,
            no_file: false,
            findings: vec![SavedFinding {
                check: "echo".into(),
                class: "<img onerror=x>".into(),
                text: hostile.into(),
                hint: String::new(),
            }],
            reports: vec!["runs/<b>-0/echo-run1.html".into()],
        };
        let grades = Grades {
            suite: suite.name.clone(),
            max_score: suite.max_score(),
            isolated: true,
            shard: None,
            submissions: vec![SubmissionResult {
                name: hostile.into(),
                path: hostile.into(),
                stem: "student".into(),
                tests: suite.tests.iter().map(|t| result(&t.name)).collect(),
            }],
        };
        let page = render(&grades, &suite);
        assert!(!page.contains("<script") && !page.contains("<img"), "{page}");
        assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"), "{page}");
        assert!(
            page.contains("href=\"runs/&lt;b&gt;-0/echo-run1.html\">run 1</a>"),
            "{page}"
        );
    }
}
