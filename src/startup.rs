//! Building the application from settings: the shared state (built once,
//! outside the per-worker factory), the listeners, and a run that stops
//! gracefully on SIGTERM/SIGINT.

use std::{net::TcpListener, sync::Arc, time::Duration};

use actix_web::{App, HttpServer, dev::Server, middleware::from_fn, web};
use tracing_actix_web::TracingLogger;

use crate::{
    backend::Backend,
    configuration::{ConfigError, OnStoreError, ReplaySettings, RouteSettings, Settings},
    metrics::{Metrics, RouteMetrics, UNMATCHED_ROUTE},
    replay::ReplayStore,
    request_body::BodyLimits,
    routes::{
        self,
        table::{RouteSummary, RouteTable},
    },
    telemetry::{VerigateRootSpan, echo_request_id},
};

/// Everything a request needs, shared by all workers.
#[derive(Debug)]
pub struct AppState {
    /// Routes by path.
    pub routes: RouteTable,
    /// The replay store.
    pub replay: ReplayStore,
    /// Every configured backend.
    pub backends: Vec<Arc<Backend>>,
    /// The metrics registry.
    pub metrics: Metrics,
    /// Body size and time limits.
    pub limits: BodyLimits,
    /// Peers whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<crate::configuration::Cidr>,
    /// Metric handles of requests that matched no route.
    pub unmatched: RouteMetrics,
}

/// The validated application, before any socket is opened.
#[derive(Debug)]
pub struct Built {
    /// The shared state.
    pub state: AppState,
    /// One line per route, for `check-config`.
    pub routes: Vec<RouteSummary>,
    /// Warnings to show at start (literal secrets, shared keys).
    pub warnings: Vec<String>,
}

/// Validates `settings` and builds the state: backends load their data,
/// secrets resolve, routes check their fields against their backends.
/// Opens no connection (Redis and database pools connect on first use),
/// but needs a Tokio runtime.
pub fn build_state(settings: &Settings) -> Result<Built, ConfigError> {
    let metrics = Metrics::new();
    let mut backend_names: Vec<&str> = Vec::new();
    let mut backends = Vec::with_capacity(settings.backends.len());
    for (index, backend) in settings.backends.iter().enumerate() {
        let name = backend.name();
        if name.trim().is_empty() {
            return Err(ConfigError::new(
                format!("backends[{index}].name"),
                "the name must not be empty",
            ));
        }
        if backend_names.contains(&name) {
            return Err(ConfigError::new(
                format!("backends[{index}].name"),
                format!("the name \"{name}\" is already used by another backend"),
            ));
        }
        backend_names.push(name);
        let columns = response_columns(&settings.routes, name);
        backends.push(Arc::new(Backend::build(
            index, backend, &columns, &metrics,
        )?));
    }
    let (routes, summaries, mut warnings) =
        RouteTable::build(&settings.routes, &backends, &metrics)?;
    if let ReplaySettings::Redis(redis) = &settings.replay {
        if redis.on_store_error == OnStoreError::Allow {
            warnings.push(
                "replay.on_store_error = \"allow\": while Redis fails, requests are admitted \
                 WITHOUT replay protection"
                    .into(),
            );
        }
        if redis.capacity.is_some() {
            warnings.push(
                "replay.capacity: applies only to the memory store; ignored with store = \"redis\""
                    .into(),
            );
        }
    }
    warnings.extend(
        backends
            .iter()
            .filter_map(|b| b.warning())
            .map(str::to_owned),
    );
    let server = &settings.server;
    for (key, value) in [
        ("server.max_body_bytes", server.max_body_bytes as u64),
        ("server.header_timeout_ms", server.header_timeout_ms),
        ("server.body_timeout_ms", server.body_timeout_ms),
    ] {
        if value == 0 {
            return Err(ConfigError::new(key, "must be at least 1"));
        }
    }
    let unmatched = metrics.route(UNMATCHED_ROUTE);
    let state = AppState {
        unmatched,
        routes,
        replay: ReplayStore::from_settings(&settings.replay, &metrics)?,
        backends,
        metrics,
        limits: BodyLimits {
            max_bytes: server.max_body_bytes,
            timeout: Duration::from_millis(server.body_timeout_ms),
        },
        trusted_proxies: server.trusted_proxies.clone(),
    };
    Ok(Built {
        state,
        routes: summaries,
        warnings,
    })
}

