//! `labrun grade`: a class of eight submissions (tests/fixtures/submissions/) through the
//! lab 3 suite, in parallel, all on port 6000, graded identically twice, nothing left over.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::util::{Run, Scratch};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn submissions() -> Vec<PathBuf> {
    submissions_in("tests/fixtures/submissions")
}

/// The submission folders in `folder` (relative to the repository), sorted.
fn submissions_in(folder: &str) -> Vec<PathBuf> {
    let mut all: Vec<PathBuf> = std::fs::read_dir(root().join(folder))
        .expect("submissions")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.is_dir())
        .collect();
    all.sort();
    all
}

/// Grades the class into `out` and returns grades.csv.
fn grade(scratch: &Scratch, out: &str, extra: &[&str]) -> String {
    let out = scratch.dir.path().join(out);
    let mut command = scratch.labrun();
    command
        .timeout(Duration::from_secs(300))
        .arg("grade")
        .arg(root().join("tests/fixtures/suites/lab3.toml"))
        .args(submissions())
        .args(["-j", "2", "--out"])
        .arg(&out)
        .args(extra);
    let run = Run::from(command.output().expect("labrun runs"));
    run.expect_code(0);
    std::fs::read_to_string(out.join("grades.csv")).expect("grades.csv")
}

const EXPECTED: &str = "submission,echo,concurrency,total,max,flags
alice,10,10,20,20,
bob,10,10,20,20,
carol,10,0,10,20,
dave,0,0,0,20,
erin,0,0,0,20,
frank,10,0,10,20,
grace,0,0,0,20,
heidi,10,0,10,20,
";

#[test]
fn a_class_grades_to_the_expected_scores_twice_and_in_shards() {
    let scratch = Scratch::new();
    let first = grade(&scratch, "first", &[]);
    assert_eq!(first, EXPECTED);
    scratch.assert_nothing_left();
    // Graded again, nothing changes.
    assert_eq!(grade(&scratch, "second", &[]), first);

    // Two shards, merged, are the whole class.
    let half = |k: &str| grade(&scratch, &format!("shard{k}"), &["--shard", &format!("{k}/2")]);
    let (one, two) = (half("1"), half("2"));
    assert!(one.lines().count() > 2 && two.lines().count() > 2);
    let dir = scratch.dir.path();
    Run::from(
        scratch
            .labrun()
            .arg("merge")
            .arg(dir.join("shard1/grades.csv"))
            .arg(dir.join("shard2/grades.csv"))
            .arg("--out")
            .arg(dir.join("merged"))
            .output()
            .expect("labrun runs"),
    )
    .expect_code(0)
    .stdout_has("8 submissions from 2 grade files");
    assert_eq!(
        std::fs::read_to_string(dir.join("merged/grades.csv")).expect("merged"),
        first
    );
    scratch.assert_nothing_left();

    // Gradescope's format and the students' feedback.
    let results: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(scratch.dir.path().join("first/results/carol/results.json"))
            .expect("results"),
    )
    .expect("json");
    assert_eq!(results["score"], 10.0);
    assert!(
        results.get("max_score").is_none(),
        "not a key of Gradescope's: {results:#}"
    );
    assert_eq!(results["tests"][1]["max_score"], 10.0);
    assert_eq!(results["tests"][1]["status"], "failed");
    assert_eq!(results["tests"][1]["visibility"], "visible");
    let feedback =
        std::fs::read_to_string(scratch.dir.path().join("first/feedback/carol.md")).expect("feedback");
    assert!(feedback.contains("**Score: 10 / 20**"), "{feedback}");
    assert!(feedback.contains("FAIL concurrency: iterative"), "{feedback}");
    assert!(
        feedback.contains("→ Start a thread for each accepted client"),
        "{feedback}"
    );
    let dave = std::fs::read_to_string(scratch.dir.path().join("first/feedback/dave.md")).expect("feedback");
    assert!(
        dave.contains("AttributeError"),
        "the crash's own words reach the student: {dave}"
    );
    assert!(
        dave.contains("File \"server.py\", line") && !dave.contains("/tmp/") && !dave.contains("exit code 3"),
        "the student's own file names, no grader paths or exit codes: {dave}"
    );
    let grades = std::fs::read_to_string(scratch.dir.path().join("first/grades.json")).expect("grades.json");
    let grades: serde_json::Value = serde_json::from_str(&grades).expect("JSON");
    let dave = grades["submissions"]
        .as_array()
        .expect("submissions")
        .iter()
        .find(|s| s["name"] == "dave")
        .expect("dave");
    for test in dave["tests"].as_array().expect("tests") {
        assert_eq!(
            test["runs"], 1,
            "a crash at start with a typo's traceback runs once: {test:#}"
        );
    }
    feedback_is_for_the_student(&scratch.dir.path().join("first/feedback"));
}

/// What the class's feedback says: the lab-terms hint of a single-recv server's fault and a
/// command to run the test again; advice keyed by a concurrency class reaches only a
/// server that failed for that class (a pool of two gets the pool advice, a server that
/// drops its clients gets none of the two).
fn feedback_is_for_the_student(feedback: &Path) {
    let read =
        |student: &str| std::fs::read_to_string(feedback.join(format!("{student}.md"))).expect("feedback");
    let grace = read("grace");
    assert!(
        grace.contains("why: the server reset the connection mid-echo")
            && grace.contains("keep calling recv() until it returns b''"),
        "{grace}"
    );
    assert!(grace.contains("Run it yourself: labrun run echo.toml"), "{grace}");
    assert!(!grace.contains("→"), "no advice meant for another cause: {grace}");
    let heidi = read("heidi");
    assert!(heidi.contains("FAIL concurrency: bounded (2)"), "{heidi}");
    assert!(heidi.contains("→ A pool of workers serves only"), "{heidi}");
    assert!(
        !heidi.contains("→ Start a thread for each accepted client"),
        "{heidi}"
    );
}

