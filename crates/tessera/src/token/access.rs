//! Access tokens: issuing signed JWTs (RFC 9068 profile) and verifying them on every request.
//!
//! The hot path: size limit → keyed-tag lookup in a cache of already verified tokens → (on a
//! miss) header, `kid`/`alg` allow-list and signature → claims (`iss`, `aud`, `exp`, `nbf`,
//! `iat` with leeway) → the in-memory revocation set. Time and revocation are checked on every
//! request, cached or not; only the signature and parsing work is saved.

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use base64::Engine as _;
use serde::{Deserialize, Deserializer, Serialize};

use super::batch::{BatchStats, SignatureBatcher};
use super::jwk::ClaimRules;
use super::jws;
use super::keys::KeySet;
use super::revocation::RevocationSet;
use crate::cache::ShardedCache;
use crate::clock::{Clock, Timestamp};
use crate::crypto::{B64URL, CacheKeyer, random_bytes};
use crate::error::Error;
use crate::settings::TokenSettings;

/// How many verified tokens are remembered.
const VERIFIED_CACHE_CAPACITY: usize = 65_536;

/// The claims of a Tessera access token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessClaims {
    /// Issuer.
    pub iss: String,
    /// Subject: the user id.
    pub sub: String,
    /// Audience (a single string when issued; a string or an array when read).
    #[serde(serialize_with = "serialize_audience", deserialize_with = "deserialize_audience")]
    pub aud: Vec<String>,
    /// Expiry, seconds since the epoch.
    pub exp: i64,
    /// Issued at, seconds since the epoch.
    pub iat: i64,
    /// Not before, seconds since the epoch.
    pub nbf: i64,
    /// Unique token id.
    pub jti: String,
    /// The refresh family or session the token belongs to.
    pub sid: String,
    /// The user's username.
    pub username: String,
}

fn serialize_audience<S: serde::Serializer>(aud: &[String], s: S) -> Result<S::Ok, S::Error> {
    match aud {
        [one] => s.serialize_str(one),
        many => many.serialize(s),
    }
}

fn deserialize_audience<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Audience {
        One(String),
        Many(Vec<String>),
    }
    Ok(match Audience::deserialize(d)? {
        Audience::One(one) => vec![one],
        Audience::Many(many) => many,
    })
}

/// A freshly issued access token.
#[derive(Clone)]
pub struct IssuedAccessToken {
    /// The JWT.
    pub token: String,
    /// Seconds until it expires.
    pub expires_in: u64,
    /// When it expires.
    pub expires_at: Timestamp,
}

impl std::fmt::Debug for IssuedAccessToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedAccessToken")
            .field("token", &"[redacted]")
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// Issues and verifies access tokens.
#[derive(Debug)]
pub struct AccessTokens {
    /// Swapped whole when the keys change (a rotation): readers load it without a lock, and
    /// a verification in flight finishes with the set it started with.
    keys: ArcSwap<KeySet>,
    settings: TokenSettings,
    clock: Arc<dyn Clock>,
    revoked: Arc<RevocationSet>,
    /// Already verified tokens by their keyed tag (`cache_keys`), so a token used many times
    /// within its few minutes of life pays for one signature check.
    cache: ShardedCache<Arc<AccessClaims>>,
    cache_keys: CacheKeyer,
    batcher: SignatureBatcher,
    /// Issuer, audience and leeway, from the settings.
    rules: ClaimRules,
}

impl AccessTokens {
    /// Access tokens signed with `keys`, checked against `revoked`.
    pub fn new(
        keys: KeySet,
        settings: TokenSettings,
        clock: Arc<dyn Clock>,
        revoked: Arc<RevocationSet>,
    ) -> Self {
        let rules = ClaimRules {
            issuer: settings.issuer.clone(),
            audience: settings.audience.clone(),
            leeway: settings.leeway,
        };
        AccessTokens {
            keys: ArcSwap::from_pointee(keys),
            settings,
            clock,
            revoked,
            cache: ShardedCache::new(VERIFIED_CACHE_CAPACITY),
            cache_keys: CacheKeyer::new(),
            batcher: SignatureBatcher::new(),
            rules,
        }
    }

