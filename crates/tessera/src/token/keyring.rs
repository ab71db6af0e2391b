//! Signing keys over time: the [`KeyRing`] trait (where the keys are kept: the data
//! directory's [`KeyDir`](super::key_dir::KeyDir), or a table in a shared PostgreSQL database),
//! the [`KeyPolicy`] that governs them (algorithm, how long a retired key keeps verifying, how
//! often the signing key is replaced), and [`KeyInfo`], one key as an operator sees it.
//!
//! A rotation makes a new key the signer and retires the old one, which stays in the key set
//! and the JWKS until every token it signed has expired (`keep_retired` after its retirement)
//! and is then forgotten. Every process that serves tokens asks its ring now and then whether
//! anything changed ([`KeyRing::fingerprint`]) and loads the new set if so, so a rotation made
//! by another process (the `tessera keys rotate` command, another server instance) reaches it
//! without a restart.

use std::fmt;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretSlice};

use super::keys::{Algorithm, KeyEntry, KeyIndex, KeySet};
use crate::clock::Timestamp;
use crate::error::Error;

/// The message of a rotation asked for under HS256.
pub const HS256_NO_ROTATION: &str = "HS256 signs with the configured shared secret \
    (token.secret), which Tessera cannot replace: change token.secret to rotate it (tokens \
    signed with the old secret then stop verifying at once), or sign with EdDSA, ES256 or RS256";

/// The rules the keys of a ring are kept by.
pub struct KeyPolicy {
    /// The algorithm new keys are generated for; keys of another one are retired.
    pub algorithm: Algorithm,
    /// The shared secret, for HS256 only.
    pub hs256_secret: Option<SecretSlice<u8>>,
    /// How long a retired key keeps verifying: at least the access-token lifetime plus the
    /// leeway, since it may have signed a token just before it was retired.
    pub keep_retired: Duration,
    /// Replace the signing key once it is this old (`None`: only when asked). Ignored under
    /// HS256, whose key is configured.
    pub rotate_every: Option<Duration>,
}

impl fmt::Debug for KeyPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyPolicy")
            .field("algorithm", &self.algorithm)
            .field("hs256_secret", &self.hs256_secret.as_ref().map(|_| "[redacted]"))
            .field("keep_retired", &self.keep_retired)
            .field("rotate_every", &self.rotate_every)
            .finish()
    }
}

impl KeyPolicy {
    /// Keys of `algorithm` (not HS256), retired keys kept for `keep_retired`, no automatic
    /// rotation.
    pub fn new(algorithm: Algorithm, keep_retired: Duration) -> Self {
        KeyPolicy { algorithm, hs256_secret: None, keep_retired, rotate_every: None }
    }

    /// The same rules with a copy of the secret (policies are not `Clone`, so a copy of a
    /// secret is always spelled out).
    pub fn duplicate(&self) -> Self {
        KeyPolicy {
            algorithm: self.algorithm,
            hs256_secret: self
                .hs256_secret
                .as_ref()
                .map(|s| SecretSlice::from(s.expose_secret().to_vec())),
            keep_retired: self.keep_retired,
            rotate_every: self.rotate_every,
        }
    }

    /// Whether the signing key is replaced when it gets old.
    fn rotates(&self) -> bool {
        self.rotate_every.is_some() && self.algorithm != Algorithm::HS256
    }
}

/// What a [`KeyRing::sync`] does about the signing key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rotation {
    /// Replace it if the policy's `rotate_every` says it is due (what a start and the periodic
    /// upkeep do).
    IfDue,
    /// Replace it now (`tessera keys rotate`). Refused under HS256 ([`HS256_NO_ROTATION`]).
    Now,
    /// As [`IfDue`](Self::IfDue), for a process that is already running (the periodic check):
    /// if the stored signing key is of another algorithm than the configured one, another
    /// process was started with a new `token.algorithm`, and this one signs with that key
    /// instead of retiring it. The algorithm changes at a start, never in a running process:
    /// instances restarted one by one to a new algorithm would otherwise take turns retiring
    /// each other's keys.
    Follow,
}

/// Where a key is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyState {
    /// It signs new tokens (and verifies them).
    Signing,
    /// It signs nothing any more and verifies the tokens it signed until `verifies_until`.
    Retired {
        /// When the last token it may have signed has expired (leeway included).
        verifies_until: Timestamp,
    },
    /// Every token it signed has expired; it is forgotten at the next sync.
    Expired {
        /// When it stopped verifying.
        verified_until: Timestamp,
    },
}

