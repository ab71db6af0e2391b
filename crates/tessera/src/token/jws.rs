//! JWS compact serialization (RFC 7515) as access tokens use it: `header.payload.signature`,
//! base64url without padding.
//!
//! Verification is deliberately narrow: the token must be at most 8 KiB, have exactly three
//! canonical base64url parts, a header that is a JSON object naming a known `kid` whose key is
//! bound to the header's `alg` (so `alg: none` and algorithm confusion cannot pass), `typ`
//! `at+jwt` (RFC 9068), no `crit` member at all, and a valid signature. Only then is the
//! payload handed back.

use base64::Engine as _;
use serde::de::IgnoredAny;
use serde::{Deserialize, Deserializer};

use super::keys::{KeySet, SigningKey, VerifyingKey};
use crate::crypto::B64URL;
use crate::error::Error;

/// The largest token accepted, in bytes.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// Signs `payload` (JSON) with `key`.
pub(crate) fn sign(key: &SigningKey, payload: &[u8]) -> Result<String, Error> {
    let header = key.public().header_b64();
    let mut token = String::with_capacity(header.len() + payload.len() * 4 / 3 + 400);
    token.push_str(header);
    token.push('.');
    B64URL.encode_string(payload, &mut token);
    let signature = key.sign(token.as_bytes())?;
    token.push('.');
    B64URL.encode_string(signature, &mut token);
    Ok(token)
}

#[derive(Deserialize)]
struct Header {
    alg: String,
    kid: Option<String>,
    typ: Option<String>,
    /// Whether `crit` is present with any value (`null` included): it is never accepted.
    #[serde(default, deserialize_with = "present")]
    crit: bool,
}

fn present<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    IgnoredAny::deserialize(d).map(|_| true)
}

/// RFC 7515 §4 and RFC 7519 §7.2: the header and the claims are JSON objects. (A derived
/// `Deserialize` also reads a struct from a JSON array of its fields in order, which no other
/// JOSE implementation would accept.)
pub(crate) fn is_json_object(json: &[u8]) -> bool {
    json.trim_ascii_start().first() == Some(&b'{')
}

/// A token whose form and header passed, its signature not yet checked.
pub(crate) struct Signed<'a, 'k> {
    /// The key the header names, bound to the header's `alg`.
    pub(crate) key: &'k VerifyingKey,
    /// `header.payload`, what the signature covers.
    pub(crate) signing_input: &'a [u8],
    /// The decoded signature.
    pub(crate) signature: Vec<u8>,
    payload_b64: &'a str,
}

impl Signed<'_, '_> {
    /// The decoded payload (call only once the signature is verified).
    pub(crate) fn payload(&self) -> Result<Vec<u8>, Error> {
        B64URL.decode(self.payload_b64).map_err(|_| Error::TokenInvalid("bad payload"))
    }
}

/// Checks the token's form, header and signature against `keys`; returns the decoded payload.
pub(crate) fn verify(token: &str, keys: &KeySet) -> Result<Vec<u8>, Error> {
    verify_with(token, |kid| keys.verifying(kid).map(|key| &**key))
}

/// [`verify`] against whatever keys `key_for` finds by `kid` (a [`KeySet`], or public keys
/// fetched from a JWKS). `key_for` is not called when the token fails before its header names
/// a `kid`.
pub(crate) fn verify_with<'k>(
    token: &str,
    key_for: impl FnOnce(&str) -> Option<&'k VerifyingKey>,
) -> Result<Vec<u8>, Error> {
    let signed = parse_with(token, key_for)?;
    if !signed.key.verify(signed.signing_input, &signed.signature) {
        return Err(Error::TokenInvalid("bad signature"));
    }
    signed.payload()
}

/// Checks the token's form and header against `keys`, leaving the signature to the caller.
pub(crate) fn parse<'a, 'k>(token: &'a str, keys: &'k KeySet) -> Result<Signed<'a, 'k>, Error> {
    parse_with(token, |kid| keys.verifying(kid).map(|key| &**key))
}

