//! Grading a folder of student submissions: every submission through every test of a suite,
//! each in a throwaway copy of its folder, in its own network namespace where the machine
//! allows, under the suite's resource limits, always torn down.
//!
//! Each test of each submission is one child `labrun run --json` on a scenario derived from
//! the test's: its servers (or, for a client test, its client programs) launch the
//! submission instead. The child does the supervising
//! (start, readiness, teardown of every process the student started); this module decides
//! what runs where, scores the child's report, and writes the outputs (`outputs`).
//!
//! Retry policy, so a grade never depends on luck: a test that does not pass completely runs
//! again; when the two runs disagree (different failed checks), a third run decides by
//! majority and the result is flagged `unstable` in every output.

mod class_page;
pub mod isolate;
pub mod outputs;
mod stems;
pub mod suite;
mod workspaces;

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::report::saved::{SavedCheck, SavedFinding};
use crate::report::writer::write_atomically;
use crate::scenario::Shard;
pub use suite::{Suite, SuiteError, Test};
use workspaces::Workspaces;

/// Most bytes of a child's stderr kept for a failing test's output.
const STDERR_KEPT: usize = 4096;
/// How long a timed-out child gets to tear its servers down after SIGTERM.
const TEARDOWN_GRACE: Duration = Duration::from_secs(8);

/// What to grade and how.
pub struct GradeOptions {
    pub suite: Suite,
    /// Submission folders, in the order given.
    pub submissions: Vec<PathBuf>,
    /// Tests run at the same time.
    pub jobs: usize,
    /// Only this slice of the submissions.
    pub shard: Option<Shard>,
    /// Where finished tests are recorded as they finish (one JSON line each).
    pub journal: PathBuf,
    /// Take the results already in the journal instead of running those tests again.
    pub resume: bool,
    /// Run every submission's programs in the sandbox (see `supervise::sandbox`).
    pub sandboxed: bool,
    /// The grading's output folder, under whose `runs/` each run's HTML report is kept for
    /// the class page to link; `None`: no run reports (Gradescope's results are one file).
    pub run_reports: Option<PathBuf>,
}

/// One line of the journal.
#[derive(Serialize, serde::Deserialize)]
struct JournalEntry {
    suite: String,
    /// The submission's folder, as the bytes of its path: students name their folders, and
    /// a name that is not UTF-8 must neither stop the journal nor be confused with another.
    #[serde(with = "path_bytes")]
    submission: PathBuf,
    result: TestResult,
}

/// A path as text when it is UTF-8, else as the list of its bytes, so that every path
/// round-trips through JSON.
mod path_bytes {
    use std::os::unix::ffi::{OsStrExt, OsStringExt};
    use std::path::{Path, PathBuf};

    #[derive(serde::Deserialize)]
    #[serde(untagged)]
    enum Written {
        Text(String),
        Bytes(Vec<u8>),
    }

    pub fn serialize<S: serde::Serializer>(path: &Path, s: S) -> Result<S::Ok, S::Error> {
        match path.to_str() {
            Some(text) => s.serialize_str(text),
            None => s.collect_seq(path.as_os_str().as_bytes()),
        }
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<PathBuf, D::Error> {
        Ok(match serde::Deserialize::deserialize(d)? {
            Written::Text(text) => PathBuf::from(text),
            Written::Bytes(bytes) => PathBuf::from(std::ffi::OsString::from_vec(bytes)),
        })
    }
}

/// A path as text for people and reports, escaped where it is not printable UTF-8.
fn path_as_text<S: serde::Serializer>(path: &Path, s: S) -> Result<S::Ok, S::Error> {
    use std::os::unix::ffi::OsStrExt;
    s.serialize_str(&crate::escape::escape_bytes(path.as_os_str().as_bytes()))
}

/// Results a previous, interrupted run of the same suite already recorded.
fn read_journal(path: &Path, suite: &str) -> Vec<JournalEntry> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Vec::new();
    };
    // A line cut short by the interruption does not parse and is simply run again.
    text.lines()
        .filter_map(|line| serde_json::from_str::<JournalEntry>(line).ok())
        .filter(|entry| entry.suite == suite)
        .collect()
}

/// The graded result of one test for one submission.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct TestResult {
    pub test: String,
    /// Points earned.
    pub score: f64,
    /// Points possible.
    pub max_score: f64,
    /// Every check of the deciding run (empty when the run produced no report).
    pub checks: Vec<SavedCheck>,
    /// Why there is no report, when there is none (the child's own words).
    pub error: Option<String>,
    /// Runs made (1 to 3, see the retry policy).
    pub runs: u32,
    /// The runs disagreed; the majority decided.
    pub unstable: bool,
    /// Seconds the runs took together.
    pub seconds: f64,
    /// The file of the submission the test ran, when it names files.
    #[serde(default)]
    pub file: Option<FileChoice>,
    /// No file of the submission matched the test's patterns (run once: it is no accident).
    #[serde(default)]
    pub no_file: bool,
    /// The first finding of each check and class of the deciding run, for the feedback.
    #[serde(default)]
    pub findings: Vec<SavedFinding>,
    /// The HTML report of each run that wrote one, in run order, relative to the grading's
    /// output folder.
    #[serde(default)]
    pub reports: Vec<String>,
}

/// The file a test runs from a submission, and the others its pattern matched too.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct FileChoice {
    /// The file graded, by its name in the submission's folder, escaped for reading (the
    /// student chose it: a newline or a terminal escape in it must not forge feedback).
    pub graded: String,
    /// Other files the same pattern matched (escaped): the submission is ambiguous, and the
    /// first by name was graded.
    pub also_matched: Vec<String>,
    /// The graded file's name as it is on disk.
    #[serde(skip)]
    pub name_on_disk: std::ffi::OsString,
}

