//! The `X-TC-Timestamp` header: syntax (400) and the window (403).

use crate::helpers::{Call, assert_error, now_ms, spawn_app, status_and_json};

const BODY: &str = r#"{"callNum":"1","nation":"korea"}"#;

#[tokio::test]
async fn one_second_inside_the_window_is_accepted_on_both_sides() {
    let app = spawn_app().await;
    for (offset_ms, what) in [(-299_000, "299 s old"), (299_000, "299 s ahead")] {
        let body = format!(r#"{{"callNum":"1","nation":"korea","n":{offset_ms}}}"#);
        let (status, json) =
            status_and_json(Call::new(&body).at(now_ms() + offset_ms).send(&app).await).await;
        assert_eq!(status, 200, "{what}: {json}");
    }
}

#[tokio::test]
async fn one_second_outside_the_window_is_stale_or_future() {
    let app = spawn_app().await;
    let response = Call::new(BODY).at(now_ms() - 301_000).send(&app).await;
    assert_error(response, 403, "stale_timestamp", "301 s old").await;
    let response = Call::new(BODY).at(now_ms() + 301_000).send(&app).await;
    assert_error(response, 403, "future_timestamp", "301 s ahead").await;
}

#[tokio::test]
async fn malformed_timestamps_are_400_never_500() {
    let app = spawn_app().await;
    let now = now_ms().to_string();
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (
            b"1234567890123456789012345678901234567890".to_vec(),
            "40 digits",
        ),
        (b"99999999999999999999".to_vec(), "past i64::MAX"),
        (format!("-{now}").into_bytes(), "negative"),
        (format!("+{now}").into_bytes(), "plus sign"),
        (b"".to_vec(), "empty"),
        ("１７００".as_bytes().to_vec(), "full-width digits"),
        ("١٧٠٠٠٠٠٠٠٠٠٠٠".as_bytes().to_vec(), "Arabic-Indic digits"),
        (
            format!("{} {}", &now[..6], &now[6..]).into_bytes(),
            "inner space",
        ),
        (b"1.7e12".to_vec(), "float"),
        (b"0x1A".to_vec(), "hex"),
    ];
    for (raw, what) in cases {
        let response = Call::new(BODY).timestamp(&raw).send(&app).await;
        assert_error(response, 400, "bad_request", what).await;
    }
    let response = Call::new(BODY).without_timestamp().send(&app).await;
    assert_error(response, 400, "bad_request", "missing").await;
}

#[tokio::test]
async fn the_timestamp_is_checked_before_the_signature() {
    let app = spawn_app().await;
    let response = Call::new(BODY)
        .at(now_ms() - 3_600_000)
        .authorization("garbage")
        .send(&app)
        .await;
    assert_error(response, 403, "stale_timestamp", "stale and unsigned").await;
    let response = Call::new(BODY)
        .timestamp("abc")
        .authorization("garbage")
        .send(&app)
        .await;
    assert_error(response, 400, "bad_request", "malformed and unsigned").await;
}
