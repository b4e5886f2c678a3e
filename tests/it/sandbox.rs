//! Issue 19: a program under test in the sandbox (`labrun run --sandbox`) reaches nothing of
//! the host and leaves nothing behind, while it is tested as usual.

use std::io::ErrorKind;
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use crate::util::{Scratch, echo_scenario, fixture, python_server, read_report};

fn open_to_all(path: &std::path::Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

/// Process ids whose command line holds `marker`.
fn processes_named(marker: &str) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|cmdline| cmdline.windows(marker.len()).any(|w| w == marker.as_bytes()))
        })
        .collect()
}

#[test]
fn a_hostile_server_in_the_sandbox_reaches_nothing_of_the_host_and_leaves_nothing() {
    let scratch = Scratch::new();
    let root = scratch.dir.path();
    // The sandbox runs programs as nobody when labrun is root: it must be able to enter the
    // folders it is given, and write its working directory.
    open_to_all(root, 0o755);
    let work = root.join("work");
    std::fs::create_dir(&work).expect("work");
    open_to_all(&work, 0o777);
    let outside = root.join("outside");
    std::fs::create_dir(&outside).expect("outside");
    open_to_all(&outside, 0o777);
    std::fs::write(outside.join("other-submission.py"), "SECRET_SOLUTION = 42\n").expect("secret file");

    let host_tcp = std::net::TcpListener::bind("127.0.0.1:0").expect("host listener");
    host_tcp.set_nonblocking(true).expect("nonblocking");
    let host_port = host_tcp.local_addr().expect("address").port();
    let unix_path = outside.join("host.sock");
    let host_unix = std::os::unix::net::UnixListener::bind(&unix_path).expect("unix listener");
    host_unix.set_nonblocking(true).expect("nonblocking");
    open_to_all(&unix_path, 0o777);

    let marker = format!("sandbox-probe-{}", scratch.marker);
    let scenario = format!(
        "name = \"sandboxed\"\ntimeout = \"30s\"\n\n[[server]]\nname = \"srv\"\n\
         command = [\"python3\", \"{}\", \"{{port}}\", \"{host_port}\", \"{}\", \"{}\", \"{marker}\"]\n\
         cwd = \"work\"\n\n[[clients]]\nname = \"c\"\ncount = 3\nmessages = 5\n\n[expect]\nsurvives = true\n",
        fixture("hostile_sandbox_probe.py"),
        unix_path.display(),
        outside.display(),
    );
    let path = scratch.file("sandboxed.toml", &scenario);
    // labrun inherits descriptors a CI runner or a wrapper script left open (7: a file it
    // appends to, 8: a secret it reads): none may reach the program.
    let inherited = outside.join("ci-summary.md");
    let token = outside.join("token");
    std::fs::write(&token, "TOKEN=hunter2-not-for-students").expect("token");
    let labrun = assert_cmd::cargo::cargo_bin("labrun");
    let output = std::process::Command::new("bash")
        .arg("-c")
        .arg("exec 7>>\"$1\" 8<\"$2\"; shift 2; exec \"$@\"")
        .arg("bash")
        .arg(&inherited)
        .arg(&token)
        .arg(&labrun)
        .args(["run", "--sandbox"])
        .arg(&path)
        .arg("--out")
        .arg(scratch.reports())
        .env(crate::util::MARKER, &scratch.marker)
        .env("LABRUN_TEST_SECRET", "hunter2-not-for-students")
        .current_dir(root)
        .output()
        .expect("labrun runs");
    let run = crate::util::Run::from(output);
    // It echoes correctly; filling its 16 MiB /dev/shm is the one limit it reached.
    run.expect_code(1)
        .stdout_has("PASS  echo")
        .stdout_has("ran out of the space it may write: /dev/shm (16.0 MiB) was full");

    let log = std::fs::read_to_string(work.join("probe.log")).expect("the probe ran and wrote its log");
    for line in log.lines() {
        if line.starts_with("uid: ") {
            continue;
        }
        assert!(
            line.contains(": refused ("),
            "the sandbox let this through: {line}\n{log}"
        );
    }
    assert_eq!(log.lines().count(), 14, "{log}");
    assert_eq!(
        std::fs::read_to_string(&inherited).unwrap_or_default(),
        "",
        "nothing written through fd 7"
    );
    if rustix::process::geteuid().is_root() {
        // A uid of the sandbox's own, far from root's and any real user's.
        let uid: u32 = log
            .lines()
            .find_map(|line| line.strip_prefix("uid: GOT "))
            .and_then(|uid| uid.parse().ok())
            .expect("the probe says its uid");
        assert!(uid >= 0x4000_0000, "{log}");
    }
    assert_eq!(
        host_tcp.accept().map(|_| ()).map_err(|e| e.kind()),
        Err(ErrorKind::WouldBlock)
    );
    assert_eq!(
        host_unix.accept().map(|_| ()).map_err(|e| e.kind()),
        Err(ErrorKind::WouldBlock)
    );
    assert!(!outside.join("pwned").exists());
    let report = std::fs::read_to_string(scratch.reports().join("sandboxed.json")).expect("report");
    for text in [&run.stdout, &run.stderr, &report] {
        assert!(!text.contains("hunter2-not-for-students"));
        assert!(!text.contains("SECRET_SOLUTION"));
    }
    read_report(&scratch.reports().join("sandboxed.json"));
    for _ in 0..50 {
        if processes_named(&marker).is_empty() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("the daemon outlived the run: {:?}", processes_named(&marker));
}

/// Grading fails closed: without a working sandbox it refuses to start, names what is
/// missing and writes no grades; `--unsandboxed` runs anyway, with a warning.
#[test]
fn grading_refuses_to_run_without_a_sandbox_unless_told_the_code_is_trusted() {
    let scratch = Scratch::new();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = scratch.dir.path().join("out");
    let grade = |extra: &[&str], path: &str| {
        let output = scratch
            .labrun()
            .env("PATH", path)
            .arg("grade")
            .arg(root.join("tests/fixtures/suites/lab3.toml"))
            .arg(root.join("tests/fixtures/submissions/alice"))
            .arg("--out")
            .arg(&out)
            .args(extra)
            .output()
            .expect("labrun runs");
        crate::util::Run::from(output)
    };
    // No bwrap on the PATH: as on a machine without bubblewrap.
    grade(&[], "/nonexistent")
        .expect_code(3)
        .stderr_has("the sandbox needs bubblewrap (`bwrap`), which is not installed");
    assert!(!out.join("grades.csv").exists(), "nothing was graded");
    let path = std::env::var("PATH").unwrap_or_default();
    grade(&["--unsandboxed"], &path)
        .expect_code(0)
        .stderr_has("warning: --unsandboxed: submissions run with labrun's own rights");
    assert!(out.join("grades.csv").exists());
    scratch.assert_nothing_left();
}

/// Makes a class folder with one `server.py` per student, copied from fixtures.
fn class_of(dir: &std::path::Path, students: &[(&str, &str)]) -> Vec<std::path::PathBuf> {
    students
        .iter()
        .map(|(name, server)| {
            let folder = dir.join(name);
            std::fs::create_dir_all(&folder).expect("folder");
            std::fs::copy(fixture(server), folder.join("server.py")).expect("copy");
            folder
        })
        .collect()
}

/// A suite like the tests' lab 3 with `extra` in its `[submission]`, as a file in `dir`.
fn suite_with(dir: &std::path::Path, extra: &str) -> std::path::PathBuf {
    let suites = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/suites");
    let text = format!(
        "name = \"lab3\"\n[submission]\ncommand = [\"python3\", \"{{file}}\", \"{{port}}\"]\n\
         files = [\"server.py\"]\nport = 6000\n{extra}\n\n\
         [[test]]\nname = \"echo\"\nscenario = \"{}\"\npoints = 10\n",
        suites.join("echo.toml").display()
    );
    let path = dir.join("suite.toml");
    std::fs::write(&path, text).expect("suite");
    path
}

/// Grades `folders` with `suite` (and `extra` arguments) into the scratch folder's `out`;
/// returns `grades.csv` and the output folder.
fn grade(
    scratch: &Scratch,
    suite: &std::path::Path,
    folders: &[std::path::PathBuf],
    extra: &[&str],
) -> (String, std::path::PathBuf) {
    let out = scratch.dir.path().join("out");
    let output = scratch
        .labrun()
        .timeout(Duration::from_secs(120))
        .arg("grade")
        .arg(suite)
        .args(folders)
        .args(extra)
        .arg("--out")
        .arg(&out)
        .output()
        .expect("labrun runs");
    crate::util::Run::from(output).expect_code(0);
    (
        std::fs::read_to_string(out.join("grades.csv")).expect("grades.csv"),
        out,
    )
}

/// What the kernel counts per user (processes) is never shared by two sandboxes: a student
/// holding 60 of a 64-process limit cannot starve the classmates graded beside it.
#[test]
fn one_students_processes_never_count_against_anothers() {
    let scratch = Scratch::new();
    let class = class_of(
        &scratch.dir.path().join("class"),
        &[
            ("aaa-hoarder", "hoards_processes.py"),
            ("honest1", "echo_threads.py"),
            ("honest2", "echo_threads.py"),
        ],
    );
    let suite = suite_with(scratch.dir.path(), "limits = { processes = 64 }");
    let (csv, _) = grade(&scratch, &suite, &class, &["-j", "3"]);
    assert!(csv.contains("honest1,10,10,10,"), "{csv}");
    assert!(csv.contains("honest2,10,10,10,"), "{csv}");
    scratch.assert_nothing_left();
}

/// A report the child wrote after the grader stopped it at the test's timeout judges clients
/// that never finished as if nothing were wrong: it is no verdict, and scores nothing.
#[test]
fn a_test_stopped_at_its_timeout_scores_nothing() {
    let scratch = Scratch::new();
    let class = class_of(
        &scratch.dir.path().join("class"),
        &[("stalls", "stalls_after_first_echo.py")],
    );
    let suite = suite_with(scratch.dir.path(), "timeout = \"2s\"");
    let (csv, out) = grade(&scratch, &suite, &class, &[]);
    assert!(csv.contains("stalls,0,0,10,"), "{csv}");
    let feedback = std::fs::read_to_string(out.join("feedback/stalls.md")).expect("feedback");
    assert!(
        feedback.contains("stopped after the test's timeout of 2s"),
        "{feedback}"
    );
    scratch.assert_nothing_left();
}

/// A submission "folder" that is a link to somewhere else on the grader's machine is not
/// followed: 0, with the reason.
#[test]
fn a_linked_submission_folder_is_not_followed() {
    let scratch = Scratch::new();
    let private = scratch.dir.path().join("teacher-private");
    class_of(&private, &[("answers", "echo_threads.py")]);
    let link = scratch.dir.path().join("mallory");
    std::os::unix::fs::symlink(private.join("answers"), &link).expect("link");
    let suite = suite_with(scratch.dir.path(), "");
    let (csv, out) = grade(&scratch, &suite, &[link], &[]);
    assert!(csv.contains("mallory,0,0,10,"), "{csv}");
    let feedback = std::fs::read_to_string(out.join("feedback/mallory.md")).expect("feedback");
    assert!(
        feedback.contains("the submission's folder is a link"),
        "{feedback}"
    );
}

/// The memory limit holds for a submission's processes together: four helpers of 400 MB
/// each (each within the 1 GiB limit alone) do not all survive, the server still serves
/// every echo, and the limit it ran into is a `memory-limit` finding that costs the
/// server check (the echo and errors checks still score).
#[test]
fn the_memory_limit_holds_for_the_whole_submission() {
    let scratch = Scratch::new();
    let class = class_of(
        &scratch.dir.path().join("class"),
        &[("hoarder", "hoards_memory.py"), ("honest", "echo_threads.py")],
    );
    let suite = suite_with(scratch.dir.path(), "limits = { memory = \"1GiB\" }");
    let (csv, out) = grade(&scratch, &suite, &class, &["-j", "2"]);
    assert!(csv.contains("honest,10,10,10,"), "{csv}");
    assert!(
        csv.contains("hoarder,6.66,6.66,10,"),
        "the limit held per process only, or was not a finding:\n{csv}"
    );
    let feedback = std::fs::read_to_string(out.join("feedback/hoarder.md")).expect("feedback");
    assert!(
        feedback.contains("reached its memory limit (1.0 GiB for all its processes together)"),
        "{feedback}"
    );
    scratch.assert_nothing_left();
}

/// A server whose debug log grows with the traffic fills the sandbox's 64 MiB `/tmp`: the
/// limit it ran into is a `disk-limit` finding naming the full space and the program's own
/// words, and nothing of it reaches the host's `/tmp`.
#[test]
fn a_server_that_fills_its_tmp_is_told_it_reached_its_disk_limit() {
    let scratch = Scratch::new();
    open_to_all(scratch.dir.path(), 0o755);
    let scenario = scratch.file(
        "disk.toml",
        &echo_scenario(
            "disk",
            &python_server("logs_every_message.py"),
            "count = 3\nmessages = 20\nsize = 3000\ntimeout = \"2s\"",
            "echo = \"exact\"",
        ),
    );
    let host_log_before = std::fs::metadata("/tmp/server.log").map(|m| m.len()).ok();
    scratch.run_with(&scenario, &["--sandbox"]).expect_code(1);
    let report = read_report(&scratch.reports().join("disk.json"));
    let disk = &report["servers"][0]["disk_limit"];
    assert_eq!(disk["full"][0], "/tmp (64.0 MiB)", "{disk:#}");
    assert_eq!(disk["said"], "No space left on device", "{disk:#}");
    let finding = report["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .find(|finding| finding["class"] == "disk-limit")
        .expect("a disk-limit finding");
    assert_eq!(finding["check"], "server srv", "{finding:#}");
    assert_eq!(
        std::fs::metadata("/tmp/server.log").map(|m| m.len()).ok(),
        host_log_before,
        "the log reached the host's /tmp"
    );
    scratch.assert_nothing_left();
}

/// `sandbox = true` in a scenario gives its programs the sandbox without `--sandbox`: the
/// same server sees the host's `/etc/shadow` and its own uid without it, neither with it.
#[test]
fn a_scenario_can_ask_for_the_sandbox_itself() {
    let scratch = Scratch::new();
    open_to_all(scratch.dir.path(), 0o755);
    let server = scratch.file(
        "server.py",
        "import os, socket, sys, threading\n\
         print('shadow:', os.path.exists('/etc/shadow'), 'uid:', os.getuid(), flush=True)\n\
         def handle(conn):\n    with conn:\n        while data := conn.recv(1024):\n            conn.sendall(data)\n\
         server = socket.socket()\nserver.bind(('127.0.0.1', int(sys.argv[1])))\nserver.listen()\n\
         while True:\n    conn, _ = server.accept()\n    threading.Thread(target=handle, args=(conn,), daemon=True).start()\n",
    );
    open_to_all(&server, 0o644);
    let scenario = |name: &str, sandbox: &str| {
        let command = format!("command = [\"python3\", \"{}\", \"{{port}}\"]", server.display());
        let text = echo_scenario(name, &command, "count = 2\nmessages = 3", "echo = \"exact\"");
        scratch.file(&format!("{name}.toml"), &format!("{sandbox}\n{text}"))
    };
    let plain = scratch.run(&scenario("plain", ""));
    plain.expect_code(0);
    let boxed = scratch.run(&scenario("boxed", "sandbox = true"));
    boxed.expect_code(0);
    let said = |name: &str| {
        let report = read_report(&scratch.reports().join(format!("{name}.json")));
        (
            report["scenario"]["sandbox"].clone(),
            report["servers"][0]["output_tail"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        )
    };
    let (plain_flag, plain_said) = said("plain");
    let (boxed_flag, boxed_said) = said("boxed");
    assert_eq!(plain_flag, false);
    assert_eq!(boxed_flag, true);
    let uid = rustix::process::getuid().as_raw();
    assert!(plain_said.contains(&format!("uid: {uid}")), "{plain_said}");
    assert!(boxed_said.starts_with("shadow: False uid: "), "{boxed_said}");
    if uid == 0 {
        assert!(plain_said.starts_with("shadow: True"), "{plain_said}");
        assert!(!boxed_said.ends_with("uid: 0"), "{boxed_said}");
    }
    scratch.assert_nothing_left();
}

/// Without root (a Gradescope or CI container), `--sandbox` still puts the program in the
/// sandbox and the run in a private network: labrun enters a user namespace of its own
/// first. A listener on the host's loopback is out of the program's reach, and it runs as
/// the unprivileged user that started labrun. Run as `nobody` through `setpriv` when the
/// tests run as root.
#[test]
fn without_root_the_sandbox_and_the_private_network_still_hold() {
    let scratch = Scratch::new();
    open_to_all(scratch.dir.path(), 0o755);
    let host = std::net::TcpListener::bind("127.0.0.1:0").expect("host listener");
    host.set_nonblocking(true).expect("nonblocking");
    let host_port = host.local_addr().expect("address").port();
    // The binary and the program where `nobody` may read them.
    let labrun = scratch.dir.path().join("labrun");
    std::fs::copy(assert_cmd::cargo::cargo_bin("labrun"), &labrun).expect("copy labrun");
    open_to_all(&labrun, 0o755);
    let server = scratch.file(
        "server.py",
        &format!(
            "import os, socket, sys, threading\n\
             try:\n    socket.create_connection(('127.0.0.1', {host_port}), timeout=1)\n    reach = 'reached the host'\n\
             except OSError:\n    reach = 'host unreachable'\n\
             print('uid', os.getuid(), reach, flush=True)\n\
             def handle(conn):\n    with conn:\n        while data := conn.recv(1024):\n            conn.sendall(data)\n\
             server = socket.socket()\nserver.bind(('127.0.0.1', int(sys.argv[1])))\nserver.listen()\n\
             while True:\n    conn, _ = server.accept()\n    threading.Thread(target=handle, args=(conn,), daemon=True).start()\n"
        ),
    );
    open_to_all(&server, 0o644);
    let scenario = scratch.file(
        "unprivileged.toml",
        &format!(
            "name = \"unprivileged\"\n[[server]]\nname = \"srv\"\n\
             command = [\"python3\", \"{}\", \"{{port}}\"]\nport = \"auto\"\n\n\
             [[clients]]\nname = \"c\"\ncount = 2\nmessages = 3\n\n[expect]\necho = \"exact\"\n",
            server.display()
        ),
    );
    let reports = scratch.dir.path().join("reports");
    std::fs::create_dir(&reports).expect("reports");
    open_to_all(&reports, 0o777);
    let root = rustix::process::geteuid().is_root();
    let mut command = if root {
        let mut setpriv = std::process::Command::new("setpriv");
        setpriv
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(&labrun);
        setpriv
    } else {
        std::process::Command::new(&labrun)
    };
    let output = command
        .args(["run", "--sandbox"])
        .arg(&scenario)
        .arg("--out")
        .arg(&reports)
        .current_dir(scratch.dir.path())
        .env(crate::util::MARKER, &scratch.marker)
        .output()
        .expect("labrun runs");
    crate::util::Run::from(output).expect_code(0);
    let report = read_report(&reports.join("unprivileged.json"));
    let said = report["servers"][0]["output_tail"].as_str().unwrap_or_default();
    let uid = if root {
        65534
    } else {
        rustix::process::getuid().as_raw()
    };
    assert_eq!(said, format!("uid {uid} host unreachable"), "{said}");
    assert_eq!(
        host.accept().map(|_| ()).map_err(|err| err.kind()),
        Err(ErrorKind::WouldBlock)
    );
    scratch.assert_nothing_left();
}

/// The folders above a graded working copy belong to the sandbox's user, who can swap one
/// for a link to a host path. The disk-limit check walks its path inside the sandbox and
/// through no link, so a full 128 MiB space of the host's (a decoy mounted here) is never
/// what it judges: the linker, which writes nothing, keeps full marks. Root only (mount).
#[test]
fn a_link_planted_over_the_working_copy_leads_the_disk_check_nowhere() {
    if !rustix::process::geteuid().is_root() {
        return; // mounting the decoy needs root; the unprivileged path has no such uid split
    }
    let scratch = Scratch::new();
    let decoy = scratch.dir.path().join("decoy");
    let full = decoy.join("submission");
    std::fs::create_dir_all(&full).expect("decoy");
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=128M", "tmpfs"])
        .arg(&full)
        .status()
        .expect("mount runs");
    assert!(mounted.success(), "cannot mount the decoy");
    /// Unmounts the decoy however the test ends.
    struct Unmount<'a>(&'a std::path::Path);
    impl Drop for Unmount<'_> {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount").arg(self.0).status();
        }
    }
    let _unmount = Unmount(&full);
    let filled = std::fs::write(full.join("fill"), vec![0u8; 129 << 20]);
    assert!(filled.is_err(), "the decoy space is not full");
    let class = class_of(
        &scratch.dir.path().join("class"),
        &[("linker", "links_its_folder_to_the_host.py")],
    );
    std::fs::write(class[0].join("decoy.txt"), decoy.display().to_string()).expect("decoy.txt");
    let suite = suite_with(scratch.dir.path(), "");
    let (csv, out) = grade(&scratch, &suite, &class, &[]);
    assert!(csv.contains("linker,10,10,10,"), "{csv}");
    let feedback = std::fs::read_to_string(out.join("feedback/linker.md")).unwrap_or_default();
    assert!(!feedback.contains("ran out of the space"), "{feedback}");
    scratch.assert_nothing_left();
}