/// Everything about one submission.
#[derive(Debug, Clone, Serialize)]
pub struct SubmissionResult {
    /// Its folder name.
    pub name: String,
    /// Its folder.
    #[serde(serialize_with = "path_as_text")]
    pub path: PathBuf,
    /// The name of its output files: `feedback/<stem>.md`, `results/<stem>/`, `runs/<stem>/`.
    pub stem: String,
    /// One result per test, in suite order.
    pub tests: Vec<TestResult>,
}

impl TestResult {
    /// Whether the deciding run was judged and every check of it held.
    pub fn fully_passed(&self) -> bool {
        self.error.is_none() && !self.checks.is_empty() && self.checks.iter().all(|c| c.passed)
    }
}

impl SubmissionResult {
    /// Points earned over all tests.
    pub fn score(&self) -> f64 {
        self.tests.iter().map(|t| t.score).sum()
    }
}

/// The whole grading run.
#[derive(Debug, Serialize)]
pub struct Grades {
    /// Suite name.
    pub suite: String,
    /// Points possible per submission.
    pub max_score: f64,
    /// Whether submissions ran in private network namespaces.
    pub isolated: bool,
    /// The slice graded, when sharded.
    pub shard: Option<String>,
    /// One entry per submission graded, in name order.
    pub submissions: Vec<SubmissionResult>,
}

/// A submission this run grades: its folder, its name (escaped) and the stem of its output
/// files.
struct Enrolled {
    path: PathBuf,
    name: String,
    stem: String,
}

/// The submissions this run grades, in name order, once each: all, or this shard's slice;
/// each with the stem of its output files, chosen over the whole class so that every shard
/// names a student's files alike and no two students' alike.
fn this_shards_submissions(options: &GradeOptions) -> Vec<Enrolled> {
    let mut submissions: Vec<PathBuf> = options.submissions.clone();
    submissions.sort();
    submissions.dedup();
    let names: Vec<String> = submissions.iter().map(|p| submission_name(p)).collect();
    let borrowed: Vec<&str> = names.iter().map(String::as_str).collect();
    let stems = stems::unique_stems(&borrowed, "submission");
    submissions
        .into_iter()
        .zip(names)
        .zip(stems)
        .map(|((path, name), stem)| Enrolled { path, name, stem })
        .enumerate()
        .filter(|(i, _)| {
            options
                .shard
                .is_none_or(|s| *i as u64 % u64::from(s.of) == u64::from(s.index - 1))
        })
        .map(|(_, submission)| submission)
        .collect()
}

/// The journal of this run, opened for appending: with `--resume`, the intact entries of
/// the last run are kept and returned; otherwise it starts empty.
fn restart_journal(
    options: &GradeOptions,
    suite: &str,
) -> std::io::Result<(Vec<JournalEntry>, Mutex<std::fs::File>)> {
    let previous = if options.resume {
        read_journal(&options.journal, suite)
    } else {
        Vec::new()
    };
    if let Some(dir) = options.journal.parent() {
        std::fs::create_dir_all(dir)?;
    }
    // The journal starts over with what is kept: nothing, or the intact entries (a line the
    // interruption cut short is dropped, so the next entry cannot be glued onto it).
    let mut kept = Vec::new();
    for entry in &previous {
        kept.extend(serde_json::to_vec(entry).expect("a journal entry serializes"));
        kept.push(b'\n');
    }
    std::fs::write(&options.journal, kept)?;
    let journal = Mutex::new(std::fs::OpenOptions::new().append(true).open(&options.journal)?);
    Ok((previous, journal))
}

/// What a grading run tells whoever shows its progress.
pub enum Progress<'a> {
    /// A test started: which submission, which test, of how many tests in the run.
    Started {
        submission: &'a str,
        test: &'a str,
        total: usize,
    },
    /// A test finished.
    Finished(Finished<'a>),
}

/// A test that just finished, for whoever shows progress.
pub struct Finished<'a> {
    /// Tests finished so far (those a resumed run took from its journal included).
    pub done: usize,
    /// Tests in this run.
    pub total: usize,
    /// The submission's name.
    pub submission: &'a str,
    /// Its result.
    pub result: &'a TestResult,
}

/// How a grading run ended.
pub enum Graded {
    /// Every test of every submission ran.
    Complete(Grades),
    /// `stop` was raised: the tests that finished before are in the journal, the others
    /// were stopped and not recorded (a resumed run runs them).
    Interrupted {
        /// Tests recorded in the journal.
        saved: usize,
        /// Tests in the run.
        total: usize,
    },
}

