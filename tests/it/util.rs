//! Helpers: run labrun with a scenario, capture everything, and find leftover processes.

use std::collections::BTreeMap;
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use assert_cmd::Command;

/// Environment variable every labrun started by a test carries, with a value unique to the
/// test. Server processes inherit it, so after a run `/proc/*/environ` tells whether any of
/// them is still alive.
pub const MARKER: &str = "LABRUN_IT_MARKER";

/// A scratch folder with a scenario in it and a unique process marker.
pub struct Scratch {
    pub dir: tempfile::TempDir,
    pub marker: String,
}

impl Scratch {
    pub fn new() -> Scratch {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let marker = format!("{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
        Scratch {
            dir: tempfile::tempdir().expect("temporary directory"),
            marker,
        }
    }

    /// Writes `text` to `name` in the scratch folder and returns its path.
    pub fn file(&self, name: &str, text: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, text).expect("write scenario");
        path
    }

    /// The report folder runs write into.
    pub fn reports(&self) -> PathBuf {
        self.dir.path().join("reports")
    }

    /// `labrun` with the marker set, reports into the scratch folder, and a hard time limit.
    pub fn labrun(&self) -> Command {
        let mut command = Command::cargo_bin("labrun").expect("labrun binary");
        command
            .env(MARKER, &self.marker)
            .env_remove("NO_COLOR")
            .env("CI", "true")
            .current_dir(self.dir.path())
            .timeout(Duration::from_secs(90));
        command
    }

    /// Runs `labrun run SCENARIO --out REPORTS` and returns its output.
    pub fn run(&self, scenario: &Path) -> Run {
        self.run_with(scenario, &[])
    }

    /// Runs `labrun run FLAGS… SCENARIO --out REPORTS` and returns its output.
    pub fn run_with(&self, scenario: &Path, flags: &[&str]) -> Run {
        let output = self
            .labrun()
            .arg("run")
            .args(flags)
            .arg(scenario)
            .arg("--out")
            .arg(self.reports())
            .output()
            .expect("labrun runs");
        Run::from(output)
    }

    /// Starts `labrun SCENARIO --out REPORTS` without waiting for it, output piped, for
    /// tests that act on it mid-run (Ctrl-C, say).
    pub fn spawn(&self, scenario: &Path) -> std::process::Child {
        self.spawn_with(scenario, &[])
    }

    /// [`Scratch::spawn`] with FLAGS before the scenario.
    pub fn spawn_with(&self, scenario: &Path, flags: &[&str]) -> std::process::Child {
        std::process::Command::new(assert_cmd::cargo::cargo_bin("labrun"))
            .env(MARKER, &self.marker)
            .current_dir(self.dir.path())
            .args(flags)
            .arg(scenario)
            .arg("--out")
            .arg(self.reports())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("labrun starts")
    }

    /// Runs `labrun validate FILE`.
    pub fn validate(&self, scenario: &Path) -> Run {
        Run::from(
            self.labrun()
                .arg("validate")
                .arg(scenario)
                .output()
                .expect("labrun runs"),
        )
    }

    /// Runs a shipped scenario from the scratch folder (its paths are relative to the
    /// scenario file, so any folder will do), writing the report into the scratch folder.
    pub fn run_shipped(&self, scenario: &str) -> Run {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let output = self
            .labrun()
            .arg("run")
            .arg(root.join(scenario))
            .arg("--out")
            .arg(self.reports())
            .output()
            .expect("labrun runs");
        Run::from(output)
    }

    /// Process ids still carrying this scratch's marker.
    pub fn survivors(&self) -> Vec<u32> {
        processes_with_marker(&format!("{MARKER}={}", self.marker))
    }

