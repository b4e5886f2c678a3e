//! Issue 20: paths in a scenario are relative to the scenario file, not to the folder labrun
//! runs in: `cwd`, a command's program and the arguments that name files; paths in a
//! suite's submission command stay the submission's.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::util::{Run, Scratch, fixture, read_report};

fn root() -> PathBuf {
    std::fs::canonicalize(env!("CARGO_MANIFEST_DIR")).expect("repository root")
}

/// Writes `text` to `path`, making its folder, and returns the real path.
fn write(path: &Path, text: &str) -> PathBuf {
    std::fs::create_dir_all(path.parent().expect("a folder")).expect("folder");
    std::fs::write(path, text).expect("write");
    std::fs::canonicalize(path).expect("real path")
}

fn example(name: &str) -> String {
    std::fs::read_to_string(root().join("examples").join(name)).expect("example")
}

fn text(value: &serde_json::Value) -> Vec<&str> {
    value
        .as_array()
        .expect("an array")
        .iter()
        .map(|v| v.as_str().expect("text"))
        .collect()
}

#[test]
fn shipped_scenarios_run_from_another_folder_and_report_their_programs_absolute() {
    let root = root();
    let scratch = Scratch::new();
    // The scratch folder, where labrun runs, has no `examples/`.
    assert!(!scratch.dir.path().join("examples").exists());
    scratch
        .run_shipped("scenarios/python/threaded.toml")
        .expect_code(0)
        .stdout_has("PASS  echo");
    scratch.assert_nothing_left();
    let report = read_report(&scratch.reports().join("python-threaded.json"));
    let script = root
        .join("examples/echo_server_threaded.py")
        .display()
        .to_string();
    assert_eq!(
        text(&report["scenario"]["servers"][0]["launch"]["command"]),
        ["python3", script.as_str(), "{port}"],
        "the scenario section shows the command as resolved, placeholders kept"
    );

    let scratch = Scratch::new();
    scratch.run_shipped("scenarios/clients/echo.toml").expect_code(0);
    scratch.assert_nothing_left();
    let report = read_report(&scratch.reports().join("echo-client.json"));
    let client = root.join("examples/echo_client.py").display().to_string();
    let argv = text(&report["client_programs"][0]["argv"]);
    assert_eq!(argv[..2], ["python3", client.as_str()], "{argv:?}");
    assert!(argv[2].parse::<u16>().is_ok(), "the port, substituted: {argv:?}");
}

