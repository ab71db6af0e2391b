//! Ed25519 batch verification across the requests in flight.
//!
//! A token seen before is answered from the verified-token cache; a new one needs a signature
//! check, ~40–50 µs of CPU, twice what the rest of the request costs. Checking *n* signatures
//! at once (one multiscalar multiplication, `token/batch_equation.rs`) costs
//! a third to a half as much per signature. So a check does not run at once: it joins a queue,
//! and the first request to find the queue empty spawns a task that yields once (every request
//! that is ready to run gets to join), then verifies the whole queue in one go, up to
//! [`MAX_BATCH`] at a time, yielding again between batches so that it never holds a worker
//! thread for long. Under load the batches fill by themselves; a lone request waits one
//! trip through the scheduler.
//!
//! A batch that fails says only that *some* signature in it is bad, so each is then checked
//! on its own: a forged token costs its batch one extra pass, never a wrong answer. Batch and
//! single checks reject the same forgeries (neither can be satisfied without the private key);
//! they differ only on crafted signatures with small-order components, which the single check
//! rejects and which carry no claims an attacker could not already have had signed.

use std::sync::{Arc, Mutex, PoisonError};

use ed25519_dalek::{Signature, Verifier as _, VerifyingKey};
use tokio::sync::oneshot;

use super::batch_equation::{self, Signed};

/// The most signatures verified together; beyond ~64 the gain per signature is flat.
pub const MAX_BATCH: usize = 64;

/// Verifies one Ed25519 signature (64 bytes, canonical `S`).
pub(crate) fn verify_one(key: &VerifyingKey, message: &[u8], signature: &[u8]) -> bool {
    Signature::from_slice(signature).is_ok_and(|signature| key.verify(message, &signature).is_ok())
}

struct Job {
    key: VerifyingKey,
    message: Box<[u8]>,
    signature: Signature,
    reply: oneshot::Sender<bool>,
}

/// Counts of what the batcher did, for tests and `tessera bench`.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct BatchStats {
    /// Batches verified (a batch of one included).
    pub batches: u64,
    /// Signatures verified through the batcher.
    pub signatures: u64,
    /// Batches that failed and were checked one by one.
    pub failed_batches: u64,
}

#[derive(Default)]
struct Queue {
    jobs: Vec<Job>,
    stats: BatchStats,
}

/// The shared queue of pending checks (cheap to clone).
#[derive(Clone, Default)]
pub struct SignatureBatcher {
    queue: Arc<Mutex<Queue>>,
}

impl std::fmt::Debug for SignatureBatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignatureBatcher").field("stats", &self.stats()).finish()
    }
}

impl SignatureBatcher {
    /// An empty batcher.
    pub fn new() -> Self {
        Self::default()
    }