/// [`parse`] against whatever keys `key_for` finds by `kid`.
fn parse_with<'a, 'k>(
    token: &'a str,
    key_for: impl FnOnce(&str) -> Option<&'k VerifyingKey>,
) -> Result<Signed<'a, 'k>, Error> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(Error::TokenInvalid("token larger than 8 KiB"));
    }
    let mut parts = token.split('.');
    let (Some(header_b64), Some(payload_b64), Some(signature_b64), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(Error::TokenInvalid("not a JWS compact serialization"));
    };
    let header_json = B64URL.decode(header_b64).map_err(|_| Error::TokenInvalid("bad header"))?;
    if !is_json_object(&header_json) {
        return Err(Error::TokenInvalid("bad header"));
    }
    let header: Header =
        serde_json::from_slice(&header_json).map_err(|_| Error::TokenInvalid("bad header"))?;
    if header.crit {
        return Err(Error::TokenInvalid("unsupported critical header"));
    }
    if !header.typ.as_deref().is_some_and(is_access_token_type) {
        return Err(Error::TokenInvalid("not an access token (typ must be at+jwt)"));
    }
    let key = header
        .kid
        .as_deref()
        .and_then(key_for)
        .ok_or(Error::TokenInvalid("unknown signing key"))?;
    // Each key is bound to one algorithm; the header must name exactly that one.
    if header.alg != key.alg().name() {
        return Err(Error::TokenInvalid("algorithm not allowed for this key"));
    }
    let signature =
        B64URL.decode(signature_b64).map_err(|_| Error::TokenInvalid("bad signature encoding"))?;
    let signing_input_len = header_b64.len() + 1 + payload_b64.len();
    Ok(Signed {
        key,
        signing_input: &token.as_bytes()[..signing_input_len],
        signature,
        payload_b64,
    })
}

