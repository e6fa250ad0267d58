//! Signing requests the way callers do, for `verigate sign` and for tests:
//! the headers a Contiple caller sends and a ready `curl` line.

use base64::{Engine, engine::general_purpose::STANDARD};

use crate::{
    configuration::SignedContent,
    verify::{SignedRequest, contiple::signed_parts, hmac_sha256::HmacKey},
};

/// The two headers of a signed Contiple request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContipleHeaders {
    /// `X-TC-Timestamp`: epoch milliseconds.
    pub timestamp: String,
    /// `Authorization`: padded standard Base64 of the HMAC-SHA256.
    pub authorization: String,
}

/// Signs `body` (and `uri`, when given: `uri+body+timestamp`) with `key`,
/// the UTF-8 bytes of the console's key string, at `timestamp_ms`.
pub fn contiple(key: &[u8], uri: Option<&str>, body: &[u8], timestamp_ms: i64) -> ContipleHeaders {
    let timestamp = timestamp_ms.to_string();
    let headers = actix_web::http::header::HeaderMap::new();
    let (signed, path_and_query) = match uri {
        Some(uri) => (SignedContent::UriBodyTimestamp, uri),
        None => (SignedContent::BodyTimestamp, ""),
    };
    let request = SignedRequest {
        headers: &headers,
        path_and_query,
        body,
    };
    let mac = HmacKey::new(key).sign(&signed_parts(signed, &request, timestamp.as_bytes()));
    ContipleHeaders {
        timestamp,
        authorization: STANDARD.encode(mac),
    }
}

/// Quotes `text` for a POSIX shell.
pub fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r#"'\''"#))
}

/// A `curl` command that sends the signed request. `data` is the curl data
/// argument: the body itself, or `@file`.
pub fn contiple_curl(url: &str, headers: &ContipleHeaders, data: &str) -> String {
    format!(
        "curl -sS -X POST {} -H 'Content-Type: application/json' -H {} -H {} --data-binary {}",
        shell_quote(url),
        shell_quote(&format!("X-TC-Timestamp: {}", headers.timestamp)),
        shell_quote(&format!("Authorization: {}", headers.authorization)),
        shell_quote(data),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_survives_single_quotes() {
        assert_eq!(shell_quote("it's"), r#"'it'\''s'"#);
    }

    #[test]
    fn uri_mode_prepends_the_uri() {
        let plain = contiple(b"k", None, b"/x{}", 5);
        let with_uri = contiple(b"k", Some("/x"), b"{}", 5);
        assert_eq!(plain, with_uri, "uri+body+timestamp is the concatenation");
    }
}
