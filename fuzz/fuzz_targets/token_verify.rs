//! `token_verify`: the whole access-token check a bearer token goes through on every request
//! (`AccessTokens::verify`: size limit, verified-token cache, JWS header and signature, claims,
//! issuer, audience, `exp`/`nbf`/`iat` with leeway, revocation).
//!
//! Two modes, chosen by the first byte:
//! - anything but `0x00`: the input is the token. Garbage must never verify; whatever does
//!   verify must be byte-for-byte a token the server mints (the fixture key signs
//!   deterministically), carry claims that pass an independent model of the rules, and give
//!   the same claims again from the cache and from `verify_ignoring_expiry`.
//! - `0x00` then structured bytes: claims are built from the input (right or wrong issuer and
//!   audience, times near now or at the extremes of i64, floats, strings, missing or duplicate
//!   members, the revoked `sid`), correctly signed, optionally mutated (a flipped byte, a
//!   swapped header such as `alg: none`), and the outcome must equal the model's exactly:
//!   accepted, expired, or invalid.
#![no_main]

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use base64::Engine as _;
use libfuzzer_sys::arbitrary::{Result as ArbResult, Unstructured};
use libfuzzer_sys::fuzz_target;
use tessera::Error;
use tessera::Timestamp;
use tessera::fuzzing::jws_sign;
use tessera::settings::TokenSettings;
use tessera::token::{AccessClaims, AccessTokens, KeySet, RevocationSet, SigningKey};
use tessera_fuzz::{B64URL, NOW, REVOKED_SID, b64_decode, ed25519_key, split3, stopped_clock};

struct Fixture {
    /// `verify` is async (Ed25519 checks join a batch); one thread, as the server's hot path.
    runtime: tokio::runtime::Runtime,
    tokens: AccessTokens,
    key: SigningKey,
    settings: TokenSettings,
}

static FIXTURE: OnceLock<Fixture> = OnceLock::new();

fn fx() -> &'static Fixture {
    FIXTURE.get_or_init(|| {
        let settings = TokenSettings::default();
        let revoked = Arc::new(RevocationSet::default());
        revoked.insert(
            REVOKED_SID,
            Timestamp::from_unix_seconds(NOW).plus(Duration::from_secs(86_400)),
        );
        let tokens = AccessTokens::new(
            KeySet::single(ed25519_key()),
            settings.clone(),
            stopped_clock(),
            revoked,
        );
        let runtime =
            tokio::runtime::Builder::new_current_thread().build().expect("a tokio runtime");
        Fixture { runtime, tokens, key: ed25519_key(), settings }
    })
}

#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    Accepted,
    Expired,
    Invalid,
}

/// The rules, written independently of `AccessTokens` (i128 arithmetic, no saturation).
fn model(settings: &TokenSettings, claims: &AccessClaims) -> Outcome {
    if claims.iss != settings.issuer || !claims.aud.contains(&settings.audience) {
        return Outcome::Invalid;
    }
    let now = i128::from(NOW);
    let leeway = i128::from(settings.leeway.as_secs());
    if now >= i128::from(claims.exp) + leeway {
        return Outcome::Expired;
    }
    if i128::from(claims.nbf) > now + leeway || i128::from(claims.iat) > now + leeway {
        return Outcome::Invalid;
    }
    if claims.sid == REVOKED_SID {
        return Outcome::Invalid;
    }
    Outcome::Accepted
}

/// RFC 7519 §7.2: the claims are a JSON object (a derived `Deserialize` alone would also fill
/// the struct from an array of the members in order). Valid JSON whose first non-whitespace
/// byte is `{` is an object.
fn is_object(json: &[u8]) -> bool {
    json.iter().find(|b| !matches!(b, b' ' | b'\t' | b'\n' | b'\r')).is_some_and(|b| *b == b'{')
}

fn outcome(result: &Result<Arc<AccessClaims>, Error>) -> Outcome {
    match result {
        Ok(_) => Outcome::Accepted,
        Err(Error::TokenExpired) => Outcome::Expired,
        Err(Error::TokenInvalid(_)) => Outcome::Invalid,
        Err(other) => panic!("verification failed with an unexpected error: {other:?}"),
    }
}

/// Checks one token; returns what `verify` decided.
fn check(fx: &Fixture, token: &str) -> Outcome {
    let result = fx.runtime.block_on(fx.tokens.verify(token));
    let decided = outcome(&result);
    let signed = fx.tokens.verify_ignoring_expiry(token);
    match &result {
        Ok(claims) => {
            let (_, payload_b64, _) = split3(token).expect("accepted a token without three parts");
            let payload = b64_decode(payload_b64).expect("accepted an undecodable payload");
            let minted = jws_sign(&fx.key, &payload).expect("signing failed");
            assert_eq!(minted, token, "accepted a token the server would not have minted");
            let parsed: AccessClaims =
                serde_json::from_slice(&payload).expect("accepted unparseable claims");
            assert_eq!(**claims, parsed, "claims differ from the payload");
            assert!(is_object(&payload), "accepted claims that are not a JSON object");
            assert_eq!(
                model(&fx.settings, claims),
                Outcome::Accepted,
                "the model refuses {claims:?}"
            );
            let again = fx
                .runtime
                .block_on(fx.tokens.verify(token))
                .expect("the cached token no longer verifies");
            assert_eq!(again, *claims, "the cache changed the claims");
            assert_eq!(signed.as_ref().ok(), Some(&**claims), "verify_ignoring_expiry disagrees");
        }
        Err(_) => {
            // Only a token with our signature, issuer and audience gets as far as the times
            // and revocation; then the model says which refusal it must be.
            if let Ok(claims) = &signed {
                assert_eq!(model(&fx.settings, claims), decided, "outcome differs for {claims:?}");
            }
        }
    }
    decided
}

