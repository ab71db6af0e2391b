//! What every authenticated request pays, per function, on this machine:
//! `cargo bench -p tessera --bench hot_paths`.
//!
//! - token check, cached (a token already seen) and cold (signature verified) per algorithm;
//! - session check through the in-process cache;
//! - issuing an access token;
//! - the SHA-256 of a session id.
//!
//! Compare rows of one run with each other (ratios), not with another run's absolute times.

#![allow(clippy::unwrap_used)] // a failed setup should stop the benchmark loudly

use std::sync::Arc;

use secrecy::SecretString;
use tessera::clock::{Clock, SystemClock};
use tessera::password::Argon2Params;
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

/// A token seen before: digest lookup, time and revocation checks.
#[divan::bench(args = ALGORITHMS)]
fn token_check_cached(bencher: divan::Bencher<'_, '_>, alg: Algorithm) {
    let tokens = tokens(alg);
    let token = tokens.issue("0190c1d2-0000-7000-8000-000000000000", "alice", "sid").unwrap().token;
    tokens.verify(&token).unwrap();
    bencher.bench_local(|| tokens.verify(divan::black_box(&token)).unwrap());
}

/// A token never seen: parse, signature, claims (each iteration a fresh token).
#[divan::bench(args = ALGORITHMS)]
fn token_check_cold(bencher: divan::Bencher<'_, '_>, alg: Algorithm) {
    let tokens = tokens(alg);
    bencher
        .with_inputs(|| {
            tokens.issue("0190c1d2-0000-7000-8000-000000000000", "alice", "sid").unwrap().token
        })
        .bench_local_refs(|token| tokens.verify(token).unwrap());
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
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
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
