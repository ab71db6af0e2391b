//! [`KeyDir`]: the [`KeyRing`] of a data directory. Under `<data_dir>/keys/`: one PKCS#8 file
//! per key (mode 0600, named by algorithm and `kid`), `keys.json`, the index (`kid`, `alg`,
//! `created_at`, `retired_at`), and `keys.lock`.
//!
//! Every change (a start, a rotation by the server or by `tessera keys rotate`, dropping an
//! expired key) is made holding an exclusive `flock` on `keys.lock`: read the index, apply the
//! rules, write a new key file, then replace `keys.json` in one rename. So two processes never
//! both rotate, never lose each other's keys, and a reader without the lock sees the old index
//! or the new one, never half of one. The fingerprint is the index's bytes: a few hundred,
//! cheap to read every few seconds. Private key files of forgotten keys are deleted.

use std::path::{Path, PathBuf};

use super::keyring::{KeyInfo, KeyPolicy, KeyRing, Rotation, SyncedKeys};
use super::keys::{KeyEntry, KeyIndex, KeySet, SigningKey, hs256_key};
use crate::clock::Timestamp;
use crate::error::Error;

/// The signing keys of a data directory.
#[derive(Debug)]
pub struct KeyDir {
    dir: PathBuf,
    policy: KeyPolicy,
}

impl KeyDir {
    /// The keys under `<data_dir>/keys`, kept by `policy`.
    pub fn new(data_dir: &Path, policy: KeyPolicy) -> Self {
        KeyDir { dir: data_dir.join("keys"), policy }
    }

    fn index_path(&self) -> PathBuf {
        self.dir.join("keys.json")
    }

    /// [`KeyRing::sync`] on the calling thread (it waits for the lock and reads and writes
    /// files).
    pub fn sync_blocking(&self, rotation: Rotation, now: Timestamp) -> Result<SyncedKeys, Error> {
        crate::fsutil::create_private_dir(&self.dir)?;
        let _lock = crate::fsutil::lock_exclusive(&self.dir.join("keys.lock"))?;
        let index_path = self.index_path();
        let stored = read(&index_path)?;
        let mut index = match &stored {
            Some(bytes) => KeyIndex::parse(bytes, &index_path)?,
            None => KeyIndex::default(),
        };
        let before = index.keys.clone();
        let hs256 = hs256_key(self.policy.algorithm, self.policy.hs256_secret.as_ref())?;
        let hs256_kid = hs256.as_ref().map(|k| k.public().kid().to_owned());
        let applied = index.apply_policy(&self.policy, hs256_kid.as_deref(), rotation, now)?;
        let (mut changed, retired) = (applied.changed, applied.retired);
        let hs256 = hs256.filter(|_| applied.configured);
        let (signing, verifying) = index.keys_in_force(hs256, |entry| {
            let path = entry.path(&self.dir);
            let pkcs8 = std::fs::read(&path).map_err(|e| {
                Error::internal(format!("reading signing key {}: {e}", path.display()))
            })?;
            SigningKey::from_pkcs8(entry.alg, &pkcs8)
        })?;
        let (signing, generated) = match signing {
            Some(key) => (key, None),
            None => {
                let (key, pkcs8) = SigningKey::generate(self.policy.algorithm)?;
                let kid = key.public().kid().to_owned();
                let entry = KeyEntry::new(kid.clone(), self.policy.algorithm, now);
                crate::fsutil::write_private_file(&entry.path(&self.dir), &pkcs8)?;
                index.keys.push(entry);
                changed = true;
                (key, Some(kid))
            }
        };
        let fingerprint = if changed {
            let json = index.encode()?;
            crate::fsutil::replace_private_file(&index_path, &json)?;
            json
        } else {
            stored.unwrap_or_default()
        };
        // The index no longer names them, so no reader opens them again.
        for gone in before.iter().filter(|old| !index.keys.iter().any(|e| e.kid == old.kid)) {
            if gone.alg == super::Algorithm::HS256 {
                continue;
            }
            let path = gone.path(&self.dir);
            match std::fs::remove_file(&path) {
                Ok(()) => tracing::info!(kid = %gone.kid, "deleted the expired signing key"),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => tracing::warn!(path = %path.display(), "deleting an expired key: {e}"),
            }
        }
        Ok(SyncedKeys {
            keys: KeySet::new(signing, verifying),
            entries: index.infos(self.policy.keep_retired, now),
            fingerprint,
            generated,
            retired,
        })
    }
}

/// The index file's bytes, `None` if there is none yet.
fn read(path: &Path) -> Result<Option<Vec<u8>>, Error> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::internal(format!("reading {}: {e}", path.display()))),
    }
}

/// Runs blocking file work off the async workers.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, Error> + Send + 'static,
) -> Result<T, Error> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| Error::internal(format!("the key file task failed: {e}")))?
}

#[async_trait::async_trait]
impl KeyRing for KeyDir {
    fn policy(&self) -> &KeyPolicy {
        &self.policy
    }

    async fn sync(&self, rotation: Rotation, now: Timestamp) -> Result<SyncedKeys, Error> {
        let ring = KeyDir { dir: self.dir.clone(), policy: self.policy.duplicate() };
        blocking(move || ring.sync_blocking(rotation, now)).await
    }

    async fn entries(&self, now: Timestamp) -> Result<Vec<KeyInfo>, Error> {
        let path = self.index_path();
        let keep = self.policy.keep_retired;
        blocking(move || {
            let index = match read(&path)? {
                Some(bytes) => KeyIndex::parse(&bytes, &path)?,
                None => KeyIndex::default(),
            };
            Ok(index.infos(keep, now))
        })
        .await
    }

    async fn fingerprint(&self) -> Result<Vec<u8>, Error> {
        let path = self.index_path();
        blocking(move || Ok(read(&path)?.unwrap_or_default())).await
    }
}
