//! Issue 19: a class of hostile submissions graded beside honest ones. Each rogue tries one
//! class of attack and otherwise behaves as its server deserves; the honest students must
//! score exactly what they score alone, and nothing outside the sandboxes may change.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::util::{Scratch, alive_after_grace, descendants_of, read_report};

/// What every rogue's server does once its attack is over: a correct thread-per-client echo
/// server, as the lab asks.
const ECHO_SERVER: &str = r#"
import socket, threading

def handle(conn):
    with conn:
        while data := conn.recv(1024):
            conn.sendall(data)

server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind(("127.0.0.1", PORT))
server.listen(5)
while True:
    conn, _ = server.accept()
    threading.Thread(target=handle, args=(conn,), daemon=True).start()
"#;

/// The same server, never replying.
const SILENT_SERVER: &str = r#"
import socket, time
server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind(("127.0.0.1", PORT))
server.listen(5)
held = []
while True:
    conn, _ = server.accept()
    held.append(conn)
"#;

/// Each rogue: its name, its attack (Python run before its server; `HOST_PORT`, `HOST_SOCKET`
/// and `MARKER` are defined for it), and the server it runs afterwards.
fn rogues() -> Vec<(&'static str, &'static str, &'static str)> {
    vec![
        // Forge a passing report into the supervising labrun's stdout and its HTML report
        // beside the copy, and kill it, with a server that echoes nothing: it must score
        // what a silent server scores, and the TA's page must link labrun's report.
        (
            "forger",
            r#"
import glob, json
for folder in ["../report", "../../report", "/tmp/report"]:
    try:
        os.makedirs(folder, exist_ok=True)
        with open(os.path.join(folder, "a-forged.html"), "w") as out:
            out.write("<!DOCTYPE html> 10 of 10 checks passed FORGED-" + "PAGE")
    except OSError:
        pass
fake = json.dumps({"checks": [{"name": "echo", "passed": True, "summary": "forged"}]})
for fd in glob.glob("/proc/*/fd/1") + [f"/proc/self/fd/{n}" for n in range(3, 64)]:
    try:
        with open(fd, "w") as out:
            out.write(fake)
    except OSError:
        pass
for pid in range(1, 4):
    try:
        os.kill(pid, 9)
    except OSError:
        pass
"#,
            SILENT_SERVER,
        ),
        // Read every secret it can think of and print it all in a crash at start.
        (
            "leaker",
            r#"
found = {k: v for k, v in os.environ.items()}
for path in ["/etc/shadow", "/proc/1/cmdline", "/proc/1/environ"] + glob.glob("/tmp/**", recursive=True):
    try:
        found[path] = open(path, "rb").read(4096).decode("latin-1")
    except OSError:
        pass
raise RuntimeError(repr(found))
"#,
            ECHO_SERVER,
        ),
        // Sabotage: write wherever it can reach, mount over things, leave a daemon.
        (
            "saboteur",
            r#"
for target in ["..", "../..", "/", "/usr/bin", "/etc", "/tmp", "/proc/1/root/tmp"]:
    try:
        with open(os.path.join(target, "PWNED"), "w") as out:
            out.write(MARKER)
    except OSError:
        pass
try:
    subprocess.run(["mount", "--bind", "/dev/null", "/usr/bin/python3"], capture_output=True, timeout=5)
except Exception:
    pass
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        for path in ["/sys/fs/cgroup/cgroup.procs", "/sys/fs/cgroup/pids/cgroup.procs"]:
            try:
                open(path, "w").write(str(os.getpid()))
            except OSError:
                pass
        while True:
            time.sleep(0.1)
    os._exit(0)
"#,
            ECHO_SERVER,
        ),
        // Reach the host: its loopback, a unix socket on its disk, its network namespace.
        (
            "escaper",
            r#"
for attempt in [
    lambda: socket.create_connection(("127.0.0.1", HOST_PORT), timeout=1).sendall(MARKER.encode()),
    lambda: socket.socket(socket.AF_UNIX).connect(HOST_SOCKET),
    lambda: os.setns(os.open("/proc/1/ns/net", os.O_RDONLY), 0),
]:
    try:
        attempt()
    except Exception:
        pass
"#,
            ECHO_SERVER,
        ),
        // Fill the disk through its working copy, 8 MiB at a time, and crash when refused:
        // the space it may write is bounded (128 MiB), so it crashes before 256 MiB.
        (
            "filler",
            r#"
for n in range(32):
    with open(f"fill-{n}.bin", "wb") as out:
        out.write(b"x" * (8 << 20))
"#,
            ECHO_SERVER,
        ),
        // Exhaust the grader: a flood on its output pipes, memory, processes.
        (
            "hog",
            r#"
import threading
def flood():
    chunk = b"x" * (1 << 20)
    try:
        for _ in range(1024):
            sys.stdout.buffer.write(chunk)
            sys.stderr.buffer.write(chunk)
    except Exception:
        pass
threading.Thread(target=flood, daemon=True).start()
children = 0
try:
    while children < 2000:
        if os.fork() == 0:
            time.sleep(20)
            os._exit(0)
        children += 1
except OSError:
    pass
try:
    hoard = bytearray(2 << 30)
except MemoryError:
    hoard = None
"#,
            ECHO_SERVER,
        ),
    ]
}