#[test]
fn an_interrupted_grading_run_resumes_from_its_journal() {
    let scratch = Scratch::new();
    let out = scratch.dir.path().join("grades");
    let two = ["alice", "dave"].map(|s| root().join("tests/fixtures/submissions").join(s));
    let run = |extra: &[&str]| {
        let mut command = scratch.labrun();
        command
            .timeout(Duration::from_secs(300))
            .arg("grade")
            .arg(root().join("tests/fixtures/suites/lab3.toml"))
            .args(&two)
            .arg("--out")
            .arg(&out)
            .args(extra);
        Run::from(command.output().expect("labrun runs")).expect_code(0);
        std::fs::read_to_string(out.join("grades.csv")).expect("grades.csv")
    };
    let whole = run(&[]);
    let journal_path = out.join("grade-journal.jsonl");
    let journal = std::fs::read_to_string(&journal_path).expect("journal");
    assert_eq!(journal.lines().count(), 4, "{journal}");

    // As if interrupted during the last test. Alice's echo line is doctored twice: a summary
    // marked, which shows that resuming takes recorded results instead of running them
    // again, and a forged score of 1000, which it must not believe: points are recomputed
    // from the recorded checks and the suite. A line for a submission not being graded is
    // ignored.
    let mut lines: Vec<String> = journal.lines().map(str::to_owned).collect();
    let last = lines.pop().expect("a line");
    let alice_echo = lines
        .iter_mut()
        .find(|l| l.contains("alice") && l.contains("\"test\":\"echo\""))
        .expect("alice's echo");
    *alice_echo = alice_echo.replace("\"score\":10.0", "\"score\":1000.0").replacen(
        "\"summary\":\"",
        "\"summary\":\"RECORDED-NOT-RERUN ",
        1,
    );
    let stranger = alice_echo.replace("/alice\"", "/mallory\"");
    let cut = format!("{}\n{stranger}\n{}", lines.join("\n"), &last[..last.len() / 2]);
    std::fs::write(&journal_path, cut).expect("journal");

    let resumed = run(&["--resume"]);
    assert_eq!(resumed, whole);
    let graded = std::fs::read_to_string(out.join("grades.json")).expect("grades.json");
    assert!(
        graded.contains("RECORDED-NOT-RERUN"),
        "the recorded result was used"
    );
    assert!(!graded.contains("mallory"), "{graded}");
    let journal = std::fs::read_to_string(&journal_path).expect("journal");
    assert_eq!(
        journal
            .lines()
            .filter(|l| serde_json::from_str::<serde_json::Value>(l).is_ok())
            .count(),
        5,
        "the four tests, and the stranger's line kept but not graded"
    );
    scratch.assert_nothing_left();
}

