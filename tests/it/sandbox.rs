//! Issue 19: a program under test in the sandbox (`labrun run --sandbox`) reaches nothing of
//! the host and leaves nothing behind, while it is tested as usual.

use std::io::ErrorKind;
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use crate::util::{Scratch, fixture, read_report};

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
    let output = scratch
        .labrun()
        .env("LABRUN_TEST_SECRET", "hunter2-not-for-students")
        .args(["run", "--sandbox"])
        .arg(&path)
        .arg("--out")
        .arg(scratch.reports())
        .output()
        .expect("labrun runs");
    let run = crate::util::Run::from(output);
    run.expect_code(0).stdout_has("PASS  echo");

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
    assert_eq!(log.lines().count(), 9, "{log}");
    if rustix::process::geteuid().is_root() {
        assert!(log.contains("uid: GOT 65534"), "{log}");
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
