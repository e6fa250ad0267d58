//! Signature schemes. Each scheme reads its headers, checks the timestamp
//! window and the MAC over the exact bytes it signs, and returns the replay
//! key of a request it admits. Nothing here parses the body.

use actix_web::http::header::HeaderMap;

use crate::{
    domain::{signature::SignatureError, timestamp::TimestampError},
    error::{ApiError, ErrorCode},
    replay::ReplayKey,
};

/// The Contiple scheme (seed 000).
pub mod contiple;
/// The shared HMAC-SHA256 core and key ring.
pub mod hmac_sha256;

/// A request as the scheme sees it: nothing is decoded yet.
#[derive(Clone, Copy)]
pub struct SignedRequest<'a> {
    /// Request headers.
    pub headers: &'a HeaderMap,
    /// Path and query exactly as received.
    pub path_and_query: &'a str,
    /// The raw body bytes.
    pub body: &'a [u8],
}

/// What a successful verification yields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The key under which this request is remembered.
    pub replay_key: ReplayKey,
    /// Which key of the ring matched (its position in `keys`).
    pub key_id: usize,
    /// The signed timestamp, in epoch milliseconds, when the scheme has one.
    pub timestamp_ms: Option<i64>,
}

/// A configured scheme; one arm per scheme.
#[derive(Debug)]
pub enum Scheme {
    /// `scheme = "contiple"`.
    Contiple(contiple::ContipleScheme),
}

impl Scheme {
    /// Verifies `request` at wall-clock time `now_ms`.
    pub fn verify(&self, request: SignedRequest<'_>, now_ms: i64) -> Result<Verified, VerifyError> {
        match self {
            Scheme::Contiple(scheme) => scheme.verify(request, now_ms),
        }
    }

    /// The scheme's config name.
    pub fn name(&self) -> &'static str {
        match self {
            Scheme::Contiple(_) => "contiple",
        }
    }
}

/// Why a request was not admitted. The log gets the variant; the caller
/// only the stable code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// A header the scheme reads was sent more than once.
    #[error("the {0} header was sent more than once")]
    DuplicateHeader(&'static str),
    /// The timestamp header is absent.
    #[error("the {0} header is required")]
    MissingTimestamp(&'static str),
    /// The timestamp is not digits or out of range.
    #[error("{0}")]
    MalformedTimestamp(#[from] TimestampError),
    /// Older than the window.
    #[error("the timestamp is older than the accepted window")]
    Stale,
    /// Ahead of the window.
    #[error("the timestamp is further ahead than the accepted window")]
    Future,
    /// No signature header.
    #[error("the {0} header is required")]
    MissingSignature(&'static str),
    /// The signature header is not a strict Base64 MAC.
    #[error("{0}")]
    MalformedSignature(#[from] SignatureError),
    /// No key of the ring produces this MAC.
    #[error("the signature does not match")]
    Mismatch,
}

impl VerifyError {
    /// The registry code for this failure.
    pub fn code(&self) -> ErrorCode {
        match self {
            VerifyError::DuplicateHeader(_)
            | VerifyError::MissingTimestamp(_)
            | VerifyError::MalformedTimestamp(_) => ErrorCode::BadRequest,
            VerifyError::Stale => ErrorCode::StaleTimestamp,
            VerifyError::Future => ErrorCode::FutureTimestamp,
            VerifyError::MissingSignature(_)
            | VerifyError::MalformedSignature(_)
            | VerifyError::Mismatch => ErrorCode::BadSignature,
        }
    }
}

impl From<VerifyError> for ApiError {
    fn from(e: VerifyError) -> Self {
        let code = e.code();
        ApiError::new(code, e.to_string())
    }
}

/// The value of a header the scheme reads: `None` when absent, an error
/// when sent twice (two values could be read differently by two parties).
pub fn single_header<'a>(
    headers: &'a HeaderMap,
    name: &'static str,
) -> Result<Option<&'a [u8]>, VerifyError> {
    let mut values = headers.get_all(name);
    let first = values.next();
    if values.next().is_some() {
        return Err(VerifyError::DuplicateHeader(name));
    }
    Ok(first.map(|v| v.as_bytes()))
}

/// A header map from name/value pairs, in order (repeats are kept).
#[cfg(test)]
pub fn test_headers(pairs: &[(&str, &str)]) -> HeaderMap {
    use actix_web::http::header::{HeaderName, HeaderValue};
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.append(
            HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(value).unwrap(),
        );
    }
    map
}
