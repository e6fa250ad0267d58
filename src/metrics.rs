//! The Prometheus registry and every metric of DESIGN §9. Label values are
//! bounded: configured route, backend and store names, error codes. Never a
//! raw path, header value or field.
//!
//! Per-route handles are resolved once and cached, so the request path does
//! not hash label values; a series appears on first use, so `/metrics` shows
//! only what happened.

use std::sync::OnceLock;

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

use crate::error::ErrorCode;

/// Buckets for request and backend latency, in seconds.
const LATENCY_BUCKETS: &[f64] = &[
    0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

/// The route label of requests that matched no route.
pub const UNMATCHED_ROUTE: &str = "unmatched";

/// Every metric verigate exports, in one registry per application.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    request_duration: HistogramVec,
    verify_failures: IntCounterVec,
    replay_rejections: IntCounterVec,
    backend_duration: HistogramVec,
    backend_errors: IntCounterVec,
    backend_multiple_rows: IntCounterVec,
    store_errors: IntCounterVec,
    store_duration: HistogramVec,
    store_fail_open: IntCounterVec,
    otp_verifications: IntCounterVec,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

/// Failing to register a metric means two metrics share a name: a
/// programming error that every test run would show at once.
fn register<T: prometheus::core::Collector + Clone + 'static>(registry: &Registry, metric: T) -> T {
    if let Err(e) = registry.register(Box::new(metric.clone())) {
        unreachable!("metric registered twice: {e}");
    }
    metric
}

fn counter(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    match IntCounterVec::new(Opts::new(name, help), labels) {
        Ok(m) => register(registry, m),
        Err(e) => unreachable!("invalid metric {name}: {e}"),
    }
}

fn histogram(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> HistogramVec {
    let opts = HistogramOpts::new(name, help).buckets(LATENCY_BUCKETS.to_vec());
    match HistogramVec::new(opts, labels) {
        Ok(m) => register(registry, m),
        Err(e) => unreachable!("invalid metric {name}: {e}"),
    }
}

impl Metrics {
    /// A fresh registry with every metric, process metrics and build info.
    pub fn new() -> Self {
        let registry = Registry::new();
        #[cfg(target_os = "linux")]
        {
            let process = prometheus::process_collector::ProcessCollector::for_self();
            // Registration fails only if process metrics were registered twice.
            let _ = registry.register(Box::new(process));
        }
        if let Ok(build_info) = IntGaugeVec::new(
            Opts::new("verigate_build_info", "Build information; always 1."),
            &["version"],
        ) {
            let build_info = register(&registry, build_info);
            build_info
                .with_label_values(&[env!("CARGO_PKG_VERSION")])
                .set(1);
        }
        let r = &registry;
        Self {
            requests: counter(
                r,
                "verigate_requests_total",
                "Requests by route and outcome.",
                &["route", "outcome"],
            ),
            request_duration: histogram(
                r,
                "verigate_request_duration_seconds",
                "Request latency by route.",
                &["route"],
            ),
            verify_failures: counter(
                r,
                "verigate_verify_failures_total",
                "Verification failures by route and reason.",
                &["route", "reason"],
            ),
            replay_rejections: counter(
                r,
                "verigate_replay_rejections_total",
                "Replayed requests refused, by route.",
                &["route"],
            ),
            backend_duration: histogram(
                r,
                "verigate_backend_duration_seconds",
                "Backend lookup latency.",
                &["backend"],
            ),
            backend_errors: counter(
                r,
                "verigate_backend_errors_total",
                "Backend lookups that failed.",
                &["backend"],
            ),
            backend_multiple_rows: counter(
                r,
                "verigate_backend_multiple_rows_total",
                "Lookups that matched more than one row (the first was used).",
                &["backend"],
            ),
            store_errors: counter(
                r,
                "verigate_replay_store_errors_total",
                "Replay store calls that failed.",
                &["store"],
            ),
            store_duration: histogram(
                r,
                "verigate_replay_store_duration_seconds",
                "Replay store call latency.",
                &["store"],
            ),
            store_fail_open: counter(
                r,
                "verigate_replay_store_fail_open_total",
                "Requests admitted while the replay store failed (on_store_error = allow).",
                &["store"],
            ),
            otp_verifications: counter(
                r,
                "verigate_otp_verifications_total",
                "Gate OTP verifications by result.",
                &["result"],
            ),
            registry,
        }
    }

    /// The text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        // Encoding into a Vec only fails on invalid metric families, which
        // the registry never holds.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8(out).unwrap_or_default()
    }

    /// Cached handles for route `name`.
    pub fn route(&self, name: &str) -> RouteMetrics {
        RouteMetrics {
            name: name.to_owned(),
            metrics: self.clone(),
            outcomes: std::array::from_fn(|_| OnceLock::new()),
            reasons: std::array::from_fn(|_| OnceLock::new()),
            duration: OnceLock::new(),
            replay_rejections: OnceLock::new(),
        }
    }

    /// Cached handles for backend `name`.
    pub fn backend(&self, name: &str) -> BackendMetrics {
        BackendMetrics {
            duration: self.backend_duration.with_label_values(&[name]),
            errors: self.backend_errors.with_label_values(&[name]),
            multiple_rows: self.backend_multiple_rows.with_label_values(&[name]),
        }
    }

    /// Cached handles for replay store `name`.
    pub fn store(&self, name: &str) -> StoreMetrics {
        StoreMetrics {
            duration: self.store_duration.with_label_values(&[name]),
            errors: self.store_errors.with_label_values(&[name]),
            fail_open: self.store_fail_open.with_label_values(&[name]),
        }
    }

    /// Counts one gate OTP verification.
    pub fn otp_verification(&self, result: &str) {
        self.otp_verifications.with_label_values(&[result]).inc();
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

const OUTCOMES: usize = ErrorCode::ALL.len() + 1;

/// One route's metric handles, created on first use.
pub struct RouteMetrics {
    name: String,
    metrics: Metrics,
    outcomes: [OnceLock<IntCounter>; OUTCOMES],
    reasons: [OnceLock<IntCounter>; OUTCOMES],
    duration: OnceLock<Histogram>,
    replay_rejections: OnceLock<IntCounter>,
}

impl std::fmt::Debug for RouteMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RouteMetrics({})", self.name)
    }
}

