//! What a signed body may be, and what the request around it may be.

use reqwest::Method;
use serde_json::json;

use crate::helpers::{Call, assert_error, spawn_app, status_and_json};

#[tokio::test]
async fn malformed_bodies_are_400_after_a_valid_signature() {
    let app = spawn_app().await;
    let deep = format!(
        r#"{{"callNum":"1","x":{}0{}}}"#,
        "[".repeat(31),
        "]".repeat(31)
    );
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (b"{\"callNum\":".to_vec(), "truncated JSON"),
        (b"not json".to_vec(), "not JSON"),
        (br#"["1","korea"]"#.to_vec(), "JSON array"),
        (br#""1""#.to_vec(), "JSON string"),
        (b"".to_vec(), "empty body"),
        (
            br#"{"callNum":"1","callNum":"2"}"#.to_vec(),
            "duplicate keys",
        ),
        (
            br#"{"callNum":"1","x":{"a":1,"a":1}}"#.to_vec(),
            "nested duplicate keys",
        ),
        (deep.into_bytes(), "depth 33"),
        (br#"{"nation":"korea"}"#.to_vec(), "missing required field"),
        (br#"{"callNum":null}"#.to_vec(), "null required field"),
        (br#"{"callNum":true}"#.to_vec(), "boolean field"),
        (br#"{"callNum":{"n":"1"}}"#.to_vec(), "object field"),
        (br#"{"callNum":"1"} {}"#.to_vec(), "trailing data"),
    ];
    for (body, what) in cases {
        let response = Call::new(&body).send(&app).await;
        let json = assert_error(response, 400, "bad_request", what).await;
        assert!(json["error"]["detail"].is_string(), "{what}: says what");
    }
}

#[tokio::test]
async fn depth_32_is_accepted() {
    let app = spawn_app().await;
    // The object is depth 1, so 30 arrays around a scalar reach depth 32.
    let body = format!(
        r#"{{"callNum":"1","nation":"korea","x":{}0{}}}"#,
        "[".repeat(30),
        "]".repeat(30)
    );
    let (status, json) = status_and_json(Call::new(&body).send(&app).await).await;
    assert_eq!(status, 200, "{json}");
}

#[tokio::test]
async fn a_leading_bom_is_signed_and_ignored() {
    let app = spawn_app().await;
    let body = "\u{feff}{\"callNum\":\"1\",\"nation\":\"korea\"}";
    let (status, json) = status_and_json(Call::new(body).send(&app).await).await;
    assert_eq!(status, 200, "{json}");
    assert_eq!(json, json!({"data": {"userName": "test", "id": "testId"}}));
}

#[tokio::test]
async fn declared_content_types_other_than_json_utf8_are_415() {
    let app = spawn_app().await;
    let body = r#"{"callNum":"1","nation":"korea"}"#;
    for (name, value) in [
        ("Content-Type", "text/plain"),
        ("Content-Type", "application/json; charset=euc-kr"),
        ("Content-Encoding", "gzip"),
        ("Content-Encoding", "br"),
    ] {
        let response = Call::new(body).header(name, value).send(&app).await;
        assert_error(response, 415, "unsupported_media_type", value).await;
    }
    for (n, value) in ["application/json", "application/json; charset=UTF-8"]
        .into_iter()
        .enumerate()
    {
        // A body of its own: two identical bodies signed in the same
        // millisecond would be one request and its replay.
        let body = format!(r#"{{"callNum":"1","nation":"korea","n":{n}}}"#);
        let response = Call::new(body)
            .header("Content-Type", value)
            .send(&app)
            .await;
        assert_eq!(response.status(), 200, "{value}");
    }
}

/// `identity` is no encoding at all; any other token, alone, in a list or
/// on a second header line, is 415 before anything is decompressed.
#[tokio::test]
async fn content_encoding_other_than_identity_is_415_on_any_line() {
    let app = spawn_app().await;
    let body = r#"{"callNum":"1","nation":"korea"}"#;
    let identity = Call::new(body).header("Content-Encoding", "identity");
    assert_eq!(identity.send(&app).await.status(), 200);
    for lines in [
        &["identity", "gzip"][..],
        &["gzip", "identity"][..],
        &["identity, deflate"][..],
        &["identity", "identity, br"][..],
    ] {
        let mut call = Call::new(body);
        for line in lines {
            call = call.header("Content-Encoding", line);
        }
        let response = call.send(&app).await;
        assert_error(response, 415, "unsupported_media_type", &lines.join(" | ")).await;
    }
}

#[tokio::test]
async fn a_body_over_the_limit_is_413() {
    let app = spawn_app().await;
    let body = format!(r#"{{"callNum":"1","pad":"{}"}}"#, "x".repeat(70_000));
    let response = Call::new(&body).send(&app).await;
    assert_error(response, 413, "payload_too_large", "70 kB body").await;
}

#[tokio::test]
async fn other_methods_are_405_in_the_envelope() {
    let app = spawn_app().await;
    for method in [Method::GET, Method::PUT, Method::DELETE] {
        let response = Call::new("").method(method.clone()).send(&app).await;
        assert_eq!(response.headers()["allow"], "POST");
        assert_error(response, 405, "method_not_allowed", method.as_str()).await;
    }
}

#[tokio::test]
async fn unknown_paths_are_404_in_the_envelope() {
    let app = spawn_app().await;
    for path in ["/", "/contiple", "/contiple/customer/", "/nope?x=1"] {
        let response = Call::new("{}").path(path).send(&app).await;
        assert_error(response, 404, "not_found", path).await;
    }
}
