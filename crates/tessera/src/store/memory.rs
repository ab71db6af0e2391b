//! An in-memory implementation of every store trait: one mutex over plain maps. For unit tests
//! and experiments; nothing survives the process.

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;

use super::{
    AuditStore, FamilyRecord, RefreshStore, RefreshTokenRecord, RevocationStore, Rotation,
    SessionRecord, SessionStore, StoreError, UserRecord, UserStore,
};
use crate::audit::{AuditEvent, AuditFilter};
use crate::clock::Timestamp;
use crate::crypto::Digest;

/// Every kind of state in process memory.
#[derive(Default)]
pub struct MemoryStore {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    users: HashMap<String, UserRecord>,
    user_ids_by_name: HashMap<String, String>,
    sessions: HashMap<Digest, SessionRecord>,
    families: HashMap<String, FamilyRecord>,
    refresh_tokens: HashMap<Digest, RefreshTokenRecord>,
    revocations: HashMap<String, Timestamp>,
    audit: VecDeque<AuditEvent>,
}

/// The memory store keeps the newest this many audit events.
const AUDIT_CAPACITY: usize = 100_000;

impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MemoryStore")
    }
}

impl MemoryStore {
    fn lock(&self) -> Result<MutexGuard<'_, Inner>, StoreError> {
        self.inner.lock().map_err(|_| StoreError::Unavailable("memory store lock poisoned".into()))
    }
}

impl Inner {
    fn revoke(&mut self, sid: &str, until: Timestamp) {
        let entry = self.revocations.entry(sid.to_owned()).or_insert(until);
        *entry = (*entry).max(until);
    }

    fn delete_family(&mut self, sid: &str) -> Option<FamilyRecord> {
        let family = self.families.remove(sid)?;
        self.refresh_tokens.retain(|_, t| t.sid != sid);
        Some(family)
    }
}

#[async_trait]
impl UserStore for MemoryStore {
    async fn insert_user(&self, user: &UserRecord) -> Result<(), StoreError> {
        let mut inner = self.lock()?;
        if inner.user_ids_by_name.contains_key(&user.username) || inner.users.contains_key(&user.id)
        {
            return Err(StoreError::Conflict);
        }
        inner.user_ids_by_name.insert(user.username.clone(), user.id.clone());
        inner.users.insert(user.id.clone(), user.clone());
        Ok(())
    }

    async fn find_user_by_username(
        &self,
        username: &str,
    ) -> Result<Option<UserRecord>, StoreError> {
        let inner = self.lock()?;
        Ok(inner.user_ids_by_name.get(username).and_then(|id| inner.users.get(id)).cloned())
    }

    async fn find_user_by_id(&self, id: &str) -> Result<Option<UserRecord>, StoreError> {
        Ok(self.lock()?.users.get(id).cloned())
    }

    async fn update_password_hash(
        &self,
        id: &str,
        password_hash: &str,
    ) -> Result<bool, StoreError> {
        let mut inner = self.lock()?;
        Ok(match inner.users.get_mut(id) {
            Some(user) => {
                user.password_hash = password_hash.to_owned();
                true
            }
            None => false,
        })
    }

    async fn list_users(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<UserRecord>, StoreError> {
        let inner = self.lock()?;
        let mut names: Vec<&String> = inner
            .user_ids_by_name
            .keys()
            .filter(|name| after.is_none_or(|after| name.as_str() > after))
            .collect();
        names.sort();
        Ok(names
            .into_iter()
            .take(limit)
            .filter_map(|name| inner.user_ids_by_name.get(name))
            .filter_map(|id| inner.users.get(id))
            .cloned()
            .collect())
    }

    async fn set_user_disabled(
        &self,
        id: &str,
        disabled_at: Option<Timestamp>,
    ) -> Result<bool, StoreError> {
        let mut inner = self.lock()?;
        Ok(match inner.users.get_mut(id) {
            Some(user) => {
                user.disabled_at = disabled_at;
                true
            }
            None => false,
        })
    }

    async fn delete_user(&self, id: &str) -> Result<bool, StoreError> {
        let mut inner = self.lock()?;
        match inner.users.remove(id) {
            Some(user) => {
                inner.user_ids_by_name.remove(&user.username);
                Ok(true)
            }
            None => Ok(false),
        }
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.lock().map(|_| ())
    }
}

#[async_trait]
impl SessionStore for MemoryStore {
    async fn insert_session(&self, session: &SessionRecord) -> Result<(), StoreError> {
        let mut inner = self.lock()?;
        if inner.sessions.contains_key(&session.token_hash)
            || inner.sessions.values().any(|s| s.sid == session.sid)
        {
            return Err(StoreError::Conflict);
        }
        inner.sessions.insert(session.token_hash, session.clone());
        Ok(())
    }

