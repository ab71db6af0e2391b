//! Signing keys for access tokens: generation on first start, files in the data directory
//! (mode 0600), `kid`s derived from the public key (RFC 7638 thumbprint), the JWKS document,
//! and the set of keys a token may be verified with.
//!
//! The index of keys (`KeyIndex`: `kid`, `alg`, `created_at`, `retired_at`) and its rules
//! live here once for every place keys are kept (the data directory's
//! [`KeyDir`](super::key_dir::KeyDir), a PostgreSQL table). When the configured algorithm
//! changes, or the key is rotated ([`keyring`](super::keyring)), the old key is retired: it
//! stays in the JWKS and keeps verifying until the last token it signed has expired, then it
//! is no longer loaded.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{
    self, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _, ParsedPublicKey, RsaKeyPair,
};
use base64::Engine as _;
use secrecy::{ExposeSecret, SecretSlice};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::clock::Timestamp;
use crate::crypto::{B64URL, HmacKey, ct_eq, sha256};
use crate::error::Error;

/// A JWS signing algorithm Tessera can issue tokens with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Algorithm {
    /// Ed25519 (the default).
    EdDSA,
    /// ECDSA P-256 with SHA-256.
    ES256,
    /// RSASSA-PKCS1-v1_5 with SHA-256, 2048-bit keys.
    RS256,
    /// HMAC-SHA256 with a configured shared secret (no public key, nothing in the JWKS).
    HS256,
}

impl Algorithm {
    /// The JOSE name (`alg` header value).
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::EdDSA => "EdDSA",
            Algorithm::ES256 => "ES256",
            Algorithm::RS256 => "RS256",
            Algorithm::HS256 => "HS256",
        }
    }

    /// Parses a JOSE name, case-insensitively.
    pub fn parse(name: &str) -> Option<Self> {
        [Algorithm::EdDSA, Algorithm::ES256, Algorithm::RS256, Algorithm::HS256]
            .into_iter()
            .find(|a| a.name().eq_ignore_ascii_case(name))
    }

    fn file_stem(self) -> &'static str {
        match self {
            Algorithm::EdDSA => "ed25519",
            Algorithm::ES256 => "es256",
            Algorithm::RS256 => "rs256",
            Algorithm::HS256 => "hs256",
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The minimum HS256 secret length (RFC 7518 §3.2: at least the hash size).
pub const HS256_MIN_SECRET: usize = 32;

enum Signer {
    Ed25519(Ed25519KeyPair),
    Es256(EcdsaKeyPair),
    Rs256(RsaKeyPair),
    Hs256(Box<HmacKey>),
}

enum Verifier {
    /// Ed25519 goes through ed25519-dalek rather than aws-lc: the same single check (its
    /// `verify`: canonical `S`, cofactorless equation), plus batch verification, which the
    /// access-token path uses for the requests in flight (see [`super::batch`]).
    Ed25519(ed25519_dalek::VerifyingKey),
    Public(ParsedPublicKey),
    Hmac(Box<HmacKey>),
}

/// The public half of a key (or the HMAC key): what verification needs.
pub struct VerifyingKey {
    kid: String,
    alg: Algorithm,
    verifier: Verifier,
    /// The public JWK, `None` for HS256.
    jwk: Option<serde_json::Value>,
    /// The base64url JWS header for tokens this key signs.
    header_b64: String,
}

impl fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifyingKey").field("kid", &self.kid).field("alg", &self.alg).finish()
    }
}

impl VerifyingKey {
    /// The key id.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The algorithm this key (and only this key) is used with.
    pub fn alg(&self) -> Algorithm {
        self.alg
    }

    pub(crate) fn header_b64(&self) -> &str {
        &self.header_b64
    }

    /// The Ed25519 public key, for batch verification.
    pub(crate) fn ed25519(&self) -> Option<&ed25519_dalek::VerifyingKey> {
        match &self.verifier {
            Verifier::Ed25519(key) => Some(key),
            Verifier::Public(_) | Verifier::Hmac(_) => None,
        }
    }

    /// Checks `signature` over `message`.
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        match &self.verifier {
            Verifier::Ed25519(key) => super::batch::verify_one(key, message, signature),
            Verifier::Public(key) => key.verify_sig(message, signature).is_ok(),
            Verifier::Hmac(key) => ct_eq(&key.sign(message), signature),
        }
    }

    /// A key that only verifies: a public key published elsewhere (a JWKS, see
    /// [`jwk`](super::jwk)) under the `kid` it was published with. It never signs, so it has
    /// no JWS header and republishes no JWK.
    pub(crate) fn from_public(kid: String, alg: Algorithm, key: ParsedPublicKey) -> Self {
        let verifier = Verifier::Public(key);
        VerifyingKey { kid, alg, verifier, jwk: None, header_b64: String::new() }
    }
}

