//! The registry of API error codes and the error value every stage returns.
//!
//! The codes are part of the partner contract: they appear in every envelope
//! and as the `outcome` label of `verigate_requests_total`, so each one is a
//! stable snake_case name with one HTTP status.

use std::fmt;

use actix_web::http::StatusCode;

/// One stable, documented failure of the request path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// Malformed request: timestamp, body, fields, duplicate headers.
    BadRequest,
    /// The lookup found no record.
    NoResult,
    /// Missing or wrong signature.
    BadSignature,
    /// Timestamp older than the window.
    StaleTimestamp,
    /// Timestamp further ahead than the window.
    FutureTimestamp,
    /// The same signed request was already admitted.
    Replayed,
    /// The client address is not in the route's allow-list.
    IpNotAllowed,
    /// No route serves this path.
    NotFound,
    /// The route does not accept this method.
    MethodNotAllowed,
    /// The request head or body did not arrive in time.
    RequestTimeout,
    /// The body is larger than `max_body_bytes`.
    PayloadTooLarge,
    /// A content type, charset or content encoding the route does not accept.
    UnsupportedMediaType,
    /// The backend failed or timed out.
    BackendError,
    /// The replay store could not be reached.
    StoreUnavailable,
    /// The memory replay store holds `capacity` live entries.
    StoreFull,
}

impl ErrorCode {
    /// Every code, in registry order (metrics pre-register one series each).
    pub const ALL: [ErrorCode; 15] = [
        ErrorCode::BadRequest,
        ErrorCode::NoResult,
        ErrorCode::BadSignature,
        ErrorCode::StaleTimestamp,
        ErrorCode::FutureTimestamp,
        ErrorCode::Replayed,
        ErrorCode::IpNotAllowed,
        ErrorCode::NotFound,
        ErrorCode::MethodNotAllowed,
        ErrorCode::RequestTimeout,
        ErrorCode::PayloadTooLarge,
        ErrorCode::UnsupportedMediaType,
        ErrorCode::BackendError,
        ErrorCode::StoreUnavailable,
        ErrorCode::StoreFull,
    ];

    /// The stable name sent to callers and used as a metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadRequest => "bad_request",
            ErrorCode::NoResult => "no_result",
            ErrorCode::BadSignature => "bad_signature",
            ErrorCode::StaleTimestamp => "stale_timestamp",
            ErrorCode::FutureTimestamp => "future_timestamp",
            ErrorCode::Replayed => "replayed",
            ErrorCode::IpNotAllowed => "ip_not_allowed",
            ErrorCode::NotFound => "not_found",
            ErrorCode::MethodNotAllowed => "method_not_allowed",
            ErrorCode::RequestTimeout => "request_timeout",
            ErrorCode::PayloadTooLarge => "payload_too_large",
            ErrorCode::UnsupportedMediaType => "unsupported_media_type",
            ErrorCode::BackendError => "backend_error",
            ErrorCode::StoreUnavailable => "store_unavailable",
            ErrorCode::StoreFull => "store_full",
        }
    }

    /// The HTTP status of this code (a route may turn `backend_error` into 503).
    pub fn status(self) -> StatusCode {
        match self {
            ErrorCode::BadRequest | ErrorCode::NoResult => StatusCode::BAD_REQUEST,
            ErrorCode::BadSignature
            | ErrorCode::StaleTimestamp
            | ErrorCode::FutureTimestamp
            | ErrorCode::Replayed
            | ErrorCode::IpNotAllowed => StatusCode::FORBIDDEN,
            ErrorCode::NotFound => StatusCode::NOT_FOUND,
            ErrorCode::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ErrorCode::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            ErrorCode::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ErrorCode::BackendError => StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::StoreUnavailable | ErrorCode::StoreFull => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// A short human message; the envelope's `message`.
    pub fn message(self) -> &'static str {
        match self {
            ErrorCode::BadRequest => "The request is malformed.",
            ErrorCode::NoResult => "No record matches the request.",
            ErrorCode::BadSignature => "The request signature is missing or invalid.",
            ErrorCode::StaleTimestamp => "The request timestamp is too old.",
            ErrorCode::FutureTimestamp => "The request timestamp is too far in the future.",
            ErrorCode::Replayed => "This signed request was already used.",
            ErrorCode::IpNotAllowed => "The client address is not allowed on this route.",
            ErrorCode::NotFound => "No route serves this path.",
            ErrorCode::MethodNotAllowed => "This route does not accept that method.",
            ErrorCode::RequestTimeout => "The request did not arrive in time.",
            ErrorCode::PayloadTooLarge => "The request body is too large.",
            ErrorCode::UnsupportedMediaType => "The content type or encoding is not accepted.",
            ErrorCode::BackendError => "The lookup backend failed.",
            ErrorCode::StoreUnavailable => "The replay store is unavailable.",
            ErrorCode::StoreFull => "The replay store is full.",
        }
    }

    /// True for the codes that are the server's fault: their bodies never
    /// carry details, only a fixed hint.
    pub fn is_server_fault(self) -> bool {
        self.status().is_server_error()
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A failure of the request path: the code the caller sees, the detail a
/// client fault may carry, and the cause that only the log sees.
pub struct ApiError {
    /// The registry code.
    pub code: ErrorCode,
    /// Caller-facing detail (client faults) or a fixed hint (server faults).
    pub detail: Option<String>,
    /// The underlying cause, logged once at the boundary, never sent.
    pub source: Option<anyhow::Error>,
}

impl ApiError {
    /// An error with a caller-facing detail.
    pub fn new(code: ErrorCode, detail: impl Into<String>) -> Self {
        Self {
            code,
            detail: Some(detail.into()),
            source: None,
        }
    }

    /// An error without detail.
    pub fn bare(code: ErrorCode) -> Self {
        Self {
            code,
            detail: None,
            source: None,
        }
    }

    /// A server-side failure: the cause goes to the log, the caller gets `hint`.
    pub fn internal(code: ErrorCode, hint: &str, source: anyhow::Error) -> Self {
        Self {
            code,
            detail: Some(hint.to_owned()),
            source: Some(source),
        }
    }
}

impl fmt::Debug for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.code)?;
        if let Some(detail) = &self.detail {
            write!(f, ": {detail}")?;
        }
        if let Some(source) = &self.source {
            write!(f, "\nCaused by:")?;
            error_chain_fmt(source.as_ref(), f)?;
        }
        Ok(())
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// Writes an error's source chain, one cause per line.
pub fn error_chain_fmt(
    e: &(dyn std::error::Error + 'static),
    f: &mut fmt::Formatter<'_>,
) -> fmt::Result {
    let mut current = Some(e);
    while let Some(cause) = current {
        write!(f, "\n\t{cause}")?;
        current = cause.source();
    }
    Ok(())
}

/// The result type of the request path's stages.
pub type Result<T, E = ApiError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_has_a_unique_name() {
        let mut names: Vec<_> = ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), ErrorCode::ALL.len());
    }

    #[test]
    fn server_faults_are_exactly_the_5xx_codes() {
        let faults: Vec<_> = ErrorCode::ALL
            .iter()
            .filter(|c| c.is_server_fault())
            .map(|c| c.as_str())
            .collect();
        assert_eq!(
            faults,
            ["backend_error", "store_unavailable", "store_full"].to_vec()
        );
    }
}
