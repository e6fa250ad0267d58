//! Contiple's customer-info signature (seed 000): `X-TC-Timestamp` in epoch
//! milliseconds and `Authorization` = Base64(HMAC-SHA256(key, [uri] + body +
//! timestamp)), the key being the UTF-8 bytes of the console's key string.

use std::time::Duration;

use super::{SignedRequest, Verified, VerifyError, hmac_sha256::KeyRing, single_header};
use crate::{
    configuration::SignedContent,
    domain::{
        signature::Signature,
        timestamp::{Timestamp, WindowError, check_window},
    },
    replay::ReplayKey,
};

/// The timestamp header.
pub const TIMESTAMP_HEADER: &str = "x-tc-timestamp";
/// The signature header.
pub const SIGNATURE_HEADER: &str = "authorization";

/// A configured Contiple route's verifier.
#[derive(Debug)]
pub struct ContipleScheme {
    keys: KeyRing,
    signed: SignedContent,
    tolerance: Duration,
}

impl ContipleScheme {
    /// A verifier over `keys`, signing `signed`, accepting `tolerance` of skew.
    pub fn new(keys: KeyRing, signed: SignedContent, tolerance: Duration) -> Self {
        Self {
            keys,
            signed,
            tolerance,
        }
    }

    /// How long a replay entry must live: the whole window, both sides.
    pub fn replay_ttl(&self) -> Duration {
        self.tolerance.saturating_mul(2)
    }

    /// Checks, in DESIGN §3's order: timestamp syntax, window, signature
    /// syntax, MAC.
    pub fn verify(&self, request: SignedRequest<'_>, now_ms: i64) -> Result<Verified, VerifyError> {
        let raw_ts = single_header(request.headers, TIMESTAMP_HEADER)?
            .ok_or(VerifyError::MissingTimestamp("X-TC-Timestamp"))?;
        let timestamp = Timestamp::parse(raw_ts)?;
        check_window(timestamp, now_ms, self.tolerance).map_err(|e| match e {
            WindowError::Stale => VerifyError::Stale,
            WindowError::Future => VerifyError::Future,
        })?;

        let raw_signature = single_header(request.headers, SIGNATURE_HEADER)?
            .ok_or(VerifyError::MissingSignature("Authorization"))?;
        let signature = Signature::from_base64(raw_signature)?;

        let key_id = self
            .keys
            .verify(
                &signed_parts(self.signed, &request, raw_ts),
                signature.as_bytes(),
            )
            .ok_or(VerifyError::Mismatch)?;
        Ok(Verified {
            replay_key: ReplayKey::from_mac("contiple", signature.as_bytes()),
            key_id,
            timestamp_ms: Some(timestamp.millis()),
        })
    }
}

/// The byte strings whose concatenation is signed.
pub fn signed_parts<'a>(
    signed: SignedContent,
    request: &SignedRequest<'a>,
    raw_timestamp: &'a [u8],
) -> [&'a [u8]; 3] {
    let uri: &[u8] = match signed {
        SignedContent::BodyTimestamp => b"",
        SignedContent::UriBodyTimestamp => request.path_and_query.as_bytes(),
    };
    [uri, request.body, raw_timestamp]
}

#[cfg(test)]
mod tests {
    use base64::{Engine, engine::general_purpose::STANDARD};

    use super::*;
    use crate::verify::hmac_sha256::HmacKey;
    use crate::verify::test_headers as headers;

    const KEY: &str = "bf7769e5321448de88838cdb";
    const NOW: i64 = 1_700_000_000_000;

    fn scheme(signed: SignedContent) -> ContipleScheme {
        ContipleScheme::new(
            KeyRing::new(vec![HmacKey::new(KEY.as_bytes())]),
            signed,
            Duration::from_secs(300),
        )
    }

    fn sign(message: &str) -> String {
        STANDARD.encode(HmacKey::new(KEY.as_bytes()).sign(&[message.as_bytes()]))
    }

