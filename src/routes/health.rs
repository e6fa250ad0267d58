//! Operational endpoints: liveness, readiness and the metrics exposition.
//! None of them counts in `verigate_requests_total`.

use std::collections::BTreeMap;

use actix_web::{HttpResponse, http::header, web};
use serde::Serialize;

use crate::startup::AppState;

/// `GET /healthz`: the process is up.
pub async fn health_check() -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, crate::envelope::JSON_UTF8))
        .body(r#"{"status":"ok"}"#)
}

#[derive(Serialize)]
struct Readiness {
    status: &'static str,
    checks: BTreeMap<String, String>,
}

/// `GET /readyz`: 200 when the replay store and every backend answer.
pub async fn readiness(state: web::Data<AppState>) -> HttpResponse {
    let mut checks = BTreeMap::new();
    let mut ready = true;
    let store = state.replay.check_ready().await;
    ready &= store.is_ok();
    checks.insert(
        "replay".to_owned(),
        store.err().unwrap_or_else(|| "ok".into()),
    );
    for backend in &state.backends {
        let result = backend.check_ready().await;
        ready &= result.is_ok();
        checks.insert(
            backend.name().to_owned(),
            result.err().unwrap_or_else(|| "ok".into()),
        );
    }
    let body = Readiness {
        status: if ready { "ready" } else { "not_ready" },
        checks,
    };
    let mut response = if ready {
        HttpResponse::Ok()
    } else {
        HttpResponse::ServiceUnavailable()
    };
    response.json(body)
}

/// Any other method on an operational endpoint: 405 in the default envelope.
pub async fn get_only() -> HttpResponse {
    let mut response = crate::envelope::Envelope::default().error(crate::envelope::ErrorReply {
        status: actix_web::http::StatusCode::METHOD_NOT_ALLOWED,
        code: crate::error::ErrorCode::MethodNotAllowed,
        detail: Some("this endpoint accepts GET only"),
    });
    response
        .headers_mut()
        .insert(header::ALLOW, header::HeaderValue::from_static("GET"));
    response
}

/// `GET /metrics`: the Prometheus text format.
pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        ))
        .body(state.metrics.render())
}