impl KeyState {
    /// `signing`, `retired` or `expired`.
    pub fn name(self) -> &'static str {
        match self {
            KeyState::Signing => "signing",
            KeyState::Retired { .. } => "retired",
            KeyState::Expired { .. } => "expired",
        }
    }
}

/// One key of a ring, as `tessera keys list` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyInfo {
    /// The key id (RFC 7638 thumbprint), the `kid` of the tokens it signs.
    pub kid: String,
    /// Its algorithm.
    pub alg: Algorithm,
    /// When it was generated (configured, for HS256).
    pub created_at: Timestamp,
    /// When it stopped signing.
    pub retired_at: Option<Timestamp>,
    /// Its state at the time it was read.
    pub state: KeyState,
}

/// What a [`KeyRing::sync`] left in force.
#[derive(Debug)]
pub struct SyncedKeys {
    /// The keys to sign and verify with.
    pub keys: KeySet,
    /// Every key of the ring after the sync, oldest first.
    pub entries: Vec<KeyInfo>,
    /// The ring's [`fingerprint`](KeyRing::fingerprint) after the sync.
    pub fingerprint: Vec<u8>,
    /// The `kid` of a key this sync generated (a rotation, or a first start).
    pub generated: Option<String>,
    /// The `kid`s this sync retired by rotating.
    pub retired: Vec<String>,
}

impl SyncedKeys {
    /// When the signing key was created (`None` if the ring does not record it).
    pub fn signing_since(&self) -> Option<Timestamp> {
        self.entries.iter().find(|e| e.state == KeyState::Signing).map(|e| e.created_at)
    }
}

/// Where signing keys are kept, with the rules they are kept by. Changes are made under a
/// lock (a file lock, a database transaction), so two processes syncing at once never both
/// rotate nor lose each other's keys.
#[async_trait::async_trait]
pub trait KeyRing: Send + Sync + fmt::Debug {
    /// The rules.
    fn policy(&self) -> &KeyPolicy;

    /// Applies the rules at `now` (keys of another algorithm retired, keys whose tokens have
    /// all expired forgotten, the signing key replaced as `rotation` says, a key generated if
    /// none signs), stores what changed and returns the keys in force.
    async fn sync(&self, rotation: Rotation, now: Timestamp) -> Result<SyncedKeys, Error>;

    /// The keys as stored, oldest first, with their state at `now`; changes nothing.
    async fn entries(&self, now: Timestamp) -> Result<Vec<KeyInfo>, Error>;

    /// A value that changes whenever the stored keys change: cheap enough to ask every few
    /// seconds.
    async fn fingerprint(&self) -> Result<Vec<u8>, Error>;
}

/// When a sync would next change something without anyone asking: the signing key becomes due
/// for rotation, or a retired key's tokens have all expired. `None`: nothing is scheduled.
pub fn next_change(entries: &[KeyInfo], policy: &KeyPolicy) -> Option<Timestamp> {
    entries
        .iter()
        .filter_map(|entry| match entry.state {
            KeyState::Signing if policy.rotates() => {
                policy.rotate_every.map(|every| entry.created_at.plus(every))
            }
            KeyState::Signing => None,
            KeyState::Retired { verifies_until } => Some(verifies_until),
            KeyState::Expired { verified_until } => Some(verified_until),
        })
        .min()
}

/// What [`KeyIndex::apply_policy`] did.
pub(crate) struct Applied {
    /// The index changed.
    pub(crate) changed: bool,
    /// The `kid`s the rotation retired.
    pub(crate) retired: Vec<String>,
    /// The configured algorithm is in force (`false`: following a key of another algorithm,
    /// so the configured HS256 key, if any, does not sign).
    pub(crate) configured: bool,
}

