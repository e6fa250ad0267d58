//! Logging: the subscriber (human or JSON, `RUST_LOG` first), the request
//! id every line of a request carries, and the one access line per request.
//! The access line names the route and outcome, never the path's query, a
//! header value or a body.

use std::{sync::Arc, time::Instant};

use actix_web::{
    Error, HttpMessage,
    body::MessageBody,
    dev::{ServiceRequest, ServiceResponse},
    http::header::{HeaderName, HeaderValue},
};
use tracing::{Span, Subscriber, field::Empty};
use tracing_actix_web::RootSpanBuilder;
use tracing_subscriber::{EnvFilter, fmt::MakeWriter, layer::SubscriberExt};

/// The request-id header, read and echoed.
pub const REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Human,
    /// One JSON object per line.
    Json,
}

/// A subscriber writing to `sink`, filtered by `RUST_LOG` or else `default_filter`.
pub fn get_subscriber<Sink>(
    default_filter: &str,
    format: LogFormat,
    sink: Sink,
) -> Box<dyn Subscriber + Send + Sync>
where
    Sink: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let registry = tracing_subscriber::registry().with(filter);
    match format {
        LogFormat::Human => Box::new(
            registry.with(
                tracing_subscriber::fmt::layer()
                    .with_writer(sink)
                    .with_ansi(false),
            ),
        ),
        LogFormat::Json => Box::new(
            registry.with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .with_current_span(true)
                    .with_span_list(false)
                    .with_writer(sink),
            ),
        ),
    }
}

/// Installs `subscriber` as the global default (once per process).
pub fn init_subscriber(subscriber: Box<dyn Subscriber + Send + Sync>) {
    let _ = tracing::subscriber::set_global_default(subscriber);
}

/// The id of the request being served; also sent back in `X-Request-Id`.
#[derive(Debug, Clone)]
pub struct RequestId(pub Arc<str>);

/// When the request's head was handed to the app.
#[derive(Debug, Clone, Copy)]
struct RequestStart(Instant);

/// Route and outcome of a served request, set by the handler for the access
/// line (bounded values only).
#[derive(Debug, Clone)]
pub struct AccessOutcome {
    /// Configured route name, or `unmatched`.
    pub route: Arc<str>,
    /// `ok` or the error code.
    pub outcome: &'static str,
}

/// The caller's id when it is 1–128 visible ASCII characters, else a new one.
pub fn request_id(incoming: Option<&HeaderValue>) -> Arc<str> {
    if let Some(value) = incoming {
        let bytes = value.as_bytes();
        if (1..=128).contains(&bytes.len())
            && bytes.iter().all(|b| (0x21..=0x7e).contains(b))
            && let Ok(text) = value.to_str()
        {
            return Arc::from(text);
        }
    }
    Arc::from(uuid::Uuid::new_v4().simple().to_string())
}

/// The root span of every request: its id and method, the route and
/// outcome recorded as they are known. No path, query or header value.
pub struct VerigateRootSpan;

impl RootSpanBuilder for VerigateRootSpan {
    fn on_request_start(request: &ServiceRequest) -> Span {
        let id = request_id(request.headers().get(REQUEST_ID_HEADER));
        let span = tracing::info_span!(
            "request",
            request_id = %id,
            method = %request.method(),
            route = Empty,
            outcome = Empty,
        );
        let mut extensions = request.extensions_mut();
        extensions.insert(RequestId(id));
        extensions.insert(RequestStart(Instant::now()));
        span
    }

    fn on_request_end<B: MessageBody>(span: Span, outcome: &Result<ServiceResponse<B>, Error>) {
        let Ok(response) = outcome else {
            span.in_scope(|| tracing::warn!("request failed before a response was built"));
            return;
        };
        let latency_ms = response
            .request()
            .extensions()
            .get::<RequestStart>()
            .map_or(0.0, |s| s.0.elapsed().as_secs_f64() * 1000.0);
        let status = response.status().as_u16();
        let _entered = span.enter();
        match response.response().extensions().get::<AccessOutcome>() {
            Some(access) => tracing::info!(
                route = %access.route,
                outcome = access.outcome,
                status,
                latency_ms,
                "request finished"
            ),
            None => tracing::debug!(status, latency_ms, "request finished"),
        }
    }
}

/// Copies the request id into the response's `X-Request-Id`.
pub async fn echo_request_id(
    request: ServiceRequest,
    next: actix_web::middleware::Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let id = request.extensions().get::<RequestId>().cloned();
    let mut response = next.call(request).await?;
    if let Some(RequestId(id)) = id
        && let Ok(value) = HeaderValue::from_str(&id)
    {
        response.headers_mut().insert(REQUEST_ID_HEADER, value);
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_request_ids_are_echoed_and_others_replaced() {
        let echoed = request_id(Some(&HeaderValue::from_static("abc-123")));
        assert_eq!(&*echoed, "abc-123");
        let long = "x".repeat(129);
        for bad in [
            HeaderValue::from_static(""),
            HeaderValue::from_static("has space"),
            HeaderValue::from_str(&long).unwrap(),
        ] {
            let id = request_id(Some(&bad));
            assert_eq!(id.len(), 32, "generated for {bad:?}");
        }
        assert_eq!(request_id(None).len(), 32);
    }
}