    async fn find_session(&self, token_hash: &Digest) -> Result<Option<SessionRecord>, StoreError> {
        Ok(self.lock()?.sessions.get(token_hash).cloned())
    }

    async fn touch_sessions(&self, touches: &[(Digest, Timestamp)]) -> Result<(), StoreError> {
        let mut inner = self.lock()?;
        for (hash, seen) in touches {
            if let Some(session) = inner.sessions.get_mut(hash) {
                session.last_seen_at = session.last_seen_at.max(*seen);
            }
        }
        Ok(())
    }

    async fn delete_session(
        &self,
        token_hash: &Digest,
    ) -> Result<Option<SessionRecord>, StoreError> {
        Ok(self.lock()?.sessions.remove(token_hash))
    }

    async fn delete_user_session(
        &self,
        user_id: &str,
        sid: &str,
    ) -> Result<Option<SessionRecord>, StoreError> {
        let mut inner = self.lock()?;
        let hash = inner
            .sessions
            .values()
            .find(|s| s.sid == sid && s.user_id == user_id)
            .map(|s| s.token_hash);
        Ok(hash.and_then(|h| inner.sessions.remove(&h)))
    }

    async fn list_user_sessions(&self, user_id: &str) -> Result<Vec<SessionRecord>, StoreError> {
        let inner = self.lock()?;
        let mut list: Vec<_> =
            inner.sessions.values().filter(|s| s.user_id == user_id).cloned().collect();
        list.sort_by(|a, b| (a.created_at, &a.sid).cmp(&(b.created_at, &b.sid)));
        Ok(list)
    }

    async fn delete_user_sessions(
        &self,
        user_id: &str,
        keep_sid: Option<&str>,
    ) -> Result<Vec<Digest>, StoreError> {
        let mut inner = self.lock()?;
        let doomed: Vec<Digest> = inner
            .sessions
            .values()
            .filter(|s| s.user_id == user_id && Some(s.sid.as_str()) != keep_sid)
            .map(|s| s.token_hash)
            .collect();
        for hash in &doomed {
            inner.sessions.remove(hash);
        }
        Ok(doomed)
    }

    async fn delete_expired_sessions(
        &self,
        now: Timestamp,
        idle_cutoff: Timestamp,
    ) -> Result<u64, StoreError> {
        let mut inner = self.lock()?;
        let before = inner.sessions.len();
        inner.sessions.retain(|_, s| s.expires_at > now && s.last_seen_at > idle_cutoff);
        Ok((before - inner.sessions.len()) as u64)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.lock().map(|_| ())
    }
}

#[async_trait]
impl RefreshStore for MemoryStore {
    async fn create_family(
        &self,
        family: &FamilyRecord,
        first: &RefreshTokenRecord,
    ) -> Result<(), StoreError> {
        let mut inner = self.lock()?;
        if inner.families.contains_key(&family.sid)
            || inner.refresh_tokens.contains_key(&first.token_hash)
        {
            return Err(StoreError::Conflict);
        }
        inner.families.insert(family.sid.clone(), family.clone());
        inner.refresh_tokens.insert(first.token_hash, first.clone());
        Ok(())
    }

    async fn find_refresh_token(
        &self,
        token_hash: &Digest,
    ) -> Result<Option<(RefreshTokenRecord, FamilyRecord)>, StoreError> {
        let inner = self.lock()?;
        Ok(inner.refresh_tokens.get(token_hash).and_then(|token| {
            inner.families.get(&token.sid).map(|family| (token.clone(), family.clone()))
        }))
    }

    async fn rotate_refresh_token(
        &self,
        spent_hash: &Digest,
        successor: &RefreshTokenRecord,
        now: Timestamp,
    ) -> Result<Rotation, StoreError> {
        let mut inner = self.lock()?;
        let Some(token) = inner.refresh_tokens.get_mut(spent_hash) else {
            return Ok(Rotation::AlreadySpent);
        };
        if token.spent_at.is_some() {
            return Ok(Rotation::AlreadySpent);
        }
        token.spent_at = Some(now);
        let sid = token.sid.clone();
        inner.refresh_tokens.insert(successor.token_hash, successor.clone());
        if let Some(family) = inner.families.get_mut(&sid) {
            family.last_used_at = now;
        }
        Ok(Rotation::Rotated)
    }