impl KeyIndex {
    /// The rules of one sync before the keys are opened: those of a start
    /// ([`apply_rules`](Self::apply_rules)), then the rotation.
    pub(crate) fn apply_policy(
        &mut self,
        policy: &KeyPolicy,
        hs256_kid: Option<&str>,
        rotation: Rotation,
        now: Timestamp,
    ) -> Result<Applied, Error> {
        let stored = self.keys.iter().find(|e| e.retired_at.is_none()).map(|e| e.alg);
        let follow = match stored {
            Some(alg) if rotation == Rotation::Follow && alg != policy.algorithm => Some(alg),
            _ => None,
        };
        if let Some(alg) = follow {
            // Only the expired keys go; the signing key stays whatever its algorithm.
            let changed = self.apply_rules(alg, None, now, policy.keep_retired);
            return Ok(Applied { changed, retired: Vec::new(), configured: false });
        }
        let changed = self.apply_rules(policy.algorithm, hs256_kid, now, policy.keep_retired);
        let rotate = match rotation {
            Rotation::Now if policy.algorithm == Algorithm::HS256 => {
                return Err(Error::internal(HS256_NO_ROTATION));
            }
            Rotation::Now => true,
            Rotation::IfDue | Rotation::Follow => {
                policy.rotates() && self.rotation_due(policy.rotate_every, now)
            }
        };
        let retired = if rotate { self.retire_signing(now) } else { Vec::new() };
        Ok(Applied { changed: changed || !retired.is_empty(), retired, configured: true })
    }

    /// Whether the signing key is at least `every` old.
    pub(crate) fn rotation_due(&self, every: Option<Duration>, now: Timestamp) -> bool {
        let Some(every) = every else { return false };
        self.keys
            .iter()
            .find(|e| e.retired_at.is_none())
            .is_some_and(|e| Timestamp::from_unix_millis(e.created_at).plus(every) <= now)
    }

    /// Retires every active key (the next sync step generates the new one); returns their
    /// `kid`s.
    pub(crate) fn retire_signing(&mut self, now: Timestamp) -> Vec<String> {
        let mut retired = Vec::new();
        for entry in self.keys.iter_mut().filter(|e| e.retired_at.is_none()) {
            entry.retired_at = Some(now.unix_millis());
            retired.push(entry.kid.clone());
        }
        retired
    }

    /// The entries with their state at `now`.
    pub(crate) fn infos(&self, keep_retired: Duration, now: Timestamp) -> Vec<KeyInfo> {
        self.keys.iter().map(|entry| entry.info(keep_retired, now)).collect()
    }
}

