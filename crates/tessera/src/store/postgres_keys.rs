//! Signing keys and the server secret in PostgreSQL, so every instance that shares the database
//! signs with the same key, serves the same JWKS and derives the same CSRF and refresh-successor
//! keys. Each private key and the secret are sealed under the configured [`KeyEncryptionKey`]
//! (AES-256-GCM, the key id or the secret's name as additional data), so the database alone
//! reveals none of them.
//!
//! The key model is the data directory's ([`KeySet::load_or_create`]): an active key of the
//! configured algorithm, keys of another algorithm retired at start and kept while they may
//! still verify a live token, HS256 configured rather than stored (only its `kid` is recorded).
//! A start reads, fixes up and, if needed, generates everything inside one transaction holding
//! an advisory lock, so instances starting together end with one active key and one secret.
//! The secret is opened first: a wrong key-encryption key fails the start before anything is
//! generated or retired.
//!
//! While instances run, [`PostgresKeyRing`] follows the same table: each one notices a
//! rotation made elsewhere by a cheap fingerprint query, and rotations and the removal of
//! expired keys take the same lock, so they happen once.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretSlice};
use sqlx::{Postgres, Row, Transaction};

use super::StoreError;
use super::postgres::{PostgresStore, db};
use crate::clock::Timestamp;
use crate::crypto::{ServerSecret, random_bytes};
use crate::error::Error;
use crate::seal::{KeyEncryptionKey, SealError};
use crate::token::keyring::{KeyInfo, KeyPolicy, KeyRing, Rotation, SyncedKeys};
use crate::token::keys::{KeyEntry, KeyIndex, hs256_key};
use crate::token::{Algorithm, KeySet, SigningKey};

/// Key of the advisory lock held while keys and the secret are loaded or created
/// (`"tessera\x01"` in ASCII; the migration lock ends in `\0`).
const KEYS_LOCK: i64 = 0x7465_7373_6572_6101;

/// The name (and additional data) of the sealed server secret.
const SERVER_SECRET: &str = "server-secret";

/// Why the shared keys could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum SealedKeysError {
    /// What the database holds does not open under this key-encryption key: it was sealed
    /// under another one (or altered). Nothing was generated or changed.
    #[error("the {what} in the database {source}")]
    WrongKey {
        /// What did not open: the server secret, or a signing key by `kid`.
        what: String,
        /// Why.
        source: SealError,
    },
    /// The database failed or holds rows this version cannot read.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A key could not be generated, sealed or used.
    #[error(transparent)]
    Key(#[from] Error),
}

impl PostgresStore {
    /// Loads the signing keys and the server secret from the database, creating what is
    /// missing, as [`KeySet::load_or_create`] and [`ServerSecret::load_or_create`] do with the
    /// data directory: a key for `alg` unless one is active, keys of other algorithms retired
    /// now and forgotten once `retired_at + keep_retired` has passed. `hs256_secret` is
    /// required for HS256. Everything new is sealed under `kek`; everything stored must open
    /// under it.
    pub async fn load_or_create_keys(
        &self,
        kek: &KeyEncryptionKey,
        alg: Algorithm,
        hs256_secret: Option<&SecretSlice<u8>>,
        now: Timestamp,
        keep_retired: Duration,
    ) -> Result<(KeySet, ServerSecret), SealedKeysError> {
        let policy = KeyPolicy {
            algorithm: alg,
            hs256_secret: hs256_secret.map(|s| SecretSlice::from(s.expose_secret().to_vec())),
            keep_retired,
            rotate_every: None,
        };
        let mut tx = self.locked_for_keys().await?;
        let secret = server_secret(&mut tx, kek, now).await?;
        let synced = signing_keys(&mut tx, kek, &policy, Rotation::IfDue, now).await?;
        tx.commit().await.map_err(db)?;
        Ok((synced.keys, secret))
    }

    /// A transaction holding the keys' advisory lock, released when it ends, whichever way.
    async fn locked_for_keys(&self) -> Result<Transaction<'static, Postgres>, StoreError> {
        let mut tx = self.write().await?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(KEYS_LOCK)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        Ok(tx)
    }
}

/// The [`KeyRing`] of a shared PostgreSQL database: the `signing_keys` table, private keys
/// sealed under the key-encryption key. A sync runs in one transaction holding an advisory
/// lock, so instances that find a rotation due at the same moment make one between them;
/// the fingerprint is one short query over the table's `kid`s and retirement times.
pub struct PostgresKeyRing {
    store: Arc<PostgresStore>,
    kek: Arc<KeyEncryptionKey>,
    policy: KeyPolicy,
}

