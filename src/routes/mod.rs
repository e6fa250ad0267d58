//! HTTP handlers. Every configured route goes through [`lookup::dispatch`];
//! the operational endpoints are fixed paths that routes may not use.

use actix_web::web;

/// `/healthz`, `/readyz`, `/metrics`.
pub mod health;
/// The authenticated lookup pipeline.
pub mod lookup;
/// The route table built from configuration.
pub mod table;

/// Paths verigate serves itself; a route may not take them.
pub const RESERVED_PATHS: [&str; 3] = ["/healthz", "/readyz", "/metrics"];

/// Mounts the operational endpoints (with `/metrics` when `serve_metrics`)
/// and the route table.
pub fn configure(serve_metrics: bool) -> impl FnOnce(&mut web::ServiceConfig) {
    move |cfg| {
        cfg.service(
            web::resource("/healthz")
                .route(web::get().to(health::health_check))
                .default_service(web::to(health::get_only)),
        )
        .service(
            web::resource("/readyz")
                .route(web::get().to(health::readiness))
                .default_service(web::to(health::get_only)),
        );
        if serve_metrics {
            cfg.service(
                web::resource("/metrics")
                    .route(web::get().to(health::metrics))
                    .default_service(web::to(health::get_only)),
            );
        }
        cfg.default_service(web::to(lookup::dispatch));
    }
}

/// Mounts `/metrics` alone, for the separate `metrics_bind` listener.
pub fn configure_metrics_only(cfg: &mut web::ServiceConfig) {
    cfg.route("/metrics", web::get().to(health::metrics));
}
