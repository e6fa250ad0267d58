//! The body of a signed request: content headers checked before any byte is
//! read, the size limit enforced while reading (never after buffering), and
//! the whole body due within `body_timeout_ms` of the head.

use std::time::Duration;

use actix_web::{http::header, http::header::HeaderMap, web};
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;

use crate::error::{ApiError, ErrorCode};

/// The limits of one listener.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimits {
    /// Largest body, in bytes.
    pub max_bytes: usize,
    /// Time for the whole body, from the end of the head.
    pub timeout: Duration,
}

/// Refuses, with 415, a `Content-Encoding` other than `identity` (nothing is
/// ever decompressed) and a declared type other than JSON in UTF-8. No
/// `Content-Type` at all is accepted: Contiple's example never sets one.
pub fn check_json_content(headers: &HeaderMap) -> Result<(), ApiError> {
    for value in headers.get_all(header::CONTENT_ENCODING) {
        let encodings = value
            .to_str()
            .map_err(|_| unsupported("Content-Encoding is not ASCII"))?;
        for encoding in encodings
            .split(',')
            .map(str::trim)
            .filter(|e| !e.is_empty())
        {
            if !encoding.eq_ignore_ascii_case("identity") {
                return Err(unsupported(
                    "Content-Encoding must be identity: compressed bodies are not accepted",
                ));
            }
        }
    }
    for value in headers.get_all(header::CONTENT_TYPE) {
        let declared = value
            .to_str()
            .map_err(|_| unsupported("Content-Type is not ASCII"))?;
        let mut parts = declared.split(';');
        let essence = parts.next().unwrap_or("").trim();
        if !essence.eq_ignore_ascii_case("application/json") {
            return Err(unsupported("Content-Type must be application/json"));
        }
        for parameter in parts {
            let Some((name, value)) = parameter.split_once('=') else {
                continue;
            };
            if name.trim().eq_ignore_ascii_case("charset") {
                let charset = value.trim().trim_matches('"');
                if !charset.eq_ignore_ascii_case("utf-8") && !charset.eq_ignore_ascii_case("utf8") {
                    return Err(unsupported("the charset must be UTF-8"));
                }
            }
        }
    }
    Ok(())
}

fn unsupported(detail: &str) -> ApiError {
    ApiError::new(ErrorCode::UnsupportedMediaType, detail)
}

/// Reads the body within `limits`: a declared length over the limit is 413
/// before any byte is read; a body that grows past it is 413 as soon as it
/// does; a body still arriving at the timeout is 408.
pub async fn read(
    headers: &HeaderMap,
    payload: web::Payload,
    limits: BodyLimits,
) -> Result<Bytes, ApiError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|len| len > limits.max_bytes as u64) {
        return Err(too_large(limits));
    }
    let capacity = declared.map_or(1024, |len| len as usize);
    match tokio::time::timeout(limits.timeout, collect(payload, limits.max_bytes, capacity)).await {
        Ok(result) => result,
        Err(_) => Err(ApiError::new(
            ErrorCode::RequestTimeout,
            "the body did not arrive in time",
        )),
    }
}

async fn collect(
    mut payload: web::Payload,
    max_bytes: usize,
    capacity: usize,
) -> Result<Bytes, ApiError> {
    let mut body = BytesMut::with_capacity(capacity);
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| {
            ApiError::new(
                ErrorCode::BadRequest,
                format!("the body could not be read: {e}"),
            )
        })?;
        if body.len() + chunk.len() > max_bytes {
            return Err(ApiError::new(
                ErrorCode::PayloadTooLarge,
                format!("the body exceeds {max_bytes} bytes"),
            ));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

fn too_large(limits: BodyLimits) -> ApiError {
    ApiError::new(
        ErrorCode::PayloadTooLarge,
        format!("the body exceeds {} bytes", limits.max_bytes),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify::test_headers as headers;

    #[test]
    fn json_in_utf8_or_no_declared_type_is_accepted() {
        let accepted: &[&[(&str, &str)]] = &[
            &[],
            &[("content-type", "application/json")],
            &[("content-type", "Application/JSON; charset=UTF-8")],
            &[("content-type", "application/json;charset=\"utf-8\"")],
            &[("content-encoding", "identity")],
        ];
        for pairs in accepted {
            assert!(check_json_content(&headers(pairs)).is_ok(), "{pairs:?}");
        }
    }

    #[test]
    fn other_types_charsets_and_encodings_are_415() {
        let refused: &[&[(&str, &str)]] = &[
            &[("content-type", "text/plain")],
            &[("content-type", "application/x-www-form-urlencoded")],
            &[("content-type", "application/json; charset=euc-kr")],
            &[("content-encoding", "gzip")],
            &[("content-encoding", "identity"), ("content-encoding", "br")],
            &[("content-encoding", "identity, deflate")],
        ];
        for pairs in refused {
            let err = check_json_content(&headers(pairs)).unwrap_err();
            assert_eq!(err.code, ErrorCode::UnsupportedMediaType, "{pairs:?}");
        }
    }
}
