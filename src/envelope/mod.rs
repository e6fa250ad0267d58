//! Response envelopes: each partner documents the shape of its answers, and
//! every reply of a route, success or failure, goes through its envelope.

use actix_web::{
    HttpResponse,
    http::{StatusCode, header},
};

use crate::{backend::Record, error::ErrorCode};

/// Contiple's `{"data":..}` / `{"error":{code,message,detail}}` (seed 000).
pub mod contiple;

/// The JSON content type every envelope uses.
pub const JSON_UTF8: &str = "application/json; charset=utf-8";

/// A failure, ready to render: status already decided by the route.
#[derive(Debug, Clone, Copy)]
pub struct ErrorReply<'a> {
    /// HTTP status.
    pub status: StatusCode,
    /// The registry code.
    pub code: ErrorCode,
    /// Client-fault detail or a fixed hint; never internals.
    pub detail: Option<&'a str>,
}

/// A configured envelope; one arm per partner contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Envelope {
    /// Contiple (also the default before a route is known).
    #[default]
    Contiple,
}

impl Envelope {
    /// 200 with `fields` of `record`, in order; absent ones as null.
    pub fn found(self, fields: &[String], record: &Record) -> HttpResponse {
        match self {
            Envelope::Contiple => json(StatusCode::OK, contiple::data_body(fields, record)),
        }
    }

    /// The failure in this envelope; every 503 carries `Retry-After`.
    pub fn error(self, reply: ErrorReply<'_>) -> HttpResponse {
        let body = match self {
            Envelope::Contiple => contiple::error_body(reply),
        };
        let mut response = json(reply.status, body);
        if reply.status == StatusCode::SERVICE_UNAVAILABLE {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
        }
        response
    }
}

fn json(status: StatusCode, body: Vec<u8>) -> HttpResponse {
    HttpResponse::build(status)
        .insert_header((header::CONTENT_TYPE, JSON_UTF8))
        .body(body)
}