/// A private key that signs tokens.
pub struct SigningKey {
    signer: Signer,
    public: Arc<VerifyingKey>,
    rng: SystemRandom,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey").field("public", &self.public).finish_non_exhaustive()
    }
}

impl SigningKey {
    /// A new random key for `alg` (not HS256) and its PKCS#8 encoding.
    pub fn generate(alg: Algorithm) -> Result<(Self, Vec<u8>), Error> {
        let rng = SystemRandom::new();
        let failed = |_| Error::internal(format!("generating an {alg} key failed"));
        let pkcs8 = match alg {
            Algorithm::EdDSA => {
                // PKCS#8 v1: what OpenSSL and most tooling read (v2 adds the public key).
                Ed25519KeyPair::generate_pkcs8v1(&rng).map_err(failed)?.as_ref().to_vec()
            }
            Algorithm::ES256 => {
                EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
                    .map_err(failed)?
                    .as_ref()
                    .to_vec()
            }
            Algorithm::RS256 => {
                let pair = RsaKeyPair::generate(KeySize::Rsa2048).map_err(failed)?;
                pair.as_der().map_err(failed)?.as_ref().to_vec()
            }
            Algorithm::HS256 => {
                return Err(Error::internal("HS256 keys are configured, not generated"));
            }
        };
        Ok((Self::from_pkcs8(alg, &pkcs8)?, pkcs8))
    }

    /// Loads an asymmetric key from PKCS#8 DER.
    pub fn from_pkcs8(alg: Algorithm, pkcs8: &[u8]) -> Result<Self, Error> {
        let rejected = |e: aws_lc_rs::error::KeyRejected| {
            Error::internal(format!("the {alg} private key is unusable: {e}"))
        };
        let parse_failed = |_| Error::internal(format!("the {alg} public key is unusable"));
        let (signer, verifier, jwk) = match alg {
            Algorithm::EdDSA => {
                let pair = Ed25519KeyPair::from_pkcs8(pkcs8).map_err(rejected)?;
                let public = pair.public_key().as_ref().to_vec();
                let bytes =
                    <[u8; 32]>::try_from(public.as_slice()).map_err(|_| parse_failed(()))?;
                let verifier = Verifier::Ed25519(
                    ed25519_dalek::VerifyingKey::from_bytes(&bytes)
                        .map_err(|_| parse_failed(()))?,
                );
                let jwk = vec![
                    ("crv", "Ed25519".to_owned()),
                    ("kty", "OKP".to_owned()),
                    ("x", B64URL.encode(&public)),
                ];
                (Signer::Ed25519(pair), verifier, jwk)
            }
            Algorithm::ES256 => {
                let pair =
                    EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8)
                        .map_err(rejected)?;
                let point = pair.public_key().as_ref().to_vec();
                let (Some(0x04), 65) = (point.first().copied(), point.len()) else {
                    return Err(parse_failed(()));
                };
                let verifier = Verifier::Public(
                    ParsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, &point)
                        .map_err(rejected)?,
                );
                let jwk = vec![
                    ("crv", "P-256".to_owned()),
                    ("kty", "EC".to_owned()),
                    ("x", B64URL.encode(&point[1..33])),
                    ("y", B64URL.encode(&point[33..])),
                ];
                (Signer::Es256(pair), verifier, jwk)
            }
            Algorithm::RS256 => {
                let pair = RsaKeyPair::from_pkcs8(pkcs8).map_err(rejected)?;
                if pair.public_modulus_len() < 256 {
                    return Err(Error::internal("RS256 keys must have at least 2048 bits"));
                }
                let public = pair.public_key();
                let verifier = Verifier::Public(
                    ParsedPublicKey::new(&signature::RSA_PKCS1_2048_8192_SHA256, public.as_ref())
                        .map_err(rejected)?,
                );
                let jwk = vec![
                    ("e", B64URL.encode(public.exponent().big_endian_without_leading_zero())),
                    ("kty", "RSA".to_owned()),
                    ("n", B64URL.encode(public.modulus().big_endian_without_leading_zero())),
                ];
                (Signer::Rs256(pair), verifier, jwk)
            }
            Algorithm::HS256 => return Err(Error::internal("HS256 keys are not PKCS#8")),
        };
        let public = verifying_key(alg, verifier, &jwk, true);
        Ok(SigningKey { signer, public: Arc::new(public), rng: SystemRandom::new() })
    }

    /// An HS256 key from a shared secret of at least [`HS256_MIN_SECRET`] bytes.
    pub fn hs256(secret: &[u8]) -> Result<Self, Error> {
        if secret.len() < HS256_MIN_SECRET {
            return Err(Error::internal(format!(
                "the HS256 secret must be at least {HS256_MIN_SECRET} bytes"
            )));
        }
        let jwk = vec![("k", B64URL.encode(secret)), ("kty", "oct".to_owned())];
        let key = HmacKey::new(secret);
        let public =
            verifying_key(Algorithm::HS256, Verifier::Hmac(Box::new(key.clone())), &jwk, false);
        Ok(SigningKey {
            signer: Signer::Hs256(Box::new(key)),
            public: Arc::new(public),
            rng: SystemRandom::new(),
        })
    }

    /// The verifying half.
    pub fn public(&self) -> &Arc<VerifyingKey> {
        &self.public
    }

    /// Signs `message` (the JWS signing input).
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>, Error> {
        let failed = |_| Error::internal("signing failed");
        Ok(match &self.signer {
            Signer::Ed25519(pair) => pair.sign(message).as_ref().to_vec(),
            Signer::Es256(pair) => pair.sign(&self.rng, message).map_err(failed)?.as_ref().to_vec(),
            Signer::Rs256(pair) => {
                let mut out = vec![0u8; pair.public_modulus_len()];
                pair.sign(&signature::RSA_PKCS1_SHA256, &self.rng, message, &mut out)
                    .map_err(failed)?;
                out
            }
            Signer::Hs256(key) => key.sign(message).to_vec(),
        })
    }
}

