//! Replay stores remember every admitted signature for its whole window, so
//! a signed request is answered at most once. The check is one atomic
//! insert-if-absent, run only after the MAC verified (nobody can fill the
//! store with junk).

use std::{
    sync::Mutex,
    time::{Duration, Instant},
};

use sha2::{Digest, Sha256};

use crate::{
    configuration::{ConfigError, OnStoreError, ReplaySettings},
    error::{ApiError, ErrorCode},
    metrics::{Metrics, StoreMetrics},
};

/// The in-process store.
pub mod memory;
/// The Redis store shared by replicas.
pub mod redis;

/// The identity of an admitted request: a digest of the scheme and the
/// decoded MAC bytes. Not the route (the same signature on a second route
/// sharing the key is a replay) and not the header text (one MAC has one key
/// whatever its spelling).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ReplayKey([u8; 16]);

impl std::hash::Hash for ReplayKey {
    /// The key is a digest already: eight of its bytes are the hash.
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        let mut word = [0u8; 8];
        word.copy_from_slice(&self.0[..8]);
        state.write_u64(u64::from_le_bytes(word));
    }
}

impl ReplayKey {
    /// The key of `mac` under `scheme`.
    pub fn from_mac(scheme: &str, mac: &[u8]) -> Self {
        let digest = Sha256::new()
            .chain_update(scheme.as_bytes())
            .chain_update([0u8])
            .chain_update(mac)
            .finalize();
        let mut key = [0u8; 16];
        key.copy_from_slice(&digest[..16]);
        ReplayKey(key)
    }

    /// The 16 key bytes.
    pub fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }
}

/// Why the store could not answer.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// The store holds `capacity` live entries; admitting more would mean
    /// forgetting one before its window closed.
    #[error("the replay store is full")]
    Full,
    /// The store could not be reached or answered an error.
    #[error("the replay store is unavailable")]
    Unavailable(#[source] anyhow::Error),
}

impl From<ReplayError> for ApiError {
    fn from(e: ReplayError) -> Self {
        match e {
            ReplayError::Full => ApiError::new(ErrorCode::StoreFull, "retry later"),
            ReplayError::Unavailable(source) => {
                ApiError::internal(ErrorCode::StoreUnavailable, "retry later", source)
            }
        }
    }
}

/// The configured store kind; one arm per kind.
#[derive(Debug)]
enum StoreKind {
    Memory(memory::MemoryStore),
    Redis(Box<redis::RedisStore>),
}

/// The replay store: a kind, its metrics and what a failure does.
#[derive(Debug)]
pub struct ReplayStore {
    kind: StoreKind,
    metrics: StoreMetrics,
    on_error: OnStoreError,
    warnings: RateLimitedWarning,
}

impl ReplayStore {
    /// Builds the store the settings name. Opens no connection: Redis
    /// connects lazily, so a Redis that is down at start only shows in
    /// `/readyz`. Needs a Tokio runtime for Redis.
    pub fn from_settings(
        settings: &ReplaySettings,
        metrics: &Metrics,
    ) -> Result<Self, ConfigError> {
        let (kind, on_error) = match settings {
            ReplaySettings::Memory(s) if s.capacity == 0 => {
                return Err(ConfigError::new(
                    "replay.capacity",
                    "must be at least 1 (size it as peak requests/s × 2 × tolerance_secs)",
                ));
            }
            ReplaySettings::Memory(s) => (
                StoreKind::Memory(memory::MemoryStore::new(s.capacity)),
                OnStoreError::Reject,
            ),
            ReplaySettings::Redis(s) => (
                StoreKind::Redis(Box::new(redis::RedisStore::connect_lazily(s)?)),
                s.on_store_error,
            ),
        };
        let name = match &kind {
            StoreKind::Memory(_) => "memory",
            StoreKind::Redis(_) => "redis",
        };
        Ok(Self {
            kind,
            metrics: metrics.store(name),
            on_error,
            warnings: RateLimitedWarning::new(Duration::from_secs(10)),
        })
    }

    /// Records `key` for `ttl`. `Ok(true)` the first time, `Ok(false)` for a
    /// replay (or, on Redis, for a request signed before the store lost its
    /// data: see [`redis`]). Of concurrent calls with one key, exactly one
    /// gets `true`. `timestamp_ms` is the request's signed timestamp.
    pub async fn first_seen(
        &self,
        key: &ReplayKey,
        ttl: Duration,
        timestamp_ms: Option<i64>,
    ) -> Result<bool, ReplayError> {
        let started = Instant::now();
        let result = match &self.kind {
            StoreKind::Memory(store) => store.first_seen(key, ttl),
            StoreKind::Redis(store) => store.first_seen(key, ttl, timestamp_ms).await,
        };
        self.metrics
            .duration
            .observe(started.elapsed().as_secs_f64());
        match result {
            Err(ReplayError::Unavailable(cause)) => {
                self.metrics.errors.inc();
                match self.on_error {
                    OnStoreError::Reject => Err(ReplayError::Unavailable(cause)),
                    OnStoreError::Allow => {
                        self.metrics.fail_open.inc();
                        if self.warnings.due() {
                            tracing::warn!(
                                store = self.kind(),
                                error = %cause,
                                "the replay store failed; admitting requests WITHOUT replay \
                                 protection (on_store_error = allow)"
                            );
                        }
                        Ok(true)
                    }
                }
            }
            Err(ReplayError::Full) => {
                if self.warnings.due() {
                    tracing::warn!(
                        store = self.kind(),
                        "the replay store is full; refusing new requests (raise capacity)"
                    );
                }
                Err(ReplayError::Full)
            }
            other => other,
        }
    }

    /// The `store` label: the kind.
    pub fn kind(&self) -> &'static str {
        match &self.kind {
            StoreKind::Memory(_) => "memory",
            StoreKind::Redis(_) => "redis",
        }
    }

    /// Where the store lives, for `check-config` (never a password).
    pub fn describe(&self) -> String {
        match &self.kind {
            StoreKind::Memory(store) => format!("memory (capacity {})", store.capacity()),
            StoreKind::Redis(store) => format!("redis ({})", store.address()),
        }
    }

    /// Readiness: `Ok` when the store answers.
    pub async fn check_ready(&self) -> Result<(), String> {
        match &self.kind {
            StoreKind::Memory(_) => Ok(()),
            StoreKind::Redis(store) => store.check_ready().await,
        }
    }

    /// Writes the Redis epoch key if it is missing (best effort, at start).
    pub async fn init(&self) {
        if let StoreKind::Redis(store) = &self.kind {
            store.init_epoch().await;
        }
    }
}

/// A warning logged at most once per interval.
#[derive(Debug)]
struct RateLimitedWarning {
    interval: Duration,
    last: Mutex<Option<Instant>>,
}

impl RateLimitedWarning {
    fn new(interval: Duration) -> Self {
        Self {
            interval,
            last: Mutex::new(None),
        }
    }

    /// True when the warning should be logged now.
    fn due(&self) -> bool {
        let Ok(mut last) = self.last.lock() else {
            return true;
        };
        let now = Instant::now();
        match *last {
            Some(at) if now.duration_since(at) < self.interval => false,
            _ => {
                *last = Some(now);
                true
            }
        }
    }
}
