//! Health, readiness, metrics and request ids.

use serde_json::json;

use crate::helpers::{Call, metric_value, spawn_app, status_and_json};

#[tokio::test]
async fn healthz_and_readyz_answer() {
    let app = spawn_app().await;
    let (status, body) = status_and_json(
        app.client
            .get(format!("{}/healthz", app.address))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body, json!({"status": "ok"}));

    let (status, body) = status_and_json(
        app.client
            .get(format!("{}/readyz", app.address))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        body,
        json!({"status": "ready", "checks": {"replay": "ok", "customers": "ok"}})
    );
}

#[tokio::test]
async fn operational_endpoints_accept_get_only() {
    let app = spawn_app().await;
    for path in ["/healthz", "/readyz", "/metrics"] {
        let response = app
            .client
            .post(format!("{}{path}", app.address))
            .send()
            .await
            .unwrap();
        assert_eq!(response.headers()["allow"], "GET", "{path}");
        crate::helpers::assert_error(response, 405, "method_not_allowed", path).await;
    }
}

#[tokio::test]
async fn metrics_count_exactly_the_requests_sent() {
    let app = spawn_app().await;
    let found = Call::new(r#"{"callNum":"1","nation":"korea"}"#).frozen();
    found.send(&app).await;
    found.send(&app).await;
    Call::new(r#"{"callNum":"1","nation":"korea"}"#)
        .key("wrong")
        .send(&app)
        .await;
    Call::new("{}")
        .path("/unknown/path?secret=1")
        .send(&app)
        .await;
    app.client
        .get(format!("{}/healthz", app.address))
        .send()
        .await
        .unwrap();

    let text = app
        .client
        .get(format!("{}/metrics", app.address))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let count = |series: &str| metric_value(&text, series);
    assert_eq!(
        count(r#"verigate_requests_total{outcome="ok",route="contiple"}"#),
        1.0
    );
    assert_eq!(
        count(r#"verigate_requests_total{outcome="replayed",route="contiple"}"#),
        1.0
    );
    assert_eq!(
        count(r#"verigate_requests_total{outcome="bad_signature",route="contiple"}"#),
        1.0
    );
    assert_eq!(
        count(r#"verigate_requests_total{outcome="not_found",route="unmatched"}"#),
        1.0
    );
    assert_eq!(
        count(r#"verigate_verify_failures_total{reason="bad_signature",route="contiple"}"#),
        1.0
    );
    assert_eq!(
        count(r#"verigate_replay_rejections_total{route="contiple"}"#),
        1.0
    );
    assert_eq!(
        count(r#"verigate_request_duration_seconds_count{route="contiple"}"#),
        3.0
    );
    assert_eq!(
        count(r#"verigate_backend_duration_seconds_count{backend="customers"}"#),
        1.0
    );
    let total: f64 = text
        .lines()
        .filter(|l| l.starts_with("verigate_requests_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert_eq!(total, 4.0, "health checks are not counted:\n{text}");
    assert!(!text.contains("/unknown"), "no raw path in labels");
    assert!(text.contains("verigate_build_info{version="));
}

#[tokio::test]
async fn a_valid_request_id_is_echoed_and_an_invalid_one_replaced() {
    let app = spawn_app().await;
    let response = Call::new("{}")
        .header("X-Request-Id", "call-centre-42")
        .send(&app)
        .await;
    assert_eq!(response.headers()["x-request-id"], "call-centre-42");
    let (_, body) = status_and_json(response).await;
    assert!(
        !body.to_string().contains("call-centre-42"),
        "not in the envelope"
    );

    let long = "x".repeat(129);
    let response = Call::new("{}")
        .header("X-Request-Id", &long)
        .send(&app)
        .await;
    let id = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_ne!(id, long);
    assert!(!id.is_empty() && id.len() <= 128);
}
