//! Replays: sequential, concurrent, across routes, and a full store.

use futures_util::future::join_all;

use crate::helpers::{Call, KEY, assert_error, default_config, spawn_app, spawn_app_with};

const BODY: &str = r#"{"callNum":"1","nation":"korea"}"#;

#[tokio::test]
async fn the_same_signed_request_is_answered_once() {
    let app = spawn_app().await;
    let call = Call::new(BODY).frozen();
    assert_eq!(call.send(&app).await.status(), 200);
    let response = call.send(&app).await;
    assert_error(response, 403, "replayed", "second copy").await;
}

#[tokio::test]
async fn of_128_concurrent_copies_exactly_one_is_answered() {
    let app = spawn_app().await;
    let call = Call::new(BODY).frozen();
    let responses = join_all((0..128).map(|_| {
        let call = call.clone();
        let client = reqwest::Client::new();
        let address = app.address.clone();
        async move { call.send_to(&client, &address).await }
    }))
    .await;
    let mut ok = 0;
    for response in responses {
        match response.status().as_u16() {
            200 => ok += 1,
            _ => {
                assert_error(response, 403, "replayed", "concurrent copy").await;
            }
        }
    }
    assert_eq!(ok, 1);
}

#[tokio::test]
async fn a_signature_used_on_one_route_is_a_replay_on_another_sharing_the_key() {
    let second = format!(
        r#"
[[routes]]
name = "contiple-b"
path = "/contiple/customer-b"
scheme = "contiple"
keys = ["{KEY}"]
backend = "customers"
request_fields = ["callNum", "nation"]
response_fields = ["userName"]
"#
    );
    let app = spawn_app_with(&format!("{}{second}", default_config())).await;
    let call = Call::new(BODY).frozen();
    assert_eq!(call.send(&app).await.status(), 200);
    let response = call.path("/contiple/customer-b").send(&app).await;
    assert_error(response, 403, "replayed", "same MAC on a second route").await;
}

#[tokio::test]
async fn a_full_store_refuses_new_requests_but_still_spots_replays() {
    let config = default_config().replace("capacity = 100000", "capacity = 3");
    let app = spawn_app_with(&config).await;
    let first = Call::new(r#"{"callNum":"1","nation":"korea","n":0}"#).frozen();
    assert_eq!(first.send(&app).await.status(), 200);
    for n in 1..3 {
        let body = format!(r#"{{"callNum":"1","nation":"korea","n":{n}}}"#);
        assert_eq!(
            Call::new(&body).send(&app).await.status(),
            200,
            "request {n}"
        );
    }
    let response = Call::new(r#"{"callNum":"1","nation":"korea","n":3}"#)
        .send(&app)
        .await;
    assert_eq!(response.headers()["retry-after"], "1");
    assert_error(response, 503, "store_full", "fourth unique request").await;
    let response = first.send(&app).await;
    assert_error(response, 403, "replayed", "replay while full").await;
}

#[tokio::test]
async fn a_request_refused_before_the_signature_check_leaves_no_entry() {
    // A wrong signature must not be remembered: the right one still works.
    let config = default_config().replace("capacity = 100000", "capacity = 1");
    let app = spawn_app_with(&config).await;
    for _ in 0..5 {
        let response = Call::new(BODY).key("wrong").send(&app).await;
        assert_error(response, 403, "bad_signature", "unsigned junk").await;
    }
    assert_eq!(Call::new(BODY).send(&app).await.status(), 200);
}