#[test]
fn killing_the_grader_leaves_no_student_process_behind() {
    let scratch = Scratch::new();
    let mut grader = std::process::Command::new(assert_cmd::cargo::cargo_bin("labrun"))
        .env(crate::util::MARKER, &scratch.marker)
        .arg("grade")
        .arg(root().join("tests/fixtures/suites/lab3.toml"))
        .args(["frank", "erin", "carol"].map(|s| root().join("tests/fixtures/submissions").join(s)))
        .args(["-j", "3", "--out"])
        .arg(scratch.dir.path().join("out"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("labrun starts");
    // Long enough for the students' servers (frank's stubborn child included) to be up.
    std::thread::sleep(Duration::from_millis(1500));
    // The sandboxed servers carry no marker (their environment is cleared): follow the tree.
    let tree = crate::util::descendants_of(grader.id());
    if rustix::process::geteuid().is_root() {
        assert!(
            tree.iter()
                .any(|p| crate::util::uid_of(p.pid).is_some_and(|uid| uid >= 0x4000_0000)),
            "the submissions should be running, sandboxed, by now: {tree:?}"
        );
    }
    assert!(!tree.is_empty(), "the submissions should be running by now");
    // The grader's folder of workspaces: the one whose lock it holds.
    let workspaces = std::fs::read_dir(format!("/proc/{}/fd", grader.id()))
        .expect("fds")
        .filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok())
        .find(|target| target.ends_with(".lock"))
        .and_then(|lock| lock.parent().map(std::path::Path::to_owned))
        .expect("the grader holds its workspaces' lock");
    grader.kill().expect("kill");
    grader.wait().expect("reaped");
    // The killed grader could not remove its copies of the students' code. Looked at at once:
    // any grader starting later (another test's, running in parallel) sweeps them.
    assert!(workspaces.exists(), "{}", workspaces.display());
    scratch.assert_nothing_left();
    let alive = crate::util::alive_after_grace(&tree);
    assert!(alive.is_empty(), "outlived the grader: {alive:?}");
    // The next grader removes them.
    let next = scratch
        .labrun()
        .arg("grade")
        .arg(root().join("tests/fixtures/suites/lab3.toml"))
        .arg(root().join("tests/fixtures/submissions/alice"))
        .arg("--out")
        .arg(scratch.dir.path().join("next"))
        .output()
        .expect("labrun runs");
    Run::from(next).expect_code(0);
    assert!(
        !workspaces.exists(),
        "a killed grader's workspaces were left: {}",
        workspaces.display()
    );
}

#[test]
fn a_suite_grades_the_server_and_the_client_of_each_submission() {
    let scratch = Scratch::new();
    let out = scratch.dir.path().join("lab1");
    let mut command = scratch.labrun();
    command
        .timeout(Duration::from_secs(300))
        .arg("grade")
        .arg(root().join("tests/fixtures/suites/lab1.toml"))
        .args(submissions_in("tests/fixtures/client-submissions"))
        .args(["-j", "2", "--out"])
        .arg(&out);
    Run::from(command.output().expect("labrun runs")).expect_code(0);
    scratch.assert_nothing_left();
    assert_eq!(
        std::fs::read_to_string(out.join("grades.csv")).expect("grades.csv"),
        "submission,echo,client,total,max,flags
ana,10,10,20,20,
ben,10,5,15,20,
cleo,0,10,10,20,
"
    );
    let ben = std::fs::read_to_string(out.join("feedback/ben.md")).expect("feedback");
    assert!(ben.contains("FAIL exit: it was still running"), "{ben}");
    assert!(ben.contains("→ Leave the input loop"), "{ben}");
}

#[test]
fn a_client_test_without_client_files_beside_server_tests_is_refused() {
    let scratch = Scratch::new();
    let suites = root().join("tests/fixtures/suites");
    let lab1 = std::fs::read_to_string(suites.join("lab1.toml")).expect("suite");
    let without_client_files = lab1
        .replace(
            "[submission.client]\nfiles = [\"client.py\", \"*client*.py\"]\n",
            "",
        )
        .replace("scenario = \"", &format!("scenario = \"{}/", suites.display()));
    let suite = scratch.file("suite.toml", &without_client_files);
    let run = Run::from(
        scratch
            .labrun()
            .arg("grade")
            .arg(&suite)
            .args(submissions_in("tests/fixtures/client-submissions"))
            .output()
            .expect("labrun runs"),
    );
    run.expect_code(2)
        .stderr_has("test `client` tests a client program but would launch the submission's server files");
}

/// Students name their folders: `x y` and `x-y` must not share one `results.json` (one grade
/// lost), and a name with a newline or a terminal escape must not forge rows or repaint the
/// terminal anywhere it shows.
#[test]
fn hostile_and_colliding_folder_names_keep_every_grade_apart() {
    let scratch = Scratch::new();
    let class = scratch.dir.path().join("class");
    let names = ["x y", "x-y", "eve\nmallory,20,20,\u{1b}[2J"];
    let good = root().join("tests/fixtures/submissions/alice/server.py");
    let bad = root().join("tests/fixtures/submissions/dave/server.py");
    for (i, name) in names.iter().enumerate() {
        let dir = class.join(name);
        std::fs::create_dir_all(&dir).expect("folder");
        std::fs::copy(if i == 1 { &bad } else { &good }, dir.join("server.py")).expect("copy");
    }
    let out = scratch.dir.path().join("out");
    let output = scratch
        .labrun()
        .timeout(Duration::from_secs(300))
        .arg("grade")
        .arg(root().join("tests/fixtures/suites/lab3.toml"))
        .args(names.map(|n| class.join(n)))
        .args(["-j", "3", "--out"])
        .arg(&out)
        .output()
        .expect("labrun runs");
    let run = Run::from(output);
    run.expect_code(0);
    assert!(!run.stdout.contains('\u{1b}'), "{}", run.stdout);
    let csv = std::fs::read_to_string(out.join("grades.csv")).expect("grades.csv");
    assert_eq!(csv.lines().count(), 4, "one header and three rows:\n{csv}");
    assert!(
        csv.contains("\"eve\\nmallory,20,20,\\x1b[2J\",10,10,20,20,"),
        "{csv}"
    );
    assert!(csv.contains("x y,10,10,20,20,"), "{csv}");
    assert!(csv.contains("x-y,0,0,0,20,"), "{csv}");
    let mut results: Vec<String> = std::fs::read_dir(out.join("results"))
        .expect("results")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    results.sort();
    assert_eq!(results.len(), 3, "{results:?}");
    // `x-y` is a file name already and keeps it, whoever else is in the class; `x y` gets
    // a hash of its name.
    assert!(results.contains(&"x-y".to_owned()), "{results:?}");
    assert!(
        results
            .iter()
            .any(|r| r.starts_with("x-y-") && r.len() == "x-y-".len() + 8),
        "{results:?}"
    );
    scratch.assert_nothing_left();
}

/// A folder too big to copy for every test (here a 4 GiB sparse file) is refused before
/// anything is copied: a clear 0 with the reason, and an honest classmate unaffected.
#[test]
fn a_submission_too_big_to_copy_gets_zero_with_the_reason() {
    let scratch = Scratch::new();
    let class = scratch.dir.path().join("class");
    for name in ["honest", "hoarder"] {
        std::fs::create_dir_all(class.join(name)).expect("folder");
        std::fs::copy(
            root().join("tests/fixtures/submissions/alice/server.py"),
            class.join(name).join("server.py"),
        )
        .expect("copy");
    }
    let sparse = std::fs::File::create(class.join("hoarder/data.bin")).expect("file");
    sparse.set_len(4 << 30).expect("a sparse 4 GiB file");
    let out = scratch.dir.path().join("out");
    let output = scratch
        .labrun()
        .arg("grade")
        .arg(root().join("tests/fixtures/suites/lab3.toml"))
        .args(["honest", "hoarder"].map(|n| class.join(n)))
        .arg("--out")
        .arg(&out)
        .output()
        .expect("labrun runs");
    Run::from(output).expect_code(0);
    let csv = std::fs::read_to_string(out.join("grades.csv")).expect("grades.csv");
    assert!(csv.contains("honest,10,10,20,20,"), "{csv}");
    assert!(csv.contains("hoarder,0,0,0,20,"), "{csv}");
    let feedback = std::fs::read_to_string(out.join("feedback/hoarder.md")).expect("feedback");
    assert!(
        feedback
            .contains("the submission's folder is larger than the grader copies (the suite allows 64.0 MiB"),
        "{feedback}"
    );
    scratch.assert_nothing_left();
}

/// A one-test suite (test `echo`, 10 points, tests/fixtures/suites/echo.toml) running
/// `python3 FILE PORT` with FILE the first match of `files` (a TOML array); `test_extra`
/// goes at the end of the test's table.
fn echo_suite(files: &str, test_extra: &str) -> String {
    format!(
        "name = \"one\"\n[submission]\ncommand = [\"python3\", \"{{file}}\", \"{{port}}\"]\n\
         files = {files}\nport = 6000\n\n[[test]]\nname = \"echo\"\nscenario = \"{}\"\npoints = 10\n{test_extra}\n",
        root().join("tests/fixtures/suites/echo.toml").display()
    )
}

/// `labrun grade SUITE FOLDERS... --out OUT` in `scratch`.
fn grade_into(scratch: &Scratch, suite: &Path, folders: &[PathBuf], out: &Path) -> Run {
    Run::from(
        scratch
            .labrun()
            .timeout(Duration::from_secs(180))
            .arg("grade")
            .arg(suite)
            .args(folders)
            .arg("--out")
            .arg(out)
            .output()
            .expect("labrun runs"),
    )
}

/// File patterns match whatever the letter case (`Server.py`); two files matching one pattern
/// are graded by the first name and flagged `ambiguous` with both named in the feedback; a
/// submission with no matching file is flagged `no-file` and run once, not retried.
#[test]
fn files_are_found_in_any_case_and_ambiguity_and_absence_are_flagged() {
    let scratch = Scratch::new();
    let class = scratch.dir.path().join("class");
    let server = root().join("tests/fixtures/servers/echo_threads.py");
    for (student, files) in [
        ("capital", &["Server.py"][..]),
        ("twice", &["server_a.py", "server_b.py"][..]),
        ("none", &["notes.txt"][..]),
    ] {
        std::fs::create_dir_all(class.join(student)).expect("folder");
        for file in files {
            std::fs::copy(&server, class.join(student).join(file)).expect("copy");
        }
    }
    let suite = scratch.file("suite.toml", &echo_suite("[\"*server*.py\"]", ""));
    let out = scratch.dir.path().join("out");
    let run = grade_into(
        &scratch,
        &suite,
        &["capital", "twice", "none"].map(|s| class.join(s)),
        &out,
    );
    run.expect_code(0)
        .stdout_has("echo 0/10 (no-file)")
        .stdout_has("echo 10/10 (ambiguous)");
    scratch.assert_nothing_left();
    let csv = std::fs::read_to_string(out.join("grades.csv")).expect("grades.csv");
    assert_eq!(
        csv,
        "submission,echo,total,max,flags\ncapital,10,10,10,\nnone,0,0,10,no-file:echo\ntwice,10,10,10,ambiguous:echo\n"
    );
    let twice = std::fs::read_to_string(out.join("feedback/twice.md")).expect("feedback");
    assert!(twice.contains("File graded: server_a.py"), "{twice}");
    assert!(twice.contains("Note: server_b.py matched too"), "{twice}");
    let capital = std::fs::read_to_string(out.join("feedback/capital.md")).expect("feedback");
    assert!(capital.contains("File graded: Server.py"), "{capital}");
    let none = std::fs::read_to_string(out.join("feedback/none.md")).expect("feedback");
    assert!(
        none.contains("no file in the submission matches *server*.py"),
        "{none}"
    );
    let grades: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("grades.json")).expect("grades.json"))
            .expect("JSON");
    let none = grades["submissions"]
        .as_array()
        .expect("submissions")
        .iter()
        .find(|s| s["name"] == "none")
        .expect("none");
    assert_eq!(none["tests"][0]["runs"], 1, "{none:#}");
    assert_eq!(none["tests"][0]["no_file"], true, "{none:#}");
    assert_eq!(
        none["tests"][0]["reports"],
        serde_json::json!([]),
        "nothing ran: {none:#}"
    );
    let page = std::fs::read_to_string(out.join("index.html")).expect("index.html");
    for student in ["capital", "twice"] {
        let row = page
            .lines()
            .find(|line| line.contains(&format!("<td>{student}</td>")))
            .expect("a row");
        assert!(row.contains(&format!("href=\"runs/{student}/")), "{row}");
    }
    class_page_shows(
        &out,
        &["capital", "none", "twice"],
        &["no-file: echo", "ambiguous: echo"],
    );
}

