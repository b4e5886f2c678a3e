//! The JSON Schemas in `docs/` against the real thing: every shipped scenario (and a
//! scenario using every key) must conform to `scenario.schema.json`, and the reports labrun
//! writes to `report.schema.json`, so neither document can drift from the code.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::util::{ByHand, Run, Scratch, read_report};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn load_schema(name: &str) -> Value {
    let text = std::fs::read_to_string(root().join("docs").join(name)).expect("schema file");
    serde_json::from_str(&text).expect("the schema is JSON")
}

/// Checks `value` against the subset of JSON Schema the two schemas use: `required`, `type`, `enum`,
/// `const`, `properties` with `additionalProperties`, `items`, `anyOf` and local `$ref`.
/// Returns one line per violation, naming its path.
fn violations(schema_root: &Value, schema: &Value, value: &Value, path: &str) -> Vec<String> {
    if let Some(reference) = schema.get("$ref").and_then(Value::as_str) {
        let name = reference.trim_start_matches("#/$defs/");
        return violations(schema_root, &schema_root["$defs"][name], value, path);
    }
    if let Some(options) = schema.get("anyOf").and_then(Value::as_array) {
        return if options
            .iter()
            .any(|o| violations(schema_root, o, value, path).is_empty())
        {
            Vec::new()
        } else {
            vec![format!("{path}: matches none of anyOf")]
        };
    }
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array)
        && !allowed.contains(value)
    {
        return vec![format!("{path}: {value} is not one of {allowed:?}")];
    }
    if let Some(constant) = schema.get("const")
        && constant != value
    {
        return vec![format!("{path}: {value} is not {constant}")];
    }
    if let Some(kind) = schema.get("type") {
        let kinds: Vec<&str> = match kind {
            Value::String(k) => vec![k.as_str()],
            Value::Array(ks) => ks.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        };
        let actual = match value {
            Value::Null => "null",
            Value::Bool(_) => "boolean",
            Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
            Value::Number(_) => "number",
            Value::String(_) => "string",
            Value::Array(_) => "array",
            Value::Object(_) => "object",
        };
        let fits = kinds.contains(&actual) || (actual == "integer" && kinds.contains(&"number"));
        if !fits {
            return vec![format!("{path}: {actual} where the schema says {kinds:?}")];
        }
    }
    let mut found = Vec::new();
    match value {
        Value::Object(map) => {
            for key in schema
                .get("required")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let key = key.as_str().unwrap_or_default();
                if !map.contains_key(key) {
                    found.push(format!("{path}.{key}: required, missing"));
                }
            }
            let properties = schema.get("properties").and_then(Value::as_object);
            let additional = schema.get("additionalProperties");
            for (key, item) in map {
                let at = format!("{path}.{key}");
                match (properties.and_then(|p| p.get(key)), additional) {
                    (Some(sub), _) => found.extend(violations(schema_root, sub, item, &at)),
                    (None, Some(Value::Bool(false))) => found.push(format!("{at}: not in the schema")),
                    (None, Some(sub @ Value::Object(_))) => {
                        found.extend(violations(schema_root, sub, item, &at))
                    }
                    (None, _) => {}
                }
            }
        }
        Value::Array(items) => {
            if let Some(sub) = schema.get("items") {
                for (i, item) in items.iter().enumerate() {
                    found.extend(violations(schema_root, sub, item, &format!("{path}[{i}]")));
                }
            }
        }
        _ => {}
    }
    found
}

fn shipped_scenarios() -> Vec<PathBuf> {
    let mut found = Vec::new();
    for dir in [
        "scenarios",
        "scenarios/python",
        "scenarios/clients",
        "tests/fixtures/scenarios",
    ] {
        for entry in std::fs::read_dir(root().join(dir)).expect("scenario folder") {
            let path = entry.expect("entry").path();
            if path.extension().is_some_and(|e| e == "toml") {
                found.push(path);
            }
        }
    }
    found
}

#[test]
fn the_checker_itself_catches_unknown_keys_and_wrong_types() {
    let schema = load_schema("scenario.schema.json");
    let bad: Value =
        serde_json::json!({"name": 3, "nmae": "x", "server": [{"name": "s", "builtin": "echo-fast"}]});
    let found = violations(&schema, &schema, &bad, "$");
    assert!(
        found.iter().any(|v| v.starts_with("$.nmae: not in the schema")),
        "{found:?}"
    );
    assert!(
        found.iter().any(|v| v.starts_with("$.name: integer")),
        "{found:?}"
    );
    assert!(
        found.iter().any(|v| v.starts_with("$.server[0].builtin")),
        "{found:?}"
    );
}

#[test]
fn every_shipped_scenario_conforms_to_the_scenario_schema() {
    let schema = load_schema("scenario.schema.json");
    let printed = Run::from(Scratch::new().labrun().arg("schema").output().expect("runs"));
    printed.expect_code(0);
    assert_eq!(
        serde_json::from_str::<Value>(&printed.stdout).expect("labrun schema prints JSON"),
        schema
    );
    let scenarios = shipped_scenarios();
    assert!(scenarios.len() >= 15, "{scenarios:?}");
    for path in scenarios {
        let text = std::fs::read_to_string(&path).expect("scenario");
        let value: Value = toml::from_str(&text).expect("TOML");
        let found = violations(&schema, &schema, &value, "$");
        assert!(found.is_empty(), "{}: {found:#?}", path.display());
    }
}

