//! What every authenticated request pays, per function, on this machine:
//! `cargo bench -p tessera --bench hot_paths`.
//!
//! - token check, cached (a token already seen) and cold (signature verified) per algorithm,
//!   and cold for 8 or 32 concurrent checks (Ed25519 signatures verified in one batch);
//! - the signature verification alone, per algorithm;
//! - the revocation check every token check ends with;
//! - session check through the in-process cache;
//! - issuing an access token;
//! - the SHA-256 of a session id;
//! - an argon2id hash and a verification at the default cost (what every login pays).
//!
//! Compare rows of one run with each other (ratios), not with another run's absolute times.

#![allow(clippy::unwrap_used)] // a failed setup should stop the benchmark loudly

use std::sync::Arc;

use secrecy::SecretString;
use tessera::clock::Timestamp;
use tessera::clock::{Clock, SystemClock};
use tessera::password::{Argon2Params, PasswordHasher};
use tessera::settings::TokenSettings;
use tessera::store::{ClientInfo, Stores};
use tessera::token::{AccessTokens, Algorithm, KeySet, RevocationSet, SigningKey};
use tessera::{Authenticator, Settings};

/// A client with no address or user agent.
const CLIENT: ClientInfo = ClientInfo { ip: None, user_agent: None };

fn main() {
    divan::main();
}

fn tokens(alg: Algorithm) -> AccessTokens {
    let key = match alg {
        Algorithm::HS256 => SigningKey::hs256(&[7u8; 32]).unwrap(),
        other => SigningKey::generate(other).unwrap().0,
    };
    AccessTokens::new(
        KeySet::single(key),
        TokenSettings::default(),
        Arc::new(SystemClock) as Arc<dyn Clock>,
        Arc::new(RevocationSet::default()),
    )
}

const ALGORITHMS: [Algorithm; 4] =
    [Algorithm::EdDSA, Algorithm::ES256, Algorithm::RS256, Algorithm::HS256];

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

const USER_ID: &str = "0190c1d2-0000-7000-8000-000000000000";

/// A token seen before: digest lookup, time and revocation checks.
#[divan::bench(args = ALGORITHMS)]
fn token_check_cached(bencher: divan::Bencher<'_, '_>, alg: Algorithm) {
    let runtime = runtime();
    let tokens = tokens(alg);
    let token = tokens.issue(USER_ID, "alice", "sid").unwrap().token;
    runtime.block_on(tokens.verify(&token)).unwrap();
    bencher.bench_local(|| runtime.block_on(tokens.verify(divan::black_box(&token))).unwrap());
}

/// A token never seen: parse, signature, claims (each iteration a fresh token, checked alone:
/// an Ed25519 batch of one).
#[divan::bench(args = ALGORITHMS)]
fn token_check_cold(bencher: divan::Bencher<'_, '_>, alg: Algorithm) {
    let runtime = runtime();
    let tokens = tokens(alg);
    bencher
        .with_inputs(|| tokens.issue(USER_ID, "alice", "sid").unwrap().token)
        .bench_local_refs(|token| runtime.block_on(tokens.verify(token)).unwrap());
}

/// `BATCH` never-seen EdDSA tokens checked by as many concurrent tasks, as concurrent requests
/// are: their signatures are verified together. Time per token is the figure to compare
/// with `token_check_cold`.
#[divan::bench(consts = [8, 32])]
fn token_check_cold_concurrent<const BATCH: usize>(bencher: divan::Bencher<'_, '_>) {
    let runtime = runtime();
    let tokens = Arc::new(tokens(Algorithm::EdDSA));
    bencher
        .counter(divan::counter::ItemsCount::new(BATCH))
        .with_inputs(|| {
            (0..BATCH).map(|_| tokens.issue(USER_ID, "alice", "sid").unwrap().token).collect()
        })
        .bench_local_values(|batch: Vec<String>| {
            runtime.block_on(async {
                let checks: Vec<_> = batch
                    .into_iter()
                    .map(|token| {
                        let tokens = Arc::clone(&tokens);
                        tokio::spawn(async move { tokens.verify(&token).await.unwrap() })
                    })
                    .collect();
                for check in checks {
                    check.await.unwrap();
                }
            })
        });
}