/// The union of the response fields of the routes using backend `name`:
/// the only columns the backend needs to keep.
fn response_columns(routes: &[RouteSettings], name: &str) -> Vec<String> {
    let mut columns: Vec<String> = Vec::new();
    for route in routes {
        let (backend, fields) = match route {
            RouteSettings::Contiple(r) => (&r.backend, &r.response_fields),
        };
        if backend == name {
            for field in fields {
                if !columns.contains(field) {
                    columns.push(field.clone());
                }
            }
        }
    }
    columns
}

/// Why the application could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A listener could not be opened.
    #[error("cannot listen on {address}: {source}")]
    Bind {
        /// The configured address.
        address: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

/// A built, bound application.
pub struct Application {
    port: u16,
    metrics_port: Option<u16>,
    state: web::Data<AppState>,
    servers: Vec<Server>,
}

impl Application {
    /// Builds the state and binds the listeners (port 0 picks a free port).
    /// The replay store's epoch is written before the first request can
    /// arrive (best effort: a store that is down is only logged).
    pub async fn build(settings: &Settings) -> Result<Application, StartupError> {
        let built = build_state(settings)?;
        for warning in &built.warnings {
            tracing::warn!("{warning}");
        }
        built.state.replay.init().await;
        let state = web::Data::new(built.state);
        let server = &settings.server;
        let bind = |address: std::net::SocketAddr| {
            TcpListener::bind(address).map_err(|source| StartupError::Bind {
                address: address.to_string(),
                source,
            })
        };
        let listener = bind(server.bind)?;
        let port = local_port(&listener);
        let metrics_listener = server.metrics_bind.map(bind).transpose()?;
        let metrics_port = metrics_listener.as_ref().map(local_port);

        let serve_metrics_on_main = metrics_listener.is_none();
        let app_state = state.clone();
        let main = HttpServer::new(move || {
            App::new()
                .app_data(app_state.clone())
                .configure(routes::configure(serve_metrics_on_main))
                .wrap(from_fn(echo_request_id))
                .wrap(TracingLogger::<VerigateRootSpan>::new())
        });
        // DESIGN §8a: on keep-alive the head's time runs from the end of the
        // previous request, and an idle connection past it closes silently.
        let header_timeout = Duration::from_millis(server.header_timeout_ms);
        let mut main = main
            .client_request_timeout(header_timeout)
            .keep_alive(header_timeout)
            .shutdown_timeout(server.shutdown_timeout_secs);
        if server.workers > 0 {
            main = main.workers(server.workers);
        }
        let main = main
            .listen(listener)
            .map_err(|source| StartupError::Bind {
                address: server.bind.to_string(),
                source,
            })?
            .run();
        let mut servers = vec![main];
        if let Some(listener) = metrics_listener {
            let metrics_state = state.clone();
            let metrics = HttpServer::new(move || {
                App::new()
                    .app_data(metrics_state.clone())
                    .configure(routes::configure_metrics_only)
            })
            .workers(1)
            .listen(listener)
            .map_err(|source| StartupError::Bind {
                address: format!("{:?}", server.metrics_bind),
                source,
            })?
            .run();
            servers.push(metrics);
        }
        Ok(Application {
            port,
            metrics_port,
            state,
            servers,
        })
    }

    /// The main listener's port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The metrics listener's port, when `metrics_bind` is set.
    pub fn metrics_port(&self) -> Option<u16> {
        self.metrics_port
    }

    /// Serves until SIGTERM/SIGINT, then lets in-flight requests finish
    /// within `shutdown_timeout_secs`. SIGHUP reloads file backends.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        spawn_reload_on_sighup(self.state.clone());
        let results = futures_util::future::join_all(self.servers).await;
        results.into_iter().collect()
    }
}

fn local_port(listener: &TcpListener) -> u16 {
    listener.local_addr().map(|a| a.port()).unwrap_or(0)
}

#[cfg(unix)]
fn spawn_reload_on_sighup(state: web::Data<AppState>) {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut hangups) = signal(SignalKind::hangup()) else {
        tracing::warn!("cannot listen for SIGHUP; data files will not reload");
        return;
    };
    tokio::spawn(async move {
        while hangups.recv().await.is_some() {
            let state = state.clone();
            let _ = tokio::task::spawn_blocking(move || {
                for backend in &state.backends {
                    backend.reload();
                }
            })
            .await;
        }
    });
}

#[cfg(not(unix))]
fn spawn_reload_on_sighup(_: web::Data<AppState>) {}