/// RFC 9068 §4: `typ` is `at+jwt`, or `application/at+jwt`, compared case-insensitively.
fn is_access_token_type(typ: &str) -> bool {
    let typ = typ.strip_prefix("application/").unwrap_or(typ);
    typ.eq_ignore_ascii_case("at+jwt")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::HmacKey;
    use crate::token::keys::Algorithm;

    fn ed_keys() -> KeySet {
        KeySet::single(SigningKey::generate(Algorithm::EdDSA).unwrap().0)
    }

    fn forge(header: &str, payload: &str, sign_with: Option<&HmacKey>) -> String {
        let input = format!("{}.{}", B64URL.encode(header), B64URL.encode(payload));
        let sig = sign_with.map(|k| B64URL.encode(k.sign(input.as_bytes()))).unwrap_or_default();
        format!("{input}.{sig}")
    }

    #[test]
    fn signs_and_verifies() {
        let keys = ed_keys();
        let token = sign(keys.signing(), br#"{"a":1}"#).unwrap();
        assert_eq!(verify(&token, &keys).unwrap(), br#"{"a":1}"#);
    }

    #[test]
    fn refuses_tampering_and_malformed_tokens() {
        let keys = ed_keys();
        let token = sign(keys.signing(), br#"{"a":1}"#).unwrap();
        let (rest, sig) = token.rsplit_once('.').unwrap();
        let (header, _) = rest.split_once('.').unwrap();
        let other_payload = format!("{header}.{}.{sig}", B64URL.encode(br#"{"a":2}"#));
        for bad in [
            other_payload,
            format!("{token}."),
            rest.to_owned(),
            format!("{rest}.{}", &sig[..sig.len() - 2]),
            format!("{rest}.{sig}="),
            token.replacen('.', "..", 1),
            "a".repeat(MAX_TOKEN_BYTES + 1),
            String::new(),
        ] {
            assert!(matches!(verify(&bad, &keys), Err(Error::TokenInvalid(_))), "{bad}");
        }
    }

    #[test]
    fn refuses_alg_none_and_algorithm_confusion() {
        let keys = ed_keys();
        let kid = keys.signing().public().kid().to_owned();
        let none = forge(&format!(r#"{{"alg":"none","kid":"{kid}","typ":"at+jwt"}}"#), "{}", None);
        assert!(matches!(verify(&none, &keys), Err(Error::TokenInvalid(_))));
        // HS256 "signed" with the public key bytes as the HMAC secret: the classic confusion.
        let jwks: serde_json::Value = serde_json::from_str(keys.jwks_json()).unwrap();
        let public = B64URL.decode(jwks["keys"][0]["x"].as_str().unwrap()).unwrap();
        let confused = forge(
            &format!(r#"{{"alg":"HS256","kid":"{kid}","typ":"at+jwt"}}"#),
            "{}",
            Some(&HmacKey::new(&public)),
        );
        assert_eq!(
            verify(&confused, &keys).unwrap_err().to_string(),
            "the token is invalid: algorithm not allowed for this key"
        );
        let lowercase =
            forge(&format!(r#"{{"alg":"eddsa","kid":"{kid}","typ":"at+jwt"}}"#), "{}", None);
        assert!(verify(&lowercase, &keys).is_err());
    }

    #[test]
    fn refuses_unknown_kid_wrong_typ_and_crit() {
        let keys = ed_keys();
        let kid = keys.signing().public().kid();
        for header in [
            r#"{"alg":"EdDSA","kid":"nope","typ":"at+jwt"}"#.to_owned(),
            r#"{"alg":"EdDSA","typ":"at+jwt"}"#.to_owned(),
            format!(r#"{{"alg":"EdDSA","kid":"{kid}"}}"#),
            format!(r#"{{"alg":"EdDSA","kid":"{kid}","typ":"JWT"}}"#),
            format!(r#"{{"alg":"EdDSA","kid":"{kid}","typ":"at+jwt","crit":["exp"]}}"#),
            format!(r#"{{"alg":"EdDSA","kid":"{kid}","kid":"{kid}","typ":"at+jwt"}}"#),
            "not json".to_owned(),
        ] {
            let token = forge(&header, "{}", None);
            assert!(matches!(verify(&token, &keys), Err(Error::TokenInvalid(_))), "{header}");
        }
    }

    #[test]
    fn refuses_validly_signed_non_object_headers_and_a_null_crit() {
        let keys = ed_keys();
        let kid = keys.signing().public().kid();
        let signed = |header: &str, payload: &str| {
            let input = format!("{}.{}", B64URL.encode(header), B64URL.encode(payload));
            let sig = keys.signing().sign(input.as_bytes()).unwrap();
            format!("{input}.{}", B64URL.encode(sig))
        };
        let good = format!(r#" {{"alg":"EdDSA","kid":"{kid}","typ":"at+jwt"}}"#);
        assert_eq!(verify(&signed(&good, "{}"), &keys).unwrap(), b"{}");
        for header in [
            format!(r#"["EdDSA","{kid}","at+jwt",null]"#),
            format!(r#"{{"alg":"EdDSA","kid":"{kid}","typ":"at+jwt","crit":null}}"#),
        ] {
            let token = signed(&header, "{}");
            assert!(matches!(verify(&token, &keys), Err(Error::TokenInvalid(_))), "{header}");
        }
    }

    #[test]
    fn verifies_the_rfc_8037_example_key_signature() {
        // RFC 8037 A.4: Ed25519 signature over "eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc".
        use aws_lc_rs::signature::{ED25519, ParsedPublicKey};
        let x = B64URL.decode("11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo").unwrap();
        let key = ParsedPublicKey::new(&ED25519, &x).unwrap();
        let sig = B64URL
            .decode("hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg")
            .unwrap();
        assert!(
            key.verify_sig(b"eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc", &sig)
                .is_ok()
        );
        assert!(is_access_token_type("application/AT+JWT"));
        assert!(!is_access_token_type("jwt"));
    }
}
