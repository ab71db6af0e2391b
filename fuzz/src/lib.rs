//! Fixtures shared by the fuzz targets: fixed keys (so the committed seed tokens verify in
//! every run), a stopped clock, and the strict base64url engine tokens use.
//!
//! Everything here is built once per process; a fixture that cannot be built aborts the run
//! with a message (that is a harness problem, not a finding).

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use tessera::token::{Algorithm, KeySet, SigningKey};
use tessera::{ManualClock, Timestamp};

/// The instant every fixture clock is stopped at (2027-01-15T08:00:00Z).
pub const NOW: i64 = 1_800_000_000;

/// The Ed25519 seed of the fixed signing key. A fuzzing fixture, never a real key.
const ED25519_SEED: [u8; 32] = *b"tessera fuzzing key: not secret!";

/// The fixed HS256 secret (a retired key in [`jws_keys`]). Never a real key.
pub const HS256_SECRET: &[u8] = b"tessera fuzzing hs256 secret, not a real one";

/// A revoked `sid`: tokens carrying it must never verify.
pub const REVOKED_SID: &str = "revoked-family";

/// base64url without padding, strict on decode (the engine `tessera::crypto` uses).
pub const B64URL: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::URL_SAFE,
    GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_padding_mode(DecodePaddingMode::RequireNone)
        .with_decode_allow_trailing_bits(false),
);

/// Aborts the fuzzing process: a fixture could not be built.
#[track_caller]
pub fn fixture<T, E: std::fmt::Debug>(what: &str, result: Result<T, E>) -> T {
    match result {
        Ok(value) => value,
        Err(e) => {
            eprintln!("fuzz fixture `{what}` failed: {e:?}");
            std::process::abort();
        }
    }
}

/// The fixed Ed25519 signing key (PKCS#8 v1 around [`ED25519_SEED`]).
pub fn ed25519_key() -> SigningKey {
    let mut pkcs8 = vec![
        0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04,
        0x20,
    ];
    pkcs8.extend_from_slice(&ED25519_SEED);
    fixture("ed25519 key", SigningKey::from_pkcs8(Algorithm::EdDSA, &pkcs8))
}

/// The fixed HS256 key.
pub fn hs256_key() -> SigningKey {
    fixture("hs256 key", SigningKey::hs256(HS256_SECRET))
}

/// A clock stopped at [`NOW`].
pub fn stopped_clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::new(Timestamp::from_unix_seconds(NOW)))
}

/// The claims of a token that is valid at [`NOW`] under the default token settings.
pub fn valid_claims_json(sid: &str) -> String {
    serde_json::json!({
        "iss": tessera::settings::TokenSettings::default().issuer,
        "sub": "0190f1a2-0000-7000-8000-000000000001",
        "aud": "tessera",
        "exp": NOW + 300,
        "iat": NOW,
        "nbf": NOW,
        "jti": "fuzz-jti",
        "sid": sid,
        "username": "alice",
    })
    .to_string()
}

/// The signing keys the `jws` target verifies against: Ed25519 signs, HS256 is retired.
pub fn jws_keys() -> (KeySet, Vec<SigningKey>) {
    let ed = ed25519_key();
    let hs = hs256_key();
    let set = KeySet::new(ed25519_key(), vec![Arc::clone(hs.public())]);
    (set, vec![ed, hs])
}

/// The three parts of a compact JWS, if it has exactly three.
pub fn split3(token: &str) -> Option<(&str, &str, &str)> {
    let mut parts = token.split('.');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(h), Some(p), Some(s), None) => Some((h, p, s)),
        _ => None,
    }
}

/// Decodes strict base64url.
pub fn b64_decode(part: &str) -> Option<Vec<u8>> {
    B64URL.decode(part).ok()
}

/// A single-threaded tokio runtime for the targets that drive async code.
pub fn runtime() -> tokio::runtime::Runtime {
    fixture("tokio runtime", tokio::runtime::Builder::new_current_thread().enable_all().build())
}

/// The peer address the HTTP fixtures treat as a trusted reverse proxy.
pub const TRUSTED_PROXY: &str = "127.0.0.1";

/// An `Authenticator` over in-memory stores with the fixed Ed25519 key, the stopped clock, the
/// cheapest argon2 parameters (logins are hashed, and a fuzzer logs in thousands of times a
/// second) and one password worker, wrapped in HTTP state that trusts the proxies
/// [`TRUSTED_PROXY`] and `10.0.0.0/8`.
pub fn http_state(rt: &tokio::runtime::Runtime) -> tessera_axum::TesseraState {
    let mut settings = tessera::Settings::new();
    settings.password.params =
        tessera::password::Argon2Params { memory_kib: 8, iterations: 1, parallelism: 1 };
    settings.password.workers = 1;
    let builder = tessera::Authenticator::builder(settings, tessera::store::Stores::memory())
        .keys(KeySet::single(ed25519_key()))
        .clock(stopped_clock());
    let auth = fixture("authenticator", rt.block_on(builder.build()));
    let trusted = tessera_axum::client_ip::TrustedProxies::parse([TRUSTED_PROXY, "10.0.0.0/8"]);
    let http = tessera_axum::HttpSettings {
        trusted_proxies: fixture("trusted proxies", trusted),
        ..tessera_axum::HttpSettings::new("https://auth.example")
    };
    tessera_axum::TesseraState::new(auth, http)
}
