//! Replay stores remember every admitted signature for its whole window, so
//! a signed request is answered at most once. The check is one atomic
//! insert-if-absent, run only after the MAC verified (nobody can fill the
//! store with junk).

use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::{
    configuration::ReplaySettings,
    error::{ApiError, ErrorCode},
};

/// The in-process store.
pub mod memory;

/// The identity of an admitted request: a digest of the scheme and the
/// decoded MAC bytes. Not the route (the same signature on a second route
/// sharing the key is a replay) and not the header text (one MAC has one key
/// whatever its spelling).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ReplayKey([u8; 16]);

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

/// The configured store; one arm per kind.
#[derive(Debug)]
pub enum ReplayStore {
    /// `store = "memory"`.
    Memory(memory::MemoryStore),
}

impl ReplayStore {
    /// Builds the store the settings name.
    pub fn from_settings(settings: &ReplaySettings) -> Self {
        match settings {
            ReplaySettings::Memory(s) => ReplayStore::Memory(memory::MemoryStore::new(s.capacity)),
        }
    }

    /// Records `key` for `ttl`. `Ok(true)` the first time, `Ok(false)` for a
    /// replay. Of concurrent calls with one key, exactly one gets `true`.
    pub async fn first_seen(&self, key: &ReplayKey, ttl: Duration) -> Result<bool, ReplayError> {
        match self {
            ReplayStore::Memory(store) => store.first_seen(key, ttl),
        }
    }

    /// The `store` label: the kind.
    pub fn kind(&self) -> &'static str {
        match self {
            ReplayStore::Memory(_) => "memory",
        }
    }

    /// Readiness: `Ok` when the store answers.
    pub async fn check_ready(&self) -> Result<(), String> {
        match self {
            ReplayStore::Memory(_) => Ok(()),
        }
    }
}
