//! The small cryptographic toolbox every other module uses: OS-CSPRNG bytes, SHA-256, BLAKE2b
//! fingerprints, keyed cache keys ([`CacheKeyer`]), HMAC-SHA256, strict base64url,
//! constant-time equality, and [`ServerSecret`], the per-installation key from which the HMAC
//! keys for CSRF tokens and refresh-token successors are derived.
//!
//! Everything here is a thin wrapper over aws-lc-rs, `blake2` and `subtle`; the one piece of
//! our own is [`is_secret_form`], a table lookup tested against the strict decoder.

use std::fmt;
use std::path::Path;

use aws_lc_rs::{digest, hmac, rand};
use base64::Engine as _;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::{DecodePaddingMode, general_purpose};
use subtle::ConstantTimeEq;

use crate::error::Error;

/// base64url without padding, and strict on decode: no padding, no trailing bits, so every
/// value has exactly one encoding.
pub(crate) const B64URL: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::URL_SAFE,
    GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_padding_mode(DecodePaddingMode::RequireNone)
        .with_decode_allow_trailing_bits(false),
);

/// Standard base64 without padding (the alphabet of PHC strings).
pub(crate) const B64_STD_NOPAD: GeneralPurpose = general_purpose::STANDARD_NO_PAD;

/// A SHA-256 digest: how secrets (session ids, refresh tokens) are stored.
pub type Digest = [u8; 32];

/// `N` bytes from the operating system's CSPRNG.
pub(crate) fn random_bytes<const N: usize>() -> Result<[u8; N], Error> {
    let mut bytes = [0u8; N];
    rand::fill(&mut bytes).map_err(|_| Error::internal("the OS random number generator failed"))?;
    Ok(bytes)
}

/// A fresh 256-bit secret, base64url encoded (43 characters).
pub fn random_secret() -> Result<String, Error> {
    Ok(B64URL.encode(random_bytes::<32>()?))
}

/// Whether `text` is what [`random_secret`] makes: the strict base64url form of 32 bytes
/// (43 characters of the URL-safe alphabet, the last one's two spare bits zero). The same
/// answer as the strict base64url decoder's, without decoding: it runs on every session
/// check.
pub fn is_secret_form(text: &str) -> bool {
    /// Each byte's value in the URL-safe alphabet; `0xff` for bytes outside it.
    const SEXTET: [u8; 256] = {
        let mut table = [0xff_u8; 256];
        let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let mut i = 0;
        while i < 64 {
            table[alphabet[i] as usize] = i as u8;
            i += 1;
        }
        table
    };
    let bytes = text.as_bytes();
    let Some((&last, body)) = bytes.split_last() else { return false };
    // `or` of every value: a byte outside the alphabet sets the high bit.
    let outside = body.iter().fold(0u8, |acc, &c| acc | SEXTET[usize::from(c)]) & 0x80;
    bytes.len() == 43 && outside == 0 && SEXTET[usize::from(last)] & 0b1000_0011 == 0
}

/// BLAKE2b-256 of `data`: a collision-resistant fingerprint for keys that never leave the
/// process: [`CacheKeyer`]'s fallback. Half the cost of SHA-256 on CPUs without SHA
/// extensions (9,400 against 18,900 instructions over a 560-byte JWT).
pub fn fingerprint(data: &[u8]) -> Digest {
    use blake2::Digest as _;
    blake2::Blake2b256::digest(data).into()
}

/// Keys of an in-process cache of long secrets (verified access tokens): a 128-bit GMAC,
/// the tag AES-128-GCM computes over `data` as associated data, under a key drawn when the
/// process starts and a fixed nonce.
///
/// GHASH is a universal hash: without its key, a chosen input matches another's tag with
/// probability about `len/16 · 2⁻¹²⁸`, and the tags never leave the process (a fixed nonce
/// would only matter if they did). Over a 560-byte JWT it costs about 2,300 instructions
/// against BLAKE2b's 9,400 and SHA-256's 18,900 (AES and carry-less multiplication in
/// hardware), and every token-authenticated request computes one. Without a random key (the
/// CSPRNG failed at start) it falls back to [`fingerprint`].
pub struct CacheKeyer(Option<aws_lc_rs::aead::LessSafeKey>);

