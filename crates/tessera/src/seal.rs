//! Sealing secrets for storage outside the data directory: [`KeyEncryptionKey`], a configured
//! 256-bit key that encrypts signing keys and the server secret with AES-256-GCM before they
//! are written to a shared database, so a dump of that database alone reveals no key.
//!
//! A sealed value is `nonce (12 bytes) || ciphertext || tag (16 bytes)`. Every seal draws a
//! fresh random 96-bit nonce. The caller names what is sealed (a key id, a secret's name) as
//! additional authenticated data, so a sealed value copied to another row does not open there.

use std::fmt;

use aws_lc_rs::aead::{self, Aad, Nonce, RandomizedNonceKey};
use base64::Engine as _;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use secrecy::SecretSlice;

/// Length of the key-encryption key in bytes.
pub const KEK_LEN: usize = 32;

/// Why a key-encryption key could not be made, or a value not sealed or opened.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    /// The key as configured is not base64 of exactly [`KEK_LEN`] bytes.
    #[error("{0}")]
    InvalidKey(String),
    /// The sealed value does not open: it was sealed under another key-encryption key, for
    /// another name, or it was altered.
    #[error(
        "cannot be opened with this key-encryption key (it was sealed under another key, or \
         altered)"
    )]
    Open,
    /// The AEAD implementation failed to seal (a broken random number generator).
    #[error("sealing failed")]
    Seal,
}

/// The key that seals secrets kept in a shared store (AES-256-GCM).
///
/// Its `Debug` output never shows the key.
pub struct KeyEncryptionKey(RandomizedNonceKey);

impl KeyEncryptionKey {
    /// A key from exactly [`KEK_LEN`] raw bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, SealError> {
        if bytes.len() != KEK_LEN {
            return Err(SealError::InvalidKey(format!(
                "the key-encryption key is {} bytes; it must be exactly {KEK_LEN}",
                bytes.len()
            )));
        }
        RandomizedNonceKey::new(&aead::AES_256_GCM, bytes)
            .map(KeyEncryptionKey)
            .map_err(|_| SealError::InvalidKey("the key-encryption key is unusable".into()))
    }

    /// A key from its base64 text: the standard or the URL-safe alphabet, padded or not,
    /// whitespace at both ends ignored (`head -c 32 /dev/urandom | base64` makes one).
    pub fn from_base64(text: &str) -> Result<Self, SealError> {
        let text = text.trim();
        let lenient =
            GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent);
        let decoded = [
            GeneralPurpose::new(&base64::alphabet::STANDARD, lenient),
            GeneralPurpose::new(&base64::alphabet::URL_SAFE, lenient),
        ]
        .iter()
        .find_map(|engine| engine.decode(text).ok())
        .map(SecretSlice::from)
        .ok_or_else(|| {
            SealError::InvalidKey(format!(
                "the key-encryption key is not base64 of {KEK_LEN} bytes (make one with \
                 `head -c 32 /dev/urandom | base64`)"
            ))
        })?;
        Self::from_bytes(secrecy::ExposeSecret::expose_secret(&decoded))
    }

    /// Encrypts `plaintext`, binding it to `name` (the additional authenticated data).
    pub fn seal(&self, name: &str, plaintext: &[u8]) -> Result<Vec<u8>, SealError> {
        let mut in_out = plaintext.to_vec();
        let nonce = self
            .0
            .seal_in_place_append_tag(Aad::from(name.as_bytes()), &mut in_out)
            .map_err(|_| SealError::Seal)?;
        let mut sealed = Vec::with_capacity(aead::NONCE_LEN + in_out.len());
        sealed.extend_from_slice(nonce.as_ref());
        sealed.extend_from_slice(&in_out);
        Ok(sealed)
    }

    /// Decrypts a value [`seal`](Self::seal) made for the same `name` under this key.
    pub fn open(&self, name: &str, sealed: &[u8]) -> Result<SecretSlice<u8>, SealError> {
        let (nonce, ciphertext) =
            sealed.split_at_checked(aead::NONCE_LEN).ok_or(SealError::Open)?;
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| SealError::Open)?;
        let mut in_out = ciphertext.to_vec();
        let plaintext_len = self
            .0
            .open_in_place(nonce, Aad::from(name.as_bytes()), &mut in_out)
            .map_err(|_| SealError::Open)?
            .len();
        in_out.truncate(plaintext_len);
        Ok(SecretSlice::from(in_out))
    }
}

