//! The JUnit XML report: one test case per check, so CI systems list labrun's checks beside
//! their own tests, with each failure carrying its findings.

use std::fmt::Write;

use super::{Report, escape_markup as escape};

/// Renders the report as a JUnit XML document (one `testsuite` for the scenario).
pub fn render(report: &Report) -> Vec<u8> {
    if let Some(error) = &report.error {
        return render_error(report, error);
    }
    let name = &report.scenario.name;
    let failures = report.checks.iter().filter(|c| !c.passed).count();
    let seconds = report.duration_ms / 1000.0;
    let mut xml = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        xml,
        "<testsuites name=\"labrun\" tests=\"{}\" failures=\"{failures}\" time=\"{seconds:.3}\">",
        report.checks.len()
    );
    let _ = writeln!(
        xml,
        "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{failures}\" errors=\"0\" skipped=\"0\" time=\"{seconds:.3}\" timestamp=\"{}\">",
        escape(name),
        report.checks.len(),
        escape(&report.started_at)
    );
    for check in &report.checks {
        let _ = write!(
            xml,
            "    <testcase classname=\"labrun.{}\" name=\"{}\" time=\"0\"",
            escape(name),
            escape(&check.name)
        );
        if check.passed {
            let _ = writeln!(
                xml,
                ">\n      <system-out>{}</system-out>\n    </testcase>",
                escape(&check.summary)
            );
            continue;
        }
        let mut details = String::new();
        for finding in report.findings.iter().filter(|f| f.check == check.name) {
            if let Some(client) = &finding.client {
                let _ = write!(details, "{client}: ");
            }
            let _ = writeln!(details, "{}\nhint: {}\n", finding.text, finding.hint);
        }
        let _ = writeln!(
            xml,
            ">\n      <failure message=\"{}\" type=\"{}\">{}</failure>\n    </testcase>",
            escape(&check.summary),
            escape(&check.name),
            escape(details.trim_end())
        );
    }
    let _ = writeln!(xml, "  </testsuite>\n</testsuites>");
    xml.into_bytes()
}

/// A run that could not start: one test case, `start`, in error, saying why.
fn render_error(report: &Report, error: &str) -> Vec<u8> {
    let name = escape(&report.scenario.name);
    let seconds = report.duration_ms / 1000.0;
    let first_line = error.lines().next().unwrap_or_default();
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
         <testsuites name=\"labrun\" tests=\"1\" failures=\"0\" errors=\"1\" time=\"{seconds:.3}\">\n  \
         <testsuite name=\"{name}\" tests=\"1\" failures=\"0\" errors=\"1\" skipped=\"0\" time=\"{seconds:.3}\" timestamp=\"{}\">\n    \
         <testcase classname=\"labrun.{name}\" name=\"start\" time=\"{seconds:.3}\">\n      \
         <error message=\"{}\" type=\"could-not-run\">{}</error>\n    </testcase>\n  </testsuite>\n</testsuites>\n",
        escape(&report.started_at),
        escape(first_line),
        escape(error)
    )
    .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::escape;

    #[test]
    fn markup_and_control_characters_cannot_escape_the_document() {
        assert_eq!(
            escape("<a href=\"x\">&'\u{1b}"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;\u{fffd}"
        );
    }
}