impl CacheKeyer {
    /// A keyer with a fresh random key.
    pub fn new() -> Self {
        use aws_lc_rs::aead::{AES_128_GCM, LessSafeKey, UnboundKey};
        let key = random_bytes::<16>().ok().and_then(|k| UnboundKey::new(&AES_128_GCM, &k).ok());
        CacheKeyer(key.map(LessSafeKey::new))
    }

    /// The cache key of `data` (the tag in the first 16 bytes, the rest zero).
    pub fn key(&self, data: &[u8]) -> Digest {
        use aws_lc_rs::aead::{Aad, Nonce};
        let Some(key) = &self.0 else { return fingerprint(data) };
        let nonce = Nonce::assume_unique_for_key([0u8; 12]);
        match key.seal_in_place_separate_tag(nonce, Aad::from(data), &mut []) {
            Ok(tag) => {
                let mut out = [0u8; 32];
                out[..16].copy_from_slice(tag.as_ref());
                out
            }
            Err(_) => fingerprint(data),
        }
    }
}

impl Default for CacheKeyer {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for CacheKeyer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CacheKeyer(..)")
    }
}

/// SHA-256 of `data`.
pub fn sha256(data: &[u8]) -> Digest {
    let mut out = [0u8; 32];
    out.copy_from_slice(digest::digest(&digest::SHA256, data).as_ref());
    out
}

/// Constant-time equality of two byte strings (the length is not secret).
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

/// An HMAC-SHA256 key.
#[derive(Clone)]
pub(crate) struct HmacKey(hmac::Key);

impl HmacKey {
    pub(crate) fn new(key: &[u8]) -> Self {
        HmacKey(hmac::Key::new(hmac::HMAC_SHA256, key))
    }

    pub(crate) fn sign(&self, data: &[u8]) -> Digest {
        let mut out = [0u8; 32];
        out.copy_from_slice(hmac::sign(&self.0, data).as_ref());
        out
    }
}

impl fmt::Debug for HmacKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("HmacKey([redacted])")
    }
}

/// The installation's master secret: 32 random bytes kept in the data directory (mode 0600),
/// or sealed in a shared PostgreSQL database (`PostgresStore::load_or_create_keys`).
///
/// Purpose-specific HMAC keys are derived from it, so one file serves every derived secret and
/// rotating it invalidates all of them together.
#[derive(Clone)]
pub struct ServerSecret([u8; 32]);

impl ServerSecret {
    /// A fresh random secret.
    pub fn generate() -> Result<Self, Error> {
        Ok(ServerSecret(random_bytes()?))
    }

    /// From raw bytes (at least 32).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, Error> {
        let bytes: [u8; 32] = bytes
            .get(..32)
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| Error::internal("the server secret must be at least 32 bytes"))?;
        Ok(ServerSecret(bytes))
    }

    /// Reads `path`, or creates it with a fresh secret (mode 0600) when it does not exist.
    pub fn load_or_create(path: &Path) -> Result<Self, Error> {
        let bytes =
            crate::fsutil::load_or_create_private(path, || Ok(Self::generate()?.0.to_vec()))?;
        Self::from_bytes(&bytes).map_err(|_| {
            Error::internal(format!("{}: expected 32 bytes of secret", path.display()))
        })
    }

    /// The HMAC key for one purpose (`label` names it; different labels give unrelated keys).
    pub(crate) fn derive(&self, label: &str) -> HmacKey {
        let master = HmacKey::new(&self.0);
        HmacKey::new(&master.sign(label.as_bytes()))
    }
}

/// Constant-time: instances compare their secrets without leaking them through timing.
impl PartialEq for ServerSecret {
    fn eq(&self, other: &Self) -> bool {
        ct_eq(&self.0, &other.0)
    }
}

impl Eq for ServerSecret {}

