//! The request path: route → method → allow-list → content headers → body →
//! verify → replay → parse → lookup → envelope. Each stage returns a typed
//! error; the route's envelope renders it; nothing panics.

use std::{sync::Arc, time::Instant};

use actix_web::{
    HttpRequest, HttpResponse,
    http::{Method, StatusCode, header},
    web,
};

use super::table::LookupRoute;
use crate::{
    backend::BackendError,
    client_ip,
    domain::{lookup_request::LookupRequest, timestamp::now_millis},
    envelope::{Envelope, ErrorReply},
    error::{ApiError, ErrorCode},
    metrics::UNMATCHED_ROUTE,
    request_body,
    startup::AppState,
    telemetry::AccessOutcome,
    verify::SignedRequest,
};

/// Serves every path that is not an operational endpoint.
pub async fn dispatch(
    request: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> HttpResponse {
    let started = Instant::now();
    let Some(route) = state.routes.find(request.uri().path()) else {
        let error = ApiError::new(ErrorCode::NotFound, "no route serves this path");
        let mut response = render_error(Envelope::default(), StatusCode::NOT_FOUND, &error);
        state
            .unmatched
            .finished(Some(error.code), started.elapsed().as_secs_f64());
        finish(&mut response, UNMATCHED_ROUTE.into(), Some(error.code));
        return response;
    };
    let result = lookup(route, &request, payload, &state).await;
    let outcome = result.as_ref().err().map(|e| e.code);
    let mut response = match result {
        Ok(response) => response,
        Err(error) => {
            let status = if error.code == ErrorCode::BackendError {
                route.backend_error_status
            } else {
                error.code.status()
            };
            log_failure(&route.name, &error);
            let mut response = render_error(route.envelope, status, &error);
            if matches!(
                error.code,
                ErrorCode::PayloadTooLarge | ErrorCode::RequestTimeout
            ) {
                // The rest of the body is unread: close rather than let the
                // server drain whatever the client keeps sending.
                response
                    .head_mut()
                    .set_connection_type(actix_web::http::ConnectionType::Close);
            }
            if error.code == ErrorCode::MethodNotAllowed {
                response
                    .headers_mut()
                    .insert(header::ALLOW, header::HeaderValue::from_static("POST"));
            }
            response
        }
    };
    route
        .metrics
        .finished(outcome, started.elapsed().as_secs_f64());
    finish(&mut response, Arc::clone(&route.name), outcome);
    response
}

/// The pipeline of one configured route.
async fn lookup(
    route: &LookupRoute,
    request: &HttpRequest,
    payload: web::Payload,
    state: &AppState,
) -> Result<HttpResponse, ApiError> {
    if request.method() != Method::POST {
        return Err(ApiError::new(
            ErrorCode::MethodNotAllowed,
            "this route accepts POST only",
        ));
    }
    let client = client_ip::resolve(
        request.peer_addr().map(|a| a.ip()),
        request
            .headers()
            .get_all("x-forwarded-for")
            .map(|v| v.as_bytes()),
        &state.trusted_proxies,
    );
    if !route.allow_ips.allows(client) {
        return Err(ApiError::new(
            ErrorCode::IpNotAllowed,
            "the client address is not in this route's allow-list",
        ));
    }
    request_body::check_json_content(request.headers())?;
    let body = request_body::read(request.headers(), payload, state.limits).await?;

    let path_and_query = request.uri().path_and_query().map_or("/", |pq| pq.as_str());
    let signed = SignedRequest {
        headers: request.headers(),
        path_and_query,
        body: &body,
    };
    let verified = route.scheme.verify(signed, now_millis()).map_err(|e| {
        route.metrics.verify_failed(e.code());
        tracing::info!(route = %route.name, reason = %e.code(), error = %e, "verification failed");
        ApiError::from(e)
    })?;
    tracing::Span::current().record("route", &*route.name);

    let first = state
        .replay
        .first_seen(
            &verified.replay_key,
            route.replay_ttl,
            verified.timestamp_ms,
        )
        .await?;
    if !first {
        route.metrics.replay_rejected();
        return Err(ApiError::new(
            ErrorCode::Replayed,
            "this signed request was already used; sign a new one",
        ));
    }

    let fields = LookupRequest::parse(&body, &route.fields)
        .map_err(|e| ApiError::new(ErrorCode::BadRequest, e.to_string()))?;
    let args: Vec<Option<&str>> = route.backend_args.iter().map(|&i| fields.get(i)).collect();
    let lookup_started = Instant::now();
    let found = route.backend.lookup(&args).await;
    route
        .backend_metrics
        .duration
        .observe(lookup_started.elapsed().as_secs_f64());
    let record = found
        .inspect_err(|_: &BackendError| route.backend_metrics.errors.inc())?
        .ok_or_else(|| ApiError::bare(ErrorCode::NoResult))?;
    Ok(route.envelope.found(&route.response_fields, &record))
}

fn render_error(envelope: Envelope, status: StatusCode, error: &ApiError) -> HttpResponse {
    envelope.error(ErrorReply {
        status,
        code: error.code,
        detail: error.detail.as_deref(),
    })
}

/// Logs a failure once, here at the boundary; causes only for server faults.
fn log_failure(route: &str, error: &ApiError) {
    if error.code.is_server_fault() {
        tracing::error!(route, outcome = %error.code, error = ?error, "request failed");
    }
}

/// Marks the response for the access log.
fn finish(response: &mut HttpResponse, route: Arc<str>, outcome: Option<ErrorCode>) {
    let outcome = outcome.map_or("ok", ErrorCode::as_str);
    tracing::Span::current().record("outcome", outcome);
    response
        .extensions_mut()
        .insert(AccessOutcome { route, outcome });
}
