//! `examples/kubernetes/`: the manifests hold together as Kubernetes objects (checked
//! without a cluster: parsed, and their names, labels and ports matched against each other
//! and the scenario), and the Job's command line, the README's collection pipeline and its
//! merge command are run here as written, against the Deployment's own server program on
//! loopback.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use yaml_rust2::{Yaml, YamlLoader};

use crate::util::{Run, Scratch, free_port};

fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples/kubernetes")
        .join(name)
}

fn documents(name: &str) -> Vec<Yaml> {
    let text = std::fs::read_to_string(example(name)).expect("manifest");
    YamlLoader::load_from_str(&text).unwrap_or_else(|err| panic!("{name} is not YAML: {err}"))
}

fn text<'a>(yaml: &'a Yaml, what: &str) -> &'a str {
    yaml.as_str()
        .unwrap_or_else(|| panic!("{what} is not a string: {yaml:?}"))
}

fn number(yaml: &Yaml, what: &str) -> i64 {
    yaml.as_i64()
        .unwrap_or_else(|| panic!("{what} is not a number: {yaml:?}"))
}

/// The first container of a pod template.
fn container(template: &Yaml) -> &Yaml {
    &template["spec"]["containers"][0]
}

/// The Deployment and the Service are what a cluster would accept, agree with each other,
/// and run a program of the examples on the port the Service targets.
#[test]
fn the_server_manifests_fit_together() {
    let server = documents("server.yaml");
    let [deployment, service] = server.as_slice() else {
        panic!("server.yaml holds a Deployment and a Service");
    };
    assert_eq!(
        (
            text(&deployment["apiVersion"], "apiVersion"),
            text(&deployment["kind"], "kind")
        ),
        ("apps/v1", "Deployment")
    );
    assert_eq!(
        (
            text(&service["apiVersion"], "apiVersion"),
            text(&service["kind"], "kind")
        ),
        ("v1", "Service")
    );
    let template = &deployment["spec"]["template"];
    let labels = &template["metadata"]["labels"];
    assert_eq!(
        deployment["spec"]["selector"]["matchLabels"], *labels,
        "the Deployment selects its pods"
    );
    let Yaml::Hash(selector) = &service["spec"]["selector"] else {
        panic!("the Service has a selector");
    };
    for (key, value) in selector {
        assert_eq!(
            labels[text(key, "label")],
            *value,
            "the Service selects the Deployment's pods"
        );
    }
    let server = container(template);
    let container_port = number(&server["ports"][0]["containerPort"], "containerPort");
    let port = &service["spec"]["ports"][0];
    assert_eq!(number(&port["targetPort"], "targetPort"), container_port);
    let command: Vec<&str> = server["command"]
        .as_vec()
        .expect("a command")
        .iter()
        .map(|word| text(word, "command word"))
        .collect();
    let program = Path::new(command[1])
        .file_name()
        .expect("a file")
        .to_str()
        .expect("UTF-8");
    assert!(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("examples")
            .join(program)
            .is_file(),
        "the Deployment runs examples/{program}"
    );
    assert_eq!(
        command[2],
        container_port.to_string(),
        "the program listens on the container port"
    );
}

/// The scenario aims at the Service and validates; the Job runs every shard at once with
/// the scenario its ConfigMap mounts, split as many ways as it has completions.
#[test]
fn the_job_matches_the_scenario_and_the_service() {
    let server = documents("server.yaml");
    let service = &server[1];
    let port = &service["spec"]["ports"][0];
    let scratch = Scratch::new();
    let scenario = std::fs::read_to_string(example("spread.toml")).expect("scenario");
    let service_address = format!(
        "address = \"{}:{}\"",
        text(&service["metadata"]["name"], "name"),
        number(&port["port"], "port")
    );
    assert!(
        scenario.contains(&service_address),
        "the scenario aims at the Service: {service_address}"
    );
    Run::from(
        scratch
            .labrun()
            .arg("validate")
            .arg(example("spread.toml"))
            .output()
            .expect("runs"),
    )
    .expect_code(0);

    let jobs = documents("load.yaml");
    let job = &jobs[0];
    assert_eq!(
        (text(&job["apiVersion"], "apiVersion"), text(&job["kind"], "kind")),
        ("batch/v1", "Job")
    );
    assert_eq!(text(&job["spec"]["completionMode"], "completionMode"), "Indexed");
    let shards = number(&job["spec"]["completions"], "completions");
    assert_eq!(
        number(&job["spec"]["parallelism"], "parallelism"),
        shards,
        "every shard runs at once"
    );
    let pod = &job["spec"]["template"];
    let mount = &container(pod)["volumeMounts"][0];
    assert_eq!(pod["spec"]["volumes"][0]["name"], mount["name"]);
    assert_eq!(
        text(&pod["spec"]["volumes"][0]["configMap"]["name"], "configMap"),
        "labrun-scenario"
    );
    let script = job_script();
    assert!(script.contains(&format!("{}/spread.toml", text(&mount["mountPath"], "mountPath"))));
    assert!(
        script.contains(&format!("--shard \"$shard/{shards}\"")),
        "{script}"
    );
}

