//! Signature checks: strict Base64, tampering, wrong keys, rotation, modes.

use base64::{Engine, engine::general_purpose::STANDARD};

use crate::helpers::{
    Call, KEY, OLD_KEY, assert_error, default_config, now_ms, sign, spawn_app, spawn_app_with,
    status_and_json,
};

const BODY: &str = r#"{"callNum":"1","nation":"korea"}"#;

#[tokio::test]
async fn malformed_signatures_are_403_bad_signature() {
    let app = spawn_app().await;
    // A timestamp whose signature has a character that URL-safe Base64
    // spells differently.
    let (ts, good) = (0..)
        .map(|n| {
            let ts = (now_ms() - n).to_string();
            let good = sign(KEY, format!("{BODY}{ts}").as_bytes());
            (ts, good)
        })
        .find(|(_, good)| good.contains(['+', '/']))
        .unwrap();
    let raw = STANDARD.decode(&good).unwrap();
    // The character before '=' carries two unused bits; flip the lowest.
    let mut non_canonical = good.clone().into_bytes();
    let last = non_canonical[42];
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let index = alphabet.iter().position(|c| *c == last).unwrap();
    non_canonical[42] = alphabet[index ^ 1];
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (b"garbage!".to_vec(), "garbage"),
        (b"".to_vec(), "empty value"),
        (good.trim_end_matches('=').as_bytes().to_vec(), "unpadded"),
        (
            good.replace('+', "-").replace('/', "_").into_bytes(),
            "URL-safe alphabet",
        ),
        (non_canonical, "non-canonical trailing bits"),
        (
            STANDARD.encode(&raw[..16]).into_bytes(),
            "16-byte truncated MAC",
        ),
        (format!("v1,{good}").into_bytes(), "prefixed"),
        (format!("Bearer {good}").into_bytes(), "bearer scheme"),
        (hex(&raw).into_bytes(), "hex instead of Base64"),
    ];
    for (authorization, what) in cases {
        let response = Call::new(BODY)
            .timestamp(&ts)
            .authorization(&authorization)
            .send(&app)
            .await;
        assert_error(response, 403, "bad_signature", what).await;
    }
    let response = Call::new(BODY).without_authorization().send(&app).await;
    assert_error(response, 403, "bad_signature", "no Authorization").await;
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test]
async fn a_tampered_body_or_wrong_key_is_refused() {
    let app = spawn_app().await;
    let ts = now_ms().to_string();
    let signature = sign(KEY, format!("{BODY}{ts}").as_bytes());
    let tampered = BODY.replace("korea", "japan");
    let response = Call::new(&tampered)
        .timestamp(&ts)
        .authorization(&signature)
        .send(&app)
        .await;
    assert_error(response, 403, "bad_signature", "tampered body").await;

    let response = Call::new(BODY).key("not-the-key").send(&app).await;
    assert_error(response, 403, "bad_signature", "wrong key").await;

    // A signature over the timestamp alone, or the body alone, is not one.
    let response = Call::new(BODY)
        .timestamp(&ts)
        .authorization(sign(KEY, BODY.as_bytes()))
        .send(&app)
        .await;
    assert_error(response, 403, "bad_signature", "body without timestamp").await;
}

#[tokio::test]
async fn every_configured_key_verifies_during_rotation() {
    let app = spawn_app().await;
    for key in [KEY, OLD_KEY] {
        let (status, body) = status_and_json(Call::new(BODY).key(key).send(&app).await).await;
        assert_eq!(status, 200, "key {key}: {body}");
    }
}

#[tokio::test]
async fn a_uri_signed_route_signs_path_and_query_as_received() {
    let config = default_config().replace(
        "tolerance_secs = 300",
        "tolerance_secs = 300\nsigned = \"uri+body+timestamp\"",
    );
    let app = spawn_app_with(&config).await;
    let (status, body) = status_and_json(
        Call::new(BODY)
            .path("/contiple/customer?source=oc&x=%20")
            .sign_uri()
            .send(&app)
            .await,
    )
    .await;
    assert_eq!(status, 200, "{body}");

    let response = Call::new(BODY).send(&app).await;
    assert_error(
        response,
        403,
        "bad_signature",
        "body-only signature on a uri route",
    )
    .await;

    let signed_other_query = Call::new(BODY).path("/contiple/customer?a=1").sign_uri();
    let ts = now_ms().to_string();
    let signature = signed_other_query.signature(ts.as_bytes());
    let response = Call::new(BODY)
        .path("/contiple/customer?a=2")
        .timestamp(&ts)
        .authorization(signature)
        .send(&app)
        .await;
    assert_error(
        response,
        403,
        "bad_signature",
        "query changed after signing",
    )
    .await;
}

#[tokio::test]
async fn a_header_sent_twice_is_400() {
    let app = spawn_app().await;
    let call = Call::new(BODY).frozen();
    let ts = now_ms().to_string();
    let response = call.clone().header("X-TC-Timestamp", &ts).send(&app).await;
    assert_error(response, 400, "bad_request", "two timestamps").await;
    let good = call.signature(ts.as_bytes());
    let response = Call::new(BODY)
        .timestamp(&ts)
        .header("Authorization", &good)
        .send(&app)
        .await;
    assert_error(response, 400, "bad_request", "two signatures").await;
}

#[tokio::test]
async fn an_invalid_utf8_body_with_a_valid_signature_is_400_not_403() {
    let app = spawn_app().await;
    let body: &[u8] = b"{\"callNum\":\"\xff\xfe\",\"nation\":\"korea\"}";
    let response = Call::new(body).send(&app).await;
    assert_error(response, 400, "bad_request", "invalid UTF-8").await;
}
