//! Public keys from a JWKS document (RFC 7517): what an application that trusts a remote
//! Tessera server verifies that server's access tokens with, holding no private key at all.
//!
//! [`JwkSet::parse`] reads the keys Tessera issues tokens with: Ed25519 (`OKP`, `EdDSA`),
//! P-256 (`EC`, `ES256`) and RSA of 2048 to 8192 bits (`RSA`, `RS256`), each bound to that one
//! algorithm as the server's own [`KeySet`](super::KeySet) binds it. The document is refused
//! whole when it is over [`MAX_JWKS_BYTES`] or has more than [`MAX_JWKS_KEYS`] keys, is not a
//! JSON object with a `keys` array of objects, or when a usable key has no `kid`, shares its
//! `kid` with another, carries private or symmetric key material, or has key bytes that do not
//! form a valid key. Keys nothing here can use are skipped, never used: a `use` other than
//! `sig`, an unknown `kty`, `crv` or `alg` (RFC 7517 §5: a newer server may publish a key type
//! an older application does not know, and that must not stop the keys it does know).
//!
//! [`JwkSet::verify_signed`] checks a token exactly as the issuing server does (size, form,
//! header, `kid`/`alg` allow-list, signature, issuer, audience) and tells an unknown `kid`
//! apart, so the caller can fetch the JWKS again; [`ClaimRules::check_times`] checks `exp`,
//! `nbf` and `iat` on every use. Revocation is the server's to know: see `tessera-axum`'s
//! remote mode for how an application asks it.

use std::cell::Cell;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use aws_lc_rs::signature::{self, ParsedPublicKey, RsaPublicKeyComponents};
use base64::Engine as _;
use serde::Deserialize;
use serde::de::IgnoredAny;

use super::access::AccessClaims;
use super::jws;
use super::keys::{Algorithm, VerifyingKey};
use crate::clock::Timestamp;
use crate::crypto::B64URL;
use crate::error::Error;

/// The largest JWKS document accepted, in bytes (a Tessera JWKS with a few RSA keys is under
/// 4 KiB).
pub const MAX_JWKS_BYTES: usize = 64 * 1024;

/// The most keys a JWKS document may list.
pub const MAX_JWKS_KEYS: usize = 32;

/// The longest `kid` accepted, in bytes (Tessera's are 43-character thumbprints).
pub const MAX_KID_BYTES: usize = 256;

/// RSA modulus sizes accepted, in bits (what `RS256` verification accepts).
const RSA_BITS: std::ops::RangeInclusive<usize> = 2048..=8192;

/// Why a JWKS document was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JwkError {
    /// The document is over [`MAX_JWKS_BYTES`].
    #[error("the JWKS document is larger than {MAX_JWKS_BYTES} bytes")]
    TooLarge,
    /// The document lists more than [`MAX_JWKS_KEYS`] keys.
    #[error("the JWKS document lists more than {MAX_JWKS_KEYS} keys")]
    TooManyKeys,
    /// Not a JSON object with a `keys` array of JWK objects.
    #[error("the JWKS document is malformed: {0}")]
    Malformed(String),
    /// A usable key has no `kid` (or an empty or oversize one).
    #[error("a signing key has no usable kid")]
    MissingKid,
    /// Two usable keys share a `kid`.
    #[error("the kid {0:?} names two keys")]
    DuplicateKid(String),
    /// A usable key is not a valid public key of its type.
    #[error("the key {kid:?} is unusable: {reason}")]
    InvalidKey {
        /// The key's id.
        kid: String,
        /// What is wrong with it.
        reason: &'static str,
    },
}

/// One JWK as published. Members Tessera never publishes (`x5c`, `key_ops`...) are ignored.
#[derive(Deserialize)]
struct RawJwk {
    kty: Option<String>,
    kid: Option<String>,
    alg: Option<String>,
    #[serde(rename = "use")]
    use_: Option<String>,
    crv: Option<String>,
    x: Option<String>,
    y: Option<String>,
    n: Option<String>,
    e: Option<String>,
    /// Private (`d`, `p`, `q`, `dp`, `dq`, `qi`) or symmetric (`k`) key material: never in
    /// a public JWKS.
    d: Option<IgnoredAny>,
    p: Option<IgnoredAny>,
    q: Option<IgnoredAny>,
    dp: Option<IgnoredAny>,
    dq: Option<IgnoredAny>,
    qi: Option<IgnoredAny>,
    k: Option<IgnoredAny>,
}

impl RawJwk {
    fn has_secret_material(&self) -> bool {
        [&self.d, &self.p, &self.q, &self.dp, &self.dq, &self.qi, &self.k]
            .iter()
            .any(|member| member.is_some())
    }
}

