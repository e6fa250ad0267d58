//! `verigate sign` and `--version`, checked against a running server and an
//! independent HMAC.

use std::process::Command;

use crate::{
    contiple_lookup::independent_hmac,
    helpers::{KEY, spawn_app, status_and_json, verigate_bin},
};

struct Signed {
    timestamp: String,
    authorization: String,
    curl: String,
}

fn sign(args: &[&str]) -> Signed {
    let output = Command::new(verigate_bin())
        .args(["sign", "contiple"])
        .args(args)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8(output.stdout).unwrap();
    let line = |prefix: &str| {
        stdout
            .lines()
            .find_map(|l| l.strip_prefix(prefix))
            .unwrap_or_else(|| panic!("no {prefix} in {stdout}"))
            .to_owned()
    };
    Signed {
        timestamp: line("X-TC-Timestamp: "),
        authorization: line("Authorization: "),
        curl: line("curl "),
    }
}

#[tokio::test]
async fn the_printed_headers_get_a_200_from_the_server() {
    let app = spawn_app().await;
    let body = r#"{"callNum":"01012345678","nation":"korea"}"#;
    let url = format!("{}/contiple/customer", app.address);
    let signed = sign(&["--key", KEY, "--body", body, "--url", &url]);
    assert_eq!(
        signed.authorization,
        independent_hmac(KEY, format!("{body}{}", signed.timestamp).as_bytes())
    );
    let response = app
        .client
        .post(&url)
        .header("X-TC-Timestamp", &signed.timestamp)
        .header("Authorization", &signed.authorization)
        .body(body)
        .send()
        .await
        .unwrap();
    let (status, json) = status_and_json(response).await;
    assert_eq!(status, 200, "{json}");
    assert_eq!(json["data"]["userName"], "홍길동");
}

#[tokio::test]
async fn the_printed_curl_line_works() {
    if Command::new("curl").arg("--version").output().is_err() {
        eprintln!("skipped: curl is not installed");
        return;
    }
    let app = spawn_app().await;
    let url = format!("{}/contiple/customer", app.address);
    let signed = sign(&[
        "--key",
        KEY,
        "--body",
        r#"{"callNum":"1","nation":"korea","note":"it's"}"#,
        "--url",
        &url,
    ]);
    let output = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(format!("curl {}", signed.curl))
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        stdout.trim(),
        r#"{"data":{"userName":"test","id":"testId"}}"#
    );
}

#[test]
fn uri_mode_signs_the_uri_first_and_a_file_body_is_signed_as_is() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("body.json");
    std::fs::write(&file, "{\"callNum\":\"1\"}\n").unwrap();
    let signed = sign(&[
        "--key",
        KEY,
        "--body",
        &format!("@{}", file.display()),
        "--uri",
        "/contiple/customer?x=1",
        "--timestamp",
        "1700000000000",
    ]);
    assert_eq!(signed.timestamp, "1700000000000");
    assert_eq!(
        signed.authorization,
        independent_hmac(
            KEY,
            b"/contiple/customer?x=1{\"callNum\":\"1\"}\n1700000000000"
        )
    );
    assert!(
        signed
            .curl
            .contains("http://127.0.0.1:8080/contiple/customer?x=1")
    );
}

#[test]
fn version_prints_the_package_version() {
    let output = Command::new(verigate_bin())
        .arg("--version")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&output.stdout).contains(env!("CARGO_PKG_VERSION")));
}
