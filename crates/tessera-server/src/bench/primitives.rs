//! `tessera bench primitives`: the two costs every figure of Tessera rests on, measured on
//! one core: how many access-token signatures it verifies per second with the configured
//! algorithm (on a token of the size Tessera issues), and how long one argon2id password hash
//! takes with the configured cost (on the same reused-memory worker a login uses).

use std::time::{Duration, Instant};

use secrecy::SecretString;
use tessera::password::{Argon2Params, PasswordHasher};
use tessera::token::{Algorithm, SigningKey};

/// One measurement of signature verification.
#[derive(Debug, Clone, Copy)]
pub struct VerifyRate {
    /// The algorithm measured.
    pub algorithm: Algorithm,
    /// Signature verifications per second on the calling thread.
    pub per_second: f64,
}

/// The mean time of one argon2id hash with `params`, over `hashes` hashes one after another
/// on one password worker.
pub async fn hash_time(params: Argon2Params, hashes: u32) -> anyhow::Result<Duration> {
    let hasher = PasswordHasher::new(params, 1)?;
    let password = SecretString::from("bench-pw-9f8e7d6c5b41".to_owned());
    hasher.hash(&password).await?; // the worker allocates its memory on the first hash
    let started = Instant::now();
    for _ in 0..hashes {
        hasher.hash(&password).await?;
    }
    Ok(started.elapsed() / hashes.max(1))
}

/// Verifies one signature in a loop on this thread for about `duration`.
pub fn verify_rate(algorithm: Algorithm, duration: Duration) -> anyhow::Result<VerifyRate> {
    let key = match algorithm {
        Algorithm::HS256 => SigningKey::hs256(&[0x5a; 32])?,
        other => SigningKey::generate(other)?.0,
    };
    // The signing input (header.claims) of a real token, so the hashed length is realistic.
    let message = concat!(
        "eyJhbGciOiJFZERTQSIsImtpZCI6IkZOMkd3XzA3UWpPZWRrc0JWNkNYS1ZLM0FFOHl3dFNnQVlSR3U4OTJEYlEiLCJ0eXAiOiJhdCtqd3QifQ.",
        "eyJpc3MiOiJodHRwOi8vMTI3LjAuMC4xOjgwODAiLCJzdWIiOiIwMTkwYzFkMi0wMDAwLTcwMDAtODAw",
        "MC0wMDAwMDAwMDAwMDAiLCJhdWQiOiJ0ZXNzZXJhIiwiZXhwIjoxNzk1NzgyOTUwLCJpYXQiOjE3OTU3",
        "ODI2NTAsIm5iZiI6MTc5NTc4MjY1MCwianRpIjoiVWFPNlFWbGFvWkZRVzlfSHlsUUtCUSIsInNpZCI6",
        "IjAxOTBjMWQyLTAwMDAtNzAwMC04MDAwLTAwMDAwMDAwMDAwMSIsInVzZXJuYW1lIjoiYmVuY2gudXNlciJ9",
    );
    let signature = key.sign(message.as_bytes())?;
    let public = key.public();
    anyhow::ensure!(public.verify(message.as_bytes(), &signature), "the signature does not verify");
    let started = Instant::now();
    let mut done: u64 = 0;
    while started.elapsed() < duration {
        for _ in 0..64 {
            std::hint::black_box(public.verify(
                std::hint::black_box(message.as_bytes()),
                std::hint::black_box(&signature),
            ));
        }
        done += 64;
    }
    Ok(VerifyRate { algorithm, per_second: done as f64 / started.elapsed().as_secs_f64() })
}