#[derive(Deserialize)]
struct Document {
    keys: Vec<RawJwk>,
}

/// The verifying keys of a JWKS document, by `kid`.
#[derive(Debug, Clone, Default)]
pub struct JwkSet {
    keys: HashMap<String, Arc<VerifyingKey>>,
    skipped: usize,
}

impl JwkSet {
    /// Parses a JWKS document (see the [module docs](self) for what is refused or skipped).
    pub fn parse(document: &[u8]) -> Result<Self, JwkError> {
        if document.len() > MAX_JWKS_BYTES {
            return Err(JwkError::TooLarge);
        }
        // A derived `Deserialize` also reads a struct from a JSON array of its fields in
        // order; a JWKS and its keys are objects, so check the shape first.
        let shape: serde_json::Value =
            serde_json::from_slice(document).map_err(|e| JwkError::Malformed(e.to_string()))?;
        let Some(listed) = shape.get("keys").and_then(|keys| keys.as_array()) else {
            return Err(JwkError::Malformed("no `keys` array".into()));
        };
        if listed.len() > MAX_JWKS_KEYS {
            return Err(JwkError::TooManyKeys);
        }
        if !listed.iter().all(serde_json::Value::is_object) {
            return Err(JwkError::Malformed("a key is not a JSON object".into()));
        }
        // Parsed again from the bytes (not the `Value`), so a member given twice is an error.
        let document: Document =
            serde_json::from_slice(document).map_err(|e| JwkError::Malformed(e.to_string()))?;
        let mut set = JwkSet::default();
        for raw in document.keys {
            let Some(key) = usable_key(raw)? else {
                set.skipped += 1;
                continue;
            };
            if set.keys.contains_key(key.kid()) {
                return Err(JwkError::DuplicateKid(key.kid().to_owned()));
            }
            set.keys.insert(key.kid().to_owned(), Arc::new(key));
        }
        Ok(set)
    }

    /// The key with this `kid`.
    pub fn get(&self, kid: &str) -> Option<&Arc<VerifyingKey>> {
        self.keys.get(kid)
    }

    /// How many usable keys the document had.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether the document had no usable key.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The `kid`s of the usable keys, in no particular order.
    pub fn kids(&self) -> impl Iterator<Item = &str> {
        self.keys.keys().map(String::as_str)
    }

    /// How many keys were skipped as unusable here (another `use`, an unknown `kty`, `crv` or
    /// `alg`).
    pub fn skipped(&self) -> usize {
        self.skipped
    }

    /// Verifies an access token's form, header, signature, issuer and audience against these
    /// keys; not its times (see [`ClaimRules::check_times`]) nor revocation.
    pub fn verify_signed(
        &self,
        token: &str,
        rules: &ClaimRules,
    ) -> Result<AccessClaims, JwkVerifyError> {
        let unknown_kid = Cell::new(false);
        let payload = jws::verify_with(token, |kid| {
            let key = self.keys.get(kid).map(|key| &**key);
            unknown_kid.set(key.is_none());
            key
        });
        let payload = match payload {
            Ok(payload) => payload,
            Err(_) if unknown_kid.get() => return Err(JwkVerifyError::UnknownKey),
            Err(e) => return Err(JwkVerifyError::Invalid(e)),
        };
        rules.claims(&payload).map_err(JwkVerifyError::Invalid)
    }
}

/// Why [`JwkSet::verify_signed`] refused a token.
#[derive(Debug)]
pub enum JwkVerifyError {
    /// The token names a `kid` the set does not have: the JWKS may have changed since it was
    /// fetched (a new signing key); fetch it again and retry, or refuse the token.
    UnknownKey,
    /// The token is invalid ([`Error::TokenInvalid`]).
    Invalid(Error),
}

/// What an access token must claim: the server's `[token] issuer` and `audience`, and the
/// clock-skew allowance for its times. The same rules for the server's own tokens
/// ([`AccessTokens`](super::AccessTokens)) and for tokens checked against a [`JwkSet`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimRules {
    /// The only `iss` accepted.
    pub issuer: String,
    /// The `aud` a token must list.
    pub audience: String,
    /// Clock-skew allowance for `exp`, `nbf` and `iat` (default 30 s).
    pub leeway: Duration,
}

impl ClaimRules {
    /// Rules for tokens from `issuer` for `audience`, with the default 30 s leeway.
    pub fn new(issuer: impl Into<String>, audience: impl Into<String>) -> Self {
        ClaimRules {
            issuer: issuer.into(),
            audience: audience.into(),
            leeway: Duration::from_secs(30),
        }
    }