/// Grades every submission; `progress` is told as each test starts and finishes. Each finished test
/// is appended to the journal at once, so an interrupted run can `resume`. Raising `stop`
/// (Ctrl-C) stops the running tests' children and takes no new test.
pub fn grade(
    options: &GradeOptions,
    progress: &(dyn Fn(Progress) + Sync),
    stop: &AtomicBool,
) -> std::io::Result<Graded> {
    let isolated = isolation_available();
    let workspaces = Workspaces::open()?;
    let confinement = Confinement {
        isolated,
        sandboxed: options.sandboxed,
    };
    let suite = &options.suite;
    let submissions = this_shards_submissions(options);
    let jobs = jobs_here(options, isolated);
    let work: Vec<(usize, usize)> = (0..submissions.len())
        .flat_map(|s| (0..suite.tests.len()).map(move |t| (s, t)))
        .collect();
    let (previous, journal) = restart_journal(options, &suite.name)?;
    let mut known: Vec<Option<TestResult>> = work
        .iter()
        .map(|&(s, t)| {
            previous
                .iter()
                .find(|e| e.submission == submissions[s].path && e.result.test == suite.tests[t].name)
                .map(|e| rescored(&suite.tests[t], e.result.clone()))
        })
        .collect();
    let todo: Vec<usize> = (0..work.len()).filter(|&i| known[i].is_none()).collect();
    let results: Mutex<Vec<Option<TestResult>>> = Mutex::new(std::mem::take(&mut known));
    let next = AtomicUsize::new(0);
    let done = AtomicUsize::new(work.len() - todo.len());
    std::thread::scope(|scope| {
        for _ in 0..jobs.min(todo.len().max(1)) {
            scope.spawn(|| {
                while let Some(&i) = todo.get(next.fetch_add(1, Ordering::Relaxed)) {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let (s, t) = work[i];
                    let place = Place {
                        submission: &submissions[s].path,
                        stem: &submissions[s].stem,
                        confinement,
                        workspaces: &workspaces,
                        stop,
                        run_reports: options.run_reports.as_deref(),
                    };
                    let name = &submissions[s].name;
                    progress(Progress::Started {
                        submission: name,
                        test: &suite.tests[t].name,
                        total: work.len(),
                    });
                    let result = grade_test(suite, &suite.tests[t], &place);
                    // A test cut short by the interruption is no result: it runs on resume.
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let entry = JournalEntry {
                        suite: suite.name.clone(),
                        submission: submissions[s].path.clone(),
                        result,
                    };
                    append_to_journal(&journal, &entry);
                    progress(Progress::Finished(Finished {
                        done: done.fetch_add(1, Ordering::Relaxed) + 1,
                        total: work.len(),
                        submission: name,
                        result: &entry.result,
                    }));
                    results.lock().unwrap_or_else(std::sync::PoisonError::into_inner)[i] = Some(entry.result);
                }
            });
        }
    });
    if stop.load(Ordering::Relaxed) {
        return Ok(Graded::Interrupted {
            saved: done.load(Ordering::Relaxed),
            total: work.len(),
        });
    }
    let mut results = results
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .into_iter();
    let submissions = submissions
        .into_iter()
        .map(|enrolled| SubmissionResult {
            name: enrolled.name,
            path: enrolled.path,
            stem: enrolled.stem,
            tests: (0..suite.tests.len())
                .map(|_| results.next().flatten().expect("every job ran"))
                .collect(),
        })
        .collect();
    Ok(Graded::Complete(Grades {
        suite: suite.name.clone(),
        max_score: suite.max_score(),
        isolated,
        shard: options.shard.map(|s| s.to_string()),
        submissions,
    }))
}

/// Records `entry` in the journal, with one write: a line is in it whole or not at all.
fn append_to_journal(journal: &Mutex<std::fs::File>, entry: &JournalEntry) {
    use std::io::Write;
    let mut line = serde_json::to_vec(entry).expect("a journal entry serializes");
    line.push(b'\n');
    let mut file = journal.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let _ = file.write_all(&line).and_then(|()| file.sync_data());
}

/// Tests run at once: as asked, but one at a time without private network namespaces when
/// the suite's programs share a fixed port (they could not run side by side).
fn jobs_here(options: &GradeOptions, isolated: bool) -> usize {
    if isolated || !options.suite.uses_fixed_ports() {
        return options.jobs.max(1);
    }
    if options.jobs > 1 {
        eprintln!(
            "warning: no private network namespace here (needs root or user namespaces): \
             submissions share fixed ports, so they run one at a time"
        );
    }
    1
}

/// Where one test runs: which submission, how confined, in which workspaces, and the flag
/// that stops it.
struct Place<'a> {
    submission: &'a Path,
    /// The stem of the submission's output files.
    stem: &'a str,
    confinement: Confinement,
    workspaces: &'a Workspaces,
    stop: &'a AtomicBool,
    /// The output folder runs' reports are kept under, when they are.
    run_reports: Option<&'a Path>,
}

/// A submission's name: its folder's name, escaped, since students choose it: a newline, a
/// tab or a terminal escape in it must not forge rows or repaint a terminal anywhere it shows.
pub fn submission_name(path: &Path) -> String {
    use std::os::unix::ffi::OsStrExt;
    let raw = path.file_name().unwrap_or(path.as_os_str());
    crate::escape::escape_bytes(raw.as_bytes())
}

/// Whether this machine lets a child enter a private network namespace, tried in a child
/// so that a failure halfway (a namespace entered, its loopback not up) costs nothing.
pub fn isolation_available() -> bool {
    let mut probe = Command::new("true");
    probe
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // SAFETY: between fork and exec the closure makes only system calls (geteuid, unshare,
    // open and write of /proc/self maps, socket, ioctl) and allocates nothing.
    unsafe { probe.pre_exec(isolate::enter_private_network) };
    probe.status().is_ok_and(|s| s.success())
}

/// How a child run is kept apart from the grader, the machine and other submissions.
#[derive(Clone, Copy)]
struct Confinement {
    /// A private network namespace.
    isolated: bool,
    /// The sandbox for the submission's programs (which brings a private network too).
    sandboxed: bool,
}

