//! The route table: each `[[routes]]` entry validated against the backends
//! and turned into a ready-to-serve [`LookupRoute`], found by exact path.

use std::{collections::HashMap, sync::Arc, time::Duration};

use actix_web::http::StatusCode;
use secrecy::ExposeSecret;

use super::RESERVED_PATHS;
use crate::{
    backend::Backend,
    client_ip::AllowList,
    configuration::{
        Cidr, ConfigError, ContipleRouteSettings, RouteSettings, SecretRef, SecretSource,
        SignedContent,
    },
    domain::lookup_request::FieldSpec,
    envelope::Envelope,
    metrics::{BackendMetrics, Metrics, RouteMetrics},
    verify::{
        Scheme,
        contiple::ContipleScheme,
        hmac_sha256::{HmacKey, KeyRing},
    },
};

/// One served route.
#[derive(Debug)]
pub struct LookupRoute {
    /// Configured name: the `route` label.
    pub name: Arc<str>,
    /// How requests are authenticated.
    pub scheme: Scheme,
    /// How long an admitted request is remembered.
    pub replay_ttl: Duration,
    /// Who may call.
    pub allow_ips: AllowList,
    /// Where lookups go.
    pub backend: Arc<Backend>,
    /// The backend's metric handles.
    pub backend_metrics: BackendMetrics,
    /// For each backend argument, its position among the request fields.
    pub backend_args: Vec<usize>,
    /// The body fields read.
    pub fields: FieldSpec,
    /// The fields returned, in order.
    pub response_fields: Vec<String>,
    /// The reply shape.
    pub envelope: Envelope,
    /// Status of `backend_error` (500 or 503).
    pub backend_error_status: StatusCode,
    /// The route's metric handles.
    pub metrics: RouteMetrics,
}

/// Routes by exact path.
#[derive(Debug, Default)]
pub struct RouteTable {
    by_path: HashMap<String, LookupRoute>,
}

/// What `check-config` prints for a route (never a secret).
#[derive(Debug, Clone)]
pub struct RouteSummary {
    /// Route name.
    pub name: String,
    /// Path.
    pub path: String,
    /// Scheme name.
    pub scheme: &'static str,
    /// Backend name.
    pub backend: String,
    /// Number of keys that verify.
    pub keys: usize,
}

impl RouteTable {
    /// The route serving `path`, if any.
    pub fn find(&self, path: &str) -> Option<&LookupRoute> {
        self.by_path.get(path)
    }

    /// Validates and builds every route. Returns the table, a summary per
    /// route and the warnings to print at start.
    pub fn build(
        routes: &[RouteSettings],
        backends: &[Arc<Backend>],
        metrics: &Metrics,
    ) -> Result<(RouteTable, Vec<RouteSummary>, Vec<String>), ConfigError> {
        let mut table = RouteTable::default();
        let mut summaries = Vec::new();
        let mut warnings = Vec::new();
        let mut names: HashMap<&str, usize> = HashMap::new();
        let mut body_only_keys: Vec<(usize, secrecy::SecretString)> = Vec::new();

        for (index, settings) in routes.iter().enumerate() {
            let at = |key: &str| format!("routes[{index}].{key}");
            let name = settings.name();
            if name.trim().is_empty() {
                return Err(ConfigError::new(at("name"), "the name must not be empty"));
            }
            if let Some(first) = names.insert(name, index) {
                return Err(ConfigError::new(
                    at("name"),
                    format!("the name \"{name}\" is already used by routes[{first}]"),
                ));
            }
            let path = settings.path();
            if !path.starts_with('/') {
                return Err(ConfigError::new(at("path"), "the path must start with '/'"));
            }
            if RESERVED_PATHS.contains(&path) {
                return Err(ConfigError::new(
                    at("path"),
                    format!("{path} is served by verigate itself; choose another path"),
                ));
            }
            if let Some(other) = table.by_path.get(path) {
                return Err(ConfigError::new(
                    at("path"),
                    format!(
                        "the path {path} is already served by route \"{}\"",
                        other.name
                    ),
                ));
            }

            let route = match settings {
                RouteSettings::Contiple(contiple) => {
                    let keys = resolve_keys(&contiple.keys, &at("keys"), &mut warnings)?;
                    if contiple.signed == SignedContent::BodyTimestamp {
                        for key in &keys {
                            body_only_keys.push((index, key.clone()));
                        }
                    }
                    build_contiple(index, contiple, keys, backends, metrics)?
                }
            };
            summaries.push(RouteSummary {
                name: name.to_owned(),
                path: path.to_owned(),
                scheme: settings.scheme(),
                backend: route.backend.name().to_owned(),
                keys: match settings {
                    RouteSettings::Contiple(c) => c.keys.len(),
                },
            });
            table.by_path.insert(path.to_owned(), route);
        }

        warn_shared_keys(&body_only_keys, &mut warnings);
        Ok((table, summaries, warnings))
    }
}

fn resolve_keys(
    refs: &[SecretRef],
    at: &str,
    warnings: &mut Vec<String>,
) -> Result<Vec<secrecy::SecretString>, ConfigError> {
    if refs.is_empty() {
        return Err(ConfigError::new(at, "configure at least one key"));
    }
    refs.iter()
        .enumerate()
        .map(|(k, reference)| {
            let path = format!("{at}[{k}]");
            let (secret, source) = reference.resolve(&path)?;
            if source == SecretSource::Literal {
                warnings.push(format!(
                    "{path}: the key is written in the file; use env:NAME or file:PATH in production"
                ));
            }
            Ok(secret)
        })
        .collect()
}