/// `index.html` in `out` is one self-contained page that renders in a browser and shows
/// every student, the score distribution and each of `flags`.
fn class_page_shows(out: &Path, students: &[&str], flags: &[&str]) {
    let page_path = out.join("index.html");
    let page = std::fs::read_to_string(&page_path).expect("index.html");
    let outside = page.replace("http://www.w3.org/2000/svg", "");
    for external in ["http://", "https://", "src=", "<link", "<script"] {
        assert!(
            !outside.contains(external),
            "the page loads nothing: found {external}"
        );
    }
    let shown =
        crate::util::assert_renders(&page_path, &out.join("index.png"), 0.01).unwrap_or_else(|| page.clone());
    assert!(
        shown.contains("Score distribution") && shown.contains("<svg"),
        "{shown}"
    );
    for student in students {
        assert!(
            shown.contains(&format!("<td>{student}</td>")),
            "{student} missing from the page"
        );
        assert!(
            shown.contains(&format!("feedback/{student}.md")),
            "{student}'s feedback link"
        );
    }
    for flag in flags {
        assert!(shown.contains(flag), "flag {flag} missing from the page");
    }
    run_reports_are_linked(out, &page);
}

/// Every run report `page` links to is an HTML report labrun wrote of that run, in `out`.
fn run_reports_are_linked(out: &Path, page: &str) {
    let links: Vec<&str> = page
        .split("href=\"")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .filter(|link| link.starts_with("runs/"))
        .collect();
    assert!(!links.is_empty(), "no run report linked from {page}");
    for link in links {
        let report = std::fs::read_to_string(out.join(link)).unwrap_or_else(|e| panic!("{link}: {e}"));
        assert!(
            report.starts_with("<!DOCTYPE html>") && report.contains("checks passed"),
            "{link} is not a run report: {report}"
        );
    }
}