/// One test of one submission, with the retry policy.
fn grade_test(suite: &Suite, test: &Test, place: &Place) -> TestResult {
    let started = Instant::now();
    let mut runs = vec![run_once(suite, test, place)];
    // A missing file stays missing, and a typo's traceback comes back: running again would
    // only take time.
    if !runs[0].fully_passed() && !runs[0].no_file && !runs[0].crashed_at_start {
        runs.push(run_once(suite, test, place));
        if runs[1].failed_checks() != runs[0].failed_checks() {
            runs.push(run_once(suite, test, place));
        }
    }
    let unstable = runs
        .windows(2)
        .any(|w| w[0].failed_checks() != w[1].failed_checks());
    // Three runs: the outcome two of them share, or, when all three differ, the worst one.
    // Otherwise the last run (one passing run, or two that agree).
    let decided = match runs.as_slice() {
        [a, b, c] if c.failed_checks() != a.failed_checks() && c.failed_checks() != b.failed_checks() => {
            [a, b, c]
                .into_iter()
                .max_by_key(|r| r.failed_checks().len())
                .expect("three runs")
        }
        [.., last] => last,
        [] => unreachable!("at least one run"),
    };
    let score = score_of(test, decided);
    let reports = match place.run_reports {
        Some(out) => keep_run_reports(out, place.stem, test, &runs),
        None => Vec::new(),
    };
    TestResult {
        test: test.name.clone(),
        score,
        max_score: test.points,
        checks: decided.checks.clone(),
        error: decided.error.clone(),
        runs: runs.len() as u32,
        unstable,
        seconds: started.elapsed().as_secs_f64(),
        file: decided.file.clone(),
        no_file: decided.no_file,
        findings: for_feedback(&decided.findings),
        reports,
    }
}

/// Saves each run's HTML report under `out/runs/<stem>/<test stem>-run<k>.html` (stems are
/// unique among students and among tests); returns their paths relative to `out`. A report
/// that cannot be saved is left out: the grade does not depend on it.
fn keep_run_reports(out: &Path, stem: &str, test: &Test, runs: &[Run]) -> Vec<String> {
    let mut kept = Vec::new();
    for (index, html) in runs
        .iter()
        .enumerate()
        .filter_map(|(i, run)| Some((i, run.html.as_ref()?)))
    {
        let relative = format!("runs/{stem}/{}-run{}.html", test.stem, index + 1);
        if write_atomically(&out.join(&relative), html).is_ok() {
            kept.push(relative);
        }
    }
    kept
}

/// Most findings of one class of one check kept for the feedback: a student learns from the
/// first example of each kind of mistake, not from the hundredth.
const FINDINGS_PER_CLASS: usize = 1;

/// The findings worth showing a student: the first of each check and class.
fn for_feedback(findings: &[SavedFinding]) -> Vec<SavedFinding> {
    let mut kept: Vec<SavedFinding> = Vec::new();
    for finding in findings {
        let same = kept
            .iter()
            .filter(|k| k.check == finding.check && k.class == finding.class)
            .count();
        if same < FINDINGS_PER_CLASS {
            kept.push(finding.clone());
        }
    }
    kept
}

/// A result read back from the journal, its points recomputed from its checks and the
/// suite's own points: the journal says what happened, never what it was worth.
fn rescored(test: &Test, mut result: TestResult) -> TestResult {
    let run = Run {
        checks: std::mem::take(&mut result.checks),
        findings: Vec::new(),
        error: result.error.take(),
        file: None,
        no_file: result.no_file,
        crashed_at_start: false,
        html: None,
    };
    result.score = score_of(test, &run);
    result.max_score = test.points;
    // The journal is a file anyone with the output folder can edit: a link on the class
    // page must still be one of labrun's run reports, inside the output folder.
    result.reports.retain(|report| is_run_report_path(report));
    result.checks = run.checks;
    result.error = run.error;
    result
}

/// The points `run` earns on `test`: nothing unless its required checks passed (by default
/// its main check, [`suite::MAIN_CHECKS`]); then all of them when every check passed, and
/// otherwise, for a `partial` test, the passed checks' share by weight, rounded down to a
/// hundredth so that shares never add up above the test's points.
fn score_of(test: &Test, run: &Run) -> f64 {
    if run.checks.is_empty() {
        return 0.0;
    }
    let passed = |name: &str| run.checks.iter().any(|c| c.name == name && c.passed);
    let gate_holds = match &test.requires {
        Some(required) => required.iter().all(|name| passed(name)),
        None => run
            .checks
            .iter()
            .filter(|c| suite::is_main_check(&c.name))
            .all(|c| c.passed),
    };
    if !gate_holds {
        return 0.0;
    }
    if run.fully_passed() {
        return test.points;
    }
    if !test.partial {
        return 0.0;
    }
    let weight = |name: &str| match test.weights.is_empty() {
        true => 1.0,
        false => test.weights.get(name).copied().unwrap_or(0.0),
    };
    let total: f64 = run.checks.iter().map(|c| weight(&c.name)).sum();
    let earned: f64 = run
        .checks
        .iter()
        .filter(|c| c.passed)
        .map(|c| weight(&c.name))
        .sum();
    if total <= 0.0 {
        return 0.0;
    }
    // A hair above the exact share keeps 2/3 of 9 at 6, not 5.99, after the float division.
    (test.points * earned / total * 100.0 + 1e-9).floor() / 100.0
}

/// One child run's result.
struct Run {
    checks: Vec<SavedCheck>,
    /// What went wrong, with the lab-terms hints, as the child's report found it.
    findings: Vec<SavedFinding>,
    error: Option<String>,
    /// The file it ran, when the test names files.
    file: Option<FileChoice>,
    /// No file matched: nothing ran.
    no_file: bool,
    /// The program crashed before it listened, with an error no timing causes.
    crashed_at_start: bool,
    /// The child's HTML report, when it wrote one.
    html: Option<Vec<u8>>,
}

impl Run {
    fn fully_passed(&self) -> bool {
        !self.checks.is_empty() && self.checks.iter().all(|c| c.passed)
    }