    /// Fails the test if any process it caused is still alive (after a short grace period
    /// for the kernel to finish reaping).
    pub fn assert_nothing_left(&self) {
        for _ in 0..50 {
            if self.survivors().is_empty() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let left = self.survivors();
        let described: Vec<String> = left.iter().map(|pid| describe(*pid)).collect();
        panic!("processes outlived the run: {described:#?}");
    }
}

/// Sends SIGINT (a terminal's Ctrl-C) to a labrun started with [`Scratch::spawn`] and waits
/// for it to end.
pub fn ctrl_c(child: std::process::Child) -> Run {
    rustix::process::kill_process(
        rustix::process::Pid::from_child(&child),
        rustix::process::Signal::INT,
    )
    .expect("signal");
    Run::from(child.wait_with_output().expect("labrun exits"))
}

/// The output of one labrun run, with helpers that explain failures.
pub struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl From<Output> for Run {
    fn from(output: Output) -> Run {
        Run {
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }
}

impl Run {
    /// Asserts the exit code, printing everything labrun said when it differs.
    pub fn expect_code(&self, code: i32) -> &Run {
        assert_eq!(
            self.code,
            Some(code),
            "unexpected exit code\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout,
            self.stderr
        );
        self
    }

    /// Asserts stdout contains `needle`.
    pub fn stdout_has(&self, needle: &str) -> &Run {
        assert!(
            self.stdout.contains(needle),
            "stdout lacks {needle:?}\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout,
            self.stderr
        );
        self
    }

    /// Asserts stderr contains `needle`.
    pub fn stderr_has(&self, needle: &str) -> &Run {
        assert!(
            self.stderr.contains(needle),
            "stderr lacks {needle:?}\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout,
            self.stderr
        );
        self
    }
}

/// Writes `scenario` into a fresh scratch folder as `NAME.toml`, runs it, checks that nothing
/// outlived the run, and returns the exit code and the JSON report `NAME.json`.
pub fn run_text(name: &str, scenario: &str) -> (Option<i32>, serde_json::Value) {
    let scratch = Scratch::new();
    let path = scratch.file(&format!("{name}.toml"), scenario);
    let outcome = scratch.run(&path);
    scratch.assert_nothing_left();
    (
        outcome.code,
        read_report(&scratch.reports().join(format!("{name}.json"))),
    )
}

/// The text of a shipped scenario (path relative to the repository) with the program
/// `examples/FROM` (written relative to the scenario, as `../../examples/FROM`) replaced by
/// the absolute path of `examples/TO`, so that the text runs from any folder.
pub fn shipped_with_example(scenario: &str, from: &str, to: &str) -> String {
    let root = env!("CARGO_MANIFEST_DIR");
    let shipped = std::fs::read_to_string(Path::new(root).join(scenario)).expect("shipped scenario");
    let up = "../".repeat(scenario.matches('/').count());
    let edited = shipped.replace(
        &format!("\"{up}examples/{from}\""),
        &format!("\"{root}/examples/{to}\""),
    );
    assert_ne!(edited, shipped, "{scenario} does not run {up}examples/{from}");
    edited
}

/// The check called `name` in a report.
pub fn check<'a>(report: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    report["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no check `{name}` in {:#}", report["checks"]))
}

/// The client group called `name` in a report.
pub fn group<'a>(report: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    report["groups"]
        .as_array()
        .expect("groups")
        .iter()
        .find(|g| g["name"] == name)
        .unwrap_or_else(|| panic!("no group `{name}`"))
}

/// Reads a JSON report.
pub fn read_report(path: &Path) -> serde_json::Value {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("report {} unreadable: {e}", path.display()));
    serde_json::from_str(&text).expect("report is valid JSON")
}

/// Absolute path of a fixture server.
pub fn fixture(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/servers")
        .join(name)
        .display()
        .to_string()
}

/// A one-server, one-group echo scenario for `server` (a TOML fragment for `[[server]]`).
pub fn echo_scenario(name: &str, server: &str, clients: &str, expect: &str) -> String {
    format!(
        "name = \"{name}\"\ntimeout = \"45s\"\n\n[[server]]\nname = \"srv\"\n{server}\n\n[[clients]]\nname = \"c\"\n{clients}\n\n[expect]\n{expect}\n"
    )
}

/// A `[[server]]` body running a Python fixture on an automatic port.
pub fn python_server(fixture_name: &str) -> String {
    python_program(&fixture(fixture_name))
}

/// A `[[server]]` body running one of the lab programs in `examples/`.
pub fn example_server(name: &str) -> String {
    python_program(
        &Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("examples")
            .join(name)
            .display()
            .to_string(),
    )
}

fn python_program(path: &str) -> String {
    format!("command = [\"python3\", \"{path}\", \"{{port}}\"]\nport = \"auto\"")
}

