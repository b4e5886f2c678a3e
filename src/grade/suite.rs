//! The grading suite file: how a submission is started and which scenarios grade it.
//!
//! ```toml
//! name = "lab3"
//! lab = "echo-threaded"                        # optional: the lab's `labrun check` battery,
//! lab_points = 10                              # a test per phase worth this (default 10)
//! [submission]
//! command = ["python3", "{file}", "{port}"]   # {file}: first match of `files`; {dir}: the copy
//! files = ["server.py", "*server*.py"]
//! port = 6000                                  # the port the lab's programs hard-code
//! limits = { cpu = "20s", memory = "512MiB" }
//! timeout = "120s"                             # per test
//! [submission.client]                          # the submission's client program, if graded
//! files = ["client.py", "*client*.py"]         # (command: the submission's unless given)
//! [[test]]
//! name = "echo"
//! scenario = "../scenarios/threaded.toml"      # relative to this file
//! points = 10
//! weights = { echo = 8, errors = 1, survives = 1 } # a partial score's share per check
//! requires = ["echo"]                          # nothing earned unless these pass
//! [[test]]
//! name = "client"
//! scenario = "echo-client.toml"                # has [[client_program]]: the client is graded
//! points = 5
//! files = ["echo_client.py"]                   # this test's own file patterns (and `command`)
//! ```
//!
//! A test's scenario is a normal scenario file: the suite replaces the launch of what it
//! tests with the submission's, so the same file that checks a built-in (or a lab client) in
//! CI grades students. A scenario with `[[server]]`s grades the submission's server; one
//! with `[[client_program]]`s grades its client (`[submission.client]`), against the
//! servers labrun plays. Each test may name its own `files` and `command`.
//!
//! Paths: `scenario` is relative to the suite file; `command` and `files` name the
//! submission's files, relative to its copy, where it runs (never the suite's folder, where
//! an instructor's own `server.py` may lie).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::check::Lab;
use crate::scenario::{self, ByteCount, Diagnostic, DurationValue, Side};

/// The default time one test of one submission may take, start to teardown.
pub const DEFAULT_TEST_TIMEOUT: Duration = Duration::from_secs(120);

/// Why a suite could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum SuiteError {
    /// The suite file could not be read.
    #[error("cannot read suite `{}`", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The suite file is not valid.
    #[error("{0}")]
    Invalid(Box<Diagnostic>),
    /// A test's scenario is invalid.
    #[error("suite test `{test}`: {why}")]
    Scenario {
        test: String,
        /// Why (in the message, once).
        why: scenario::ScenarioError,
    },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSuite {
    name: String,
    submission: RawSubmission,
    /// A lab whose `labrun check` battery grades: each phase a test.
    lab: Option<Lab>,
    /// Points of each phase of `lab`'s battery (default 10).
    lab_points: Option<f64>,
    #[serde(rename = "test", default)]
    tests: Vec<RawTest>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSubmission {
    command: Vec<String>,
    #[serde(default)]
    files: Vec<String>,
    port: Option<toml::Value>,
    limits: Option<toml::Value>,
    timeout: Option<DurationValue>,
    client: Option<RawLaunch>,
    max_size: Option<ByteCount>,
    max_files: Option<u64>,
}

/// `[submission.client]`, or a test's own `command` and `files`: what to launch.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLaunch {
    command: Option<Vec<String>>,
    files: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTest {
    name: String,
    scenario: PathBuf,
    points: f64,
    #[serde(default = "yes")]
    partial: bool,
    #[serde(default)]
    weights: BTreeMap<String, f64>,
    requires: Option<Vec<String>>,
    #[serde(default)]
    hidden: bool,
    server: Option<String>,
    timeout: Option<DurationValue>,
    #[serde(default)]
    feedback: BTreeMap<String, String>,
    command: Option<Vec<String>>,
    files: Option<Vec<String>>,
}

fn yes() -> bool {
    true
}

/// A validated suite.
#[derive(Debug, Clone)]
pub struct Suite {
    /// Suite name.
    pub name: String,
    /// How to start a submission.
    pub submission: Submission,
    /// The tests, in file order.
    pub tests: Vec<Test>,
}

/// How a submission is started.
#[derive(Debug, Clone)]
pub struct Submission {
    /// The port its servers use, as in a scenario (`6000` or `"auto"`), when given.
    pub port: Option<toml::Value>,
    /// Resource limits for its servers, as in a scenario.
    pub limits: Option<toml::Value>,
    /// The most a submission's folder may hold to be copied and graded: bytes (as the files
    /// say, holes of sparse files included) and files.
    pub copy_limit: CopyLimit,
}

/// How big a submission folder the grader copies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CopyLimit {
    /// Bytes in all files together.
    pub bytes: u64,
    /// Files and folders.
    pub files: u64,
}