    fn failed_checks(&self) -> Vec<&str> {
        let mut failed: Vec<&str> = self
            .checks
            .iter()
            .filter(|c| !c.passed)
            .map(|c| c.name.as_str())
            .collect();
        if self.error.is_some() {
            failed.push("(no report)");
        }
        failed
    }
}

/// Runs one test once: copy, derive the scenario, run a child labrun, read its report.
fn run_once(suite: &Suite, test: &Test, place: &Place) -> Run {
    let Place {
        submission,
        confinement,
        workspaces,
        stop,
        run_reports,
        stem: _,
    } = *place;
    let failed = |error: String| Run {
        checks: Vec::new(),
        findings: Vec::new(),
        error: Some(error),
        file: None,
        no_file: false,
        crashed_at_start: false,
        html: None,
    };
    let Ok(workspace) = workspaces.workspace() else {
        return failed("labrun could not create a temporary folder".into());
    };
    let copy = workspace.path().join("submission");
    if let Err(why) = copy_within(submission, &copy, suite.submission.copy_limit) {
        return failed(why);
    }
    if confinement.sandboxed
        && let Err(err) = hand_to_sandbox(workspace.path())
    {
        return failed(format!("could not prepare the submission's sandbox: {err}"));
    }
    let file = match test.launch.files.is_empty() {
        true => None,
        false => match find_file(&copy, &test.launch.files) {
            Some(choice) => Some(choice),
            None => {
                return Run {
                    no_file: true,
                    ..failed(format!(
                        "no file in the submission matches {} (letter case aside)",
                        test.launch.files.join(", ")
                    ))
                };
            }
        },
    };
    let graded = file.as_ref().map(|choice| copy.join(&choice.name_on_disk));
    let scenario = match derive_scenario(suite, test, &copy, graded.as_deref()) {
        Ok(text) => text,
        Err(why) => return Run { file, ..failed(why) },
    };
    let scenario_path = workspace.path().join("scenario.toml");
    if let Err(err) = std::fs::write(&scenario_path, scenario) {
        return failed(format!("could not write the scenario: {err}"));
    }
    // Outside the copy: the sandboxed program sees only its copy, so it cannot write here.
    let report_dir = workspace.path().join("report");
    let report_dir =
        (run_reports.is_some() && std::fs::create_dir(&report_dir).is_ok()).then_some(report_dir);
    let Some(command) = child_run(&scenario_path, &copy, confinement, report_dir.as_deref()) else {
        return failed("labrun cannot find its own executable".into());
    };
    let outcome = run_bounded(command, test.timeout, stop);
    let (status, stdout, stderr) = match outcome {
        Ok(output) => output,
        Err(why) => return failed(why),
    };
    let parsed = crate::report::saved::SavedReport::parse(&stdout);
    let html = match (&report_dir, &parsed) {
        (Some(dir), Ok(report)) => read_html_report(dir, &report.scenario.name),
        _ => None,
    };
    // A report counts only from a child that finished its job: exit 0 (passed) or 1 (a check
    // failed). Whatever else its stdout holds was not written by a judge that finished: a
    // partial report after the test's timeout judges clients that never finished as if
    // nothing were wrong with them.
    let judged = matches!(status, ChildEnd::Exited(0 | 1));
    match parsed {
        Ok(report) if judged => Run {
            checks: report.checks,
            findings: report.findings,
            error: None,
            file,
            no_file: false,
            crashed_at_start: false,
            html,
        },
        _ => {
            let words = crate::escape::escape_lines_once(&stderr[..stderr.len().min(STDERR_KEPT)]);
            // The student reads this: their own file names, not the grader's copy of them.
            let words = words.replace(&format!("{}/", copy.display()), "");
            let words = words.trim().trim_start_matches("error: ");
            Run {
                file,
                crashed_at_start: crashed_deterministically(&status, words),
                html,
                ..failed(match status {
                    ChildEnd::Exited(3) => format!("it could not be started or reached: {words}"),
                    ChildEnd::TimedOut(_) => format!("the test {status}: {words}"),
                    _ => format!("the test could not finish ({status}): {words}"),
                })
            }
        }
    }
}

/// The child `labrun run --json` of one test: in the submission's copy, in its own process
/// group, confined as `confinement` says; `None` when labrun cannot find its own executable.
fn child_run(
    scenario: &Path,
    copy: &Path,
    confinement: Confinement,
    report_dir: Option<&Path>,
) -> Option<Command> {
    let mut command = Command::new(std::env::current_exe().ok()?);
    command.arg("run").arg(scenario).arg("--json");
    match report_dir {
        Some(dir) => command.arg("--out").arg(dir).args(["--format", "html"]),
        None => command.arg("--no-report"),
    };
    command
        .current_dir(copy)
        .env_remove("NO_COLOR")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    if confinement.sandboxed {
        command.args(["--sandbox", "--sandbox-owns-workdir"]);
    } else if confinement.isolated {
        command.arg("--isolate-network");
    }
    // If the grader dies (SIGKILL, a crash), the child is told to stop as on Ctrl-C: it
    // tears down the submission's processes and exits. Tied to this worker thread, which
    // outlives the child.
    // SAFETY: between fork and exec the closure makes one system call (prctl).
    unsafe {
        command.pre_exec(|| {
            crate::supervise::process::close_inherited_descriptors();
            rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::TERM))
                .map_err(std::io::Error::from)
        });
    }
    Some(command)
}

/// Whether `path` has the shape of a kept run report, `runs/<stem>/<stem>-run<k>.html`:
/// relative, three parts, each one a file stem would be left as it is.
fn is_run_report_path(path: &str) -> bool {
    let parts: Vec<&str> = path.split('/').collect();
    let stem_like = |part: &str| !part.is_empty() && crate::report::writer::file_stem(part) == part;
    matches!(parts.as_slice(), ["runs", folder, file] if stem_like(folder) && stem_like(file) && file.ends_with(".html"))
}