/// The keys of Gradescope's `results.json` (its autograder specification), top level and per
/// test: nothing else may appear.
const GRADESCOPE_TOP: [&str; 11] = [
    "score",
    "execution_time",
    "output",
    "output_format",
    "test_output_format",
    "test_name_format",
    "visibility",
    "stdout_visibility",
    "extra_data",
    "tests",
    "leaderboard",
];
const GRADESCOPE_TEST: [&str; 11] = [
    "score",
    "max_score",
    "status",
    "name",
    "name_format",
    "number",
    "output",
    "output_format",
    "tags",
    "visibility",
    "extra_data",
];

/// An `/autograder`-shaped folder in `scratch`: `server` (a fixture) as the submission's
/// `server.py`, a one-test echo suite in `source/`, an empty `results/`.
fn autograder_folder(scratch: &Scratch, server: &str) -> PathBuf {
    let autograder = scratch.dir.path().join("autograder");
    std::fs::create_dir_all(autograder.join("source")).expect("source");
    std::fs::create_dir_all(autograder.join("submission")).expect("submission");
    std::fs::create_dir_all(autograder.join("results")).expect("results");
    std::fs::copy(
        root().join("tests/fixtures/servers").join(server),
        autograder.join("submission/server.py"),
    )
    .expect("copy");
    std::fs::write(
        autograder.join("source/suite.toml"),
        format!(
            "name = \"lab\"\n[submission]\ncommand = [\"python3\", \"{{file}}\", \"{{port}}\"]\n\
             files = [\"server.py\"]\n\n[[test]]\nname = \"echo\"\nscenario = \"{}\"\npoints = 10\n",
            root().join("tests/fixtures/suites/echo.toml").display()
        ),
    )
    .expect("suite");
    autograder
}

/// `--gradescope` grades an `/autograder`-shaped folder: the submission in `submission/`,
/// the suite in `source/`, and writes exactly `results/results.json` with only the keys of
/// Gradescope's specification, Markdown output, and the exact score; a never-replying
/// server scores 0, and grading without the sandbox says so. The shipped `run_autograder`
/// runs that command.
#[test]
fn gradescope_mode_writes_exactly_the_results_gradescope_reads() {
    // The second as in a container without the sandbox: graded all the same, and said so.
    for (server, score, flags) in [
        ("echo_threads.py", 10.0, &[][..]),
        ("never_replies.py", 0.0, &["--unsandboxed"][..]),
    ] {
        let scratch = Scratch::new();
        let autograder = autograder_folder(&scratch, server);
        let run = Run::from(
            scratch
                .labrun()
                .timeout(Duration::from_secs(120))
                .args(["grade", "--gradescope", "--autograder"])
                .arg(&autograder)
                .args(flags)
                .output()
                .expect("labrun runs"),
        );
        run.expect_code(0).stdout_has(&format!("score {score} / 10"));
        scratch.assert_nothing_left();
        let written: Vec<String> = std::fs::read_dir(autograder.join("results"))
            .expect("results")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(written, ["results.json"]);
        let results: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(autograder.join("results/results.json")).expect("results.json"),
        )
        .expect("JSON");
        let top = results.as_object().expect("an object");
        assert!(
            top.keys().all(|k| GRADESCOPE_TOP.contains(&k.as_str())),
            "{results:#}"
        );
        assert_eq!(results["score"], score);
        assert_eq!(results["output_format"], "md");
        let overall = results["output"].as_str().expect("output");
        assert_eq!(
            overall.contains("Graded without labrun's sandbox (--unsandboxed was given)"),
            !flags.is_empty(),
            "{overall}"
        );
        let tests = results["tests"].as_array().expect("tests");
        assert_eq!(tests.len(), 1);
        let test = tests[0].as_object().expect("a test");
        assert!(
            test.keys().all(|k| GRADESCOPE_TEST.contains(&k.as_str())),
            "{results:#}"
        );
        assert_eq!(test["max_score"], 10.0);
        assert_eq!(test["status"], if score > 0.0 { "passed" } else { "failed" });
        assert_eq!(test["output_format"], "md");
        assert!(
            test["output"]
                .as_str()
                .expect("output")
                .contains("File graded: server.py")
        );
    }
    let run_autograder =
        std::fs::read_to_string(root().join("examples/gradescope/run_autograder")).expect("script");
    assert!(
        run_autograder.contains("exec labrun grade --gradescope"),
        "{run_autograder}"
    );
    for script in ["setup.sh", "run_autograder"] {
        let parsed = std::process::Command::new("bash")
            .arg("-n")
            .arg(root().join("examples/gradescope").join(script))
            .status()
            .expect("bash runs");
        assert!(parsed.success(), "examples/gradescope/{script} does not parse");
    }
    let refused = Run::from(
        Scratch::new()
            .labrun()
            .args(["grade", "--gradescope", "suite.toml", "student"])
            .output()
            .expect("labrun runs"),
    );
    refused.expect_code(2).stderr_has("name no submission folders");
}