/// A complete rogue program: imports and its parameters, its attack, then its server.
fn program(attack: &str, server: &str, host_port: u16, host_socket: &Path, marker: &str) -> String {
    format!(
        "import glob, json, os, socket, subprocess, sys, time\n\
         PORT = int(sys.argv[1])\nHOST_PORT = {host_port}\nHOST_SOCKET = {:?}\nMARKER = {marker:?}\n\
         {attack}\n{server}",
        host_socket.display().to_string()
    )
}

/// Every file under `dir` with its contents, to compare before and after.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut files = BTreeMap::new();
    let mut pending = vec![dir.to_owned()];
    while let Some(path) = pending.pop() {
        let Ok(meta) = path.symlink_metadata() else {
            continue;
        };
        if meta.is_dir() {
            for entry in std::fs::read_dir(&path).into_iter().flatten().flatten() {
                pending.push(entry.path());
            }
        } else if let Ok(bytes) = std::fs::read(&path) {
            files.insert(path, bytes);
        }
    }
    files
}

/// A suite in `dir` whose one test is hidden; its scenario carries `HIDDEN-{marker}`, a text
/// that must never reach any output.
fn hidden_suite(dir: &Path, marker: &str) -> std::path::PathBuf {
    // The suite, with a hidden test whose text must never reach any output.
    std::fs::create_dir_all(dir).expect("suite folder");
    let hidden = format!(
        "# HIDDEN-{marker}\n{}",
        std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/suites/echo.toml")
        )
        .expect("echo")
    );
    std::fs::write(dir.join("hidden.toml"), &hidden).expect("hidden");
    std::fs::write(
        dir.join("suite.toml"),
        "name = \"rogues\"\n[submission]\ncommand = [\"python3\", \"{file}\", \"{port}\"]\nfiles = [\"server.py\"]\n\
         port = 6000\nlimits = { memory = \"1GiB\", processes = 64, file_size = \"16MiB\" }\ntimeout = \"30s\"\n\n\
         [[test]]\nname = \"echo\"\nscenario = \"hidden.toml\"\npoints = 10\npartial = false\nhidden = true\n",
    )
    .expect("suite");
    dir.to_owned()
}

/// The class: two honest students (the fixture Alice's server) and every rogue, each
/// aiming its attack at the host's `host_port` and `host_socket`.
fn write_class(class: &Path, host_port: u16, host_socket: &Path, marker: &str) {
    let honest = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/submissions/alice/server.py");
    for name in ["honest-a", "honest-b"] {
        std::fs::create_dir_all(class.join(name)).expect("folder");
        std::fs::copy(&honest, class.join(name).join("server.py")).expect("copy");
    }
    for (name, attack, server) in rogues() {
        std::fs::create_dir_all(class.join(name)).expect("folder");
        std::fs::write(
            class.join(name).join("server.py"),
            program(attack, server, host_port, host_socket, marker),
        )
        .expect("rogue");
    }
}

