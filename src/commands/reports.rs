//! `labrun merge` and `labrun compare`: saved reports read back, joined or compared, and
//! the result printed (and, for a merge, written).

use std::io::Write;

use crate::error::Error;
use crate::report::{self, Outcome};

use super::grade::merge_grades;

pub(crate) fn merge(paths: &[std::path::PathBuf], out: Option<&std::path::Path>) -> Result<Outcome, Error> {
    if paths.iter().all(|p| p.extension().is_some_and(|e| e == "csv")) {
        return merge_grades(paths, out);
    }
    let merged = report::merge::merge(paths)?;
    let saved_to = match out {
        Some(dir) => {
            let path = dir.join(format!(
                "{}.merged.json",
                report::writer::file_stem(&merged.scenario)
            ));
            let mut bytes = serde_json::to_vec_pretty(&merged).expect("a merged report always serializes");
            bytes.push(b'\n');
            report::writer::write_atomically(&path, &bytes).map_err(|source| Error::WriteReport {
                path: path.clone(),
                source,
            })?;
            Some(path)
        }
        None => None,
    };
    let mut rendered = Vec::new();
    report::merge::render(&merged, saved_to.as_deref(), &mut rendered)
        .expect("rendering into memory cannot fail");
    let _ = std::io::stdout().lock().write_all(&rendered);
    Ok(merged.outcome)
}

pub(crate) fn compare(
    baseline: &std::path::Path,
    current: &std::path::Path,
    gates: Vec<report::compare::Tolerance>,
    json: bool,
) -> Result<Outcome, Error> {
    use report::compare;
    use report::saved::SavedReport;
    let (baseline_path, current_path) = (baseline, current);
    let (baseline, current) = (SavedReport::read(baseline)?, SavedReport::read(current)?);
    let first_line = |report: &SavedReport| {
        let error = report.error.as_deref().unwrap_or_default();
        error
            .lines()
            .next()
            .unwrap_or_default()
            .trim_end_matches(':')
            .to_owned()
    };
    if baseline.outcome == Outcome::Error {
        return Err(Error::Usage(format!(
            "the baseline `{}` is of a run whose program could not be started ({}): there is nothing to compare against",
            baseline_path.display(),
            first_line(&baseline)
        )));
    }
    // A gate must not pass a run that never ran.
    if current.outcome == Outcome::Error {
        let _ = writeln!(
            std::io::stdout(),
            "REGRESSION: the current run `{}` could not run: {}",
            current_path.display(),
            first_line(&current)
        );
        return Ok(Outcome::Fail);
    }
    let gates = if gates.is_empty() {
        compare::default_tolerances()
    } else {
        gates
    };
    if let Some(twice) = gates
        .iter()
        .enumerate()
        .find(|(i, gate)| gates[..*i].iter().any(|earlier| earlier.figure == gate.figure))
        .map(|(_, gate)| gate.figure)
    {
        return Err(Error::Usage(format!(
            "--max-regress gates `{twice}` twice: give each figure one limit"
        )));
    }
    compare::comparable(&baseline, &current).map_err(|why| {
        Error::Usage(format!(
            "cannot compare `{}` with `{}`: {why}",
            baseline_path.display(),
            current_path.display()
        ))
    })?;
    let flips = compare::flips(&baseline, &current);
    let rows = compare::compare(&baseline, &current, &gates);
    for gate in gates
        .iter()
        .filter(|gate| !rows.iter().any(|row| row.figure == gate.figure))
    {
        eprintln!(
            "warning: neither report has samples of {}: that gate judges nothing",
            gate.figure
        );
    }
    let mut rendered = Vec::new();
    if json {
        let value = compare::to_json(&flips, &rows);
        rendered = serde_json::to_vec_pretty(&value).expect("a comparison always serializes");
        rendered.push(b'\n');
    } else {
        compare::render(&baseline, &current, &flips, &rows, &mut rendered)
            .expect("rendering into memory cannot fail");
    }
    let regressed = compare::regressed(&flips, &rows);
    let _ = std::io::stdout().lock().write_all(&rendered);
    Ok(if regressed { Outcome::Fail } else { Outcome::Pass })
}
