//! What the server writes to its log, read whole from a separate process.

use std::time::Duration;

use crate::{
    helpers::{Call, KEY, OLD_KEY, default_config, now_ms, sign},
    process::ServerProcess,
};

/// Values that must never appear in a log line, at any level.
struct Secrets {
    values: Vec<String>,
}

#[tokio::test]
async fn a_trace_level_log_holds_no_key_signature_body_or_personal_data() {
    let mut server = ServerProcess::start(&default_config(), &[("RUST_LOG", "trace")]);
    let client = reqwest::Client::new();
    let mut secrets = Secrets {
        values: vec![KEY.into(), OLD_KEY.into()],
    };

    // A found caller: the reply carries a name; the body a phone number.
    let body = r#"{"callNum":"01012345678","nation":"korea","memo":"010-9876-5432"}"#;
    let ts = now_ms().to_string();
    let signature = sign(KEY, format!("{body}{ts}").as_bytes());
    let response = Call::new(body)
        .timestamp(&ts)
        .authorization(&signature)
        .path("/contiple/customer?token=QUERYSECRET42")
        .header("X-Request-Id", "trace-test-1")
        .send_to(&client, &server.address)
        .await;
    assert_eq!(response.status(), 200);
    assert!(response.text().await.unwrap().contains("홍길동"));
    secrets.values.extend([
        signature,
        "01012345678".into(),
        "010-9876-5432".into(),
        "홍길동".into(),
        "QUERYSECRET42".into(),
        "callNum".into(),
    ]);

    // A wrong signature, a replay, a malformed body, an unknown path.
    let wrong = Call::new(body).key("guessed-key-123").frozen();
    wrong.send_to(&client, &server.address).await;
    secrets.values.push("guessed-key-123".into());
    let replay = Call::new(r#"{"callNum":"1","nation":"korea"}"#).frozen();
    replay.send_to(&client, &server.address).await;
    replay.send_to(&client, &server.address).await;
    Call::new(r#"{"callNum":"PHONE-01055556666""#)
        .send_to(&client, &server.address)
        .await;
    secrets.values.push("01055556666".into());
    Call::new("{}")
        .path("/secret-path?password=hunter2")
        .send_to(&client, &server.address)
        .await;
    secrets.values.push("hunter2".into());

    server.terminate();
    assert!(server.wait(Duration::from_secs(35)).success());
    let log = server.log();
    assert!(
        log.contains("trace-test-1"),
        "request ids are logged:\n{log}"
    );
    assert!(
        log.contains("request finished"),
        "one access line per request"
    );
    assert!(log.contains("TRACE"), "the log really is at trace level");
    for secret in &secrets.values {
        assert!(
            !log.contains(secret.as_str()),
            "the log contains {secret:?}:\n{log}"
        );
    }
}

#[tokio::test]
async fn json_logs_are_one_object_per_line_with_the_request_id() {
    let mut json_server = ServerProcess::start_with_args(
        &default_config(),
        &["--log-format", "json"],
        &[("RUST_LOG", "info")],
    );
    let client = reqwest::Client::new();
    Call::new(r#"{"callNum":"1","nation":"korea"}"#)
        .header("X-Request-Id", "json-line-7")
        .send_to(&client, &json_server.address)
        .await;
    json_server.terminate();
    assert!(json_server.wait(Duration::from_secs(35)).success());
    let log = json_server.log();
    let access = log
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["fields"]["message"] == "request finished")
        .unwrap_or_else(|| panic!("no JSON access line:\n{log}"));
    assert_eq!(access["span"]["request_id"], "json-line-7", "{access}");
    assert_eq!(access["fields"]["outcome"], "ok", "{access}");
    assert_eq!(access["fields"]["status"], 200, "{access}");
    assert_eq!(access["fields"]["route"], "contiple", "{access}");
}

#[tokio::test]
async fn a_database_error_that_quotes_a_request_field_is_logged_without_it() {
    let Some(postgres) = crate::servers::PostgresServer::start() else {
        return;
    };
    let route = format!(
        r#"
[[backends]]
name = "strict-db"
kind = "postgres"
url = "{}"
query = 'SELECT $1 AS "userName" WHERE $1::int > 0'
params = ["callNum"]

[[routes]]
name = "strict"
path = "/strict"
scheme = "contiple"
keys = ["{KEY}"]
backend = "strict-db"
request_fields = ["callNum"]
response_fields = ["userName"]
"#,
        postgres.url("postgres")
    );
    let mut server = ServerProcess::start(
        &format!("{}{route}", default_config()),
        &[("RUST_LOG", "trace")],
    );
    let response = Call::new(r#"{"callNum":"010-2468-1357"}"#)
        .path("/strict")
        .send_to(&reqwest::Client::new(), &server.address)
        .await;
    assert_eq!(response.status(), 500);
    let body = response.text().await.unwrap();
    assert!(body.contains(r#""code":"backend_error""#), "{body}");
    assert!(!body.contains("2468"), "no internals in the reply: {body}");

    server.terminate();
    assert!(server.wait(Duration::from_secs(35)).success());
    let log = server.log();
    assert!(
        log.contains("SQLSTATE 22P02"),
        "the cause is logged by code:\n{log}"
    );
    assert!(!log.contains("2468"), "the field value is not:\n{log}");
}
