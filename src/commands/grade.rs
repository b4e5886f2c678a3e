//! `labrun grade`: submission folders through a suite (or a lab's battery) in the sandbox,
//! grades written as files; and the merge of a sharded grading run's grades.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::cli::GradeArgs;
use crate::error::Error;
use crate::report::progress::ProgressDisplay;
use crate::report::style::{Environment, Styles};
use crate::report::{self, Outcome};
use crate::{grade, scenario, supervise};

/// `labrun grade`: the suite (a file, or a lab's battery with `--lab`) and the submissions
/// resolved from the command line, then graded.
pub(crate) fn grade(args: GradeArgs) -> Result<Outcome, Error> {
    if args.gradescope {
        return gradescope(args);
    }
    // With --lab there is no suite file: the first folder was read as one.
    let (suite, submissions) = match (args.lab, args.suite) {
        (Some(lab), first) => (
            grade::Suite::for_lab(lab)?,
            first.into_iter().chain(args.submissions).collect(),
        ),
        (None, Some(path)) => (grade::Suite::load(&path)?, args.submissions),
        (None, None) => {
            return Err(Error::Usage(
                "name a suite file, or a lab with --lab: labrun grade SUITE SUBMISSION... \
                 or labrun grade --lab LAB SUBMISSION..."
                    .into(),
            ));
        }
    };
    if submissions.is_empty() {
        return Err(Error::Usage(
            "name at least one submission folder to grade".into(),
        ));
    }
    grade_submissions(
        suite,
        submissions,
        args.jobs,
        &args.out,
        args.shard,
        args.resume,
        args.unsandboxed,
    )
}

fn grade_submissions(
    suite: grade::Suite,
    submissions: Vec<std::path::PathBuf>,
    jobs: usize,
    out: &std::path::Path,
    shard: Option<scenario::Shard>,
    resume: bool,
    unsandboxed: bool,
) -> Result<Outcome, Error> {
    if let Some(missing) = submissions.iter().find(|p| !p.is_dir()) {
        return Err(Error::Usage(format!(
            "submission `{}` is not a folder",
            missing.display()
        )));
    }
    // Fail closed: untrusted code runs in the sandbox or not at all.
    if unsandboxed {
        eprintln!(
            "warning: --unsandboxed: submissions run with labrun's own rights and see the whole \
             machine (the suite, the other submissions, the grades); for trusted code only"
        );
    } else {
        supervise::sandbox::check()?;
    }
    supervise::registry::install_panic_hook();
    let options = grade::GradeOptions {
        suite,
        submissions,
        jobs,
        shard,
        journal: out.join("grade-journal.jsonl"),
        resume,
        sandboxed: !unsandboxed,
        run_reports: Some(out.to_owned()),
    };
    let shown = GradeProgress::new();
    let progress = |event: grade::Progress| shown.show(event);
    let graded =
        grade::grade(&options, &progress, stop_on_signals()).map_err(|source| Error::WriteReport {
            path: options.journal.clone(),
            source,
        })?;
    shown.finish();
    let grades = match graded {
        grade::Graded::Complete(grades) => grades,
        grade::Graded::Interrupted { saved, total } => {
            eprintln!(
                "labrun: interrupted: {saved} of {total} tests graded and saved in {}; the \
                 tests that were running will run again. To go on: {}",
                options.journal.display(),
                resume_command()
            );
            return Ok(Outcome::Interrupted);
        }
    };
    let written =
        grade::outputs::write_all(&grades, &options.suite, out).map_err(|source| Error::WriteReport {
            path: out.to_owned(),
            source,
        })?;
    for warning in grade::outputs::unknown_check_names(&grades, &options.suite) {
        eprintln!("warning: {warning}");
    }
    let mut rendered = Vec::new();
    grade::outputs::render_summary(&grades, &options.suite, &mut rendered)
        .expect("rendering into memory cannot fail");
    let _ = writeln!(rendered, "grades in {}", written[0].display());
    let _ = std::io::stdout().lock().write_all(&rendered);
    Ok(Outcome::Pass)
}

/// Raised by Ctrl-C (or SIGTERM, or a closed terminal) during a grading run.
static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn raise_stop(_signal: libc::c_int) {
    STOP.store(true, Ordering::Relaxed);
}

/// Makes Ctrl-C, SIGTERM and SIGHUP stop the grading run (its running tests' children are
/// told to tear down, nothing new starts) instead of killing labrun without a word.
fn stop_on_signals() -> &'static AtomicBool {
    for signal in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
        unsafe {
            libc::signal(signal, raise_stop as *const () as libc::sighandler_t);
        }
    }
    &STOP
}

