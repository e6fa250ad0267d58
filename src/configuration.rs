//! The configuration file: its schema (the key names are a documented
//! contract), the layered load (file, then `VERIGATE_*__*` environment
//! variables), secret references and the errors that refuse a bad file.

use std::{
    fmt,
    net::{IpAddr, SocketAddr},
    path::{Path, PathBuf},
    str::FromStr,
};

use figment::{
    Figment,
    providers::{Env, Format, Serialized, Toml},
};
use ipnet::IpNet;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

/// The file read when neither `--config` nor `VERIGATE_CONFIG` names one.
pub const DEFAULT_CONFIG_PATH: &str = "verigate.toml";

/// A configuration mistake: where it is (`routes[0].backend`) and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {reason}")]
pub struct ConfigError {
    /// The key path, `server.bind` or `routes[2].keys[0]`.
    pub path: String,
    /// What is wrong, with a hint where one helps.
    pub reason: String,
}

impl ConfigError {
    /// A mistake at `path`.
    pub fn new(path: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            reason: reason.into(),
        }
    }
}

/// The whole file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Listeners, limits and timeouts.
    #[serde(default)]
    pub server: ServerSettings,
    /// Where admitted signatures are remembered.
    pub replay: ReplaySettings,
    /// Named lookup backends that routes refer to.
    #[serde(default)]
    pub backends: Vec<BackendSettings>,
    /// The authenticated routes.
    #[serde(default)]
    pub routes: Vec<RouteSettings>,
}

/// `[server]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerSettings {
    /// Address of the main listener (`127.0.0.1:0` picks a free port).
    pub bind: SocketAddr,
    /// When set, `/metrics` is served on this address only.
    pub metrics_bind: Option<SocketAddr>,
    /// Worker threads; 0 = one per core.
    pub workers: usize,
    /// Largest accepted request body, in bytes.
    pub max_body_bytes: usize,
    /// The request head must arrive within this many milliseconds.
    pub header_timeout_ms: u64,
    /// The whole body must arrive within this many milliseconds of the head.
    pub body_timeout_ms: u64,
    /// In-flight requests get this long to finish on SIGTERM/SIGINT.
    pub shutdown_timeout_secs: u64,
    /// Peers whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<Cidr>,
}

impl Default for ServerSettings {
    fn default() -> Self {
        Self {
            bind: SocketAddr::from(([127, 0, 0, 1], 8080)),
            metrics_bind: None,
            workers: 0,
            max_body_bytes: 65_536,
            header_timeout_ms: 5_000,
            body_timeout_ms: 10_000,
            shutdown_timeout_secs: 30,
            trusted_proxies: Vec::new(),
        }
    }
}

/// `[replay]`, tagged by `store` (default `memory`).
#[derive(Debug, Deserialize)]
#[serde(tag = "store", rename_all = "lowercase")]
pub enum ReplaySettings {
    /// In-process store; one replica only.
    Memory(MemoryReplaySettings),
    /// Redis, shared by every replica.
    Redis(RedisReplaySettings),
}

/// `[replay]` with `store = "redis"`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisReplaySettings {
    /// `redis://[:password@]host:port/db` (or `rediss://`), as a secret reference.
    pub redis_url: SecretRef,
    /// Prefix of the replay keys and of the epoch key (`<prefix>epoch`).
    #[serde(default = "default_key_prefix")]
    pub key_prefix: String,
    /// Time allowed for one store call, in milliseconds.
    #[serde(default = "default_redis_timeout_ms")]
    pub timeout_ms: u64,
    /// What a store failure does: `reject` (503, the default) or `allow`.
    #[serde(default)]
    pub on_store_error: OnStoreError,
    /// The memory store's bound, accepted and ignored (with a warning) so
    /// that a file written for the memory store can be switched to Redis
    /// from the environment (`VERIGATE_REPLAY__STORE=redis`).
    #[serde(default)]
    pub capacity: Option<u64>,
}