#[test]
fn reports_conform_to_the_report_schema() {
    let schema = load_schema("report.schema.json");
    let scratch = Scratch::new();
    for name in ["kitchen-sink", "kitchen-sink-clients"] {
        let text = std::fs::read_to_string(root().join(format!("tests/fixtures/scenarios/{name}.toml")))
            .expect("scenario");
        let path = scratch.file(
            &format!("{name}.toml"),
            &text.replace("{root}", &root().display().to_string()),
        );
        scratch.run(&path).expect_code(0);
    }
    // Run twice, so that `repeats` is checked too.
    scratch
        .run_with(&root().join("scenarios/threaded.toml"), &["--repeat", "2"])
        .expect_code(0);
    // One program serving two servers' ports (`launch.process`, `process_of`).
    scratch
        .run_shipped("scenarios/python/two-servers-one-program.toml")
        .expect_code(0);
    // A client program that ends before all its lines are typed (typing_stopped, status 1).
    scratch
        .run_shipped("scenarios/clients/echo-server-closes.toml")
        .expect_code(0);
    // A server labrun did not launch, driven as one shard of a run given a start instant
    // (`launch.address`, a numeric `port`, `addressed`, `shard`, `start_at`).
    let running = ByHand::builtin("echo-threaded");
    let aimed_out = scratch.dir.path().join("aimed");
    let target = format!("echo={}", running.address());
    let aimed = Run::from(
        scratch
            .labrun()
            .arg("run")
            .arg(root().join("scenarios/threaded.toml"))
            .args([
                "--target",
                &target,
                "--shard",
                "1/2",
                "--start-at",
                "2026-01-01T00:00:00Z",
                "--out",
            ])
            .arg(&aimed_out)
            .output()
            .expect("labrun runs"),
    );
    aimed.expect_code(0);
    drop(running);
    scratch.assert_nothing_left();
    let aimed_report = read_report(&aimed_out.join("threaded.json"));
    assert!(
        aimed_report["scenario"]["servers"][0]["port"].is_u64(),
        "{aimed_report}"
    );
    let found = violations(&schema, &schema, &aimed_report, "$");
    assert!(found.is_empty(), "aimed: {found:#?}");
    for name in [
        "kitchen-sink",
        "kitchen-sink-clients",
        "threaded",
        "python-two-servers-one-program",
        "echo-client-server-closes",
    ] {
        let report = read_report(&scratch.reports().join(format!("{name}.json")));
        let runs = report["repeats"].as_array().map_or(0, Vec::len);
        assert_eq!(runs, if name == "threaded" { 2 } else { 0 }, "{name}");
        let found = violations(&schema, &schema, &report, "$");
        assert!(found.is_empty(), "{name}: {found:#?}");
    }
    let scenarios = [
        scratch.dir.path().join("kitchen-sink.toml"),
        scratch.dir.path().join("kitchen-sink-clients.toml"),
        root().join("scenarios/threaded.toml"),
        root().join("scenarios/python/two-servers-one-program.toml"),
        root().join("scenarios/clients/echo-server-closes.toml"),
    ];
    every_check_is_one_validate_lists(&scratch, &scenarios);
}

/// What a suite may name (`labrun validate` lists it: `…; checks: echo, errors, …`) covers
/// every check the runs of those scenarios had, whose reports are in the scratch folder.
fn every_check_is_one_validate_lists(scratch: &Scratch, scenarios: &[std::path::PathBuf]) {
    let listed = Run::from(
        scratch
            .labrun()
            .arg("validate")
            .args(scenarios)
            .output()
            .expect("runs"),
    );
    listed.expect_code(0);
    for line in listed.stdout.lines() {
        let name = line.split('`').nth(1).expect("a scenario name");
        let (_, checks) = line.split_once("; checks: ").expect("checks listed");
        let possible: Vec<&str> = checks.split(", ").collect();
        let report = read_report(&scratch.reports().join(format!("{name}.json")));
        for check in report["checks"].as_array().expect("checks") {
            let check = check["name"].as_str().expect("a name");
            assert!(
                possible.contains(&check),
                "{name}: `{check}` is not in {possible:?}"
            );
        }
    }
}

/// The report of a run that could not start conforms too, and the schema requires every
/// top-level key: `{}` is not a report.
#[test]
fn an_error_report_conforms_and_an_empty_object_does_not() {
    let schema = load_schema("report.schema.json");
    let scratch = Scratch::new();
    let crashing = scratch.file(
        "crashes.toml",
        &crate::util::echo_scenario(
            "crashes",
            &crate::util::python_server("crash_at_start.py"),
            "count = 1",
            "",
        ),
    );
    scratch.run(&crashing).expect_code(3);
    let report = read_report(&scratch.reports().join("crashes.json"));
    assert_eq!(report["outcome"], "error");
    let found = violations(&schema, &schema, &report, "$");
    assert!(found.is_empty(), "{found:#?}");
    let empty = violations(&schema, &schema, &serde_json::json!({}), "$");
    for key in ["$.schema_version", "$.outcome", "$.error", "$.checks"] {
        assert!(
            empty.iter().any(|v| v.starts_with(&format!("{key}: required"))),
            "{key}: {empty:?}"
        );
    }
}