/// Each finished test is a line as it finishes; Ctrl-C stops the run (exit 130), says how
/// many tests were saved and the command that goes on with `--resume`, leaves nothing
/// running, and that command finishes the class.
#[test]
fn ctrl_c_on_grade_says_what_was_saved_and_how_to_resume() {
    use std::io::BufRead;
    let scratch = Scratch::new();
    let out = scratch.dir.path().join("grades");
    let class = ["alice", "carol", "heidi"].map(|s| root().join("tests/fixtures/submissions").join(s));
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("labrun"))
        .env(crate::util::MARKER, &scratch.marker)
        .env("CI", "true")
        .arg("grade")
        .arg(root().join("tests/fixtures/suites/lab3.toml"))
        .args(&class)
        .arg("--out")
        .arg(&out)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("labrun starts");
    let mut stdout = std::io::BufReader::new(child.stdout.take().expect("stdout"));
    let mut first = String::new();
    stdout.read_line(&mut first).expect("a line");
    assert!(first.starts_with("[1/6] alice · echo 10/10"), "{first:?}");
    let run = crate::util::ctrl_c(child);
    run.expect_code(130)
        .stderr_has("labrun: interrupted: ")
        .stderr_has("tests graded and saved in")
        .stderr_has("--resume");
    scratch.assert_nothing_left();
    let saved = std::fs::read_to_string(out.join("grade-journal.jsonl")).expect("journal");
    assert!(
        (1..6).contains(&saved.lines().count()),
        "the finished tests and no other: {saved}"
    );
    assert!(
        run.stderr
            .contains(&format!("{} of 6 tests", saved.lines().count())),
        "{}",
        run.stderr
    );
    let resumed = Run::from(
        scratch
            .labrun()
            .timeout(Duration::from_secs(300))
            .arg("grade")
            .arg(root().join("tests/fixtures/suites/lab3.toml"))
            .args(&class)
            .arg("--out")
            .arg(&out)
            .arg("--resume")
            .output()
            .expect("labrun runs"),
    );
    resumed.expect_code(0);
    assert_eq!(
        std::fs::read_to_string(out.join("grades.csv")).expect("grades.csv"),
        "submission,echo,concurrency,total,max,flags\nalice,10,10,20,20,\ncarol,10,0,10,20,\nheidi,10,0,10,20,\n"
    );
}

/// A `requires`, `weights` or `feedback` key naming a check its test's scenario cannot have
/// is a typo that would give everyone 0 (or drop advice): the suite is refused before
/// anything runs, naming the key and the checks the test does have; advice keyed by a real
/// check and class (`echo.truncated`) is accepted.
#[test]
fn a_check_name_its_scenario_cannot_have_is_refused_before_grading() {
    let scratch = Scratch::new();
    let alice = root().join("tests/fixtures/submissions/alice");
    for (extra, key, name) in [
        ("requires = [\"ecoh\"]", "requires", "ecoh"),
        (
            "weights = { echo = 1, erors = 1 }\npartial = true",
            "weights",
            "erors",
        ),
        (
            "[test.feedback]\n\"echo.truncated\" = \"y\"\n\"concurency.bounded\" = \"x\"",
            "feedback",
            "concurency.bounded",
        ),
    ] {
        let suite = scratch.file("typo.toml", &echo_suite("[\"server.py\"]", extra));
        let run = grade_into(
            &scratch,
            &suite,
            std::slice::from_ref(&alice),
            &scratch.dir.path().join("out"),
        );
        run.expect_code(2).stderr_has(&format!(
            "test `echo`: `{key}` names `{name}`, which no run of its scenario has; its checks: echo, errors, server srv"
        ));
        assert!(
            !scratch.dir.path().join("out/grades.csv").exists(),
            "{extra}: nothing ran"
        );
    }
    let suite = scratch.file(
        "advice.toml",
        &echo_suite(
            "[\"server.py\"]",
            "[test.feedback]\n\"echo.truncated\" = \"y\"\nerrors = \"z\"",
        ),
    );
    grade_into(&scratch, &suite, &[alice], &scratch.dir.path().join("out")).expect_code(0);
    scratch.assert_nothing_left();
}