fn slot(outcome: Option<ErrorCode>) -> (usize, &'static str) {
    match outcome {
        None => (ErrorCode::ALL.len(), "ok"),
        Some(code) => (
            ErrorCode::ALL.iter().position(|c| *c == code).unwrap_or(0),
            code.as_str(),
        ),
    }
}

impl RouteMetrics {
    /// Counts one finished request (`None` = ok) and its latency.
    pub fn finished(&self, outcome: Option<ErrorCode>, seconds: f64) {
        let (index, label) = slot(outcome);
        self.outcomes[index]
            .get_or_init(|| {
                self.metrics
                    .requests
                    .with_label_values(&[&self.name, label])
            })
            .inc();
        self.duration
            .get_or_init(|| {
                self.metrics
                    .request_duration
                    .with_label_values(&[&self.name])
            })
            .observe(seconds);
    }

    /// Counts one verification failure with its code as the reason.
    pub fn verify_failed(&self, reason: ErrorCode) {
        let (index, label) = slot(Some(reason));
        self.reasons[index]
            .get_or_init(|| {
                self.metrics
                    .verify_failures
                    .with_label_values(&[&self.name, label])
            })
            .inc();
    }

    /// Counts one refused replay.
    pub fn replay_rejected(&self) {
        self.replay_rejections
            .get_or_init(|| {
                self.metrics
                    .replay_rejections
                    .with_label_values(&[&self.name])
            })
            .inc();
    }
}

/// One backend's metric handles.
#[derive(Debug, Clone)]
pub struct BackendMetrics {
    /// Lookup latency.
    pub duration: Histogram,
    /// Failed lookups.
    pub errors: IntCounter,
    /// Lookups that matched several rows.
    pub multiple_rows: IntCounter,
}

/// One replay store's metric handles.
#[derive(Debug, Clone)]
pub struct StoreMetrics {
    /// Call latency.
    pub duration: Histogram,
    /// Failed calls.
    pub errors: IntCounter,
    /// Requests admitted while failing open.
    pub fail_open: IntCounter,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_series_appears_with_its_bounded_labels_once_used() {
        let metrics = Metrics::new();
        let route = metrics.route("contiple");
        assert!(!metrics.render().contains("verigate_requests_total{"));
        route.finished(None, 0.001);
        route.finished(Some(ErrorCode::Replayed), 0.001);
        route.finished(Some(ErrorCode::Replayed), 0.001);
        let text = metrics.render();
        assert!(
            text.contains(r#"verigate_requests_total{outcome="ok",route="contiple"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"verigate_requests_total{outcome="replayed",route="contiple"} 2"#),
            "{text}"
        );
        assert!(text.contains("verigate_build_info{version="), "{text}");
    }
}