/// Most bytes of a run's HTML report kept: labrun's own renderer bounds what a report holds
/// (timelines, findings), so a larger file is not one it wrote whole.
const MAX_RUN_REPORT_BYTES: u64 = 32 * 1024 * 1024;

/// The HTML report a child wrote into `dir` for its scenario, when it wrote one.
fn read_html_report(dir: &Path, scenario: &str) -> Option<Vec<u8>> {
    use std::os::unix::fs::OpenOptionsExt;
    // Only the file the child names after its scenario, and only a regular file: whatever
    // else is there, a link or a pipe (which would block the grader), was not written by it.
    let path = dir.join(format!("{}.html", crate::report::writer::file_stem(scenario)));
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32 | rustix::fs::OFlags::NONBLOCK.bits() as i32)
        .open(path)
        .ok()?;
    if !file.metadata().ok()?.is_file() {
        return None;
    }
    let mut html = Vec::new();
    file.take(MAX_RUN_REPORT_BYTES + 1).read_to_end(&mut html).ok()?;
    (html.len() as u64 <= MAX_RUN_REPORT_BYTES).then_some(html)
}

/// Python errors a program may die of before it listens that timing or the machine can
/// cause (a port still held, a descriptor limit): worth another run. Any other exception
/// (an `AttributeError` from a typo, a `SyntaxError`, an `IndexError` from a missing
/// argument) comes back every time.
const TRANSIENT_ERRORS: [&str; 10] = [
    "OSError",
    "ConnectionError",
    "ConnectionRefusedError",
    "ConnectionResetError",
    "BrokenPipeError",
    "TimeoutError",
    "PermissionError",
    "BlockingIOError",
    "InterruptedError",
    "MemoryError",
];

/// Whether a child that could not start the submission's program saw it crash before it
/// listened with a Python exception that would come back on every run.
fn crashed_deterministically(status: &ChildEnd, stderr: &str) -> bool {
    if !matches!(status, ChildEnd::Exited(3)) || !stderr.contains("before accepting connections") {
        return false;
    }
    let last_error = stderr.lines().rev().find_map(|line| {
        let line = line.trim_start().trim_start_matches('|').trim();
        let (name, _) = line.split_once(':')?;
        let name = name.rsplit('.').next()?;
        let is_exception = name.ends_with("Error") || name.ends_with("Exception");
        (is_exception && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')).then_some(name)
    });
    // An OSError anywhere in the output (re-raised as another exception, say) may be the
    // real cause: run again.
    let transient_anywhere = TRANSIENT_ERRORS
        .iter()
        .any(|name| stderr.contains(&format!("{name}:")));
    !transient_anywhere && last_error.is_some_and(|name| !TRANSIENT_ERRORS.contains(&name))
}

/// Lets the sandbox's unprivileged user pass through the workspace to its working copy,
/// without listing it: the scenario beside the copy stays unreadable. (The child labrun,
/// which knows the sandbox's user, hands it the copy: `--sandbox-owns-workdir`.)
fn hand_to_sandbox(workspace: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(workspace, std::fs::Permissions::from_mode(0o711))
}

/// How a child labrun ended.
enum ChildEnd {
    /// It exited by itself with this code.
    Exited(i32),
    /// A signal killed it.
    Killed,
    /// It was stopped at the test's timeout.
    TimedOut(Duration),
}

impl std::fmt::Display for ChildEnd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ChildEnd::Exited(code) => write!(f, "the test run ended with code {code}"),
            ChildEnd::Killed => f.write_str("the test run was killed"),
            ChildEnd::TimedOut(timeout) => write!(
                f,
                "stopped after the test's timeout of {}",
                humantime::format_duration(*timeout)
            ),
        }
    }
}