    /// What the batcher has done so far.
    pub fn stats(&self) -> BatchStats {
        self.lock().stats
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Checks `signature` over `message`, together with whatever else is pending. Outside a
    /// tokio runtime the check runs at once.
    pub async fn verify(&self, key: &VerifyingKey, message: &[u8], signature: &[u8]) -> bool {
        let Ok(parsed) = Signature::from_slice(signature) else {
            return false;
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return key.verify(message, &parsed).is_ok();
        };
        let (reply, answer) = oneshot::channel();
        let first = {
            let mut queue = self.lock();
            queue.jobs.push(Job { key: *key, message: message.into(), signature: parsed, reply });
            queue.jobs.len() == 1
        };
        if first {
            let batcher = self.clone();
            runtime.spawn(batcher.drain());
        }
        match answer.await {
            Ok(valid) => valid,
            // The task was dropped with its runtime: check here instead.
            Err(_) => key.verify(message, &parsed).is_ok(),
        }
    }

    /// Verifies batches until the queue is empty.
    async fn drain(self) {
        loop {
            // Every request already able to run joins the batch before it is checked; and
            // between batches, the other tasks of this worker get to run.
            tokio::task::yield_now().await;
            let batch: Vec<Job> = {
                let mut queue = self.lock();
                let n = queue.jobs.len().min(MAX_BATCH);
                if n == 0 {
                    return;
                }
                queue.jobs.drain(..n).collect()
            };
            let size = batch.len() as u64;
            let passed = verify_jobs(batch);
            let failed = size > 1 && !passed;
            let mut queue = self.lock();
            queue.stats.batches += 1;
            queue.stats.signatures += size;
            queue.stats.failed_batches += u64::from(failed);
        }
    }
}

/// Verifies `batch` and answers each job; returns whether the batch as a whole passed (a batch
/// of one is simply checked).
fn verify_jobs(batch: Vec<Job>) -> bool {
    let batch_valid = batch.len() > 1 && {
        let signed: Vec<Signed<'_>> = batch
            .iter()
            .map(|j| Signed { key: &j.key, message: &j.message, signature: &j.signature })
            .collect();
        batch_equation::all_valid(&signed)
    };
    for job in batch {
        let valid = batch_valid || job.key.verify(&job.message, &job.signature).is_ok();
        // The request may have gone (timed out, client left): nobody to tell.
        let _ = job.reply.send(valid);
    }
    batch_valid
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::{Signer as _, SigningKey};

    fn key(seed: u8) -> SigningKey {
        SigningKey::from_bytes(&[seed; 32])
    }

    /// `count` messages signed by `signer`; `forged` indexes get a signature by another key.
    fn signed(count: usize, forged: &[usize]) -> Vec<(Vec<u8>, Vec<u8>)> {
        (0..count)
            .map(|i| {
                let message = format!("header.payload-{i}").into_bytes();
                let by = if forged.contains(&i) { key(2) } else { key(1) };
                let signature = by.sign(&message).to_bytes().to_vec();
                (message, signature)
            })
            .collect()
    }

    async fn check_concurrently(
        batcher: &SignatureBatcher,
        items: Vec<(Vec<u8>, Vec<u8>)>,
    ) -> Vec<bool> {
        let public = key(1).verifying_key();
        let checks: Vec<_> = items
            .into_iter()
            .map(|(message, signature)| {
                let batcher = batcher.clone();
                tokio::spawn(async move { batcher.verify(&public, &message, &signature).await })
            })
            .collect();
        let mut results = Vec::new();
        for check in checks {
            results.push(check.await.unwrap());
        }
        results
    }

    #[tokio::test(flavor = "current_thread")]
    async fn concurrent_checks_are_verified_in_one_batch() {
        let batcher = SignatureBatcher::new();
        let results = check_concurrently(&batcher, signed(40, &[])).await;
        assert!(results.iter().all(|&valid| valid));
        let stats = batcher.stats();
        assert_eq!(stats.signatures, 40);
        assert_eq!(stats.batches, 1, "40 tasks ready at once form one batch: {stats:?}");
        assert_eq!(stats.failed_batches, 0);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn batches_are_capped() {
        let batcher = SignatureBatcher::new();
        let results = check_concurrently(&batcher, signed(MAX_BATCH * 2 + 1, &[])).await;
        assert!(results.iter().all(|&valid| valid));
        let stats = batcher.stats();
        assert_eq!(stats.signatures, (MAX_BATCH * 2 + 1) as u64);
        assert_eq!(stats.batches, 3, "{stats:?}");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_forgery_fails_alone_and_its_batch_is_rechecked() {
        let batcher = SignatureBatcher::new();
        let results = check_concurrently(&batcher, signed(20, &[3, 17])).await;
        for (i, valid) in results.iter().enumerate() {
            assert_eq!(*valid, i != 3 && i != 17, "signature {i}");
        }
        assert_eq!(batcher.stats().failed_batches, 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn many_threads_get_the_right_answers() {
        let batcher = SignatureBatcher::new();
        let forged: Vec<usize> = (0..500).filter(|i| i % 37 == 0).collect();
        let results = check_concurrently(&batcher, signed(500, &forged)).await;
        for (i, valid) in results.iter().enumerate() {
            assert_eq!(*valid, !forged.contains(&i), "signature {i}");
        }
        assert_eq!(batcher.stats().signatures, 500);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn malformed_and_tampered_signatures_are_refused() {
        let batcher = SignatureBatcher::new();
        let public = key(1).verifying_key();
        let (message, signature) = signed(1, &[]).remove(0);
        assert!(batcher.verify(&public, &message, &signature).await);
        assert!(!batcher.verify(&public, &message, &signature[..63]).await, "short");
        assert!(!batcher.verify(&public, b"other message", &signature).await);
        let mut high_s = signature.clone();
        high_s[63] |= 0xf0; // S no longer below the group order
        assert!(!batcher.verify(&public, &message, &high_s).await, "non-canonical S");
        assert!(!verify_one(&public, &message, &high_s));
    }

    #[test]
    fn outside_a_runtime_the_check_runs_at_once() {
        let batcher = SignatureBatcher::new();
        let public = key(1).verifying_key();
        let (message, signature) = signed(1, &[]).remove(0);
        let check = batcher.verify(&public, &message, &signature);
        // Polled once without a runtime: ready at once, no task spawned.
        let waker = std::task::Waker::noop();
        let mut cx = std::task::Context::from_waker(waker);
        let mut check = std::pin::pin!(check);
        assert_eq!(check.as_mut().poll(&mut cx), std::task::Poll::Ready(true));
        assert_eq!(batcher.stats().batches, 0);
    }
}