fn processes_with_marker(needle: &str) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| pid != std::process::id())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/environ"))
                .map(|env| env.split(|&b| b == 0).any(|var| var == needle.as_bytes()))
                .unwrap_or(false)
        })
        // A zombie is already dead; only its parent's reaping is pending.
        .filter(|pid| !std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| s.contains(") Z ")))
        .collect()
}

/// A process as it was seen: its pid and start time (so a reused pid is not mistaken for it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeenProcess {
    pub pid: u32,
    start: u64,
}

/// Fields of `/proc/PID/stat` after the command name: (state, parent, start time).
fn stat_of(pid: u32) -> Option<(char, u32, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = text[text.rfind(')')? + 2..].split(' ').collect();
    Some((
        fields.first()?.chars().next()?,
        fields.get(1)?.parse().ok()?,
        fields.get(19)?.parse().ok()?,
    ))
}

/// Every living descendant of `root`, however deep (sandboxed ones included, which carry no
/// marker in their environment).
pub fn descendants_of(root: u32) -> Vec<SeenProcess> {
    let all: Vec<(u32, u32, u64)> = std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| stat_of(pid).map(|(_, parent, start)| (pid, parent, start)))
        .collect();
    let mut found = vec![root];
    let mut seen = Vec::new();
    while let Some(parent) = found.pop() {
        for &(pid, _, start) in all.iter().filter(|(_, p, _)| *p == parent) {
            found.push(pid);
            seen.push(SeenProcess { pid, start });
        }
    }
    seen
}

/// The ones of `processes` still alive after a grace period of up to 5 s for the kernel to
/// finish killing and reaping (zombies count as gone).
pub fn alive_after_grace(processes: &[SeenProcess]) -> Vec<SeenProcess> {
    let mut alive = still_alive(processes);
    for _ in 0..50 {
        if alive.is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
        alive = still_alive(processes);
    }
    alive
}

/// The ones of `processes` still alive (zombies count as gone).
fn still_alive(processes: &[SeenProcess]) -> Vec<SeenProcess> {
    processes
        .iter()
        .copied()
        .filter(|p| stat_of(p.pid).is_some_and(|(state, _, start)| start == p.start && state != 'Z'))
        .collect()
}

/// The uid a process runs as.
pub fn uid_of(pid: u32) -> Option<u32> {
    status_number(pid, "Uid:").and_then(|uid| u32::try_from(uid).ok())
}

/// The first number of a line of `/proc/PID/status` (`Uid:`, `VmHWM:` …).
pub fn status_number(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix(field))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

fn describe(pid: u32) -> String {
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let cmdline: Vec<String> = cmdline
        .split(|&b| b == 0)
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    format!("{pid}: {}", cmdline.join(" "))
}

/// The kernel's counters of dropped handshakes and packets (this network namespace's
/// `TcpExt` listen and request-queue drops, and every CPU's input-queue drops), to say in a
/// failed connect-time assertion whether an accept queue overflowed or the machine itself
/// dropped packets. Shared with every other test running at the time: a hint, not a measure.
pub fn kernel_drops() -> BTreeMap<String, u64> {
    let mut counters = BTreeMap::new();
    let netstat = std::fs::read_to_string("/proc/net/netstat").unwrap_or_default();
    let lines: Vec<&str> = netstat.lines().collect();
    for pair in lines.chunks(2) {
        let [names, values] = pair else { continue };
        for (name, value) in names.split_whitespace().zip(values.split_whitespace()).skip(1) {
            if [
                "ListenOverflows",
                "ListenDrops",
                "TCPReqQFullDrop",
                "TCPReqQFullDoCookies",
            ]
            .contains(&name)
            {
                counters.insert(name.to_owned(), value.parse().unwrap_or(0));
            }
        }
    }
    let softnet = std::fs::read_to_string("/proc/net/softnet_stat").unwrap_or_default();
    let input_drops = softnet
        .lines()
        .filter_map(|line| line.split_whitespace().nth(1))
        .filter_map(|hex| u64::from_str_radix(hex, 16).ok())
        .sum();
    counters.insert("input queue drops".to_owned(), input_drops);
    counters
}

