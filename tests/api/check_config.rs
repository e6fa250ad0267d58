//! `verigate check-config`: a bad file is refused with its key path and
//! exit code 2, never a panic; a good one is described without secrets.

use std::process::Command;

use crate::helpers::{CUSTOMERS, KEY, verigate_bin};

fn base(data: &str) -> String {
    format!(
        r#"
[[backends]]
name = "customers"
kind = "file"
path = "{data}"
key = ["callNum", "nation"]

[[routes]]
name = "contiple"
path = "/contiple/customer"
scheme = "contiple"
keys = ["{KEY}"]
backend = "customers"
request_fields = ["callNum", "nation"]
optional_fields = ["nation"]
response_fields = ["userName", "id"]
"#
    )
}

fn run(config: &str) -> (i32, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("customers.json");
    std::fs::write(&data, CUSTOMERS).unwrap();
    std::fs::write(dir.path().join("broken.json"), "[{\"callNum\":").unwrap();
    let text = config
        .replace("{data}", &data.display().to_string())
        .replace("{dir}", &dir.path().display().to_string());
    let path = dir.path().join("verigate.toml");
    std::fs::write(&path, text).unwrap();
    let output = Command::new(verigate_bin())
        .arg("check-config")
        .arg("--config")
        .arg(&path)
        .env_remove("VERIGATE_CONFIG")
        .output()
        .unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn a_valid_file_is_described_without_its_secrets() {
    let (code, stdout, stderr) = run(&base("{data}"));
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("contiple"), "{stdout}");
    assert!(stdout.contains("/contiple/customer"), "{stdout}");
    assert!(stdout.contains("scheme=contiple"), "{stdout}");
    assert!(stdout.contains("backend=customers"), "{stdout}");
    assert!(stdout.contains("keys=1"), "{stdout}");
    assert!(
        stdout.contains("warning: routes[0].keys[0]"),
        "literal key warned: {stdout}"
    );
    assert!(
        !stdout.contains(KEY) && !stderr.contains(KEY),
        "the key never printed"
    );
}