impl KeyEntry {
    fn info(&self, keep_retired: Duration, now: Timestamp) -> KeyInfo {
        let retired_at = self.retired_at.map(Timestamp::from_unix_millis);
        let state = match retired_at {
            None => KeyState::Signing,
            Some(at) if at.plus(keep_retired) > now => {
                KeyState::Retired { verifies_until: at.plus(keep_retired) }
            }
            Some(at) => KeyState::Expired { verified_until: at.plus(keep_retired) },
        };
        KeyInfo {
            kid: self.kid.clone(),
            alg: self.alg,
            created_at: Timestamp::from_unix_millis(self.created_at),
            retired_at,
            state,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::clock::{Clock, ManualClock};
    use crate::token::key_dir::KeyDir;

    const MINUTE: Duration = Duration::from_secs(60);
    const DAY: Duration = Duration::from_secs(86_400);

    fn clock() -> Arc<ManualClock> {
        Arc::new(ManualClock::new(Timestamp::from_unix_seconds(1_800_000_000)))
    }

    fn policy(rotate_every: Option<Duration>) -> KeyPolicy {
        KeyPolicy { rotate_every, ..KeyPolicy::new(Algorithm::EdDSA, 6 * MINUTE) }
    }

    fn signing(entries: &[KeyInfo]) -> Vec<&str> {
        entries.iter().filter(|e| e.state == KeyState::Signing).map(|e| e.kid.as_str()).collect()
    }

    #[tokio::test]
    async fn rotation_is_due_when_the_signing_key_is_as_old_as_rotate_every() {
        let dir = tempfile::tempdir().unwrap();
        let clock = clock();
        let ring = KeyDir::new(dir.path(), policy(Some(30 * DAY)));
        let first = ring.sync(Rotation::IfDue, clock.now()).await.unwrap();
        let a = first.generated.clone().unwrap();
        assert_eq!(first.signing_since(), Some(clock.now()));
        assert_eq!(next_change(&first.entries, ring.policy()), Some(clock.now().plus(30 * DAY)));

        clock.advance(30 * DAY - Duration::from_millis(1));
        let early = ring.sync(Rotation::IfDue, clock.now()).await.unwrap();
        assert_eq!(early.generated, None, "not due a millisecond early");
        assert_eq!(early.keys.signing().public().kid(), a);
        assert_eq!(early.fingerprint, first.fingerprint, "nothing was written");

        clock.advance(Duration::from_millis(1));
        let rotated = ring.sync(Rotation::IfDue, clock.now()).await.unwrap();
        let b = rotated.generated.clone().unwrap();
        assert_ne!(a, b);
        assert_eq!(rotated.retired, vec![a.clone()]);
        assert_eq!(rotated.keys.signing().public().kid(), b, "the new key signs");
        assert!(rotated.keys.verifying(&a).is_some(), "the old key still verifies");
        assert!(rotated.keys.jwks_json().contains(&a) && rotated.keys.jwks_json().contains(&b));
        assert_ne!(rotated.fingerprint, first.fingerprint);
        assert_eq!(signing(&rotated.entries), [b.as_str()]);
        let old = rotated.entries.iter().find(|e| e.kid == a).unwrap();
        assert_eq!(old.retired_at, Some(clock.now()));
        assert_eq!(old.state, KeyState::Retired { verifies_until: clock.now().plus(6 * MINUTE) });
        // Next: the old key's tokens have all expired, long before the new key is due.
        assert_eq!(
            next_change(&rotated.entries, ring.policy()),
            Some(clock.now().plus(6 * MINUTE))
        );

        // Another process syncing right after finds nothing due: one rotation, not two.
        let again = KeyDir::new(dir.path(), policy(Some(30 * DAY)));
        let same = again.sync(Rotation::IfDue, clock.now()).await.unwrap();
        assert_eq!(same.generated, None);
        assert_eq!(same.keys.signing().public().kid(), b);
    }

    #[tokio::test]
    async fn a_retired_key_verifies_until_its_tokens_expired_then_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let clock = clock();
        let ring = KeyDir::new(dir.path(), policy(None));
        let a = ring.sync(Rotation::IfDue, clock.now()).await.unwrap().generated.unwrap();
        clock.advance(DAY);
        let rotated = ring.sync(Rotation::Now, clock.now()).await.unwrap();
        let b = rotated.generated.unwrap();
        assert_eq!(rotated.retired, vec![a.clone()]);

        clock.advance(6 * MINUTE - Duration::from_millis(1));
        let listed = ring.entries(clock.now()).await.unwrap();
        assert!(matches!(listed[0].state, KeyState::Retired { .. }), "{listed:?}");
        let kept = ring.sync(Rotation::IfDue, clock.now()).await.unwrap();
        assert!(kept.keys.verifying(&a).is_some());

        clock.advance(Duration::from_millis(1));
        let listed = ring.entries(clock.now()).await.unwrap();
        assert_eq!(listed[0].state, KeyState::Expired { verified_until: clock.now() });
        let dropped = ring.sync(Rotation::IfDue, clock.now()).await.unwrap();
        assert!(dropped.keys.verifying(&a).is_none(), "dropped once its tokens expired");
        assert!(!dropped.keys.jwks_json().contains(&a));
        assert_eq!(dropped.entries.len(), 1);
        assert_eq!(dropped.keys.signing().public().kid(), b);
        assert_eq!(next_change(&dropped.entries, ring.policy()), None, "no rotation configured");
        // Its private key is gone from the disk too.
        let files: Vec<String> = std::fs::read_dir(dir.path().join("keys"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(!files.iter().any(|f| f.contains(&a)), "{files:?}");
        assert!(files.iter().any(|f| f.contains(&b)), "{files:?}");
    }

    #[tokio::test]
    async fn an_authenticator_follows_its_ring_rotates_when_due_and_drops_expired_keys() {
        use crate::Authenticator;
        use crate::settings::Settings;
        use crate::store::Stores;

        let dir = tempfile::tempdir().unwrap();
        let clock = clock();
        let mut settings = Settings::new();
        settings.password.workers = 1;
        let auth = Authenticator::builder(settings, Stores::memory())
            .clock(clock.clone())
            .key_ring(Arc::new(KeyDir::new(dir.path(), policy(Some(DAY)))))
            .build()
            .await
            .unwrap();
        let a = auth.keys().signing().public().kid().to_owned();
        let gauge = |auth: &Authenticator| {
            let mut out = String::new();
            auth.render_metrics(&mut out);
            out.lines()
                .find_map(|l| l.strip_prefix("tessera_signing_key_age_seconds "))
                .map(|v| v.parse::<f64>().unwrap())
        };
        assert_eq!(gauge(&auth), Some(0.0));
        assert!(!auth.maintain_keys().await.unwrap(), "nothing changed, nothing due");

        // Another process (`tessera keys rotate`) rotates: picked up at the next call.
        clock.advance(MINUTE);
        let cli = KeyDir::new(dir.path(), policy(None));
        let b = cli.sync(Rotation::Now, clock.now()).await.unwrap().generated.unwrap();
        assert_eq!(auth.keys().signing().public().kid(), a, "not yet");
        assert!(auth.maintain_keys().await.unwrap());
        let keys = auth.keys();
        assert_eq!(keys.signing().public().kid(), b);
        assert!(keys.verifying(&a).is_some());
        assert_eq!(gauge(&auth), Some(0.0), "the new key is the age of the rotation");

        // The old key's tokens have all expired: it leaves the set without anyone asking.
        clock.advance(6 * MINUTE);
        assert!(auth.maintain_keys().await.unwrap());
        assert!(auth.keys().verifying(&a).is_none());
        assert!(!auth.jwks_json().contains(&a));
        assert_eq!(gauge(&auth), Some(360.0));

        // A day after the rotation the key is due: this process rotates it itself.
        clock.advance(DAY - 6 * MINUTE);
        assert!(auth.maintain_keys().await.unwrap());
        let c = auth.keys().signing().public().kid().to_owned();
        assert_ne!(c, b);
        assert!(auth.keys().verifying(&b).is_some());
        let entries = cli.entries(clock.now()).await.unwrap();
        assert_eq!(signing(&entries), [c.as_str()], "stored, for every other process");
    }

    #[tokio::test]
    async fn a_running_process_follows_a_new_algorithm_instead_of_retiring_it() {
        let dir = tempfile::tempdir().unwrap();
        let clock = clock();
        let running = KeyDir::new(dir.path(), policy(Some(DAY)));
        let ed = running.sync(Rotation::IfDue, clock.now()).await.unwrap().generated.unwrap();
        // Another instance restarted with token.algorithm = "ES256".
        let restarted = KeyDir::new(
            dir.path(),
            KeyPolicy { rotate_every: Some(DAY), ..KeyPolicy::new(Algorithm::ES256, 6 * MINUTE) },
        );
        let es = restarted.sync(Rotation::IfDue, clock.now()).await.unwrap().generated.unwrap();

        let followed = running.sync(Rotation::Follow, clock.now()).await.unwrap();
        assert_eq!(followed.keys.signing().public().kid(), es, "signs with the new algorithm");
        assert_eq!(followed.generated, None, "and does not retire it for its own");
        assert!(followed.keys.verifying(&ed).is_some());
        clock.advance(2 * DAY);
        let later = running.sync(Rotation::Follow, clock.now()).await.unwrap();
        assert_eq!(later.generated, None, "no rotation to its own algorithm either");
        assert!(later.keys.verifying(&ed).is_none(), "expired keys still go");

        // Its own restart switches it (and the others would follow).
        let own = running.sync(Rotation::IfDue, clock.now()).await.unwrap();
        assert_eq!(own.keys.signing().public().alg(), Algorithm::EdDSA);
        assert_eq!(own.retired, Vec::<String>::new(), "retired by the algorithm rule");
        assert!(own.keys.verifying(&es).is_some());
    }

    #[tokio::test]
    async fn hs256_keys_are_not_rotated() {
        let dir = tempfile::tempdir().unwrap();
        let clock = clock();
        let policy = KeyPolicy {
            hs256_secret: Some(SecretSlice::from(vec![5u8; 32])),
            rotate_every: Some(MINUTE),
            ..KeyPolicy::new(Algorithm::HS256, 6 * MINUTE)
        };
        let ring = KeyDir::new(dir.path(), policy);
        let first = ring.sync(Rotation::IfDue, clock.now()).await.unwrap();
        let err = ring.sync(Rotation::Now, clock.now()).await.unwrap_err();
        assert!(err.to_string().contains("token.secret"), "{err}");
        clock.advance(DAY);
        let later = ring.sync(Rotation::IfDue, clock.now()).await.unwrap();
        assert_eq!(later.keys.signing().public().kid(), first.keys.signing().public().kid());
        assert_eq!(next_change(&later.entries, ring.policy()), None);
    }

    #[test]
    fn the_policy_debug_hides_the_secret() {
        let policy = KeyPolicy {
            hs256_secret: Some(SecretSlice::from(b"super-secret-shared-key-material".to_vec())),
            ..KeyPolicy::new(Algorithm::HS256, MINUTE)
        };
        let shown = format!("{policy:?} {:?}", policy.duplicate());
        assert!(!shown.contains("super-secret"), "{shown}");
        assert!(shown.contains("[redacted]"));
    }
}