impl std::fmt::Debug for PostgresKeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresKeyRing").field("policy", &self.policy).finish_non_exhaustive()
    }
}

impl PostgresKeyRing {
    /// The keys in `store`, sealed under `kek`, kept by `policy`.
    pub fn new(store: Arc<PostgresStore>, kek: Arc<KeyEncryptionKey>, policy: KeyPolicy) -> Self {
        PostgresKeyRing { store, kek, policy }
    }

    async fn sync_sealed(
        &self,
        rotation: Rotation,
        now: Timestamp,
    ) -> Result<SyncedKeys, SealedKeysError> {
        let mut tx = self.store.locked_for_keys().await?;
        let mut synced = signing_keys(&mut tx, &self.kek, &self.policy, rotation, now).await?;
        synced.fingerprint = fingerprint(&mut tx).await?;
        tx.commit().await.map_err(db)?;
        Ok(synced)
    }
}

#[async_trait::async_trait]
impl KeyRing for PostgresKeyRing {
    fn policy(&self) -> &KeyPolicy {
        &self.policy
    }

    async fn sync(&self, rotation: Rotation, now: Timestamp) -> Result<SyncedKeys, Error> {
        self.sync_sealed(rotation, now).await.map_err(|e| match e {
            SealedKeysError::Store(e) => Error::Store(e),
            SealedKeysError::Key(e) => e,
            wrong @ SealedKeysError::WrongKey { .. } => Error::internal(format!(
                "{wrong}; every instance must use the key-encryption key the database was \
                 first started with"
            )),
        })
    }

    async fn entries(&self, now: Timestamp) -> Result<Vec<KeyInfo>, Error> {
        let mut conn = self.store.pool().acquire().await.map_err(db)?;
        let (index, _) = read_index(&mut conn).await?;
        Ok(index.infos(self.policy.keep_retired, now))
    }

    async fn fingerprint(&self) -> Result<Vec<u8>, Error> {
        let mut conn = self.store.pool().acquire().await.map_err(db)?;
        Ok(fingerprint(&mut conn).await?)
    }
}

/// The table's `kid`s and retirement times in one string: it changes with every rotation,
/// retirement and deletion (a key's other columns never change).
async fn fingerprint(conn: &mut sqlx::PgConnection) -> Result<Vec<u8>, StoreError> {
    let text: String = sqlx::query_scalar(
        "SELECT coalesce(string_agg(kid || ':' || coalesce(retired_at::text, '-'), ',' \
         ORDER BY kid), '') FROM signing_keys",
    )
    .fetch_one(conn)
    .await
    .map_err(db)?;
    Ok(text.into_bytes())
}

/// The key index and the sealed private keys by `kid`.
async fn read_index(
    conn: &mut sqlx::PgConnection,
) -> Result<(KeyIndex, HashMap<String, Vec<u8>>), StoreError> {
    let rows = sqlx::query(
        "SELECT kid, alg, created_at, retired_at, sealed FROM signing_keys \
         ORDER BY created_at, kid",
    )
    .fetch_all(conn)
    .await
    .map_err(db)?;
    let mut index = KeyIndex::default();
    let mut sealed: HashMap<String, Vec<u8>> = HashMap::new();
    for row in &rows {
        let kid: String = row.try_get("kid").map_err(db)?;
        let alg_name: String = row.try_get("alg").map_err(db)?;
        let alg = Algorithm::parse(&alg_name).ok_or_else(|| {
            StoreError::Corrupt(format!("signing key {kid} has an unknown algorithm {alg_name}"))
        })?;
        if let Some(bytes) = row.try_get::<Option<Vec<u8>>, _>("sealed").map_err(db)? {
            sealed.insert(kid.clone(), bytes);
        }
        index.keys.push(KeyEntry {
            kid,
            alg,
            created_at: row.try_get("created_at").map_err(db)?,
            retired_at: row.try_get("retired_at").map_err(db)?,
        });
    }
    Ok((index, sealed))
}

/// Opens the sealed server secret, or creates and seals one.
async fn server_secret(
    tx: &mut Transaction<'static, Postgres>,
    kek: &KeyEncryptionKey,
    now: Timestamp,
) -> Result<ServerSecret, SealedKeysError> {
    let sealed: Option<Vec<u8>> =
        sqlx::query_scalar("SELECT sealed FROM sealed_secrets WHERE name = $1")
            .bind(SERVER_SECRET)
            .fetch_optional(&mut **tx)
            .await
            .map_err(db)?;
    if let Some(sealed) = sealed {
        let bytes = open(kek, SERVER_SECRET, &sealed, || "server secret".into())?;
        return Ok(ServerSecret::from_bytes(bytes.expose_secret())?);
    }
    let bytes = SecretSlice::from(random_bytes::<32>()?.to_vec());
    sqlx::query("INSERT INTO sealed_secrets (name, created_at, sealed) VALUES ($1, $2, $3)")
        .bind(SERVER_SECRET)
        .bind(now.unix_millis())
        .bind(seal(kek, SERVER_SECRET, bytes.expose_secret())?)
        .execute(&mut **tx)
        .await
        .map_err(db)?;
    Ok(ServerSecret::from_bytes(bytes.expose_secret())?)
}