    /// The key set in force (for the JWKS endpoint).
    pub fn keys(&self) -> Arc<KeySet> {
        self.keys.load_full()
    }

    /// Signs new tokens with `keys` from now on and verifies with them only: tokens already
    /// verified keep their cache entries, which end when the tokens expire.
    pub fn replace_keys(&self, keys: KeySet) {
        self.keys.store(Arc::new(keys));
    }

    /// Issues a token for `user_id`/`username` in `sid`.
    pub fn issue(
        &self,
        user_id: &str,
        username: &str,
        sid: &str,
    ) -> Result<IssuedAccessToken, Error> {
        let now = self.clock.now();
        let expires_at = now.plus(self.settings.access_ttl);
        let claims = AccessClaims {
            iss: self.settings.issuer.clone(),
            sub: user_id.to_owned(),
            aud: vec![self.settings.audience.clone()],
            exp: expires_at.unix_seconds(),
            iat: now.unix_seconds(),
            nbf: now.unix_seconds(),
            jti: B64URL.encode(random_bytes::<16>()?),
            sid: sid.to_owned(),
            username: username.to_owned(),
        };
        let payload = serde_json::to_vec(&claims)
            .map_err(|e| Error::internal(format!("encoding claims: {e}")))?;
        Ok(IssuedAccessToken {
            token: jws::sign(self.keys.load().signing(), &payload)?,
            expires_in: self.settings.access_ttl.as_secs(),
            expires_at,
        })
    }

    /// Verifies a token completely: form, signature, issuer, audience, times, revocation.
    ///
    /// A token not seen before has its Ed25519 signature checked together with the other
    /// requests in flight ([`SignatureBatcher`]).
    pub async fn verify(&self, token: &str) -> Result<Arc<AccessClaims>, Error> {
        if token.len() > jws::MAX_TOKEN_BYTES {
            return Err(Error::TokenInvalid("token larger than 8 KiB"));
        }
        let now = self.clock.now();
        // The cache's key: a keyed GMAC, a small fraction of a hash's cost over a whole JWT.
        let digest = self.cache_keys.key(token.as_bytes());
        let claims = match self.cache.get(&digest) {
            Some(claims) => claims,
            None => {
                let claims = Arc::new(self.verify_signed_in_batch(token).await?);
                // Expired entries are the first to go when the cache is full.
                let now_secs = now.unix_seconds();
                self.cache.insert(digest, Arc::clone(&claims), |c| c.exp <= now_secs);
                claims
            }
        };
        // Times and revocation are checked on every use, cached or not.
        self.rules.check_times(&claims, now)?;
        if self.revoked.is_revoked(&claims.sid, now) {
            return Err(Error::TokenInvalid("the token's session has been revoked"));
        }
        Ok(claims)
    }

    /// Verifies signature, issuer and audience but not the times or revocation: enough to
    /// prove the caller holds a token we issued, as revocation (RFC 7009) needs.
    pub fn verify_ignoring_expiry(&self, token: &str) -> Result<AccessClaims, Error> {
        self.verify_signed(token)
    }

    /// What the batcher has done (for `tessera bench` and tests).
    pub fn batch_stats(&self) -> BatchStats {
        self.batcher.stats()
    }

    async fn verify_signed_in_batch(&self, token: &str) -> Result<AccessClaims, Error> {
        // An `Arc` (one atomic increment) rather than a guard: it is held across the batch.
        let keys = self.keys.load_full();
        let signed = jws::parse(token, &keys)?;
        let valid = match signed.key.ed25519() {
            Some(key) => self.batcher.verify(key, signed.signing_input, &signed.signature).await,
            None => signed.key.verify(signed.signing_input, &signed.signature),
        };
        if !valid {
            return Err(Error::TokenInvalid("bad signature"));
        }
        self.rules.claims(&signed.payload()?)
    }