/// Builds the verifying key. `members` are the JWK's required members in lexicographic order;
/// the `kid` is their RFC 7638 thumbprint.
fn verifying_key(
    alg: Algorithm,
    verifier: Verifier,
    members: &[(&str, String)],
    publish: bool,
) -> VerifyingKey {
    // RFC 7638 §3: the required members, sorted, no whitespace. Written by hand rather than
    // through a JSON map so no serde feature can change the member order. Member values are
    // base64url or fixed names, which need no escaping.
    let canonical = members
        .iter()
        .map(|(name, value)| format!("\"{name}\":\"{value}\""))
        .collect::<Vec<_>>()
        .join(",");
    let kid = B64URL.encode(sha256(format!("{{{canonical}}}").as_bytes()));
    let jwk = publish.then(|| {
        let mut jwk = serde_json::Map::new();
        for (name, value) in members {
            jwk.insert((*name).to_owned(), value.clone().into());
        }
        jwk.insert("kid".into(), kid.clone().into());
        jwk.insert("alg".into(), alg.name().into());
        jwk.insert("use".into(), "sig".into());
        serde_json::Value::Object(jwk)
    });
    let header = format!(r#"{{"alg":"{}","kid":"{kid}","typ":"at+jwt"}}"#, alg.name());
    let header_b64 = B64URL.encode(header);
    VerifyingKey { kid, alg, verifier, jwk, header_b64 }
}

/// The keys in force: the one that signs new tokens, and every key that may still verify one.
#[derive(Debug)]
pub struct KeySet {
    signing: SigningKey,
    verifying: HashMap<String, Arc<VerifyingKey>>,
    jwks: Arc<str>,
}

impl KeySet {
    /// A key set with one key that signs and verifies.
    pub fn single(signing: SigningKey) -> Self {
        Self::new(signing, Vec::new())
    }

    /// A key set that signs with `signing` and also accepts tokens from `retired` keys.
    pub fn new(signing: SigningKey, retired: Vec<Arc<VerifyingKey>>) -> Self {
        let mut verifying = HashMap::new();
        verifying.insert(signing.public.kid.clone(), Arc::clone(&signing.public));
        for key in retired {
            verifying.entry(key.kid.clone()).or_insert(key);
        }
        let mut published: Vec<&Arc<VerifyingKey>> = verifying.values().collect();
        published.sort_by(|a, b| a.kid.cmp(&b.kid));
        let keys: Vec<&serde_json::Value> =
            published.iter().filter_map(|k| k.jwk.as_ref()).collect();
        let jwks = json!({ "keys": keys }).to_string().into();
        KeySet { signing, verifying, jwks }
    }

    /// The key new tokens are signed with.
    pub fn signing(&self) -> &SigningKey {
        &self.signing
    }

    /// The verifying key with this `kid`.
    pub fn verifying(&self, kid: &str) -> Option<&Arc<VerifyingKey>> {
        self.verifying.get(kid)
    }

    /// The JWKS document (RFC 7517) of every public key that may verify a live token.
    pub fn jwks_json(&self) -> &Arc<str> {
        &self.jwks
    }

    /// Loads the key set from `<data_dir>/keys`, generating a key for `alg` if none is active,
    /// and retiring keys of other algorithms. `hs256_secret` is required for HS256.
    /// Retired keys are kept while `retired_at + keep_retired` is in the future. (A
    /// [`KeyDir`](super::key_dir::KeyDir) does the same and more: rotation, reloading.)
    pub fn load_or_create(
        data_dir: &Path,
        alg: Algorithm,
        hs256_secret: Option<&SecretSlice<u8>>,
        now: Timestamp,
        keep_retired: Duration,
    ) -> Result<Self, Error> {
        let policy = super::keyring::KeyPolicy {
            algorithm: alg,
            hs256_secret: hs256_secret.map(|s| SecretSlice::from(s.expose_secret().to_vec())),
            keep_retired,
            rotate_every: None,
        };
        let ring = super::key_dir::KeyDir::new(data_dir, policy);
        Ok(ring.sync_blocking(super::keyring::Rotation::IfDue, now)?.keys)
    }
}

/// The HS256 key of `secret` when `alg` is HS256 (which requires a secret), else `None`.
pub(crate) fn hs256_key(
    alg: Algorithm,
    secret: Option<&SecretSlice<u8>>,
) -> Result<Option<SigningKey>, Error> {
    match (alg, secret) {
        (Algorithm::HS256, Some(secret)) => Ok(Some(SigningKey::hs256(secret.expose_secret())?)),
        (Algorithm::HS256, None) => {
            Err(Error::internal("HS256 needs a configured secret (token.secret)"))
        }
        _ => Ok(None),
    }
}

/// The index of signing keys (`keys.json` in the data directory, a table in a shared store):
/// which keys exist, of which algorithm, and since when they are retired. The rules that keep
/// it are here, once, for every place keys are kept.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct KeyIndex {
    pub(crate) keys: Vec<KeyEntry>,
}