/// The keys of [`RedisReplaySettings`] that the memory store does not
/// have: named in the error when one turns up under `store = "memory"`.
const REDIS_ONLY_KEYS: [&str; 4] = ["redis_url", "key_prefix", "timeout_ms", "on_store_error"];

/// What happens to a request when the replay store fails.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnStoreError {
    /// Fail closed: 503 `store_unavailable`, nothing admitted unchecked.
    #[default]
    Reject,
    /// Fail open: admit without replay protection (counted and warned).
    Allow,
}

fn default_key_prefix() -> String {
    "verigate:".into()
}

fn default_redis_timeout_ms() -> u64 {
    200
}

/// `[replay]` with `store = "memory"`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemoryReplaySettings {
    /// Live entries held at most; when full, new requests get 503 `store_full`.
    #[serde(default = "default_capacity")]
    pub capacity: u64,
}

fn default_capacity() -> u64 {
    1_000_000
}

/// `[[backends]]`, tagged by `kind`.
#[derive(Debug, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum BackendSettings {
    /// A JSON array or CSV file indexed in memory at start.
    File(FileBackendSettings),
    /// A SQLite database file (built by `verigate import`).
    Sqlite(SqliteBackendSettings),
    /// A PostgreSQL database.
    Postgres(SqlBackendSettings),
    /// A MySQL or MariaDB database.
    Mysql(SqlBackendSettings),
}

impl BackendSettings {
    /// The name routes use to refer to this backend.
    pub fn name(&self) -> &str {
        match self {
            BackendSettings::File(s) => &s.name,
            BackendSettings::Sqlite(s) => &s.name,
            BackendSettings::Postgres(s) | BackendSettings::Mysql(s) => &s.name,
        }
    }

    /// The `kind` key, for `check-config` and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            BackendSettings::File(_) => "file",
            BackendSettings::Sqlite(_) => "sqlite",
            BackendSettings::Postgres(_) => "postgres",
            BackendSettings::Mysql(_) => "mysql",
        }
    }
}

/// `[[backends]]` with `kind = "file"`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileBackendSettings {
    /// Name routes refer to.
    pub name: String,
    /// A `.json` file (array of objects) or a `.csv` file (header row).
    pub path: PathBuf,
    /// The columns that identify a row; the index key.
    pub key: Vec<String>,
}

/// `[[backends]]` with `kind = "postgres"` or `kind = "mysql"`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SqlBackendSettings {
    /// Name routes refer to.
    pub name: String,
    /// Connection URL, a secret reference (`env:DATABASE_URL`): it usually
    /// carries a password. `postgres://user:pass@host:5432/db` or
    /// `mysql://user:pass@host:3306/db`.
    pub url: SecretRef,
    /// The parameterised query (`$1`, `$2` for postgres; `?` for mysql).
    /// Its column names become the response fields.
    pub query: String,
    /// The request fields bound to the query's parameters, in order.
    pub params: Vec<String>,
    /// Per-lookup limit in milliseconds (connection wait plus query),
    /// enforced by verigate and by the database server.
    #[serde(default = "default_sql_timeout_ms")]
    pub timeout_ms: u64,
    /// Most connections held open at once.
    #[serde(default = "default_pool_size")]
    pub pool_size: u32,
}

/// `[[backends]]` with `kind = "sqlite"`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SqliteBackendSettings {
    /// Name routes refer to.
    pub name: String,
    /// `sqlite://PATH` (relative to the working directory), a secret
    /// reference like the other database URLs.
    pub url: SecretRef,
    /// The parameterised query (`?1`, `?2` or `?`).
    /// Its column names become the response fields.
    pub query: String,
    /// The request fields bound to the query's parameters, in order.
    pub params: Vec<String>,
    /// Per-lookup limit in milliseconds (connection wait plus query); a
    /// query still running then is interrupted.
    #[serde(default = "default_sql_timeout_ms")]
    pub timeout_ms: u64,
    /// Most connections held open at once.
    #[serde(default = "default_pool_size")]
    pub pool_size: u32,
    /// The table `verigate import` creates (replacing it) from a JSON or
    /// CSV file; unused when serving.
    pub table: Option<String>,
}