    fn verify_signed(&self, token: &str) -> Result<AccessClaims, Error> {
        self.rules.claims(&jws::verify(token, &self.keys.load())?)
    }

    /// How long after revocation a `sid` must stay in the revocation set: until every token
    /// issued before it could have expired, leeway included.
    pub fn revocation_lifetime(&self) -> Duration {
        self.settings.access_ttl + self.settings.leeway + Duration::from_secs(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::token::keys::{Algorithm, SigningKey};

    const START: i64 = 1_800_000_000;

    fn tokens_with(
        pkcs8: &[u8],
        settings: TokenSettings,
        clock: Arc<ManualClock>,
        revoked: Arc<RevocationSet>,
    ) -> AccessTokens {
        let keys = KeySet::single(SigningKey::from_pkcs8(Algorithm::EdDSA, pkcs8).unwrap());
        AccessTokens::new(keys, settings, clock, revoked)
    }

    fn setup() -> (AccessTokens, Arc<ManualClock>, Arc<RevocationSet>, Vec<u8>) {
        let clock = Arc::new(ManualClock::new(Timestamp::from_unix_seconds(START)));
        let revoked = Arc::new(RevocationSet::default());
        let (_, pkcs8) = SigningKey::generate(Algorithm::EdDSA).unwrap();
        let tokens = tokens_with(&pkcs8, TokenSettings::default(), clock.clone(), revoked.clone());
        (tokens, clock, revoked, pkcs8)
    }

    #[tokio::test]
    async fn issues_the_documented_claims() {
        let (tokens, clock, _, _) = setup();
        let issued = tokens.issue("user-1", "alice", "sid-1").unwrap();
        assert_eq!(issued.expires_in, 300);
        let claims = tokens.verify(&issued.token).await.unwrap();
        let now = clock.now().unix_seconds();
        assert_eq!(claims.sub, "user-1");
        assert_eq!(claims.username, "alice");
        assert_eq!(claims.sid, "sid-1");
        assert_eq!(claims.iss, TokenSettings::default().issuer);
        assert_eq!(claims.aud, vec!["tessera".to_owned()]);
        assert_eq!((claims.iat, claims.nbf, claims.exp), (now, now, now + 300));
        assert!(claims.jti.len() >= 22);
        let payload = issued.token.split('.').nth(1).unwrap();
        let json: serde_json::Value =
            serde_json::from_slice(&B64URL.decode(payload).unwrap()).unwrap();
        assert_eq!(json["aud"], "tessera", "a single audience is a string");
    }

    #[tokio::test]
    async fn expiry_honours_the_leeway_even_for_cached_tokens() {
        let (tokens, clock, _, _) = setup();
        let issued = tokens.issue("u", "alice", "s").unwrap();
        tokens.verify(&issued.token).await.unwrap();
        clock.advance(Duration::from_secs(300 + 29));
        assert!(tokens.verify(&issued.token).await.is_ok(), "within the 30 s leeway");
        clock.advance(Duration::from_secs(1));
        assert!(matches!(tokens.verify(&issued.token).await, Err(Error::TokenExpired)));
    }

    #[tokio::test]
    async fn tokens_from_the_future_are_refused() {
        let (tokens, clock, _, _) = setup();
        let issued = tokens.issue("u", "alice", "s").unwrap();
        clock.set(Timestamp::from_unix_seconds(START - 31));
        assert!(matches!(tokens.verify(&issued.token).await, Err(Error::TokenInvalid(_))));
        clock.set(Timestamp::from_unix_seconds(START - 29));
        assert!(tokens.verify(&issued.token).await.is_ok(), "within the leeway");
    }

    #[tokio::test]
    async fn revocation_applies_at_once_even_to_cached_tokens() {
        let (tokens, clock, revoked, _) = setup();
        let issued = tokens.issue("u", "alice", "family-1").unwrap();
        let other = tokens.issue("u", "alice", "family-2").unwrap();
        tokens.verify(&issued.token).await.unwrap();
        revoked.insert("family-1", clock.now().plus(tokens.revocation_lifetime()));
        assert!(matches!(tokens.verify(&issued.token).await, Err(Error::TokenInvalid(_))));
        assert!(tokens.verify(&other.token).await.is_ok());
    }

    #[tokio::test]
    async fn swapped_keys_sign_new_tokens_and_old_ones_verify_while_their_key_is_kept() {
        let (tokens, _, _, pkcs8) = setup();
        let old = SigningKey::from_pkcs8(Algorithm::EdDSA, &pkcs8).unwrap();
        let old_kid = old.public().kid().to_owned();
        let before = tokens.issue("u", "alice", "s").unwrap();
        let unseen = tokens.issue("u", "alice", "s2").unwrap();
        tokens.verify(&before.token).await.unwrap();

        let (new, _) = SigningKey::generate(Algorithm::EdDSA).unwrap();
        let new_kid = new.public().kid().to_owned();
        tokens.replace_keys(KeySet::new(new, vec![Arc::clone(old.public())]));
        let after = tokens.issue("u", "alice", "s").unwrap();
        let kid = |t: &str| {
            let header = B64URL.decode(t.split('.').next().unwrap()).unwrap();
            serde_json::from_slice::<serde_json::Value>(&header).unwrap()["kid"].clone()
        };
        assert_eq!(kid(&after.token), new_kid.as_str());
        assert_eq!(kid(&before.token), old_kid.as_str());
        assert!(tokens.verify(&after.token).await.is_ok());
        assert!(tokens.verify(&before.token).await.is_ok(), "cached, old key retired");
        assert!(tokens.verify(&unseen.token).await.is_ok(), "not cached, old key retired");

        // Once the old key is dropped, a token it signed that was never seen is refused.
        let (newer, _) = SigningKey::generate(Algorithm::EdDSA).unwrap();
        tokens.replace_keys(KeySet::single(newer));
        let never_seen = jws::sign(&old, br#"{"a":1}"#).unwrap();
        assert!(matches!(tokens.verify(&never_seen).await, Err(Error::TokenInvalid(_))));
    }

    #[tokio::test]
    async fn claims_must_be_a_json_object() {
        let (tokens, _, _, _) = setup();
        let issued = tokens.issue("u", "alice", "s").unwrap();
        let payload = issued.token.split('.').nth(1).unwrap();
        let claims: serde_json::Value =
            serde_json::from_slice(&B64URL.decode(payload).unwrap()).unwrap();
        let fields = ["iss", "sub", "aud", "exp", "iat", "nbf", "jti", "sid", "username"];
        let as_array: Vec<_> = fields.iter().map(|f| claims[f].clone()).collect();
        let as_array = serde_json::to_vec(&as_array).unwrap();
        let token = jws::sign(tokens.keys().signing(), &as_array).unwrap();
        assert!(matches!(tokens.verify(&token).await, Err(Error::TokenInvalid(_))));
        let spaced = [b" \n".as_slice(), &serde_json::to_vec(&claims).unwrap()].concat();
        let token = jws::sign(tokens.keys().signing(), &spaced).unwrap();
        assert!(tokens.verify(&token).await.is_ok(), "whitespace before the object is fine");
    }

    #[tokio::test]
    async fn wrong_issuer_or_audience_is_refused() {
        let (tokens, clock, revoked, pkcs8) = setup();
        let issued = tokens.issue("u", "alice", "s").unwrap();
        for settings in [
            TokenSettings { issuer: "https://elsewhere".into(), ..TokenSettings::default() },
            TokenSettings { audience: "other-app".into(), ..TokenSettings::default() },
        ] {
            let strict = tokens_with(&pkcs8, settings, clock.clone(), revoked.clone());
            assert!(matches!(strict.verify(&issued.token).await, Err(Error::TokenInvalid(_))));
        }
        let same = tokens_with(&pkcs8, TokenSettings::default(), clock, revoked);
        assert!(same.verify(&issued.token).await.is_ok(), "the same key and settings accept it");
    }
}