/// What a hostile class can do to the grader's outputs, undone: a folder name that is not
/// UTF-8 and one of 253 characters are graded with everyone else (all outputs written); a
/// file name with a newline and a terminal escape is shown escaped; a failed test worth 0
/// points is `failed` for Gradescope; and a submission run without the sandbox that
/// rewrites the test's scenario file changes nothing (the suite's text was read once).
#[test]
fn hostile_names_and_a_rewritten_scenario_change_nothing() {
    use std::os::unix::ffi::OsStrExt;
    let scratch = Scratch::new();
    let class = scratch.dir.path().join("class");
    let scenario = scratch.file(
        "echo.toml",
        &std::fs::read_to_string(root().join("tests/fixtures/suites/echo.toml")).expect("echo.toml"),
    );
    let rewriter = format!(
        "import pathlib\np = pathlib.Path({:?})\np.write_text(p.read_text().replace('echo = \"exact\"', 'echo = \"ignore\"'))\n{}",
        scenario.display(),
        std::fs::read_to_string(root().join("tests/fixtures/servers/never_replies.py")).expect("fixture")
    );
    let folders = [
        std::ffi::OsStr::from_bytes(b"bad\xffname").to_owned(),
        "y".repeat(253).into(),
        "rewriter".into(),
        "escapes".into(),
    ];
    for folder in &folders {
        std::fs::create_dir_all(class.join(folder)).expect("folder");
    }
    let correct = root().join("tests/fixtures/servers/echo_threads.py");
    std::fs::copy(&correct, class.join(&folders[0]).join("server.py")).expect("copy");
    std::fs::copy(&correct, class.join(&folders[1]).join("server.py")).expect("copy");
    std::fs::write(class.join("rewriter/server.py"), rewriter).expect("rewriter");
    std::fs::copy(
        &correct,
        class
            .join("escapes")
            .join("x\n\u{1b}[31mPASS echo: fake server.py"),
    )
    .expect("copy");
    let suite = scratch.file(
        "suite.toml",
        "name = \"hostile\"\n[submission]\ncommand = [\"python3\", \"{file}\", \"{port}\"]\n\
         files = [\"server.py\", \"*server.py\"]\n\n[[test]]\nname = \"echo\"\nscenario = \"echo.toml\"\npoints = 10\n\n\
         [[test]]\nname = \"bonus\"\nscenario = \"echo.toml\"\npoints = 0\n",
    );
    let out = scratch.dir.path().join("out");
    let run = Run::from(
        scratch
            .labrun()
            .timeout(Duration::from_secs(240))
            .arg("grade")
            .arg(&suite)
            .args(folders.iter().map(|f| class.join(f)))
            .args(["--unsandboxed", "-j", "2", "--out"])
            .arg(&out)
            .output()
            .expect("labrun runs"),
    );
    run.expect_code(0);
    scratch.assert_nothing_left();
    let csv = std::fs::read_to_string(out.join("grades.csv")).expect("grades.csv");
    assert!(csv.contains("bad\\xffname,10,0,10,10,"), "{csv}");
    assert!(csv.contains(&format!("{},10,0,10,10,", "y".repeat(253))), "{csv}");
    assert!(
        std::fs::read_to_string(&scenario)
            .expect("scenario")
            .contains("echo = \"ignore\""),
        "the submission did rewrite the scenario file"
    );
    assert!(
        csv.contains("rewriter,0,0,0,10,"),
        "the rewritten scenario was not used: {csv}"
    );
    assert!(csv.contains("escapes,10,0,10,10,"), "{csv}");
    for written in [
        "index.html",
        "grades.json",
        "feedback/escapes.md",
        "feedback/rewriter.md",
    ] {
        assert!(out.join(written).is_file(), "{written} missing");
    }
    let escapes = std::fs::read_to_string(out.join("feedback/escapes.md")).expect("feedback");
    assert!(
        !escapes.contains('\u{1b}') && !escapes.contains("\nPASS echo: fake"),
        "{escapes}"
    );
    let results: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(out.join("results/rewriter/results.json")).expect("results.json"),
    )
    .expect("JSON");
    assert_eq!(results["tests"][1]["max_score"], 0.0);
    assert_eq!(results["tests"][1]["status"], "failed", "{results:#}");
}

/// On a terminal the bar names the tests running now (`alice · echo`), and each finished
/// test is a line above it. Run under `script`, which gives labrun a terminal.
#[test]
fn the_progress_bar_names_the_running_submission_and_test() {
    let scratch = Scratch::new();
    let class = scratch.dir.path().join("class");
    let server = root().join("tests/fixtures/servers/echo_threads.py");
    for student in ["alice", "bob"] {
        std::fs::create_dir_all(class.join(student)).expect("folder");
        std::fs::copy(&server, class.join(student).join("server.py")).expect("copy");
    }
    let suite = scratch.file("suite.toml", &echo_suite("[\"server.py\"]", ""));
    let out = scratch.dir.path().join("out");
    let quoted = |path: &Path| format!("'{}'", path.display());
    let command = format!(
        "{} grade {} {} {} --out {}",
        quoted(&assert_cmd::cargo::cargo_bin("labrun")),
        quoted(&suite),
        quoted(&class.join("alice")),
        quoted(&class.join("bob")),
        quoted(&out)
    );
    let output = std::process::Command::new("script")
        .args(["-qfec", &command, "/dev/null"])
        .env(crate::util::MARKER, &scratch.marker)
        .env_remove("CI")
        .env("TERM", "xterm")
        .env("COLUMNS", "160")
        .current_dir(scratch.dir.path())
        .output()
        .expect("script runs");
    let shown = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{shown}");
    // Tests run side by side, so the bar may name both at once.
    for student in ["alice", "bob"] {
        let named = shown.split(['\n', '\r']).any(|segment| {
            segment
                .split_once("running ")
                .is_some_and(|(_, running)| running.contains(&format!("{student} · echo")))
        });
        assert!(named, "the bar never named {student}'s test:\n{shown}");
    }
    assert!(shown.contains("/2 tests"), "{shown}");
    assert!(shown.contains("alice · echo 10/10"), "{shown}");
    scratch.assert_nothing_left();
}