#[test]
fn broken_files_are_refused_with_their_key_path() {
    let good = base("{data}");
    let second_route = r#"
[[routes]]
name = "second"
path = "/contiple/customer"
scheme = "contiple"
keys = ["k"]
backend = "customers"
request_fields = ["callNum", "nation"]
response_fields = ["userName"]
"#;
    let cases: Vec<(String, &str, &str)> = vec![
        (
            format!("[server]\nbindd = \"127.0.0.1:1\"\n{good}"),
            "server.bindd",
            "unknown key",
        ),
        (
            good.replace("scheme = \"contiple\"", "scheme = \"hmac-magic\""),
            "routes[0]",
            "unknown scheme",
        ),
        (
            format!("{good}{second_route}"),
            "routes[1].path",
            "duplicate route path",
        ),
        (
            good.replace(
                &format!("\"{KEY}\""),
                "\"env:VERIGATE_TEST_DEFINITELY_UNSET\"",
            ),
            "routes[0].keys[0]",
            "missing env var",
        ),
        (
            good.replace(&format!("\"{KEY}\""), "\"\""),
            "routes[0].keys[0]",
            "empty key",
        ),
        (
            good.replace(&format!("keys = [\"{KEY}\"]"), "keys = []"),
            "routes[0].keys",
            "no keys",
        ),
        (
            good.replace("backend = \"customers\"", "backend = \"x\""),
            "routes[0].backend",
            "no backend named",
        ),
        (
            good.replace(
                "optional_fields",
                "allow_ips = [\"10.0.0.0/40\"]\noptional_fields",
            ),
            "routes[0].allow_ips",
            "bad CIDR",
        ),
        (
            good.replace("{data}", "{dir}/absent.json"),
            "backends[0].path",
            "unreadable data file",
        ),
        (
            good.replace("{data}", "{dir}/broken.json"),
            "backends[0].path",
            "malformed data file",
        ),
        (
            good.replace("[\"userName\", \"id\"]", "[\"userName\", \"email\"]"),
            "routes[0].response_fields[1]",
            "field the backend cannot provide",
        ),
        (
            good.replace(
                "optional_fields = [\"nation\"]",
                "optional_fields = [\"agent\"]",
            ),
            "routes[0].optional_fields[0]",
            "optional field not requested",
        ),
        (
            good.replace(
                "request_fields = [\"callNum\", \"nation\"]",
                "request_fields = [\"callNum\"]",
            )
            .replace("optional_fields = [\"nation\"]", ""),
            "routes[0].request_fields",
            "backend key not requested",
        ),
        (
            good.replace("tolerance_secs", "x").replace(
                "backend = \"customers\"",
                "backend = \"customers\"\ntolerance_secs = \"five\"",
            ),
            "routes[0]",
            "wrong type",
        ),
        (
            good.replace("signed", "x").replace(
                "backend = \"customers\"",
                "backend = \"customers\"\nbackend_error_status = 418",
            ),
            "routes[0].backend_error_status",
            "bad status",
        ),
        (
            good.replace("path = \"/contiple/customer\"", "path = \"/metrics\""),
            "routes[0].path",
            "reserved path",
        ),
        (
            format!("[replay]\ncapacity = 0\n{good}"),
            "replay.capacity",
            "zero capacity",
        ),
        (
            format!("[server]\nbody_timeout_ms = 0\n{good}"),
            "server.body_timeout_ms",
            "zero body timeout",
        ),
        ("this is not toml".to_string(), "", "not TOML"),
    ];
    for (config, path, what) in cases {
        let (code, stdout, stderr) = run(&config);
        assert_eq!(
            code, 2,
            "{what}: exit code; stdout {stdout} stderr {stderr}"
        );
        assert!(stderr.contains(path), "{what}: {stderr} should name {path}");
        assert!(!stderr.contains("panicked"), "{what}: {stderr}");
        assert!(!stderr.contains(KEY), "{what}: no secret in errors");
    }
}

#[test]
fn a_missing_file_is_refused_with_exit_code_2() {
    let output = Command::new(verigate_bin())
        .args(["check-config", "--config", "/definitely/not/here.toml"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("/definitely/not/here.toml"));
}

#[test]
fn the_shipped_configuration_is_valid() {
    let output = Command::new(verigate_bin())
        .arg("check-config")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_remove("VERIGATE_CONFIG")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("/contiple/customer"));
}

#[test]
fn database_backends_are_described_by_host_and_database_never_by_password() {
    // Arrange: the URLs carry passwords, from the environment and literally.
    let config = format!(
        r#"
[[backends]]
name = "pg"
kind = "postgres"
url = "env:VERIGATE_TEST_PG_URL"
query = "SELECT user_name AS \"userName\", id FROM customers WHERE call_num = $1"
params = ["callNum"]

[[backends]]
name = "maria"
kind = "mysql"
url = "mysql://crm:literal-pa55@10.0.0.5/crm"
query = "SELECT user_name AS userName, id FROM customers WHERE call_num = ?"
params = ["callNum"]

[[backends]]
name = "local"
kind = "sqlite"
url = "sqlite://data/customers.db"
query = "SELECT userName, id FROM customers WHERE callNum = ?1"
params = ["callNum"]

[[routes]]
name = "contiple"
path = "/contiple/customer"
scheme = "contiple"
keys = ["{KEY}"]
backend = "pg"
request_fields = ["callNum"]
response_fields = ["userName", "id"]
"#
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("verigate.toml");
    std::fs::write(&path, config).unwrap();

    // Act: no database is running; check-config connects to none.
    let output = Command::new(verigate_bin())
        .arg("check-config")
        .arg("--config")
        .arg(&path)
        .env_remove("VERIGATE_CONFIG")
        .env(
            "VERIGATE_TEST_PG_URL",
            "postgres://app:env-s3cret@db.internal:6432/customers?sslmode=require",
        )
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);

    // Assert
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    for line in [
        "  pg  kind=postgres  host=db.internal:6432/customers",
        "  maria  kind=mysql  host=10.0.0.5/crm",
        "  local  kind=sqlite  path=data/customers.db",
    ] {
        assert!(stdout.lines().any(|l| l == line), "{line:?} in:\n{stdout}");
    }
    assert!(
        stdout.contains("backends[1].url: the URL and its password are written in the file"),
        "a literal password is warned about:\n{stdout}"
    );
    for secret in [
        "env-s3cret",
        "literal-pa55",
        "postgres://",
        "mysql://",
        "app:",
        "crm:",
    ] {
        assert!(!stdout.contains(secret), "{secret} printed:\n{stdout}");
        assert!(!stderr.contains(secret), "{secret} printed:\n{stderr}");
    }
}

