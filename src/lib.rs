//! verigate: authenticates signed partner requests and answers them from a
//! configured lookup backend, in the envelope the caller documents.
//!
//! The binary (`src/main.rs`) and the tests boot the same [`startup::Application`].

/// Lookup backends: the `Lookup` contract and one file per kind.
pub mod backend;
/// `verigate check-config`: validate a file and describe its routes.
pub mod check_config;
/// Client address resolution (`trusted_proxies`) and `allow_ips` lists.
pub mod client_ip;
/// The TOML schema, environment overrides, secret references, validation.
pub mod configuration;
/// Parsed request values: timestamps, signatures, request fields, strict JSON.
pub mod domain;
/// Response envelopes, one per partner contract.
pub mod envelope;
/// The error-code registry shared by every stage and envelope.
pub mod error;
/// `verigate import`: build a sqlite backend's table from a data file.
pub mod import;
/// `verigate bench`: end-to-end load figures on loopback.
pub mod loadgen;
/// Prometheus registry and the metric handles of the request path.
pub mod metrics;
/// Replay stores: remember each admitted signature for its window.
pub mod replay;
/// Reading a request body within its size and time limits.
pub mod request_body;
/// HTTP handlers: the lookup pipeline and the health endpoints.
pub mod routes;
/// `verigate sign`: build signed requests for callers and tests.
pub mod sign;
/// Building the application from settings, listeners, shutdown.
pub mod startup;
/// Tracing subscriber, request ids and the access log line.
pub mod telemetry;
/// Signature schemes and the shared HMAC-SHA256 core.
pub mod verify;