/// Runs the child to completion within `timeout`; past it, or once `stop` is raised,
/// SIGTERM (the child tears its servers down and reports) and, after a grace period,
/// SIGKILL to its process group.
fn run_bounded(
    mut command: Command,
    timeout: Duration,
    stop: &AtomicBool,
) -> Result<(ChildEnd, Vec<u8>, Vec<u8>), String> {
    let mut child = command
        .spawn()
        .map_err(|e| format!("could not start labrun: {e}"))?;
    let mut stdout = child.stdout.take().expect("piped");
    let mut stderr = child.stderr.take().expect("piped");
    let out_reader = std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = stdout.read_to_end(&mut bytes);
        bytes
    });
    let err_reader = std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = (&mut stderr).take(1 << 20).read_to_end(&mut bytes);
        let _ = std::io::copy(&mut stderr, &mut std::io::sink());
        bytes
    });
    let group = rustix::process::Pid::from_child(&child);
    let deadline = Instant::now() + timeout;
    let mut terminated_at = None;
    let status = loop {
        if let Ok(Some(status)) = child.try_wait() {
            break status;
        }
        let now = Instant::now();
        match terminated_at {
            None if now >= deadline || stop.load(Ordering::Relaxed) => {
                let _ = rustix::process::kill_process_group(group, rustix::process::Signal::TERM);
                terminated_at = Some(now);
            }
            Some(at) if now >= at + TEARDOWN_GRACE => {
                let _ = rustix::process::kill_process_group(group, rustix::process::Signal::KILL);
            }
            _ => {}
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let stdout = out_reader.join().unwrap_or_default();
    let stderr = err_reader.join().unwrap_or_default();
    let status = match (terminated_at, status.code()) {
        (Some(_), _) => ChildEnd::TimedOut(timeout),
        (None, Some(code)) => ChildEnd::Exited(code),
        (None, None) => ChildEnd::Killed,
    };
    Ok((status, stdout, stderr))
}

/// The test's scenario with what it tests (its servers, or its client programs) launching
/// the submission instead.
fn derive_scenario(suite: &Suite, test: &Test, copy: &Path, file: Option<&Path>) -> Result<String, String> {
    let text = test
        .scenario
        .text()
        .map_err(|e| format!("cannot read the scenario: {e}"))?;
    let command: Vec<String> = test
        .launch
        .command
        .iter()
        .map(|arg| {
            let arg = arg.replace("{dir}", &copy.display().to_string());
            match file {
                Some(file) => arg.replace("{file}", &file.display().to_string()),
                None => arg,
            }
        })
        .collect();
    crate::scenario::replace_programs(
        &text,
        &crate::scenario::Replacement {
            side: test.under_test,
            only: test.server.as_deref(),
            command: &command,
            cwd: copy,
            port: suite.submission.port.as_ref(),
            limits: suite.submission.limits.as_ref(),
            anchor: &test.scenario.anchor(),
        },
    )
}

/// The file in `dir` (top level) a test runs: the first pattern that matches anything
/// decides, and of its matches the first by name is graded, the others recorded (students
/// name their files `Server.py` and keep `server_old.py` beside them).
fn find_file(dir: &Path, patterns: &[String]) -> Option<FileChoice> {
    use std::os::unix::ffi::OsStrExt;
    let mut names: Vec<std::ffi::OsString> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .map(|e| e.file_name())
        .collect();
    names.sort();
    let shown = |name: &std::ffi::OsString| crate::escape::escape_bytes(name.as_bytes());
    patterns.iter().find_map(|pattern| {
        let mut matching = names
            .iter()
            .filter(|name| glob_match(pattern.as_bytes(), name.as_bytes()));
        let graded = matching.next()?;
        Some(FileChoice {
            graded: shown(graded),
            also_matched: matching.map(shown).collect(),
            name_on_disk: graded.clone(),
        })
    })
}

/// `*` matches any run of characters, `?` any one; letters match in either case; nothing
/// else is special.
fn glob_match(pattern: &[u8], name: &[u8]) -> bool {
    match (pattern.first(), name.first()) {
        (None, None) => true,
        (Some(b'*'), _) => {
            glob_match(&pattern[1..], name) || (!name.is_empty() && glob_match(pattern, &name[1..]))
        }
        (Some(b'?'), Some(_)) => glob_match(&pattern[1..], &name[1..]),
        (Some(p), Some(n)) if p.eq_ignore_ascii_case(n) => glob_match(&pattern[1..], &name[1..]),
        _ => false,
    }
}

/// Copies a submission folder: regular files and folders only (symbolic links, devices and
/// sockets a student left there are not followed or copied).
/// Copies a submission's folder if it fits `limit`, measured before anything is copied (a
/// 4 GiB sparse file, or a million files, would otherwise be copied again for every test).
/// Links are not followed (they could point anywhere on the grader's machine) and not copied;
/// only regular files and folders are.
fn copy_within(from: &Path, to: &Path, limit: suite::CopyLimit) -> Result<(), String> {
    if from.symlink_metadata().is_ok_and(|m| m.file_type().is_symlink()) {
        return Err(
            "the submission's folder is a link to somewhere else: the grader follows no links; \
             give it the folder itself"
                .to_owned(),
        );
    }
    let mut bytes = 0u64;
    let mut files = 0u64;
    let mut pending = vec![from.to_owned()];
    while let Some(dir) = pending.pop() {
        let entries = std::fs::read_dir(&dir).map_err(|e| format!("could not read the submission: {e}"))?;
        for entry in entries {
            let entry = entry.map_err(|e| format!("could not read the submission: {e}"))?;
            let kind = entry
                .file_type()
                .map_err(|e| format!("could not read the submission: {e}"))?;
            files += 1;
            if kind.is_dir() {
                pending.push(entry.path());
            } else if kind.is_file() {
                bytes = bytes.saturating_add(entry.metadata().map_or(0, |m| m.len()));
            }
            if bytes > limit.bytes || files > limit.files {
                return Err(format!(
                    "the submission's folder is larger than the grader copies (the suite allows \
                     {} in at most {} files and folders: `max_size`, `max_files`): remove data, \
                     build output and virtual environments from it",
                    crate::units::bytes(limit.bytes),
                    crate::units::count(limit.files)
                ));
            }
        }
    }
    copy_tree(from, to).map_err(|e| format!("could not copy the submission: {e}"))
}

fn copy_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        let target = to.join(entry.file_name());
        if kind.is_dir() {
            copy_tree(&entry.path(), &target)?;
        } else if kind.is_file() {
            std::fs::copy(entry.path(), target)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn test(partial: bool, weights: &[(&str, f64)], requires: Option<&[&str]>) -> Test {
        Test {
            name: "echo".into(),
            stem: "echo".into(),
            scenario: suite::Source::File {
                path: PathBuf::from("echo.toml"),
                text: String::new(),
            },
            points: 10.0,
            partial,
            weights: weights.iter().map(|(n, w)| ((*n).to_owned(), *w)).collect(),
            requires: requires.map(|r| r.iter().map(|n| (*n).to_owned()).collect()),
            hidden: false,
            server: None,
            feedback: BTreeMap::new(),
            timeout: Duration::from_secs(60),
            under_test: crate::scenario::Side::Servers,
            launch: suite::Launch {
                command: vec!["python3".into()],
                files: vec!["server.py".into()],
            },
            fixed_ports: false,
        }
    }

    fn run(checks: &[(&str, bool)]) -> Run {
        Run {
            checks: checks
                .iter()
                .map(|(name, passed)| SavedCheck {
                    name: (*name).to_owned(),
                    passed: *passed,
                    summary: String::new(),
                })
                .collect(),
            findings: Vec::new(),
            error: None,
            file: None,
            no_file: false,
            crashed_at_start: false,
            html: None,
        }
    }

    /// A journal edited by hand cannot make the class page link outside the output folder.
    #[test]
    fn only_run_report_paths_are_taken_from_the_journal() {
        assert!(is_run_report_path("runs/alice/echo-run1.html"));
        assert!(is_run_report_path("runs/x-y-1a2b3c4d/echo-1-0badf00d-run2.html"));
        for forged in [
            "javascript:alert(1)",
            "../../../../etc/passwd",
            "runs/../../x.html",
            "runs/alice/../../x.html",
            "/runs/alice/echo.html",
            "runs/.hidden/echo.html",
            "runs/alice/echo.txt",
            "runs/alice/sub/echo.html",
            "runs/al ice/echo.html",
        ] {
            assert!(!is_run_report_path(forged), "{forged}");
        }
    }

    #[test]
    fn only_a_crash_no_timing_causes_is_not_run_again() {
        let typo = "server `srv` exited with status 1 before accepting connections; its last output:\n  \
                    | Traceback (most recent call last):\n  |   File \"server.py\", line 21, in main\n  \
                    | AttributeError: 'socket' object has no attribute 'listne'";
        assert!(crashed_deterministically(&ChildEnd::Exited(3), typo));
        let busy = typo.replace(
            "AttributeError: 'socket' object has no attribute 'listne'",
            "OSError: [Errno 98] Address already in use",
        );
        assert!(!crashed_deterministically(&ChildEnd::Exited(3), &busy));
        let syntax = typo.replace(
            "AttributeError: 'socket' object has no attribute 'listne'",
            "SyntaxError: invalid syntax",
        );
        assert!(crashed_deterministically(&ChildEnd::Exited(3), &syntax));
        let wrapped = typo.replace(
            "AttributeError: 'socket' object has no attribute 'listne'",
            "OSError: [Errno 98] Address already in use\n  | The above exception was the direct cause of the following exception:\n  | ServerError: cannot start",
        );
        assert!(!crashed_deterministically(&ChildEnd::Exited(3), &wrapped));
        // Not a crash before listening, or no Python traceback: run again as before.
        assert!(!crashed_deterministically(&ChildEnd::Exited(1), typo));
        assert!(!crashed_deterministically(
            &ChildEnd::Exited(3),
            "server `srv` exited with status 139 before accepting connections; its last output:\n  | Segmentation fault"
        ));
        assert!(!crashed_deterministically(
            &ChildEnd::Exited(3),
            "server `srv` did not listen within 5s"
        ));
    }

    #[test]
    fn nothing_is_earned_while_the_main_check_fails() {
        // A server that never replies: no connection errors, still up, nothing echoed.
        let never_replies = run(&[("echo", false), ("errors", true), ("survives", true)]);
        assert_eq!(score_of(&test(true, &[], None), &never_replies), 0.0);
        let one_program_silent = run(&[
            ("printed picks-1", false),
            ("exit picks-1", true),
            ("printed picks-2", true),
        ]);
        assert_eq!(score_of(&test(true, &[], None), &one_program_silent), 0.0);
        // The per-server echo check is not a main one: the gate holds, the share counts it.
        let slow = run(&[("echo", true), ("errors", true), ("server echo", false)]);
        assert_eq!(score_of(&test(true, &[], None), &slow), 6.66);
        assert_eq!(score_of(&test(false, &[], None), &slow), 0.0);
    }

    #[test]
    fn weights_and_requires_decide_the_share_and_totals_never_exceed_the_points() {
        let mixed = run(&[("echo", true), ("errors", false), ("concurrency", false)]);
        let weighted = test(
            true,
            &[("echo", 8.0), ("errors", 1.0), ("concurrency", 1.0)],
            None,
        );
        assert_eq!(score_of(&weighted, &mixed), 8.0);
        let gated = test(true, &[], Some(&["concurrency"]));
        assert_eq!(score_of(&gated, &mixed), 0.0);
        let ungated = test(true, &[], Some(&[]));
        let echo_failed = run(&[("echo", false), ("errors", true), ("survives", true)]);
        assert_eq!(score_of(&ungated, &echo_failed), 6.66);
        let thirds: f64 = [
            run(&[("echo", true), ("a", false), ("b", false)]),
            run(&[("echo", true), ("a", true), ("b", false)]),
        ]
        .iter()
        .map(|r| score_of(&test(true, &[], None), r))
        .sum();
        assert_eq!(thirds, 3.33 + 6.66);
        assert!(thirds <= 10.0);
        assert_eq!(
            score_of(&test(true, &[], None), &run(&[("echo", true), ("a", true)])),
            10.0
        );
        assert_eq!(score_of(&test(true, &[], None), &run(&[])), 0.0);
    }

    #[test]
    fn globs_match_the_way_shells_do() {
        assert!(glob_match(b"*server*.py", b"echo_server_v2.py"));
        assert!(glob_match(b"server.py", b"server.py"));
        assert!(glob_match(b"lab?.py", b"lab3.py"));
        assert!(!glob_match(b"*.py", b"server.pyc"));
        assert!(!glob_match(b"server.py", b"myserver.py"));
        assert!(glob_match(b"server.py", b"Server.PY"));
        assert!(glob_match(b"*server*.py", b"Echo_Server.py"));
    }
}