impl Default for CopyLimit {
    /// Ample for any lab's source files; far below a folder that would fill the disk once
    /// per test run.
    fn default() -> Self {
        CopyLimit {
            bytes: 64 * 1024 * 1024,
            files: 10_000,
        }
    }
}

/// What one test launches from the submission: a program and the files it may be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Launch {
    /// The program and its arguments; `{file}` and `{dir}` are substituted by the grader,
    /// `{port}` (and `{port:NAME}` for a client) by the run.
    pub command: Vec<String>,
    /// File-name patterns (`*` and `?`), tried in order; `{file}` is the first match.
    pub files: Vec<String>,
}

/// A test per phase of `lab`'s battery, each worth `points` and its scenario from labrun
/// itself, checked with a stand-in program (each run puts the submission's in).
fn battery_tests(lab: crate::check::Lab, points: f64) -> impl Iterator<Item = (RawTest, Source)> {
    let stand_in = crate::check::command_of(lab, &["submission.py".to_owned()]).unwrap_or_default();
    lab.phases().into_iter().map(move |phase| {
        let test = RawTest {
            name: phase.name.to_owned(),
            scenario: PathBuf::from(format!("{}-{}.toml", lab.name(), phase.name)),
            points,
            // A phase is there for one bug: passing it whole is what it is worth.
            partial: false,
            weights: BTreeMap::new(),
            requires: None,
            hidden: false,
            server: None,
            timeout: None,
            feedback: BTreeMap::new(),
            command: None,
            files: None,
        };
        let text = crate::check::scenario_text(lab, phase, &stand_in);
        (test, Source::Battery { lab, text })
    })
}