fn default_sql_timeout_ms() -> u64 {
    500
}

fn default_pool_size() -> u32 {
    8
}

/// `[[routes]]`, tagged by `scheme`.
#[derive(Debug, Deserialize)]
#[serde(tag = "scheme", rename_all = "kebab-case")]
pub enum RouteSettings {
    /// Contiple customer-info lookups (seed 000).
    Contiple(ContipleRouteSettings),
}

impl RouteSettings {
    /// The route's configured name (the `route` metric label).
    pub fn name(&self) -> &str {
        match self {
            RouteSettings::Contiple(r) => &r.name,
        }
    }

    /// The route's path.
    pub fn path(&self) -> &str {
        match self {
            RouteSettings::Contiple(r) => &r.path,
        }
    }

    /// The `scheme` key.
    pub fn scheme(&self) -> &'static str {
        match self {
            RouteSettings::Contiple(_) => "contiple",
        }
    }
}

/// What a Contiple signature covers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub enum SignedContent {
    /// Raw body bytes, then the timestamp string (the seed's Java example).
    #[default]
    #[serde(rename = "body+timestamp")]
    BodyTimestamp,
    /// Path and query as received, then the body, then the timestamp.
    #[serde(rename = "uri+body+timestamp")]
    UriBodyTimestamp,
}

/// `[[routes]]` with `scheme = "contiple"`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContipleRouteSettings {
    /// Route name: the `route` label of every metric.
    pub name: String,
    /// Exact path served (POST only).
    pub path: String,
    /// Security keys; any of them verifies (rotation). Secret references.
    pub keys: Vec<SecretRef>,
    /// What the signature covers.
    #[serde(default)]
    pub signed: SignedContent,
    /// Accepted clock difference, both directions, in seconds.
    #[serde(default = "default_tolerance_secs")]
    pub tolerance_secs: u64,
    /// When non-empty, only these client networks may call (CIDR or address).
    #[serde(default)]
    pub allow_ips: Vec<String>,
    /// The backend that answers lookups.
    pub backend: String,
    /// Status for `backend_error`: 500 (default) or 503 (with `Retry-After`).
    #[serde(default = "default_backend_error_status")]
    pub backend_error_status: u16,
    /// Body fields read for the lookup, required unless optional.
    pub request_fields: Vec<String>,
    /// Request fields that may be absent (looked up as null).
    #[serde(default)]
    pub optional_fields: Vec<String>,
    /// The only fields that ever leave the service.
    pub response_fields: Vec<String>,
}

fn default_tolerance_secs() -> u64 {
    300
}

fn default_backend_error_status() -> u16 {
    500
}

/// A network in CIDR notation; a bare address means that one host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct Cidr(IpNet);

impl Cidr {
    /// True when `ip` lies in this network (IPv4-mapped IPv6 counts as IPv4).
    pub fn contains(&self, ip: &IpAddr) -> bool {
        self.0.contains(&ip.to_canonical())
    }
}

impl TryFrom<String> for Cidr {
    type Error = String;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        value.parse()
    }
}

impl FromStr for Cidr {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        let value = value.trim();
        if let Ok(net) = value.parse::<IpNet>() {
            return Ok(Cidr(net.trunc()));
        }
        if let Ok(ip) = value.parse::<IpAddr>() {
            return Ok(Cidr(IpNet::from(ip.to_canonical())));
        }
        Err(format!(
            "`{value}` is not a CIDR network or IP address (e.g. \"10.0.0.0/8\")"
        ))
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A secret as written in the file: `env:NAME`, `file:PATH` or a literal.
///
/// Held as a `SecretString` from deserialization on, since a literal is the
/// secret itself.
#[derive(Debug, Clone, Deserialize)]
#[serde(transparent)]
pub struct SecretRef(SecretString);

/// Where a resolved secret came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretSource {
    /// `env:NAME`.
    Env,
    /// `file:PATH`.
    File,
    /// Written in the file itself (warned about at start).
    Literal,
}

