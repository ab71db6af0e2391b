//! A bounded, sharded in-memory map for hot-path caches (verified access tokens, sessions).
//!
//! Sharding keeps lock hold times short and contention low; each shard holds at most a fixed
//! number of entries, with a little headroom so that a cache sized for N entries holds N
//! uniformly spread keys. When a shard is full, entries the caller calls stale are dropped
//! first, and if that frees nothing an eighth of the shard is dropped (whichever entries the
//! map's order puts there): a cache miss costs one store read or one signature check, so a
//! crude eviction is cheaper than bookkeeping on every hit, and dropping an eighth rather than
//! everything keeps a cache that is slightly too small from missing on most requests.
//!
//! Entries are keyed by the first 128 bits of the caller's 256-bit digest: half the key
//! memory per slot (a million cached sessions take ~50 MB of table instead of ~85 MB). Keys
//! are SHA-256 digests of secrets the server issued (sessions) or 128-bit GMAC tags under a
//! per-process key (verified tokens, [`CacheKeyer`](crate::crypto::CacheKeyer)), so no one
//! can aim a 128-bit key at an entry: matching an unknown entry's prefix takes about
//! 2^128 / N guesses, and a key that matched one of an attacker's own entries would only
//! yield that attacker's own value.
//!
//! Every removal bumps a generation counter. A caller that reads the backing store on a miss
//! notes the generation first and fills the cache with
//! [`insert_if_unchanged`](ShardedCache::insert_if_unchanged): if anything was removed in
//! between (a logout racing the read), the possibly stale value is not cached.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

const SHARDS: usize = 16;

/// What a shard's map is keyed by: the digest's first 128 bits.
type Slot = u128;

fn slot(key: &[u8; 32]) -> Slot {
    let mut half = [0u8; 16];
    half.copy_from_slice(&key[..16]);
    u128::from_le_bytes(half)
}

/// Hashes keys that are already uniformly random and unpredictable, so SipHash's work is not
/// needed on the hot path: SHA-256 digests of secrets the server issued, keyed tags (see the
/// module's notes on why no one can aim a key). It takes 64 of the key's bits: bits 64–127 of
/// a cache slot (a shard is chosen by byte 0, so the low bytes are partly fixed within one),
/// bytes 8–15 of a longer key.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct RandomKeys;

impl BuildHasher for RandomKeys {
    type Hasher = RandomKeyHasher;

    fn build_hasher(&self) -> RandomKeyHasher {
        RandomKeyHasher(0)
    }
}

/// The hasher of [`RandomKeys`].
#[derive(Debug)]
pub(crate) struct RandomKeyHasher(u64);

impl Hasher for RandomKeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        match bytes.get(8..16) {
            Some(middle) => {
                let mut word = [0u8; 8];
                word.copy_from_slice(middle);
                self.0 ^= u64::from_le_bytes(word);
            }
            // Short writes (a length prefix, say) are mixed in, never relied on.
            None => {
                for &b in bytes {
                    self.0 = self.0.rotate_left(8) ^ u64::from(b);
                }
            }
        }
    }

    fn write_u128(&mut self, n: u128) {
        self.0 ^= (n >> 64) as u64;
    }
}

/// The cache. Keys are 32-byte digests, already uniformly distributed.
pub struct ShardedCache<V> {
    shards: [Mutex<HashMap<Slot, V, RandomKeys>>; SHARDS],
    shard_capacity: usize,
    /// Bumped by every removal (under the shard lock for single removals).
    generation: AtomicU64,
}

impl<V> std::fmt::Debug for ShardedCache<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Entries are credentials' digests and user data: never print them.
        f.debug_struct("ShardedCache")
            .field("shard_capacity", &self.shard_capacity)
            .finish_non_exhaustive()
    }
}

impl<V: Clone> ShardedCache<V> {
    /// A cache holding about `capacity` entries at most.
    pub fn new(capacity: usize) -> Self {
        ShardedCache {
            shards: std::array::from_fn(|_| Mutex::new(HashMap::default())),
            // ~6% headroom: shards fill unevenly (±√(N/16) keys around the mean).
            shard_capacity: (capacity / SHARDS + capacity / (SHARDS * 8)).max(1),
            generation: AtomicU64::new(0),
        }
    }

    fn shard(&self, key: &[u8; 32]) -> MutexGuard<'_, HashMap<Slot, V, RandomKeys>> {
        self.shards[usize::from(key[0]) % SHARDS].lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The value for `key`.
    pub fn get(&self, key: &[u8; 32]) -> Option<V> {
        self.shard(key).get(&slot(key)).cloned()
    }

    /// The current generation: note it before reading the backing store.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    /// Inserts `value`; if the shard is full, first drops entries for which `stale` is true.
    pub fn insert(&self, key: [u8; 32], value: V, stale: impl Fn(&V) -> bool) {
        let mut shard = self.shard(&key);
        Self::insert_into(&mut shard, self.shard_capacity, slot(&key), value, stale);
    }