/// One test of the suite: its scenario loaded, what it replaces with the submission's
/// program, and how that program is launched.
fn resolve_test(
    test: RawTest,
    source: Source,
    submission: &RawSubmission,
    default_timeout: Duration,
    invalid: &dyn Fn(Option<std::ops::Range<usize>>, String) -> SuiteError,
) -> Result<Test, SuiteError> {
    let plan = match &source {
        Source::File { path, text } => scenario::parse(path, text),
        Source::Battery { text, .. } => scenario::parse(&test.scenario, text),
    };
    let plan = plan.map_err(|why| SuiteError::Scenario {
        test: test.name.clone(),
        why,
    })?;
    named_checks_exist(&test, &crate::verify::possible_checks(&plan))
        .map_err(|why| invalid(None, format!("test `{}`: {why}", test.name)))?;
    let under_test = plan.under_test.side();
    if under_test == Side::ClientPrograms && test.server.is_some() {
        return Err(invalid(
            None,
            format!(
                "test `{}`: `server` picks a server to replace, but its scenario tests client \
                 programs",
                test.name
            ),
        ));
    }
    // A test's own command and files, else its role's, else the submission's.
    let role = match under_test {
        Side::Servers => None,
        Side::ClientPrograms => submission.client.as_ref(),
    };
    let mut launch = Launch {
        command: test
            .command
            .or_else(|| role.and_then(|r| r.command.clone()))
            .unwrap_or_else(|| submission.command.clone()),
        files: test
            .files
            .or_else(|| role.and_then(|r| r.files.clone()))
            .unwrap_or_else(|| submission.files.clone()),
    };
    // A battery's scenarios name a lab's second port their own way (`{port2}` is
    // `{port:second}`), and its command must have one where the lab gives it.
    if let Source::Battery { lab, .. } = &source {
        launch.command = crate::check::command_of(*lab, &launch.command)
            .map_err(|err| invalid(None, format!("`lab = \"{}\"`: {err}", lab.name())))?;
    }
    if launch.command.first().is_none_or(String::is_empty) {
        return Err(invalid(
            None,
            format!("test `{}`: its `command` must name a program", test.name),
        ));
    }
    let fixed = |port: &crate::scenario::PortChoice| matches!(port, crate::scenario::PortChoice::Fixed(_));
    let fixed_ports = match &plan.under_test {
        scenario::UnderTest::Servers(tested) => {
            submission.port.is_some() || tested.servers.iter().any(|s| fixed(&s.port))
        }
        scenario::UnderTest::ClientPrograms(tested) => tested.played.iter().any(|s| fixed(&s.port)),
    };
    Ok(Test {
        stem: String::new(),
        name: test.name,
        scenario: source,
        points: test.points,
        partial: test.partial,
        weights: test.weights,
        requires: test.requires,
        hidden: test.hidden,
        server: test.server,
        feedback: test.feedback,
        timeout: test.timeout.map_or(default_timeout, |t| t.0),
        under_test,
        launch,
        fixed_ports,
    })
}

/// The checks that say whether a run did its job at all: an echo, chat, broadcast or UDP
/// scenario's correctness check, and whether a client program showed the server's replies
/// (`printed`, or `printed NAME` with several programs). Unless a test says otherwise
/// (`requires`), none of its points are earned while one of these fails: a server that
/// never replies has "no connection errors" and "stayed up", and must still get nothing.
pub const MAIN_CHECKS: [&str; 5] = ["echo", "chat", "fanout", "datagrams", "printed"];

/// The most a test's `points` or a check's weight may be: sums of such numbers stay exact
/// enough and finite (a weight of 1e308 made shares NaN, which JSON writes as null).
const MAX_NUMBER: f64 = 1_000_000.0;

/// A test's `weights` and `requires` name checks and weigh them sensibly.
fn check_scoring(test: &RawTest) -> Result<(), String> {
    let sensible = |w: f64| w.is_finite() && (0.0..=MAX_NUMBER).contains(&w);
    if let Some((check, weight)) = test.weights.iter().find(|(_, w)| !sensible(**w)) {
        return Err(format!(
            "the weight of check `{check}` is {weight}; weights are from 0 to {MAX_NUMBER}"
        ));
    }
    if !test.weights.is_empty() && test.weights.values().all(|w| *w == 0.0) {
        return Err("every check in `weights` weighs 0: nothing could earn its points".into());
    }
    if !test.weights.is_empty() && !test.partial {
        return Err(
            "`weights` share points out over checks, and `partial = false` gives all or \
                    nothing: keep one"
                .into(),
        );
    }
    let named = test.weights.keys().chain(test.requires.iter().flatten());
    if let Some(empty) = named.into_iter().find(|name| name.trim().is_empty()) {
        return Err(format!("`{empty}` is no check name"));
    }
    Ok(())
}