/// A JSON value for a time claim.
fn time_value(u: &mut Unstructured<'_>) -> ArbResult<Option<String>> {
    Ok(Some(match u.int_in_range(0..=7u8)? {
        0 | 1 => (NOW + i64::from(u.arbitrary::<i16>()?)).to_string(),
        2 => u.arbitrary::<i64>()?.to_string(),
        3 => i64::MAX.to_string(),
        4 => i64::MIN.to_string(),
        5 => format!("{}.5", NOW),
        6 => format!("\"{NOW}\""),
        _ => return Ok(None),
    }))
}

fn string_value(u: &mut Unstructured<'_>, usual: &str) -> ArbResult<Option<String>> {
    Ok(match u.int_in_range(0..=5u8)? {
        0..=2 => Some(serde_json::to_string(usual).unwrap_or_default()),
        3 => Some(serde_json::to_string(u.arbitrary::<&str>()?).unwrap_or_default()),
        4 => Some("null".to_owned()),
        _ => None,
    })
}

/// Claims JSON built from `u`.
fn claims_json(u: &mut Unstructured<'_>, settings: &TokenSettings) -> ArbResult<String> {
    let aud = match u.int_in_range(0..=5u8)? {
        0 | 1 => Some(serde_json::to_string(&settings.audience).unwrap_or_default()),
        2 => Some(format!(
            r#"["other",{}]"#,
            serde_json::to_string(&settings.audience).unwrap_or_default()
        )),
        3 => Some(r#"["other"]"#.to_owned()),
        4 => Some("[]".to_owned()),
        _ => string_value(u, "tessera ")?,
    };
    let sid = if u.ratio(1, 4)? {
        Some(format!("\"{REVOKED_SID}\""))
    } else {
        string_value(u, "family-1")?
    };
    let members = [
        ("iss", string_value(u, &settings.issuer)?),
        ("sub", string_value(u, "user-1")?),
        ("aud", aud),
        ("exp", time_value(u)?),
        ("iat", time_value(u)?),
        ("nbf", time_value(u)?),
        ("jti", string_value(u, "jti-1")?),
        ("sid", sid),
        ("username", string_value(u, "alice")?),
    ];
    let mut parts: Vec<String> = members
        .iter()
        .filter_map(|(name, value)| value.as_ref().map(|v| format!("\"{name}\":{v}")))
        .collect();
    if u.ratio(1, 8)? {
        // A repeated member: serde refuses duplicates for the claims struct.
        let i = u.choose_index(parts.len().max(1))?;
        if let Some(again) = parts.get(i).cloned() {
            parts.push(again);
        }
    }
    if u.ratio(1, 8)? {
        parts.push(format!(
            "\"extra\":{}",
            serde_json::to_string(u.arbitrary::<&str>()?).unwrap_or_default()
        ));
    }
    Ok(format!("{{{}}}", parts.join(",")))
}

fn structured(fx: &Fixture, data: &[u8]) -> ArbResult<()> {
    let mut u = Unstructured::new(data);
    let payload = if u.ratio(1, 8)? {
        u.arbitrary::<&[u8]>()?.to_vec()
    } else {
        claims_json(&mut u, &fx.settings)?.into_bytes()
    };
    let original = jws_sign(&fx.key, &payload).expect("signing failed");
    let token = original.clone();
    let token = match u.int_in_range(0..=5u8)? {
        // A flipped byte somewhere.
        0 => {
            let mut bytes = token.into_bytes();
            let i = u.choose_index(bytes.len())?;
            bytes[i] ^= 1 << u.int_in_range(0..=6u8)?;
            String::from_utf8(bytes).unwrap_or_default()
        }
        // Our signature under another header.
        1 => {
            let (_, p, s) = split3(&token).unwrap_or_default();
            let kid = fx.key.public().kid();
            let header = match u.int_in_range(0..=3u8)? {
                0 => format!(r#"{{"alg":"none","kid":"{kid}","typ":"at+jwt"}}"#),
                1 => format!(r#"{{"alg":"HS256","kid":"{kid}","typ":"at+jwt"}}"#),
                2 => format!(r#"{{"alg":"EdDSA","kid":"{kid}","typ":"JWT"}}"#),
                _ => u.arbitrary::<&str>()?.to_owned(),
            };
            format!("{}.{p}.{s}", B64URL.encode(header))
        }
        // No signature at all.
        2 => {
            let (h, p, _) = split3(&token).unwrap_or_default();
            format!("{h}.{p}.")
        }
        _ => token,
    };
    let decided = check(fx, &token);
    if token == original {
        // Correctly signed by us: the model decides everything.
        let expected = match serde_json::from_slice::<AccessClaims>(&payload) {
            Ok(claims) if is_object(&payload) => model(&fx.settings, &claims),
            _ => Outcome::Invalid,
        };
        assert_eq!(decided, expected, "payload {:?}", String::from_utf8_lossy(&payload));
    } else if decided == Outcome::Accepted {
        panic!("accepted a mutated token: {token}");
    }
    Ok(())
}

fuzz_target!(|data: &[u8]| {
    let fx = fx();
    match data.split_first() {
        Some((0, rest)) => {
            let _ = structured(fx, rest);
        }
        _ => {
            if let Ok(token) = std::str::from_utf8(data) {
                check(fx, token);
            }
        }
    }
});