    /// Inserts `value` unless something was removed since `generation` was read.
    pub fn insert_if_unchanged(
        &self,
        key: [u8; 32],
        value: V,
        generation: u64,
        stale: impl Fn(&V) -> bool,
    ) {
        let mut shard = self.shard(&key);
        if self.generation() == generation {
            Self::insert_into(&mut shard, self.shard_capacity, slot(&key), value, stale);
        }
    }

    fn insert_into(
        shard: &mut HashMap<Slot, V, RandomKeys>,
        capacity: usize,
        key: Slot,
        value: V,
        stale: impl Fn(&V) -> bool,
    ) {
        if shard.len() >= capacity && !shard.contains_key(&key) {
            shard.retain(|_, v| !stale(v));
            if shard.len() >= capacity {
                let mut seen = 0usize;
                shard.retain(|_, _| {
                    seen += 1;
                    !seen.is_multiple_of(8)
                });
            }
        }
        shard.insert(key, value);
    }

    /// Changes the value for `key` in place, if present.
    pub fn update(&self, key: &[u8; 32], change: impl FnOnce(&mut V)) {
        if let Some(value) = self.shard(key).get_mut(&slot(key)) {
            change(value);
        }
    }

    /// Removes `key`.
    pub fn remove(&self, key: &[u8; 32]) {
        let mut shard = self.shard(key);
        self.generation.fetch_add(1, Ordering::SeqCst);
        shard.remove(&slot(key));
    }

    /// Removes every entry for which `doomed` is true.
    pub fn remove_where(&self, doomed: impl Fn(&V) -> bool) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        for shard in &self.shards {
            shard.lock().unwrap_or_else(|e| e.into_inner()).retain(|_, v| !doomed(v));
        }
    }

    /// How many entries the cache holds.
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| s.lock().unwrap_or_else(|e| e.into_inner()).len()).sum()
    }

    /// Whether the cache is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u32) -> [u8; 32] {
        crate::crypto::sha256(&n.to_le_bytes())
    }

    #[test]
    fn random_keys_spread_over_the_buckets_of_one_shard() {
        // The keys one shard holds share byte 0's low bits: the hash must not rely on them.
        let in_shard: Vec<[u8; 32]> =
            (0..20_000).map(key).filter(|k| usize::from(k[0]) % SHARDS == 3).take(1024).collect();
        let buckets = |hash: &dyn Fn(&[u8; 32]) -> u64| {
            let mut seen: Vec<u64> = in_shard.iter().map(|k| hash(k) & 1023).collect();
            seen.sort_unstable();
            seen.dedup();
            seen.len()
        };
        // 1,024 keys in 1,024 buckets fill about 1 − 1/e of them.
        assert!(buckets(&|k| RandomKeys.hash_one(slot(k))) > 550);
        assert!(buckets(&|k| RandomKeys.hash_one(k)) > 550, "whole digests (pending renewals)");
    }

    #[test]
    fn stores_updates_and_removes() {
        let cache = ShardedCache::new(1024);
        cache.insert(key(1), 10u32, |_| false);
        assert_eq!(cache.get(&key(1)), Some(10));
        cache.update(&key(1), |v| *v += 1);
        assert_eq!(cache.get(&key(1)), Some(11));
        cache.remove(&key(1));
        assert_eq!(cache.get(&key(1)), None);
        cache.insert(key(2), 2, |_| false);
        cache.insert(key(3), 3, |_| false);
        cache.remove_where(|v| *v == 2);
        assert_eq!((cache.get(&key(2)), cache.get(&key(3))), (None, Some(3)));
    }

    #[test]
    fn a_fill_that_raced_a_removal_is_dropped() {
        let cache = ShardedCache::new(1024);
        let before = cache.generation();
        cache.remove(&key(9)); // a logout while the filler was reading the store
        cache.insert_if_unchanged(key(1), 1u32, before, |_| false);
        assert_eq!(cache.get(&key(1)), None);
        cache.insert_if_unchanged(key(1), 1u32, cache.generation(), |_| false);
        assert_eq!(cache.get(&key(1)), Some(1));
    }

    #[test]
    fn stays_bounded_and_evicts_stale_entries_first() {
        let cache = ShardedCache::new(SHARDS * 64);
        let stale = |v: &u32| *v >= 1_000_000;
        let old = SHARDS as u32 * 60;
        for n in 0..old {
            cache.insert(key(n), 1_000_000 + n, stale);
        }
        for n in 0..10_000 {
            cache.insert(key(100_000 + n), n, stale);
        }
        assert!(cache.len() <= SHARDS * 72, "{}", cache.len());
        assert!(cache.len() >= SHARDS * 32, "a full shard loses an eighth, not everything");
        assert!((0..old).all(|n| cache.get(&key(n)).is_none()), "the stale entries went first");
    }

    #[test]
    fn a_cache_sized_for_n_keys_holds_n_keys() {
        let cache = ShardedCache::new(100_000);
        for n in 0..100_000 {
            cache.insert(key(n), n, |_| false);
        }
        assert_eq!(cache.len(), 100_000, "no shard overflowed");
    }
}