    /// Reads the claims of a payload whose signature is verified, and checks issuer and
    /// audience.
    pub fn claims(&self, payload: &[u8]) -> Result<AccessClaims, Error> {
        // A derived `Deserialize` would also read the claims from a JSON array in field order.
        if !jws::is_json_object(payload) {
            return Err(Error::TokenInvalid("claims missing or malformed"));
        }
        let claims: AccessClaims = serde_json::from_slice(payload)
            .map_err(|_| Error::TokenInvalid("claims missing or malformed"))?;
        if claims.iss != self.issuer {
            return Err(Error::TokenInvalid("wrong issuer"));
        }
        if !claims.aud.contains(&self.audience) {
            return Err(Error::TokenInvalid("wrong audience"));
        }
        Ok(claims)
    }

    /// Checks `exp`, `nbf` and `iat` at `now`, with the leeway: [`Error::TokenExpired`] past
    /// `exp`, [`Error::TokenInvalid`] before `nbf` or `iat`.
    pub fn check_times(&self, claims: &AccessClaims, now: Timestamp) -> Result<(), Error> {
        let now = now.unix_seconds();
        let leeway = i64::try_from(self.leeway.as_secs()).unwrap_or(i64::MAX);
        if now >= claims.exp.saturating_add(leeway) {
            return Err(Error::TokenExpired);
        }
        if claims.nbf > now.saturating_add(leeway) || claims.iat > now.saturating_add(leeway) {
            return Err(Error::TokenInvalid("token not valid yet"));
        }
        Ok(())
    }
}