/// Every check a test names in `requires`, `weights` and `feedback` (`CHECK` or
/// `CHECK.CLASS`) is one its scenario's runs can have: a typo would silently give everyone
/// 0 (`requires`) or drop points or advice.
fn named_checks_exist(test: &RawTest, possible: &[String]) -> Result<(), String> {
    let exists = |name: &str| possible.iter().any(|p| p == name);
    let advice_exists = |key: &str| {
        exists(key)
            || possible.iter().any(|p| {
                key.strip_prefix(p.as_str())
                    .is_some_and(|class| class.starts_with('.'))
            })
    };
    let named = test
        .requires
        .iter()
        .flatten()
        .map(|name| ("requires", name, exists(name)))
        .chain(test.weights.keys().map(|name| ("weights", name, exists(name))))
        .chain(
            test.feedback
                .keys()
                .map(|key| ("feedback", key, advice_exists(key))),
        );
    for (key, name, known) in named {
        if !known {
            return Err(format!(
                "`{key}` names `{name}`, which no run of its scenario has; its checks: {}",
                possible.join(", ")
            ));
        }
    }
    Ok(())
}

/// Whether a check of a run is one of its main checks (see [`MAIN_CHECKS`]).
pub fn is_main_check(name: &str) -> bool {
    let base = name.split_once(' ').map_or(name, |(first, _)| first);
    MAIN_CHECKS.contains(&base) && (base == name || base == "printed")
}

/// Points of each phase of a suite's `lab` battery when it says nothing else.
const DEFAULT_PHASE_POINTS: f64 = 10.0;

/// Where a test's scenario comes from.
#[derive(Debug, Clone)]
pub enum Source {
    /// A scenario file (relative paths in it are relative to it), read once when the suite
    /// is loaded: every run of every submission uses that text, so a submission that gets
    /// to write the file (without the sandbox) cannot change the test for the runs after it.
    File {
        /// Where it was read from.
        path: PathBuf,
        /// What it said then.
        text: String,
    },
    /// A phase of `lab`'s battery (see `labrun check`): its scenario, checked with a
    /// stand-in program that each run replaces with the submission's.
    Battery {
        /// The lab, whose words the submission's command is put in (`{port2}`).
        lab: Lab,
        /// The scenario.
        text: String,
    },
}

impl Source {
    pub fn text(&self) -> std::io::Result<String> {
        match self {
            Source::File { text, .. } | Source::Battery { text, .. } => Ok(text.clone()),
        }
    }

    /// The file its relative paths are relative to: its own, or for a battery none (a bare
    /// name, so the folder labrun runs in).
    pub fn anchor(&self) -> crate::scenario::Anchor {
        match self {
            Source::File { path, .. } => crate::scenario::Anchor::of(path),
            Source::Battery { .. } => crate::scenario::Anchor::of(Path::new("battery.toml")),
        }
    }
}

/// A test's name names a column of grades.csv and a line on the TA's terminal: text on one
/// line, and unique in the suite (a battery's phases included).
fn check_test_name(name: &str, tests: &[Test]) -> Result<(), String> {
    if name.is_empty() || name.chars().any(char::is_control) {
        return Err(format!(
            "test `{}`: a test's name must be text on one line, without control characters",
            crate::escape::escape_bytes(name.as_bytes())
        ));
    }
    match tests.iter().find(|t| t.name == name).map(|twin| &twin.scenario) {
        Some(Source::Battery { lab, .. }) => Err(format!(
            "test `{name}` has the name of a phase of the {} battery: rename it",
            lab.name()
        )),
        Some(Source::File { .. }) => Err(format!("two tests are named `{name}`")),
        None => Ok(()),
    }
}

/// One graded scenario.
#[derive(Debug, Clone)]
pub struct Test {
    /// Its name (a column of grades.csv).
    pub name: String,
    /// The name of its run reports' files, unique among the suite's tests.
    pub stem: String,
    pub scenario: Source,
    /// Points it is worth.
    pub points: f64,
    /// Points shared out over its checks (else all or nothing).
    pub partial: bool,
    /// How much each check weighs in a partial score (`weights`); empty: one each.
    pub weights: BTreeMap<String, f64>,
    /// Checks that must pass for the test to earn anything (`requires`); `None`: its main
    /// check (see [`MAIN_CHECKS`]).
    pub requires: Option<Vec<String>>,
    /// Counted, but its details are withheld from the student's feedback.
    pub hidden: bool,
    /// Which of the scenario's servers the submission replaces (all when `None`).
    pub server: Option<String>,
    /// Feedback per failed check name.
    pub feedback: BTreeMap<String, String>,
    /// Time one run of this test may take (the submission's `timeout` unless set).
    pub timeout: Duration,
    /// What it replaces with the submission's program.
    pub under_test: Side,
    /// What it launches from the submission.
    pub launch: Launch,
    /// Its scenario binds fixed ports (its servers' or, for client programs, its played
    /// servers'): runs of it share those ports unless each has its own network namespace.
    pub fixed_ports: bool,
}