/// This command line with `--resume`, as a user would type it again in a POSIX shell
/// (bash's `$'…'` for bytes that are not printable UTF-8: folder names are students').
fn resume_command() -> String {
    let mut words: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if !words.iter().any(|w| w == "--resume") {
        words.push("--resume".into());
    }
    let quoted: Vec<String> = words.iter().map(|word| shell_word(word)).collect();
    quoted.join(" ")
}

/// `word` quoted for a POSIX shell: as is when plain, in single quotes when printable UTF-8,
/// else as bash's `$'…'` with each other byte as `\xHH`.
fn shell_word(word: &std::ffi::OsStr) -> String {
    use std::os::unix::ffi::OsStrExt;
    match word.to_str() {
        Some(text)
            if !text.is_empty()
                && text
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_./=:,@".contains(c)) =>
        {
            text.to_owned()
        }
        Some(text) if !text.chars().any(char::is_control) => format!("'{}'", text.replace('\'', "'\\''")),
        _ => {
            let mut quoted = String::from("$'");
            for &byte in word.as_bytes() {
                match byte {
                    b'\\' | b'\'' => {
                        quoted.push('\\');
                        quoted.push(char::from(byte));
                    }
                    0x20..=0x7e => quoted.push(char::from(byte)),
                    _ => quoted.push_str(&format!("\\x{byte:02x}")),
                }
            }
            quoted.push('\'');
            quoted
        }
    }
}

/// A grading run's progress: on a terminal a bar over the tests, naming those running now,
/// like a run's progress bar; each finished test is a line as it finishes (above the bar on
/// a terminal), so a long run shows who got what while it goes on, and a CI log has them
/// without a terminal.
struct GradeProgress {
    bar: Option<indicatif::ProgressBar>,
    /// `student · test` of each test running.
    running: std::sync::Mutex<Vec<String>>,
}

impl GradeProgress {
    fn new() -> GradeProgress {
        let on_a_terminal = Styles::resolve(Environment::detect(), false).progress == ProgressDisplay::Bar;
        let bar = on_a_terminal.then(|| {
            indicatif::ProgressBar::new(0).with_style(
                indicatif::ProgressStyle::with_template(
                    "grading {bar:30} {pos}/{len} tests, {elapsed}{wide_msg}",
                )
                .expect("constant template is valid"),
            )
        });
        GradeProgress {
            bar,
            running: std::sync::Mutex::new(Vec::new()),
        }
    }