/// One key of the index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct KeyEntry {
    pub(crate) kid: String,
    pub(crate) alg: Algorithm,
    pub(crate) created_at: i64,
    pub(crate) retired_at: Option<i64>,
}

impl KeyEntry {
    pub(crate) fn new(kid: String, alg: Algorithm, now: Timestamp) -> Self {
        KeyEntry { kid, alg, created_at: now.unix_millis(), retired_at: None }
    }

    pub(crate) fn path(&self, dir: &Path) -> PathBuf {
        dir.join(format!("{}-{}.pk8", self.alg.file_stem(), self.kid))
    }
}

impl KeyIndex {
    /// Applies the rules of a start with `alg` configured: every active key of another
    /// algorithm is retired (under HS256 also an active entry for another secret), the HS256
    /// key's `hs256_kid` is recorded as active, and keys retired at least `keep_retired` ago are
    /// forgotten. Returns whether the index changed.
    pub(crate) fn apply_rules(
        &mut self,
        alg: Algorithm,
        hs256_kid: Option<&str>,
        now: Timestamp,
        keep_retired: Duration,
    ) -> bool {
        let mut changed = false;
        for entry in self.keys.iter_mut() {
            let other_secret =
                entry.alg == Algorithm::HS256 && Some(entry.kid.as_str()) != hs256_kid;
            if entry.retired_at.is_none() && (entry.alg != alg || other_secret) {
                entry.retired_at = Some(now.unix_millis());
                changed = true;
            }
        }
        if let Some(kid) = hs256_kid {
            // The HS256 key is not stored; its kid is, so switching away retires it too. A
            // secret configured again takes its old entry back instead of a second one.
            match self.keys.iter_mut().find(|e| e.kid == kid) {
                Some(entry) if entry.retired_at.is_none() => {}
                Some(entry) => {
                    entry.retired_at = None;
                    changed = true;
                }
                None => {
                    self.keys.push(KeyEntry::new(kid.to_owned(), Algorithm::HS256, now));
                    changed = true;
                }
            }
        }
        let before = self.keys.len();
        self.keys.retain(|entry| {
            entry
                .retired_at
                .is_none_or(|at| Timestamp::from_unix_millis(at).plus(keep_retired) > now)
        });
        changed || self.keys.len() != before
    }