/// Reads the key index and the sealed keys, applies the policy (the rules of a start, then
/// `rotation`), writes back what changed and generates a key if none is active. The
/// fingerprint of the result is left empty.
async fn signing_keys(
    tx: &mut Transaction<'static, Postgres>,
    kek: &KeyEncryptionKey,
    policy: &KeyPolicy,
    rotation: Rotation,
    now: Timestamp,
) -> Result<SyncedKeys, SealedKeysError> {
    let alg = policy.algorithm;
    let hs256 = hs256_key(alg, policy.hs256_secret.as_ref())?;
    let (mut index, sealed) = read_index(tx).await?;
    let before = index.keys.clone();
    let hs256_kid = hs256.as_ref().map(|key| key.public().kid().to_owned());
    let applied = index.apply_policy(policy, hs256_kid.as_deref(), rotation, now)?;
    let retired = applied.retired;
    let hs256 = hs256.filter(|_| applied.configured);
    let (signing, verifying) = index.keys_in_force(hs256, |entry| {
        let Some(bytes) = sealed.get(&entry.kid) else {
            return Err(SealedKeysError::Store(StoreError::Corrupt(format!(
                "signing key {} has no key material",
                entry.kid
            ))));
        };
        let pkcs8 =
            open(kek, &key_name(&entry.kid), bytes, || format!("signing key {}", entry.kid))?;
        Ok(SigningKey::from_pkcs8(entry.alg, pkcs8.expose_secret())?)
    })?;
    // Write back the index's changes: forgotten keys go, retirements and the HS256 entry are
    // recorded. Key material is never rewritten.
    for gone in before.iter().filter(|old| !index.keys.iter().any(|e| e.kid == old.kid)) {
        sqlx::query("DELETE FROM signing_keys WHERE kid = $1")
            .bind(&gone.kid)
            .execute(&mut **tx)
            .await
            .map_err(db)?;
    }
    for entry in index.keys.iter().filter(|entry| !before.contains(entry)) {
        sqlx::query(
            "INSERT INTO signing_keys (kid, alg, created_at, retired_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (kid) DO UPDATE SET retired_at = excluded.retired_at",
        )
        .bind(&entry.kid)
        .bind(entry.alg.name())
        .bind(entry.created_at)
        .bind(entry.retired_at)
        .execute(&mut **tx)
        .await
        .map_err(db)?;
    }
    let (signing, generated) = match signing {
        Some(key) => (key, None),
        None => {
            let (key, pkcs8) = SigningKey::generate(alg)?;
            let kid = key.public().kid();
            sqlx::query(
                "INSERT INTO signing_keys (kid, alg, created_at, retired_at, sealed) \
                 VALUES ($1, $2, $3, NULL, $4)",
            )
            .bind(kid)
            .bind(alg.name())
            .bind(now.unix_millis())
            .bind(seal(kek, &key_name(kid), &pkcs8)?)
            .execute(&mut **tx)
            .await
            .map_err(db)?;
            index.keys.push(KeyEntry::new(kid.to_owned(), alg, now));
            let kid = kid.to_owned();
            (key, Some(kid))
        }
    };
    Ok(SyncedKeys {
        keys: KeySet::new(signing, verifying),
        entries: index.infos(policy.keep_retired, now),
        fingerprint: Vec::new(),
        generated,
        retired,
    })
}

/// The name (additional data) a signing key is sealed under.
fn key_name(kid: &str) -> String {
    format!("signing-key/{kid}")
}

fn seal(kek: &KeyEncryptionKey, name: &str, plaintext: &[u8]) -> Result<Vec<u8>, Error> {
    kek.seal(name, plaintext).map_err(|e| Error::internal(format!("sealing {name}: {e}")))
}

fn open(
    kek: &KeyEncryptionKey,
    name: &str,
    sealed: &[u8],
    what: impl FnOnce() -> String,
) -> Result<SecretSlice<u8>, SealedKeysError> {
    kek.open(name, sealed).map_err(|source| SealedKeysError::WrongKey { what: what(), source })
}