/// The verifying key of `raw`; `None` when it is not one this module can use.
fn usable_key(raw: RawJwk) -> Result<Option<VerifyingKey>, JwkError> {
    if raw.use_.as_deref().is_some_and(|u| u != "sig") {
        return Ok(None);
    }
    let alg = match (raw.kty.as_deref(), raw.crv.as_deref()) {
        (Some("OKP"), Some("Ed25519")) => Algorithm::EdDSA,
        (Some("EC"), Some("P-256")) => Algorithm::ES256,
        (Some("RSA"), None) => Algorithm::RS256,
        _ => return Ok(None),
    };
    // JOSE algorithm names are case-sensitive; a key without `alg` is used with the one
    // algorithm its type allows here.
    if raw.alg.as_deref().is_some_and(|named| named != alg.name()) {
        return Ok(None);
    }
    let kid = match raw.kid.as_deref() {
        Some(kid) if !kid.is_empty() && kid.len() <= MAX_KID_BYTES => kid.to_owned(),
        _ => return Err(JwkError::MissingKid),
    };
    let invalid = |reason| JwkError::InvalidKey { kid: kid.clone(), reason };
    if raw.has_secret_material() {
        return Err(invalid("private or symmetric key material in a public JWKS"));
    }
    let member = |value: &Option<String>, name| {
        let value = value.as_deref().ok_or_else(|| invalid(name))?;
        B64URL.decode(value).map_err(|_| invalid(name))
    };
    let parsed = match alg {
        Algorithm::EdDSA => {
            let x = member(&raw.x, "x is missing or not base64url")?;
            if x.len() != 32 {
                return Err(invalid("an Ed25519 public key is 32 bytes"));
            }
            ParsedPublicKey::new(&signature::ED25519, &x)
        }
        Algorithm::ES256 => {
            let x = member(&raw.x, "x is missing or not base64url")?;
            let y = member(&raw.y, "y is missing or not base64url")?;
            if x.len() != 32 || y.len() != 32 {
                return Err(invalid("P-256 coordinates are 32 bytes each"));
            }
            let point = [&[0x04][..], &x, &y].concat();
            ParsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, &point)
        }
        Algorithm::RS256 => {
            let n = member(&raw.n, "n is missing or not base64url")?;
            let e = member(&raw.e, "e is missing or not base64url")?;
            let bits = match n.first() {
                Some(&first) if first != 0 => n.len() * 8 - first.leading_zeros() as usize,
                _ => 0,
            };
            if !RSA_BITS.contains(&bits) {
                return Err(invalid("the RSA modulus must have 2048 to 8192 bits"));
            }
            if e.is_empty() || e.len() > 8 || e.first() == Some(&0) {
                return Err(invalid("the RSA exponent is malformed"));
            }
            RsaPublicKeyComponents { n: &n[..], e: &e[..] }
                .to_parsed_public_key(&signature::RSA_PKCS1_2048_8192_SHA256)
        }
        Algorithm::HS256 => return Ok(None),
    }
    .map_err(|_| invalid("not a valid public key"))?;
    Ok(Some(VerifyingKey::from_public(kid, alg, parsed)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::token::keys::{KeySet, SigningKey};
    use serde_json::{Value, json};

    const NOW: i64 = 1_800_000_000;

    fn rules() -> ClaimRules {
        ClaimRules::new("https://auth.example", "tessera")
    }

    fn claims(iss: &str, aud: &str) -> Value {
        json!({"iss": iss, "sub": "user-1", "aud": aud, "exp": NOW + 300, "iat": NOW,
               "nbf": NOW, "jti": "j", "sid": "family-1", "username": "alice"})
    }

    fn token(key: &SigningKey, claims: &Value) -> String {
        jws::sign(key, &serde_json::to_vec(claims).unwrap()).unwrap()
    }

    fn jwks(keys: Value) -> Vec<u8> {
        serde_json::to_vec(&json!({ "keys": keys })).unwrap()
    }

    #[test]
    fn every_algorithms_jwks_parses_back_into_keys_that_verify_its_tokens() {
        for alg in [Algorithm::EdDSA, Algorithm::ES256, Algorithm::RS256] {
            let (retired, _) = SigningKey::generate(alg).unwrap();
            let retired_public = Arc::clone(retired.public());
            let (signing, _) = SigningKey::generate(alg).unwrap();
            let set = KeySet::new(signing, vec![retired_public]);
            let parsed = JwkSet::parse(set.jwks_json().as_bytes()).unwrap();
            assert_eq!(parsed.len(), 2, "{alg}");
            assert_eq!(parsed.skipped(), 0);

            for key in [set.signing(), &retired] {
                let kid = key.public().kid();
                let public = parsed.get(kid).unwrap();
                assert_eq!(public.alg(), alg);
                let sig = key.sign(b"message").unwrap();
                assert!(public.verify(b"message", &sig), "{alg}");
                assert!(!public.verify(b"messagE", &sig), "{alg}");

                let jwt = token(key, &claims("https://auth.example", "tessera"));
                let verified = parsed.verify_signed(&jwt, &rules()).unwrap();
                assert_eq!((verified.sub.as_str(), verified.sid.as_str()), ("user-1", "family-1"));
                rules().check_times(&verified, Timestamp::from_unix_seconds(NOW)).unwrap();
            }
        }
    }

    #[test]
    fn tokens_are_checked_like_the_server_checks_them() {
        let (key, _) = SigningKey::generate(Algorithm::EdDSA).unwrap();
        let set = KeySet::single(key);
        let parsed = JwkSet::parse(set.jwks_json().as_bytes()).unwrap();
        let key = set.signing();
        let refused = |jwt: &str| match parsed.verify_signed(jwt, &rules()) {
            Err(JwkVerifyError::Invalid(Error::TokenInvalid(why))) => why,
            other => panic!("{other:?}"),
        };
        assert_eq!(refused(&token(key, &claims("https://evil", "tessera"))), "wrong issuer");
        assert_eq!(refused(&token(key, &claims("https://auth.example", "x"))), "wrong audience");
        assert_eq!(refused("garbage"), "not a JWS compact serialization");
        let good = token(key, &claims("https://auth.example", "tessera"));
        let tampered = format!("{}x", &good[..good.len() - 1]);
        assert!(matches!(
            parsed.verify_signed(&tampered, &rules()),
            Err(JwkVerifyError::Invalid(_))
        ));

        let (other, _) = SigningKey::generate(Algorithm::EdDSA).unwrap();
        let unknown = token(&other, &claims("https://auth.example", "tessera"));
        assert!(matches!(
            parsed.verify_signed(&unknown, &rules()),
            Err(JwkVerifyError::UnknownKey)
        ));
        let empty = JwkSet::default();
        assert!(matches!(empty.verify_signed(&good, &rules()), Err(JwkVerifyError::UnknownKey)));
    }

    #[test]
    fn times_honour_the_leeway() {
        let claims: AccessClaims =
            serde_json::from_value(claims("https://auth.example", "tessera")).unwrap();
        let at = |secs| Timestamp::from_unix_seconds(secs);
        assert!(rules().check_times(&claims, at(NOW + 300 + 29)).is_ok());
        assert!(matches!(rules().check_times(&claims, at(NOW + 330)), Err(Error::TokenExpired)));
        assert!(rules().check_times(&claims, at(NOW - 29)).is_ok());
        assert!(matches!(rules().check_times(&claims, at(NOW - 31)), Err(Error::TokenInvalid(_))));
    }

    fn ed25519_jwk() -> Value {
        let (key, _) = SigningKey::generate(Algorithm::EdDSA).unwrap();
        let doc: Value = serde_json::from_str(KeySet::single(key).jwks_json()).unwrap();
        doc["keys"][0].clone()
    }

    fn with(jwk: &Value, member: &str, value: Value) -> Value {
        let mut jwk = jwk.clone();
        jwk[member] = value;
        jwk
    }

    fn without(jwk: &Value, member: &str) -> Value {
        let mut jwk = jwk.clone();
        jwk.as_object_mut().unwrap().remove(member);
        jwk
    }

    #[test]
    fn unusable_keys_are_skipped() {
        let good = ed25519_jwk();
        for skipped in [
            with(&good, "use", json!("enc")),
            with(&good, "kty", json!("oct")),
            with(&good, "kty", json!("okp")),
            with(&good, "crv", json!("Ed448")),
            with(&good, "alg", json!("ES256")),
            with(&good, "alg", json!("eddsa")),
            with(&good, "alg", json!("HS256")),
            json!({"kty": "EC", "crv": "P-384", "kid": "k", "x": "AA", "y": "AA"}),
            json!({"kty": "RSA", "alg": "PS256", "kid": "k", "n": "AA", "e": "AQAB"}),
        ] {
            let set = JwkSet::parse(&jwks(json!([skipped, good]))).unwrap();
            assert_eq!((set.len(), set.skipped()), (1, 1), "{skipped}");
        }
        let no_use = without(&good, "use");
        assert_eq!(JwkSet::parse(&jwks(json!([no_use]))).unwrap().len(), 1, "use is optional");
        let no_alg = without(&good, "alg");
        let set = JwkSet::parse(&jwks(json!([no_alg]))).unwrap();
        let kid = good["kid"].as_str().unwrap();
        assert_eq!(set.get(kid).unwrap().alg(), Algorithm::EdDSA, "alg follows from the kty");
    }

    #[test]
    fn malformed_documents_and_keys_are_refused() {
        let good = ed25519_jwk();
        let refused = |doc: &[u8]| JwkSet::parse(doc).unwrap_err();
        assert_eq!(refused(&jwks(json!([without(&good, "kid")]))), JwkError::MissingKid);
        assert_eq!(refused(&jwks(json!([with(&good, "kid", json!(""))]))), JwkError::MissingKid);
        let long_kid = with(&good, "kid", json!("k".repeat(MAX_KID_BYTES + 1)));
        assert_eq!(refused(&jwks(json!([long_kid]))), JwkError::MissingKid);
        let kid = good["kid"].as_str().unwrap().to_owned();
        assert_eq!(refused(&jwks(json!([good, good]))), JwkError::DuplicateKid(kid));
        for bad in [
            with(&good, "d", json!("AAAA")),
            with(&good, "x", json!("AAAA")),
            with(&good, "x", json!("not base64!")),
            without(&good, "x"),
            json!({"kty": "EC", "crv": "P-256", "kid": "k", "x": B64URL.encode([1u8; 32]),
                   "y": B64URL.encode([2u8; 32])}),
            json!({"kty": "RSA", "kid": "k", "n": B64URL.encode([0xffu8; 128]), "e": "AQAB"}),
            json!({"kty": "RSA", "kid": "k", "n": B64URL.encode([0xffu8; 256]), "e": "AA"}),
        ] {
            assert!(matches!(refused(&jwks(json!([bad]))), JwkError::InvalidKey { .. }), "{bad}");
        }
        for doc in [
            b"".as_slice(),
            b"[]",
            b"{}",
            br#"{"keys": {}}"#,
            br#"{"keys": [["OKP", "k"]]}"#,
            br#"{"keys": [{"kty": "OKP", "kty": "OKP"}]}"#,
            br#"{"keys": [{"kid": 5}]}"#,
        ] {
            assert!(
                matches!(refused(doc), JwkError::Malformed(_)),
                "{}",
                String::from_utf8_lossy(doc)
            );
        }
        let many: Vec<Value> =
            (0..=MAX_JWKS_KEYS).map(|_| with(&good, "use", json!("enc"))).collect();
        assert_eq!(refused(&jwks(Value::Array(many))), JwkError::TooManyKeys);
        let mut huge = jwks(json!([good]));
        huge.resize(MAX_JWKS_BYTES + 1, b' ');
        assert_eq!(refused(&huge), JwkError::TooLarge);
        assert!(JwkSet::parse(&jwks(json!([]))).unwrap().is_empty());
    }
}
