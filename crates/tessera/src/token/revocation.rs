//! The in-memory set of revoked `sid`s that every access-token check consults.
//!
//! A `sid` stays in the set until the last access token that could carry it has expired
//! (`until`), then it is purged. The set is rebuilt from the
//! [`RevocationStore`](crate::store::RevocationStore) at start, so a restart forgets nothing.
//! Reads take a shared lock; an empty set is answered without touching the lock at all.

use std::collections::HashMap;
use std::sync::RwLock;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::clock::Timestamp;

/// Revoked `sid`s and how long each stays revoked.
#[derive(Debug, Default)]
pub struct RevocationSet {
    entries: RwLock<HashMap<String, Timestamp>>,
    len: AtomicUsize,
}

impl RevocationSet {
    /// Revokes `sid` until `until` (keeping a later deadline if there is one).
    pub fn insert(&self, sid: &str, until: Timestamp) {
        let mut entries = self.entries.write().unwrap_or_else(|e| e.into_inner());
        let entry = entries.entry(sid.to_owned()).or_insert(until);
        *entry = (*entry).max(until);
        self.len.store(entries.len(), Ordering::Release);
    }

    /// Whether tokens carrying `sid` are revoked at `now`.
    pub fn is_revoked(&self, sid: &str, now: Timestamp) -> bool {
        if self.len.load(Ordering::Acquire) == 0 {
            return false;
        }
        let entries = self.entries.read().unwrap_or_else(|e| e.into_inner());
        entries.get(sid).is_some_and(|until| *until > now)
    }

    /// Drops entries whose deadline has passed; returns how many.
    pub fn purge(&self, now: Timestamp) -> usize {
        let mut entries = self.entries.write().unwrap_or_else(|e| e.into_inner());
        let before = entries.len();
        entries.retain(|_, until| *until > now);
        self.len.store(entries.len(), Ordering::Release);
        before - entries.len()
    }

    /// How many `sid`s are revoked.
    pub fn len(&self) -> usize {
        self.len.load(Ordering::Acquire)
    }

    /// Whether nothing is revoked.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revokes_until_the_deadline_then_purges() {
        let set = RevocationSet::default();
        let t = Timestamp::from_unix_seconds(1000);
        assert!(!set.is_revoked("a", t));
        set.insert("a", t.plus(std::time::Duration::from_secs(10)));
        set.insert("a", t.plus(std::time::Duration::from_secs(5)));
        assert!(set.is_revoked("a", t.plus(std::time::Duration::from_secs(9))), "keeps the later");
        assert!(!set.is_revoked("b", t));
        assert!(!set.is_revoked("a", t.plus(std::time::Duration::from_secs(10))));
        assert_eq!(set.purge(t), 0);
        assert_eq!(set.purge(t.plus(std::time::Duration::from_secs(10))), 1);
        assert!(set.is_empty());
    }
}