impl SecretRef {
    /// Wraps a reference string (for the CLI's `--key`).
    pub fn new(reference: impl Into<String>) -> Self {
        Self(SecretString::from(reference.into()))
    }

    /// Reads the secret this reference names; `path` is its config key path.
    pub fn resolve(&self, path: &str) -> Result<(SecretString, SecretSource), ConfigError> {
        let reference = self.0.expose_secret();
        let (value, source) = if let Some(name) = reference.strip_prefix("env:") {
            let value = std::env::var(name).map_err(|_| {
                ConfigError::new(
                    path,
                    format!("environment variable {name} is not set (or not UTF-8)"),
                )
            })?;
            (value, SecretSource::Env)
        } else if let Some(file) = reference.strip_prefix("file:") {
            let mut value = std::fs::read_to_string(file).map_err(|e| {
                ConfigError::new(path, format!("cannot read secret file {file}: {e}"))
            })?;
            if value.ends_with('\n') {
                value.pop();
                if value.ends_with('\r') {
                    value.pop();
                }
            }
            (value, SecretSource::File)
        } else {
            (reference.to_owned(), SecretSource::Literal)
        };
        if value.is_empty() {
            return Err(ConfigError::new(path, "the secret is empty"));
        }
        Ok((SecretString::from(value), source))
    }
}

impl Settings {
    /// Loads `path` (or `verigate.toml`), then applies `VERIGATE_A__B`
    /// environment overrides. Arrays (routes, backends) are not overridable,
    /// and a `VERIGATE_` variable without `__` is never a config key.
    pub fn load(path: Option<&Path>) -> Result<Settings, ConfigError> {
        let path = path.unwrap_or(Path::new(DEFAULT_CONFIG_PATH));
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigError::new(
                path.display().to_string(),
                format!("cannot read the configuration file: {e}"),
            )
        })?;
        Self::from_toml(&text)
    }

    /// Parses a TOML document, with environment overrides applied.
    pub fn from_toml(text: &str) -> Result<Settings, ConfigError> {
        Self::from_figment(
            Figment::from(Serialized::default("replay.store", "memory"))
                .merge(Toml::string(text))
                .merge(env_overrides()),
        )
    }

    fn from_figment(figment: Figment) -> Result<Settings, ConfigError> {
        figment.extract().map_err(|e| {
            let first = e.into_iter().next();
            match first {
                Some(e) => ConfigError::new(error_path(&e.path, &e.kind), reason(&e.path, &e.kind)),
                None => ConfigError::new("(file)", "invalid configuration"),
            }
        })
    }
}

fn env_overrides() -> Env {
    Env::prefixed("VERIGATE_")
        .filter(|key| {
            let key = key.as_str();
            key.contains("__") && !key.starts_with("routes") && !key.starts_with("backends")
        })
        .split("__")
}

/// Figment's reason, except for a Redis key under the memory store, where
/// "unknown field" would hide the likelier mistake: `store` not switched.
fn reason(segments: &[String], kind: &figment::error::Kind) -> String {
    if let figment::error::Kind::UnknownField(field, _) = kind
        && segments.first().map(String::as_str) == Some("replay")
        && REDIS_ONLY_KEYS.contains(&field.as_str())
    {
        return "applies only with store = \"redis\"; the replay store is \"memory\"".into();
    }
    kind.to_string().replace('`', "\"")
}

/// The key path of an error. Inside a tagged table (a route, a backend,
/// the replay store) serde reports the table, not the key: name the key.
fn error_path(segments: &[String], kind: &figment::error::Kind) -> String {
    use figment::error::Kind;
    let mut segments = segments.to_vec();
    let key = match kind {
        Kind::UnknownField(field, _) => Some(field.to_string()),
        Kind::MissingField(field) => Some(field.to_string()),
        Kind::DuplicateField(field) => Some((*field).to_owned()),
        Kind::UnknownVariant(..) => match segments.first().map(String::as_str) {
            Some("routes") => Some("scheme".into()),
            Some("backends") => Some("kind".into()),
            Some("replay") => Some("store".into()),
            _ => None,
        },
        _ => None,
    };
    if let Some(key) = key
        && segments.last() != Some(&key)
    {
        segments.push(key);
    }
    key_path(&segments)
}