impl Suite {
    /// Reads a suite and validates every scenario it names.
    pub fn load(path: &Path) -> Result<Suite, SuiteError> {
        let text = std::fs::read_to_string(path).map_err(|source| SuiteError::Read {
            path: path.to_owned(),
            source,
        })?;
        Suite::parse(path, &text)
    }

    /// The suite `labrun grade --lab LAB` grades with when there is no suite file: the
    /// lab's battery, each phase worth 10 points, run as `python3 FILE {port}` (and
    /// `{port2}`) with FILE the submission's likeliest Python file for its role.
    pub fn for_lab(lab: Lab) -> Result<Suite, SuiteError> {
        let command = toml::Value::Array(
            lab.python_command("{file}")
                .into_iter()
                .map(toml::Value::String)
                .collect(),
        );
        let role = if lab.name().ends_with("-client") {
            "client"
        } else {
            "server"
        };
        let text = format!(
            "name = \"{lab}\"\nlab = \"{lab}\"\n[submission]\ncommand = {command}\n\
             files = [\"{role}.py\", \"*{role}*.py\", \"*.py\"]\n",
            lab = lab.name(),
        );
        Suite::parse(Path::new(&format!("{}.suite.toml", lab.name())), &text)
    }

    /// Validates suite text as if it were read from `path`.
    fn parse(path: &Path, text: &str) -> Result<Suite, SuiteError> {
        let text = text.to_owned();
        let invalid = |span, message: String| {
            SuiteError::Invalid(Box::new(Diagnostic::new(path, &text, span, message)))
        };
        let raw: RawSuite =
            toml::from_str(&text).map_err(|err| invalid(err.span(), err.message().to_owned()))?;
        if raw.submission.command.is_empty() {
            return Err(invalid(None, "`submission.command` must name a program".into()));
        }
        if raw.tests.is_empty() && raw.lab.is_none() {
            return Err(invalid(
                None,
                "a suite needs at least one [[test]], or a `lab` whose battery grades".into(),
            ));
        }
        if raw.lab_points.is_some() && raw.lab.is_none() {
            return Err(invalid(
                None,
                "`lab_points` is the points of each phase of a `lab`: name the lab".into(),
            ));
        }
        let base = path.parent().unwrap_or(Path::new("."));
        // A lab's battery comes first, a test per phase, each scenario from labrun itself;
        // the suite's own tests follow, each from its file.
        let lab_points = raw.lab_points.unwrap_or(DEFAULT_PHASE_POINTS);
        let battery = raw.lab.map(|lab| battery_tests(lab, lab_points));
        let mut files = Vec::with_capacity(raw.tests.len());
        for test in raw.tests {
            let path = base.join(&test.scenario);
            let text = std::fs::read_to_string(&path).map_err(|why| SuiteError::Scenario {
                test: test.name.clone(),
                why: scenario::ScenarioError::Read {
                    path: path.clone(),
                    why,
                },
            })?;
            files.push((test, Source::File { path, text }));
        }
        let all: Vec<(RawTest, Source)> = battery.into_iter().flatten().chain(files).collect();
        let default_timeout = raw.submission.timeout.map_or(DEFAULT_TEST_TIMEOUT, |t| t.0);
        let mut tests = Vec::with_capacity(all.len());
        // Client tests that would launch the submission's main files: right when the suite
        // tests only clients, wrong (the server graded as a client) beside servers.
        let mut clients_on_the_main_command = Vec::new();
        for (test, source) in all {
            if !(test.points.is_finite() && (0.0..=MAX_NUMBER).contains(&test.points)) {
                return Err(invalid(
                    None,
                    format!("test `{}`: `points` must be from 0 to {MAX_NUMBER}", test.name),
                ));
            }
            check_scoring(&test).map_err(|why| invalid(None, format!("test `{}`: {why}", test.name)))?;
            check_test_name(&test.name, &tests).map_err(|why| invalid(None, why))?;
            // Client tests with no files of their own (nor their role's) launch the main files.
            let own_files =
                test.files.is_some() || raw.submission.client.as_ref().is_some_and(|r| r.files.is_some());
            let test = resolve_test(test, source, &raw.submission, default_timeout, &invalid)?;
            if test.under_test == Side::ClientPrograms && !own_files {
                clients_on_the_main_command.push(test.name.clone());
            }
            tests.push(test);
        }
        let names: Vec<String> = tests.iter().map(|t| t.name.clone()).collect();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        for (test, stem) in tests.iter_mut().zip(super::stems::unique_stems(&names, "test")) {
            test.stem = stem;
        }
        if tests.iter().any(|t| t.under_test == Side::Servers)
            && let Some(name) = clients_on_the_main_command.first()
        {
            return Err(invalid(
                None,
                format!(
                    "test `{name}` tests a client program but would launch the submission's server \
                     files: give `[submission.client]` (or the test) its own `files`"
                ),
            ));
        }
        Ok(Suite {
            name: raw.name,
            submission: Submission {
                port: raw.submission.port,
                limits: raw.submission.limits,
                copy_limit: CopyLimit {
                    bytes: raw
                        .submission
                        .max_size
                        .map_or(CopyLimit::default().bytes, |size| size.0),
                    files: raw.submission.max_files.unwrap_or(CopyLimit::default().files),
                },
            },
            tests,
        })
    }

