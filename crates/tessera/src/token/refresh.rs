//! Refresh-token families: single-use opaque tokens that rotate on every refresh, with a retry
//! grace that forgives a lost response and reuse detection that catches theft.
//!
//! A token's successor is not random: it is `HMAC(server key, token)`. So when a client that
//! lost the response presents the spent token again within the grace window, the successor
//! can be derived again and handed back, although the store only ever held its digest. Once the
//! successor has itself been used, or the window has passed, a spent token is theft.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use secrecy::{ExposeSecret, SecretString};

use crate::clock::{Clock, Timestamp};
use crate::crypto::{B64URL, HmacKey, random_secret, sha256};
use crate::error::Error;
use crate::ids;
use crate::settings::TokenSettings;
use crate::store::{ClientInfo, FamilyRecord, RefreshStore, RefreshTokenRecord, Rotation};

/// Length of a refresh token: base64url of 32 bytes.
const TOKEN_LEN: usize = 43;

/// A refresh token to hand to the client, with its family.
#[derive(Debug)]
pub struct IssuedRefreshToken {
    /// The token (shown once; only its digest is stored).
    pub token: SecretString,
    /// The family it belongs to.
    pub family: FamilyRecord,
    /// When this token stops being usable (its idle lifetime, capped by the family's).
    pub expires_at: Timestamp,
}

/// What presenting a refresh token led to.
#[derive(Debug)]
pub enum RefreshOutcome {
    /// The live token was exchanged for a new one.
    Rotated(IssuedRefreshToken),
    /// A token spent moments ago was presented again within the grace window while its
    /// successor is unused: the same successor is handed back.
    Retried(IssuedRefreshToken),
    /// A spent token outside the grace: the family must be revoked.
    Reused(FamilyRecord),
}

/// Creates and rotates refresh-token families.
#[derive(Debug)]
pub struct RefreshTokens {
    store: Arc<dyn RefreshStore>,
    successor_key: HmacKey,
    settings: TokenSettings,
    clock: Arc<dyn Clock>,
}

impl RefreshTokens {
    /// Families kept in `store`; successors derived with `successor_key`.
    pub(crate) fn new(
        store: Arc<dyn RefreshStore>,
        successor_key: HmacKey,
        settings: TokenSettings,
        clock: Arc<dyn Clock>,
    ) -> Self {
        RefreshTokens { store, successor_key, settings, clock }
    }

    /// Starts a family for a fresh token login.
    pub async fn start(
        &self,
        user_id: &str,
        username: &str,
        client: ClientInfo,
    ) -> Result<IssuedRefreshToken, Error> {
        let now = self.clock.now();
        let token = random_secret()?;
        let family = FamilyRecord {
            sid: ids::uuid_v7(now)?,
            user_id: user_id.to_owned(),
            username: username.to_owned(),
            created_at: now,
            last_used_at: now,
            expires_at: now.plus(self.settings.refresh_family_lifetime),
            client,
        };
        let record = RefreshTokenRecord {
            token_hash: sha256(token.as_bytes()),
            sid: family.sid.clone(),
            issued_at: now,
            spent_at: None,
        };
        self.store.create_family(&family, &record).await?;
        let expires_at = self.token_expiry(&family, now);
        Ok(IssuedRefreshToken { token: token.into(), family, expires_at })
    }

    /// Presents `token` for rotation. `admit` sees the token's family before anything changes
    /// and may refuse (throttling).
    pub async fn refresh(
        &self,
        token: &SecretString,
        admit: impl AsyncFnOnce(&FamilyRecord) -> Result<(), Error>,
    ) -> Result<RefreshOutcome, Error> {
        let token = token.expose_secret();
        if token.len() != TOKEN_LEN || B64URL.decode(token).is_err() {
            return Err(Error::TokenInvalid("malformed refresh token"));
        }
        let hash = sha256(token.as_bytes());
        let Some((record, family)) = self.store.find_refresh_token(&hash).await? else {
            return Err(Error::TokenInvalid("unknown or revoked refresh token"));
        };
        let now = self.clock.now();
        if family.expires_at <= now {
            return Err(Error::TokenExpired);
        }
        admit(&family).await?;
        let successor = B64URL.encode(self.successor_key.sign(token.as_bytes()));
        let successor_hash = sha256(successor.as_bytes());
        let spent_at = match record.spent_at {
            Some(spent_at) => spent_at,
            None => {
                if record.issued_at.plus(self.settings.refresh_ttl) <= now {
                    return Err(Error::TokenExpired);
                }
                let next = RefreshTokenRecord {
                    token_hash: successor_hash,
                    sid: family.sid.clone(),
                    issued_at: now,
                    spent_at: None,
                };
                match self.store.rotate_refresh_token(&hash, &next, now).await? {
                    Rotation::Rotated => {
                        let expires_at = self.token_expiry(&family, now);
                        let family = FamilyRecord { last_used_at: now, ..family };
                        return Ok(RefreshOutcome::Rotated(IssuedRefreshToken {
                            token: successor.into(),
                            family,
                            expires_at,
                        }));
                    }
                    // A concurrent refresh with the same token won the race a moment ago.
                    Rotation::AlreadySpent => now,
                }
            }
        };
        self.after_spent(spent_at, now, successor, family).await
    }