impl fmt::Debug for KeyEncryptionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeyEncryptionKey([redacted])")
    }
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret;

    use super::*;

    fn kek(byte: u8) -> KeyEncryptionKey {
        KeyEncryptionKey::from_bytes(&[byte; KEK_LEN]).unwrap()
    }

    #[test]
    fn a_sealed_value_opens_under_the_same_key_and_name_only() {
        let key = kek(1);
        let sealed = key.seal("kid-1", b"private key").unwrap();
        assert_eq!(key.open("kid-1", &sealed).unwrap().expose_secret(), b"private key");
        assert!(!sealed.windows(11).any(|w| w == b"private key"), "the plaintext is encrypted");
        assert_eq!(sealed.len(), 12 + 11 + 16, "nonce, ciphertext, tag");

        assert!(matches!(kek(2).open("kid-1", &sealed), Err(SealError::Open)), "wrong KEK");
        assert!(matches!(key.open("kid-2", &sealed), Err(SealError::Open)), "swapped AAD");
        for i in 0..sealed.len() {
            let mut tampered = sealed.clone();
            tampered[i] ^= 0x01;
            assert!(matches!(key.open("kid-1", &tampered), Err(SealError::Open)), "byte {i}");
        }
        assert!(matches!(key.open("kid-1", &sealed[..11]), Err(SealError::Open)), "truncated");
        assert!(matches!(key.open("kid-1", &sealed[..28]), Err(SealError::Open)), "no text");
    }

    #[test]
    fn every_seal_uses_a_fresh_nonce() {
        let key = kek(1);
        let a = key.seal("name", b"same").unwrap();
        let b = key.seal("name", b"same").unwrap();
        assert_ne!(a[..12], b[..12]);
        assert_ne!(a, b);
    }

    #[test]
    fn the_key_is_base64_of_exactly_32_bytes_in_either_alphabet() {
        // 32 bytes whose base64 uses `+`/`/` in the standard alphabet, `-`/`_` in the URL one.
        let bytes: Vec<u8> = (0..32u8).map(|i| i.wrapping_mul(37).wrapping_add(0xfb)).collect();
        let standard = base64::engine::general_purpose::STANDARD.encode(&bytes);
        let url = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&bytes);
        assert!(standard.contains(['+', '/']) && url.contains(['-', '_']), "{standard} {url}");
        let sealed = KeyEncryptionKey::from_bytes(&bytes).unwrap().seal("n", b"x").unwrap();
        for text in [standard.clone(), format!("{standard}\n"), url.clone(), format!(" {url}=\n")] {
            let key = KeyEncryptionKey::from_base64(&text).unwrap();
            assert_eq!(key.open("n", &sealed).unwrap().expose_secret(), b"x", "{text:?}");
        }
        let short = base64::engine::general_purpose::STANDARD.encode([7u8; 31]);
        let long = base64::engine::general_purpose::STANDARD.encode([7u8; 33]);
        for text in [short.as_str(), long.as_str(), "not base64!", ""] {
            let error = KeyEncryptionKey::from_base64(text).unwrap_err();
            assert!(matches!(error, SealError::InvalidKey(_)), "{text}");
        }
    }

    #[test]
    fn debug_hides_the_key() {
        assert_eq!(format!("{:?}", kek(9)), "KeyEncryptionKey([redacted])");
    }
}