    fn show(&self, event: grade::Progress) {
        let mut running = self
            .running
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let finished = match event {
            grade::Progress::Started {
                submission,
                test,
                total,
            } => {
                running.push(format!("{submission} · {test}"));
                if let Some(bar) = &self.bar {
                    bar.set_length(total as u64);
                }
                None
            }
            grade::Progress::Finished(finished) => {
                let label = format!("{} · {}", finished.submission, finished.result.test);
                if let Some(at) = running.iter().position(|r| *r == label) {
                    running.remove(at);
                }
                Some(finished)
            }
        };
        let Some(bar) = &self.bar else {
            if let Some(finished) = finished {
                let _ = writeln!(std::io::stdout(), "{}", finished_line(&finished));
            }
            return;
        };
        bar.set_message(match running.is_empty() {
            true => String::new(),
            false => format!(" · running {}", running.join(", ")),
        });
        if let Some(finished) = finished {
            bar.set_position(finished.done as u64);
            bar.println(finished_line(&finished));
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

/// One finished test as a line: progress, student, test, points, and the first reason it
/// lost points.
fn finished_line(finished: &grade::Finished) -> String {
    let result = finished.result;
    let why = match (&result.error, result.checks.iter().find(|c| !c.passed)) {
        (Some(error), _) => error.lines().next().unwrap_or_default().to_owned(),
        (None, Some(check)) => format!("{}: {}", check.name, check.summary),
        (None, None) if result.score < result.max_score => {
            "a check its points require (`requires`) was not among its checks".to_owned()
        }
        (None, None) => "every check passed".to_owned(),
    };
    let why: String = match why.chars().count() > WHY_CHARS {
        true => why.chars().take(WHY_CHARS).chain(['…']).collect(),
        false => why,
    };
    format!(
        "[{}/{}] {} · {} {}/{} · {why}",
        finished.done, finished.total, finished.submission, result.test, result.score, result.max_score
    )
}

/// How much of the reason a finished test's line shows.
const WHY_CHARS: usize = 100;

/// `labrun grade --gradescope`: the one submission of a Gradescope autograder run, graded
/// into exactly `results/results.json` of the autograder folder.
fn gradescope(args: GradeArgs) -> Result<Outcome, Error> {
    if !args.submissions.is_empty() || args.shard.is_some() || args.resume {
        return Err(Error::Usage(
            "--gradescope grades the one submission in the autograder folder: name no \
             submission folders, --shard or --resume"
                .into(),
        ));
    }
    let suite = match (args.lab, args.suite) {
        (Some(lab), None) => grade::Suite::for_lab(lab)?,
        (None, Some(path)) => grade::Suite::load(&path)?,
        (None, None) => grade::Suite::load(&args.autograder.join("source/suite.toml"))?,
        (Some(_), Some(path)) => {
            return Err(Error::Usage(format!(
                "--gradescope with --lab grades the lab's battery: `{}` would be a second suite",
                path.display()
            )));
        }
    };
    let submission = args.autograder.join("submission");
    if !submission.is_dir() {
        return Err(Error::Usage(format!(
            "--gradescope: `{}` is not a folder (is this a Gradescope autograder container? \
             --autograder DIR names another folder)",
            submission.display()
        )));
    }
    // Gradescope runs each submission in a container of its own, often without the
    // privileges the sandbox needs: there, grading goes on without it, and says so.
    let unsandboxed_because = match args.unsandboxed {
        true => Some("--unsandboxed was given".to_owned()),
        false => supervise::sandbox::check().err().map(|why| why.to_string()),
    };
    if let Some(why) = &unsandboxed_because {
        eprintln!("warning: grading without the sandbox: {why}");
    }
    supervise::registry::install_panic_hook();
    let journal = tempfile::tempdir().map_err(Error::Runtime)?;
    let options = grade::GradeOptions {
        suite,
        submissions: vec![submission],
        jobs: args.jobs,
        shard: None,
        journal: journal.path().join("grade-journal.jsonl"),
        resume: false,
        sandboxed: unsandboxed_because.is_none(),
        run_reports: None,
    };
    let graded = grade::grade(&options, &|_| {}, stop_on_signals()).map_err(|source| Error::WriteReport {
        path: options.journal.clone(),
        source,
    })?;
    let grade::Graded::Complete(grades) = graded else {
        return Ok(Outcome::Interrupted);
    };
    let Some(graded) = grades.submissions.first() else {
        return Err(Error::Usage("--gradescope: the submission was not graded".into()));
    };
    let results = args.autograder.join("results/results.json");
    let note = unsandboxed_because.map(|why| format!("Graded without labrun's sandbox ({why})."));
    grade::outputs::write_gradescope(graded, &options.suite, note.as_deref(), &results).map_err(
        |source| Error::WriteReport {
            path: results.clone(),
            source,
        },
    )?;
    let _ = writeln!(
        std::io::stdout(),
        "score {} / {} · {}",
        graded.score(),
        grades.max_score,
        results.display()
    );
    Ok(Outcome::Pass)
}

/// `labrun merge shard-*/grades.csv`: the grades of a sharded grading run as one file.
pub(crate) fn merge_grades(
    paths: &[std::path::PathBuf],
    out: Option<&std::path::Path>,
) -> Result<Outcome, Error> {
    let mut parts = Vec::with_capacity(paths.len());
    for path in paths {
        let text = std::fs::read_to_string(path).map_err(|e| {
            Error::ReadReport(report::saved::ReadError {
                path: path.clone(),
                reason: e.to_string(),
            })
        })?;
        parts.push((path.clone(), text));
    }
    let merged = grade::outputs::merge_csv(&parts).map_err(Error::Usage)?;
    let rows = merged.lines().count().saturating_sub(1);
    let mut said = format!("{rows} submissions from {} grade files", paths.len());
    if let Some(dir) = out {
        let path = dir.join("grades.csv");
        report::writer::write_atomically(&path, merged.as_bytes()).map_err(|source| Error::WriteReport {
            path: path.clone(),
            source,
        })?;
        said.push_str(&format!(" · {}", path.display()));
    }
    let _ = writeln!(std::io::stdout(), "{said}");
    Ok(Outcome::Pass)
}

#[cfg(test)]
mod tests {
    use super::shell_word;
    use std::os::unix::ffi::OsStrExt;

    #[test]
    fn resume_words_are_quoted_for_a_shell() {
        let word = |bytes: &[u8]| shell_word(std::ffi::OsStr::from_bytes(bytes));
        assert_eq!(word(b"--out"), "--out");
        assert_eq!(word(b"my class"), "'my class'");
        assert_eq!(word(b"it's"), "'it'\\''s'");
        assert_eq!(word(b"o\xffbad"), "$'o\\xffbad'");
        assert_eq!(word(b"a\nb'c"), "$'a\\x0ab\\'c'");
        assert_eq!(word(b""), "''");
    }
}