/// `["routes", "0", "backend"]` → `routes[0].backend`.
fn key_path(segments: &[String]) -> String {
    let mut out = String::new();
    for segment in segments {
        if segment.chars().all(|c| c.is_ascii_digit()) && !segment.is_empty() {
            out.push('[');
            out.push_str(segment);
            out.push(']');
        } else {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(segment);
        }
    }
    if out.is_empty() {
        out.push_str("(top level)");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
[[backends]]
name = "customers"
kind = "file"
path = "data/customers.json"
key = ["callNum"]

[[routes]]
name = "contiple"
path = "/contiple/customer"
scheme = "contiple"
keys = ["demo-key"]
backend = "customers"
request_fields = ["callNum"]
response_fields = ["userName"]
"#;

    #[test]
    fn a_minimal_file_gets_the_documented_defaults() {
        let settings = Settings::from_toml(MINIMAL).expect("minimal file parses");
        assert_eq!(settings.server.bind, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(settings.server.max_body_bytes, 65_536);
        assert!(settings.server.trusted_proxies.is_empty());
        let ReplaySettings::Memory(memory) = &settings.replay else {
            panic!("memory is the default store");
        };
        assert_eq!(memory.capacity, 1_000_000);
        let RouteSettings::Contiple(route) = &settings.routes[0];
        assert_eq!(route.tolerance_secs, 300);
        assert_eq!(route.signed, SignedContent::BodyTimestamp);
        assert_eq!(route.backend_error_status, 500);
    }

    #[test]
    fn a_redis_store_gets_its_defaults_and_tolerates_the_memory_capacity() {
        let text =
            format!("[replay]\nstore = \"redis\"\nredis_url = \"redis://127.0.0.1/0\"\n{MINIMAL}");
        let settings = Settings::from_toml(&text).unwrap();
        let ReplaySettings::Redis(redis) = &settings.replay else {
            panic!("redis store expected");
        };
        assert_eq!(redis.key_prefix, "verigate:");
        assert_eq!(redis.timeout_ms, 200);
        assert_eq!(redis.on_store_error, OnStoreError::Reject);
        assert_eq!(redis.capacity, None);
        // Left over from the memory store (the store switched from the
        // environment): kept aside for a warning, not refused.
        let settings = Settings::from_toml(
            &text.replace("store = \"redis\"", "store = \"redis\"\ncapacity = 5"),
        )
        .unwrap();
        let ReplaySettings::Redis(redis) = &settings.replay else {
            panic!("redis store expected");
        };
        assert_eq!(redis.capacity, Some(5));
        // A typo is still refused.
        let err = Settings::from_toml(
            &text.replace("store = \"redis\"", "store = \"redis\"\ncapacty = 5"),
        )
        .unwrap_err();
        assert_eq!(err.path, "replay.capacty");
    }

    #[test]
    fn a_redis_key_under_the_memory_store_names_the_missing_switch() {
        let err = Settings::from_toml(&format!(
            "[replay]\nredis_url = \"redis://127.0.0.1/0\"\n{MINIMAL}"
        ))
        .unwrap_err();
        assert_eq!(err.path, "replay.redis_url");
        assert!(err.reason.contains("store = \"redis\""), "{err}");
        // The list stays in step with the struct: each key is the Redis
        // store's own.
        let redis = "store = \"redis\"\nredis_url = \"redis://127.0.0.1/0\"";
        for (key, value) in
            REDIS_ONLY_KEYS
                .iter()
                .zip(["\"redis://127.0.0.1/1\"", "\"p:\"", "5", "\"allow\""])
        {
            let line = format!("{key} = {value}");
            let text = if *key == "redis_url" {
                format!("[replay]\nstore = \"redis\"\n{line}\n{MINIMAL}")
            } else {
                format!("[replay]\n{redis}\n{line}\n{MINIMAL}")
            };
            assert!(Settings::from_toml(&text).is_ok(), "{key}");
        }
    }

    #[test]
    fn an_unknown_key_is_refused_with_its_path() {
        let err = Settings::from_toml("[server]\nbindd = \"x\"\n").unwrap_err();
        assert_eq!(err.path, "server.bindd");
        assert!(err.reason.contains("unknown field"), "{err}");
    }

    #[test]
    fn an_unknown_scheme_is_refused() {
        let text = MINIMAL.replace("scheme = \"contiple\"", "scheme = \"nope\"");
        let err = Settings::from_toml(&text).unwrap_err();
        assert_eq!(err.path, "routes[0].scheme", "{err}");
        assert!(err.reason.contains("nope"), "{err}");
    }

    #[test]
    fn keys_inside_routes_and_backends_are_named() {
        let text = MINIMAL.replace(
            "backend = \"customers\"",
            "backend = \"customers\"\nsecret_sauce = 1",
        );
        let err = Settings::from_toml(&text).unwrap_err();
        assert_eq!(err.path, "routes[0].secret_sauce", "{err}");
        let text = MINIMAL.replace("key = [\"callNum\"]\n", "");
        let err = Settings::from_toml(&text).unwrap_err();
        assert_eq!(err.path, "backends[0].key", "{err}");
        let text = MINIMAL.replace("kind = \"file\"", "kind = \"oracle\"");
        let err = Settings::from_toml(&text).unwrap_err();
        assert_eq!(err.path, "backends[0].kind", "{err}");
    }

    #[test]
    fn a_missing_field_names_the_field() {
        let text = MINIMAL.replace("backend = \"customers\"\n", "");
        let err = Settings::from_toml(&text).unwrap_err();
        assert!(err.to_string().contains("backend"), "{err}");
    }

    #[test]
    fn a_bad_cidr_is_refused_with_its_path() {
        let text = format!("[server]\ntrusted_proxies = [\"10.0.0.0/33\"]\n{MINIMAL}");
        let err = Settings::from_toml(&text).unwrap_err();
        assert!(err.path.starts_with("server.trusted_proxies"), "{err}");
    }

    #[test]
    fn cidr_accepts_networks_and_bare_addresses() {
        let net: Cidr = "10.1.2.3/8".parse().unwrap();
        assert!(net.contains(&"10.200.0.1".parse().unwrap()));
        assert!(!net.contains(&"11.0.0.1".parse().unwrap()));
        let host: Cidr = "192.0.2.7".parse().unwrap();
        assert!(host.contains(&"::ffff:192.0.2.7".parse().unwrap()));
        assert!(!host.contains(&"192.0.2.8".parse().unwrap()));
        assert!("not-an-ip".parse::<Cidr>().is_err());
    }

    #[test]
    fn secret_references_resolve_and_refuse_empty_values() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("key");
        std::fs::write(&file, "from-file\n").unwrap();
        let (value, source) = SecretRef::new(format!("file:{}", file.display()))
            .resolve("k")
            .unwrap();
        assert_eq!(value.expose_secret(), "from-file");
        assert_eq!(source, SecretSource::File);

        let (value, source) = SecretRef::new("literal").resolve("k").unwrap();
        assert_eq!(value.expose_secret(), "literal");
        assert_eq!(source, SecretSource::Literal);

        let err = SecretRef::new("").resolve("routes[0].keys[0]").unwrap_err();
        assert_eq!(err.path, "routes[0].keys[0]");
        let err = SecretRef::new("env:VERIGATE_TEST_SURELY_UNSET_VARIABLE")
            .resolve("routes[0].keys[1]")
            .unwrap_err();
        assert!(err.reason.contains("VERIGATE_TEST_SURELY_UNSET_VARIABLE"));
    }

    #[test]
    fn key_paths_render_indices_in_brackets() {
        let segments: Vec<String> = ["routes", "3", "keys", "0"].map(String::from).to_vec();
        assert_eq!(key_path(&segments), "routes[3].keys[0]");
    }
}