#[test]
fn a_database_url_of_the_wrong_kind_is_refused_without_echoing_it() {
    let config = base("{data}").replace(
        "[[routes]]",
        r#"[[backends]]
name = "pg"
kind = "postgres"
url = "mysql://crm:hunter2@db/crm"
query = "SELECT 1 AS one WHERE $1 IS NOT NULL"
params = ["callNum"]

[[routes]]"#,
    );
    let (code, stdout, stderr) = run(&config);
    assert_eq!(code, 2, "{stdout}");
    assert!(stderr.contains("backends[1].url"), "{stderr}");
    assert!(
        stderr.contains("postgres://"),
        "the hint names the scheme: {stderr}"
    );
    assert!(!stderr.contains("hunter2"), "{stderr}");
}

#[test]
fn the_deploy_configuration_parses() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/compose/verigate.toml");
    let text = std::fs::read_to_string(path).unwrap();
    let settings = verigate::configuration::Settings::from_toml(&text)
        .unwrap_or_else(|e| panic!("{path}: {e}"));
    assert!(matches!(
        settings.replay,
        verigate::configuration::ReplaySettings::Redis(_)
    ));
}

#[test]
fn two_body_signed_routes_sharing_a_key_are_warned_about() {
    let second = format!(
        r#"
[[routes]]
name = "second"
path = "/contiple/second"
scheme = "contiple"
keys = ["{KEY}"]
backend = "customers"
request_fields = ["callNum", "nation"]
response_fields = ["userName"]
"#
    );
    let (code, stdout, stderr) = run(&format!("{}{second}", base("{data}")));
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("routes[0] and routes[1] share a key"),
        "{stdout}"
    );
    assert!(!stdout.contains(KEY));
}

/// The shipped file (memory store, `capacity` set) switched to Redis from
/// the environment alone: accepted, with `capacity` ignored and said so. A
/// Redis URL without the switch is refused, naming what is missing.
#[test]
fn the_shipped_file_switches_to_redis_from_the_environment() {
    let check = |env: &[(&str, &str)]| {
        let output = Command::new(verigate_bin())
            .arg("check-config")
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .env_remove("VERIGATE_CONFIG")
            .envs(env.iter().copied())
            .output()
            .unwrap();
        (
            output.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&output.stdout).into_owned()
                + &String::from_utf8_lossy(&output.stderr),
        )
    };
    let url = (
        "VERIGATE_REPLAY__REDIS_URL",
        "redis://:pw-x1@127.0.0.1:6399/2",
    );
    let (code, out) = check(&[("VERIGATE_REPLAY__STORE", "redis"), url]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("replay store: redis (127.0.0.1:6399/2)"),
        "{out}"
    );
    assert!(out.contains("replay.capacity"), "{out}");
    assert!(!out.contains("pw-x1"), "{out}");

    let (code, out) = check(&[url]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("replay.redis_url"), "{out}");
    assert!(out.contains("store = \"redis\""), "{out}");
}