/// Signing a new access token.
#[divan::bench(args = ALGORITHMS)]
fn token_issue(bencher: divan::Bencher<'_, '_>, alg: Algorithm) {
    let tokens = tokens(alg);
    bencher.bench_local(|| {
        tokens.issue("0190c1d2-0000-7000-8000-000000000000", "alice", "sid").unwrap()
    });
}

/// The session check through the engine with an in-memory store behind the session cache.
#[divan::bench]
fn session_check_cached(bencher: divan::Bencher<'_, '_>) {
    let runtime = runtime();
    let (auth, secret) = runtime.block_on(async {
        let mut settings = Settings::new();
        settings.password.params = Argon2Params { memory_kib: 64, iterations: 1, parallelism: 1 };
        let stores = Stores::memory().with_session_cache(1024);
        let auth = Authenticator::builder(settings, stores).build().await.unwrap();
        let password = SecretString::from("correct horse battery".to_owned());
        let user = auth.register("alice", &password, &CLIENT).await.unwrap();
        let new = auth.start_session(&user, &CLIENT).await.unwrap();
        (auth, new.secret)
    });
    bencher.bench_local(|| runtime.block_on(auth.authenticate_session(&secret)).unwrap());
}

/// SHA-256 of a 43-character session id: the store key of every session check.
#[divan::bench]
fn session_id_digest(bencher: divan::Bencher<'_, '_>) {
    let id = "AoVZQVw9oQUff-GTOTyVdL3pedSvUW5TKCyyNwZhPIA";
    bencher.bench_local(|| tessera::session::SessionManager::digest(divan::black_box(id)));
}

/// The signature check alone, on a signing input the size of a real token's.
#[divan::bench(args = ALGORITHMS)]
fn signature_verify(bencher: divan::Bencher<'_, '_>, alg: Algorithm) {
    let key = match alg {
        Algorithm::HS256 => SigningKey::hs256(&[7u8; 32]).unwrap(),
        other => SigningKey::generate(other).unwrap().0,
    };
    let message = "x".repeat(330);
    let signature = key.sign(message.as_bytes()).unwrap();
    let public = key.public();
    bencher.bench_local(|| public.verify(divan::black_box(message.as_bytes()), &signature));
}

/// The revocation check of a token check, with 10,000 logins revoked.
#[divan::bench]
fn revocation_check(bencher: divan::Bencher<'_, '_>) {
    let revoked = RevocationSet::default();
    let now = Timestamp::from_unix_seconds(1_800_000_000);
    let until = Timestamp::from_unix_seconds(1_800_000_300);
    for n in 0..10_000 {
        revoked.insert(&format!("0190c1d2-0000-7000-8000-{n:012x}"), until);
    }
    let sid = "0190c1d2-0000-7000-8000-ffffffffffff";
    bencher.bench_local(|| revoked.is_revoked(divan::black_box(sid), now));
}

/// One argon2id hash at the default cost (m=19456 KiB, t=2), on a pool worker.
#[divan::bench(sample_count = 10, sample_size = 1)]
fn password_hash(bencher: divan::Bencher<'_, '_>) {
    let runtime = runtime();
    let hasher = PasswordHasher::new(Argon2Params::default(), 1).unwrap();
    let password = SecretString::from("correct horse battery".to_owned());
    bencher.bench_local(|| runtime.block_on(hasher.hash(&password)).unwrap());
}

/// One password check against a stored hash at the default cost.
#[divan::bench(sample_count = 10, sample_size = 1)]
fn password_verify(bencher: divan::Bencher<'_, '_>) {
    let runtime = runtime();
    let hasher = PasswordHasher::new(Argon2Params::default(), 1).unwrap();
    let password = SecretString::from("correct horse battery".to_owned());
    let stored = runtime.block_on(hasher.hash(&password)).unwrap();
    bencher
        .bench_local(|| runtime.block_on(hasher.verify(&password, Some(&stored))).unwrap().matches);
}
