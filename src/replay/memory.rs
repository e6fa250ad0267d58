//! The in-process replay store (moka). moka's own `max_capacity` would evict
//! entries, or refuse new ones silently, under its admission policy; a
//! replay store must never forget an entry before its TTL. So the cache is
//! unbounded and verigate counts live entries itself: when `capacity` are
//! live, a new request is refused (503 `store_full`) instead.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use moka::{Expiry, sync::Cache};

use super::{ReplayError, ReplayKey};

/// Each entry lives exactly its own TTL (routes' windows differ).
struct OwnTtl;

impl Expiry<ReplayKey, Duration> for OwnTtl {
    fn expire_after_create(&self, _: &ReplayKey, ttl: &Duration, _: Instant) -> Option<Duration> {
        Some(*ttl)
    }

    fn expire_after_update(
        &self,
        _: &ReplayKey,
        ttl: &Duration,
        _: Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        Some(*ttl)
    }
}

/// A bounded, exact, in-process replay store.
pub struct MemoryStore {
    cache: Cache<ReplayKey, Duration>,
    live: Arc<AtomicU64>,
    capacity: u64,
}

impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryStore")
            .field("live", &self.live.load(Ordering::Relaxed))
            .field("capacity", &self.capacity)
            .finish()
    }
}

impl MemoryStore {
    /// A store that holds at most `capacity` live entries.
    pub fn new(capacity: u64) -> Self {
        let live = Arc::new(AtomicU64::new(0));
        let released = Arc::clone(&live);
        let cache = Cache::builder()
            .expire_after(OwnTtl)
            // Every removal (expiry, replacement of an expired entry) frees
            // exactly one counted slot.
            .eviction_listener(move |_, _, _| {
                released.fetch_sub(1, Ordering::AcqRel);
            })
            .build();
        Self {
            cache,
            live,
            capacity,
        }
    }

    /// See [`super::ReplayStore::first_seen`]. A replay is detected before
    /// fullness: a full store still answers `Ok(false)` for a known key.
    pub fn first_seen(&self, key: &ReplayKey, ttl: Duration) -> Result<bool, ReplayError> {
        if self.cache.contains_key(key) {
            return Ok(false);
        }
        if !self.reserve() {
            // Expired entries are only counted out when moka runs its
            // housekeeping; run it before calling the store full.
            self.cache.run_pending_tasks();
            if !self.reserve() {
                if self.cache.contains_key(key) {
                    return Ok(false);
                }
                return Err(ReplayError::Full);
            }
        }
        // `or_insert_with` coalesces concurrent inserts of one key (only one
        // caller runs the closure and sees a fresh entry); `or_insert` is a
        // get-then-insert and would admit two concurrent copies.
        let entry = self.cache.entry(*key).or_insert_with(|| ttl);
        if entry.is_fresh() {
            Ok(true)
        } else {
            self.live.fetch_sub(1, Ordering::AcqRel);
            Ok(false)
        }
    }

    /// The most live entries it holds.
    pub fn capacity(&self) -> u64 {
        self.capacity
    }

    /// Entries currently counted live.
    pub fn live_entries(&self) -> u64 {
        self.live.load(Ordering::Acquire)
    }

    fn reserve(&self) -> bool {
        self.live
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.capacity).then_some(n + 1)
            })
            .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use std::thread;

    use super::*;

    fn key(n: u32) -> ReplayKey {
        ReplayKey::from_mac("test", &n.to_be_bytes())
    }

    #[test]
    fn the_first_insert_wins_and_the_second_is_a_replay() {
        let store = MemoryStore::new(10);
        assert!(store.first_seen(&key(1), Duration::from_secs(60)).unwrap());
        assert!(!store.first_seen(&key(1), Duration::from_secs(60)).unwrap());
        assert_eq!(store.live_entries(), 1);
    }

    #[test]
    fn a_full_store_refuses_new_keys_but_still_detects_replays() {
        let store = MemoryStore::new(2);
        let ttl = Duration::from_secs(60);
        assert!(store.first_seen(&key(1), ttl).unwrap());
        assert!(store.first_seen(&key(2), ttl).unwrap());
        assert!(matches!(
            store.first_seen(&key(3), ttl),
            Err(ReplayError::Full)
        ));
        assert!(
            !store.first_seen(&key(1), ttl).unwrap(),
            "replay before fullness"
        );
    }

    #[test]
    fn expired_entries_free_their_slot() {
        let store = MemoryStore::new(1);
        assert!(
            store
                .first_seen(&key(1), Duration::from_millis(50))
                .unwrap()
        );
        assert!(
            store.first_seen(&key(2), Duration::from_secs(60)).is_err(),
            "full"
        );
        // moka's timer wheel removes expired entries at a granularity of
        // about a second; the slot must free within a few.
        let deadline = Instant::now() + Duration::from_secs(5);
        let admitted = loop {
            match store.first_seen(&key(2), Duration::from_secs(60)) {
                Ok(first) => break first,
                Err(_) if Instant::now() < deadline => thread::sleep(Duration::from_millis(50)),
                Err(e) => panic!("the expired entry never freed its slot: {e}"),
            }
        };
        assert!(admitted);
        assert!(
            store.first_seen(&key(1), Duration::from_secs(60)).is_err(),
            "full again"
        );
    }

    #[test]
    fn an_entry_is_remembered_until_its_ttl() {
        let store = MemoryStore::new(10);
        assert!(
            store
                .first_seen(&key(1), Duration::from_millis(300))
                .unwrap()
        );
        thread::sleep(Duration::from_millis(100));
        assert!(
            !store
                .first_seen(&key(1), Duration::from_millis(300))
                .unwrap()
        );
        thread::sleep(Duration::from_millis(350));
        assert!(
            store
                .first_seen(&key(1), Duration::from_millis(300))
                .unwrap()
        );
    }

    #[test]
    fn of_many_concurrent_inserts_exactly_one_wins() {
        let store = Arc::new(MemoryStore::new(1000));
        let handles: Vec<_> = (0..16)
            .map(|_| {
                let store = Arc::clone(&store);
                thread::spawn(move || store.first_seen(&key(7), Duration::from_secs(60)).unwrap())
            })
            .collect();
        let wins = handles
            .into_iter()
            .filter(|_| true)
            .map(|h| h.join().unwrap())
            .filter(|w| *w)
            .count();
        assert_eq!(wins, 1);
        assert_eq!(store.live_entries(), 1);
    }
}