    /// The keys in force after [`apply_rules`](Self::apply_rules): the signing key (`hs256`
    /// under HS256, else the first active key, `None` if there is none yet) and every other
    /// key that still verifies. `open` loads an entry's private key from wherever it is kept.
    /// A retired HS256 entry verifies nothing: its secret is not kept anywhere.
    pub(crate) fn keys_in_force<E: From<Error>>(
        &self,
        hs256: Option<SigningKey>,
        mut open: impl FnMut(&KeyEntry) -> Result<SigningKey, E>,
    ) -> Result<(Option<SigningKey>, Vec<Arc<VerifyingKey>>), E> {
        let mut signing = hs256;
        let mut retired = Vec::new();
        for entry in self.keys.iter().filter(|e| e.alg != Algorithm::HS256) {
            let key = open(entry)?;
            if key.public.kid != entry.kid {
                return Err(E::from(Error::internal(format!(
                    "the key stored as {} is another key ({})",
                    entry.kid, key.public.kid
                ))));
            }
            if entry.retired_at.is_none() && signing.is_none() {
                signing = Some(key);
            } else {
                retired.push(Arc::clone(&key.public));
            }
        }
        Ok((signing, retired))
    }

    pub(crate) fn parse(bytes: &[u8], path: &Path) -> Result<Self, Error> {
        serde_json::from_slice(bytes)
            .map_err(|e| Error::internal(format!("{} is not a key index: {e}", path.display())))
    }