/// The Job's shell script, as the pod runs it.
fn job_script() -> String {
    let job = &documents("load.yaml")[0];
    text(&container(&job["spec"]["template"])["args"][0], "args").to_owned()
}

/// The Job's script runs here as each pod runs it (index, START_AT, labrun on the PATH), its
/// scenario aimed at the Deployment's program on loopback instead of the Service; the
/// README's pipeline collects each pod's report from the mixed output, and its merge command
/// joins them into one run of every client.
#[test]
fn the_jobs_command_and_the_readmes_merge_run_as_written() {
    let scratch = Scratch::new();
    let dir = scratch.dir.path();
    let port = free_port();
    let mut server = std::process::Command::new("python3")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/echo_server_threaded.py"))
        .arg(port.to_string())
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("python3 starts");
    let scenario = std::fs::read_to_string(example("spread.toml"))
        .expect("scenario")
        .replace("echo-server:7000", &format!("127.0.0.1:{port}"));
    std::fs::write(dir.join("spread.toml"), scenario).expect("write");
    let script = job_script().replace(
        "/scenario/spread.toml",
        &dir.join("spread.toml").display().to_string(),
    );
    let readme = std::fs::read_to_string(example("README.md")).expect("README");
    let collect = readme
        .lines()
        .find_map(|line| line.trim().strip_prefix("| "))
        .and_then(|pipeline| pipeline.strip_suffix(" > shard-$k.json"))
        .expect("the README's collection pipeline");
    let merge = readme
        .lines()
        .find(|line| line.starts_with("labrun merge "))
        .expect("the README's merge command");
    let labrun = assert_cmd::cargo::cargo_bin("labrun");
    let path = format!(
        "{}:{}",
        labrun.parent().expect("a folder").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let start_at = humantime::format_rfc3339(SystemTime::now() + Duration::from_secs(3)).to_string();
    let pods: Vec<std::process::Child> = (0..4)
        .map(|k| {
            std::process::Command::new("sh")
                .arg("-c")
                // A pod's log is its stdout and stderr together, as `kubectl logs` shows it.
                // Each pod has a /tmp of its own.
                .arg(format!(
                    "( {} ) 2>&1 | {collect} > shard-{k}.json",
                    script.replace("/tmp/reports", &format!("pod-{k}/reports"))
                ))
                .env("JOB_COMPLETION_INDEX", k.to_string())
                .env("START_AT", &start_at)
                .env("PATH", &path)
                .env("CI", "true")
                .env(crate::util::MARKER, &scratch.marker)
                .current_dir(dir)
                .spawn()
                .expect("sh starts")
        })
        .collect();
    for mut pod in pods {
        assert!(pod.wait().expect("the pod ends").success());
    }
    let merged = Run::from(
        std::process::Command::new("sh")
            .arg("-c")
            .arg(merge)
            .env("PATH", &path)
            .env(crate::util::MARKER, &scratch.marker)
            .current_dir(dir)
            .output()
            .expect("sh runs"),
    );
    let _ = server.kill();
    let _ = server.wait();
    merged.expect_code(0).stdout_has("spread: 4 reports merged");
    let report = crate::util::read_report(&dir.join("reports/spread.merged.json"));
    assert_eq!(report["total"]["clients"], 200);
    assert_eq!(report["total"]["messages"], 200 * 20);
    scratch.assert_nothing_left();
}