/// What `kernel_drops` counted between two readings.
pub fn kernel_drops_since(before: &BTreeMap<String, u64>) -> BTreeMap<String, u64> {
    kernel_drops()
        .into_iter()
        .map(|(name, now)| {
            let was = before.get(&name).copied().unwrap_or(0);
            (name, now.saturating_sub(was))
        })
        .collect()
}

/// A server started by hand, outside labrun (it carries no test marker), killed when the
/// test ends.
pub struct ByHand {
    child: std::process::Child,
    pub port: u16,
}

impl ByHand {
    /// `labrun serve BUILTIN --port 0`, which prints the port it took.
    pub fn builtin(name: &str) -> ByHand {
        let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("labrun"))
            .args(["serve", name, "--port", "0"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("labrun serve starts");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("it says where it listens");
        let port = line
            .trim()
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("no port in {line:?}"));
        ByHand { child, port }
    }

    /// A Python lab server from the fixtures, on a free port, once it accepts connections.
    pub fn python(name: &str) -> ByHand {
        let port = free_port();
        let child = std::process::Command::new("python3")
            .arg(fixture(name))
            .arg(port.to_string())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("python3 starts");
        let started = std::time::Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "{name} never listened"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        ByHand { child, port }
    }

    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Still running, and still accepting connections.
    pub fn assert_untouched(&mut self) {
        assert!(
            self.child.try_wait().expect("wait").is_none(),
            "the server labrun only aimed at has ended"
        );
        assert!(
            std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok(),
            "the server no longer accepts connections"
        );
    }
}

impl Drop for ByHand {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port nothing listens on (taken, then let go).
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("address").port()
}

/// Where Debian's Chromium is, if installed (`.ci/run` installs it).
pub fn chromium() -> Option<std::path::PathBuf> {
    ["chromium", "chromium-browser", "google-chrome"]
        .iter()
        .filter_map(|name| {
            std::env::var_os("PATH").and_then(|paths| {
                std::env::split_paths(&paths)
                    .map(|dir| dir.join(name))
                    .find(|candidate| candidate.is_file())
            })
        })
        .next()
}

/// Renders the page at `page` in headless Chromium into a screenshot at `shot` and fails
/// unless it rendered with at least `min_ink` of its pixels dark (not blank); returns the page's DOM as Chromium built it (no
/// script runs in labrun's pages, so it holds what a reader sees). Without Chromium (CI
/// always has it, `.ci/run` installs it) it says so and returns `None`.
pub fn assert_renders(page: &Path, shot: &Path, min_ink: f64) -> Option<String> {
    let Some(browser) = chromium() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must have Chromium to render HTML pages"
        );
        eprintln!("note: chromium not installed; the HTML render check was skipped");
        return None;
    };
    let headless = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--hide-scrollbars",
        "--window-size=1200,1600",
    ];
    let url = format!("file://{}", page.display());
    let rendered = std::process::Command::new(&browser)
        .args(headless)
        .arg(format!("--screenshot={}", shot.display()))
        .arg(&url)
        .output()
        .expect("chromium runs");
    assert!(
        rendered.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&rendered.stderr)
    );
    let decoder = png::Decoder::new(std::io::BufReader::new(
        std::fs::File::open(shot).expect("screenshot"),
    ));
    let mut reader = decoder.read_info().expect("a PNG");
    let mut pixels = vec![0; reader.output_buffer_size().expect("size")];
    let frame = reader.next_frame(&mut pixels).expect("a frame");
    let pixels = &pixels[..frame.buffer_size()];
    let inked = pixels
        .chunks(frame.line_size / frame.width as usize)
        .filter(|p| p.iter().take(3).any(|&c| c < 200))
        .count();
    let share = inked as f64 / f64::from(frame.width * frame.height);
    assert!(
        share > min_ink,
        "the screenshot is (nearly) blank: {:.2}% of pixels inked",
        share * 100.0
    );
    let dom = std::process::Command::new(&browser)
        .args(headless)
        .arg("--dump-dom")
        .arg(&url)
        .output()
        .expect("chromium runs");
    assert!(dom.status.success(), "chromium --dump-dom failed");
    Some(String::from_utf8_lossy(&dom.stdout).into_owned())
}
