//! The JUnit XML report: one test case per check, so CI systems list labrun's checks beside
//! their own tests, with each failure carrying its findings, each case timed by the phase
//! of the run it judges, and the run's seed, version and targets as properties.

use std::fmt::Write;

use super::{Report, Tested, escape_markup as escape};

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
    write_properties(report, &mut xml);
    for check in &report.checks {
        let _ = write!(
            xml,
            "    <testcase classname=\"labrun.{}\" name=\"{}\" time=\"{:.3}\"",
            escape(name),
            escape(&check.name),
            check_seconds(report, &check.name)
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

/// The run's seed, labrun's version, the scenario file and where each server was, so that
/// a CI page says how to reproduce the run.
fn write_properties(report: &Report, xml: &mut String) {
    let plan = &report.scenario;
    let mut properties = vec![
        ("seed".to_owned(), plan.seed.to_string()),
        ("labrun_version".to_owned(), report.labrun_version.to_owned()),
        ("scenario".to_owned(), plan.source.display().to_string()),
        ("runs".to_owned(), report.repeats.len().max(1).to_string()),
    ];
    if let Tested::Servers(servers) = &report.tested {
        for server in &servers.servers {
            let target = server
                .addressed
                .clone()
                .unwrap_or_else(|| server.address.to_string());
            properties.push((format!("target.{}", server.name), target));
        }
    }
    xml.push_str("    <properties>\n");
    for (name, value) in properties {
        let _ = writeln!(
            xml,
            "      <property name=\"{}\" value=\"{}\"/>",
            escape(&name),
            escape(&value)
        );
    }
    xml.push_str("    </properties>\n");
}

/// Seconds of the phase a check judges: a server's check and `reaps` the whole run; a probe's
/// (`survives`) the probes; `concurrency` the clients and the probes; a client program's
/// check its session; every other check the clients' activity.
fn check_seconds(report: &Report, check: &str) -> f64 {
    let milliseconds = match &report.tested {
        Tested::Servers(_) if check.starts_with("server ") || check.starts_with("reaps") => {
            report.duration_ms
        }
        Tested::Servers(servers) if check.starts_with("survives") => servers.probes_ms,
        Tested::Servers(servers) if check.starts_with("concurrency") => {
            servers.total.active_ms + servers.probes_ms
        }
        Tested::Servers(servers) => servers.total.active_ms,
        Tested::ClientPrograms(programs) => programs
            .iter()
            .find(|p| p.owns_check(programs, check))
            .map_or(report.duration_ms, |p| p.duration_ms),
    };
    milliseconds / 1000.0
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