    async fn find_family(&self, sid: &str) -> Result<Option<FamilyRecord>, StoreError> {
        Ok(self.lock()?.families.get(sid).cloned())
    }

    async fn delete_family(
        &self,
        sid: &str,
        user_id: Option<&str>,
        revoke_until: Timestamp,
    ) -> Result<Option<FamilyRecord>, StoreError> {
        let mut inner = self.lock()?;
        let family = match inner.families.get(sid) {
            Some(f) if user_id.is_none_or(|u| f.user_id == u) => inner.delete_family(sid),
            _ => None,
        };
        if family.is_some() || user_id.is_none() {
            inner.revoke(sid, revoke_until);
        }
        Ok(family)
    }

    async fn list_user_families(&self, user_id: &str) -> Result<Vec<FamilyRecord>, StoreError> {
        let inner = self.lock()?;
        let mut list: Vec<_> =
            inner.families.values().filter(|f| f.user_id == user_id).cloned().collect();
        list.sort_by(|a, b| (a.created_at, &a.sid).cmp(&(b.created_at, &b.sid)));
        Ok(list)
    }

    async fn delete_user_families(
        &self,
        user_id: &str,
        keep_sid: Option<&str>,
        revoke_until: Timestamp,
    ) -> Result<Vec<String>, StoreError> {
        let mut inner = self.lock()?;
        let doomed: Vec<String> = inner
            .families
            .values()
            .filter(|f| f.user_id == user_id && Some(f.sid.as_str()) != keep_sid)
            .map(|f| f.sid.clone())
            .collect();
        for sid in &doomed {
            inner.delete_family(sid);
            inner.revoke(sid, revoke_until);
        }
        Ok(doomed)
    }

    async fn delete_expired_families(
        &self,
        now: Timestamp,
        idle_cutoff: Timestamp,
    ) -> Result<u64, StoreError> {
        let mut inner = self.lock()?;
        let doomed: Vec<String> = inner
            .families
            .values()
            .filter(|f| f.expires_at <= now || f.last_used_at <= idle_cutoff)
            .map(|f| f.sid.clone())
            .collect();
        for sid in &doomed {
            inner.delete_family(sid);
        }
        Ok(doomed.len() as u64)
    }
}

#[async_trait]
impl RevocationStore for MemoryStore {
    async fn insert_revocation(&self, sid: &str, until: Timestamp) -> Result<(), StoreError> {
        self.lock()?.revoke(sid, until);
        Ok(())
    }

    async fn is_revoked(&self, sid: &str, now: Timestamp) -> Result<bool, StoreError> {
        Ok(self.lock()?.revocations.get(sid).is_some_and(|until| *until > now))
    }

    async fn active_revocations(
        &self,
        now: Timestamp,
    ) -> Result<Vec<(String, Timestamp)>, StoreError> {
        let inner = self.lock()?;
        Ok(inner
            .revocations
            .iter()
            .filter(|(_, until)| **until > now)
            .map(|(s, u)| (s.clone(), *u))
            .collect())
    }

    async fn delete_expired_revocations(&self, now: Timestamp) -> Result<u64, StoreError> {
        let mut inner = self.lock()?;
        let before = inner.revocations.len();
        inner.revocations.retain(|_, until| *until > now);
        Ok((before - inner.revocations.len()) as u64)
    }
}

#[async_trait]
impl AuditStore for MemoryStore {
    async fn append_audit(&self, event: &AuditEvent) -> Result<(), StoreError> {
        let mut inner = self.lock()?;
        if inner.audit.len() == AUDIT_CAPACITY {
            inner.audit.pop_front();
        }
        inner.audit.push_back(event.clone());
        Ok(())
    }

    async fn query_audit(&self, filter: &AuditFilter) -> Result<Vec<AuditEvent>, StoreError> {
        let inner = self.lock()?;
        // Appended in arrival order; a stable sort keeps that order among equal times.
        let mut events: Vec<AuditEvent> =
            inner.audit.iter().filter(|e| filter.matches(e)).cloned().collect();
        events.sort_by_key(|e| e.at);
        events.reverse();
        events.truncate(filter.limit as usize);
        Ok(events)
    }

    async fn delete_audit_before(&self, cutoff: Timestamp) -> Result<u64, StoreError> {
        let mut inner = self.lock()?;
        let before = inner.audit.len();
        inner.audit.retain(|e| e.at >= cutoff);
        Ok((before - inner.audit.len()) as u64)
    }
}
