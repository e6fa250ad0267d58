//! Client addresses: `allow_ips`, `trusted_proxies`, and the metrics listener.

use crate::helpers::{Call, assert_error, default_config, spawn_app_with, status_and_json};

const BODY: &str = r#"{"callNum":"1","nation":"korea"}"#;

fn config(allow: &str, trusted: &str) -> String {
    default_config()
        .replace(
            "workers = 2",
            &format!("workers = 2\ntrusted_proxies = [{trusted}]"),
        )
        .replace(
            "tolerance_secs = 300",
            &format!("tolerance_secs = 300\nallow_ips = [{allow}]"),
        )
}

#[tokio::test]
async fn a_client_outside_the_allow_list_is_403_before_anything_else() {
    let app = spawn_app_with(&config(r#""198.51.100.0/24""#, "")).await;
    let response = Call::new(BODY).send(&app).await;
    assert_error(response, 403, "ip_not_allowed", "loopback not allowed").await;
    let response = Call::new("not json")
        .header("Content-Type", "text/plain")
        .key("wrong")
        .send(&app)
        .await;
    assert_error(
        response,
        403,
        "ip_not_allowed",
        "checked before content and signature",
    )
    .await;
}

#[tokio::test]
async fn a_forwarded_header_from_an_untrusted_peer_is_ignored() {
    let app = spawn_app_with(&config(r#""198.51.100.0/24""#, "")).await;
    let response = Call::new(BODY)
        .header("X-Forwarded-For", "198.51.100.7")
        .send(&app)
        .await;
    assert_error(response, 403, "ip_not_allowed", "spoofed X-Forwarded-For").await;
}

#[tokio::test]
async fn behind_a_trusted_proxy_the_forwarded_client_is_checked() {
    let app = spawn_app_with(&config(r#""198.51.100.0/24""#, r#""127.0.0.1/32""#)).await;
    let (status, body) = status_and_json(
        Call::new(BODY)
            .header("X-Forwarded-For", "198.51.100.7")
            .send(&app)
            .await,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    for (forwarded, what) in [
        ("203.0.113.1", "client outside the list"),
        (
            "198.51.100.7, 203.0.113.1",
            "rightmost untrusted entry decides",
        ),
        ("not-an-address", "unparsable entry"),
    ] {
        let response = Call::new(BODY)
            .header("X-Forwarded-For", forwarded)
            .send(&app)
            .await;
        assert_error(response, 403, "ip_not_allowed", what).await;
    }
    let response = Call::new(BODY).send(&app).await;
    assert_error(
        response,
        403,
        "ip_not_allowed",
        "no header: the proxy itself",
    )
    .await;
}

#[tokio::test]
async fn an_allow_list_naming_the_client_admits_it() {
    let app = spawn_app_with(&config(r#""127.0.0.1""#, "")).await;
    let (status, body) = status_and_json(Call::new(BODY).send(&app).await).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn with_metrics_bind_metrics_are_served_there_only() {
    let config =
        default_config().replace("workers = 2", "workers = 2\nmetrics_bind = \"127.0.0.1:0\"");
    let app = spawn_app_with(&config).await;
    Call::new(BODY).send(&app).await;
    let main = app
        .client
        .get(format!("{}/metrics", app.address))
        .send()
        .await
        .unwrap();
    assert_error(main, 404, "not_found", "/metrics on the main listener").await;
    let port = app.metrics_port.expect("metrics port");
    let text = app
        .client
        .get(format!("http://127.0.0.1:{port}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.contains(r#"verigate_requests_total{outcome="ok",route="contiple"} 1"#),
        "{text}"
    );
}
