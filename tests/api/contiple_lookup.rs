//! The Contiple customer lookup end to end: found, not found, fields.

use serde_json::json;

use crate::helpers::{Call, KEY, assert_error, now_ms, spawn_app, status_and_json};

#[tokio::test]
async fn a_signed_lookup_returns_only_the_configured_fields() {
    // Arrange
    let app = spawn_app().await;

    // Act
    let response = Call::new(r#"{"callNum":"01012345678","nation":"korea"}"#)
        .send(&app)
        .await;

    // Assert
    assert_eq!(
        response.headers()["content-type"],
        "application/json; charset=utf-8"
    );
    let (status, body) = status_and_json(response).await;
    assert_eq!(status, 200);
    assert_eq!(body, json!({"data": {"userName": "홍길동", "id": "hong"}}));
}

#[tokio::test]
async fn the_seed_example_request_gets_the_seed_example_answer() {
    let app = spawn_app().await;
    let (status, body) = status_and_json(
        Call::new("{\n\"callNum\":\"1\",\n\"nation\":\"korea\"\n}")
            .send(&app)
            .await,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body, json!({"data": {"userName": "test", "id": "testId"}}));
}

#[tokio::test]
async fn no_matching_record_is_400_no_result() {
    let app = spawn_app().await;
    let response = Call::new(r#"{"callNum":"999","nation":"korea"}"#)
        .send(&app)
        .await;
    let body = assert_error(response, 400, "no_result", "unknown caller").await;
    assert_eq!(body["error"]["detail"], serde_json::Value::Null);
}

#[tokio::test]
async fn an_absent_optional_field_is_looked_up_as_empty() {
    let app = spawn_app().await;
    let (status, body) =
        status_and_json(Call::new(r#"{"callNum":"01012345678"}"#).send(&app).await).await;
    assert_eq!(status, 200);
    assert_eq!(
        body,
        json!({"data": {"userName": "국적없음", "id": "nonation"}})
    );
}

#[tokio::test]
async fn a_numeric_field_is_accepted_and_a_null_column_renders_null() {
    let app = spawn_app().await;
    let (status, body) = status_and_json(
        Call::new(r#"{"callNum":1021,"nation":"japan"}"#)
            .send(&app)
            .await,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body, json!({"data": {"userName": "Tanaka", "id": null}}));
}

#[tokio::test]
async fn fields_the_route_does_not_use_are_ignored() {
    let app = spawn_app().await;
    let (status, body) = status_and_json(
        Call::new(r#"{"callNum":"1","nation":"korea","agentId":"a7","extra":{"deep":[1,2]}}"#)
            .send(&app)
            .await,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body["data"]["id"], "testId");
}

#[tokio::test]
async fn a_korean_body_signed_by_openssl_is_accepted() {
    // An implementation that is not verigate's: openssl, or Python's hmac.
    let app = spawn_app().await;
    let body = r#"{"callNum":"01012345678","nation":"korea","memo":"고객 조회 요청"}"#;
    let ts = now_ms().to_string();
    let message = format!("{body}{ts}");
    let signature = independent_hmac(KEY, message.as_bytes());
    let (status, json) = status_and_json(
        Call::new(body)
            .timestamp(&ts)
            .authorization(&signature)
            .send(&app)
            .await,
    )
    .await;
    assert_eq!(status, 200, "{json}");
    assert_eq!(json["data"]["userName"], "홍길동");
}

/// Base64(HMAC-SHA256) by `openssl`, else by Python's `hmac` module.
pub fn independent_hmac(key: &str, message: &[u8]) -> String {
    use std::{
        io::Write,
        process::{Command, Stdio},
    };
    let run = |mut command: Command| -> Option<String> {
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .ok()?;
        child.stdin.take()?.write_all(message).ok()?;
        let output = child.wait_with_output().ok()?;
        output
            .status
            .success()
            .then(|| String::from_utf8_lossy(&output.stdout).trim().to_owned())
    };
    let mut openssl = Command::new("sh");
    openssl.args([
        "-c",
        "openssl dgst -sha256 -hmac \"$KEY\" -binary | openssl base64 -A",
    ]);
    openssl.env("KEY", key);
    if let Some(sig) = run(openssl).filter(|s| s.len() == 44) {
        return sig;
    }
    let mut python = Command::new("python3");
    python.args([
        "-c",
        "import base64,hmac,hashlib,os,sys; print(base64.b64encode(hmac.new(os.environ['KEY'].encode(), sys.stdin.buffer.read(), hashlib.sha256).digest()).decode())",
    ]);
    python.env("KEY", key);
    run(python).expect("neither openssl nor python3 could compute an HMAC")
}
