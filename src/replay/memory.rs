//! The in-process replay store: a sharded map of key → deadline, exact to
//! the entry. It never forgets an entry before its TTL: when `capacity`
//! entries are live, a new request is refused (503 `store_full`) instead.
//!
//! Why not moka (DESIGN §8 names it): with `max_capacity` it evicts or
//! silently drops new entries under its admission policy, which would let a
//! replay through; unbounded, its entry API (`or_insert_with`, the only
//! atomic insert-if-absent) cost about 4 µs per request here, most of the
//! memory store's time, and its expiry runs on a timer wheel of about a
//! second, so a count of live entries lags. A mutex per shard, each with a
//! min-heap of deadlines purged on every call, is exact and ten times faster.

use std::{
    cmp::Reverse,
    collections::{BinaryHeap, HashMap},
    hash::{BuildHasherDefault, Hasher},
    sync::{
        Mutex, MutexGuard,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use super::{ReplayError, ReplayKey};

/// Shards (a power of two): enough that cores rarely meet on one lock.
const SHARDS: usize = 64;

/// A bounded, exact, in-process replay store.
pub struct MemoryStore {
    shards: Box<[Mutex<Shard>]>,
    live: AtomicU64,
    capacity: u64,
    origin: Instant,
}

/// Milliseconds since the store's origin: a monotonic deadline.
type Deadline = u64;

#[derive(Default)]
struct Shard {
    deadlines: HashMap<ReplayKey, Deadline, BuildHasherDefault<DigestHasher>>,
    /// Every entry of `deadlines`, soonest first.
    expiries: BinaryHeap<Reverse<(Deadline, ReplayKey)>>,
}

impl Shard {
    /// Removes every entry whose deadline has passed; returns how many.
    fn purge(&mut self, now: Deadline) -> u64 {
        let mut removed = 0;
        while let Some(Reverse((deadline, key))) = self.expiries.peek().copied() {
            if deadline > now {
                break;
            }
            self.expiries.pop();
            if self.deadlines.get(&key) == Some(&deadline) {
                self.deadlines.remove(&key);
                removed += 1;
            }
        }
        removed
    }
}

/// Replay keys are already digests: their first bytes are a good hash.
#[derive(Default)]
struct DigestHasher(u64);

impl Hasher for DigestHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.0 = self.0.rotate_left(5) ^ u64::from_le_bytes(word);
        }
    }

    fn write_u64(&mut self, value: u64) {
        self.0 = value;
    }
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
        Self {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            live: AtomicU64::new(0),
            capacity,
            origin: Instant::now(),
        }
    }

    /// See [`super::ReplayStore::first_seen`]. A replay is detected before
    /// fullness: a full store still answers `Ok(false)` for a known key.
    pub fn first_seen(&self, key: &ReplayKey, ttl: Duration) -> Result<bool, ReplayError> {
        let now = self.now();
        let deadline = now.saturating_add(u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX));
        let mut shard = self.shard(key);
        self.release(shard.purge(now));
        // After the purge, every entry left is live.
        if shard.deadlines.contains_key(key) {
            return Ok(false);
        }
        if !self.reserve() {
            // Other shards may hold expired entries that still count.
            drop(shard);
            self.purge_all(now);
            shard = self.shard(key);
            if shard.deadlines.contains_key(key) {
                return Ok(false);
            }
            if !self.reserve() {
                return Err(ReplayError::Full);
            }
        }
        shard.deadlines.insert(*key, deadline);
        shard.expiries.push(Reverse((deadline, *key)));
        Ok(true)
    }

    /// The most live entries it holds.
    pub fn capacity(&self) -> u64 {
        self.capacity
    }

    /// Entries currently counted live (expired ones until a purge).
    pub fn live_entries(&self) -> u64 {
        self.live.load(Ordering::Acquire)
    }

    fn now(&self) -> Deadline {
        u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn shard(&self, key: &ReplayKey) -> MutexGuard<'_, Shard> {
        let index = usize::from(key.as_bytes()[15]) % SHARDS;
        // A poisoned shard still holds consistent data: every mutation
        // above completes before anything that could panic.
        self.shards[index]
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn purge_all(&self, now: Deadline) {
        for shard in self.shards.iter() {
            let mut shard = shard.lock().unwrap_or_else(|p| p.into_inner());
            self.release(shard.purge(now));
        }
    }

    fn reserve(&self) -> bool {
        self.live
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.capacity).then_some(n + 1)
            })
            .is_ok()
    }

    fn release(&self, count: u64) {
        if count > 0 {
            self.live.fetch_sub(count, Ordering::AcqRel);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::{sync::Arc, thread};

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
        assert!(
            !store.first_seen(&key(2), ttl).unwrap(),
            "replay before fullness"
        );
    }

    #[test]
    fn an_expired_entry_frees_its_slot_exactly_at_its_deadline() {
        let store = MemoryStore::new(1);
        assert!(
            store
                .first_seen(&key(1), Duration::from_millis(100))
                .unwrap()
        );
        assert!(
            store.first_seen(&key(2), Duration::from_secs(60)).is_err(),
            "full"
        );
        thread::sleep(Duration::from_millis(150));
        assert!(store.first_seen(&key(2), Duration::from_secs(60)).unwrap());
        assert!(
            store.first_seen(&key(1), Duration::from_secs(60)).is_err(),
            "full again"
        );
        assert_eq!(store.live_entries(), 1);
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
        assert_eq!(store.live_entries(), 1);
    }

    #[test]
    fn of_many_concurrent_inserts_exactly_one_wins() {
        let store = Arc::new(MemoryStore::new(1000));
        for round in 0..50 {
            let handles: Vec<_> = (0..8)
                .map(|_| {
                    let store = Arc::clone(&store);
                    thread::spawn(move || {
                        store
                            .first_seen(&key(round), Duration::from_secs(60))
                            .unwrap()
                    })
                })
                .collect();
            let wins = handles
                .into_iter()
                .map(|h| h.join().unwrap())
                .filter(|w| *w)
                .count();
            assert_eq!(wins, 1, "round {round}");
        }
        assert_eq!(store.live_entries(), 50);
    }

    #[test]
    fn capacity_is_exact_under_concurrency() {
        let store = Arc::new(MemoryStore::new(100));
        let handles: Vec<_> = (0..4u32)
            .map(|t| {
                let store = Arc::clone(&store);
                thread::spawn(move || {
                    (0..100u32)
                        .filter(|n| {
                            store
                                .first_seen(&key(t * 1000 + n), Duration::from_secs(60))
                                .is_ok()
                        })
                        .count()
                })
            })
            .collect();
        let admitted: usize = handles.into_iter().map(|h| h.join().unwrap()).sum();
        assert_eq!(admitted, 100);
        assert_eq!(store.live_entries(), 100);
    }
}