fn build_contiple(
    index: usize,
    settings: &ContipleRouteSettings,
    keys: Vec<secrecy::SecretString>,
    backends: &[Arc<Backend>],
    metrics: &Metrics,
) -> Result<LookupRoute, ConfigError> {
    let at = |key: &str| format!("routes[{index}].{key}");
    if settings.tolerance_secs == 0 {
        return Err(ConfigError::new(at("tolerance_secs"), "must be at least 1"));
    }
    let ring = KeyRing::new(
        keys.iter()
            .map(|k| HmacKey::new(k.expose_secret().as_bytes()))
            .collect(),
    );
    let tolerance = Duration::from_secs(settings.tolerance_secs);
    let scheme = ContipleScheme::new(ring, settings.signed, tolerance);
    let replay_ttl = scheme.replay_ttl();
    let lookup = LookupParts::build(
        index,
        &LookupSettings {
            backend: &settings.backend,
            backend_error_status: settings.backend_error_status,
            request_fields: &settings.request_fields,
            optional_fields: &settings.optional_fields,
            response_fields: &settings.response_fields,
        },
        backends,
    )?;
    Ok(LookupRoute {
        name: Arc::from(settings.name.as_str()),
        scheme: Scheme::Contiple(scheme),
        replay_ttl,
        allow_ips: parse_allow_ips(&settings.allow_ips, &at("allow_ips"))?,
        backend_metrics: metrics.backend(lookup.backend.name()),
        backend: lookup.backend,
        backend_args: lookup.backend_args,
        fields: lookup.fields,
        response_fields: settings.response_fields.clone(),
        envelope: Envelope::Contiple,
        backend_error_status: lookup.backend_error_status,
        metrics: metrics.route(&settings.name),
    })
}

/// The lookup keys every scheme's route shares.
struct LookupSettings<'a> {
    backend: &'a str,
    backend_error_status: u16,
    request_fields: &'a [String],
    optional_fields: &'a [String],
    response_fields: &'a [String],
}

/// The validated lookup part of a route.
struct LookupParts {
    backend: Arc<Backend>,
    backend_args: Vec<usize>,
    fields: FieldSpec,
    backend_error_status: StatusCode,
}

impl LookupParts {
    fn build(
        index: usize,
        settings: &LookupSettings<'_>,
        backends: &[Arc<Backend>],
    ) -> Result<LookupParts, ConfigError> {
        let at = |key: &str| format!("routes[{index}].{key}");
        let backend = backends
            .iter()
            .find(|b| b.name() == settings.backend)
            .cloned()
            .ok_or_else(|| {
                ConfigError::new(
                    at("backend"),
                    format!("no backend named \"{}\"", settings.backend),
                )
            })?;
        let backend_error_status = match settings.backend_error_status {
            500 => StatusCode::INTERNAL_SERVER_ERROR,
            503 => StatusCode::SERVICE_UNAVAILABLE,
            other => {
                return Err(ConfigError::new(
                    at("backend_error_status"),
                    format!("{other} is not allowed; use 500 or 503"),
                ));
            }
        };
        if settings.request_fields.is_empty() {
            return Err(ConfigError::new(
                at("request_fields"),
                "name at least one field",
            ));
        }
        for (k, field) in settings.request_fields.iter().enumerate() {
            if settings.request_fields[..k].contains(field) {
                return Err(ConfigError::new(
                    format!("{}[{k}]", at("request_fields")),
                    format!("\"{field}\" is listed twice"),
                ));
            }
        }
        for (k, field) in settings.optional_fields.iter().enumerate() {
            if !settings.request_fields.contains(field) {
                return Err(ConfigError::new(
                    format!("{}[{k}]", at("optional_fields")),
                    format!("\"{field}\" is not one of request_fields"),
                ));
            }
        }
        let fields = FieldSpec::new(settings.request_fields.to_vec(), settings.optional_fields);
        let backend_args = backend
            .arguments()
            .iter()
            .map(|argument| {
                fields.position(argument).ok_or_else(|| {
                    ConfigError::new(
                        at("request_fields"),
                        format!(
                            "backend \"{}\" looks up by \"{argument}\", which is not a request field",
                            backend.name()
                        ),
                    )
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        if settings.response_fields.is_empty() {
            return Err(ConfigError::new(
                at("response_fields"),
                "name at least one field",
            ));
        }
        for (k, field) in settings.response_fields.iter().enumerate() {
            if !backend.provides(field) {
                return Err(ConfigError::new(
                    format!("{}[{k}]", at("response_fields")),
                    format!(
                        "backend \"{}\" cannot provide \"{field}\" (no such column)",
                        backend.name()
                    ),
                ));
            }
        }
        Ok(LookupParts {
            backend,
            backend_args,
            fields,
            backend_error_status,
        })
    }
}

/// Two body-signed routes with one key accept each other's requests: the
/// replay store stops a second use, but the operator should know.
fn warn_shared_keys(keys: &[(usize, secrecy::SecretString)], warnings: &mut Vec<String>) {
    for (i, (route_a, key_a)) in keys.iter().enumerate() {
        for (route_b, key_b) in &keys[i + 1..] {
            if route_a != route_b && key_a.expose_secret() == key_b.expose_secret() {
                warnings.push(format!(
                    "routes[{route_a}] and routes[{route_b}] share a key and both sign body+timestamp: \
                     a request signed for one verifies on the other (a second use is still a replay)"
                ));
            }
        }
    }
}

/// Parses `allow_ips` entries, naming the bad one.
fn parse_allow_ips(entries: &[String], at: &str) -> Result<AllowList, ConfigError> {
    entries
        .iter()
        .enumerate()
        .map(|(k, entry)| {
            entry
                .parse::<Cidr>()
                .map_err(|reason| ConfigError::new(format!("{at}[{k}]"), reason))
        })
        .collect::<Result<Vec<_>, _>>()
        .map(AllowList::new)
}