    /// Points of all tests.
    pub fn max_score(&self) -> f64 {
        self.tests.iter().map(|t| t.points).sum()
    }

    /// Whether any test binds fixed ports, so that submissions can only run side by side
    /// in network namespaces of their own.
    pub fn uses_fixed_ports(&self) -> bool {
        self.tests.iter().any(|t| t.fixed_ports)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn suite_with_tests(names: &[&str]) -> Result<Suite, SuiteError> {
        let scenario = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/suites/echo.toml");
        let mut text = "name = \"s\"\n[submission]\ncommand = [\"python3\", \"{file}\", \"{port}\"]\nfiles = [\"server.py\"]\n".to_owned();
        for name in names {
            text.push_str(&format!(
                "[[test]]\nname = {}\nscenario = \"{}\"\npoints = 1\n",
                toml::Value::String((*name).to_owned()),
                scenario.display()
            ));
        }
        Suite::parse(Path::new("suite.toml"), &text)
    }

    /// A test's name is a column of grades.csv and a line on the TA's terminal: no control
    /// characters, no twins; names whose file names clash still get a file each.
    #[test]
    fn test_names_are_one_line_of_text_and_unique() {
        for bad in ["\u{1b}[2Jecho", "echo\nPASS", ""] {
            let err = suite_with_tests(&[bad]).expect_err("refused").to_string();
            assert!(err.contains("text on one line"), "{err}");
            assert!(!err.contains('\u{1b}'), "{err}");
        }
        let twins = suite_with_tests(&["echo", "echo"])
            .expect_err("refused")
            .to_string();
        assert!(twins.contains("two tests are named `echo`"), "{twins}");
        let suite = suite_with_tests(&["echo 1", "echo-1"]).expect("valid");
        assert_eq!(suite.tests[1].stem, "echo-1");
        assert!(
            suite.tests[0].stem.starts_with("echo-1-"),
            "{}",
            suite.tests[0].stem
        );
    }
}