#[test]
fn a_relative_cwd_and_program_are_the_scenario_folders_and_other_arguments_are_left_alone() {
    let scratch = Scratch::new();
    let lab = scratch.dir.path().join("lab");
    // alice/run.sh starts `python3 echo.py`: found only if it runs in alice/.
    let run_sh = write(
        &lab.join("alice/run.sh"),
        "#!/bin/sh\n[ \"$2\" = hello ] && [ \"$3\" = -u ] || exit 3\nexec python3 echo.py \"$1\"\n",
    );
    std::fs::set_permissions(&run_sh, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    write(&lab.join("alice/echo.py"), &example("echo_server_threaded.py"));
    let fixture_text = std::fs::read_to_string(fixture("echo_threads.py")).expect("fixture");
    write(&lab.join("alice/echo_any_args.py"), &fixture_text);
    // `notes.txt` is both where labrun runs and next to the scenario: the scenario's wins.
    let notes = write(&lab.join("scenarios/notes.txt"), "next to the scenario\n");
    write(&scratch.dir.path().join("notes.txt"), "where labrun runs\n");
    let scenario = write(
        &lab.join("scenarios/alice.toml"),
        "name = \"alice\"\ntimeout = \"30s\"\n[[server]]\nname = \"echo\"\n\
         command = [\"./run.sh\", \"{port}\", \"hello\", \"-u\"]\ncwd = \"../alice\"\n\
         [[server]]\nname = \"noted\"\n\
         command = [\"python3\", \"../alice/echo_any_args.py\", \"{port}\", \"notes.txt\", \"no-such-file\"]\n\
         [[clients]]\nname = \"c\"\nserver = \"echo\"\ncount = 3\nmessages = 5\n\
         [[clients]]\nname = \"d\"\nserver = \"noted\"\ncount = 2\nmessages = 5\n",
    );
    scratch.run(&scenario).expect_code(0).stdout_has("PASS  echo");
    scratch.assert_nothing_left();
    let report = read_report(&scratch.reports().join("alice.json"));
    let servers = &report["scenario"]["servers"];
    let alice = run_sh.parent().expect("alice").display().to_string();
    assert_eq!(servers[0]["cwd"], alice.as_str());
    let run_sh = run_sh.display().to_string();
    assert_eq!(
        text(&servers[0]["launch"]["command"]),
        [run_sh.as_str(), "{port}", "hello", "-u"]
    );
    let echo = format!("{alice}/echo_any_args.py");
    let notes = notes.display().to_string();
    assert_eq!(
        text(&servers[1]["launch"]["command"]),
        ["python3", echo.as_str(), "{port}", notes.as_str(), "no-such-file"],
        "a bare program stays on PATH; what names nothing is the program's"
    );
    assert!(servers[1]["cwd"].is_null(), "no cwd: it runs where labrun runs");
}

#[test]
fn a_kept_server_finds_its_script_beside_the_scenario_and_the_submission_runs_its_own() {
    let scratch = Scratch::new();
    let suite_dir = scratch.dir.path().join("suite");
    write(
        &suite_dir.join("reference.py"),
        &example("echo_server_threaded.py"),
    );
    // The instructor's working server.py beside the suite must never stand in for a student's.
    write(&suite_dir.join("server.py"), &example("echo_server_threaded.py"));
    write(
        &suite_dir.join("pair.toml"),
        "name = \"pair\"\ntimeout = \"20s\"\n\
         [[server]]\nname = \"reference\"\ncommand = [\"python3\", \"reference.py\", \"{port}\"]\n\
         [[server]]\nname = \"student\"\nbuiltin = \"echo-threaded\"\n\
         [[clients]]\nname = \"r\"\nserver = \"reference\"\ncount = 2\nmessages = 3\n\
         [[clients]]\nname = \"s\"\nserver = \"student\"\ncount = 2\nmessages = 3\n",
    );
    let suite = write(
        &suite_dir.join("suite.toml"),
        "name = \"pair\"\n[submission]\ncommand = [\"python3\", \"server.py\", \"{port}\"]\ntimeout = \"40s\"\n\
         [[test]]\nname = \"echo\"\nscenario = \"pair.toml\"\nserver = \"student\"\npoints = 10\npartial = false\n",
    );
    let class = scratch.dir.path().join("class");
    write(&class.join("good/server.py"), &example("echo_server_threaded.py"));
    let crashing = std::fs::read_to_string(fixture("crash_at_start.py")).expect("fixture");
    write(&class.join("bad/server.py"), &crashing);
    let out = scratch.dir.path().join("out");
    let mut command = scratch.labrun();
    command
        .timeout(Duration::from_secs(240))
        .arg("grade")
        .arg(&suite)
        .arg(class.join("bad"))
        .arg(class.join("good"))
        .arg("--out")
        .arg(&out);
    Run::from(command.output().expect("labrun runs")).expect_code(0);
    scratch.assert_nothing_left();
    let grades = std::fs::read_to_string(out.join("grades.csv")).expect("grades.csv");
    assert_eq!(
        grades,
        "submission,echo,total,max,flags\nbad,0,0,10,\ngood,10,10,10,\n"
    );
}

#[test]
fn a_shipped_scenario_runs_in_the_sandbox_from_another_folder() {
    let scratch = Scratch::new();
    // The sandbox runs the program as nobody when labrun is root: it must enter its folder.
    std::fs::set_permissions(scratch.dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let run = Run::from(
        scratch
            .labrun()
            .args(["run", "--sandbox"])
            .arg(root().join("scenarios/python/threaded.toml"))
            .arg("--out")
            .arg(scratch.reports())
            .output()
            .expect("labrun runs"),
    );
    // The script, named by its absolute path, is shown to the sandboxed program read-only.
    run.expect_code(0).stdout_has("PASS  echo");
    scratch.assert_nothing_left();
}