impl fmt::Debug for ServerSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ServerSecret([redacted])")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_secret_form_is_what_the_strict_decoder_takes_as_32_bytes() {
        let decodes_to_32 = |t: &str| B64URL.decode(t).is_ok_and(|v| v.len() == 32);
        for _ in 0..64 {
            let secret = random_secret().unwrap();
            assert!(is_secret_form(&secret), "{secret}");
            for at in [0, 1, 20, 41, 42] {
                for byte in 0..=255u8 {
                    let mut text = secret.clone().into_bytes();
                    text[at] = byte;
                    let Ok(text) = String::from_utf8(text) else { continue };
                    assert_eq!(is_secret_form(&text), decodes_to_32(&text), "{text:?}");
                }
            }
            assert!(!is_secret_form(&secret[..42]));
            assert!(!is_secret_form(&format!("{secret}A")));
        }
        assert!(!is_secret_form(""));
    }

    #[test]
    fn cache_keys_are_stable_per_keyer_and_differ_between_inputs_and_keyers() {
        let keyer = CacheKeyer::new();
        let token = "eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJhIn0.c2lnbmF0dXJl".repeat(8);
        let key = keyer.key(token.as_bytes());
        assert_eq!(key, keyer.key(token.as_bytes()));
        assert_eq!(key[16..], [0u8; 16]);
        assert_ne!(key[..16], [0u8; 16]);
        assert_ne!(key, keyer.key(&token.as_bytes()[1..]));
        assert_ne!(key, keyer.key(format!("{token}x").as_bytes()));
        assert_ne!(key, CacheKeyer::new().key(token.as_bytes()), "a fresh key each process");
        assert!(keyer.0.is_some());
    }

    #[test]
    fn fingerprint_is_blake2b_256() {
        // RFC 7693 gives BLAKE2b-512; this is the 256-bit output of "abc" (`b2sum -l 256`).
        assert_eq!(
            B64URL.encode(fingerprint(b"abc")),
            "vd2BPGNCOXIxce8_7phXm5SWTjuxyz5CcmLIwGjVIxk"
        );
    }

    #[test]
    fn sha256_matches_the_known_vector() {
        let d = sha256(b"abc");
        assert_eq!(
            B64URL.encode(d),
            "ungWv48Bz-pBQUDeXa4iI7ADYaOWF3qctBD_YfIAFa0",
            "SHA-256(\"abc\") from FIPS 180-2"
        );
    }

    #[test]
    fn base64url_is_strict() {
        assert!(B64URL.decode("YQ").is_ok());
        assert!(B64URL.decode("YQ==").is_err(), "padding is refused");
        assert!(B64URL.decode("YR").is_err(), "non-zero trailing bits are refused");
        assert!(B64URL.decode("a+b/").is_err(), "the standard alphabet is refused");
    }

    #[test]
    fn ct_eq_compares_contents_and_lengths() {
        assert!(ct_eq(b"abc", b"abc"));
        assert!(!ct_eq(b"abc", b"abd"));
        assert!(!ct_eq(b"abc", b"abcd"));
    }

    #[test]
    fn derived_keys_differ_by_label_and_secret() {
        let a = ServerSecret::from_bytes(&[1u8; 32]).unwrap();
        let b = ServerSecret::from_bytes(&[2u8; 32]).unwrap();
        assert_ne!(a.derive("x").sign(b"m"), a.derive("y").sign(b"m"));
        assert_ne!(a.derive("x").sign(b"m"), b.derive("x").sign(b"m"));
        assert_eq!(a.derive("x").sign(b"m"), a.derive("x").sign(b"m"));
        assert_eq!(format!("{a:?}"), "ServerSecret([redacted])");
    }

    #[test]
    fn secret_file_is_created_once_with_private_mode() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret.key");
        let first = ServerSecret::load_or_create(&path).unwrap();
        let second = ServerSecret::load_or_create(&path).unwrap();
        assert_eq!(first, second);
        assert_ne!(first, ServerSecret::generate().unwrap());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