/// `limits.cpu` holds for a sandboxed program's processes together: four helpers spinning
/// 1.5 s each, within a 2 s limit alone, are ended with their server once the tree has used
/// 2 s, and the limit is a `cpu-limit` finding. Without the sandbox the rlimit is per
/// process, and they all finish.
#[test]
fn the_cpu_limit_holds_for_the_whole_program() {
    let scratch = Scratch::new();
    open_to_all(scratch.dir.path(), 0o755);
    let server = format!(
        "{}\nlimits = {{ cpu = \"2s\" }}",
        python_server("burns_cpu_in_helpers.py")
    );
    let scenario = scratch.file(
        "cpu.toml",
        &echo_scenario(
            "cpu",
            &server,
            "count = 2\nmessages = 60\nthink = \"100ms\"",
            "echo = \"exact\"",
        ),
    );
    scratch.run_with(&scenario, &["--sandbox"]).expect_code(1);
    let report = read_report(&scratch.reports().join("cpu.json"));
    let cpu = &report["servers"][0]["cpu_limit"];
    assert_eq!(cpu["stopped"], true, "{cpu:#}");
    assert!(cpu["used_ms"].as_f64().expect("used") < 4_000.0, "{cpu:#}");
    assert!(
        report["findings"]
            .as_array()
            .expect("findings")
            .iter()
            .any(|finding| finding["class"] == "cpu-limit"),
        "{:#}",
        report["findings"]
    );
    scratch.run(&scenario).expect_code(0);
    let report = read_report(&scratch.reports().join("cpu.json"));
    assert_eq!(report["servers"][0]["cpu_limit"], serde_json::Value::Null);
    scratch.assert_nothing_left();
}