    /// A spent token: the grace retry if it applies, else reuse.
    async fn after_spent(
        &self,
        spent_at: Timestamp,
        now: Timestamp,
        successor: String,
        family: FamilyRecord,
    ) -> Result<RefreshOutcome, Error> {
        let grace = self.settings.refresh_reuse_grace;
        if grace > Duration::ZERO && now.since(spent_at) <= grace {
            let successor_hash = sha256(successor.as_bytes());
            if let Some((next, _)) = self.store.find_refresh_token(&successor_hash).await?
                && next.spent_at.is_none()
                && next.sid == family.sid
            {
                let expires_at = self.token_expiry(&family, next.issued_at);
                return Ok(RefreshOutcome::Retried(IssuedRefreshToken {
                    token: successor.into(),
                    family,
                    expires_at,
                }));
            }
        }
        Ok(RefreshOutcome::Reused(family))
    }

    /// Idle lifetime from `issued_at`, capped by the family's absolute deadline.
    fn token_expiry(&self, family: &FamilyRecord, issued_at: Timestamp) -> Timestamp {
        issued_at.plus(self.settings.refresh_ttl).min(family.expires_at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::store::memory::MemoryStore;

    fn setup(grace: Duration) -> (RefreshTokens, Arc<ManualClock>) {
        let clock = Arc::new(ManualClock::new(Timestamp::from_unix_seconds(1_800_000_000)));
        let settings = TokenSettings { refresh_reuse_grace: grace, ..TokenSettings::default() };
        let tokens = RefreshTokens::new(
            Arc::new(MemoryStore::default()),
            HmacKey::new(b"successor key"),
            settings,
            clock.clone(),
        );
        (tokens, clock)
    }

    async fn rotate(tokens: &RefreshTokens, token: &SecretString) -> IssuedRefreshToken {
        match tokens.refresh(token, async |_| Ok(())).await.unwrap() {
            RefreshOutcome::Rotated(next) => next,
            other => panic!("expected a rotation, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn rotation_gives_a_new_token_each_time() {
        let (tokens, clock) = setup(Duration::from_secs(10));
        let first = tokens.start("u", "alice", ClientInfo::default()).await.unwrap();
        assert_eq!(first.token.expose_secret().len(), TOKEN_LEN);
        clock.advance(Duration::from_secs(60));
        let second = rotate(&tokens, &first.token).await;
        assert_ne!(second.token.expose_secret(), first.token.expose_secret());
        assert_eq!(second.family.sid, first.family.sid);
        assert_eq!(second.family.last_used_at, clock.now());
        let third = rotate(&tokens, &second.token).await;
        assert_ne!(third.token.expose_secret(), second.token.expose_secret());
    }

    #[tokio::test]
    async fn a_retry_within_the_grace_gets_the_same_successor() {
        let (tokens, clock) = setup(Duration::from_secs(10));
        let first = tokens.start("u", "alice", ClientInfo::default()).await.unwrap();
        let second = rotate(&tokens, &first.token).await;
        clock.advance(Duration::from_secs(10));
        match tokens.refresh(&first.token, async |_| Ok(())).await.unwrap() {
            RefreshOutcome::Retried(again) => {
                assert_eq!(again.token.expose_secret(), second.token.expose_secret());
            }
            other => panic!("expected the grace retry, got {other:?}"),
        }
        // The successor still works normally afterwards.
        rotate(&tokens, &second.token).await;
    }

    #[tokio::test]
    async fn reuse_after_the_grace_is_theft() {
        let (tokens, clock) = setup(Duration::from_secs(10));
        let first = tokens.start("u", "alice", ClientInfo::default()).await.unwrap();
        rotate(&tokens, &first.token).await;
        clock.advance(Duration::from_millis(10_001));
        assert!(matches!(
            tokens.refresh(&first.token, async |_| Ok(())).await.unwrap(),
            RefreshOutcome::Reused(_)
        ));
    }

    #[tokio::test]
    async fn reuse_after_the_successor_was_used_is_theft_even_within_the_grace() {
        let (tokens, _clock) = setup(Duration::from_secs(10));
        let first = tokens.start("u", "alice", ClientInfo::default()).await.unwrap();
        let second = rotate(&tokens, &first.token).await;
        let third = rotate(&tokens, &second.token).await;
        assert!(matches!(
            tokens.refresh(&first.token, async |_| Ok(())).await.unwrap(),
            RefreshOutcome::Reused(_)
        ));
        // `second` is spent too, but its successor `third` is still unused: a retry.
        match tokens.refresh(&second.token, async |_| Ok(())).await.unwrap() {
            RefreshOutcome::Retried(again) => {
                assert_eq!(again.token.expose_secret(), third.token.expose_secret());
            }
            other => panic!("expected the grace retry, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn a_zero_grace_makes_every_second_use_theft() {
        let (tokens, _clock) = setup(Duration::ZERO);
        let first = tokens.start("u", "alice", ClientInfo::default()).await.unwrap();
        rotate(&tokens, &first.token).await;
        assert!(matches!(
            tokens.refresh(&first.token, async |_| Ok(())).await.unwrap(),
            RefreshOutcome::Reused(_)
        ));
    }

    #[tokio::test]
    async fn concurrent_refreshes_all_get_the_same_successor() {
        let (tokens, _clock) = setup(Duration::from_secs(10));
        let tokens = Arc::new(tokens);
        let first = tokens.start("u", "alice", ClientInfo::default()).await.unwrap();
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let (tokens, token) = (tokens.clone(), first.token.clone());
            tasks.push(tokio::spawn(async move {
                tokens.refresh(&token, async |_| Ok(())).await.unwrap()
            }));
        }
        let mut successors = Vec::new();
        let mut rotations = 0;
        for task in tasks {
            match task.await.unwrap() {
                RefreshOutcome::Rotated(t) => {
                    rotations += 1;
                    successors.push(t.token.expose_secret().to_owned());
                }
                RefreshOutcome::Retried(t) => successors.push(t.token.expose_secret().to_owned()),
                RefreshOutcome::Reused(_) => panic!("a concurrent refresh was taken for theft"),
            }
        }
        assert_eq!(rotations, 1);
        successors.dedup();
        assert_eq!(successors.len(), 1);
    }

    #[tokio::test]
    async fn idle_and_absolute_lifetimes_end_tokens() {
        let (tokens, clock) = setup(Duration::from_secs(10));
        let first = tokens.start("u", "alice", ClientInfo::default()).await.unwrap();
        assert_eq!(first.expires_at, clock.now().plus(Duration::from_secs(14 * 86_400)));
        clock.advance(Duration::from_secs(14 * 86_400));
        assert!(matches!(
            tokens.refresh(&first.token, async |_| Ok(())).await,
            Err(Error::TokenExpired)
        ));

        // Refreshing every 13 days keeps a family alive only until its 30-day deadline.
        let family = tokens.start("u", "alice", ClientInfo::default()).await.unwrap();
        let mut token = family.token;
        clock.advance(Duration::from_secs(13 * 86_400));
        token = rotate(&tokens, &token).await.token;
        clock.advance(Duration::from_secs(13 * 86_400));
        let last = rotate(&tokens, &token).await;
        assert_eq!(last.expires_at, family.family.expires_at, "capped by the family deadline");
        clock.advance(Duration::from_secs(4 * 86_400));
        assert!(matches!(
            tokens.refresh(&last.token, async |_| Ok(())).await,
            Err(Error::TokenExpired)
        ));
    }

    #[tokio::test]
    async fn garbage_and_unknown_tokens_are_invalid() {
        let (tokens, _clock) = setup(Duration::from_secs(10));
        for bad in ["", "short", &"a".repeat(44), &"*".repeat(43), &"A".repeat(43)] {
            let result =
                tokens.refresh(&SecretString::from(bad.to_owned()), async |_| Ok(())).await;
            assert!(matches!(result, Err(Error::TokenInvalid(_))), "{bad:?}");
        }
    }
}