/// A crash's output reaches the feedback escaped once, as the run printed it: a terminal
/// escape the program printed is `\x1b`, a backslash in its source line `\\`, never more.
#[test]
fn crash_output_in_the_feedback_is_escaped_once() {
    let scratch = Scratch::new();
    let folder = scratch.dir.path().join("class/crasher");
    std::fs::create_dir_all(&folder).expect("folder");
    std::fs::write(
        folder.join("server.py"),
        "import sys\nprint('starting on', sys.argv[1])\nraise ValueError('bad \\x1b[31m port')\n",
    )
    .expect("server");
    let suite = scratch.file("suite.toml", &echo_suite("[\"server.py\"]", ""));
    let out = scratch.dir.path().join("out");
    grade_into(&scratch, &suite, &[folder], &out).expect_code(0);
    let feedback = std::fs::read_to_string(out.join("feedback/crasher.md")).expect("feedback");
    assert!(feedback.contains("ValueError: bad \\x1b[31m port"), "{feedback}");
    assert!(
        feedback.contains("raise ValueError('bad \\\\x1b[31m port')"),
        "{feedback}"
    );
    assert!(
        !feedback.contains("\\\\\\\\") && !feedback.contains('\u{1b}'),
        "{feedback}"
    );
}

/// Names that make the same file name never share one: two tests `echo 1` and `echo-1`
/// each link their own run report, and two folders named `alice` (from two places) each get
/// their own feedback and run reports; a folder already named as a file keeps its name.
#[test]
fn tests_and_students_whose_names_clash_keep_their_own_files() {
    let scratch = Scratch::new();
    let server = root().join("tests/fixtures/servers/echo_threads.py");
    let folders: Vec<PathBuf> = ["a/alice", "b/alice", "c/alice-2"]
        .iter()
        .map(|f| scratch.dir.path().join("class").join(f))
        .collect();
    for folder in &folders {
        std::fs::create_dir_all(folder).expect("folder");
        std::fs::copy(&server, folder.join("server.py")).expect("copy");
    }
    let echo = root().join("tests/fixtures/suites/echo.toml");
    let suite = scratch.file(
        "suite.toml",
        &format!(
            "name = \"clash\"\n[submission]\ncommand = [\"python3\", \"{{file}}\", \"{{port}}\"]\n\
             files = [\"server.py\"]\n\n[[test]]\nname = \"echo 1\"\nscenario = \"{0}\"\npoints = 5\n\n\
             [[test]]\nname = \"echo-1\"\nscenario = \"{0}\"\npoints = 5\n",
            echo.display()
        ),
    );
    let out = scratch.dir.path().join("out");
    grade_into(&scratch, &suite, &folders, &out).expect_code(0);
    let grades: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("grades.json")).expect("grades.json"))
            .expect("JSON");
    let submissions = grades["submissions"].as_array().expect("submissions");
    let stems: Vec<&str> = submissions.iter().filter_map(|s| s["stem"].as_str()).collect();
    assert_eq!(stems.len(), 3);
    assert_eq!(
        stems[2], "alice-2",
        "a safe, unique name keeps its name: {stems:?}"
    );
    assert!(
        stems[0] != stems[1] && !stems[..2].contains(&"alice-2"),
        "{stems:?}"
    );
    let mut reports: Vec<&str> = submissions
        .iter()
        .flat_map(|s| s["tests"].as_array().expect("tests"))
        .flat_map(|t| t["reports"].as_array().expect("reports"))
        .filter_map(|r| r.as_str())
        .collect();
    assert_eq!(reports.len(), 6, "a report per student and test: {reports:?}");
    reports.sort();
    reports.dedup();
    assert_eq!(reports.len(), 6, "no two share a file: {reports:?}");
    for stem in &stems {
        assert!(out.join(format!("feedback/{stem}.md")).is_file(), "{stem}");
    }
    scratch.assert_nothing_left();
}

/// Without the sandbox a submission can reach the folder its run report is written to: a
/// pipe or a link it leaves there under the report's name, or any other, neither hangs the
/// grader nor becomes the TA's report.
#[test]
fn pipes_and_links_left_for_the_run_report_change_nothing() {
    let scratch = Scratch::new();
    let folder = scratch.dir.path().join("class/piper");
    std::fs::create_dir_all(&folder).expect("folder");
    let server =
        std::fs::read_to_string(root().join("tests/fixtures/servers/echo_threads.py")).expect("fixture");
    std::fs::write(
        folder.join("server.py"),
        format!(
            "import os\nfor name in ['echo', 'a', 'b']:\n    try:\n        os.mkfifo(f'../report/{{name}}.html')\n    except OSError:\n        pass\ntry:\n    os.symlink('/etc/passwd', '../report/z.html')\nexcept OSError:\n    pass\n{server}"
        ),
    )
    .expect("server");
    let suite = scratch.file("suite.toml", &echo_suite("[\"server.py\"]", ""));
    let out = scratch.dir.path().join("out");
    let run = Run::from(
        scratch
            .labrun()
            .timeout(Duration::from_secs(120))
            .arg("grade")
            .arg(&suite)
            .arg(&folder)
            .args(["--unsandboxed", "--out"])
            .arg(&out)
            .output()
            .expect("labrun runs"),
    );
    run.expect_code(0).stdout_has("piper · echo 10/10");
    for report in std::fs::read_dir(out.join("runs/piper"))
        .expect("runs")
        .map(|e| e.expect("entry").path())
    {
        let text = std::fs::read_to_string(&report).expect("a regular file");
        assert!(
            text.starts_with("<!DOCTYPE html>") && !text.contains("root:"),
            "{}",
            report.display()
        );
    }
    scratch.assert_nothing_left();
}