/// Waits for `grader` (within a bound its timeouts must keep), noting every process of its
/// tree and its peak memory in KiB as it runs.
fn watch_to_the_end(
    mut grader: std::process::Child,
) -> (crate::util::Run, Vec<crate::util::SeenProcess>, u64) {
    let started = Instant::now();
    let mut tree = Vec::new();
    let mut peak = 0;
    while grader.try_wait().expect("wait").is_none() {
        assert!(
            started.elapsed() < Duration::from_secs(240),
            "grading ran past its timeouts"
        );
        peak = peak.max(crate::util::status_number(grader.id(), "VmHWM:").unwrap_or(0));
        for process in descendants_of(grader.id()) {
            if !tree.contains(&process) {
                tree.push(process);
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let output = grader.wait_with_output().expect("grader ends");
    (crate::util::Run::from(output), tree, peak)
}

/// Each run's report the grader kept in `out` is labrun's: the forger's page (its text is
/// built at run time, so no report quoting a program's source contains it) is in none.
fn no_run_report_is_forged(out: &Path) {
    let runs = snapshot(&out.join("runs"));
    assert!(runs.len() >= 6, "a report per run: {:?}", runs.keys());
    for (path, bytes) in &runs {
        let text = String::from_utf8_lossy(bytes);
        assert!(!text.contains("FORGED-PAGE"), "{} was forged", path.display());
    }
}

#[test]
fn a_class_of_rogues_harms_nobody_and_learns_nothing() {
    let scratch = Scratch::new();
    let class = scratch.dir.path().join("class");
    let marker = format!("ROGUE-{}", scratch.marker);
    let secret = format!("grader-secret-{}", scratch.marker);

    let suite_dir = hidden_suite(&scratch.dir.path().join("suite"), &marker);

    let host_tcp = std::net::TcpListener::bind("127.0.0.1:0").expect("host listener");
    host_tcp.set_nonblocking(true).expect("nonblocking");
    let host_port = host_tcp.local_addr().expect("address").port();
    let host_socket = scratch.dir.path().join("host.sock");
    let host_unix = std::os::unix::net::UnixListener::bind(&host_socket).expect("unix");
    host_unix.set_nonblocking(true).expect("nonblocking");

    write_class(&class, host_port, &host_socket, &marker);
    let out = scratch.dir.path().join("out");
    let before_suite = snapshot(&suite_dir);
    let before_class = snapshot(&class);
    let labrun = assert_cmd::cargo::cargo_bin("labrun");
    let labrun_bytes = std::fs::read(&labrun).expect("binary");

    let grader = std::process::Command::new(&labrun)
        .env(crate::util::MARKER, &scratch.marker)
        .env("GRADER_SECRET", &secret)
        .env("CI", "true")
        .arg("grade")
        .arg(suite_dir.join("suite.toml"))
        .args(
            std::fs::read_dir(&class)
                .expect("class")
                .map(|e| e.expect("entry").path()),
        )
        .args(["-j", "4", "--out"])
        .arg(&out)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("grader starts");
    let (run, tree, peak) = watch_to_the_end(grader);
    run.expect_code(0);

    // Scores: the honest students as alone, each rogue as its server deserves.
    let csv = std::fs::read_to_string(out.join("grades.csv")).expect("grades.csv");
    for line in [
        "honest-a,10,10,10,",
        "honest-b,10,10,10,",
        "forger,0,0,10,",
        "saboteur,10,10,10,",
        "escaper,10,10,10,",
    ] {
        assert!(csv.contains(line), "{line} missing from\n{csv}");
    }
    assert!(
        csv.contains("leaker,0,0,10,"),
        "a server that crashes at start scores nothing:\n{csv}"
    );
    let graded = std::fs::read_to_string(out.join("grades.json")).expect("grades.json");
    assert!(
        csv.contains("filler,0,0,10,"),
        "the filler found no end to its disk:\n{csv}"
    );
    assert!(graded.contains("No space left on device"), "{graded}");

    // Nothing outside the sandboxes changed.
    assert_eq!(snapshot(&suite_dir), before_suite, "the suite changed");
    assert_eq!(snapshot(&class), before_class, "a submission changed");
    assert_eq!(
        std::fs::read(&labrun).expect("binary"),
        labrun_bytes,
        "the binary changed"
    );
    for place in ["/tmp/PWNED", "/PWNED"] {
        assert!(
            !Path::new(place).exists()
                || !std::fs::read_to_string(place)
                    .unwrap_or_default()
                    .contains(&marker)
        );
    }
    assert_eq!(
        host_tcp.accept().map(|_| ()).map_err(|e| e.kind()),
        Err(std::io::ErrorKind::WouldBlock)
    );
    assert_eq!(
        host_unix.accept().map(|_| ()).map_err(|e| e.kind()),
        Err(std::io::ErrorKind::WouldBlock)
    );

    no_run_report_is_forged(&out);

    // No secret and no hidden test in any output, nothing left running, the grader small.
    let mut outputs = vec![run.stdout.clone(), run.stderr.clone()];
    for (path, bytes) in snapshot(&out) {
        outputs.push(format!("{}: {}", path.display(), String::from_utf8_lossy(&bytes)));
    }
    for text in &outputs {
        assert!(
            !text.contains(&secret),
            "the grader's secret leaked: {}",
            &text[..text.len().min(300)]
        );
        assert!(
            !text.contains(&format!("HIDDEN-{marker}")),
            "the hidden test leaked"
        );
    }
    let alive = alive_after_grace(&tree);
    assert!(tree.len() > 20, "the rogues' processes were seen: {}", tree.len());
    assert!(alive.is_empty(), "outlived grading: {alive:?}");
    assert!(peak < 100 * 1024, "the grader's peak RSS was {peak} KiB");
    read_report(&out.join("grades.json"));
}