    pub(crate) fn encode(&self) -> Result<Vec<u8>, Error> {
        serde_json::to_vec_pretty(self)
            .map_err(|e| Error::internal(format!("encoding the key index: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: Duration = Duration::from_secs(3600);

    #[test]
    fn thumbprint_matches_rfc_7638_and_rfc_8037_examples() {
        // RFC 8037 appendix A.3: the thumbprint of the Ed25519 key of A.2.
        let members = [
            ("crv", "Ed25519".to_owned()),
            ("kty", "OKP".to_owned()),
            ("x", "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo".to_owned()),
        ];
        let key = verifying_key(
            Algorithm::EdDSA,
            Verifier::Hmac(Box::new(HmacKey::new(b"x"))),
            &members,
            true,
        );
        assert_eq!(key.kid, "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k");
        // RFC 7638 §3.1: the RSA example.
        let members = [
            ("e", "AQAB".to_owned()),
            ("kty", "RSA".to_owned()),
            ("n", "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw".to_owned()),
        ];
        let key = verifying_key(
            Algorithm::RS256,
            Verifier::Hmac(Box::new(HmacKey::new(b"x"))),
            &members,
            true,
        );
        assert_eq!(key.kid, "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs");
    }

    #[test]
    fn every_algorithm_signs_and_verifies_its_own_signatures_only() {
        let mut keys = Vec::new();
        for alg in [Algorithm::EdDSA, Algorithm::ES256, Algorithm::RS256] {
            let (key, pkcs8) = SigningKey::generate(alg).unwrap();
            // PKCS#8 v1 (version 0) for every algorithm: OpenSSL and friends can read the files.
            let header_len =
                if pkcs8[1] & 0x80 == 0 { 2 } else { 2 + usize::from(pkcs8[1] & 0x7f) };
            assert_eq!(&pkcs8[header_len..header_len + 3], [0x02, 0x01, 0x00], "{alg}");
            let reloaded = SigningKey::from_pkcs8(alg, &pkcs8).unwrap();
            assert_eq!(key.public.kid, reloaded.public.kid, "kid is stable across reloads");
            keys.push(key);
        }
        keys.push(SigningKey::hs256(&[7u8; 32]).unwrap());
        for key in &keys {
            let sig = key.sign(b"message").unwrap();
            assert!(key.public.verify(b"message", &sig), "{}", key.public.alg);
            assert!(!key.public.verify(b"messagE", &sig), "{}", key.public.alg);
            for other in keys.iter().filter(|k| k.public.kid != key.public.kid) {
                assert!(!other.public.verify(b"message", &sig));
            }
        }
    }

    #[test]
    fn hs256_needs_32_bytes_and_publishes_nothing() {
        assert!(SigningKey::hs256(&[1u8; 31]).is_err());
        let set = KeySet::single(SigningKey::hs256(&[1u8; 32]).unwrap());
        assert_eq!(&**set.jwks_json(), r#"{"keys":[]}"#);
    }

    #[test]
    fn jwks_publishes_the_public_members_only() {
        let (key, _) = SigningKey::generate(Algorithm::ES256).unwrap();
        let set = KeySet::single(key);
        let jwks: serde_json::Value = serde_json::from_str(set.jwks_json()).unwrap();
        let jwk = &jwks["keys"][0];
        assert_eq!(jwk["kty"], "EC");
        assert_eq!(jwk["alg"], "ES256");
        assert_eq!(jwk["use"], "sig");
        assert!(jwk.get("d").is_none());
        assert_eq!(jwk["kid"].as_str().unwrap(), set.signing().public().kid());
    }

    #[test]
    fn keys_persist_and_retire_when_the_algorithm_changes() {
        let dir = tempfile::tempdir().unwrap();
        let t0 = Timestamp::from_unix_seconds(1_800_000_000);
        let first = KeySet::load_or_create(dir.path(), Algorithm::EdDSA, None, t0, HOUR).unwrap();
        let ed_kid = first.signing().public().kid().to_owned();
        let again = KeySet::load_or_create(dir.path(), Algorithm::EdDSA, None, t0, HOUR).unwrap();
        assert_eq!(again.signing().public().kid(), ed_kid, "the key is reused");

        let switched =
            KeySet::load_or_create(dir.path(), Algorithm::ES256, None, t0, HOUR).unwrap();
        assert_eq!(switched.signing().public().alg(), Algorithm::ES256);
        assert!(switched.verifying(&ed_kid).is_some(), "the retired key still verifies");
        assert!(switched.jwks_json().contains(&ed_kid));

        let later = t0.plus(HOUR + Duration::from_secs(1));
        let after =
            KeySet::load_or_create(dir.path(), Algorithm::ES256, None, later, HOUR).unwrap();
        assert!(after.verifying(&ed_kid).is_none(), "retired keys go once their tokens expired");
        assert!(!after.jwks_json().contains(&ed_kid));
        assert_eq!(after.signing().public().kid(), switched.signing().public().kid());

        #[cfg(unix)]
        for entry in std::fs::read_dir(dir.path().join("keys")).unwrap() {
            use std::os::unix::fs::PermissionsExt;
            let entry = entry.unwrap();
            let mode = entry.metadata().unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{:?}", entry.file_name());
        }
    }

    fn read_index(data_dir: &Path) -> KeyIndex {
        let path = data_dir.join("keys").join("keys.json");
        KeyIndex::parse(&std::fs::read(&path).unwrap(), &path).unwrap()
    }

    #[test]
    fn hs256_requires_a_secret() {
        let dir = tempfile::tempdir().unwrap();
        let now = Timestamp::from_unix_seconds(1_800_000_000);
        assert!(KeySet::load_or_create(dir.path(), Algorithm::HS256, None, now, HOUR).is_err());
        let secret = SecretSlice::from(vec![9u8; 40]);
        let set =
            KeySet::load_or_create(dir.path(), Algorithm::HS256, Some(&secret), now, HOUR).unwrap();
        assert_eq!(set.signing().public().alg(), Algorithm::HS256);
        assert_eq!(&**set.jwks_json(), r#"{"keys":[]}"#);

        // A new secret retires the old one's entry instead of leaving two "active" ones.
        let other = SecretSlice::from(vec![8u8; 40]);
        KeySet::load_or_create(dir.path(), Algorithm::HS256, Some(&other), now, HOUR).unwrap();
        let index = read_index(dir.path());
        let active: Vec<_> = index.keys.iter().filter(|e| e.retired_at.is_none()).collect();
        assert_eq!(active.len(), 1);

        // The first secret again takes its old entry back: one entry per kid, one active.
        KeySet::load_or_create(dir.path(), Algorithm::HS256, Some(&secret), now, HOUR).unwrap();
        let index = read_index(dir.path());
        let mut kids: Vec<_> = index.keys.iter().map(|e| e.kid.as_str()).collect();
        kids.sort_unstable();
        kids.dedup();
        assert_eq!(kids.len(), index.keys.len(), "{index:?}");
        let active: Vec<_> = index.keys.iter().filter(|e| e.retired_at.is_none()).collect();
        assert_eq!(active.len(), 1);
        assert_eq!(active[0].kid, set.signing().public().kid());
    }
}