    #[test]
    fn the_seed_example_verifies_in_both_modes() {
        let body = r#"{"callNum":"1","nation":"korea"}"#;
        let ts = NOW.to_string();
        let hs = headers(&[
            ("x-tc-timestamp", &ts),
            ("authorization", &sign(&format!("{body}{ts}"))),
        ]);
        let request = SignedRequest {
            headers: &hs,
            path_and_query: "/c?x=1",
            body: body.as_bytes(),
        };
        assert!(
            scheme(SignedContent::BodyTimestamp)
                .verify(request, NOW)
                .is_ok()
        );
        assert_eq!(
            scheme(SignedContent::UriBodyTimestamp).verify(request, NOW),
            Err(VerifyError::Mismatch)
        );

        let hs = headers(&[
            ("x-tc-timestamp", &ts),
            ("authorization", &sign(&format!("/c?x=1{body}{ts}"))),
        ]);
        let request = SignedRequest {
            headers: &hs,
            ..request
        };
        assert!(
            scheme(SignedContent::UriBodyTimestamp)
                .verify(request, NOW)
                .is_ok()
        );
    }

    #[test]
    fn failures_come_in_the_documented_order() {
        let ts = NOW.to_string();
        let stale = (NOW - 300_001).to_string();
        let good = sign(&format!("{{}}{ts}"));
        let wrong = sign("other");
        type Case<'a> = (Vec<(&'a str, &'a str)>, VerifyError, &'a str);
        let cases: Vec<Case> = vec![
            (
                vec![("authorization", "x")],
                VerifyError::MissingTimestamp("X-TC-Timestamp"),
                "no timestamp",
            ),
            (
                vec![
                    ("x-tc-timestamp", &ts),
                    ("x-tc-timestamp", &ts),
                    ("authorization", &good),
                ],
                VerifyError::DuplicateHeader("x-tc-timestamp"),
                "two timestamps",
            ),
            (
                vec![("x-tc-timestamp", "-1"), ("authorization", "x")],
                VerifyError::MalformedTimestamp(
                    crate::domain::timestamp::TimestampError::NotDigits,
                ),
                "negative timestamp before signature",
            ),
            (
                vec![("x-tc-timestamp", &stale), ("authorization", "x")],
                VerifyError::Stale,
                "window before signature",
            ),
            (
                vec![("x-tc-timestamp", &ts)],
                VerifyError::MissingSignature("Authorization"),
                "no signature",
            ),
            (
                vec![
                    ("x-tc-timestamp", &ts),
                    ("authorization", &good),
                    ("authorization", &good),
                ],
                VerifyError::DuplicateHeader("authorization"),
                "two signatures",
            ),
            (
                vec![("x-tc-timestamp", &ts), ("authorization", &wrong)],
                VerifyError::Mismatch,
                "wrong message",
            ),
        ];
        for (pairs, expected, what) in cases {
            let hs = headers(&pairs);
            let request = SignedRequest {
                headers: &hs,
                path_and_query: "/",
                body: b"{}",
            };
            assert_eq!(
                scheme(SignedContent::BodyTimestamp).verify(request, NOW),
                Err(expected),
                "{what}"
            );
        }
    }

    #[test]
    fn the_replay_key_depends_on_the_mac_only() {
        let ts = NOW.to_string();
        let sig = sign(&format!("{{}}{ts}"));
        let hs = headers(&[("x-tc-timestamp", &ts), ("authorization", &sig)]);
        let a = SignedRequest {
            headers: &hs,
            path_and_query: "/a",
            body: b"{}",
        };
        let b = SignedRequest {
            path_and_query: "/b",
            ..a
        };
        let s = scheme(SignedContent::BodyTimestamp);
        assert_eq!(
            s.verify(a, NOW).unwrap().replay_key,
            s.verify(b, NOW).unwrap().replay_key
        );
    }
}
