//! `jws`: the JWS compact-serialization layer on its own (`tessera::token::jws`, reached through
//! `tessera::fuzzing`), below the claims checks.
//!
//! Each input is used twice:
//! - as a token: `verify` must never panic, must fail only with `TokenInvalid`, and anything it
//!   accepts must be byte-for-byte the token the server itself mints for that payload with the
//!   key the header names (both fixture keys, Ed25519 and HS256, sign deterministically). So no
//!   `alg: none`, no algorithm confusion, no second encoding of the same token.
//! - as a payload: signing it with each key and verifying must give it back unchanged, and the
//!   same token with the signature's last character changed must be refused.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use tessera::Error;
use tessera::fuzzing::{jws_sign, jws_verify};
use tessera::token::jws::MAX_TOKEN_BYTES;
use tessera::token::{KeySet, SigningKey};
use tessera_fuzz::{b64_decode, jws_keys, split3};

struct Fixture {
    keys: KeySet,
    signers: Vec<SigningKey>,
}

static FIXTURE: OnceLock<Fixture> = OnceLock::new();

fn fx() -> &'static Fixture {
    FIXTURE.get_or_init(|| {
        let (keys, signers) = jws_keys();
        Fixture { keys, signers }
    })
}

fn check_token(fx: &Fixture, token: &str) {
    let payload = match jws_verify(token, &fx.keys) {
        Ok(payload) => payload,
        Err(Error::TokenInvalid(_)) => return,
        Err(other) => panic!("verify failed with a non-TokenInvalid error: {other:?}"),
    };
    assert!(token.len() <= MAX_TOKEN_BYTES, "accepted an oversized token");
    let (header_b64, _, _) = split3(token).expect("accepted a token without three parts");
    let header: serde_json::Value =
        serde_json::from_slice(&b64_decode(header_b64).expect("accepted an undecodable header"))
            .expect("accepted a non-JSON header");
    let kid = header["kid"].as_str().expect("accepted a header without a string kid");
    let signer = fx
        .signers
        .iter()
        .find(|k| k.public().kid() == kid)
        .expect("accepted a token whose kid is none of ours");
    let minted = jws_sign(signer, &payload).expect("signing failed");
    assert_eq!(minted, token, "accepted a token the server would not have minted");
}

fn check_round_trip(fx: &Fixture, payload: &[u8]) {
    for signer in &fx.signers {
        let token = jws_sign(signer, payload).expect("signing failed");
        let verified = jws_verify(&token, &fx.keys);
        if token.len() > MAX_TOKEN_BYTES {
            assert!(verified.is_err(), "accepted an oversized token");
            continue;
        }
        assert_eq!(verified.expect("refused a token it minted"), payload);
        // The last signature character, changed: the signature (or its canonical encoding)
        // no longer matches.
        let mut tampered = token.clone();
        let last = tampered.pop().expect("empty token");
        tampered.push(if last == 'A' { 'B' } else { 'A' });
        assert!(jws_verify(&tampered, &fx.keys).is_err(), "accepted a tampered signature");
    }
}

fuzz_target!(|data: &[u8]| {
    let fx = fx();
    if let Ok(token) = std::str::from_utf8(data) {
        check_token(fx, token);
    }
    check_round_trip(fx, data);
});
